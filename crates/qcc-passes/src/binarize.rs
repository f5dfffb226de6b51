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
//! for its other readers (and goes when it has none).
//!
//! Needs: `constant-fold` first (weights stored as int8 behind a Cast are
//! float constants then). Guarantees: no MatMul or such Gemm reads a Sign
//! with ±1 constant weights; the graph computes the same values.

use crate::{Changed, PassContext, PassError};
use qcc_ir::{DType, Graph, NodeId, Op, Tensor, UnaryOp, ValueId};

const PASS: &str = "binarize";

fn fail(e: impl std::fmt::Display) -> PassError {
    PassError::internal(PASS, e)
}

pub fn run(g: &mut Graph, _cx: &mut PassContext) -> Result<Changed, PassError> {
    let mut changed = false;
    for id in g.topo_order().map_err(fail)? {
        if let Some((u, w)) = matches(g, id) {
            // The weights as `[K, N]`: the constant itself, or its transpose.
            let w = match w {
                Weights::AsIs(v) => v,
                Weights::Transposed(t) => {
                    ValueId::of(g.add_const(format!("{}/w", g.node(id).name), t))
                }
            };
            g.node_mut(id).op = Op::SignMatMul;
            g.set_input(id, 0, u);
            g.set_input(id, 1, w);
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
    /// The layer's constant, already `[K, N]`.
    AsIs(ValueId),
    /// A `[N, K]` constant (Gemm's `trans_b`), transposed.
    Transposed(Tensor),
}

/// `(u, w)` when node `id` is a binary layer: `Sign(u)` times `w`.
fn matches(g: &Graph, id: NodeId) -> Option<(ValueId, Weights)> {
    let n = g.node(id);
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
    let s = g.node(a.node);
    if s.op != Op::Unary(UnaryOp::Sign) || n.outputs[0].dtype != DType::F32 {
        return None;
    }
    let w = g.const_value(b)?;
    let (&[r, c], Some(v)) = (w.shape(), w.as_f32()) else {
        return None;
    };
    let (k, nn) = if trans_b { (c, r) } else { (r, c) };
    let u = s.inputs()[0];
    let urank = g.value_type(u).rank();
    if k == 0
        || k > qcc_ir::SIGN_MATMUL_MAX_K
        || urank < 1
        || (urank == 1 && !matches!(n.op, Op::MatMul))
    {
        return None;
    }
    if v.iter().any(|&x| x != 1.0 && x != -1.0) {
        return None;
    }
    if !trans_b {
        return Some((u, Weights::AsIs(b)));
    }
    let t: Vec<f32> = (0..k * nn).map(|i| v[(i % nn) * k + i / nn]).collect();
    Some((u, Weights::Transposed(Tensor::from_f32(vec![k, nn], t)?)))
}
