//! Concat, Split (several IR Slices), Slice (ONNX clamping, negative
//! steps), Gather and constant-mode Pad (negative pads crop with a Slice).

use super::R;
use crate::node::NodeCx;
use qcc_ir::{BinaryOp, DType, Op, Tensor, TensorType, ValueId};

pub(super) fn concat(cx: &mut NodeCx) -> R {
    let ins = cx.present_inputs()?;
    let Some(&first) = ins.first() else {
        return Err(cx.err("needs at least one input"));
    };
    // Before opset 4 the axis is optional, 1 by default.
    let axis = match cx.attr(cx.attrs.int("axis"))? {
        Some(a) => a,
        None if cx.opset < 4 => 1,
        None => return Err(cx.err("attribute 'axis' is missing")),
    };
    let axis = cx.axis(axis, cx.ty(first).rank(), "attribute 'axis'")?;
    Ok(vec![cx.add(Op::Concat { axis }, ins)?])
}

pub(super) fn gather(cx: &mut NodeCx) -> R {
    let data = cx.input(0)?;
    let idx = cx.input(1)?;
    let axis = cx.attr(cx.attrs.int_or("axis", 0))?;
    let axis = cx.axis(axis, cx.ty(data).rank(), "attribute 'axis'")?;
    Ok(vec![cx.add(Op::Gather { axis }, vec![data, idx])?])
}

/// A Slice taking `len` elements from `start` along `axis`, everything elsewhere.
fn slice_along(
    cx: &mut NodeCx,
    x: ValueId,
    axis: usize,
    start: usize,
    len: usize,
    suffix: Option<&str>,
) -> Result<ValueId, crate::error::Problem> {
    let shape = cx.ty(x).shape;
    let mut starts = vec![0i64; shape.len()];
    let mut lens = shape.clone();
    starts[axis] = if len == 0 { 0 } else { start as i64 };
    lens[axis] = len;
    let op = Op::Slice {
        starts,
        steps: vec![1; shape.len()],
        lens,
    };
    match suffix {
        Some(s) => cx.add_aux(s, op, vec![x]),
        None => cx.add(op, vec![x]),
    }
}

/// Split: sizes from the `split` attribute (< 13) or input (≥ 13), else
/// equal parts (`num_outputs` from opset 18, the last part may be smaller).
pub(super) fn split(cx: &mut NodeCx) -> R {
    let x = cx.input(0)?;
    let shape = cx.ty(x).shape;
    let axis = cx.attr(cx.attrs.int_or("axis", 0))?;
    let axis = cx.axis(axis, shape.len(), "attribute 'axis'")?;
    let dim = shape[axis];
    let outs = cx.node.output.len();
    let given = if cx.opset >= 13 {
        cx.const_ints(1, "split")?
    } else {
        cx.attr(cx.attrs.ints("split"))?
    };
    // From opset 18, exactly one of the `split` input and `num_outputs`.
    if cx.opset >= 18 {
        match (given.is_some(), cx.attrs.has("num_outputs")) {
            (true, true) => {
                return Err(cx.err("has both the 'split' input and attribute 'num_outputs'"))
            }
            (false, false) => {
                return Err(cx.err("needs the 'split' input or attribute 'num_outputs'"))
            }
            _ => {}
        }
    }
    let sizes: Vec<usize> = match given.filter(|s| !s.is_empty()) {
        Some(s) => {
            let s = cx.usizes(&s, "split sizes")?;
            if s.len() != outs || s.iter().sum::<usize>() != dim {
                return Err(cx.err(format!(
                    "split sizes {s:?} must be {outs} numbers adding up to dim {axis} ({dim})"
                )));
            }
            s
        }
        None => {
            let n = match cx.attr(cx.attrs.int("num_outputs"))? {
                Some(k) if cx.opset >= 18 => {
                    if k < 1 || k as usize != outs {
                        return Err(cx.err(format!(
                            "attribute 'num_outputs' {k} does not match the {outs} outputs"
                        )));
                    }
                    outs
                }
                _ => outs,
            };
            if n == 0 {
                return Err(cx.err("needs at least one output"));
            }
            let chunk = dim.div_ceil(n);
            if cx.opset < 18 && !dim.is_multiple_of(n) {
                return Err(cx.err(format!(
                    "dim {axis} ({dim}) does not split into {n} equal parts"
                )));
            }
            if chunk * (n - 1) > dim {
                return Err(cx.err(format!("dim {axis} ({dim}) cannot be split into {n} parts")));
            }
            let mut s = vec![chunk; n];
            s[n - 1] = dim - chunk * (n - 1);
            s
        }
    };
    let mut start = 0;
    let mut values = Vec::with_capacity(sizes.len());
    for (j, &len) in sizes.iter().enumerate() {
        let suffix = j.to_string();
        values.push(slice_along(cx, x, axis, start, len, Some(&suffix))?);
        start += len;
    }
    Ok(values)
}

