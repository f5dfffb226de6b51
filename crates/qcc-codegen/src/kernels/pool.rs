//! MaxPool and AveragePool: N-d windows with kernel, strides, dilations,
//! explicit pads and ceil_mode (windows that run past the end padding).
//!
//! Same walk as Conv (`Walk`): per output row, the taps that land inside
//! the input are enumerated with compile-time bounds (padding never enters
//! a max; it only counts in an average's divisor), and the innermost loop
//! runs along the output row. Average divisors depend only on the position
//! and factor per dim (a window is a box), so they are computed in Rust:
//! with `count_include_pad` they count the taps inside the padded input (not
//! the ceil_mode overhang), without it only those inside the input. A
//! window with nothing to count averages to 0; a max over no input cell is
//! -inf; NaN wins a max (as in the reference interpreter).

use super::conv::{const_f32_table, for_bounds, valid_range, Walk, Window};
use super::expect_inputs;
use super::reduce::fmax_nan;
use crate::cx::{CgResult, KernelCx, Operand};
use inkwell::values::{BasicValueEnum, FloatValue, PointerValue};
use qcc_ir::{strides_of, DType, Node, Op, PoolAttrs};

/// Divisor factors of one spatial dim: per output position, the number of
/// taps that count (0 replaced by 1: such windows sum to 0 anyway).
pub(crate) fn divisors(p: &PoolAttrs, d: usize, input: usize, output: usize) -> Vec<f32> {
    let r = p.kernel.len();
    let (pb, pe) = (p.pads[d] as i64, p.pads[d + r] as i64);
    let (s, dil, k) = (
        p.strides[d] as i64,
        p.dilations[d] as i64,
        p.kernel[d] as i64,
    );
    (0..output as i64)
        .map(|o| {
            let (lo, hi) = if p.count_include_pad {
                valid_range(o * s, dil, k, input as i64 + pb + pe)
            } else {
                valid_range(o * s - pb, dil, k, input as i64)
            };
            (hi - lo).max(1) as f32
        })
        .collect()
}

/// A per-position factor: one constant for every position, or a table.
enum Factor<'ctx> {
    Uniform(f32),
    Table(PointerValue<'ctx>),
}

impl<'ctx> Factor<'ctx> {
    fn new(cx: &KernelCx<'_, 'ctx>, v: &[f32]) -> Self {
        match v.first() {
            Some(&f) if v.iter().all(|&x| x == f) => Factor::Uniform(f),
            None => Factor::Uniform(1.0),
            _ => Factor::Table(const_f32_table(cx, "pool.div", v)),
        }
    }
    fn at(
        &self,
        cx: &KernelCx<'_, 'ctx>,
        i: inkwell::values::IntValue<'ctx>,
    ) -> CgResult<FloatValue<'ctx>> {
        match self {
            Factor::Uniform(f) => Ok(cx.f32(*f)),
            Factor::Table(t) => cx.load_f32(*t, i),
        }
    }
}

/// The window of a pool over `x` producing `out`, checked.
pub(super) fn pool_window(
    cx: &KernelCx<'_, '_>,
    p: &PoolAttrs,
    x: &Operand,
    out: &Operand,
) -> CgResult<Window> {
    let (xs, os) = (x.shape(), out.shape());
    if xs.len() < 3 || os.len() != xs.len() || xs[..2] != os[..2] {
        return Err(cx.unsupported(format!(
            "input {} and output {} must be [N,C,spatial…] alike",
            x.ty, out.ty
        )));
    }
    let r = xs.len() - 2;
    if p.pads.len() != 2 * r {
        return Err(cx.unsupported(format!("pads {:?} must have {} entries", p.pads, 2 * r)));
    }
    let win = Window {
        src: os[2..].to_vec(),
        dst: xs[2..].to_vec(),
        kernel: p.kernel.clone(),
        strides: p.strides.clone(),
        dilations: p.dilations.clone(),
        pads: p.pads[..r].to_vec(),
    };
    win.validate().map_err(|m| cx.unsupported(m))?;
    Ok(win)
}

