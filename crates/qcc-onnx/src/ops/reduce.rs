//! ReduceMean / ReduceMax / ReduceSum: axes come from an attribute before
//! `input_since` and from an optional constant input from then on (with
//! `noop_with_empty_axes`).

use super::R;
use crate::node::NodeCx;
use qcc_ir::{Op, ReduceOp, ValueId};

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

/// The constant `sign · i` for `i` along `axis` of a rank-`rank` tensor
/// (size 1 elsewhere, to broadcast), in f32: exact up to 2^24.
fn iota_along(
    cx: &mut NodeCx,
    rank: usize,
    axis: usize,
    n: usize,
    sign: f32,
) -> Result<ValueId, crate::error::Problem> {
    let mut shape = vec![1; rank];
    shape[axis] = n;
    let v: Vec<f32> = (0..n).map(|i| sign * i as f32).collect();
    let t = qcc_ir::Tensor::from_f32(shape, v).ok_or_else(|| cx.err("bad constant"))?;
    Ok(cx.add_const("iota", t))
}

/// ArgMax / ArgMin along one axis, built from reductions: the index of the
/// first (or, with `select_last_index`, the last) element equal to the
/// axis's max (of `-x` for ArgMin) is `max(where(x == max, i, -1))` over an
/// iota `i` (last) or `-max(where(x == max, -i, -n))` (first), computed in
/// f32 (exact for axes up to 2^24 elements) and cast to int64.
pub(super) fn arg(cx: &mut NodeCx, min: bool) -> R {
    use qcc_ir::{CompareOp, DType, UnaryOp};
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
    // Negated for the first index.
    let iota = iota_along(cx, rank, axis, n, if last { 1.0 } else { -1.0 })?;
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

/// TopK with a constant, small K (at most 64) along one axis of a float
/// tensor: K rounds of "the max (of `-x` for the smallest), the first index
/// holding it, then that one element masked to -inf", so equal values come
/// out lowest index first, as ONNX orders them. Values and indices are the
/// rounds concatenated along the axis (always sorted).
pub(super) fn top_k(cx: &mut NodeCx) -> R {
    use qcc_ir::{CompareOp, DType, LogicOp, Tensor, UnaryOp};
    let x = cx.input(0)?;
    let ty = cx.ty(x);
    if ty.dtype != DType::F32 {
        return Err(cx.err(format!("input must be f32, got {ty}")));
    }
    let rank = ty.rank();
    let axis = cx.attr(cx.attrs.int_or("axis", -1))?;
    let axis = cx.axis(axis, rank, "attribute 'axis'")?;
    let k = if cx.opset < 10 {
        cx.attr(cx.attrs.int("k"))?
            .ok_or_else(|| cx.err("attribute 'k' is missing"))?
    } else {
        let v = cx
            .const_ints(1, "K")?
            .ok_or_else(|| cx.err("input 'K' is missing"))?;
        *v.first().ok_or_else(|| cx.err("input 'K' is empty"))?
    };
    let largest = cx.attr(cx.attrs.flag("largest", true))?;
    let n = ty.shape[axis];
    if k < 0 || k as usize > n {
        return Err(cx.err(format!("K={k} is not in 0..={n} (the axis length)")));
    }
    if k > 64 || n > 1 << 24 {
        return Err(cx.err(format!(
            "TopK with K={k} over {n} elements is not supported (K at most 64)"
        )));
    }
    let mut v = if largest {
        x
    } else {
        cx.add_aux("neg", Op::Unary(UnaryOp::Neg), vec![x])?
    };
    let iota = iota_along(cx, rank, axis, n, -1.0)?;
    let none = super::elementwise::scalar(cx, "none", -(n as f32));
    let ninf = super::elementwise::scalar(cx, "masked", f32::NEG_INFINITY);
    let max = Op::Reduce {
        op: ReduceOp::Max,
        axes: vec![axis],
        keepdims: true,
    };
    let (mut vals, mut idxs) = (vec![], vec![]);
    // The positions already taken (so that a -inf left in the data and a
    // masked one are told apart).
    let mut taken: Option<ValueId> = None;
    for r in 0..k as usize {
        let m = cx.add_aux(&format!("max{r}"), max.clone(), vec![v])?;
        let mut eq = cx.add_aux(
            &format!("is_max{r}"),
            Op::Compare(CompareOp::Equal),
            vec![v, m],
        )?;
        if let Some(t) = taken {
            let free = cx.add_aux(&format!("free{r}"), Op::Not, vec![t])?;
            eq = cx.add_aux(
                &format!("is_free_max{r}"),
                Op::Logic(LogicOp::And),
                vec![eq, free],
            )?;
        }
        let w = cx.add_aux(&format!("index_if_max{r}"), Op::Where, vec![eq, iota, none])?;
        // -(first index) of the max.
        let neg_idx = cx.add_aux(&format!("neg_index{r}"), max.clone(), vec![w])?;
        vals.push(m);
        idxs.push(neg_idx);
        if r + 1 < k as usize {
            let at = cx.add_aux(
                &format!("at{r}"),
                Op::Compare(CompareOp::Equal),
                vec![iota, neg_idx],
            )?;
            taken = Some(match taken {
                Some(t) => cx.add_aux(&format!("taken{r}"), Op::Logic(LogicOp::Or), vec![t, at])?,
                None => at,
            });
            v = cx.add_aux(&format!("rest{r}"), Op::Where, vec![at, ninf, v])?;
        }
    }
    let cat = |cx: &mut NodeCx, tag: &str, parts: Vec<ValueId>| {
        if parts.len() == 1 {
            Ok(parts[0])
        } else {
            cx.add_aux(tag, Op::Concat { axis }, parts)
        }
    };
    if k == 0 {
        let mut s = ty.shape.clone();
        s[axis] = 0;
        let e = cx.add_const(
            "empty",
            Tensor::zeros(&qcc_ir::TensorType::new(DType::F32, s.clone())),
        );
        let ei = cx.add_const(
            "empty_i",
            Tensor::zeros(&qcc_ir::TensorType::new(DType::I64, s)),
        );
        return Ok(vec![e, ei]);
    }
    let mut values = cat(cx, "values_cat", vals)?;
    if !largest {
        values = cx.add_aux("values_neg", Op::Unary(UnaryOp::Neg), vec![values])?;
    }
    let values = cx.add(
        Op::Reshape {
            shape: cx.ty(values).shape,
        },
        vec![values],
    )?;
    let neg = cat(cx, "indices_cat", idxs)?;
    let pos = cx.add_aux("indices_f", Op::Unary(UnaryOp::Neg), vec![neg])?;
    let indices = cx.add_aux("indices", Op::Cast { to: DType::I64 }, vec![pos])?;
    Ok(vec![values, indices])
}
