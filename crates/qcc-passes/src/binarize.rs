//! `binarize`: a binary layer of a trained binary network, exported as
//! float ONNX (`Sign` of the previous layer, then a `MatMul` or `Conv` by
//! weights that are all -1 or +1), becomes one `SignMatMul` or `SignConv`:
//! the weights are kept as bits and the products counted with popcount
//! (`qcc-codegen`'s `kernels/binary.rs`), the same integers the float
//! product computes exactly (every sum has magnitude at most K < 2^24).
//!
//! The patterns: `MatMul(Sign(u), w)`, or `Gemm` with alpha 1, no bias and
//! no transposed A, with w a constant f32 `[K, N]` (a transposed B is
//! transposed here) holding only ±1 and `K ≤` [`qcc_ir::SIGN_MATMUL_MAX_K`];
//! `Conv(Sign(u), w)`, 2-D, one group, no bias, w `[OC, C, KH, KW]` of ±1.
//! The input may also be signs moved by a MaxPool, Reshape or Transpose
//! (still their own signs: the layer reads them directly). The `Sign` stays
//! for its other readers (and goes when it has none). QONNX's bipolar form
//! is read too: `Where(u ≥ 0, 1, -1)` (times a scale s) by weights ±α
//! (`BipolarQuant` of weights, folded), and weights may be ±α per output
//! channel (XNOR-Net), with s and every α powers of two so the float product
//! is exact: the binary layer by w/α, then `· s·α` (per channel).
//!
//!
//! Then a binary layer whose count reaches a `Sign` (or the next binary
//! layer, which signs its input itself) only through per-channel `+ k`,
//! `- k`, `k - x`, `· k`, `/ k` links (a batch norm, α, a bias; each value
//! read by the next link alone) takes them as integer thresholds, BNN's
//! folded batch norm (`qcc_ir::SignStep`): every link is monotone, so the
//! float chain, evaluated here on the counts with the interpreter's f32
//! arithmetic, changes sign at two counts found by binary search over
//! `[-K, K]`; the layer then outputs the signs itself, exactly the values
//! the chain and `Sign` gave.
//!
//! Needs: `constant-fold` first (weights stored as int8 behind a Cast are
//! float constants then). Guarantees: no MatMul, such Gemm or such Conv
//! reads a sign with ±1 (±α) constant weights, no such chain from a binary
//! layer reaches a Sign; the graph computes the same values.

use crate::{Changed, PassContext, PassError};
use qcc_ir::{BinaryOp, CompareOp, ConvAttrs, DType, Graph, NodeId, Op, Tensor, UnaryOp, ValueId};

const PASS: &str = "binarize";

fn fail(e: impl std::fmt::Display) -> PassError {
    PassError::internal(PASS, e)
}

