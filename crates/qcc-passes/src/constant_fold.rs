//! `constant-fold`: evaluates every node whose inputs are all constants with
//! the reference interpreter and replaces it by a `Const`; then removes dead
//! nodes and unreferenced weights. A node whose operands and results
//! together pass `FOLD_MAX_BYTES` stays: it runs in the compiled code, so a
//! hostile model cannot make compilation allocate gigabytes or compute for
//! hours.
//!
//! Needs: a verified graph. Guarantees: no node other than `Input`/`Const`
//! has only constant inputs, unless its tensors pass `FOLD_MAX_BYTES`; every
//! node contributes to a graph output.

use crate::{Changed, PassContext, PassError};
use qcc_ir::{Graph, Op, ValueId};

/// Largest total of operand and result bytes of one folded node.
pub const FOLD_MAX_BYTES: usize = 64 << 20;

pub fn run(g: &mut Graph, _cx: &mut PassContext) -> Result<Changed, PassError> {
    let mut changed = false;
    let order = g.topo_order().map_err(|e| PassError::Failed {
        pass: "constant-fold",
        msg: e.to_string(),
    })?;
    for id in order {
        let n = g.node(id);
        if matches!(n.op, Op::Input { .. } | Op::Const { .. }) || n.inputs().is_empty() {
            continue;
        }
        let consts: Option<Vec<_>> = n.inputs().iter().map(|v| g.const_value(*v)).collect();
        let Some(consts) = consts else { continue };
        let bytes = consts
            .iter()
            .map(|t| t.ty().byte_size())
            .chain(
                n.outputs
                    .iter()
                    .map(|t| t.numel().saturating_mul(t.dtype.size())),
            )
            .fold(0usize, usize::saturating_add);
        if bytes > FOLD_MAX_BYTES {
            continue;
        }
        let outs =
            qcc_interp::eval_op(&n.op, &consts, &n.outputs).map_err(|msg| PassError::Failed {
                pass: "constant-fold",
                msg: format!("node '{}' ({}): {msg}", n.name, n.op.name()),
            })?;
        let name = n.name.clone();
        for (slot, t) in outs.into_iter().enumerate() {
            let c = g.add_const(name.clone(), t);
            g.replace_all_uses(ValueId { node: id, slot }, ValueId::of(c));
        }
        changed = true;
    }
    changed |= g.remove_dead_nodes() > 0;
    g.prune_weights();
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use qcc_ir::{BinaryOp, Tensor};

    /// `c + c` of a constant `c` of `n × n` floats.
    fn doubled(n: usize) -> Graph {
        let mut g = Graph::new("t");
        let c = g.add_const("c", Tensor::from_f32(vec![n, n], vec![1.0; n * n]).unwrap());
        let s = g
            .add_node(
                Op::Binary(BinaryOp::Add),
                "add",
                vec![ValueId::of(c), ValueId::of(c)],
            )
            .unwrap();
        g.add_output("y", ValueId::of(s));
        g
    }

    #[test]
    fn small_nodes_fold_and_large_ones_stay() {
        let mut cx = PassContext::default();
        // 2 × 4 MiB in, 4 MiB out: folded.
        let mut g = doubled(1024);
        assert!(run(&mut g, &mut cx).unwrap());
        let out = g.outputs[0].value;
        assert_eq!(g.const_value(out).unwrap().as_f32().unwrap()[0], 2.0);
        // 2 × 32 MiB in, 32 MiB out: past FOLD_MAX_BYTES, left to run.
        let mut g = doubled(2896);
        assert!(!run(&mut g, &mut cx).unwrap());
        let out = g.outputs[0].value;
        assert_eq!(g.node(out.node).op.name(), "add");
    }
}
