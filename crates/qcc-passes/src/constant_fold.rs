//! `constant-fold`: evaluates every node whose inputs are all constants with
//! the reference interpreter and replaces it by a `Const`; then removes dead
//! nodes and unreferenced weights.
//!
//! Needs: a verified graph. Guarantees: no node other than `Input`/`Const`
//! has only constant inputs; every node contributes to a graph output.

use crate::{Changed, PassContext, PassError};
use qcc_ir::{Graph, Op, ValueId};

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
