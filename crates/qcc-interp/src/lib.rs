//! Reference interpreter for qcc's IR: the oracle that compiled code is
//! checked against, and the evaluator behind constant folding.
//!
//! [`eval_op`] evaluates one op on concrete tensors with f32 semantics as ONNX
//! defines them (sums accumulate in f64 and round once), and the integer ops
//! with the exact arithmetic of `qcc_ir::quant` ([`quant`]); [`run`] evaluates
//! a whole graph, freeing each intermediate after its last use. Neither panics
//! on bad input: mismatched tensors are reported as errors.

mod conv;
mod elem;
mod elementwise;
mod index;
mod logic;
mod matmul;
mod pool;
mod quant;
mod reduce;
mod resize;
mod shape_ops;
mod window;

#[cfg(test)]
mod tests;

pub use conv::Im2Col;
pub use elementwise::erf;

use crate::elem::for_dtype;
use crate::index::checked_numel;
use qcc_ir::{infer, Graph, Op, Tensor, TensorType, ValueId};
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum InterpError {
    #[error("node '{node}' ({op}): {msg}")]
    Node {
        node: String,
        op: &'static str,
        msg: String,
    },
    #[error("{0}")]
    Graph(String),
    /// A graph input of the wrong type or shape.
    #[error("graph input #{index} '{name}': {msg}")]
    Input {
        index: usize,
        name: String,
        msg: String,
    },
}

/// Largest output accepted, in elements; anything bigger is a corrupt model.
const MAX_ELEMS: usize = 1 << 32;

/// Largest attribute value accepted (pads, strides, dilations, kernel sizes…);
/// bigger ones can only be corrupt and could overflow index arithmetic.
const ATTR_LIMIT: usize = 1 << 32;

/// Rejects attributes whose arithmetic would overflow before shape inference sees them.
fn precheck(op: &Op, inputs: &[&Tensor]) -> Result<(), String> {
    let big = |v: &[usize], what: &str| match v.iter().find(|&&x| x > ATTR_LIMIT) {
        Some(x) => Err(format!("{what} value {x} is too large")),
        None => Ok(()),
    };
    let shape_ok = |v: &[usize], what: &str| {
        big(v, what)?;
        checked_numel(v)
            .map(|_| ())
            .ok_or_else(|| format!("{what} {v:?} has too many elements"))
    };
    match op {
        Op::Conv(c)
        | Op::ConvClamp { conv: c, .. }
        | Op::ConvAdd { conv: c, .. }
        | Op::ConvTranspose(c)
        | Op::SignConv { conv: c, .. }
        | Op::QConv { conv: c, .. } => {
            big(&c.strides, "strides")?;
            big(&c.pads, "pads")?;
            big(&c.dilations, "dilations")?;
            big(&c.output_padding, "output_padding")?;
            big(&[c.group], "group")?;
            if matches!(op, Op::ConvTranspose(_)) {
                for t in inputs.iter().take(2) {
                    if t.shape().len() >= 3 && t.shape()[2..].contains(&0) {
                        return Err(format!("spatial dims of {} must be non-zero", t.ty()));
                    }
                }
            }
        }
        Op::MaxPool(p) | Op::AveragePool(p) | Op::QAvgPool { pool: p, .. } => {
            big(&p.kernel, "kernel")?;
            big(&p.strides, "strides")?;
            big(&p.pads, "pads")?;
            big(&p.dilations, "dilations")?;
        }
        Op::Reshape { shape } => shape_ok(shape, "shape")?,
        Op::Slice {
            starts,
            steps,
            lens,
        } => {
            shape_ok(lens, "lens")?;
            for ((&s, &st), &n) in starts.iter().zip(steps).zip(lens) {
                if n > 0 {
                    (n as i64 - 1)
                        .checked_mul(st)
                        .and_then(|l| l.checked_add(s))
                        .ok_or_else(|| format!("start {s} + ({n} - 1) * step {st} overflows"))?;
                }
            }
        }
        Op::Pad { pads, .. } => big(pads, "pads")?,
        Op::Resize(r) => shape_ok(&r.sizes, "sizes")?,
        _ => {}
    }
    Ok(())
}

fn fmt_types(t: &[TensorType]) -> String {
    let v: Vec<String> = t.iter().map(|t| t.to_string()).collect();
    format!("[{}]", v.join(", "))
}

