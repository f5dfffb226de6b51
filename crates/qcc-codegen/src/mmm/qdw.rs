//! Depthwise integer convolution (QConv with one input channel per group,
//! 1-D and 2-D, NCHW): not a GEMM, so a kernel of its own.
//!
//! Per input channel, the plane is copied into the node's scratch with a
//! border of the input zero point (so no tap ever tests bounds, and the
//! caller folds `-zx · Σw` into the bias) and rows wide enough that every
//! vector load stays inside its row. Each output row is then computed
//! `VL` positions at a time: the `KH·KW` weights of the output channel sit
//! in registers as splats, each tap is one (strided) byte load widened to
//! i32 lanes, one multiply and one add, and the exact requantization
//! (`qukernel::requantize`) ends each vector; the last vector of a row
//! stores its valid lanes as power-of-two pieces ([`store_prefix`]).

use super::qconv::pad_planes;
use super::qukernel::requantize;
use super::{div_ceil, Conv2d, Simd};
use crate::cx::{CgResult, KernelCx, Operand};
use crate::portable::TargetFacts;
use crate::CodegenError;
use inkwell::types::VectorType;
use inkwell::values::{BasicValue, IntValue, PointerValue, VectorValue};
use qcc_ir::quant::Epilogue;
use qcc_ir::{ConvAttrs, DType};

/// The plan of one depthwise QConv.
#[derive(Clone, Debug, PartialEq)]
pub struct QDwPlan {
    /// The convolution's geometry (its fields read through `Deref`).
    pub geo: Conv2d,
    /// Output channels per input channel.
    pub mult: usize,
    /// Rows and row stride of the padded copy.
    pub hp: usize,
    pub wps: usize,
    /// Output positions per vector.
    pub vl: usize,
    /// Bytes per element of the padded copy (1 for int8, 4 for f32).
    pub elem: usize,
    /// int8 only: the taps run as f32 FMAs on a float copy of the padded
    /// plane, exact because every product and partial sum is an integer
    /// below 2^24 (`taps · 255 · 128 < 2^24`); on x86, where the 16-bit
    /// path is bound by its widening shuffles.
    pub f32_taps: bool,
    /// Column phases of the float plane: 1, or the column stride 2 (with
    /// `f32_taps`), when the float copy holds the even columns of every
    /// row, then the odd ones, so that every tap of a strided row is one
    /// contiguous load instead of a load of twice the width and a shuffle.
    /// That plane is written from the input directly ([`split_phases`]):
    /// no padded copy.
    pub phases: usize,
    /// Row stride of the float plane in elements (`wps` with one phase).
    pub frs: usize,
    /// int8 with AVX-512 VNNI and a kernel at most 4 wide: each kernel row
    /// of 16 outputs is one `vpdpbusd` on byte quads `[x(o·s), x(o·s+d),
    /// x(o·s+2d), 0]` gathered by one shuffle from a 64-byte load of the
    /// padded plane (flipped to u8 on the way), against the row's weights
    /// `[w0, w1, w2, 0]` in every lane.
    pub vnni: bool,
}

impl std::ops::Deref for QDwPlan {
    type Target = Conv2d;
    fn deref(&self) -> &Conv2d {
        &self.geo
    }
}