pub fn run(g: &mut Graph, _cx: &mut PassContext) -> Result<Changed, PassError> {
    let mut changed = false;
    for id in g.topo_order().map_err(fail)? {
        if let Some(Layer {
            u,
            bipolar,
            w,
            factor,
            conv,
        }) = matches(g, id)
        {
            let name = g.node(id).name.clone();
            // The weights as `[K, N]` of ±1: the constant itself, or a new one.
            let w = match w {
                Weights::AsIs(v) => v,
                Weights::New(t) => ValueId::of(g.add_const(format!("{name}/w"), t)),
            };
            g.node_mut(id).op = match conv {
                Some(conv) => Op::SignConv {
                    conv,
                    bipolar,
                    step: None,
                },
                None => Op::SignMatMul {
                    bipolar,
                    step: None,
                },
            };
            g.set_input(id, 0, u);
            g.set_input(id, 1, w);
            if factor.iter().any(|&f| f != 1.0) {
                // ±s·(±α) products: the count times s·α (α per output
                // channel: along axis 1 of a convolution's output, the last
                // of a product's).
                let out = ValueId::of(id);
                let shape = match (factor.len(), g.node(id).op.clone()) {
                    (1, _) => vec![],
                    (n, Op::SignConv { .. }) => vec![1, n, 1, 1],
                    (n, _) => vec![n],
                };
                let f = Tensor::from_f32(shape, factor).ok_or_else(|| fail("factor"))?;
                let fc = ValueId::of(g.add_const(format!("{name}/factor"), f));
                let m = g
                    .add_node(
                        Op::Binary(BinaryOp::Mul),
                        format!("{name}/scaled"),
                        vec![out, fc],
                    )
                    .map_err(fail)?;
                g.replace_all_uses(out, ValueId::of(m));
                g.set_input(m, 0, out); // the scaling reads the count itself
            }
            changed = true;
        }
    }
    // Then each binary layer's per-channel chain into a Sign (its batch
    // norm, α, bias) as integer thresholds (once the Signs the layers now
    // read through are gone, so each link's only reader is the next).
    if g.remove_dead_nodes() > 0 {
        changed = true;
    }
    for id in g.topo_order().map_err(fail)? {
        if let Some((step, end)) = threshold(g, id) {
            match &mut g.node_mut(id).op {
                Op::SignConv { step: s, .. } | Op::SignMatMul { step: s, .. } => {
                    *s = Some(Box::new(step))
                }
                _ => continue,
            }
            match end {
                End::Sign(sign) => g.replace_all_uses(sign, ValueId::of(id)),
                // Signs of signs: the next layer reads these directly.
                End::Layer(next) => g.set_input(next, 0, ValueId::of(id)),
            }
            changed = true;
        }
    }
    if changed {
        g.remove_dead_nodes();
        g.prune_weights();
    }
    Ok(changed)
}

/// One link of the float chain from a binary layer's count to a Sign:
/// `x + k`, `x - k`, `k - x`, `x · k`, `x / k` with `k` per output channel.
#[derive(Clone, Copy)]
enum Link {
    Add,
    Sub,
    SubFrom,
    Mul,
    Div,
}

impl Link {
    fn eval(self, x: f32, k: f32) -> f32 {
        match self {
            Link::Add => x + k,
            Link::Sub => x - k,
            Link::SubFrom => k - x,
            Link::Mul => x * k,
            Link::Div => x / k,
        }
    }

    /// +1 when the link keeps the order of its input, -1 when it reverses
    /// it, 0 when it is constant.
    fn direction(self, k: f32) -> i32 {
        match self {
            Link::Add | Link::Sub => 1,
            Link::SubFrom => -1,
            Link::Mul | Link::Div if k > 0.0 => 1,
            Link::Mul | Link::Div if k < 0.0 => -1,
            Link::Mul => 0,
            Link::Div => 2, // x / 0: not monotone in the way needed
        }
    }
}

/// Where a binary layer's per-channel chain ends.
enum End {
    /// A `Sign`, whose readers read the layer instead.
    Sign(ValueId),
    /// The next binary layer, which takes the sign of what it reads itself.
    Layer(NodeId),
}

