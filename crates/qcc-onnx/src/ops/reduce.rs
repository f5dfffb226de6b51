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

/// ArgMax / ArgMin along one axis, built from reductions: the index of the
/// first (or, with `select_last_index`, the last) element equal to the
/// axis's max (of `-x` for ArgMin) is `max(where(x == max, i, -1))` over an
/// iota `i` (last) or `-max(where(x == max, -i, -n))` (first), computed in
/// f32 (exact for axes up to 2^24 elements) and cast to int64.
pub(super) fn arg(cx: &mut NodeCx, min: bool) -> R {
    use qcc_ir::{CompareOp, DType, Tensor, UnaryOp};
    let x = cx.input(0)?;
    let ty = cx.ty(x);
    if ty.dtype != DType::F32 {
        return Err(cx.err(format!("input must be f32, got {ty}")));
    }
    let rank = ty.rank();
    let axis = cx.attr(cx.attrs.int_or("axis", 0))?;
    let axis = cx.axis(axis, rank, "attribute 'axis'")?;
    let keepdims = cx.attr(cx.attrs.flag("keepdims", true))?;
    let last = cx.attr(cx.attrs.flag("select_last_index", false))?;
    let n = ty.shape[axis];
    if n == 0 || n > 1 << 24 {
        return Err(cx.err(format!("an axis of {n} elements is not supported")));
    }
    let v = if min {
        cx.add_aux("neg", Op::Unary(UnaryOp::Neg), vec![x])?
    } else {
        x
    };
    let max = Op::Reduce {
        op: ReduceOp::Max,
        axes: vec![axis],
        keepdims: true,
    };
    let m = cx.add_aux("max", max, vec![v])?;
    let eq = cx.add_aux("is_max", Op::Compare(CompareOp::Equal), vec![v, m])?;
    // The iota along `axis` (negated for the first index), shaped to broadcast.
    let mut shape = vec![1; rank];
    shape[axis] = n;
    let sign = if last { 1.0 } else { -1.0 };
    let iota: Vec<f32> = (0..n).map(|i| sign * i as f32).collect();
    let iota = Tensor::from_f32(shape, iota).ok_or_else(|| cx.err("bad constant"))?;
    let iota = cx.add_const("iota", iota);
    let none = super::elementwise::scalar(cx, "none", if last { -1.0 } else { -(n as f32) });
    let w = cx.add_aux("index_if_max", Op::Where, vec![eq, iota, none])?;
    let red = Op::Reduce {
        op: ReduceOp::Max,
        axes: vec![axis],
        keepdims,
    };
    let mut idx = cx.add_aux("index", red, vec![w])?;
    if !last {
        idx = cx.add_aux("first", Op::Unary(UnaryOp::Neg), vec![idx])?;
    }
    Ok(vec![cx.add(Op::Cast { to: DType::I64 }, vec![idx])?])
}