/// One axis of an ONNX Slice after clamping: `(start, len)` for `step`.
pub(crate) fn clamp_slice(dim: usize, start: i64, end: i64, step: i64) -> (i64, usize) {
    if dim == 0 || step == 0 {
        return (0, 0);
    }
    let d = dim as i128;
    let (start, end, step) = (start as i128, end as i128, step as i128);
    let norm = |v: i128| if v < 0 { v + d } else { v };
    let (s, e) = if step > 0 {
        (norm(start).clamp(0, d), norm(end).clamp(0, d))
    } else {
        (norm(start).clamp(0, d - 1), norm(end).clamp(-1, d - 1))
    };
    let span = if step > 0 { e - s } else { s - e };
    let len = if span > 0 {
        (span + step.abs() - 1) / step.abs()
    } else {
        0
    };
    // `len <= dim` and `s < dim`, so both fit.
    let len = len as usize;
    (if len == 0 { 0 } else { s as i64 }, len)
}

/// Slice: attributes before opset 10, constant inputs after.
pub(super) fn slice(cx: &mut NodeCx) -> R {
    let x = cx.input(0)?;
    let shape = cx.ty(x).shape;
    let rank = shape.len();
    let (starts, ends, axes, steps) = if cx.opset < 10 {
        let need = |cx: &NodeCx, n: &str| -> Result<Vec<i64>, crate::error::Problem> {
            cx.attr(cx.attrs.ints(n))?
                .ok_or_else(|| cx.err(format!("attribute '{n}' is missing")))
        };
        (
            need(cx, "starts")?,
            need(cx, "ends")?,
            cx.attr(cx.attrs.ints("axes"))?,
            None,
        )
    } else {
        let starts = cx
            .const_ints(1, "starts")?
            .ok_or_else(|| cx.err("input 'starts' is missing"))?;
        let ends = cx
            .const_ints(2, "ends")?
            .ok_or_else(|| cx.err("input 'ends' is missing"))?;
        (
            starts,
            ends,
            cx.const_ints(3, "axes")?,
            cx.const_ints(4, "steps")?,
        )
    };
    let k = starts.len();
    let axes = axes.unwrap_or_else(|| (0..k as i64).collect());
    let steps = steps.unwrap_or_else(|| vec![1; k]);
    if ends.len() != k || axes.len() != k || steps.len() != k {
        return Err(cx.err(format!(
            "starts {starts:?}, ends {ends:?}, axes {axes:?} and steps {steps:?} differ in length"
        )));
    }
    let axes = cx.axes(&axes, rank, "axes")?;
    let mut out_starts = vec![0i64; rank];
    let mut out_steps = vec![1i64; rank];
    let mut lens = shape.clone();
    for i in 0..k {
        if steps[i] == 0 {
            return Err(cx.err(format!("steps {steps:?} contain 0")));
        }
        let a = axes[i];
        let (s, len) = clamp_slice(shape[a], starts[i], ends[i], steps[i]);
        out_starts[a] = s;
        out_steps[a] = steps[i];
        lens[a] = len;
    }
    let op = Op::Slice {
        starts: out_starts,
        steps: out_steps,
        lens,
    };
    Ok(vec![cx.add(op, vec![x])?])
}