/// The thresholds of binary layer `id` and where they end, when its count
/// reaches a `Sign` (or the input of the next binary layer) only through
/// per-channel links (each value read by the next link alone and no graph
/// output), every link finite and monotone over the counts' range
/// `[-K, K]`.
fn threshold(g: &Graph, id: NodeId) -> Option<(qcc_ir::SignStep, End)> {
    let n = g.node(id);
    let out = n.outputs.first()?;
    let ws = &g.value_type(*n.inputs().get(1)?).shape;
    let k_max = match &n.op {
        Op::SignConv { step: None, .. } => ws.iter().skip(1).product::<usize>(),
        Op::SignMatMul { step: None, .. } => *ws.first()?,
        _ => return None,
    };
    let axis = qcc_ir::SignStep::axis(&n.op, out.shape.len())?;
    let ch = *out.shape.get(axis)?;
    let rank = out.shape.len();
    // Follow the chain.
    let mut links: Vec<(Link, Vec<f32>)> = vec![];
    let mut v = ValueId::of(id);
    let sign = loop {
        let users = g.users(v);
        if users.len() != 1 || g.is_output(v) {
            return None;
        }
        let (u, slot) = users[0];
        let un = g.node(u);
        if un.op == Op::Unary(UnaryOp::Sign) {
            break End::Sign(ValueId::of(u));
        }
        if slot == 0 && matches!(un.op, Op::SignConv { .. } | Op::SignMatMul { .. }) {
            break End::Layer(u);
        }
        let Op::Binary(b) = &un.op else { return None };
        let other = un.inputs()[1 - slot];
        let link = match (b, slot) {
            (BinaryOp::Add, _) => Link::Add,
            (BinaryOp::Mul, _) => Link::Mul,
            (BinaryOp::Sub, 0) => Link::Sub,
            (BinaryOp::Sub, _) => Link::SubFrom,
            (BinaryOp::Div, 0) => Link::Div,
            _ => return None,
        };
        // The constant: one value, or one per channel along `axis` of
        // this value's shape (right-aligned, every other extent 1).
        let t = g.const_value(other)?;
        let kv = t.as_f32()?;
        let ks = t.shape();
        if ks.len() > rank || un.outputs[0].shape != out.shape {
            return None;
        }
        let per = (0..ks.len()).all(|i| {
            let d = ks[ks.len() - 1 - i];
            d == 1 || (rank - 1 - i == axis && d == ch)
        });
        if !per || kv.iter().any(|k| !k.is_finite()) {
            return None;
        }
        let k: Vec<f32> = (0..ch)
            .map(|o| kv[if kv.len() == 1 { 0 } else { o }])
            .collect();
        links.push((link, k));
        v = ValueId::of(u);
    };
    if links.is_empty() {
        return None;
    }
    let k_max = i64::try_from(k_max).ok()?;
    let mut step = qcc_ir::SignStep {
        flip: vec![],
        zero: vec![],
        pos: vec![],
    };
    for o in 0..ch {
        let f = |c: i64| links.iter().fold(c as f32, |x, (l, k)| l.eval(x, k[o]));
        // Monotone and finite over [-K, K]: every link's direction known,
        // every intermediate finite at both ends (so everywhere between).
        let mut dir = 1;
        let (mut lo, mut hi) = (-k_max as f32, k_max as f32);
        for (l, k) in &links {
            let d = l.direction(k[o]);
            if d == 2 {
                return None;
            }
            dir *= d;
            (lo, hi) = (l.eval(lo, k[o]), l.eval(hi, k[o]));
            if !(lo.is_finite() && hi.is_finite()) {
                return None;
            }
        }
        let flip = dir < 0;
        // g(m) = f(±m) does not decrease in m: the first m with g ≥ 0 and
        // with g > 0 (K + 1 when none).
        let gm = |m: i64| f(if flip { -m } else { m });
        let first = |pred: &dyn Fn(f32) -> bool| {
            let (mut a, mut b) = (-k_max, k_max + 1);
            while a < b {
                let mid = a + (b - a) / 2;
                if pred(gm(mid)) {
                    b = mid;
                } else {
                    a = mid + 1;
                }
            }
            a
        };
        let zero = first(&|y| y >= 0.0);
        let pos = first(&|y| y > 0.0);
        step.flip.push(flip);
        step.zero.push(i32::try_from(zero).ok()?);
        step.pos.push(i32::try_from(pos).ok()?);
    }
    Some((step, sign))
}

/// A binary layer's ±1 weights as `[K, N]`.
enum Weights {
    /// The layer's constant, already `[K, N]` of ±1.
    AsIs(ValueId),
    /// A new `[K, N]` constant: a transposed one (Gemm's `trans_b`), or ±α
    /// weights divided by α.
    New(Tensor),
}

/// What node `id` computes when it is a binary layer: `sign(u) · w ·
/// factor`, with the ONNX Sign or QONNX's bipolar one.
struct Layer {
    u: ValueId,
    bipolar: bool,
    w: Weights,
    /// `s·α`: one, or one per output channel.
    factor: Vec<f32>,
    /// A convolution's attributes (`SignConv`), or `None` (`SignMatMul`).
    conv: Option<ConvAttrs>,
}

