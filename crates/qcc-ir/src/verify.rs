//! The verifier: run after the importer and after every pass.
//! An error here is a bug in whatever ran last, never the user's fault.

use crate::error::IrError;
use crate::graph::Graph;
use crate::infer::infer;
use crate::op::Op;

/// Checks the graph's invariants:
/// - it is acyclic and every input of every node names an existing output;
/// - every node's output types equal what shape inference computes from its
///   inputs: element type and shape always, quantization parameters where
///   inference decides them (`Quantize`, the layout ops that keep them);
///   elsewhere they are whatever the quantization passes recorded;
/// - integer kernels (`QConv`, `QGemm`) read constant weights and bias;
///   only such 8-bit constants carry per-channel parameters
///   ([`crate::AxisQuant`]), one scale per output channel (axis 0 of a
///   QConv's weights, 1 of a QGemm's);
///   a `SignMatMul` or `SignConv` reads constant weights that are all -1 or +1
///   (and has one threshold pair per output channel when it has any);
/// - `Input` nodes are numbered 0..n in order and `Const` nodes name an existing weight whose type they carry;
/// - every graph output names an existing value.
pub fn verify(g: &Graph) -> Result<(), IrError> {
    let order = g.topo_order()?;
    let err = |node: &str, msg: String| IrError::Verify {
        node: node.to_string(),
        msg,
    };
    for id in &order {
        let n = g.node(*id);
        for v in n.inputs() {
            if !g.contains(v.node) || v.slot >= g.node(v.node).outputs.len() {
                return Err(err(&n.name, format!("input {v:?} does not exist")));
            }
        }
        match &n.op {
            Op::Input { index } => {
                if g.inputs().get(*index) != Some(id) {
                    return Err(err(&n.name, format!("input index {index} is out of order")));
                }
            }
            Op::Const { weight } => {
                let Some(t) = g.weights().get(weight.0 as usize) else {
                    return Err(err(&n.name, format!("weight {weight} does not exist")));
                };
                if n.outputs.len() != 1 || !n.outputs[0].same_layout(&t.ty()) {
                    return Err(err(
                        &n.name,
                        format!("declared {:?} but weight {weight} is {}", n.outputs, t.ty()),
                    ));
                }
                if let Some(a) = &n.outputs[0].axis_quant {
                    if crate::infer::int8_range(t.dtype()).is_none() {
                        return Err(err(
                            &n.name,
                            format!("per-channel parameters on {}", t.ty()),
                        ));
                    }
                    a.check(t.shape()).map_err(|m| err(&n.name, m))?;
                    let (lo, hi) = crate::AxisQuant::range(a.bits, t.dtype() == crate::DType::I8);
                    let values = t.to_i64_vec().unwrap_or_default();
                    if let Some(v) = values.iter().find(|v| !(lo..=hi).contains(*v)) {
                        return Err(err(
                            &n.name,
                            format!("weight {v} does not fit its {}-bit type", a.bits),
                        ));
                    }
                }
            }
            op => {
                // Integer kernels take their weights and bias packed at
                // compile time: run-time ones would pass here and fail in
                // codegen.
                if matches!(op, Op::QConv { .. } | Op::QGemm { .. }) {
                    for (i, what) in [(1, "weights"), (2, "bias")] {
                        let Some(v) = n.inputs().get(i) else { continue };
                        if g.const_value(*v).is_none() {
                            return Err(err(
                                &n.name,
                                format!("{} {what} must be a constant", op.name()),
                            ));
                        }
                    }
                    let axis = if matches!(op, Op::QConv { .. }) { 0 } else { 1 };
                    let w = n.inputs().get(1).map(|v| g.value_type(*v));
                    if let Some(a) = w.and_then(|t| t.axis_quant.as_ref()) {
                        if a.axis != axis {
                            return Err(err(
                                &n.name,
                                format!("weights quantized along axis {}, not {axis}", a.axis),
                            ));
                        }
                    }
                }
                if matches!(op, Op::SignMatMul { .. } | Op::SignConv { .. }) {
                    let ok = n
                        .inputs()
                        .get(1)
                        .and_then(|v| g.const_value(*v))
                        .is_some_and(|t| {
                            t.as_f32()
                                .is_some_and(|w| w.iter().all(|&x| x == 1.0 || x == -1.0))
                        });
                    if !ok {
                        return Err(err(
                            &n.name,
                            format!("{} weights must be a constant of -1 and +1", op.name()),
                        ));
                    }
                    // Thresholds: one pair per output channel.
                    let step = match op {
                        Op::SignConv { step, .. } | Op::SignMatMul { step, .. } => step,
                        _ => &None,
                    };
                    let axis = crate::SignStep::axis(op, n.outputs[0].shape.len());
                    if let Some(s) = step {
                        let ch = axis
                            .and_then(|a| n.outputs[0].shape.get(a))
                            .copied()
                            .unwrap_or(0);
                        s.check(ch).map_err(|m| err(&n.name, m))?;
                    }
                }
                let tys: Vec<_> = n.inputs().iter().map(|v| g.value_type(*v)).collect();
                let want = infer(op, &tys).map_err(|m| err(&n.name, m))?;
                let agree = want.len() == n.outputs.len()
                    && want.iter().zip(&n.outputs).all(|(w, o)| {
                        w.same_layout(o) && (w.quant.is_none() || w.quant == o.quant)
                    });
                if !agree {
                    return Err(err(
                        &n.name,
                        format!(
                            "{} declares outputs {:?} but inference gives {:?}",
                            op.name(),
                            n.outputs,
                            want
                        ),
                    ));
                }
            }
        }
    }
    for (i, id) in g.inputs().iter().enumerate() {
        if !g.contains(*id) || g.node(*id).op != (Op::Input { index: i }) {
            return Err(err(&format!("input #{i}"), "graph input is missing".into()));
        }
    }
    for o in &g.outputs {
        if !g.contains(o.value.node) || o.value.slot >= g.node(o.value.node).outputs.len() {
            return Err(err(&o.name, "graph output names a missing value".into()));
        }
    }
    Ok(())
}
