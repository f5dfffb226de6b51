//! `fold-qdq`: compiles a model that arrives quantized in the QDQ form
//! (ONNX Runtime's `quantize_static`, PyTorch and NNCF exporters) to integer
//! kernels, honouring the scales and zero points it carries.
//!
//! The importer leaves such a model as its float simulation: run-time
//! `QuantizeLinear` / `DequantizeLinear` are the IR's `Quantize` /
//! `Dequantize`, and a constant int8 weight or int32 bias behind a
//! `DequantizeLinear` is `Cast(q) · scale` (per tensor or per axis), so its
//! integers and scales are still visible here. This pass then rewrites each
//! pattern `Dequantize → op [→ Relu | Clip] → Quantize` whose kernel exists:
//! - Conv with an int8 weight → `QConv`; Gemm (`alpha`, no `trans_a`,
//!   `beta` = 1) and MatMul with an int8 constant B → `QGemm` (a MatMul with
//!   an A of rank > 2 reads it through i8 reshapes; an Add of a constant
//!   bias after the MatMul, a PyTorch Linear, becomes the QGemm's bias). A
//!   uint8 weight whose zero point leaves 9-bit values is split into two
//!   int8 halves, the layer reading its input twice along K (`Halves`). A weight with zero
//!   points (uint8, as ONNX Runtime's U8U8 writes it) folds to the
//!   integers `q − zp` (else, past 9 bits, the layer stays float); the bias, int32 behind its own scale or float, becomes i32 at
//!   `s_x·s_w[m]`; the epilogue factor is `s_x·s_w[m]/s_y` and the
//!   activation is the epilogue's clamp.
//! - MatMul of two dequantized run-time values (attention's products) →
//!   `QMatMul`.
//! - Add, Sub, Mul of two dequantized values → `QAdd` / `QMul` (the same
//!   operand multipliers as `insert-qdq`'s).
//! - ReduceMean (GlobalAveragePool) → `QMean`.
//! - MaxPool, Reshape, Transpose, Slice whose output is quantized with the
//!   input's own parameters → the same op on the 8-bit values (exact).
//!
//! A uint8 activation whose every reader is a `Dequantize` becomes int8 first
//! (same scale, zero point − 128: the same real values), so every kernel
//! reads and writes int8; a Reshape (Flatten) between a `Dequantize` and the
//! Gemms or MatMuls it feeds moves before it, onto the int8 values. Whatever matches no pattern, or could overflow its
//! i32 accumulator, stays float, as the model's own float simulation;
//! integer results differ from that simulation by at most one step of the
//! output's scale (the fixed-point rescale rounds once, where the float
//! simulation rounds its float sum).
//!
//! Needs: an imported graph (it runs first: `constant-fold` would compute
//! the weights' floats). Guarantees: every value a new kernel produces has
//! the `Quantize` parameters it replaces in its type; the float nodes it
//! bypassed are removed.

use crate::context::Requantize;
use crate::context::ScaleFormat;
use crate::quantize::lut::{self, clamp_bounds};
use crate::quantize::params;
use crate::quantize::weights::{check_accumulator, Layout};
use crate::{Changed, PassContext, PassError};
use qcc_ir::{
    infer, BinaryOp, DType, Epilogue, Graph, NodeId, Op, QParams, ReduceOp, Rescale, Tensor,
    TensorData, UnaryOp, ValueId,
};

const PASS: &str = "fold-qdq";

fn fail(msg: String) -> PassError {
    PassError::Failed { pass: PASS, msg }
}

pub fn run(g: &mut Graph, cx: &mut PassContext) -> Result<Changed, PassError> {
    let mut changed = to_signed(g);
    changed |= sink_dequantize(g).map_err(|e| fail(e.to_string()))?;
    let order = g.topo_order().map_err(|e| fail(e.to_string()))?;
    for id in order {
        if g.contains(id) {
            changed |= fold(g, id, cx.requantize)?;
        }
    }
    if changed {
        g.remove_dead_nodes();
        g.prune_weights();
    }
    Ok(changed)
}

/// Turns each uint8 `Quantize` read only by `Dequantize`s into int8, also
/// through ops that only move values (Reshape, Transpose, Slice, MaxPool:
/// they commute with the −128 shift) between them.
fn to_signed(g: &mut Graph) -> bool {
    let mut changed = false;
    for id in g.node_ids() {
        let Op::Quantize { q, to: DType::U8 } = g.node(id).op else {
            continue;
        };
        let Some((movers, dqs)) = only_dequantized(g, ValueId::of(id), q) else {
            continue;
        };
        let s = QParams {
            scale: q.scale,
            zero_point: q.zero_point - 128,
        };
        let n = g.node_mut(id);
        n.op = Op::Quantize {
            q: s,
            to: DType::I8,
        };
        for m in std::iter::once(id).chain(movers) {
            g.node_mut(m).outputs[0].dtype = DType::I8;
            g.set_quant(ValueId::of(m), Some(s));
        }
        for u in dqs {
            g.node_mut(u).op = Op::Dequantize { q: s };
        }
        changed = true;
    }
    changed
}