/// Evaluates one op on concrete inputs. `outputs` are the node's declared
/// output types; their element types and shapes must equal what the inputs
/// imply (an empty slice skips that check).
pub fn eval_op(op: &Op, inputs: &[&Tensor], outputs: &[TensorType]) -> Result<Vec<Tensor>, String> {
    precheck(op, inputs)?;
    let tys: Vec<TensorType> = inputs.iter().map(|t| t.ty()).collect();
    let refs: Vec<&TensorType> = tys.iter().collect();
    let want = infer(op, &refs)?;
    // Element types and shapes: a tensor carries no quantization parameters.
    let same =
        outputs.len() == want.len() && outputs.iter().zip(&want).all(|(a, b)| a.same_layout(b));
    if !outputs.is_empty() && !same {
        return Err(format!(
            "declared outputs {} but inputs {} give {}",
            fmt_types(outputs),
            fmt_types(&tys),
            fmt_types(&want)
        ));
    }
    let out_ty = want.first().ok_or("internal: op has no output")?;
    if checked_numel(&out_ty.shape).is_none_or(|n| n > MAX_ELEMS) {
        return Err(format!("output {out_ty} is too large"));
    }
    let shape = out_ty.shape.as_slice();
    let data = match op {
        Op::Input { .. } | Op::Const { .. } => {
            return Err("input and const nodes are not evaluated".into())
        }
        Op::Conv(c) => conv::conv(c, inputs[0], inputs[1], inputs.get(2).copied(), shape)?,
        Op::ConvClamp { conv, min, max } => {
            match conv::conv(conv, inputs[0], inputs[1], inputs.get(2).copied(), shape)? {
                qcc_ir::TensorData::F32(v) => qcc_ir::TensorData::F32(
                    v.into_iter()
                        .map(|x| elementwise::clamp(x, *min, *max))
                        .collect(),
                ),
                _ => return Err("internal: a float convolution gave non-float data".into()),
            }
        }
        Op::ConvAdd { conv, min, max } => {
            let y = conv::conv(conv, inputs[0], inputs[1], Some(inputs[2]), shape)?;
            match (y, inputs[3].data()) {
                (qcc_ir::TensorData::F32(v), qcc_ir::TensorData::F32(r)) => {
                    qcc_ir::TensorData::F32(
                        v.into_iter()
                            .zip(r)
                            .map(|(x, r)| elementwise::clamp(x + r, *min, *max))
                            .collect(),
                    )
                }
                _ => return Err("internal: a float convolution with a non-float residual".into()),
            }
        }
        Op::ConvTranspose(c) => {
            conv::conv_transpose(c, inputs[0], inputs[1], inputs.get(2).copied(), shape)?
        }
        Op::Gemm {
            alpha,
            beta,
            trans_a,
            trans_b,
        } => matmul::gemm(
            *alpha,
            *beta,
            *trans_a,
            *trans_b,
            inputs[0],
            inputs[1],
            inputs.get(2).copied(),
        )?,
        Op::MatMul => matmul::matmul(inputs[0], inputs[1])?,
        Op::SignMatMul { bipolar, step } => {
            let y = matmul::sign_matmul(inputs[0], inputs[1], *bipolar)?;
            matmul::sign_step(y, step.as_deref(), shape, op)?
        }
        Op::SignConv {
            conv: c,
            bipolar,
            step,
        } => {
            let signs = matmul::signs(inputs[0], *bipolar)?;
            let y = conv::conv(c, &signs, inputs[1], None, shape)?;
            matmul::sign_step(y, step.as_deref(), shape, op)?
        }
        Op::Unary(u) => elementwise::unary(*u, inputs[0])?,
        Op::Binary(b) => elementwise::binary(*b, inputs[0], inputs[1], shape)?,
        Op::Compare(c) => logic::compare(*c, inputs[0], inputs[1], shape)?,
        Op::Logic(l) => logic::logic(*l, inputs[0], inputs[1], shape)?,
        Op::Not => logic::not(inputs[0])?,
        Op::Where => logic::select(inputs[0], inputs[1], inputs[2], shape)?,
        Op::Softmax { axis } => reduce::softmax(inputs[0], *axis)?,
        Op::MaxPool(p) => pool::pool(p, true, inputs[0], shape)?,
        Op::AveragePool(p) => pool::pool(p, false, inputs[0], shape)?,
        Op::Reduce { op, axes, .. } => reduce::reduce(*op, inputs[0], axes)?,
        Op::BatchNorm { epsilon } => reduce::batch_norm(*epsilon, inputs)?,
        Op::Reshape { .. } => inputs[0].data().clone(),
        Op::Transpose { perm } => shape_ops::transpose(inputs[0], perm)?,
        Op::Concat { axis } => shape_ops::concat(inputs, *axis)?,
        Op::Slice {
            starts,
            steps,
            lens,
        } => shape_ops::slice(inputs[0], starts, steps, lens)?,
        Op::Pad { pads, value } => shape_ops::pad(inputs[0], pads, *value, shape)?,
        Op::Resize(r) => resize::resize(r, inputs[0], shape)?,
        Op::Cast { to } => for_dtype!(*to, T => shape_ops::cast::<T>(inputs[0])),
        Op::Gather { axis } => shape_ops::gather(inputs[0], inputs[1], *axis)?,
        Op::Quantize { q, to } => quant::quantize(inputs[0], *q, *to)?,
        Op::Dequantize { q } => quant::dequantize(inputs[0], *q)?,
        Op::Requantize {
            in_zero_point,
            epi,
            to,
        } => quant::requantize(inputs[0], *in_zero_point, epi, *to)?,
        Op::QConv {
            conv,
            x_zero_point,
            epi,
            to,
        } => quant::qconv(
            conv,
            *x_zero_point,
            epi,
            *to,
            inputs[0],
            inputs[1],
            inputs[2],
            shape,
        )?,
        Op::QGemm {
            a_zero_point,
            epi,
            to,
        } => quant::qgemm(inputs[0], *a_zero_point, inputs[1], inputs[2], epi, *to)?,
        Op::QSoftmax {
            table,
            scale_inv,
            zero_point,
            to,
        } => quant::qsoftmax(inputs[0], table, *scale_inv, *zero_point, *to)?,
        Op::QMatMul {
            a_zero_point,
            b_zero_point,
            epi,
            to,
        } => quant::qmatmul(
            inputs[0],
            inputs[1],
            (*a_zero_point, *b_zero_point),
            epi,
            *to,
            shape,
        )?,
        Op::QAdd {
            a_zero_point,
            a_multiplier,
            b_zero_point,
            b_multiplier,
            epi,
            to,
        } => quant::qadd(
            inputs[0],
            quant::Operand {
                zero_point: *a_zero_point,
                multiplier: *a_multiplier,
            },
            inputs[1],
            quant::Operand {
                zero_point: *b_zero_point,
                multiplier: *b_multiplier,
            },
            epi,
            *to,
            shape,
        )?,
        Op::QMul {
            a_zero_point,
            b_zero_point,
            epi,
            to,
        } => quant::qmul(
            inputs[0],
            *a_zero_point,
            inputs[1],
            *b_zero_point,
            epi,
            *to,
            shape,
        )?,
        Op::QAvgPool {
            pool,
            x_zero_point,
            epi,
        } => quant::qavg_pool(pool, *x_zero_point, epi, inputs[0], shape)?,
        Op::QMean {
            axes,
            x_zero_point,
            epi,
            ..
        } => quant::qmean(inputs[0], axes, *x_zero_point, epi)?,
        Op::Lut { table, to } => quant::lut(inputs[0], table, *to)?,
        Op::MatMulInteger => quant::matmul_integer(inputs, shape)?,
    };
    if data.dtype() != out_ty.dtype {
        return Err(format!(
            "internal: computed {} elements, expected {}",
            data.dtype(),
            out_ty.dtype
        ));
    }
    let n = data.len();
    let t = Tensor::new(out_ty.shape.clone(), data)
        .ok_or_else(|| format!("internal: computed {n} elements for {out_ty}"))?;
    Ok(vec![t])
}

