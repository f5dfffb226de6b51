//! QConv: integer N-d convolution (groups/depthwise, strides, dilations,
//! pads; padded cells contribute 0) with a per-channel epilogue.
//!
//! `acc[m] = bias[m] + Σ (x - zx) * w`, accumulated in wrapping i32: exact
//! because the worst case `max|x - zx| * Σ|w[m]| + |bias[m]|` is checked
//! against i32 at compile time (weights and bias must be constants). Each
//! product of an 8-bit value and a weight is one exact 16-bit multiply
//! (32-bit when a zero point outside the input type makes `|x - zx| > 255`).
//!
//! Two schedules:
//! * **dot** (enough input channels × taps and output channels per group):
//!   per output position, the receptive field is packed into a contiguous
//!   i8 patch (padded cells hold the zero point; positions whose taps are
//!   all inside skip the bounds tests), then each output channel
//!   is one contiguous dot product with its weight row (`qgemm::dot_rows`,
//!   the place for ISA dot-product instructions); `zx * Σw` is folded into
//!   the bias at compile time.
//! * **rows** (depthwise, few channels, or patches too large for the
//!   stack): like the float conv, per output row and block of output
//!   channels, `x - zx` is multiplied by a broadcast weight and added into
//!   an i32 scratch row (chunked for long rows), the innermost loop running
//!   along the row; taps that land in the padding are skipped by
//!   compile-time bounds (`conv::Walk`).

use super::conv::{for_bounds, Walk, Window};
use super::expect_inputs;
use super::qgemm::{
    const_of, dot_rows, dot_shift, fold_bias, pack_rows, packed_rows, Row, DOT_BLOCK,
};
use super::quant::{
    chunk_width, const_i32_table, const_i8_table, for_chunks, i32_wrapping, iadd, if_else, imul,
    isub, load_ext, load_i16, max_centered, mul_i16, need_int8, Chan, EpiEmit, EpiParams,
};
use crate::cx::{CgResult, KernelCx, Operand};
use inkwell::values::{IntValue, PointerValue};
use inkwell::IntPredicate;
use qcc_ir::infer::int8_range;
use qcc_ir::{strides_of, DType, Node, Op};

/// Output channels per block of the rows schedule.
const OC_BLOCK: usize = 4;
/// Largest packed patch (bytes on the stack) of the dot schedule.
const MAX_PATCH: usize = 4096;
/// The dot schedule needs at least this many reduction elements…
const MIN_DOT_LEN: usize = 32;
/// …and this many output channels per group to share each packed patch.
const MIN_DOT_CHANNELS: usize = 8;

fn i64s(v: Vec<usize>) -> Vec<i64> {
    v.into_iter().map(|s| s as i64).collect()
}

/// Static facts of one QConv node.
struct Plan {
    batch: usize,
    groups: usize,
    /// Input / output channels per group.
    cg: usize,
    mg: usize,
    x_sp: Vec<usize>,
    o_sp: Vec<usize>,
    win: Window,
    /// Taps per (output channel, input channel).
    kprod: usize,
}

impl Plan {
    fn new(a: &qcc_ir::ConvAttrs, x: &[usize], w: &[usize], out: &[usize]) -> Result<Plan, String> {
        if x.len() < 3 || w.len() != x.len() || out.len() != x.len() {
            return Err(format!(
                "input {x:?}, weight {w:?} and output {out:?} must be [N,C,spatial…] of one rank"
            ));
        }
        let r = x.len() - 2;
        if a.pads.len() != 2 * r {
            return Err(format!("pads {:?} must have {} entries", a.pads, 2 * r));
        }
        let g = a.group;
        let (c, m) = (x[1], out[1]);
        if g == 0 || c % g != 0 || m % g != 0 || x[0] != out[0] || w[0] != m || w[1] * g != c {
            return Err(format!(
                "weight {w:?} does not match {c} input / {m} output channels in {g} groups"
            ));
        }
        let mut win = Window {
            src: out[2..].to_vec(),
            dst: x[2..].to_vec(),
            kernel: w[2..].to_vec(),
            strides: a.strides.clone(),
            dilations: a.dilations.clone(),
            pads: a.pads[..r].to_vec(),
        };
        win.validate()?;
        let (mut x_sp, mut o_sp) = (x[2..].to_vec(), out[2..].to_vec());
        // A 1×1 unit-stride unpadded window maps every position to itself:
        // one long row.
        let pointwise = win.kernel.iter().all(|&k| k == 1)
            && win.strides.iter().all(|&s| s == 1)
            && a.pads.iter().all(|&p| p == 0)
            && win.src == win.dst
            && r > 1;
        if pointwise {
            let n: usize = win.src.iter().product();
            (x_sp, o_sp) = (vec![n], vec![n]);
            win = Window {
                src: vec![n],
                dst: vec![n],
                kernel: vec![1],
                strides: vec![1],
                dilations: vec![1],
                pads: vec![0],
            };
        }
        Ok(Plan {
            batch: x[0],
            groups: g,
            cg: c / g,
            mg: m / g,
            kprod: win.kernel.iter().product(),
            x_sp,
            o_sp,
            win,
        })
    }