impl QDwPlan {
    /// The plan, or `None` when the convolution is not depthwise (one input
    /// channel per group) or has rank > 2; `mmm::qdw_plan` checks the
    /// target and the zero point first. The f32 depthwise kernel (`dw.rs`,
    /// `elem = 4`) shares it.
    pub fn new(
        a: &ConvAttrs,
        x: &[usize],
        wsh: &[usize],
        out: &[usize],
        facts: &TargetFacts,
        elem: usize,
    ) -> Option<QDwPlan> {
        let geo = Conv2d::of(a, x, wsh, out)?;
        let Conv2d {
            c,
            oc,
            oh,
            ow,
            kh,
            kw,
            stride,
            dil,
            ..
        } = geo;
        if a.group != c || wsh[1] != 1 || wsh[0] != oc || oc % c != 0 || c == 0 {
            return None;
        }
        let vl = match facts.simd {
            Simd::Avx512 => 16,
            Simd::Scalar => 4,
            _ => 8,
        };
        let hp = (oh - 1) * stride.0 + (kh - 1) * dil.0 + 1;
        // Every vector (including the last, partly masked one) reads inside its row.
        let reach = div_ceil(ow, vl) * vl * stride.1 + (kw - 1) * dil.1;
        let wps = reach.max(1);
        let vnni = elem == 1
            && facts.avx512vnni
            && vl == 16
            && kw <= 4
            && 15 * stride.1 + (kw - 1) * dil.1 < 64;
        let f32_taps = elem == 1
            && !vnni
            && matches!(facts.simd, Simd::Avx2 | Simd::Avx512)
            && kh * kw * 255 * 128 < 1 << 24;
        let phases = if (f32_taps || elem == 4) && stride.1 == 2 {
            2
        } else {
            1
        };
        // Each phase row holds whole vectors of 16 (`split_phases`) and
        // reaches `div_ceil(ow, vl) · vl + (kw-1)·dw / 2` like `wps` does.
        let frs = match phases {
            1 => wps,
            _ => div_ceil(wps, 2).next_multiple_of(16),
        };
        Some(QDwPlan {
            geo,
            mult: oc / c,
            hp,
            wps,
            vl,
            elem,
            f32_taps,
            phases,
            frs,
            vnni,
        })
    }

    /// Bytes of the padded plane (a whole number of cache lines; with the
    /// 64-byte loads of `vnni`, more lines, which the last row's loads may
    /// read); none with two phases.
    pub(super) fn plane_bytes(&self) -> usize {
        if self.phases > 1 {
            // `split_phases` writes the float plane from the input itself.
            return 0;
        }
        let slack = if self.vnni {
            (36 * self.elem).next_multiple_of(64)
        } else {
            0
        };
        (self.hp * self.wps * self.elem + slack).next_multiple_of(64)
    }

    /// Workspace scratch the node needs (the padded plane, and its float
    /// copy with `f32_taps`; or only the two-phase float plane), in bytes.
    pub fn scratch_bytes(&self) -> usize {
        let float = if self.f32_taps || self.phases > 1 {
            (self.phases * self.hp * self.frs).next_multiple_of(16) * 4
        } else {
            0
        };
        self.plane_bytes() + float
    }

    /// Offset in the float plane of the first tap of the vector of outputs
    /// `o0..` of row `oy`.
    pub(super) fn float_base<'ctx>(
        &self,
        cx: &KernelCx<'_, 'ctx>,
        oy: IntValue<'ctx>,
        o0: IntValue<'ctx>,
    ) -> CgResult<IntValue<'ctx>> {
        let (sh, sw) = (self.stride.0 as i64, self.stride.1 as i64);
        let step = sw / self.phases as i64;
        cx.add(cx.mul_c(oy, sh * self.frs as i64)?, cx.mul_c(o0, step)?)
    }

    /// Offset of tap `(ki, kj)` in the float plane from [`Self::float_base`],
    /// and the column step between the outputs of a vector (a shuffle when > 1).
    pub(super) fn float_tap(&self, ki: usize, kj: usize) -> (i64, i64) {
        let col = kj * self.dil.1;
        let ph = self.phases;
        let row = (col % ph) * self.hp + ki * self.dil.0;
        (
            (row * self.frs + col / ph) as i64,
            (self.stride.1 / ph) as i64,
        )
    }
}

