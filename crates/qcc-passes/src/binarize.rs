//! `binarize`: a binary layer of a trained binary network, exported as
//! float ONNX (`Sign` of the previous layer, then a `MatMul` by weights that
//! are all -1 or +1), becomes one `SignMatMul`: the weights are kept as
//! bits and the products counted with popcount (`qcc-codegen`'s
//! `kernels/binary.rs`), the same integers the float product computes
//! exactly (every sum has magnitude at most K < 2^24).
//!
//! The pattern: `MatMul(Sign(u), w)`, or `Gemm` with alpha 1, no bias and
//! no transposed A, with w a constant f32 `[K, N]` (a transposed B is
//! transposed here) holding only ±1 and `K ≤` [`qcc_ir::SIGN_MATMUL_MAX_K`]. The `Sign` stays
//! for its other readers (and goes when it has none). QONNX's bipolar form
//! is read too: `Where(u ≥ 0, 1, -1)` (times a scale s) by weights ±α
//! (`BipolarQuant` of weights, folded), with s and α powers of two so the
//! float product is exact: a bipolar `SignMatMul` by w/α, then `· s·α`.
//!
//! Needs: `constant-fold` first (weights stored as int8 behind a Cast are
//! float constants then). Guarantees: no MatMul or such Gemm reads a Sign
//! with ±1 constant weights; the graph computes the same values.

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
                Some(conv) => Op::SignConv { conv, bipolar },
                None => Op::SignMatMul { bipolar },
            };
            g.set_input(id, 0, u);
            g.set_input(id, 1, w);
            if factor != 1.0 {
                // ±s·(±α) products: the count times s·α.
                let out = ValueId::of(id);
                let f = Tensor::from_f32(vec![], vec![factor]).ok_or_else(|| fail("scalar"))?;
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
    if changed {
        g.remove_dead_nodes();
        g.prune_weights();
    }
    Ok(changed)
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
    factor: f32,
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
    // Weights ±α (α = 1 for ONNX Sign layers; a power of two keeps the
    // product exact: the float MatMul's sums of ±s·α are then exact too).
    let alpha = plus_minus(v, s)?;
    let factor = s * alpha;
    if !trans_b && alpha == 1.0 {
        return Some(Layer {
            u,
            bipolar,
            w: Weights::AsIs(b),
            factor,
            conv: None,
        });
    }
    let t: Vec<f32> = (0..k * nn)
        .map(|i| if trans_b { v[(i % nn) * k + i / nn] } else { v[i] } / alpha)
        .collect();
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

/// α when the weights `v` are all ±α (α = 1 for ONNX Sign layers; α and the
/// input's scale `s` powers of two otherwise, so the float sums of ±s·α
/// products are exact too).
fn plus_minus(v: &[f32], s: f32) -> Option<f32> {
    let alpha = v.first()?.abs();
    let pow2 = qcc_ir::quant::is_power_of_two;
    let scaled = alpha != 1.0 || s != 1.0;
    (!v.iter().any(|&x| x != alpha && x != -alpha) && (!scaled || (pow2(alpha) && pow2(s))))
        .then_some(alpha)
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
    let alpha = plus_minus(v, s)?;
    let w = if alpha == 1.0 {
        Weights::AsIs(b)
    } else {
        let t = v.iter().map(|x| x / alpha).collect();
        Weights::New(Tensor::from_f32(w.shape().to_vec(), t)?)
    };
    Some(Layer {
        u,
        bipolar,
        w,
        factor: s * alpha,
        conv: Some(c.clone()),
    })
}