/// `Some(s)` when every value of `v` is `s` times its own sign (-s, 0, +s
/// or NaN; s > 0): a `Sign` (s = 1), the bipolar `Where(u ≥ 0, 1, -1)`,
/// such values times a positive scalar (QONNX's `BipolarQuant` scale), or
/// moved by a MaxPool (a binary CNN pools its signs), Reshape or Transpose.
fn sign_valued(g: &Graph, v: ValueId) -> Option<f32> {
    let n = g.node(v.node);
    match &n.op {
        Op::Unary(UnaryOp::Sign) => Some(1.0),
        Op::Where => matches!(sign_of(g, v), Some((_, true, _))).then_some(1.0),
        Op::Binary(BinaryOp::Mul) => {
            let s = g.const_scalar(n.inputs()[1])?;
            let t = sign_valued(g, n.inputs()[0])?;
            (s.is_finite() && s > 0.0).then_some(s * t)
        }
        Op::MaxPool(_) | Op::Reshape { .. } | Op::Transpose { .. } => sign_valued(g, n.inputs()[0]),
        _ => None,
    }
}

/// `(u, bipolar, s)` when `a` is a sign of `u`: `Sign(u)` (s = 1), or QONNX's
/// bipolar `Where(u ≥ 0, 1, -1)`, possibly times a positive scalar s.
fn sign_of(g: &Graph, a: ValueId) -> Option<(ValueId, bool, f32)> {
    let n = g.node(a.node);
    match &n.op {
        Op::Unary(UnaryOp::Sign) => Some((n.inputs()[0], false, 1.0)),
        Op::Where => {
            let [c, p, m] = [n.inputs()[0], n.inputs()[1], n.inputs()[2]];
            let ge = g.node(c.node);
            let at_zero = ge.op == Op::Compare(CompareOp::GreaterOrEqual)
                && g.const_scalar(ge.inputs()[1]) == Some(0.0);
            (at_zero && g.const_scalar(p) == Some(1.0) && g.const_scalar(m) == Some(-1.0))
                .then(|| (ge.inputs()[0], true, 1.0))
        }
        Op::Binary(BinaryOp::Mul) => {
            let (x, s) = (n.inputs()[0], g.const_scalar(n.inputs()[1])?);
            let (u, bipolar, t) = sign_of(g, x)?;
            (s.is_finite() && s > 0.0 && t == 1.0).then_some((u, bipolar, s))
        }
        _ => None,
    }
}

/// Node `id` as a binary layer, if it is one.
fn matches(g: &Graph, id: NodeId) -> Option<Layer> {
    let n = g.node(id);
    if let Op::Conv(c) = &n.op {
        return conv_layer(g, id, c);
    }
    let trans_b = match n.op {
        Op::MatMul => false,
        Op::Gemm {
            alpha,
            trans_a: false,
            trans_b,
            ..
        } if alpha == 1.0 && n.inputs().len() == 2 => trans_b,
        _ => return None,
    };
    let (a, b) = (n.inputs()[0], n.inputs()[1]);
    if n.outputs[0].dtype != DType::F32 {
        return None;
    }
    let (u, bipolar, s) = sign_input(g, a)?;
    let w = g.const_value(b)?;
    let (&[r, c], Some(v)) = (w.shape(), w.as_f32()) else {
        return None;
    };
    let (k, nn) = if trans_b { (c, r) } else { (r, c) };
    let urank = g.value_type(u).rank();
    if k == 0
        || k > qcc_ir::SIGN_MATMUL_MAX_K
        || urank < 1
        || (urank == 1 && !matches!(n.op, Op::MatMul))
    {
        return None;
    }
    // Weights ±α per column (α = 1 for ONNX Sign layers; powers of two keep
    // the product exact: the float MatMul's sums of ±s·α are then exact too).
    let at = |i: usize| {
        if trans_b {
            v[(i % nn) * k + i / nn]
        } else {
            v[i]
        }
    };
    let alpha = plus_minus(k * nn, nn, |i| (at(i), i % nn), s)?;
    let factor = scaled_by(&alpha, s);
    if !trans_b && alpha.iter().all(|&a| a == 1.0) {
        return Some(Layer {
            u,
            bipolar,
            w: Weights::AsIs(b),
            factor,
            conv: None,
        });
    }
    let t: Vec<f32> = (0..k * nn).map(|i| at(i) / alpha[i % nn]).collect();
    let w = Weights::New(Tensor::from_f32(vec![k, nn], t)?);
    Some(Layer {
        u,
        bipolar,
        w,
        factor,
        conv: None,
    })
}