/// Pad (constant mode): pads/value as attributes before opset 11, inputs
/// after (`axes` from opset 18). Negative pads crop first with a Slice.
pub(super) fn pad(cx: &mut NodeCx) -> R {
    let x = cx.input(0)?;
    let shape = cx.ty(x).shape;
    let rank = shape.len();
    let (pads, value, axes) = if cx.opset < 11 {
        // (Called `paddings` before opset 2.)
        let name = if cx.opset < 2 { "paddings" } else { "pads" };
        let pads = cx
            .attr(cx.attrs.ints(name))?
            .ok_or_else(|| cx.err(format!("attribute '{name}' is missing")))?;
        (pads, cx.attr(cx.attrs.float_or("value", 0.0))?, None)
    } else {
        let pads = cx
            .const_ints(1, "pads")?
            .ok_or_else(|| cx.err("input 'pads' is missing"))?;
        let value = cx.const_scalar(2, "constant_value")?.unwrap_or(0.0);
        let axes = if cx.opset >= 18 {
            cx.const_ints(3, "axes")?
        } else {
            None
        };
        (pads, value, axes)
    };
    let axes = match axes {
        Some(a) => cx.axes(&a, rank, "axes")?,
        None => (0..rank).collect(),
    };
    let k = axes.len();
    if pads.len() != 2 * k {
        return Err(cx.err(format!("pads {pads:?} must have {} entries", 2 * k)));
    }
    let mut full = vec![0i64; 2 * rank];
    for (i, &a) in axes.iter().enumerate() {
        full[a] = pads[i];
        full[a + rank] = pads[i + k];
    }
    let mut v = x;
    if full.iter().any(|&p| p < 0) {
        let mut starts = vec![0i64; rank];
        let mut lens = shape.clone();
        for d in 0..rank {
            let (b, e) = (
                full[d].min(0).unsigned_abs(),
                full[d + rank].min(0).unsigned_abs(),
            );
            let keep = (shape[d] as u64).checked_sub(b.saturating_add(e));
            let Some(keep) = keep else {
                return Err(cx.err(format!(
                    "negative pads {pads:?} remove more than dim {d} ({})",
                    shape[d]
                )));
            };
            starts[d] = if keep == 0 { 0 } else { b as i64 };
            lens[d] = keep as usize;
        }
        let op = Op::Slice {
            starts,
            steps: vec![1; rank],
            lens,
        };
        v = cx.add_aux("crop", op, vec![v])?;
    }
    let pos: Vec<i64> = full.iter().map(|&p| p.max(0)).collect();
    let pos = super::conv::bounded(cx, &pos, "pads")?;
    let mode = cx.attr(cx.attrs.string_or("mode", "constant"))?;
    if mode == "constant" {
        return Ok(vec![cx.add(Op::Pad { pads: pos, value }, vec![v])?]);
    }
    // reflect, edge, wrap: per padded axis, Concat(before, x, after) of
    // slices of x (reversed for reflect, one row repeated for edge).
    for d in 0..rank {
        let (b, e) = (pos[d], pos[d + rank]);
        if b == 0 && e == 0 {
            continue;
        }
        let cur = cx.ty(v).shape;
        let n = cur[d];
        let limit = match mode.as_str() {
            "reflect" => n.saturating_sub(1),
            "wrap" => n,
            _ => usize::MAX,
        };
        if n == 0 || b > limit || e > limit {
            return Err(cx.err(format!(
                "{mode} padding of {b} and {e} does not fit dim {d} of size {n}"
            )));
        }
        // Elements `start, start + step, …` (`len` of them) along d.
        let take = |cx: &mut NodeCx, start: usize, step: i64, len: usize| {
            let mut starts = vec![0i64; rank];
            starts[d] = start as i64;
            let mut steps = vec![1i64; rank];
            steps[d] = step;
            let mut lens = cur.clone();
            lens[d] = len;
            cx.add_aux(
                &format!("{mode}{d}"),
                Op::Slice {
                    starts,
                    steps,
                    lens,
                },
                vec![v],
            )
        };
        let mut parts = vec![];
        match mode.as_str() {
            "reflect" => {
                if b > 0 {
                    parts.push(take(cx, b, -1, b)?);
                }
                parts.push(v);
                if e > 0 {
                    parts.push(take(cx, n - 2, -1, e)?);
                }
            }
            "wrap" => {
                if b > 0 {
                    parts.push(take(cx, n - b, 1, b)?);
                }
                parts.push(v);
                if e > 0 {
                    parts.push(take(cx, 0, 1, e)?);
                }
            }
            _ => {
                let first = take(cx, 0, 1, 1)?;
                let last = take(cx, n - 1, 1, 1)?;
                parts.extend(std::iter::repeat_n(first, b));
                parts.push(v);
                parts.extend(std::iter::repeat_n(last, e));
            }
        }
        v = cx.add_aux(&format!("pad{d}"), Op::Concat { axis: d }, parts)?;
    }
    Ok(vec![cx.add(
        Op::Reshape {
            shape: cx.ty(v).shape,
        },
        vec![v],
    )?])
}

