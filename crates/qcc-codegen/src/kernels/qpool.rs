//! Integer pooling and reduction: MaxPool on I8/U8, QAvgPool, QMean.
//!
//! The pools walk windows like the float pools (`conv::Walk`): per output
//! row, the taps that land inside the input come with compile-time (or
//! small-table) bounds, so padding is never tested inside a loop and the
//! innermost loop runs along the output row. MaxPool keeps its running
//! maximum in the output row (padding never wins; a window with no input
//! cell gives the type's minimum). QAvgPool sums `x - zp` in an i32 scratch
//! row (chunked for long rows; padding contributes 0) and ends with the
//! epilogue, which holds `1/count`. QMean sums each output's reduced
//! elements (dims coalesced, contiguous when the last axis is reduced) and
//! subtracts `zp * count` once.

use super::conv::{for_bounds, Walk};
use super::expect_inputs;
use super::pool::pool_window;
use super::quant::{
    check_i32, chunk_width, for_chunks, i32_wrapping, iadd, isub, load_ext, max_centered,
    need_int8, Chan, EpiEmit,
};
use crate::cx::{CgResult, KernelCx, Operand};
use crate::loops::coalesce;
use inkwell::values::BasicValueEnum;
use inkwell::IntPredicate;
use qcc_ir::{strides_of, DType, Node, Op};

fn i64s(v: Vec<usize>) -> Vec<i64> {
    v.into_iter().map(|s| s as i64).collect()
}

/// MaxPool on I8/U8 operands.
pub fn emit_maxpool<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    node: &Node,
    ins: &[Operand<'_, 'ctx>],
    out: &Operand<'_, 'ctx>,
) -> CgResult<()> {
    expect_inputs(cx, ins, 1)?;
    let Op::MaxPool(p) = &node.op else {
        return Err(cx.unsupported("not a max pool"));
    };
    let x = &ins[0];
    let dt = x.dtype();
    let (lo, _) = need_int8(cx, x, "input")?;
    if out.dtype() != dt {
        return Err(cx.unsupported(format!("output {} differs from input {}", out.ty, x.ty)));
    }
    let win = pool_window(cx, p, x, out)?;
    let init = cx.i8_t().const_int(lo as u8 as u64, false);
    let gt = if dt == DType::U8 {
        IntPredicate::UGT
    } else {
        IntPredicate::SGT
    };
    let imax = |cx: &KernelCx<'_, 'ctx>, a: BasicValueEnum<'ctx>, b: BasicValueEnum<'ctx>| {
        let (a, b) = (a.into_int_value(), b.into_int_value());
        Ok(cx.select_i(cx.icmp(gt, a, b)?, a, b)?.into())
    };
    if super::pool::max_2d(cx, p, x, out, init.into(), &imax)?.is_some() {
        return Ok(());
    }
    let (xs, os) = (x.shape().to_vec(), out.shape().to_vec());
    let r = xs.len() - 2;
    let lead = r - 1;
    let walk = Walk::new(cx, win);
    let (x_plane, o_plane): (usize, usize) = (xs[2..].iter().product(), os[2..].iter().product());
    let (x_st, o_st) = (i64s(strides_of(&xs[2..])), i64s(strides_of(&os[2..])));
    let (row_len, s_last) = (os[2 + lead] as i64, p.strides[lead] as i64);
    let lead_shape = os[2..2 + lead].to_vec();
    cx.for_range(0, (xs[0] * xs[1]) as i64, |cx, pl| {
        let xb = cx.mul_c(pl, x_plane as i64)?;
        let ob = cx.mul_c(pl, o_plane as i64)?;
        cx.for_nest(&lead_shape, |cx, o_lead| {
            let row = cx.add(ob, cx.dot(o_lead, &o_st[..lead], 0)?)?;
            cx.for_range(0, row_len, |cx, e| {
                cx.store(dt, out.ptr, cx.add(row, e)?, init.into())
            })?;
            walk.emit(cx, o_lead, &x_st, &mut |cx, tap| {
                let xrow = cx.add(cx.add(xb, tap.dst_lead)?, tap.shift)?;
                for_bounds(cx, tap.bounds, |cx, ow| {
                    let xi = cx.add(xrow, cx.mul_c(ow, s_last)?)?;
                    let v = cx.load(dt, x.ptr, xi)?.into_int_value();
                    let oi = cx.add(row, ow)?;
                    let acc = cx.load(dt, out.ptr, oi)?.into_int_value();
                    let c = cx.icmp(gt, v, acc)?;
                    cx.store(dt, out.ptr, oi, cx.select_i(c, v, acc)?.into())
                })
            })
        })
    })
}