/// Emits the convolution. `w` are the constant weights `[OC][1][KH][KW]`,
/// `bias` the folded bias per output channel (`bias - zx · Σw`).
#[allow(clippy::too_many_arguments)]
pub fn emit<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    p: &QDwPlan,
    x: &Operand<'_, 'ctx>,
    w: &[i64],
    bias: &[i32],
    zx: i32,
    epi: &Epilogue,
    out: &Operand<'_, 'ctx>,
) -> CgResult<()> {
    let oc = p.c * p.mult;
    let taps = p.kh * p.kw;
    let wi: Vec<i16> = w.iter().map(|&v| v as i16).collect();
    let wt = const_i16_table(cx, &wi);
    let signed = x.dtype() == DType::I8;
    // `vnni`: per channel and kernel row the word [w0, w1, w2, 0]; i8
    // activations are flipped to u8, which adds 128·Σw to every sum.
    let (quads, bias) = if p.vnni {
        let mut q = vec![0i8; oc * p.kh * 4];
        for o in 0..oc {
            for ki in 0..p.kh {
                for kj in 0..p.kw {
                    q[(o * p.kh + ki) * 4 + kj] = w[o * taps + ki * p.kw + kj] as i8;
                }
            }
        }
        let shift = if signed { 128 } else { 0 };
        let b: Vec<i32> = (0..oc)
            .map(|o| {
                let sum: i64 = w[o * taps..(o + 1) * taps].iter().sum();
                bias[o].wrapping_sub((shift * sum) as i32)
            })
            .collect();
        (
            Some(crate::kernels::quant::const_i8_table(cx, "qdw.quads", &q)),
            b,
        )
    } else {
        (None, bias.to_vec())
    };
    let tables = super::qukernel::epi_tables(cx, &bias, &epi.rescale, (1, oc, 1));
    let s = cx
        .scratch
        .ok_or_else(|| cx.unsupported("no scratch for the padded plane"))?;
    let (hw, ohw) = ((p.h * p.w) as i64, (p.oh * p.ow) as i64);
    let vl = p.vl as u32;
    let high = super::qukernel::requant_mode(&cx.target, &epi.rescale);
    // The float copy of the padded plane, after it in scratch.
    let sf = if p.f32_taps {
        Some(cx.gep_bytes(s, p.plane_bytes() as i64)?)
    } else {
        None
    };
    let out_params = [
        cx.splat(cx.i32(epi.zero_point).into(), vl)?,
        cx.splat(cx.i32(epi.min).into(), vl)?,
        cx.splat(cx.i32(epi.max).into(), vl)?,
    ];
    cx.for_range(0, p.batch as i64, |cx, bi| {
        cx.for_range(0, p.c as i64, |cx, c| {
            let plane = cx.add(cx.mul_c(bi, p.c as i64)?, c)?;
            let xc = cx.gep(DType::I8, x.ptr, cx.mul_c(plane, hw)?)?;
            match sf {
                Some(sf) if p.phases > 1 => split_phases(cx, p, xc, sf, zx, signed)?,
                Some(sf) => {
                    pad_planes(cx, (xc, 1, p.h, p.w), (s, p.hp, p.wps), p.pad, zx)?;
                    to_f32(cx, s, sf, p.hp * p.wps, signed)?
                }
                None => pad_planes(cx, (xc, 1, p.h, p.w), (s, p.hp, p.wps), p.pad, zx)?,
            }
            cx.for_range(0, p.mult as i64, |cx, j| {
                let o = cx.add(cx.mul_c(c, p.mult as i64)?, j)?;
                let oplane = cx.add(cx.mul_c(bi, oc as i64)?, o)?;
                let oc_ptr = cx.gep(DType::I8, out.ptr, cx.mul_c(oplane, ohw)?)?;
                let ws: Vec<VectorValue> = match quads {
                    // One word per kernel row, in all 16 lanes.
                    Some(qt) => (0..p.kh)
                        .map(|ki| {
                            let i = cx.add_c(cx.mul_c(o, p.kh as i64)?, ki as i64)?;
                            let word = cx.load(DType::I32, qt, i)?;
                            let v = cx.splat(word, vl)?;
                            Ok(cx
                                .b
                                .build_bit_cast(v, cx.i8_t().vec_type(4 * vl), "")?
                                .into_vector_value())
                        })
                        .collect::<CgResult<_>>()?,
                    None => (0..taps)
                        .map(|t| {
                            let i = cx.add_c(cx.mul_c(o, taps as i64)?, t as i64)?;
                            let i16t = cx.ctx.i16_type();
                            // SAFETY: `i` indexes the OC·taps weight table.
                            let ptr = unsafe { cx.b.build_in_bounds_gep(i16t, wt, &[i], "")? };
                            let v = cx.b.build_load(i16t, ptr, "")?.into_int_value();
                            if sf.is_some() {
                                let f = cx.b.build_signed_int_to_float(v, cx.f32_t(), "")?;
                                return cx.splat(f.into(), vl);
                            }
                            cx.splat(v.into(), vl)
                        })
                        .collect::<CgResult<_>>()?,
                };
                let params: Vec<VectorValue> = tables
                    .iter()
                    .map(|t| cx.splat(cx.load(DType::I32, *t, o)?, vl))
                    .collect::<CgResult<_>>()?;
                let row = Row {
                    p,
                    s,
                    sf,
                    ws: &ws,
                    params: [
                        params[0],
                        params[1],
                        params[2],
                        out_params[0],
                        out_params[1],
                        out_params[2],
                    ],
                    signed,
                    high,
                };
                cx.for_range(0, p.oh as i64, |cx, oy| {
                    let orow = cx.gep(DType::I8, oc_ptr, cx.mul_c(oy, p.ow as i64)?)?;
                    // Whole vectors in a loop, then the masked tail.
                    super::for_blocks(cx, p.ow, p.vl, |cx, v, len| {
                        let o0 = cx.mul_c(v, p.vl as i64)?;
                        row.vector(cx, oy, o0, orow, len)
                    })
                })
            })
        })
    })
}