/// The value-moving nodes between uint8 `v` and the `Dequantize`s (with
/// `q`) that read it, and those; `None` when anything else reads it, or a
/// graph output is among them.
fn only_dequantized(g: &Graph, v: ValueId, q: QParams) -> Option<(Vec<NodeId>, Vec<NodeId>)> {
    let (mut movers, mut dqs, mut todo) = (vec![], vec![], vec![v]);
    while let Some(v) = todo.pop() {
        let users = g.users(v);
        if users.is_empty() || g.is_output(v) {
            return None;
        }
        for (u, _) in users {
            match &g.node(u).op {
                Op::Dequantize { q: d } if *d == q => dqs.push(u),
                Op::Reshape { .. } | Op::Transpose { .. } | Op::Slice { .. } | Op::MaxPool(_) => {
                    movers.push(u);
                    todo.push(ValueId::of(u));
                }
                _ => return None,
            }
        }
    }
    dqs.dedup();
    Some((movers, dqs))
}

/// `Reshape(Dequantize(x))` read only as the A of Gemms and MatMuls (a
/// Flatten between a quantized activation and the classifier) becomes
/// `Dequantize(Reshape(x))`: the same values (a reshape moves them, and the
/// parameters are per tensor), and then the Gemm's pattern matches.
fn sink_dequantize(g: &mut Graph) -> Result<bool, qcc_ir::IrError> {
    let mut changed = false;
    for id in g.node_ids() {
        let n = g.node(id);
        let Op::Reshape { .. } = n.op else { continue };
        let Some((x, q)) = dequantized(g, n.inputs()[0]) else {
            continue;
        };
        let v = ValueId::of(id);
        let users = g.users(v);
        let gemms = users
            .iter()
            .all(|&(u, slot)| slot == 0 && matches!(g.node(u).op, Op::Gemm { .. } | Op::MatMul));
        if users.is_empty() || !gemms || g.is_output(v) {
            continue;
        }
        let (op, name) = (n.op.clone(), n.name.clone());
        let r = g.add_node(op, format!("{name}/int8"), vec![x])?;
        let dq = g.add_node(
            Op::Dequantize { q },
            format!("{name}/dequantize"),
            vec![ValueId::of(r)],
        )?;
        g.replace_all_uses(v, ValueId::of(dq));
        changed = true;
    }
    Ok(changed)
}

/// `v` as `Dequantize(x)` of an int8 `x`: `x` and its parameters.
fn dequantized(g: &Graph, v: ValueId) -> Option<(ValueId, QParams)> {
    let n = g.node(v.node);
    match n.op {
        Op::Dequantize { q } if g.value_type(n.inputs()[0]).dtype == DType::I8 => {
            Some((n.inputs()[0], q))
        }
        _ => None,
    }
}

/// `v` as the per-tensor dequantization of an 8-bit constant: the constant
/// as int8 (uint8 shifted by −128, with its zero point) and its parameters.
fn dequantized_const(g: &Graph, v: ValueId) -> Option<(Tensor, QParams)> {
    let c = scaled(g, v)?;
    if c.scales.len() != 1 || c.zero.len() != 1 {
        return None;
    }
    let (data, zero_point) = match &c.data {
        TensorData::I8(d) => (d.clone(), c.zero[0]),
        TensorData::U8(d) => (
            d.iter().map(|&x| (x as i32 - 128) as i8).collect(),
            c.zero[0] - 128,
        ),
        _ => return None,
    };
    let q = QParams {
        scale: c.scales[0],
        zero_point,
    };
    Some((Tensor::new(c.shape, TensorData::I8(data))?, q))
}

/// The one node reading `v` (not a graph output).
/// When `v` (a MatMul's `[…, N]` output) is only read by an Add of a
/// constant f32 bias of N values (`[N]` or `[1, N]`): the Add and the bias.
fn matmul_bias(g: &Graph, v: ValueId) -> Option<(NodeId, ValueId)> {
    let u = sole_user(g, v)?;
    let add = g.node(u);
    if add.op != Op::Binary(BinaryOp::Add) {
        return None;
    }
    let b = if add.inputs()[0] == v {
        add.inputs()[1]
    } else {
        add.inputs()[0]
    };
    let n = *g.value_type(v).shape.last()?;
    let t = g.const_value(b)?;
    let ok = t.as_f32().is_some()
        && (t.shape() == [n] || t.shape() == [1, n])
        && add.outputs[0].shape == g.value_type(v).shape;
    ok.then_some((u, b))
}