/// Emits the body of the node function for MaxPool and AveragePool.
pub fn emit<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    node: &Node,
    ins: &[Operand<'_, 'ctx>],
    out: &Operand<'_, 'ctx>,
) -> CgResult<()> {
    let (p, max) = match &node.op {
        Op::MaxPool(p) => (p, true),
        Op::AveragePool(p) => (p, false),
        _ => return Err(cx.unsupported("not a pool")),
    };
    expect_inputs(cx, ins, 1)?;
    let x = &ins[0];
    if x.dtype() != DType::F32 || out.dtype() != DType::F32 {
        return Err(cx.unsupported("only f32 operands are supported"));
    }
    let win = pool_window(cx, p, x, out)?;
    if max {
        let fmax = |cx: &KernelCx<'_, 'ctx>, a: BasicValueEnum<'ctx>, b: BasicValueEnum<'ctx>| {
            Ok(fmax_nan(cx, a.into_float_value(), b.into_float_value())?.into())
        };
        let init = cx.f32(f32::NEG_INFINITY).into();
        if max_2d(cx, p, x, out, init, &fmax)?.is_some() {
            return Ok(());
        }
    }
    let (xs, os) = (x.shape(), out.shape());
    let r = xs.len() - 2;
    let walk = Walk::new(cx, win);
    let (x_plane, o_plane): (usize, usize) = (xs[2..].iter().product(), os[2..].iter().product());
    let to_i64 = |v: Vec<usize>| v.into_iter().map(|s| s as i64).collect::<Vec<i64>>();
    let (x_st, o_st) = (to_i64(strides_of(&xs[2..])), to_i64(strides_of(&os[2..])));
    let lead = r - 1;
    let (row_len, s_last) = (os[2 + lead] as i64, p.strides[lead] as i64);
    let factors: Vec<Factor> = if max {
        vec![]
    } else {
        (0..r)
            .map(|d| Factor::new(cx, &divisors(p, d, xs[2 + d], os[2 + d])))
            .collect()
    };
    let init = cx.f32(if max { f32::NEG_INFINITY } else { 0.0 });
    let planes = (xs[0] * xs[1]) as i64;
    let lead_shape = os[2..2 + lead].to_vec();
    cx.for_range(0, planes, |cx, pl| {
        let xb = cx.mul_c(pl, x_plane as i64)?;
        let ob = cx.mul_c(pl, o_plane as i64)?;
        cx.for_nest(&lead_shape, |cx, o_lead| {
            let row = cx.add(ob, cx.dot(o_lead, &o_st[..lead], 0)?)?;
            cx.for_range(0, row_len, |cx, e| {
                cx.store_f32(out.ptr, cx.add(row, e)?, init)
            })?;
            walk.emit(cx, o_lead, &x_st, &mut |cx, tap| {
                let xrow = cx.add(cx.add(xb, tap.dst_lead)?, tap.shift)?;
                for_bounds(cx, tap.bounds, |cx, ow| {
                    let v = cx.load_f32(x.ptr, cx.add(xrow, cx.mul_c(ow, s_last)?)?)?;
                    let oi = cx.add(row, ow)?;
                    let acc = cx.load_f32(out.ptr, oi)?;
                    let r = if max {
                        fmax_nan(cx, acc, v)?
                    } else {
                        cx.fadd(acc, v)?
                    };
                    cx.store_f32(out.ptr, oi, r)
                })
            })?;
            if max {
                return Ok(());
            }
            let mut row_div = cx.f32(1.0);
            for (d, f) in factors[..lead].iter().enumerate() {
                row_div = cx.fmul(row_div, f.at(cx, o_lead[d])?)?;
            }
            cx.for_range(0, row_len, |cx, ow| {
                let oi = cx.add(row, ow)?;
                let div = cx.fmul(row_div, factors[lead].at(cx, ow)?)?;
                let v = cx.load_f32(out.ptr, oi)?;
                cx.store_f32(out.ptr, oi, cx.fdiv(v, div)?)
            })
        })
    })
}

/// Widest padded row [`max_2d`] keeps on the stack (elements).
const MAX_ROW: usize = 4096;