    /// Reduction length of one output (input channels per group × taps).
    fn k_len(&self) -> usize {
        self.cg * self.kprod
    }

    /// Whether the dot schedule applies: a patch that fits the stack, long
    /// enough dot products, enough channels to share each patch, and a zero
    /// point the patch can hold as padding.
    fn use_dot(&self, zx_fits: bool) -> bool {
        let k = self.k_len();
        zx_fits && (MIN_DOT_LEN..=MAX_PATCH).contains(&k) && self.mg >= MIN_DOT_CHANNELS
    }
}

/// Emits the body of the node function for QConv.
pub fn emit<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    node: &Node,
    ins: &[Operand<'_, 'ctx>],
    out: &Operand<'_, 'ctx>,
) -> CgResult<()> {
    expect_inputs(cx, ins, 3)?;
    let Op::QConv {
        conv,
        x_zero_point,
        epi,
        to,
    } = &node.op
    else {
        return Err(cx.unsupported("not a quantized convolution"));
    };
    let (x, w, bias) = (&ins[0], &ins[1], &ins[2]);
    let rx = need_int8(cx, x, "input")?;
    if out.dtype() != *to {
        return Err(cx.unsupported(format!("output {} is not of type {to}", out.ty)));
    }
    let plan = Plan::new(conv, x.shape(), w.shape(), out.shape()).map_err(|m| cx.unsupported(m))?;
    let m_all = plan.groups * plan.mg;
    if bias.shape() != [m_all] {
        return Err(cx.unsupported(format!("bias {} must be [{m_all}]", bias.ty)));
    }
    let wv = const_of(cx, w, DType::I8, "weight")?;
    let bv = const_of(cx, bias, DType::I32, "bias")?;
    let zx = *x_zero_point;
    let e = EpiEmit::new(cx, epi, *to, m_all)?;
    let k_len = plan.k_len();
    // Weights and bias are constants here: the int8 microkernels, when the
    // plan applies and the memory plan gave the scratch it needs.
    let facts = cx.target.for_weights(&wv, &w.ty);
    let mp = crate::mmm::qconv_plan(node, &x.ty, &w.ty, &out.ty, (true, true), &facts);
    if let Some(mp) = mp.filter(|_| cx.scratch.is_some()) {
        let shift = mp.ukr.dot.act_shift(x.dtype());
        let folded = fold_bias(cx, &wv, &bv, k_len, rx, *x_zero_point, shift)?;
        return crate::mmm::qconv::emit(cx, &mp, x, &wv, &folded, *x_zero_point, epi, out);
    }
    let dp = crate::mmm::qdw_plan(node, &x.ty, &w.ty, &out.ty, (true, true), &cx.target);
    if let Some(dp) = dp.filter(|_| cx.scratch.is_some()) {
        let folded = fold_bias(cx, &wv, &bv, k_len, rx, *x_zero_point, 0)?;
        return crate::mmm::qdw::emit(cx, &dp, x, &wv, &folded, *x_zero_point, epi, out);
    }
    // The worst case is checked (and the bias folded) for either schedule.
    let zx_fits = int8_range(x.dtype()).is_some_and(|(lo, hi)| (lo..=hi).contains(&zx));
    let dot = plan.use_dot(zx_fits);
    let shift = if dot {
        dot_shift(cx, x.dtype(), k_len as i64)
    } else {
        0
    };
    let folded = fold_bias(cx, &wv, &bv, k_len, rx, zx, shift)?;
    if dot {
        // Weights within [-8, 7] on bare metal: two per byte.
        let wrows = if pack_rows(cx, facts.stored_bits, x.dtype(), k_len as i64) {
            let t = const_i8_table(cx, "qconv.w4", &packed_rows(&wv, k_len));
            (t, k_len.div_ceil(2) as i64, true)
        } else {
            (w.ptr, k_len as i64, false)
        };
        emit_dot(cx, &plan, x, wrows, &folded, zx, &e, out)
    } else {
        // The rows schedule skips padded cells and subtracts zx per element:
        // the unfolded bias.
        let plain: Vec<i32> = bv.iter().map(|&b| b as i32).collect();
        emit_rows(cx, &plan, (x, rx), w, &plain, zx, &e, out)
    }
}

