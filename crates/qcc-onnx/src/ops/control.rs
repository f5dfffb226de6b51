//! Control flow: `If` whose condition is known at compile time (a constant,
//! an initializer, a shape computation, or an input baked in with
//! `--const-input`) is replaced by the branch it takes, imported into the
//! same scope (a branch reads outer values by name). A condition computed
//! at run time is refused, saying how to fix it.

use super::R;
use crate::node::NodeCx;
use qcc_ir::TensorData;

pub(super) fn if_(cx: &mut NodeCx) -> R {
    let cond = cx.const_input(0, "cond").map_err(|_| {
        cx.err(format!(
            "the condition '{}' is computed at run time; qcc compiles an If only when it \
             is known (give the graph input it comes from with --const-input NAME=VALUE)",
            cx.input_name(0).unwrap_or_default()
        ))
    })?;
    let Some(cond) = cond else {
        return Err(cx.err("input 'cond' is missing"));
    };
    let taken = match cond.data() {
        TensorData::Bool(v) if v.len() == 1 => v[0],
        _ => return Err(cx.err(format!("the condition must be one bool, got {}", cond.ty()))),
    };
    let which = if taken { "then_branch" } else { "else_branch" };
    let branch = cx
        .attrs
        .get(which)
        .and_then(|a| a.g.as_ref())
        .ok_or_else(|| cx.err(format!("attribute '{which}' is missing or not a graph")))?;
    if branch.output.len() != cx.node.output.len() {
        return Err(cx.err(format!(
            "the {which} has {} outputs for the node's {}",
            branch.output.len(),
            cx.node.output.len()
        )));
    }
    if !branch.input.is_empty() || !branch.initializer.is_empty() {
        return Err(cx.err(format!(
            "the {which} declares inputs or initializers, which an If branch cannot have"
        )));
    }
    crate::import::add_nodes(cx.imp, branch, cx.opset)?;
    branch
        .output
        .iter()
        .map(|o| {
            cx.imp.value(o.name()).ok_or_else(|| {
                cx.err(format!(
                    "the {which} does not compute its output '{}'",
                    o.name()
                ))
            })
        })
        .collect()
}
