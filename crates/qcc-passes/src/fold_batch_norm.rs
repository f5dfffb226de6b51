//! `fold-batch-norm`: folds an inference `BatchNorm` into the `Conv`, `Gemm`
//! or `MatMul` that feeds it, by scaling the weights per output channel and
//! rewriting the bias.
//!
//! Needs: a verified graph. Guarantees: every `BatchNorm` whose input is the
//! only use of a Conv/Gemm/MatMul with constant weights (and constant bias,
//! if any) and whose own parameters are constant is gone; the producer now
//! computes `scale * (y - mean) / sqrt(var + eps) + bias` itself. Other
//! BatchNorms are left alone (the backend handles them).

use crate::{Changed, PassContext, PassError};
use qcc_ir::{Graph, NodeId, Op, Tensor, ValueId};

const PASS: &str = "fold-batch-norm";

/// Per-channel affine form of a batch norm: `y * mul + add`.
struct Affine {
    mul: Vec<f32>,
    add: Vec<f32>,
}

fn affine(g: &Graph, bn: NodeId) -> Option<Affine> {
    let n = g.node(bn);
    let Op::BatchNorm { epsilon } = n.op else {
        return None;
    };
    let p: Option<Vec<&[f32]>> = n.inputs()[1..]
        .iter()
        .map(|v| g.const_value(*v).and_then(Tensor::as_f32))
        .collect();
    let p = p?;
    let (scale, bias, mean, var) = (p[0], p[1], p[2], p[3]);
    let mul: Vec<f32> = (0..scale.len())
        .map(|c| scale[c] / (var[c] + epsilon).sqrt())
        .collect();
    let add = (0..scale.len())
        .map(|c| bias[c] - mean[c] * mul[c])
        .collect();
    Some(Affine { mul, add })
}

/// How the producer's weight and bias are laid out relative to the output channel.
enum Layout {
    /// Weight `[M, …]`: channel is the first axis (Conv, Gemm with trans_b).
    Rows,
    /// Weight `[K, M]`: channel is the last axis (Gemm without trans_b, 2-D MatMul).
    Cols,
}

pub fn run(g: &mut Graph, _cx: &mut PassContext) -> Result<Changed, PassError> {
    let mut changed = false;
    let order = g.topo_order().map_err(|e| PassError::Failed {
        pass: PASS,
        msg: e.to_string(),
    })?;
    for bn in order {
        if !g.contains(bn) || !matches!(g.node(bn).op, Op::BatchNorm { .. }) {
            continue;
        }
        let src = g.node(bn).inputs()[0];
        if g.users(src).len() != 1 || g.is_output(src) {
            continue;
        }
        let prod = g.node(src.node);
        let layout = match &prod.op {
            Op::Conv(_) => Layout::Rows,
            Op::Gemm {
                trans_b: true,
                alpha,
                ..
            } if *alpha == 1.0 => Layout::Rows,
            Op::Gemm {
                trans_b: false,
                alpha,
                ..
            } if *alpha == 1.0 => Layout::Cols,
            Op::MatMul if g.value_type(prod.inputs()[1]).rank() == 2 => Layout::Cols,
            _ => continue,
        };
        // BatchNorm normalizes axis 1: for Gemm/MatMul that is the last axis only when the output is 2-D.
        if !matches!(prod.op, Op::Conv(_)) && g.value_type(src).rank() != 2 {
            continue;
        }
        let Some(aff) = affine(g, bn) else { continue };
        let w_in = prod.inputs()[1];
        let Some(w) = g.const_value(w_in).and_then(|t| t.as_f32().map(|d| (t, d))) else {
            continue;
        };
        let channels = aff.mul.len();
        let (w_t, w) = w;
        let shape = w_t.shape().to_vec();
        let mut new_w = w.to_vec();
        match layout {
            Layout::Rows => {
                let per = w.len() / channels;
                for (c, chunk) in new_w.chunks_mut(per).enumerate() {
                    chunk.iter_mut().for_each(|x| *x *= aff.mul[c]);
                }
            }
            Layout::Cols => {
                for (i, x) in new_w.iter_mut().enumerate() {
                    *x *= aff.mul[i % channels];
                }
            }
        }
        // Old bias, per channel (Gemm's C must be [M] or [1,M] or a scalar to fold).
        let beta = match prod.op {
            Op::Gemm { beta, .. } => beta,
            _ => 1.0,
        };
        let old_bias: Vec<f32> = match prod.inputs().get(2) {
            None => vec![0.0; channels],
            Some(b) => {
                let Some(t) = g.const_value(*b) else { continue };
                let Some(d) = t.as_f32() else { continue };
                match d.len() {
                    1 => vec![d[0] * beta; channels],
                    n if n == channels && t.shape().iter().rev().skip(1).all(|&s| s == 1) => {
                        d.iter().map(|x| x * beta).collect()
                    }
                    _ => continue,
                }
            }
        };
        let new_b: Vec<f32> = (0..channels)
            .map(|c| old_bias[c] * aff.mul[c] + aff.add[c])
            .collect();

        let prod_id = src.node;
        let name = g.node(prod_id).name.clone();
        let w_node = g.add_const(
            format!("{name}/folded_w"),
            Tensor::from_f32(shape, new_w).expect("same element count"),
        );
        let b_node = g.add_const(
            format!("{name}/folded_b"),
            Tensor::from_f32(vec![channels], new_b).expect("one per channel"),
        );
        let new_op = match g.node(prod_id).op.clone() {
            Op::Gemm {
                alpha,
                trans_a,
                trans_b,
                ..
            } => Op::Gemm {
                alpha,
                beta: 1.0,
                trans_a,
                trans_b,
            },
            Op::MatMul => Op::Gemm {
                alpha: 1.0,
                beta: 1.0,
                trans_a: false,
                trans_b: false,
            },
            op => op,
        };
        let a = g.node(prod_id).inputs()[0];
        let fused = g
            .add_node(
                new_op,
                name,
                vec![a, ValueId::of(w_node), ValueId::of(b_node)],
            )
            .map_err(|e| PassError::Failed {
                pass: PASS,
                msg: e.to_string(),
            })?;
        g.replace_all_uses(ValueId::of(bn), ValueId::of(fused));
        changed = true;
    }
    if changed {
        g.remove_dead_nodes();
        g.prune_weights();
    }
    Ok(changed)
}