/// The dot schedule: pack each receptive field, then one dot product per
/// output channel.
#[allow(clippy::too_many_arguments)]
fn emit_dot<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    p: &Plan,
    x: &Operand<'_, 'ctx>,
    (w_ptr, w_row, packed): (PointerValue<'ctx>, i64, bool),
    folded: &[i32],
    zx: i32,
    e: &EpiEmit<'ctx>,
    out: &Operand<'_, 'ctx>,
) -> CgResult<()> {
    let r = p.win.rank();
    let win = &p.win;
    let k_len = p.k_len() as i64;
    let xdt = x.dtype();
    let (x_plane, o_plane): (usize, usize) = (p.x_sp.iter().product(), p.o_sp.iter().product());
    let (x_st, o_st) = (i64s(strides_of(&p.x_sp)), i64s(strides_of(&p.o_sp)));
    let k_st = i64s(strides_of(&win.kernel));
    let (c_all, m_all) = ((p.groups * p.cg) as i64, (p.groups * p.mg) as i64);
    // Dims where some tap of some position lands in the padding.
    let checked: Vec<bool> = (0..r)
        .map(|d| (0..win.src[d]).any(|o| win.taps_at(d, o) != (0, win.kernel[d] as i64)))
        .collect();
    // Per dim, the output positions whose taps are all inside.
    let inner: Vec<(i64, i64)> = (0..r)
        .map(|d| {
            let all = |o: &usize| win.taps_at(d, *o) == (0, win.kernel[d] as i64);
            let lo = (0..win.src[d]).find(all).unwrap_or(0) as i64;
            let hi = (0..win.src[d]).rev().find(all).map_or(lo, |o| o as i64 + 1);
            (lo, hi.max(lo))
        })
        .collect();
    let patch = cx.stack_array(xdt, k_len as u64)?;
    let slots = cx.stack_array(DType::I32, DOT_BLOCK as u64)?;
    let bias_ptr = const_i32_table(cx, "qconv.bias", folded);
    let zx_byte = cx.i8_t().const_int(zx as u8 as u64, false);
    let full = (p.mg / DOT_BLOCK * DOT_BLOCK) as i64;
    let tail = p.mg % DOT_BLOCK;
    let o_sp = p.o_sp.clone();
    let kernel = win.kernel.clone();
    cx.for_range(0, p.batch as i64, |cx, n| {
        cx.for_range(0, p.groups as i64, |cx, g| {
            cx.for_nest(&o_sp, |cx, pos| {
                // 1. Pack the receptive field: patch[c * kprod + k] (zx where
                //    padded). Interior positions (every tap inside) skip the tests.
                let pack = |cx: &mut KernelCx<'_, 'ctx>, test: &[bool]| {
                    cx.for_range(0, p.cg as i64, |cx, c| {
                        let gc = cx.add(cx.mul_c(g, p.cg as i64)?, c)?;
                        let xc = cx.mul_c(cx.add(cx.mul_c(n, c_all)?, gc)?, x_plane as i64)?;
                        let pc = cx.mul_c(c, p.kprod as i64)?;
                        cx.for_nest(&kernel, |cx, ks| {
                            let mut xi = xc;
                            let mut inside: Option<IntValue> = None;
                            for d in 0..r {
                                let at = cx.mul_c(pos[d], win.strides[d] as i64)?;
                                let at = cx.add(at, cx.mul_c(ks[d], win.dilations[d] as i64)?)?;
                                let at = cx.add_c(at, -(win.pads[d] as i64))?;
                                if test[d] {
                                    let lim = cx.i64(win.dst[d] as i64);
                                    let ok = cx.icmp(IntPredicate::ULT, at, lim)?;
                                    inside = Some(match inside {
                                        None => ok,
                                        Some(i) => cx.b.build_and(i, ok, "")?,
                                    });
                                }
                                xi = cx.add(xi, cx.mul_c(at, x_st[d])?)?;
                            }
                            let v = match inside {
                                None => cx.load(xdt, x.ptr, xi)?.into_int_value(),
                                Some(ok) => {
                                    let safe = cx.select_i(ok, xi, xc)?;
                                    let v = cx.load(xdt, x.ptr, safe)?.into_int_value();
                                    cx.select_i(ok, v, zx_byte)?
                                }
                            };
                            let pi = cx.add(pc, cx.dot(ks, &k_st, 0)?)?;
                            cx.store(xdt, patch, pi, v.into())
                        })
                    })
                };
                let mut interior: Option<IntValue> = None;
                for (d, &(lo, hi)) in inner.iter().enumerate() {
                    if checked[d] {
                        let off = cx.add_c(pos[d], -lo)?;
                        let ok = cx.icmp(IntPredicate::ULT, off, cx.i64(hi - lo))?;
                        interior = Some(match interior {
                            None => ok,
                            Some(i) => cx.b.build_and(i, ok, "")?,
                        });
                    }
                }
                match interior {
                    None => pack(cx, &checked)?,
                    Some(ok) => if_else(
                        cx,
                        ok,
                        |cx| pack(cx, &vec![false; r]),
                        |cx| pack(cx, &checked),
                    )?,
                }
                // 2. One dot product per output channel of the group.
                let po = cx.dot(pos, &o_st, 0)?;
                let xrow = Row {
                    ptr: patch,
                    off: cx.i64(0),
                    dt: xdt,
                    packed: false,
                };
                let block = |cx: &mut KernelCx<'_, 'ctx>, m0: IntValue<'ctx>, mb: usize| {
                    let gm0 = cx.add(cx.mul_c(g, p.mg as i64)?, m0)?;
                    let ms: Vec<IntValue> = (0..mb)
                        .map(|t| cx.add_c(gm0, t as i64))
                        .collect::<CgResult<_>>()?;
                    let ws: Vec<Row> = ms
                        .iter()
                        .map(|&m| {
                            Ok(Row {
                                ptr: w_ptr,
                                off: cx.mul_c(m, w_row)?,
                                dt: DType::I8,
                                packed,
                            })
                        })
                        .collect::<CgResult<_>>()?;
                    let init: Vec<IntValue> = ms
                        .iter()
                        .map(|&m| Ok(cx.load(DType::I32, bias_ptr, m)?.into_int_value()))
                        .collect::<CgResult<_>>()?;
                    let accs = dot_rows(cx, xrow, &ws, k_len, &init, slots)?;
                    for (&m, acc) in ms.iter().zip(accs) {
                        let ep = e.params(cx, Chan::Dyn(m))?;
                        let q = e.apply(cx, acc, &ep)?;
                        let oc = cx.add(cx.mul_c(n, m_all)?, m)?;
                        let oi = cx.add(cx.mul_c(oc, o_plane as i64)?, po)?;
                        cx.store(out.dtype(), out.ptr, oi, q.into())?;
                    }
                    Ok(())
                };
                cx.for_range_step(0, full, DOT_BLOCK as i64, |cx, m0| block(cx, m0, DOT_BLOCK))?;
                if tail > 0 {
                    block(cx, cx.i64(full), tail)?;
                }
                Ok(())
            })
        })
    })
}