fn sole_user(g: &Graph, v: ValueId) -> Option<NodeId> {
    match g.users(v).as_slice() {
        [(u, _)] if !g.is_output(v) => Some(*u),
        _ => None,
    }
}

/// Where `v` is quantized, possibly through a Relu or Clip: the `Quantize`
/// node, its parameters in int8 (uint8's zero point − 128) and the
/// activation.
fn requantized(g: &Graph, v: ValueId) -> Option<(NodeId, QParams, Option<UnaryOp>)> {
    let mut u = sole_user(g, v)?;
    let mut act = None;
    if let Op::Unary(a @ (UnaryOp::Relu | UnaryOp::Clip { .. })) = g.node(u).op {
        act = Some(a);
        u = sole_user(g, ValueId::of(u))?;
    }
    match g.node(u).op {
        Op::Quantize { q, to: DType::I8 } => Some((u, q, act)),
        // Written as int8, then shifted (`finish`).
        Op::Quantize { q, to: DType::U8 } => Some((
            u,
            QParams {
                scale: q.scale,
                zero_point: q.zero_point - 128,
            },
            act,
        )),
        _ => None,
    }
}

/// An integer constant behind `Cast(q) · scale`.
struct Scaled {
    data: TensorData,
    shape: Vec<usize>,
    /// One scale, or one per index of `axis`.
    scales: Vec<f32>,
    /// One zero point, or one per index of `axis`.
    zero: Vec<i32>,
    axis: Option<usize>,
}

impl Scaled {
    fn scale(&self, i: usize) -> f32 {
        if self.scales.len() == 1 {
            self.scales[0]
        } else {
            self.scales[i]
        }
    }

    fn zero(&self, i: usize) -> i32 {
        self.zero[i.min(self.zero.len() - 1)]
    }
}

fn scaled(g: &Graph, v: ValueId) -> Option<Scaled> {
    let n = g.node(v.node);
    if n.op != Op::Binary(BinaryOp::Mul) {
        return None;
    }
    let (mut a, s) = (n.inputs()[0], n.inputs()[1]);
    let mut zero = vec![0];
    let centered = g.node(a.node);
    if centered.op == Op::Binary(BinaryOp::Sub) {
        let z = g.const_value(centered.inputs()[1])?.as_f32()?;
        zero = z.iter().map(|&z| z as i32).collect();
        a = centered.inputs()[0];
    }
    let cast = g.node(a.node);
    if !matches!(cast.op, Op::Cast { to: DType::F32 }) {
        return None;
    }
    let q = g.const_value(cast.inputs()[0])?;
    let s = g.const_value(s)?;
    let scales = s.as_f32()?.to_vec();
    if zero.len() != 1 && zero.len() != scales.len() {
        return None;
    }
    let axis = if scales.len() == 1 {
        None
    } else {
        let big: Vec<usize> = (0..s.shape().len())
            .filter(|&i| s.shape()[i] != 1)
            .collect();
        match big.as_slice() {
            [i] if s.shape().len() == q.shape().len() && s.shape()[*i] == q.shape()[*i] => Some(*i),
            _ => return None,
        }
    };
    Some(Scaled {
        data: q.data().clone(),
        shape: q.shape().to_vec(),
        scales,
        zero,
        axis,
    })
}

/// A weight as int8: its values, or two int8 halves `a + b` of them when
/// some need 9 bits (a uint8 weight whose zero point is far from 128: ONNX
/// Runtime's per-tensor U8U8 writes 105…139). With halves the layer reads
/// its input twice (concatenated along K) against `[a | b]`: the same exact
/// integer sum, twice the work, no kernel that needs a weight zero point.
#[derive(Clone, Debug, PartialEq)]
struct Halves {
    a: Vec<i8>,
    b: Option<Vec<i8>>,
}

impl Halves {
    /// `v` within int8, or as `clamp(v, -128, 127)` plus the rest (within
    /// int8 for every `v` in -256..=254); `None` past that.
    fn of(v: &[i32]) -> Option<Halves> {
        if let Some(a) = v.iter().map(|&x| i8::try_from(x).ok()).collect() {
            return Some(Halves { a, b: None });
        }
        let a: Vec<i8> = v.iter().map(|&x| x.clamp(-128, 127) as i8).collect();
        let b = v
            .iter()
            .zip(&a)
            .map(|(&x, &h)| i8::try_from(x - h as i32).ok())
            .collect::<Option<Vec<i8>>>()?;
        Some(Halves { a, b: Some(b) })
    }