/// Tile with constant repeats: per axis, a Concat of `repeats[d]` copies.
pub(super) fn tile(cx: &mut NodeCx) -> R {
    let x = cx.input(0)?;
    let rank = cx.ty(x).rank();
    let reps = cx
        .const_ints(1, "repeats")?
        .ok_or_else(|| cx.err("input 'repeats' is missing"))?;
    if reps.len() != rank || reps.iter().any(|&r| r < 0) {
        return Err(cx.err(format!(
            "repeats {reps:?} must hold {rank} non-negative values"
        )));
    }
    let shape = cx.ty(x).shape;
    let out: Option<u128> = shape
        .iter()
        .zip(&reps)
        .try_fold(4u128, |a, (&s, &r)| a.checked_mul(s as u128 * r as u128));
    if out.is_none_or(|b| b > crate::ops::MAX_GENERATED_BYTES) {
        return Err(cx.err(format!("tiling {shape:?} by {reps:?} is too large")));
    }
    let mut v = x;
    for (d, &r) in reps.iter().enumerate() {
        if r == 1 {
            continue;
        }
        let parts = vec![v; r as usize];
        v = if r == 0 {
            let mut shape = cx.ty(v).shape;
            shape[d] = 0;
            let t = qcc_ir::Tensor::zeros(&qcc_ir::TensorType::new(cx.ty(v).dtype, shape));
            cx.add_const(&format!("tile{d}"), t)
        } else {
            cx.add_aux(&format!("tile{d}"), Op::Concat { axis: d }, parts)?
        };
    }
    Ok(vec![cx.add(
        Op::Reshape {
            shape: cx.ty(v).shape,
        },
        vec![v],
    )?])
}

/// CumSum of a float tensor along a constant axis: a MatMul by the 0/1
/// matrix `T[j][k] = 1` where element `j` counts toward output `k`
/// (`j ≤ k`; `<` when exclusive; mirrored when reverse), the axis moved
/// last and back.
pub(super) fn cumsum(cx: &mut NodeCx) -> R {
    let x = cx.input(0)?;
    let ty = cx.ty(x);
    if ty.dtype != qcc_ir::DType::F32 {
        return Err(cx.err(format!("input must be f32, got {ty}")));
    }
    let rank = ty.rank();
    let axis = cx
        .const_ints(1, "axis")?
        .and_then(|v| v.first().copied())
        .ok_or_else(|| cx.err("input 'axis' is missing"))?;
    let axis = cx.axis(axis, rank, "axis")?;
    let exclusive = cx.attr(cx.attrs.flag("exclusive", false))?;
    let reverse = cx.attr(cx.attrs.flag("reverse", false))?;
    let n = ty.shape[axis];
    if n > 4096 {
        return Err(cx.err(format!(
            "CumSum over {n} elements is not supported (at most 4096)"
        )));
    }
    let mut t = vec![0f32; n * n];
    for j in 0..n {
        for k in 0..n {
            let counts = match (reverse, exclusive) {
                (false, false) => j <= k,
                (false, true) => j < k,
                (true, false) => j >= k,
                (true, true) => j > k,
            };
            t[j * n + k] = counts as u8 as f32;
        }
    }
    let tri = qcc_ir::Tensor::from_f32(vec![n, n], t).ok_or_else(|| cx.err("bad constant"))?;
    let tri = cx.add_const("triangle", tri);
    let mut perm: Vec<usize> = (0..rank).filter(|&d| d != axis).collect();
    perm.push(axis);
    let last = axis + 1 == rank;
    let xt = if last {
        x
    } else {
        cx.add_aux("to_last", Op::Transpose { perm: perm.clone() }, vec![x])?
    };
    let y = if last {
        cx.add(Op::MatMul, vec![xt, tri])?
    } else {
        cx.add_aux("sums", Op::MatMul, vec![xt, tri])?
    };
    if last {
        return Ok(vec![y]);
    }
    let mut back = vec![0; rank];
    for (i, &p) in perm.iter().enumerate() {
        back[p] = i;
    }
    Ok(vec![cx.add(Op::Transpose { perm: back }, vec![y])?])
}