struct Row<'r, 'ctx> {
    p: &'r QDwPlan,
    s: PointerValue<'ctx>,
    /// The float copy of the plane (`f32_taps`).
    sf: Option<PointerValue<'ctx>>,
    ws: &'r [VectorValue<'ctx>],
    params: [VectorValue<'ctx>; 6],
    signed: bool,
    /// The 32-bit requantization (`qukernel::high_shift`).
    high: super::qukernel::Requant,
}

impl<'ctx> Row<'_, 'ctx> {
    /// Output positions `[o0, o0 + valid)` of row `oy` (`valid <= VL`).
    fn vector(
        &self,
        cx: &mut KernelCx<'_, 'ctx>,
        oy: IntValue<'ctx>,
        o0: IntValue<'ctx>,
        orow: PointerValue<'ctx>,
        valid: usize,
    ) -> CgResult<()> {
        let p = self.p;
        let (sh, sw) = (p.stride.0 as i64, p.stride.1 as i64);
        let base = cx.add(cx.mul_c(oy, sh * p.wps as i64)?, cx.mul_c(o0, sw)?)?;
        let acc = match self.sf {
            Some(sf) => self.float_taps(cx, sf, p.float_base(cx, oy, o0)?)?,
            None if p.vnni => self.vnni_taps(cx, base)?,
            None => self.int_taps(cx, base)?,
        };
        let q = requantize(cx, acc, self.params, self.high)?;
        let dst = cx.gep(DType::I8, orow, o0)?;
        store_prefix(cx, dst, q, valid)
    }

    /// The taps as exact f32 FMAs on the float plane, converted to i32.
    fn float_taps(
        &self,
        cx: &KernelCx<'_, 'ctx>,
        sf: PointerValue<'ctx>,
        base: IntValue<'ctx>,
    ) -> CgResult<VectorValue<'ctx>> {
        let vl = self.p.vl as u32;
        let zero = cx.f32_t().vec_type(vl).const_zero();
        let acc = super::dw::fma_taps(cx, self.p, sf, base, self.ws, zero)?;
        Ok(cx
            .b
            .build_float_to_signed_int(acc, cx.i32_t().vec_type(vl), "")?)
    }

    /// The taps as one `vpdpbusd` per kernel row (`QDwPlan::vnni`).
    fn vnni_taps(
        &self,
        cx: &KernelCx<'_, 'ctx>,
        base: IntValue<'ctx>,
    ) -> CgResult<VectorValue<'ctx>> {
        let p = self.p;
        let vl = p.vl as u32;
        let (sw, dw) = (p.stride.1 as u32, p.dil.1 as u32);
        let b64 = cx.i8_t().vec_type(64);
        let zero = b64.const_zero();
        // Lane l, byte t: x(l·s + t·d) for t < KW, else a zero byte.
        let idx: Vec<u32> = (0..vl * 4)
            .map(|i| {
                let (l, t) = (i / 4, i % 4);
                if (t as usize) < p.kw {
                    l * sw + t * dw
                } else {
                    64
                }
            })
            .collect();
        let flip = VectorType::const_vector(&vec![cx.i8_t().const_int(0x80, false); 64]);
        let mut acc = cx.i32_t().vec_type(vl).const_zero();
        for ki in 0..p.kh {
            let off = (ki * p.dil.0 * p.wps) as i64;
            let ptr = cx.gep(DType::I8, self.s, cx.add_c(base, off)?)?;
            let l = tap(cx, ptr, b64, 64, 1)?;
            let mut q = cx.shuffle(l, zero, &idx)?;
            if self.signed {
                q = cx.b.build_xor(q, flip, "")?;
            }
            acc = crate::kernels::qdot::call_cast(
                cx,
                "llvm.x86.avx512.vpdpbusd.512",
                &[],
                acc.get_type().into(),
                &[acc.into(), q.into(), self.ws[ki].into()],
            )?
            .into_vector_value();
        }
        Ok(acc)
    }

    /// The taps as 16-bit products summed into i32 lanes.
    fn int_taps(
        &self,
        cx: &KernelCx<'_, 'ctx>,
        base: IntValue<'ctx>,
    ) -> CgResult<VectorValue<'ctx>> {
        let p = self.p;
        let vl = p.vl as u32;
        let sw = p.stride.1 as i64;
        let i32v = cx.i32_t().vec_type(vl);
        let i16v = cx.ctx.i16_type().vec_type(vl);
        let load_t = cx.i8_t().vec_type(vl * sw as u32);
        let mut acc = i32v.const_zero();
        for ki in 0..p.kh {
            for kj in 0..p.kw {
                let off = (ki * p.dil.0 * p.wps + kj * p.dil.1) as i64;
                let ptr = cx.gep(DType::I8, self.s, cx.add_c(base, off)?)?;
                let v = tap(cx, ptr, load_t, vl, sw)?;
                // One 16-bit multiply: |x · w| <= 255 · 128 < 2^15.
                let v = if self.signed {
                    cx.b.build_int_s_extend(v, i16v, "")?
                } else {
                    cx.b.build_int_z_extend(v, i16v, "")?
                };
                let prod = cx.b.build_int_mul(v, self.ws[ki * p.kw + kj], "")?;
                let prod = cx.b.build_int_s_extend(prod, i32v, "")?;
                acc = cx.b.build_int_add(acc, prod, "")?;
            }
        }
        Ok(acc)
    }
}