    /// Both halves through `f` (a transposition).
    fn map(self, f: impl Fn(&[i8]) -> Vec<i8>) -> Halves {
        Halves {
            a: f(&self.a),
            b: self.b.as_deref().map(f),
        }
    }

    /// The weight the layer reads: `a`, or `rows` rows of `a` then of `b`
    /// per block of `block` values (a conv's output channel, or all of a
    /// GEMM's `[K, N]`).
    fn joined(&self, block: usize) -> Vec<i8> {
        let Some(b) = &self.b else {
            return self.a.clone();
        };
        let block = block.max(1);
        self.a
            .chunks(block)
            .zip(b.chunks(block))
            .flat_map(|(x, y)| x.iter().chain(y).copied())
            .collect()
    }
}

/// An 8-bit weight whose channels run along `axis` (a per-tensor scale is
/// repeated): its values less their zero points, as int8 [`Halves`], and
/// one scale per channel. The real weight is `scale · (q - zero_point)`, so
/// a uint8 weight (ONNX Runtime's U8U8) or an int8 one with a zero point is
/// exact as the integers `q - zero_point`; `None` when one of them needs
/// more than [`Halves`] holds (the layer stays float).
fn weight(g: &Graph, v: ValueId, axis: usize) -> Option<(Halves, Vec<f32>)> {
    let w = scaled(g, v)?;
    if w.axis.is_some_and(|a| a != axis) || axis >= w.shape.len() {
        return None;
    }
    let q: Vec<i32> = match &w.data {
        TensorData::I8(d) => d.iter().map(|&x| x as i32).collect(),
        TensorData::U8(d) => d.iter().map(|&x| x as i32).collect(),
        _ => return None,
    };
    let (dim, inner) = (w.shape[axis], w.shape[axis + 1..].iter().product::<usize>());
    let data: Vec<i32> = q
        .iter()
        .enumerate()
        .map(|(i, &x)| x - w.zero(i / inner.max(1) % dim.max(1)))
        .collect();
    let scales = (0..dim).map(|m| w.scale(m)).collect();
    Some((Halves::of(&data)?, scales))
}

/// The bias `v` (`channels` values, or one) as i32 at the accumulator's
/// scales `acc[m]`: an int32 constant behind its own scale, or floats.
fn bias(g: &Graph, v: Option<ValueId>, acc: &[f64]) -> Option<Vec<i32>> {
    let Some(v) = v else {
        return Some(vec![0; acc.len()]);
    };
    let reals: Vec<f64> = match scaled(g, v) {
        Some(b) => {
            let TensorData::I32(q) = &b.data else {
                return None;
            };
            q.iter()
                .enumerate()
                .map(|(i, &q)| (q as f64 - b.zero(i) as f64) * b.scale(i) as f64)
                .collect()
        }
        None => g
            .const_value(v)?
            .as_f32()?
            .iter()
            .map(|&x| x as f64)
            .collect(),
    };
    if reals.len() != acc.len() && reals.len() != 1 {
        return None;
    }
    acc.iter()
        .enumerate()
        .map(|(m, &s)| {
            let r = (reals[m.min(reals.len() - 1)] / s).round();
            (r.abs() <= i32::MAX as f64).then_some(r as i32)
        })
        .collect()
}

/// The epilogue writing int8 with parameters `qy` from accumulators whose
/// real value is `acc[m]` per unit, clamped by `act`.
fn epilogue(acc: &[f64], qy: QParams, act: Option<UnaryOp>) -> Option<Epilogue> {
    let reals: Vec<f64> = acc.iter().map(|a| a / qy.scale as f64).collect();
    let rescale = params::rescale_per_channel(&reals, ScaleFormat::FixedPoint)?;
    let (min, max) = match act {
        Some(u) => clamp_bounds(&u, qy)?,
        None => (-128, 127),
    };
    Some(Epilogue {
        rescale,
        zero_point: qy.zero_point,
        min,
        max,
    })
}