/// The sign a binary layer reads at `a`: [`sign_of`], or `a` itself when its
/// values are their own signs times s ([`sign_valued`]).
fn sign_input(g: &Graph, a: ValueId) -> Option<(ValueId, bool, f32)> {
    sign_of(g, a).or_else(|| sign_valued(g, a).map(|s| (a, false, s)))
}

/// `α[c]` per output channel when the `len` weights (`weight(i)` gives the
/// i-th and its channel, of `channels`) are all ±α[c] (α = 1 for ONNX Sign
/// layers; every α and the input's scale `s` powers of two otherwise, so the
/// float sums of ±s·α products are exact too; XNOR-Net's per-channel α).
fn plus_minus(
    len: usize,
    channels: usize,
    weight: impl Fn(usize) -> (f32, usize),
    s: f32,
) -> Option<Vec<f32>> {
    let mut alpha = vec![f32::NAN; channels];
    for i in 0..len {
        let (x, c) = weight(i);
        if alpha[c].is_nan() {
            alpha[c] = x.abs();
        }
        if x != alpha[c] && x != -alpha[c] {
            return None;
        }
    }
    let pow2 = qcc_ir::quant::is_power_of_two;
    let plain = s == 1.0 && alpha.iter().all(|&a| a == 1.0);
    (plain || (pow2(s) && alpha.iter().all(|&a| pow2(a)))).then_some(alpha)
}

/// `s·α`, one value when every channel has the same α.
fn scaled_by(alpha: &[f32], s: f32) -> Vec<f32> {
    if alpha.iter().all(|&a| a == alpha[0]) {
        vec![s * alpha[0]]
    } else {
        alpha.iter().map(|a| s * a).collect()
    }
}

/// A Conv (2-D, one group, no bias) reading a sign by ±α weights: the
/// [`Op::SignConv`] layer.
fn conv_layer(g: &Graph, id: NodeId, c: &ConvAttrs) -> Option<Layer> {
    let n = g.node(id);
    if n.inputs().len() != 2 || c.group != 1 || n.outputs[0].dtype != DType::F32 {
        return None;
    }
    let (a, b) = (n.inputs()[0], n.inputs()[1]);
    let (u, bipolar, s) = sign_input(g, a)?;
    let w = g.const_value(b)?;
    let (&[_, ci, kh, kw], Some(v)) = (w.shape(), w.as_f32()) else {
        return None;
    };
    let taps = kh * kw;
    if g.value_type(u).rank() != 4
        || ci * taps == 0
        || ci * taps > qcc_ir::SIGN_MATMUL_MAX_K
        || taps > qcc_ir::SIGN_CONV_MAX_TAPS
    {
        return None;
    }
    let per = ci * taps;
    let alpha = plus_minus(v.len(), w.shape()[0], |i| (v[i], i / per), s)?;
    let w = if alpha.iter().all(|&a| a == 1.0) {
        Weights::AsIs(b)
    } else {
        let t = v
            .iter()
            .enumerate()
            .map(|(i, x)| x / alpha[i / per])
            .collect();
        Weights::New(Tensor::from_f32(w.shape().to_vec(), t)?)
    };
    Some(Layer {
        u,
        bipolar,
        w,
        factor: scaled_by(&alpha, s),
        conv: Some(c.clone()),
    })
}