/// `dst[i] = src[i] as f32` for the `n` bytes of a padded plane (signed or
/// unsigned), 16 at a time: `src` holds whole cache lines and `dst` room
/// for `n` rounded up to 16.
fn to_f32<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    src: PointerValue<'ctx>,
    dst: PointerValue<'ctx>,
    n: usize,
    signed: bool,
) -> CgResult<()> {
    const V: u32 = 16;
    let (bt, it, ft) = (
        cx.i8_t().vec_type(V),
        cx.i32_t().vec_type(V),
        cx.f32_t().vec_type(V),
    );
    cx.for_range(0, div_ceil(n, V as usize) as i64, |cx, k| {
        let at = cx.mul_c(k, V as i64)?;
        let l = cx.b.build_load(bt, cx.gep(DType::I8, src, at)?, "")?;
        if let Some(i) = l.as_instruction_value() {
            i.set_alignment(1)
                .map_err(|e| CodegenError::Llvm(e.to_string()))?;
        }
        let b = l.into_vector_value();
        let w = if signed {
            cx.b.build_int_s_extend(b, it, "")?
        } else {
            cx.b.build_int_z_extend(b, it, "")?
        };
        let f = cx.b.build_signed_int_to_float(w, ft, "")?;
        let st = cx.b.build_store(cx.gep_f32(dst, at)?, f)?;
        st.set_alignment(4)
            .map_err(|e| CodegenError::Llvm(e.to_string()))?;
        Ok(())
    })
}

