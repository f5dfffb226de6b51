//! ReduceMean / ReduceMax / ReduceSum: axes come from an attribute before
//! `input_since` and from an optional constant input from then on (with
//! `noop_with_empty_axes`).

use super::R;
use crate::node::NodeCx;
use qcc_ir::{Op, ReduceOp};

pub(super) fn reduce(cx: &mut NodeCx, op: ReduceOp, input_since: i64) -> R {
    let x = cx.input(0)?;
    let rank = cx.ty(x).rank();
    let keepdims = cx.attr(cx.attrs.flag("keepdims", true))?;
    let (axes, noop) = if cx.opset >= input_since {
        (
            cx.const_ints(1, "axes")?,
            cx.attr(cx.attrs.flag("noop_with_empty_axes", false))?,
        )
    } else {
        (cx.attr(cx.attrs.ints("axes"))?, false)
    };
    let axes = axes.unwrap_or_default();
    if axes.is_empty() && noop {
        return Ok(vec![cx.identity(x)?]);
    }
    let mut axes = if axes.is_empty() {
        (0..rank).collect()
    } else {
        cx.axes(&axes, rank, "axes")?
    };
    axes.sort_unstable();
    Ok(vec![cx.add(Op::Reduce { op, axes, keepdims }, vec![x])?])
}