/// ScatterND with constant indices and no reduction: every output element
/// is an element of `data` or of `updates`, known at compile time, so the
/// output is one Gather from the two concatenated (flattened) with a
/// constant index per element. With repeated indices the last update wins.
pub(super) fn scatter_nd(cx: &mut NodeCx) -> R {
    let data = cx.input(0)?;
    let dt = cx.ty(data);
    let red = cx.attr(cx.attrs.string_or("reduction", "none"))?;
    let reduce = match red.as_str() {
        "none" => None,
        "add" => Some(BinaryOp::Add),
        "mul" => Some(BinaryOp::Mul),
        "max" => Some(BinaryOp::Max),
        "min" => Some(BinaryOp::Min),
        other => return Err(cx.err(format!("reduction='{other}' is not supported"))),
    };
    let idx = cx
        .const_input(1, "indices")?
        .ok_or_else(|| cx.err("input 'indices' is missing"))?;
    let upd = cx.input(2)?;
    let ut = cx.ty(upd);
    let ish = idx.shape().to_vec();
    let r = dt.rank();
    let Some(&k) = ish.last() else {
        return Err(cx.err("indices must have rank 1 or more"));
    };
    if k == 0 || k > r {
        return Err(cx.err(format!("indices' last dim {k} must be in 1..={r}")));
    }
    let mut want = ish[..ish.len() - 1].to_vec();
    want.extend_from_slice(&dt.shape[k..]);
    if ut.shape != want || ut.dtype != dt.dtype {
        return Err(cx.err(format!(
            "updates {ut} do not match {}{want:?}",
            dt.dtype.name()
        )));
    }
    let numel: usize = dt.shape.iter().product();
    let slab: usize = dt.shape[k..].iter().product();
    let n_up: usize = ish[..ish.len() - 1].iter().product();
    if numel > crate::ops::MAX_CONST_ELEMS {
        return Err(cx.err(format!("data {dt} is too large to scatter into")));
    }
    let iv = idx
        .to_i64_vec()
        .ok_or_else(|| cx.err("indices must be integers"))?;
    let strides = qcc_ir::strides_of(&dt.shape);
    let mut map: Vec<i64> = (0..numel as i64).collect();
    // With a reduction: per element, the update elements that reach it, in order.
    let mut hits: Vec<Vec<usize>> = vec![vec![]; if reduce.is_some() { numel } else { 0 }];
    for u in 0..n_up {
        let mut at = 0usize;
        for j in 0..k {
            let dim = dt.shape[j] as i64;
            let v = iv[u * k + j];
            let v = if v < 0 { v + dim } else { v };
            if !(0..dim).contains(&v) {
                return Err(cx.err(format!(
                    "index {} is out of range for dim {j} of size {dim}",
                    iv[u * k + j]
                )));
            }
            at += v as usize * strides[j];
        }
        for e in 0..slab {
            map[at + e] = (numel + u * slab + e) as i64;
            if let Some(h) = hits.get_mut(at + e) {
                h.push(u * slab + e);
            }
        }
    }
    if let Some(op) = reduce {
        return scatter_reduce(cx, (data, upd), &dt, n_up * slab, op, &hits);
    }
    let flat_d = cx.add_aux("data_flat", Op::Reshape { shape: vec![numel] }, vec![data])?;
    let flat_u = cx.add_aux(
        "updates_flat",
        Op::Reshape {
            shape: vec![n_up * slab],
        },
        vec![upd],
    )?;
    let both = cx.add_aux("both", Op::Concat { axis: 0 }, vec![flat_d, flat_u])?;
    let map = qcc_ir::Tensor::from_i64(vec![numel], map).ok_or_else(|| cx.err("bad constant"))?;
    let map = cx.add_const("map", map);
    let g = cx.add_aux("gather", Op::Gather { axis: 0 }, vec![both, map])?;
    Ok(vec![cx.add(
        Op::Reshape {
            shape: dt.shape.clone(),
        },
        vec![g],
    )?])
}