/// The input plane `src` (`h` rows of `w`, int8 or, `p.elem == 4`, f32)
/// straight into the two-phase float plane of `p` (`phases == 2`), its
/// border included: padded row `r`'s even columns at `r · frs`, its odd
/// ones at `(hp + r) · frs`, 16 of each per chunk of 32 padded columns.
/// The padding reads as `zx` (the input zero point; 0 for f32).
///
/// One pass over the input, not a padded copy and a split of it: every
/// chunk is one in-bounds load of `min(w, 32)` elements of its input row
/// (for the first and last chunks of a row, shifted to stay inside it)
/// and two shuffles against the border value, whose indices are constants
/// because the geometry is.
pub(super) fn split_phases<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    p: &QDwPlan,
    src: PointerValue<'ctx>,
    dst: PointerValue<'ctx>,
    zx: i32,
    signed: bool,
) -> CgResult<()> {
    const V: usize = 16;
    let float = p.elem == 4;
    let (w, pl) = (p.w as i64, p.pad.1 as i64);
    let pt = p.pad.0.min(p.hp);
    let hin = p.h.min(p.hp - pt);
    // Load width: a chunk's 32 padded columns, or the whole row if shorter.
    let l = (w as usize).min(2 * V) as u32;
    let (elem, lt) = if float {
        (DType::F32, cx.f32_t().vec_type(l))
    } else {
        (DType::I8, cx.i8_t().vec_type(l))
    };
    let border = cx.splat(cx.f32(zx as f32).into(), l)?;
    let fill = cx.splat(cx.f32(zx as f32).into(), V as u32)?;
    let odd_at = (p.hp * p.frs) as i64;
    let chunks = p.frs / V;
    // Stores one phase half (16 floats) at `at` floats into `drow`.
    let put = |cx: &KernelCx<'_, 'ctx>,
               drow: PointerValue<'ctx>,
               at: IntValue<'ctx>,
               half: VectorValue<'ctx>|
     -> CgResult<()> {
        let st = cx.b.build_store(cx.gep_f32(drow, at)?, half)?;
        st.set_alignment(4)
            .map_err(|e| CodegenError::Llvm(e.to_string()))?;
        Ok(())
    };
    // `l` elements at `at`, as floats (bytes widened first: shuffles of
    // floats against the border cost a blend, of bytes a lane at a time).
    let load = |cx: &KernelCx<'_, 'ctx>, at: PointerValue<'ctx>| -> CgResult<VectorValue<'ctx>> {
        let v = cx.b.build_load(lt, at, "")?;
        if let Some(i) = v.as_instruction_value() {
            i.set_alignment(1)
                .map_err(|e| CodegenError::Llvm(e.to_string()))?;
        }
        let v = v.into_vector_value();
        if float {
            return Ok(v);
        }
        let it = cx.i32_t().vec_type(l);
        let wide = if signed {
            cx.b.build_int_s_extend(v, it, "")?
        } else {
            cx.b.build_int_z_extend(v, it, "")?
        };
        Ok(cx
            .b
            .build_signed_int_to_float(wide, cx.f32_t().vec_type(l), "")?)
    };
    // Border rows: both phases all padding.
    let pad_rows = |cx: &mut KernelCx<'_, 'ctx>, r0: usize, r1: usize| -> CgResult<()> {
        cx.for_range(r0 as i64, r1 as i64, |cx, r| {
            for off in [0, odd_at] {
                let drow = cx.gep_f32(dst, cx.add_c(cx.mul_c(r, p.frs as i64)?, off)?)?;
                cx.for_range(0, chunks as i64, |cx, k| {
                    let st =
                        cx.b.build_store(cx.gep_f32(drow, cx.mul_c(k, V as i64)?)?, fill)?;
                    st.set_alignment(4)
                        .map_err(|e| CodegenError::Llvm(e.to_string()))?;
                    Ok(())
                })?;
            }
            Ok(())
        })
    };
    pad_rows(cx, 0, pt)?;
    // Chunks whose 32 columns all lie inside the input row: one loop.
    let interior = |k: usize| {
        let c0 = (2 * V * k) as i64 - pl;
        l as usize == 2 * V && c0 >= 0 && c0 + 2 * V as i64 <= w
    };
    let inner: Vec<usize> = (0..chunks).filter(|&k| interior(k)).collect();
    let (k0, k1) = (
        inner.first().copied().unwrap_or(0),
        inner.last().map_or(0, |k| k + 1),
    );
    let even: Vec<u32> = (0..V as u32).map(|j| 2 * j).collect();
    let odd: Vec<u32> = (0..V as u32).map(|j| 2 * j + 1).collect();
    cx.for_range(pt as i64, (pt + hin) as i64, |cx, r| {
        let srow = cx.gep(elem, src, cx.mul_c(cx.add_c(r, -(pt as i64))?, w)?)?;
        let erow = cx.gep_f32(dst, cx.mul_c(r, p.frs as i64)?)?;
        let orow = cx.gep_f32(erow, cx.i64(odd_at))?;
        for k in (0..chunks).filter(|&k| !(k0..k1).contains(&k)) {
            let c0 = (2 * V * k) as i64 - pl;
            let (lo, hi) = (c0.max(0), (c0 + 2 * V as i64).min(w));
            let at = cx.i64((V * k) as i64);
            if hi <= lo {
                put(cx, erow, at, cx.shuffle(border, border, &even[..])?)?;
                put(cx, orow, at, cx.shuffle(border, border, &even[..])?)?;
                continue;
            }
            let ls = lo.min(w - l as i64);
            let v = load(cx, cx.gep(elem, srow, cx.i64(ls))?)?;
            // Padded column `2Vk + i` reads lane `c0 + i - ls` when inside
            // the row, else the border (lane `l` of the pair).
            let lane = |i: u32| {
                let col = c0 + i as i64;
                if (lo..hi).contains(&col) {
                    (col - ls) as u32
                } else {
                    l
                }
            };
            for (drow, ph) in [(erow, 0), (orow, 1)] {
                let idx: Vec<u32> = (0..V as u32).map(|j| lane(2 * j + ph)).collect();
                put(cx, drow, at, cx.shuffle(v, border, &idx)?)?;
            }
        }
        cx.for_range(k0 as i64, k1 as i64, |cx, k| {
            let c0 = cx.add_c(cx.mul_c(k, 2 * V as i64)?, -pl)?;
            let v = load(cx, cx.gep(elem, srow, c0)?)?;
            let at = cx.mul_c(k, V as i64)?;
            put(cx, erow, at, cx.shuffle(v, border, &even)?)?;
            put(cx, orow, at, cx.shuffle(v, border, &odd)?)
        })
    })?;
    pad_rows(cx, pt + hin, p.hp)
}

