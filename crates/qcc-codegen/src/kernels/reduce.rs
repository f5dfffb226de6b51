//! Reduce (Mean, Max, Sum over any set of axes, keepdims or not; also
//! GlobalAveragePool / GlobalMaxPool), plus the reduction helpers other
//! kernels share: a sum LLVM may reassociate (so it vectorizes) and a max
//! where NaN wins.
//!
//! The input is walked once in memory order (dims coalesced), each element
//! combined into its output slot (stride 0 along reduced dims; when the
//! innermost dim is reduced, into `LANES` accumulators first); the output
//! layout is the same with or without keepdims. Max of nothing is -inf, Mean
//! of nothing NaN, as in the reference interpreter.

use super::expect_inputs;
use crate::cx::{CgResult, KernelCx, Operand};
use crate::loops::coalesce;
use inkwell::values::{FastMathFlags, FloatValue};
use inkwell::FloatPredicate;
use qcc_ir::{strides_of, DType, Node, Op, ReduceOp};

/// `a + b`, marked reassociable so that LLVM can vectorize a loop summing
/// into one accumulator (the order of a float sum is not part of ONNX semantics).
pub(crate) fn fadd_reassoc<'ctx>(
    cx: &KernelCx<'_, 'ctx>,
    a: FloatValue<'ctx>,
    b: FloatValue<'ctx>,
) -> CgResult<FloatValue<'ctx>> {
    let r = cx.fadd(a, b)?;
    if let Some(i) = r.as_instruction() {
        // Only fails for non-FP instructions, which an fadd never is.
        let _ = i.set_fast_math_flags(FastMathFlags::AllowReassoc | FastMathFlags::AllowContract);
    }
    Ok(r)
}

/// The larger of `acc` and `x`; NaN if either is NaN (NaN wins, as in ONNX
/// Max/MaxPool/ReduceMax reference implementations).
pub(crate) fn fmax_nan<'ctx>(
    cx: &KernelCx<'_, 'ctx>,
    acc: FloatValue<'ctx>,
    x: FloatValue<'ctx>,
) -> CgResult<FloatValue<'ctx>> {
    let gt = cx.fcmp(FloatPredicate::OGT, acc, x)?;
    let m = cx.select_f(gt, acc, x)?;
    let nan = cx.fcmp(FloatPredicate::UNO, acc, x)?;
    cx.select_f(nan, cx.fadd(acc, x)?, m)
}

/// Independent accumulators of a reduction over the contiguous innermost dim.
const LANES: usize = 8;

/// Output strides per input dim: 0 along reduced dims, the kept layout's otherwise.
fn out_strides(shape: &[usize], axes: &[usize]) -> Vec<i64> {
    let kept: Vec<usize> = shape
        .iter()
        .enumerate()
        .map(|(d, &n)| if axes.contains(&d) { 1 } else { n })
        .collect();
    strides_of(&kept)
        .into_iter()
        .enumerate()
        .map(|(d, s)| if axes.contains(&d) { 0 } else { s as i64 })
        .collect()
}