/// QAvgPool: `epi.apply(Σ (x - zp))` over each window.
pub fn emit_avgpool<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    node: &Node,
    ins: &[Operand<'_, 'ctx>],
    out: &Operand<'_, 'ctx>,
) -> CgResult<()> {
    expect_inputs(cx, ins, 1)?;
    let Op::QAvgPool {
        pool: p,
        x_zero_point,
        epi,
    } = &node.op
    else {
        return Err(cx.unsupported("not a quantized average pool"));
    };
    let x = &ins[0];
    let dt = x.dtype();
    let rx = need_int8(cx, x, "input")?;
    if out.dtype() != dt {
        return Err(cx.unsupported(format!("output {} differs from input {}", out.ty, x.ty)));
    }
    let win = pool_window(cx, p, x, out)?;
    let taps: i128 = p.kernel.iter().map(|&k| k as i128).product();
    let zx = *x_zero_point;
    check_i32(cx, max_centered(rx, zx) as i128 * taps, "a window sum")?;
    let e = EpiEmit::new(cx, epi, dt, 1)?;
    let ep = e.params(cx, Chan::Static(0))?;
    let (xs, os) = (x.shape().to_vec(), out.shape().to_vec());
    let r = xs.len() - 2;
    let lead = r - 1;
    let walk = Walk::new(cx, win);
    let (x_plane, o_plane): (usize, usize) = (xs[2..].iter().product(), os[2..].iter().product());
    let (x_st, o_st) = (i64s(strides_of(&xs[2..])), i64s(strides_of(&os[2..])));
    let (row_len, s_last) = (os[2 + lead] as i64, p.strides[lead] as i64);
    let lead_shape = os[2..2 + lead].to_vec();
    let acc = cx.stack_array(DType::I32, chunk_width(row_len) as u64)?;
    cx.for_range(0, (xs[0] * xs[1]) as i64, |cx, pl| {
        let xb = cx.mul_c(pl, x_plane as i64)?;
        let ob = cx.mul_c(pl, o_plane as i64)?;
        cx.for_nest(&lead_shape, |cx, o_lead| {
            let row = cx.add(ob, cx.dot(o_lead, &o_st[..lead], 0)?)?;
            for_chunks(cx, row_len, |cx, ch| {
                let c0 = ch.start(cx);
                for_bounds(cx, ch.range(), |cx, ow| {
                    cx.store(DType::I32, acc, cx.sub(ow, c0)?, cx.i32(0).into())
                })?;
                walk.emit(cx, o_lead, &x_st, &mut |cx, tap| {
                    let Some(b) = ch.clip(cx, tap.bounds)? else {
                        return Ok(());
                    };
                    let xrow = cx.add(cx.add(xb, tap.dst_lead)?, tap.shift)?;
                    for_bounds(cx, b, |cx, ow| {
                        let xi = cx.add(xrow, cx.mul_c(ow, s_last)?)?;
                        let v = isub(cx, load_ext(cx, dt, x.ptr, xi)?, cx.i32(zx))?;
                        let si = cx.sub(ow, c0)?;
                        let a = cx.load(DType::I32, acc, si)?.into_int_value();
                        cx.store(DType::I32, acc, si, iadd(cx, a, v)?.into())
                    })
                })?;
                for_bounds(cx, ch.range(), |cx, ow| {
                    let a = cx.load(DType::I32, acc, cx.sub(ow, c0)?)?.into_int_value();
                    let q = e.apply(cx, a, &ep)?;
                    cx.store(dt, out.ptr, cx.add(row, ow)?, q.into())
                })
            })
        })
    })
}

/// QMean: `epi.apply(Σ (x - zp))` over the reduced axes.
pub fn emit_mean<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    node: &Node,
    ins: &[Operand<'_, 'ctx>],
    out: &Operand<'_, 'ctx>,
) -> CgResult<()> {
    expect_inputs(cx, ins, 1)?;
    let Op::QMean {
        axes,
        x_zero_point,
        epi,
        ..
    } = &node.op
    else {
        return Err(cx.unsupported("not a quantized mean"));
    };
    let x = &ins[0];
    let dt = x.dtype();
    let rx = need_int8(cx, x, "input")?;
    if out.dtype() != dt {
        return Err(cx.unsupported(format!("output {} differs from input {}", out.ty, x.ty)));
    }
    let xs = x.shape().to_vec();
    if axes.iter().any(|&a| a >= xs.len()) {
        return Err(cx.unsupported(format!("axes {axes:?} out of range for {}", x.ty)));
    }
    let xst = x.strides();
    let (mut kept, mut kept_st, mut red, mut red_st) = (vec![], vec![], vec![], vec![]);
    for (d, &n) in xs.iter().enumerate() {
        if axes.contains(&d) {
            red.push(n);
            red_st.push(xst[d]);
        } else {
            kept.push(n);
            kept_st.push(xst[d]);
        }
    }
    let count: usize = red.iter().product();
    if kept.iter().product::<usize>() != out.numel() {
        return Err(cx.unsupported(format!("output {} does not match {}", out.ty, x.ty)));
    }
    let zx = *x_zero_point;
    check_i32(
        cx,
        max_centered(rx, zx) as i128 * count as i128,
        "a mean's sum",
    )?;
    let e = EpiEmit::new(cx, epi, dt, 1)?;
    let ep = e.params(cx, Chan::Static(0))?;
    let (kshape, kst) = coalesce(&kept, &[i64s(strides_of(&kept)), kept_st]);
    let (rshape, rst) = coalesce(&red, &[red_st]);
    // Σ (x - zx) = Σ x - zx * count, in wrapping i32 (exact: the result fits).
    let bias = i32_wrapping(cx, -(zx as i64) * count as i64);
    let acc = cx.stack_array(DType::I32, 1)?;
    let zero = cx.i64(0);
    cx.for_nest(&kshape, |cx, ivs| {
        let oi = cx.dot(ivs, &kst[0], 0)?;
        let xb = cx.dot(ivs, &kst[1], 0)?;
        cx.store(DType::I32, acc, zero, bias.into())?;
        cx.for_nest(&rshape, |cx, rv| {
            let xi = cx.add(xb, cx.dot(rv, &rst[0], 0)?)?;
            let v = load_ext(cx, dt, x.ptr, xi)?;
            let a = cx.load(DType::I32, acc, zero)?.into_int_value();
            cx.store(DType::I32, acc, zero, iadd(cx, a, v)?.into())
        })?;
        let a = cx.load(DType::I32, acc, zero)?.into_int_value();
        let q = e.apply(cx, a, &ep)?;
        cx.store(dt, out.ptr, oi, q.into())
    })
}