/// ScatterND with a reduction, in rounds: round `r` combines every element
/// with the `r`-th update that reaches it (or with the reduction's
/// identity: -0.0, 1, -inf/+inf or the integer extremes, which leave any
/// value as it is), so duplicates apply in update order as the spec's loop
/// does. Each round is one Gather from the flat updates and one elementwise op.
fn scatter_reduce(
    cx: &mut NodeCx,
    (data, upd): (ValueId, ValueId),
    dt: &TensorType,
    n: usize,
    op: BinaryOp,
    hits: &[Vec<usize>],
) -> R {
    let rounds = hits.iter().map(Vec::len).max().unwrap_or(0);
    if rounds > MAX_ROUNDS {
        return Err(cx.err(format!(
            "{rounds} updates reach one element (at most {MAX_ROUNDS} are supported with a reduction)"
        )));
    }
    let identity = match (op, dt.dtype) {
        (BinaryOp::Add, DType::F32) => Tensor::from_f32(vec![1], vec![-0.0]),
        (BinaryOp::Mul, DType::F32) => Tensor::from_f32(vec![1], vec![1.0]),
        (BinaryOp::Max, DType::F32) => Tensor::from_f32(vec![1], vec![f32::NEG_INFINITY]),
        (BinaryOp::Min, DType::F32) => Tensor::from_f32(vec![1], vec![f32::INFINITY]),
        (op, DType::I64) => Tensor::from_i64(
            vec![1],
            vec![match op {
                BinaryOp::Add => 0,
                BinaryOp::Mul => 1,
                BinaryOp::Max => i64::MIN,
                _ => i64::MAX,
            }],
        ),
        _ => None,
    }
    .ok_or_else(|| {
        cx.err(format!(
            "a reduction on {} is not supported",
            dt.dtype.name()
        ))
    })?;
    let numel = hits.len();
    let flat_u = cx.add_aux("updates_flat", Op::Reshape { shape: vec![n] }, vec![upd])?;
    let id = cx.add_const("identity", identity);
    let pool = cx.add_aux("pool", Op::Concat { axis: 0 }, vec![flat_u, id])?;
    let mut acc = cx.add_aux("data_flat", Op::Reshape { shape: vec![numel] }, vec![data])?;
    for r in 0..rounds {
        let map: Vec<i64> = hits
            .iter()
            .map(|h| h.get(r).map_or(n as i64, |&u| u as i64))
            .collect();
        let map = Tensor::from_i64(vec![numel], map).ok_or_else(|| cx.err("bad constant"))?;
        let map = cx.add_const(&format!("map{r}"), map);
        let g = cx.add_aux(
            &format!("gather{r}"),
            Op::Gather { axis: 0 },
            vec![pool, map],
        )?;
        acc = cx.add_aux(&format!("round{r}"), Op::Binary(op), vec![acc, g])?;
    }
    Ok(vec![cx.add(
        Op::Reshape {
            shape: dt.shape.clone(),
        },
        vec![acc],
    )?])
}

/// Most updates that may reach one element of a reducing ScatterND.
const MAX_ROUNDS: usize = 64;

#[cfg(test)]
mod tests {
    use super::clamp_slice;

    #[test]
    fn slice_clamping() {
        assert_eq!(clamp_slice(10, 2, 5, 1), (2, 3));
        assert_eq!(clamp_slice(10, -3, i64::MAX, 1), (7, 3));
        assert_eq!(clamp_slice(10, 0, -1, 1), (0, 9));
        assert_eq!(clamp_slice(10, -100, 100, 3), (0, 4));
        assert_eq!(clamp_slice(10, i64::MAX, i64::MIN, -1), (9, 10));
        assert_eq!(clamp_slice(10, -1, -4, -2), (9, 2));
        assert_eq!(clamp_slice(10, 5, 2, 1), (0, 0));
        assert_eq!(clamp_slice(10, 20, 30, 1), (0, 0));
        assert_eq!(clamp_slice(0, 0, 1, 1), (0, 0));
        assert_eq!(clamp_slice(0, -1, i64::MIN, -1), (0, 0));
    }
}
