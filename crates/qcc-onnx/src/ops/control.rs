//! Control flow: `If`. When its condition is known at compile time (a
//! constant, an initializer, a shape computation, or an input baked in with
//! `--const-input`) the node is replaced by the branch it takes, imported
//! into the same scope (a branch reads outer values by name). When the
//! condition is computed at run time, both branches are imported (each in
//! its own scope: their inner names do not leak into each other) and every
//! output becomes `Where(cond, then, else)`; the two branches must then
//! compute outputs of one type and static shape. Both run on every call:
//! no kernel has side effects, so running the one not taken only costs time.

use super::R;
use crate::node::NodeCx;
use crate::proto::GraphProto;
use qcc_ir::{DType, Op, TensorData, ValueId};

/// Branch `which` of the node, checked against the node's outputs.
fn branch<'m>(cx: &NodeCx<'_, 'm>, which: &str) -> Result<&'m GraphProto, crate::error::Problem> {
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
    Ok(branch)
}

/// Imports branch `which` into the current scope; its outputs' values.
fn import_branch(cx: &mut NodeCx, which: &str) -> R {
    let g = branch(cx, which)?;
    crate::import::add_nodes(cx.imp, g, cx.opset)?;
    g.output
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

pub(super) fn if_(cx: &mut NodeCx) -> R {
    let Some(cond_v) = cx.opt_input(0)? else {
        return Err(cx.err("input 'cond' is missing"));
    };
    let Ok(Some(cond)) = cx.const_input(0, "cond") else {
        return select(cx, cond_v);
    };
    let taken = match cond.data() {
        TensorData::Bool(v) if v.len() == 1 => v[0],
        _ => return Err(cx.err(format!("the condition must be one bool, got {}", cond.ty()))),
    };
    import_branch(cx, if taken { "then_branch" } else { "else_branch" })
}

/// A condition computed at run time: both branches, then a `Where` per output.
fn select(cx: &mut NodeCx, cond: ValueId) -> R {
    let ct = cx.ty(cond);
    if ct.dtype != DType::Bool || ct.numel() != 1 {
        return Err(cx.err(format!("the condition must be one bool, got {ct}")));
    }
    // What the branches hold that qcc cannot compile, every problem named
    // with the branch it is in (the importer lists the rest after this one).
    let name = cx.name.clone();
    if let Some(p) = crate::import::subgraph_problems(cx.node, &name, cx.opset)
        .into_iter()
        .next()
    {
        return Err(p);
    }
    let mut taken = vec![];
    for which in ["then_branch", "else_branch"] {
        let scope = cx.imp.scope();
        let outs = import_branch(cx, which);
        cx.imp.set_scope(scope);
        taken.push(outs?);
    }
    let c = cx.add_aux("cond", Op::Reshape { shape: vec![] }, vec![cond])?;
    let names: Vec<String> = branch(cx, "then_branch")?
        .output
        .iter()
        .map(|o| o.name().to_string())
        .collect();
    let mut outs = vec![];
    for (j, (&t, &e)) in taken[0].iter().zip(&taken[1]).enumerate() {
        let (tt, et) = (cx.ty(t), cx.ty(e));
        if tt != et {
            return Err(cx.err(format!(
                "output #{j} ('{}') is {tt} in the then_branch and {et} in the else_branch; \
                 selecting at run time needs one type and shape",
                names[j]
            )));
        }
        outs.push(cx.add_aux(&format!("select{j}"), Op::Where, vec![c, t, e])?);
    }
    Ok(outs)
}
