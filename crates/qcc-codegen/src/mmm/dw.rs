//! Depthwise float convolution (one input channel per group, 1-D and 2-D,
//! NCHW): the f32 twin of `qdw.rs`, on the same plan (`QDwPlan`, 4-byte
//! elements).
//!
//! Per input channel, the plane is copied into the node's scratch with a
//! border of zeros and rows wide enough that every vector load stays inside
//! its row, so no tap tests bounds. Each output row is then computed `VL`
//! positions at a time: the `KH·KW` weights and the bias of the output
//! channel sit in registers as splats, each tap is one vector load (for a
//! stride `s`, `s·VL` floats and a shuffle keeping every `s`-th) and one
//! fused multiply-add; the residual (ConvAdd) and the clamp end each vector,
//! and the last vector of a row loads its residual under a constant mask
//! and stores only its valid lanes (`qdw::store_prefix`: power-of-two
//! pieces; AMD's masked float stores are slow microcode: a 7-wide row's
//! 960-channel layer 0.045 → 0.030 ms).
//! A column stride of 2 reads a plane split into its even and odd padded
//! columns instead (`QDwPlan::phases`), so that every tap is one contiguous
//! load again; that plane is written from the input in one pass
//! (`qdw::split_phases`), not by splitting a padded copy (MobileNetV2's
//! 96-channel 112² stride-2 layer 0.38 → 0.25 ms on Zen 3, side by side). (`mmm::dw_plan` sends column strides 1 and 2 here; the
//! others stay on the direct loops of `kernels::conv`.)

use super::qconv::pad_planes_of;
use super::qdw::{lane_mask, split_phases, store_prefix, tap, QDwPlan};
use crate::cx::{CgResult, KernelCx, Operand};
use crate::kernels::conv::const_f32_table;
use crate::CodegenError;
use inkwell::types::{BasicTypeEnum, VectorType};
use inkwell::values::{BasicValue, IntValue, PointerValue, VectorValue};
use inkwell::FloatPredicate;

/// Emits the convolution. `w` are the constant weights `[OC][1][KH][KW]`,
/// `bias` the constant bias (or none); `res` is added to every output, which
/// is then clamped to `lo..=hi` (`±inf`: no clamp).
#[allow(clippy::too_many_arguments)]
pub fn emit<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    p: &QDwPlan,
    x: &Operand<'_, 'ctx>,
    w: &[f32],
    bias: Option<&[f32]>,
    res: Option<PointerValue<'ctx>>,
    (lo, hi): (f32, f32),
    out: &Operand<'_, 'ctx>,
) -> CgResult<()> {
    let oc = p.c * p.mult;
    let taps = p.kh * p.kw;
    let wt = const_f32_table(cx, "dw.w", w);
    let zeros = vec![0.0; oc];
    let bt = const_f32_table(cx, "dw.bias", bias.unwrap_or(&zeros));
    let s = cx
        .scratch
        .ok_or_else(|| cx.unsupported("no scratch for the padded plane"))?;
    // Column stride 2: the taps read the two-phase copy, after the plane.
    let phased = if p.phases > 1 {
        Some(cx.gep_bytes(s, p.plane_bytes() as i64)?)
    } else {
        None
    };
    let (hw, ohw) = ((p.h * p.w) as i64, (p.oh * p.ow) as i64);
    let vl = p.vl as u32;
    let clamp = [
        cx.splat(cx.f32(lo).into(), vl)?,
        cx.splat(cx.f32(hi).into(), vl)?,
    ];
    cx.for_range(0, p.batch as i64, |cx, bi| {
        cx.for_range(0, p.c as i64, |cx, c| {
            let plane = cx.add(cx.mul_c(bi, p.c as i64)?, c)?;
            let xc = cx.gep_f32(x.ptr, cx.mul_c(plane, hw)?)?;
            match phased {
                Some(sf) => split_phases(cx, p, xc, sf, 0, true)?,
                None => pad_planes_of(cx, 4, (xc, 1, p.h, p.w), (s, p.hp, p.wps), p.pad, 0)?,
            }
            cx.for_range(0, p.mult as i64, |cx, j| {
                let o = cx.add(cx.mul_c(c, p.mult as i64)?, j)?;
                let oplane = cx.add(cx.mul_c(bi, oc as i64)?, o)?;
                let o_at = cx.mul_c(oplane, ohw)?;
                let ws: Vec<VectorValue> = (0..taps)
                    .map(|t| {
                        let i = cx.add_c(cx.mul_c(o, taps as i64)?, t as i64)?;
                        cx.splat(cx.load_f32(wt, i)?.into(), vl)
                    })
                    .collect::<CgResult<_>>()?;
                let row = Row {
                    p,
                    s: phased.unwrap_or(s),
                    ws: &ws,
                    bias: cx.splat(cx.load_f32(bt, o)?.into(), vl)?,
                    clamp,
                    clamped: (lo, hi) != (f32::NEG_INFINITY, f32::INFINITY),
                };
                let oc_ptr = cx.gep_f32(out.ptr, o_at)?;
                let rc_ptr = res.map(|r| cx.gep_f32(r, o_at)).transpose()?;
                cx.for_range(0, p.oh as i64, |cx, oy| {
                    let at = cx.mul_c(oy, p.ow as i64)?;
                    let orow = cx.gep_f32(oc_ptr, at)?;
                    let rrow = rc_ptr.map(|r| cx.gep_f32(r, at)).transpose()?;
                    // Whole vectors in a loop, then the masked tail.
                    super::for_blocks(cx, p.ow, p.vl, |cx, v, len| {
                        let o0 = cx.mul_c(v, p.vl as i64)?;
                        row.vector(cx, oy, o0, (orow, rrow), len)
                    })
                })
            })
        })
    })
}