/// The rows schedule: accumulate `(x - zx) * w` along output rows.
#[allow(clippy::too_many_arguments)]
fn emit_rows<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    p: &Plan,
    (x, x_range): (&Operand<'_, 'ctx>, (i32, i32)),
    w: &Operand<'_, 'ctx>,
    bias: &[i32],
    zx: i32,
    e: &EpiEmit<'ctx>,
    out: &Operand<'_, 'ctx>,
) -> CgResult<()> {
    let walk = Walk::new(cx, p.win.clone());
    let r = p.win.rank();
    let lead = r - 1;
    let xdt = x.dtype();
    let (x_plane, o_plane): (usize, usize) = (p.x_sp.iter().product(), p.o_sp.iter().product());
    let (x_st, o_st) = (i64s(strides_of(&p.x_sp)), i64s(strides_of(&p.o_sp)));
    let (c_all, m_all) = ((p.groups * p.cg) as i64, (p.groups * p.mg) as i64);
    let (row_len, s_last) = (p.o_sp[lead] as i64, p.win.strides[lead] as i64);
    let lead_shape = p.o_sp[..lead].to_vec();
    let mb_full = OC_BLOCK.min(p.mg).max(1);
    let width = chunk_width(row_len);
    let acc = cx.stack_array(DType::I32, (mb_full as i64 * width) as u64)?;
    let bias_ptr = const_i32_table(cx, "qconv.bias", bias);
    let zxv = i32_wrapping(cx, zx as i64);
    let kprod = p.kprod as i64;
    // `(x - zx) * w` fits i16 when |x - zx| <= 255 (|w| <= 128): one
    // 16-bit multiply per lane.
    let narrow = max_centered(x_range, zx) <= 255;

    let block = |cx: &mut KernelCx<'_, 'ctx>,
                 n: IntValue<'ctx>,
                 g: IntValue<'ctx>,
                 m0: IntValue<'ctx>,
                 mb: usize|
     -> CgResult<()> {
        let gm = cx.add(cx.mul_c(g, p.mg as i64)?, m0)?;
        let o_chan = cx.add(cx.mul_c(n, m_all)?, gm)?;
        let mut o_base = vec![];
        let mut bias_v = vec![];
        let mut params: Vec<EpiParams> = vec![];
        for j in 0..mb {
            let m = cx.add_c(gm, j as i64)?;
            o_base.push(cx.mul_c(cx.add_c(o_chan, j as i64)?, o_plane as i64)?);
            bias_v.push(cx.load(DType::I32, bias_ptr, m)?.into_int_value());
            params.push(e.params(cx, Chan::Dyn(m))?);
        }
        cx.for_nest(&lead_shape, |cx, o_lead| {
            let row_off = cx.dot(o_lead, &o_st[..lead], 0)?;
            for_chunks(cx, row_len, |cx, ch| {
                let c0 = ch.start(cx);
                // Scratch index of row j, position ow: j * width + ow - c0.
                let si = |cx: &KernelCx<'_, 'ctx>, j: usize, ow: IntValue<'ctx>| {
                    cx.add_c(cx.sub(ow, c0)?, j as i64 * width)
                };
                for_bounds(cx, ch.range(), |cx, ow| {
                    for (j, b) in bias_v.iter().enumerate() {
                        cx.store(DType::I32, acc, si(cx, j, ow)?, (*b).into())?;
                    }
                    Ok(())
                })?;
                cx.for_range(0, p.cg as i64, |cx, c| {
                    let gc = cx.add(cx.mul_c(g, p.cg as i64)?, c)?;
                    let xc = cx.mul_c(cx.add(cx.mul_c(n, c_all)?, gc)?, x_plane as i64)?;
                    let wb: Vec<IntValue> = (0..mb)
                        .map(|j| {
                            let row = cx.mul_c(cx.add_c(gm, j as i64)?, p.cg as i64)?;
                            cx.mul_c(cx.add(row, c)?, kprod)
                        })
                        .collect::<CgResult<_>>()?;
                    walk.emit(cx, o_lead, &x_st, &mut |cx, tap| {
                        let Some(bounds) = ch.clip(cx, tap.bounds)? else {
                            return Ok(());
                        };
                        let xrow = cx.add(cx.add(xc, tap.dst_lead)?, tap.shift)?;
                        let wv: Vec<IntValue> = wb
                            .iter()
                            .map(|b| {
                                let k = cx.add(*b, tap.k_flat)?;
                                if narrow {
                                    load_i16(cx, DType::I8, w.ptr, k)
                                } else {
                                    load_ext(cx, DType::I8, w.ptr, k)
                                }
                            })
                            .collect::<CgResult<_>>()?;
                        for_bounds(cx, bounds, |cx, ow| {
                            let xi = cx.add(xrow, cx.mul_c(ow, s_last)?)?;
                            let xv = isub(cx, load_ext(cx, xdt, x.ptr, xi)?, zxv)?;
                            let xv = if narrow {
                                cx.b.build_int_truncate(xv, cx.ctx.i16_type(), "")?
                            } else {
                                xv
                            };
                            for (j, wj) in wv.iter().enumerate() {
                                let i = si(cx, j, ow)?;
                                let a = cx.load(DType::I32, acc, i)?.into_int_value();
                                let prod = if narrow {
                                    mul_i16(cx, xv, *wj)?
                                } else {
                                    imul(cx, xv, *wj)?
                                };
                                let a = iadd(cx, a, prod)?;
                                cx.store(DType::I32, acc, i, a.into())?;
                            }
                            Ok(())
                        })
                    })
                })?;
                for (j, (ob, ep)) in o_base.iter().zip(&params).enumerate() {
                    let orow = cx.add(*ob, row_off)?;
                    for_bounds(cx, ch.range(), |cx, ow| {
                        let a = cx.load(DType::I32, acc, si(cx, j, ow)?)?.into_int_value();
                        let q = e.apply(cx, a, ep)?;
                        cx.store(out.dtype(), out.ptr, cx.add(orow, ow)?, q.into())
                    })?;
                }
                Ok(())
            })
        })
    };

    let full_end = (p.mg / mb_full * mb_full) as i64;
    let tail = p.mg % mb_full;
    cx.for_range(0, p.batch as i64, |cx, n| {
        cx.for_range(0, p.groups as i64, |cx, g| {
            cx.for_range_step(0, full_end, mb_full as i64, |cx, m0| {
                block(cx, n, g, m0, mb_full)
            })?;
            if tail > 0 {
                block(cx, n, g, cx.i64(full_end), tail)?;
            }
            Ok(())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use qcc_ir::ConvAttrs;

    fn attrs(r: usize, pads: usize, group: usize) -> ConvAttrs {
        ConvAttrs {
            strides: vec![1; r],
            pads: vec![pads; 2 * r],
            dilations: vec![1; r],
            group,
            output_padding: vec![0; r],
        }
    }

    #[test]
    fn plans_flatten_pointwise_and_reject_bad_weights() {
        let p =
            Plan::new(&attrs(2, 0, 1), &[1, 8, 5, 7], &[4, 8, 1, 1], &[1, 4, 5, 7]).expect("plan");
        assert_eq!((p.x_sp.clone(), p.k_len()), (vec![35], 8));
        let p =
            Plan::new(&attrs(2, 1, 2), &[1, 8, 5, 7], &[4, 4, 3, 3], &[1, 4, 5, 7]).expect("plan");
        assert_eq!((p.cg, p.mg, p.kprod), (4, 2, 9));
        assert!(Plan::new(&attrs(2, 1, 3), &[1, 8, 5, 7], &[4, 4, 3, 3], &[1, 4, 5, 7]).is_err());
        assert!(Plan::new(&attrs(2, 1, 1), &[1, 8, 5, 7], &[4, 4, 3, 3], &[1, 4, 5, 7]).is_err());
    }

    #[test]
    fn schedules() {
        let plan = |c: usize, m: usize, k: usize, g: usize| {
            let w = [m, c / g, k, k];
            Plan::new(&attrs(2, k / 2, g), &[1, c, 6, 6], &w, &[1, m, 6, 6]).expect("plan")
        };
        assert!(plan(8, 10, 3, 1).use_dot(true)); // K = 72, 10 channels
        assert!(!plan(8, 10, 3, 1).use_dot(false)); // zero point not storable
        assert!(!plan(16, 16, 3, 16).use_dot(true)); // depthwise: K = 9
        assert!(!plan(3, 16, 3, 1).use_dot(true)); // K = 27
        assert!(!plan(64, 4, 3, 1).use_dot(true)); // 4 channels
        assert!(!plan(512, 16, 3, 1).use_dot(true)); // K = 4608: patch too large
        assert!(plan(64, 16, 1, 1).use_dot(true)); // pointwise, K = 64
    }
}