/// The epilogue of a Conv/Gemm/MatMul with input scale `s_x` (times the
/// Gemm's `alpha`) and weight scales `s_w` writing `qy`, clamped by `act`:
/// the float form with ONNX Runtime's factors `(s_x · s_w[m]) / s_y`
/// computed in f32 (as its QLinearConv, QLinearMatMul and QGemm do), or the
/// fixed-point one.
fn layer_epilogue(
    mode: Requantize,
    (s_x, s_w): (f32, &[f32]),
    qy: QParams,
    act: Option<UnaryOp>,
) -> Option<Epilogue> {
    match mode {
        Requantize::FixedPoint => {
            let acc: Vec<f64> = s_w.iter().map(|&s| s_x as f64 * s as f64).collect();
            epilogue(&acc, qy, act)
        }
        Requantize::Float => {
            let scales: Vec<f32> = s_w.iter().map(|&s| (s_x * s) / qy.scale).collect();
            let (min, max) = match act {
                Some(u) => clamp_bounds(&u, qy)?,
                None => (-128, 127),
            };
            Some(Epilogue {
                rescale: Rescale::float(&scales)?,
                zero_point: qy.zero_point,
                min,
                max,
            })
        }
    }
}

/// Adds `op` reading `inputs` with output parameters `q`, in place of the
/// `Quantize` node `quantize`.
fn replace(
    g: &mut Graph,
    quantize: NodeId,
    op: Op,
    name: String,
    inputs: Vec<ValueId>,
    q: QParams,
) -> Result<(), PassError> {
    let v = add_q(g, op, name, inputs, q)?;
    finish(g, quantize, v)
}

/// Adds `op` reading `inputs`, its output typed with parameters `q`.
fn add_q(
    g: &mut Graph,
    op: Op,
    name: String,
    inputs: Vec<ValueId>,
    q: QParams,
) -> Result<ValueId, PassError> {
    let v = ValueId::of(
        g.add_node(op, name, inputs)
            .map_err(|e| fail(format!("internal: {e}")))?,
    );
    g.set_quant(v, Some(q));
    Ok(v)
}

/// Makes the readers of `Quantize` node `quantize` read the int8 `v`
/// instead; a uint8 `Quantize` gets `v` shifted by +128 (an exact
/// `Requantize`).
fn finish(g: &mut Graph, quantize: NodeId, v: ValueId) -> Result<(), PassError> {
    let mut out = v;
    if let Op::Quantize { q, to: DType::U8 } = g.node(quantize).op {
        let shift = Op::Requantize {
            in_zero_point: q.zero_point - 128,
            epi: Epilogue {
                rescale: Rescale::uniform(1, 0),
                zero_point: q.zero_point,
                min: 0,
                max: 255,
            },
            to: DType::U8,
        };
        let name = format!("{}/uint8", g.node(quantize).name);
        out = add_q(g, shift, name, vec![v], q)?;
    }
    g.replace_all_uses(ValueId::of(quantize), out);
    Ok(())
}

/// The model's weight scales (one, or one per channel) as the weight
/// constant's per-channel parameters along `axis` (`channels` of them; the
/// zero point is folded into the integers).
fn per_channel(axis: usize, scales: &[f32], channels: usize, bits: u32) -> qcc_ir::AxisQuant {
    qcc_ir::AxisQuant {
        axis,
        scales: (0..channels)
            .map(|c| scales[c.min(scales.len() - 1)])
            .collect(),
        zero_points: vec![0],
        bits,
    }
}

/// The width of a folded kernel's int8 weights in its type: the fewest
/// bits that hold them (a model's int4 weights, QONNX's narrow `Quant`,
/// or int8 weights that happen to fit, which codegen then stores two or
/// four to a byte).
fn weight_bits(w: &[i8]) -> u32 {
    qcc_ir::AxisQuant::bits_for(w.iter().map(|&x| x.into()), true)
}

fn constant(
    g: &mut Graph,
    name: String,
    shape: Vec<usize>,
    data: TensorData,
) -> Result<ValueId, PassError> {
    let t = Tensor::new(shape, data).ok_or_else(|| fail(format!("internal: shape of {name}")))?;
    Ok(ValueId::of(g.add_const(name, t)))
}