/// A 2-D MaxPool as two passes per output row, both along contiguous or
/// evenly strided memory (what LLVM vectorizes): the elementwise maximum of
/// the window's input rows into a stack row bordered with `init` (the
/// padding, which never wins), then each output the maximum of its `KW`
/// taps in that row. Windows with no input cell give `init`. `max` is the
/// type's maximum (NaN wins for f32). `None` when the op is not 2-D, its
/// windows do not overlap, or the padded row is too wide for the stack.
pub(super) fn max_2d<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    p: &PoolAttrs,
    x: &Operand<'_, 'ctx>,
    out: &Operand<'_, 'ctx>,
    init: inkwell::values::BasicValueEnum<'ctx>,
    max: &dyn Fn(
        &KernelCx<'_, 'ctx>,
        inkwell::values::BasicValueEnum<'ctx>,
        inkwell::values::BasicValueEnum<'ctx>,
    ) -> CgResult<inkwell::values::BasicValueEnum<'ctx>>,
) -> CgResult<Option<()>> {
    let (xs, os) = (x.shape(), out.shape());
    if xs.len() != 4 || p.kernel.len() != 2 || p.pads.len() != 4 {
        return Ok(None);
    }
    let (h, w, oh, ow) = (xs[2], xs[3], os[2], os[3]);
    let (kh, kw) = (p.kernel[0], p.kernel[1]);
    let (sh, sw) = (p.strides[0], p.strides[1]);
    let (dh, dw) = (p.dilations[0], p.dilations[1]);
    let (pt, pl) = (p.pads[0], p.pads[1]);
    // Windows that do not overlap (2×2 stride 2) read each input once either
    // way, and the walk is faster there (measured: 4.7 vs 6.9 µs on a
    // 32×28×28 map); overlapping ones (3×3 stride 2: 384 → 262 µs on
    // 64×112×112) gain from the shared vertical maximum.
    let overlapping = kh * dh > sh || kw * dw > sw;
    if ow == 0 || oh == 0 || kw == 0 || kh == 0 || !overlapping {
        return Ok(None);
    }
    // Row j of the stack row is input column j - pl.
    let wp = ((ow - 1) * sw + (kw - 1) * dw + 1).max(pl + w);
    if wp > MAX_ROW {
        return Ok(None);
    }
    let dt = x.dtype();
    let row = cx.stack_array(dt, wp as u64)?;
    let win = w.min(wp - pl);
    let (h_i, w_i) = (h as i64, w as i64);
    // No window reaches above or below the input: every tap row is read.
    let every_row_inside = pt == 0 && (oh - 1) * sh + (kh - 1) * dh < h;
    cx.for_range(0, (xs[0] * xs[1]) as i64, |cx, pln| {
        let xb = cx.mul_c(pln, (h * w) as i64)?;
        let ob = cx.mul_c(pln, (oh * ow) as i64)?;
        cx.for_range(0, oh as i64, |cx, r| {
            let top = cx.add_c(cx.mul_c(r, sh as i64)?, -(pt as i64))?;
            // The input row of tap `ki`, its columns maxed into the row (or
            // copied, `first`).
            let vertical = |cx: &mut KernelCx<'_, 'ctx>, ih, first: bool| {
                let src = cx.add(xb, cx.mul_c(ih, w_i)?)?;
                cx.for_range(0, win as i64, |cx, c| {
                    let v = cx.load(dt, x.ptr, cx.add(src, c)?)?;
                    let at = cx.add_c(c, pl as i64)?;
                    let m = if first {
                        v
                    } else {
                        max(cx, cx.load(dt, row, at)?, v)?
                    };
                    cx.store(dt, row, at, m)
                })
            };
            if every_row_inside {
                // Only the border columns need the padding value.
                cx.for_range(0, pl as i64, |cx, j| cx.store(dt, row, j, init))?;
                cx.for_range((pl + win) as i64, wp as i64, |cx, j| {
                    cx.store(dt, row, j, init)
                })?;
                for ki in 0..kh {
                    let ih = cx.add_c(top, (ki * dh) as i64)?;
                    vertical(cx, ih, ki == 0)?;
                }
            } else {
                cx.for_range(0, wp as i64, |cx, j| cx.store(dt, row, j, init))?;
                for ki in 0..kh {
                    let ih = cx.add_c(top, (ki * dh) as i64)?;
                    let ok = cx.b.build_and(
                        cx.icmp(inkwell::IntPredicate::SGE, ih, cx.i64(0))?,
                        cx.icmp(inkwell::IntPredicate::SLT, ih, cx.i64(h_i))?,
                        "",
                    )?;
                    super::quant::if_else(cx, ok, |cx| vertical(cx, ih, false), |_| Ok(()))?;
                }
            }
            let orow = cx.add(ob, cx.mul_c(r, ow as i64)?)?;
            cx.for_range(0, ow as i64, |cx, o| {
                let base = cx.mul_c(o, sw as i64)?;
                let mut m = cx.load(dt, row, base)?;
                for kj in 1..kw {
                    let v = cx.load(dt, row, cx.add_c(base, (kj * dw) as i64)?)?;
                    m = max(cx, m, v)?;
                }
                cx.store(dt, out.ptr, cx.add(orow, o)?, m)
            })
        })
    })?;
    Ok(Some(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(k: usize, s: usize, pads: [usize; 2], include: bool) -> PoolAttrs {
        PoolAttrs {
            kernel: vec![k],
            strides: vec![s],
            pads: pads.to_vec(),
            dilations: vec![1],
            ceil_mode: true,
            count_include_pad: include,
        }
    }

    #[test]
    fn divisors_count_pads_but_not_the_overhang() {
        // Input 5, kernel 3, stride 2, pads 1/1: windows start at -1, 1, 3;
        // with ceil_mode a 4th would start at 5 (past the input: not emitted).
        let p = attrs(3, 2, [1, 1], false);
        assert_eq!(divisors(&p, 0, 5, 3), vec![2.0, 3.0, 2.0]);
        let p = attrs(3, 2, [1, 1], true);
        assert_eq!(divisors(&p, 0, 5, 3), vec![3.0, 3.0, 3.0]);
        // Input 6, kernel 3, stride 2, pads 0/0, ceil: windows at 0, 2, 4 (4..7 overhangs by 1).
        let p = attrs(3, 2, [0, 0], true);
        assert_eq!(divisors(&p, 0, 6, 3), vec![3.0, 3.0, 2.0]);
        let p = attrs(3, 2, [0, 0], false);
        assert_eq!(divisors(&p, 0, 6, 3), vec![3.0, 3.0, 2.0]);
    }
}