/// One tap of a row vector: `vl` elements at `ptr` (of the plan's padded
/// plane), every `sw`-th of `load_t` (`vl · sw` elements) when strided.
pub(super) fn tap<'ctx>(
    cx: &KernelCx<'_, 'ctx>,
    ptr: PointerValue<'ctx>,
    load_t: VectorType<'ctx>,
    vl: u32,
    sw: i64,
) -> CgResult<VectorValue<'ctx>> {
    let l = cx.b.build_load(load_t, ptr, "")?;
    if let Some(i) = l.as_instruction_value() {
        i.set_alignment(1)
            .map_err(|e| CodegenError::Llvm(e.to_string()))?;
    }
    let v = l.into_vector_value();
    if sw == 1 {
        return Ok(v);
    }
    let idx: Vec<u32> = (0..vl).map(|j| j * sw as u32).collect();
    cx.shuffle(v, load_t.get_undef(), &idx)
}

/// The constant mask of the first `valid` of `vl` lanes.
pub(crate) fn lane_mask<'ctx>(
    cx: &KernelCx<'_, 'ctx>,
    vl: usize,
    valid: usize,
) -> VectorValue<'ctx> {
    let i1t = cx.ctx.bool_type();
    let mask: Vec<IntValue> = (0..vl)
        .map(|l| i1t.const_int((l < valid) as u64, false))
        .collect();
    VectorType::const_vector(&mask)
}

