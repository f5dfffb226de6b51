//! `binarize`: a binary layer of a trained binary network, exported as
//! float ONNX (`Sign` of the previous layer, then a `MatMul` by weights that
//! are all -1 or +1), becomes one `SignMatMul`: the weights are kept as
//! bits and the products counted with popcount (`qcc-codegen`'s
//! `kernels/binary.rs`), the same integers the float product computes
//! exactly (every sum has magnitude at most K < 2^24).
//!
//! The pattern: `MatMul(Sign(u), w)`, or `Gemm` with alpha 1, no bias and
//! no transposed A, with w a constant f32 `[K, N]` (a transposed B is
//! transposed here) holding only ±1 and `K ≤` [`MAX_K`]. The `Sign` stays
//! for its other readers (and goes when it has none).
//!
//! Needs: `constant-fold` first (weights stored as int8 behind a Cast are
//! float constants then). Guarantees: no MatMul or such Gemm reads a Sign
//! with ±1 constant weights; the graph computes the same values.

use crate::{Changed, PassContext, PassError};
use qcc_ir::{DType, Graph, NodeId, Op, Tensor, UnaryOp};

const PASS: &str = "binarize";

/// Largest K the binary kernel takes (its two masks of a row are on the stack).
pub const MAX_K: usize = 1 << 16;

fn fail(e: impl std::fmt::Display) -> PassError {
    PassError::internal(PASS, e)
}

pub fn run(g: &mut Graph, _cx: &mut PassContext) -> Result<Changed, PassError> {
    let mut changed = false;
    for id in g.topo_order().map_err(fail)? {
        if let Some((u, w)) = matches(g, id) {
            let wv = g.add_const(format!("{}/bits", g.node(id).name), w);
            g.node_mut(id).op = Op::SignMatMul;
            let keep = g.node(id).inputs().len();
            g.set_input(id, 0, u);
            g.set_input(id, 1, qcc_ir::ValueId::of(wv));
            if keep > 2 {
                return Err(fail("a Gemm with a bias matched"));
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

/// `(u, w [K, N])` when node `id` is a binary layer.
fn matches(g: &Graph, id: NodeId) -> Option<(qcc_ir::ValueId, Tensor)> {
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
    if k == 0 || k > MAX_K || urank < 1 || (urank == 1 && !matches!(n.op, Op::MatMul)) {
        return None;
    }
    if v.iter().any(|&x| x != 1.0 && x != -1.0) {
        return None;
    }
    let data: Vec<f32> = if trans_b {
        (0..k * nn).map(|i| v[(i % nn) * k + i / nn]).collect()
    } else {
        v.to_vec()
    };
    Some((u, Tensor::from_f32(vec![k, nn], data)?))
}