fn fold(g: &mut Graph, id: NodeId, mode: Requantize) -> Result<bool, PassError> {
    let n = g.node(id).clone();
    let ins = n.inputs().to_vec();
    let out = ValueId::of(id);
    if n.outputs.len() != 1 || ins.is_empty() {
        return Ok(false);
    }
    let Some((xq, qx)) = dequantized(g, ins[0]) else {
        return Ok(false);
    };
    // A MatMul by a constant weight then the Add of a constant bias (a
    // PyTorch Linear, as Brevitas and QONNX exports write it): the bias is
    // the QGemm's, and what is quantized is the Add's output.
    let linear_bias = match &n.op {
        Op::MatMul if dequantized(g, ins[1]).is_none() => matmul_bias(g, out),
        _ => None,
    };
    let q_at = linear_bias.map_or(out, |(add, _)| ValueId::of(add));
    let Some((qnode, qy, act)) = requantized(g, q_at) else {
        return Ok(false);
    };
    let name = n.name.clone();
    match &n.op {
        Op::Conv(conv) => {
            let Some((halves, sw)) = weight(g, ins[1], 0) else {
                return Ok(false);
            };
            let mut w_shape = g.value_type(ins[1]).shape.clone();
            let twice = halves.b.is_some();
            let per_oc = w_shape[1..].iter().product::<usize>();
            let w = halves.joined(per_oc);
            let acc: Vec<f64> = sw.iter().map(|&s| qx.scale as f64 * s as f64).collect();
            let Some(b) = bias(g, ins.get(2).copied(), &acc) else {
                return Ok(false);
            };
            let Some(epi) = layer_epilogue(mode, (qx.scale, &sw), qy, act) else {
                return Ok(false);
            };
            if check_accumulator(&w, &b, acc.len(), Layout::Rows).is_err() {
                return Ok(false);
            }
            let mut x_in = xq;
            if twice {
                // Both halves: each group's input channels twice, weights
                // `[a | b]` per output channel.
                w_shape[1] *= 2;
                let xs = g.value_type(xq).shape.clone();
                let groups = conv.group.max(1);
                let mut split = vec![xs[0], groups, xs[1] / groups];
                split.extend_from_slice(&xs[2..]);
                let mut joined = xs.clone();
                joined[1] *= 2;
                let r = Op::Reshape { shape: split };
                let x5 = add_q(g, r, format!("{name}/input_groups"), vec![xq], qx)?;
                let cat = Op::Concat { axis: 2 };
                let x5 = add_q(g, cat, format!("{name}/input_twice"), vec![x5, x5], qx)?;
                let r = Op::Reshape { shape: joined };
                x_in = add_q(g, r, format!("{name}/input_both"), vec![x5], qx)?;
            }
            let bits = weight_bits(&w);
            let wc = constant(g, format!("{name}/weight_q"), w_shape, TensorData::I8(w))?;
            g.set_axis_quant(wc, Some(per_channel(0, &sw, acc.len(), bits)));
            let bc = constant(
                g,
                format!("{name}/bias_q"),
                vec![acc.len()],
                TensorData::I32(b),
            )?;
            let op = Op::QConv {
                conv: conv.clone(),
                x_zero_point: qx.zero_point,
                epi,
                to: DType::I8,
            };
            replace(g, qnode, op, name, vec![x_in, wc, bc], qy)?;
        }
        Op::Gemm {
            alpha,
            beta,
            trans_a: false,
            trans_b,
        } if *beta == 1.0 || ins.len() < 3 => {
            let bs = g.value_type(ins[1]).shape.clone();
            let axis = if *trans_b { 0 } else { 1 };
            let Some((w, sw)) = weight(g, ins[1], axis) else {
                return Ok(false);
            };
            let (k, cols) = (bs[1 - axis], bs[axis]);
            let w = if *trans_b {
                w.map(|w| {
                    (0..k * cols)
                        .map(|i| w[(i % cols) * k + i / cols])
                        .collect()
                })
            } else {
                w
            };
            let s_a = qx.scale as f64 * *alpha as f64;
            let acc: Vec<f64> = sw.iter().map(|&s| s_a * s as f64).collect();
            let Some(epi) = layer_epilogue(mode, (*alpha * qx.scale, &sw), qy, act) else {
                return Ok(false);
            };
            // The weight's part of the product is `alpha · s_w`.
            let sw = sw.iter().map(|&s| *alpha * s).collect();
            if !gemm(
                g,
                &ins,
                qnode,
                (xq, qx, qy, epi),
                (w, k, acc, sw),
                None,
                name,
            )? {
                return Ok(false);
            }
        }
        Op::MatMul if dequantized(g, ins[1]).is_some() => {
            // Two run-time operands (attention's Q·Kᵀ, P·V): QMatMul.
            let Some((bq, qb)) = dequantized(g, ins[1]) else {
                return Ok(false);
            };
            let Some(epi) = layer_epilogue(mode, (qx.scale, &[qb.scale]), qy, act) else {
                return Ok(false);
            };
            let op = Op::QMatMul {
                a_zero_point: qx.zero_point,
                b_zero_point: qb.zero_point,
                epi,
                to: DType::I8,
            };
            let (a, b) = (g.value_type(xq).clone(), g.value_type(bq).clone());
            if infer(&op, &[&a, &b]).is_err() {
                return Ok(false);
            }
            replace(g, qnode, op, name, vec![xq, bq], qy)?;
        }
        Op::MatMul => {
            let bs = g.value_type(ins[1]).shape.clone();
            if bs.len() != 2 {
                return Ok(false);
            }
            let Some((w, sw)) = weight(g, ins[1], 1) else {
                return Ok(false);
            };
            let acc: Vec<f64> = sw.iter().map(|&s| qx.scale as f64 * s as f64).collect();
            let Some(epi) = layer_epilogue(mode, (qx.scale, &sw), qy, act) else {
                return Ok(false);
            };
            let a_shape = g.value_type(ins[0]).shape.clone();
            let post = (a_shape.len() != 2).then(|| n.outputs[0].shape.clone());
            let mut ins = vec![ins[0], ins[1]];
            ins.extend(linear_bias.map(|(_, b)| b));
            if !gemm(
                g,
                &ins,
                qnode,
                (xq, qx, qy, epi),
                (w, bs[0], acc, sw),
                post,
                name,
            )? {
                return Ok(false);
            }
        }
        Op::Binary(op @ (BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul)) => {
            let (bq, qb) = match dequantized(g, ins[1]) {
                Some(b) => b,
                None => match dequantized_const(g, ins[1]) {
                    Some((t, q)) => (ValueId::of(g.add_const(format!("{name}/b_q"), t)), q),
                    None => return Ok(false),
                },
            };
            let (sa, sb) = (qx.scale as f64, qb.scale as f64);
            let (muls, numer) = match op {
                BinaryOp::Mul => (None, sa * sb),
                _ => {
                    let (am, bm, numer) = params::add_operands(sa, sb, *op == BinaryOp::Sub);
                    (Some((am, bm)), numer)
                }
            };
            let epi = match (muls, mode) {
                // ONNX Runtime's QLinearMul: `f32(acc) · ((s_a · s_b) / s_y)`
                // plus the zero point, then rounded.
                (None, Requantize::Float) => layer_epilogue(mode, (qx.scale, &[qb.scale]), qy, act)
                    .map(|mut e| {
                        if let Some(f) = e.rescale.float.as_mut() {
                            f.zero_point_first = true;
                        }
                        e
                    }),
                _ => epilogue(&[numer], qy, act),
            };
            let Some(epi) = epi else {
                return Ok(false);
            };
            let op = match muls {
                Some((a_multiplier, b_multiplier)) => Op::QAdd {
                    a_zero_point: qx.zero_point,
                    a_multiplier,
                    b_zero_point: qb.zero_point,
                    b_multiplier,
                    epi,
                    to: DType::I8,
                },
                None => Op::QMul {
                    a_zero_point: qx.zero_point,
                    b_zero_point: qb.zero_point,
                    epi,
                    to: DType::I8,
                },
            };
            replace(g, qnode, op, name, vec![xq, bq], qy)?;
        }
        Op::Reduce {
            op: ReduceOp::Mean,
            axes,
            keepdims,
        } if act.is_none() => {
            let x_shape = &g.value_type(ins[0]).shape;
            let count: usize = axes.iter().map(|&a| x_shape[a]).product();
            if count == 0 || 255 * count as u128 > i32::MAX as u128 {
                return Ok(false);
            }
            // ONNX Runtime's QLinearGlobalAveragePool (x86):
            // `f32(acc) · (s_x / (s_y · f32(count)))`.
            let epi =
                match mode {
                    Requantize::Float => Rescale::float(&[qx.scale / (qy.scale * count as f32)])
                        .map(|rescale| Epilogue {
                            rescale,
                            zero_point: qy.zero_point,
                            min: -128,
                            max: 127,
                        }),
                    Requantize::FixedPoint => epilogue(&[qx.scale as f64 / count as f64], qy, None),
                };
            let Some(epi) = epi else {
                return Ok(false);
            };
            let op = Op::QMean {
                axes: axes.clone(),
                keepdims: *keepdims,
                x_zero_point: qx.zero_point,
                epi,
            };
            replace(g, qnode, op, name, vec![xq], qy)?;
        }
        Op::AveragePool(pool) if act.is_none() => {
            let count: usize = pool.kernel.iter().product();
            let Some(epi) = epilogue(&[qx.scale as f64 / count as f64], qy, None) else {
                return Ok(false);
            };
            let op = Op::QAvgPool {
                pool: pool.clone(),
                x_zero_point: qx.zero_point,
                epi,
            };
            // Windows that do not all count `count` cells have no integer kernel.
            let x = g.value_type(xq).clone();
            if count == 0 || 255 * count as u128 > i32::MAX as u128 || infer(&op, &[&x]).is_err() {
                return Ok(false);
            }
            replace(g, qnode, op, name, vec![xq], qy)?;
        }
        Op::Unary(u) => {
            let Ok(mut table) = lut::table(*u, qx, qy) else {
                return Ok(false);
            };
            if let Some(a) = act {
                let Some((lo, hi)) = clamp_bounds(&a, qy) else {
                    return Ok(false);
                };
                table.iter_mut().for_each(|t| *t = (*t).clamp(lo, hi));
            }
            let op = Op::Lut {
                table,
                to: DType::I8,
            };
            replace(g, qnode, op, name, vec![xq], qy)?;
        }
        Op::Concat { axis } if act.is_none() => {
            let parts: Option<Vec<(ValueId, QParams)>> =
                ins.iter().map(|&v| dequantized(g, v)).collect();
            let Some(parts) = parts else {
                return Ok(false);
            };
            let mut xs = vec![];
            for (i, (x, q)) in parts.into_iter().enumerate() {
                if q == qy {
                    xs.push(x);
                    continue;
                }
                let r = match mode {
                    // ONNX Runtime's QLinearConcat: a table of Q(DQ(i)).
                    Requantize::Float => Op::Lut {
                        table: lut::requantize_table(q, qy),
                        to: DType::I8,
                    },
                    Requantize::FixedPoint => {
                        let Some(epi) = epilogue(&[q.scale as f64], qy, None) else {
                            return Ok(false);
                        };
                        Op::Requantize {
                            in_zero_point: q.zero_point,
                            epi,
                            to: DType::I8,
                        }
                    }
                };
                let r = g
                    .add_node(r, format!("{name}/input{i}"), vec![x])
                    .map_err(|e| fail(format!("internal: {e}")))?;
                g.set_quant(ValueId::of(r), Some(qy));
                xs.push(ValueId::of(r));
            }
            replace(g, qnode, Op::Concat { axis: *axis }, name, xs, qy)?;
        }
        Op::MaxPool(_) | Op::Reshape { .. } | Op::Transpose { .. } | Op::Slice { .. }
            if act.is_none() && qy == qx =>
        {
            replace(g, qnode, n.op.clone(), name, vec![xq], qy)?;
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// Builds a `QGemm` from A (`ins[0]`, dequantized from int8 with `qx`),
/// the `[k, n]` int8 weight `w` with accumulator scales `acc` and the bias
/// `ins[2]`, written with `qy` by the epilogue `epi` in place of `qnode`; an
/// A of rank > 2 goes through i8 reshapes to 2-D and back to `post`.
/// The QGemm of `xq` (`[…, k]`) by the `[k, cols]` weight halves `w` (with
/// two halves, A is read twice along K against `[a; b]`).
fn gemm(
    g: &mut Graph,
    ins: &[ValueId],
    qnode: NodeId,
    (xq, qx, qy, epi): (ValueId, QParams, QParams, Epilogue),
    (w, k, acc, scales): (Halves, usize, Vec<f64>, Vec<f32>),
    post: Option<Vec<usize>>,
    name: String,
) -> Result<bool, PassError> {
    let cols = acc.len();
    let twice = w.b.is_some();
    let w = w.joined(k * cols);
    let k_w = if twice { 2 * k } else { k };
    if let Some(c) = ins.get(2) {
        let t = g.value_type(*c);
        if t.numel() != 1 && t.shape.last() != Some(&cols) {
            return Ok(false);
        }
    }
    let Some(b) = bias(g, ins.get(2).copied(), &acc) else {
        return Ok(false);
    };
    if check_accumulator(&w, &b, cols, Layout::Cols).is_err() {
        return Ok(false);
    }
    let mut a = xq;
    let bits = weight_bits(&w);
    let wc = constant(
        g,
        format!("{name}/weight_q"),
        vec![k_w, cols],
        TensorData::I8(w),
    )?;
    g.set_axis_quant(wc, Some(per_channel(1, &scales, cols, bits)));
    let bc = constant(g, format!("{name}/bias_q"), vec![cols], TensorData::I32(b))?;
    if post.is_some() {
        let rows = g.value_type(a).numel() / k.max(1);
        let r = Op::Reshape {
            shape: vec![rows, k],
        };
        a = ValueId::of(
            g.add_node(r, format!("{name}/input0"), vec![a])
                .map_err(|e| fail(format!("internal: {e}")))?,
        );
    }
    if twice {
        let cat = Op::Concat { axis: 1 };
        a = add_q(g, cat, format!("{name}/input_twice"), vec![a, a], qx)?;
    }
    let op = Op::QGemm {
        a_zero_point: qx.zero_point,
        epi,
        to: DType::I8,
    };
    let mut y = add_q(g, op, name.clone(), vec![a, wc, bc], qy)?;
    if let Some(shape) = post {
        y = add_q(
            g,
            Op::Reshape { shape },
            format!("{name}/reshape"),
            vec![y],
            qy,
        )?;
    }
    finish(g, qnode, y)?;
    Ok(true)
}