/// Emits the body of the node function for Reduce.
pub fn emit<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    node: &Node,
    ins: &[Operand<'_, 'ctx>],
    out: &Operand<'_, 'ctx>,
) -> CgResult<()> {
    let Op::Reduce { op, axes, .. } = &node.op else {
        return Err(cx.unsupported("not a reduction"));
    };
    expect_inputs(cx, ins, 1)?;
    let x = &ins[0];
    if x.dtype() != DType::F32 || out.dtype() != DType::F32 {
        return Err(cx.unsupported("only f32 operands are supported"));
    }
    let shape = x.shape().to_vec();
    if let Some(a) = axes.iter().find(|&&a| a >= shape.len()) {
        return Err(cx.unsupported(format!("axis {a} out of range for {}", x.ty)));
    }
    let so = out_strides(&shape, axes);
    let n_out: usize = shape
        .iter()
        .enumerate()
        .filter(|(d, _)| !axes.contains(d))
        .map(|(_, &n)| n)
        .product();
    if n_out != out.numel() {
        return Err(cx.unsupported(format!(
            "output {} does not match {} reduced over {axes:?}",
            out.ty, x.ty
        )));
    }
    let count: usize = (0..shape.len())
        .filter(|d| axes.contains(d))
        .map(|d| shape[d])
        .product();
    let (cshape, st) = coalesce(&shape, &[x.strides(), so]);
    let op = *op;
    let init = cx.f32(if op == ReduceOp::Max {
        f32::NEG_INFINITY
    } else {
        0.0
    });
    cx.for_range(0, n_out as i64, |cx, i| cx.store_f32(out.ptr, i, init))?;
    let combine = |cx: &KernelCx<'_, 'ctx>, acc, v| match op {
        ReduceOp::Max => fmax_nan(cx, acc, v),
        ReduceOp::Sum | ReduceOp::Mean => fadd_reassoc(cx, acc, v),
    };
    let d = cshape.len();
    if d > 0 && st[1][d - 1] == 0 && st[0][d - 1] == 1 && cshape[d - 1] >= 2 * LANES {
        // The innermost dim is reduced and contiguous: LANES independent
        // accumulators (registers after mem2reg), so the chain of maxima or
        // sums does not serialize on one value.
        let len = cshape[d - 1] as i64;
        let main = len / LANES as i64 * LANES as i64;
        let acc = cx.stack_array(DType::F32, LANES as u64)?;
        cx.for_nest(&cshape[..d - 1], |cx, ivs| {
            let xb = cx.dot(ivs, &st[0][..d - 1], 0)?;
            let oi = cx.dot(ivs, &st[1][..d - 1], 0)?;
            for l in 0..LANES as i64 {
                cx.store_f32(acc, cx.i64(l), init)?;
            }
            cx.for_range_step(0, main, LANES as i64, |cx, j| {
                for l in 0..LANES as i64 {
                    let v = cx.load_f32(x.ptr, cx.add(xb, cx.add_c(j, l)?)?)?;
                    let a = cx.load_f32(acc, cx.i64(l))?;
                    cx.store_f32(acc, cx.i64(l), combine(cx, a, v)?)?;
                }
                Ok(())
            })?;
            cx.for_range(main, len, |cx, j| {
                let v = cx.load_f32(x.ptr, cx.add(xb, j)?)?;
                let a = cx.load_f32(acc, cx.i64(0))?;
                cx.store_f32(acc, cx.i64(0), combine(cx, a, v)?)
            })?;
            let mut r = cx.load_f32(out.ptr, oi)?;
            for l in 0..LANES as i64 {
                r = combine(cx, r, cx.load_f32(acc, cx.i64(l))?)?;
            }
            cx.store_f32(out.ptr, oi, r)
        })?;
    } else {
        cx.for_nest(&cshape, |cx, ivs| {
            let xi = cx.dot(ivs, &st[0], 0)?;
            let oi = cx.dot(ivs, &st[1], 0)?;
            let v = cx.load_f32(x.ptr, xi)?;
            let acc = cx.load_f32(out.ptr, oi)?;
            cx.store_f32(out.ptr, oi, combine(cx, acc, v)?)
        })?;
    }
    if op == ReduceOp::Mean && count != 1 {
        // Exact for counts below 2^24; a count of 0 gives NaN (mean of nothing).
        let div = cx.f32(count as f32);
        cx.for_range(0, n_out as i64, |cx, i| {
            let v = cx.load_f32(out.ptr, i)?;
            cx.store_f32(out.ptr, i, cx.fdiv(v, div)?)
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::out_strides;

    #[test]
    fn output_strides_skip_reduced_dims() {
        assert_eq!(out_strides(&[2, 3, 4], &[1]), vec![4, 0, 1]);
        assert_eq!(out_strides(&[2, 3, 4], &[0, 2]), vec![0, 1, 0]);
        assert_eq!(out_strides(&[2, 3, 4], &[]), vec![12, 4, 1]);
        assert_eq!(out_strides(&[5], &[0, 0]), vec![0]);
    }
}