struct Row<'r, 'ctx> {
    p: &'r QDwPlan,
    s: PointerValue<'ctx>,
    ws: &'r [VectorValue<'ctx>],
    bias: VectorValue<'ctx>,
    clamp: [VectorValue<'ctx>; 2],
    clamped: bool,
}

impl<'ctx> Row<'_, 'ctx> {
    /// Output positions `[o0, o0 + valid)` of row `oy` (`valid <= VL`).
    fn vector(
        &self,
        cx: &mut KernelCx<'_, 'ctx>,
        oy: IntValue<'ctx>,
        o0: IntValue<'ctx>,
        (orow, rrow): (PointerValue<'ctx>, Option<PointerValue<'ctx>>),
        valid: usize,
    ) -> CgResult<()> {
        let p = self.p;
        let vt = cx.f32_t().vec_type(p.vl as u32);
        let base = p.float_base(cx, oy, o0)?;
        let mut acc = fma_taps(cx, p, self.s, base, self.ws, self.bias)?;
        let dst = cx.gep_f32(orow, o0)?;
        let mask = (valid < p.vl).then(|| lane_mask(cx, p.vl, valid));
        if let Some(r) = rrow {
            let rv = load(cx, vt, cx.gep_f32(r, o0)?, mask)?;
            acc = cx.b.build_float_add(acc, rv, "")?;
        }
        if self.clamped {
            let b = cx.b;
            let [lo, hi] = self.clamp;
            let below = b.build_float_compare(FloatPredicate::OLT, acc, lo, "")?;
            let x = b.build_select(below, lo, acc, "")?.into_vector_value();
            let above = b.build_float_compare(FloatPredicate::OGT, x, hi, "")?;
            acc = b.build_select(above, hi, x, "")?.into_vector_value();
        }
        store_prefix(cx, dst, acc, valid)
    }
}

/// `init + Σ taps · ws` for the `VL` outputs whose windows start at `base`
/// (`QDwPlan::float_base`) of the padded f32 plane `plane` (strided taps of
/// a one-phase plane shuffled by `tap`).
///
/// Each kernel row is its own chain of fused multiply-adds (the first
/// starting from `init`), summed at the end: one chain of `KH·KW` dependent
/// FMAs made every vector wait its whole latency (3×3: 36 cycles on Zen 3),
/// more than the out-of-order window hides behind a short row of vectors.
pub(super) fn fma_taps<'ctx>(
    cx: &KernelCx<'_, 'ctx>,
    p: &QDwPlan,
    plane: PointerValue<'ctx>,
    base: IntValue<'ctx>,
    ws: &[VectorValue<'ctx>],
    init: VectorValue<'ctx>,
) -> CgResult<VectorValue<'ctx>> {
    let vl = p.vl as u32;
    let vt = cx.f32_t().vec_type(vl);
    let mut rows = Vec::with_capacity(p.kh);
    for ki in 0..p.kh {
        let mut acc = if ki == 0 { init } else { vt.const_zero() };
        for kj in 0..p.kw {
            let (off, sw) = p.float_tap(ki, kj);
            let load_t = cx.f32_t().vec_type(vl * sw as u32);
            let v = tap(cx, cx.gep_f32(plane, cx.add_c(base, off)?)?, load_t, vl, sw)?;
            let w = ws[ki * p.kw + kj];
            acc = if ki > 0 && kj == 0 {
                cx.b.build_float_mul(v, w, "")?
            } else {
                cx.call_intrinsic(
                    "llvm.fmuladd",
                    &[vt.into()],
                    &[v.into(), w.into(), acc.into()],
                )?
                .into_vector_value()
            };
        }
        rows.push(acc);
    }
    let mut rows = rows.into_iter();
    let first = rows.next().unwrap_or(init);
    rows.try_fold(first, |a, r| cx.b.build_float_add(a, r, ""))
        .map_err(Into::into)
}

/// A vector load at `p`, under `mask` when given (masked lanes read 0).
pub(crate) fn load<'ctx>(
    cx: &KernelCx<'_, 'ctx>,
    vt: VectorType<'ctx>,
    p: PointerValue<'ctx>,
    mask: Option<VectorValue<'ctx>>,
) -> CgResult<VectorValue<'ctx>> {
    let Some(mask) = mask else {
        let v = cx.b.build_load(vt, p, "")?;
        if let Some(i) = v.as_instruction_value() {
            i.set_alignment(4)
                .map_err(|e| CodegenError::Llvm(e.to_string()))?;
        }
        return Ok(v.into_vector_value());
    };
    let tys: [BasicTypeEnum; 2] = [vt.into(), p.get_type().into()];
    let v = cx.call_intrinsic(
        "llvm.masked.load",
        &tys,
        &[p.into(), mask.into(), vt.const_zero().into()],
    )?;
    Ok(v.into_vector_value())
}