/// Runs a whole graph; `inputs` in graph-input order. Returns the graph
/// outputs in order. Intermediates are dropped after their last use.
pub fn run(g: &Graph, inputs: &[Tensor]) -> Result<Vec<Tensor>, InterpError> {
    run_observed(g, inputs, &mut |_, _| {})
}

/// Like [`run`], and calls `observe` with every value the graph computes
/// (inputs and constants included), in execution order, as soon as it exists.
/// Calibration uses this to record activation ranges.
pub fn run_observed(
    g: &Graph,
    inputs: &[Tensor],
    observe: &mut dyn FnMut(ValueId, &Tensor),
) -> Result<Vec<Tensor>, InterpError> {
    run_seeded(g, inputs, &|_| None, observe)
}

/// Like [`run_observed`], but a node whose every output `known` gives is
/// not evaluated: those tensors stand for its outputs (checked against the
/// types it declares). `--quantize auto` seeds each trial with the values
/// of the nodes it shares with the all-8-bit graph.
pub fn run_seeded<'a>(
    g: &'a Graph,
    inputs: &'a [Tensor],
    known: &dyn Fn(ValueId) -> Option<&'a Tensor>,
    observe: &mut dyn FnMut(ValueId, &Tensor),
) -> Result<Vec<Tensor>, InterpError> {
    let order = g
        .topo_order()
        .map_err(|e| InterpError::Graph(e.to_string()))?;
    if inputs.len() != g.inputs().len() {
        return Err(InterpError::Graph(format!(
            "graph '{}' takes {} inputs, got {}",
            g.name,
            g.inputs().len(),
            inputs.len()
        )));
    }
    let mut last_use: HashMap<ValueId, usize> = HashMap::new();
    for (pos, id) in order.iter().enumerate() {
        for v in g.node(*id).inputs() {
            last_use.insert(*v, pos);
        }
    }
    let graph_outputs: HashSet<ValueId> = g.outputs.iter().map(|o| o.value).collect();
    let mut values: HashMap<ValueId, Cow<'a, Tensor>> = HashMap::new();
    for (pos, &id) in order.iter().enumerate() {
        let n = g.node(id);
        let seeded: Option<Vec<&Tensor>> = (0..n.outputs.len())
            .map(|slot| known(ValueId { node: id, slot }))
            .collect();
        let outs: Vec<Cow<'a, Tensor>> = match &n.op {
            _ if seeded.as_ref().is_some_and(|s| !s.is_empty()) => {
                seeded.into_iter().flatten().map(Cow::Borrowed).collect()
            }
            Op::Input { index } => vec![Cow::Borrowed(graph_input(n, *index, inputs)?)],
            Op::Const { weight } => {
                let t = g.weights().get(weight.0 as usize).ok_or_else(|| {
                    InterpError::Graph(format!("node '{}' reads missing weight {weight}", n.name))
                })?;
                vec![Cow::Borrowed(t)]
            }
            op => {
                let args = n
                    .inputs()
                    .iter()
                    .map(|v| {
                        values.get(v).map(|t| t.as_ref()).ok_or_else(|| {
                            InterpError::Graph(format!(
                                "node '{}' reads value {v:?}, which was not computed",
                                n.name
                            ))
                        })
                    })
                    .collect::<Result<Vec<&Tensor>, _>>()?;
                eval_op(op, &args, &n.outputs)
                    .map_err(|msg| InterpError::Node {
                        node: n.name.clone(),
                        op: op.name(),
                        msg,
                    })?
                    .into_iter()
                    .map(Cow::Owned)
                    .collect()
            }
        };
        let got: Vec<TensorType> = outs.iter().map(|t| t.ty()).collect();
        let same = got.len() == n.outputs.len()
            && got.iter().zip(&n.outputs).all(|(a, b)| a.same_layout(b));
        if !same {
            return Err(InterpError::Node {
                node: n.name.clone(),
                op: n.op.name(),
                msg: format!(
                    "declares outputs {} but produced {}",
                    fmt_types(&n.outputs),
                    fmt_types(&got)
                ),
            });
        }
        for (slot, t) in outs.into_iter().enumerate() {
            let v = ValueId { node: id, slot };
            observe(v, &t);
            if last_use.contains_key(&v) || graph_outputs.contains(&v) {
                values.insert(v, t);
            }
        }
        for v in n.inputs() {
            if last_use.get(v) == Some(&pos) && !graph_outputs.contains(v) {
                values.remove(v);
            }
        }
    }
    g.outputs
        .iter()
        .map(|o| {
            values
                .get(&o.value)
                .map(|t| t.as_ref().clone())
                .ok_or_else(|| {
                    InterpError::Graph(format!("graph output '{}' was not computed", o.name))
                })
        })
        .collect()
}

/// Graph input `index`, checked against the type the `Input` node declares.
fn graph_input<'a>(
    n: &qcc_ir::Node,
    index: usize,
    inputs: &'a [Tensor],
) -> Result<&'a Tensor, InterpError> {
    let err = |msg: String| InterpError::Input {
        index,
        name: n.name.clone(),
        msg,
    };
    let t = inputs
        .get(index)
        .ok_or_else(|| err(format!("missing: only {} inputs given", inputs.len())))?;
    match n.outputs.as_slice() {
        [want] if want.same_layout(&t.ty()) => Ok(t),
        [want] => Err(err(format!("expected {want}, got {}", t.ty()))),
        _ => Err(err("input node must declare exactly one output".into())),
    }
}