/// Stores `v` at `dst` (unaligned).
pub(crate) fn store_unaligned<'ctx>(
    cx: &KernelCx<'_, 'ctx>,
    dst: PointerValue<'ctx>,
    v: VectorValue<'ctx>,
) -> CgResult<()> {
    let st = cx.b.build_store(dst, v)?;
    st.set_alignment(1)
        .map_err(|e| CodegenError::Llvm(e.to_string()))?;
    Ok(())
}

/// Stores the first `valid` lanes of `v` at `dst` (unaligned): the whole
/// vector when every lane is valid, else the prefix as power-of-two pieces
/// (7 lanes: 4, 2, 1), plain stores every ISA has, where a masked store of
/// bytes is a test and branch per lane (AVX2, NEON) and AMD's masked float
/// stores are slow microcode.
pub(crate) fn store_prefix<'ctx>(
    cx: &KernelCx<'_, 'ctx>,
    dst: PointerValue<'ctx>,
    v: VectorValue<'ctx>,
    valid: usize,
) -> CgResult<()> {
    let vt = v.get_type();
    let n = vt.get_size() as usize;
    if valid >= n {
        return store_unaligned(cx, dst, v);
    }
    let bytes = match vt.get_element_type() {
        inkwell::types::BasicTypeEnum::IntType(t) => t.get_bit_width() as usize / 8,
        inkwell::types::BasicTypeEnum::FloatType(_) => 4,
        _ => {
            return Err(CodegenError::Llvm(
                "store_prefix: not a number vector".into(),
            ))
        }
    };
    let mut at = 0usize;
    for bit in (0..usize::BITS).rev() {
        let piece = 1usize << bit;
        if valid & piece == 0 {
            continue;
        }
        let ptr = cx.gep_bytes(dst, (at * bytes) as i64)?;
        let st = if piece == 1 {
            let e = cx.b.build_extract_element(v, cx.i64(at as i64), "")?;
            cx.b.build_store(ptr, e)?
        } else {
            let idx: Vec<u32> = (at as u32..(at + piece) as u32).collect();
            cx.b.build_store(ptr, cx.shuffle(v, vt.get_undef(), &idx)?)?
        };
        st.set_alignment(1)
            .map_err(|e| CodegenError::Llvm(e.to_string()))?;
        at += piece;
    }
    Ok(())
}

/// The weights as a private i16 constant.
fn const_i16_table<'ctx>(cx: &KernelCx<'_, 'ctx>, vals: &[i16]) -> PointerValue<'ctx> {
    let bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
    crate::kernels::conv::const_data(cx, "qdw.w", &bytes)
}
