//! Integer convolution (QConv, 1-D and 2-D, NCHW, groups) as GEMM on the
//! int8 microkernels.
//!
//! Per image and group, the output plane `[M = OC/g][N = OH·OW]` is
//! `W[M][K] × X̂[K][N]` with `K = C/g · KH · KW`, requantized in the
//! microkernel's epilogue (parameters per row = per output channel). The
//! weights are packed at compile time in K groups of four
//! (`pack::pack_k4`); where the microkernel reads them as i16
//! (`I8Ukr::a_bytes`: AVX2 `vpmaddwd`), each panel is widened into scratch
//! once per block (3×3 64→64 56² 2.70 → 1.89 ms, ResNet-18 int8 48 → 31 ms
//! on Zen 3), so the object keeps bytes. `X̂` is written block by block (whole output rows,
//! sized to stay in L2) into the node's workspace scratch in the layout the
//! microkernel reads, `[K/4][N][4]`, 16 output positions per vector step;
//! activations of the wrong signedness for the dot instruction are flipped
//! on the way (`x ^ 0x80`, folded into the bias by the caller). A padded
//! convolution first copies the image's group of channels into scratch with
//! a border of the input zero point, so the packing never tests bounds.

use super::amx;
use super::pack::{pack_bits, pack_k4};
use super::qukernel::{epi_tables, I8Ukr, QCall};
use super::{div_ceil, for_blocks, Conv2d};
use crate::cx::{CgResult, KernelCx, Operand};
use crate::kernels::quant::const_i8_table;
use crate::portable::TargetFacts;
use inkwell::types::VectorType;
use inkwell::values::{IntValue, PointerValue};
use qcc_ir::quant::Epilogue;
use qcc_ir::{ConvAttrs, DType};

/// Output positions per vector step of the packing.
const VEC: usize = 16;

/// The GEMM view of one integer convolution, with its blocking.
#[derive(Clone, Debug, PartialEq)]
pub struct QConvGemm {
    /// The convolution's geometry (its fields read through `Deref`).
    pub geo: Conv2d,
    pub groups: usize,
    /// Output channels per group (GEMM M) and input channels per group.
    pub m: usize,
    pub cg: usize,
    /// Extents of the zero-point-padded copy, when the input needs one.
    pub copy: Option<(usize, usize)>,
    /// Output rows per N block.
    pub rows: usize,
    /// Bytes per K group of the packed block (`ceil(rows·OW / NR)·NR · 4`).
    pub ldb: usize,
    pub ukr: I8Ukr,
    /// On AMX tiles (`amx.rs`): blocks of 32 channels × 32 positions, K
    /// padded to 64 (the packed block's extra k-groups are read against
    /// zero weights).
    pub amx: bool,
    /// Bits per stored weight: 8, or 4 or 2 ([`TargetFacts::stored_bits`],
    /// not on AMX): then each panel is unpacked into scratch once per block.
    pub stored_bits: u32,
}

impl std::ops::Deref for QConvGemm {
    type Target = Conv2d;
    fn deref(&self) -> &Conv2d {
        &self.geo
    }
}

impl QConvGemm {
    /// The plan, or `None` when the microkernel path does not apply
    /// (rank > 2, or fewer than 4 output channels per group);
    /// `mmm::qconv_plan` checks the target and the zero point first.
    pub fn new(
        a: &ConvAttrs,
        x: &[usize],
        wsh: &[usize],
        out: &[usize],
        facts: &TargetFacts,
    ) -> Option<QConvGemm> {
        let geo = Conv2d::of(a, x, wsh, out)?;
        let Conv2d {
            c,
            oc,
            h,
            w,
            oh,
            ow,
            kh,
            kw,
            stride,
            dil,
            pad,
            ..
        } = geo;
        let g = a.group.max(1);
        if c % g != 0 || oc % g != 0 || wsh[0] != oc || wsh[1] * g != c {
            return None;
        }
        let m = oc / g;
        if m < 4 {
            return None;
        }
        // Extents the windows reach, in padded coordinates.
        let hp = (oh - 1) * stride.0 + (kh - 1) * dil.0 + 1;
        // (Wide enough that a vector step ending at the last output position
        // reads inside the row: `ow · sw` bytes past each tap's start.)
        let wp = ow * stride.1 + (kw - 1) * dil.1;
        let copy = (pad != (0, 0) || hp > h || wp > w).then_some((hp, wp));
        let ukr = I8Ukr::for_target(facts, false, m);
        let amx = facts.amx && amx::worth(m, c / g * kh * kw);
        let k4 = div_ceil(c / g * kh * kw, 4);
        let cols = facts.simd.l2_budget() / (4 * k4);
        let rows = (cols / ow).clamp(1, oh);
        let nr = if amx { amx::BLOCK } else { ukr.nr };
        let ldb = (rows * ow).next_multiple_of(nr) * 4;
        Some(QConvGemm {
            geo,
            groups: g,
            m,
            cg: c / g,
            copy,
            rows,
            ldb,
            ukr,
            amx,
            stored_bits: if amx { 8 } else { facts.stored_bits },
        })
    }

    fn k(&self) -> usize {
        self.cg * self.kh * self.kw
    }

    fn k4(&self) -> usize {
        div_ceil(self.k(), 4)
    }

    /// Bytes of the padded copy, rounded up to 64.
    fn copy_bytes(&self) -> usize {
        self.copy
            .map_or(0, |(hp, wp)| (self.cg * hp * wp).next_multiple_of(64))
    }

    /// k-groups of the packed block: K/4, or whole AMX steps.
    fn k4_rows(&self) -> usize {
        if self.amx {
            self.k4().next_multiple_of(amx::KT4)
        } else {
            self.k4()
        }
    }

    /// Workspace scratch the node needs, in bytes: the padded copy, the
    /// packed block, and AMX's accumulator block or the widened
    /// (`I8Ukr::a_bytes`) or unpacked (`stored_bits`) weight panel.
    pub fn scratch_bytes(&self) -> usize {
        let extra = if self.amx {
            amx::ACC_BYTES
        } else if self.ukr.a_bytes() == 2 {
            self.k4() * self.ukr.mr * 8
        } else if self.stored_bits < 8 {
            self.k4() * self.ukr.mr * 4
        } else {
            0
        };
        self.copy_bytes() + self.k4_rows() * self.ldb + extra
    }
}

/// Emits the convolution. `w` are the constant i8 weights `[OC][C/g][KH][KW]`,
/// `bias` the folded bias per output channel (with the input zero point and
/// the activation flip `Dot::act_shift` already subtracted), `zx` the input
/// zero point.
#[allow(clippy::too_many_arguments)]
pub fn emit<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    p: &QConvGemm,
    x: &Operand<'_, 'ctx>,
    w: &[i64],
    bias: &[i32],
    zx: i32,
    epi: &Epilogue,
    out: &Operand<'_, 'ctx>,
) -> CgResult<()> {
    if p.amx {
        return emit_amx(cx, p, x, w, bias, zx, epi, out);
    }
    let u = I8Ukr {
        requant: super::qukernel::requant_mode(&cx.target, &epi.rescale),
        ..p.ukr
    };
    let (m, k, k4, mr) = (p.m, p.k(), p.k4(), u.mr);
    let panels = div_ceil(m, mr);
    let mut wp = Vec::with_capacity(p.groups * panels * k4 * mr * 4);
    for g in 0..p.groups {
        wp.extend(pack_k4(&w[g * m * k..(g + 1) * m * k], m, k, k, 1, mr));
    }
    let panel_bytes = (k4 * mr * 4) as i64;
    // Stored panels: bytes, or two or four weights per byte.
    let bits = p.stored_bits;
    let (wt, stored) = if bits < 8 {
        (
            const_i8_table(cx, &format!("mmm.qw{bits}"), &pack_bits(&wp, bits)),
            panel_bytes * bits as i64 / 8,
        )
    } else {
        (const_i8_table(cx, "mmm.qw", &wp), panel_bytes)
    };
    let tables = epi_tables(cx, bias, &epi.rescale, (p.groups, m, mr));
    let f = u.function(cx)?;
    let s = cx
        .scratch
        .ok_or_else(|| cx.unsupported("no scratch for the packed input"))?;
    let pack = cx.gep_bytes(s, p.copy_bytes() as i64)?;
    // Where the microkernel reads A as i16 (`I8Ukr::a_bytes`), each weight
    // panel is widened into scratch once per block, before the block's
    // column tiles all read it: the weights stay bytes in the object.
    // Nibble panels are unpacked there too (to i16 or bytes).
    let wide = u.a_bytes() == 2;
    let panel_buf = (wide || bits < 8)
        .then(|| cx.gep_bytes(pack, (p.k4_rows() * p.ldb) as i64))
        .transpose()?;
    let xdt = x.dtype();
    let flip = u.dot.act_shift(xdt) != 0;
    let ohw = (p.oh * p.ow) as i64;
    let g_params = (panels * mr) as i64;
    for_images(cx, p, (x, out, s, zx), |cx, g, src, og| {
        let wg = cx.gep(DType::I8, wt, cx.mul_c(g, panels as i64 * stored)?)?;
        let pg: Vec<PointerValue> = tables
            .iter()
            .map(|t| cx.gep(DType::I32, *t, cx.mul_c(g, g_params)?))
            .collect::<CgResult<_>>()?;
        for_blocks(cx, p.oh, p.rows, |cx, t, rows| {
            let r0 = cx.mul_c(t, p.rows as i64)?;
            pack_block(cx, p, src, pack, r0, rows, flip)?;
            let col0 = cx.mul_c(r0, p.ow as i64)?;
            for_blocks(cx, m, mr, |cx, mb, mrv| {
                let mut a = cx.gep(DType::I8, wg, cx.mul_c(mb, stored)?)?;
                if let Some(buf) = panel_buf {
                    if bits < 8 {
                        unpack_bits(cx, a, buf, stored, bits, wide)?;
                    } else {
                        widen_panel(cx, a, buf, panel_bytes)?;
                    }
                    a = buf;
                }
                let ch0 = cx.mul_c(mb, mr as i64)?;
                let params = super::qukernel::tables_at(cx, &pg, ch0)?;
                let crow = cx.gep(DType::I8, og, cx.add(cx.mul_c(ch0, ohw)?, col0)?)?;
                for_blocks(cx, rows * p.ow, u.nr, |cx, np, nrv| {
                    let col = cx.mul_c(np, u.nr as i64)?;
                    QCall {
                        k4: k4 as i64,
                        a,
                        b: cx.gep(DType::I8, pack, cx.mul_c(col, 4)?)?,
                        ldb: p.ldb as i64,
                        c: cx.gep(DType::I8, crow, col)?,
                        ldc: ohw,
                        params,
                        mr_valid: mrv,
                        nr_valid: nrv,
                        out: (epi.zero_point, epi.min, epi.max),
                    }
                    .emit(cx, f)
                })
            })
        })
    })
}

/// [`emit`] on AMX tiles: the weights packed `[groups][OC/32·32][K/64·64]`
/// as A, the packed input block as B (its rows of 32 positions split into
/// the two 16-column tiles).
#[allow(clippy::too_many_arguments)]
fn emit_amx<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    p: &QConvGemm,
    x: &Operand<'_, 'ctx>,
    w: &[i64],
    bias: &[i32],
    zx: i32,
    epi: &Epilogue,
    out: &Operand<'_, 'ctx>,
) -> CgResult<()> {
    let (m, k) = (p.m, p.k());
    let blk = amx::BLOCK;
    let mp = m.next_multiple_of(blk);
    let kp = p.k4_rows() * 4;
    let mut wp = vec![0i8; p.groups * mp * kp];
    for g in 0..p.groups {
        for o in 0..m {
            for kk in 0..k {
                wp[(g * mp + o) * kp + kk] = w[(g * m + o) * k + kk] as i8;
            }
        }
    }
    let wt = const_i8_table(cx, "mmm.amx.w", &wp);
    let tables = epi_tables(cx, bias, &epi.rescale, (p.groups, m, blk));
    let f = amx::function(
        cx,
        false,
        super::qukernel::requant_mode(&cx.target, &epi.rescale),
    )?;
    let s = cx
        .scratch
        .ok_or_else(|| cx.unsupported("no scratch for the packed input"))?;
    let pack = cx.gep_bytes(s, p.copy_bytes() as i64)?;
    let acc = cx.gep_bytes(pack, (p.k4_rows() * p.ldb) as i64)?;
    let flip = p.ukr.dot.act_shift(x.dtype()) != 0;
    let ohw = (p.oh * p.ow) as i64;
    amx::configure(cx)?;
    for_images(cx, p, (x, out, s, zx), |cx, g, src, og| {
        let wg = cx.gep(DType::I8, wt, cx.mul_c(g, (mp * kp) as i64)?)?;
        let pg: Vec<PointerValue> = tables
            .iter()
            .map(|t| cx.gep(DType::I32, *t, cx.mul_c(g, mp as i64)?))
            .collect::<CgResult<_>>()?;
        for_blocks(cx, p.oh, p.rows, |cx, t, rows| {
            let r0 = cx.mul_c(t, p.rows as i64)?;
            pack_block(cx, p, src, pack, r0, rows, flip)?;
            let col0 = cx.mul_c(r0, p.ow as i64)?;
            for_blocks(cx, m, blk, |cx, mb, mrv| {
                let ch0 = cx.mul_c(mb, blk as i64)?;
                let a = cx.gep(DType::I8, wg, cx.mul_c(ch0, kp as i64)?)?;
                let params = super::qukernel::tables_at(cx, &pg, ch0)?;
                let crow = cx.gep(DType::I8, og, cx.add(cx.mul_c(ch0, ohw)?, col0)?)?;
                for_blocks(cx, rows * p.ow, blk, |cx, np, nrv| {
                    let col = cx.mul_c(np, blk as i64)?;
                    amx::AmxCall {
                        kt: (kp / amx::KT) as i64,
                        a,
                        lda: kp as i64,
                        b: cx.gep(DType::I8, pack, cx.mul_c(col, 4)?)?,
                        ldb: p.ldb as i64,
                        bk: (amx::KT4 * p.ldb) as i64,
                        bh: (blk / 2 * 4) as i64,
                        c: cx.gep(DType::I8, crow, col)?,
                        ldc: ohw,
                        params,
                        mr_valid: mrv,
                        nr_valid: nrv,
                        out: (epi.zero_point, epi.min, epi.max),
                        acc,
                    }
                    .emit(cx, f)
                })
            })
        })
    })?;
    amx::release(cx)
}

/// Sign-extends the `bytes` bytes at `src` (a multiple of 4) to i16 at
/// `dst`: eight at a time, then a last four.
fn widen_panel<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    src: PointerValue<'ctx>,
    dst: PointerValue<'ctx>,
    bytes: i64,
) -> CgResult<()> {
    let widen = |cx: &mut KernelCx<'_, 'ctx>, at: IntValue<'ctx>, n: u32| -> CgResult<()> {
        let from = cx.gep(DType::I8, src, at)?;
        let l = cx.b.build_load(cx.i8_t().vec_type(n), from, "")?;
        if let Some(ins) = inkwell::values::BasicValue::as_instruction_value(&l) {
            ins.set_alignment(1)
                .map_err(|e| crate::CodegenError::Llvm(e.to_string()))?;
        }
        let w16 = cx.ctx.i16_type().vec_type(n);
        let w = cx.b.build_int_s_extend(l.into_vector_value(), w16, "")?;
        let st =
            cx.b.build_store(cx.gep(DType::I8, dst, cx.mul_c(at, 2)?)?, w)?;
        st.set_alignment(1)
            .map_err(|e| crate::CodegenError::Llvm(e.to_string()))?;
        Ok(())
    };
    cx.for_range(0, bytes / 8, |cx, i| widen(cx, cx.mul_c(i, 8)?, 8))?;
    if bytes % 8 != 0 {
        widen(cx, cx.i64(bytes / 8 * 8), 4)?;
    }
    Ok(())
}

/// Unpacks the `bytes` bytes at `src`, each holding `8 / bits` signed
/// `bits`-bit weights (`pack::pack_bits`: low bits first; `bits` 4 or 2), to
/// `dst` as bytes, or as i16 when `wide`: 16 bytes at a time, then 8, 4, 2
/// and 1.
pub(crate) fn unpack_bits<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    src: PointerValue<'ctx>,
    dst: PointerValue<'ctx>,
    bytes: i64,
    bits: u32,
    wide: bool,
) -> CgResult<()> {
    let per = 8 / bits;
    let step = |cx: &mut KernelCx<'_, 'ctx>, at: IntValue<'ctx>, n: u32| -> CgResult<()> {
        let from = cx.gep(DType::I8, src, at)?;
        let vt = cx.i8_t().vec_type(n);
        let l = cx.b.build_load(vt, from, "")?;
        if let Some(ins) = inkwell::values::BasicValue::as_instruction_value(&l) {
            ins.set_alignment(1)
                .map_err(|e| crate::CodegenError::Llvm(e.to_string()))?;
        }
        let v = l.into_vector_value();
        let i8t = cx.i8_t();
        let splat = |c: u64| VectorType::const_vector(&vec![i8t.const_int(c, false); n as usize]);
        let idx = |ix: &mut dyn Iterator<Item = u32>| {
            let c: Vec<_> = ix
                .map(|i| cx.ctx.i32_type().const_int(i as u64, false))
                .collect();
            VectorType::const_vector(&c)
        };
        // A field t sign-extends as ((t & mask) ^ half) - half: byte-wide
        // and, xor and sub exist on every SIMD ISA (x86 has no byte shifts).
        let (mask, half) = ((1u64 << bits) - 1, 1u64 << (bits - 1));
        let b = cx.b;
        let mut fields = Vec::with_capacity(per as usize);
        for i in 0..per {
            let t = if i == 0 {
                v
            } else {
                b.build_right_shift(v, splat((i * bits) as u64), false, "")?
            };
            let t = b.build_and(t, splat(mask), "")?;
            let t = b.build_xor(t, splat(half), "")?;
            fields.push(b.build_int_sub(t, splat(half), "")?);
        }
        // Concatenated in pairs ([f0, f1], [f2, f3]), then interleaved:
        // weight `per·j + i` is field i's element j, at `i·n + j`.
        let (x, y) = if per == 2 {
            (fields[0], fields[1])
        } else {
            let cat = |p: usize| {
                b.build_shuffle_vector(fields[p], fields[p + 1], idx(&mut (0..2 * n)), "")
            };
            (cat(0)?, cat(2)?)
        };
        let order = idx(&mut (0..n * per).map(|e| (e % per) * n + e / per));
        let mut w = b.build_shuffle_vector(x, y, order, "")?;
        let mut out_at = cx.mul_c(at, per as i64)?;
        if wide {
            w = b.build_int_s_extend(w, cx.ctx.i16_type().vec_type(per * n), "")?;
            out_at = cx.mul_c(out_at, 2)?;
        }
        let st = b.build_store(cx.gep(DType::I8, dst, out_at)?, w)?;
        st.set_alignment(1)
            .map_err(|e| crate::CodegenError::Llvm(e.to_string()))?;
        Ok(())
    };
    cx.for_range(0, bytes / 16, |cx, i| step(cx, cx.mul_c(i, 16)?, 16))?;
    let mut at = bytes / 16 * 16;
    for n in [8, 4, 2, 1] {
        if (bytes - at) >= n {
            step(cx, cx.i64(at), n as u32)?;
            at += n;
        }
    }
    Ok(())
}

/// Per image and group: `body(cx, g, src, og)` with `src` the group's
/// input planes (or their zero-point-padded copy at the start of scratch
/// `s`) and `og` its output planes.
fn for_images<'a, 'ctx>(
    cx: &mut KernelCx<'a, 'ctx>,
    p: &QConvGemm,
    (x, out, s, zx): (
        &Operand<'_, 'ctx>,
        &Operand<'_, 'ctx>,
        PointerValue<'ctx>,
        i32,
    ),
    mut body: impl FnMut(
        &mut KernelCx<'a, 'ctx>,
        IntValue<'ctx>,
        PointerValue<'ctx>,
        PointerValue<'ctx>,
    ) -> CgResult<()>,
) -> CgResult<()> {
    let (hw, ohw) = ((p.h * p.w) as i64, (p.oh * p.ow) as i64);
    let c_all = (p.cg * p.groups) as i64;
    let oc_all = (p.m * p.groups) as i64;
    cx.for_range(0, p.batch as i64, |cx, bi| {
        cx.for_range(0, p.groups as i64, |cx, g| {
            let xg = cx.gep(
                DType::I8,
                x.ptr,
                cx.mul_c(cx.add(cx.mul_c(bi, c_all)?, cx.mul_c(g, p.cg as i64)?)?, hw)?,
            )?;
            let og = cx.gep(
                DType::I8,
                out.ptr,
                cx.mul_c(
                    cx.add(cx.mul_c(bi, oc_all)?, cx.mul_c(g, p.m as i64)?)?,
                    ohw,
                )?,
            )?;
            let src = match p.copy {
                Some((hp, wp)) => {
                    pad_planes(cx, (xg, p.cg, p.h, p.w), (s, hp, wp), p.pad, zx)?;
                    s
                }
                None => xg,
            };
            body(cx, g, src, og)
        })
    })
}

/// Copies `planes` input planes of `h × w` bytes at `src` into `dst` as
/// `[planes][hp][wp]`, each plane shifted by the leading padding `(pt, pl)`
/// and bordered with the input zero point `zx` (what the windows reach past
/// the input); input rows and columns beyond `hp × wp` are left out.
pub(crate) fn pad_planes<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    src: (PointerValue<'ctx>, usize, usize, usize),
    dst: (PointerValue<'ctx>, usize, usize),
    pad: (usize, usize),
    zx: i32,
) -> CgResult<()> {
    pad_planes_of(cx, 1, src, dst, pad, zx as u8)
}

/// [`pad_planes`] for elements of `elem` bytes bordered with the byte
/// `fill` (`elem = 4`, `fill = 0`: f32 planes bordered with +0.0).
pub(crate) fn pad_planes_of<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    elem: usize,
    (src, planes, h, w): (PointerValue<'ctx>, usize, usize, usize),
    (dst, hp, wp): (PointerValue<'ctx>, usize, usize),
    (pt, pl): (usize, usize),
    zb: u8,
) -> CgResult<()> {
    let (pt, pl) = (pt.min(hp), pl.min(wp));
    // Rows [pt, pt + hin) and columns [pl, pl + win) hold the input.
    let (hin, win) = (h.min(hp - pt), w.min(wp - pl));
    let e = elem as i64;
    let bytes = |n: usize| (n * elem) as u64;
    cx.for_range(0, planes as i64, |cx, c| {
        let d = cx.gep(DType::I8, dst, cx.mul_c(c, (hp * wp) as i64 * e)?)?;
        cx.memset(d, 1, zb, bytes(pt * wp))?;
        let end = cx.gep_bytes(d, ((pt + hin) * wp) as i64 * e)?;
        cx.memset(end, 1, zb, bytes((hp - pt - hin) * wp))?;
        let from = cx.gep(DType::I8, src, cx.mul_c(c, (h * w) as i64 * e)?)?;
        cx.for_range(0, hin as i64, |cx, ih| {
            let at = cx.mul_c(cx.add_c(ih, pt as i64)?, wp as i64 * e)?;
            let row = cx.gep(DType::I8, d, at)?;
            cx.memset(row, 1, zb, bytes(pl))?;
            let from = cx.gep(DType::I8, from, cx.mul_c(ih, w as i64 * e)?)?;
            cx.memcpy(cx.gep_bytes(row, pl as i64 * e)?, 1, from, 1, bytes(win))?;
            let rest = wp - pl - win;
            cx.memset(
                cx.gep_bytes(row, (pl + win) as i64 * e)?,
                1,
                zb,
                bytes(rest),
            )
        })
    })
}

/// Writes `X̂` for output rows `[r0, r0 + rows)` into `dst` as
/// `[K/4][rows·OW][4]` (K past the end repeats the last row: its weights are 0).
fn pack_block<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    p: &QConvGemm,
    src: PointerValue<'ctx>,
    dst: PointerValue<'ctx>,
    r0: IntValue<'ctx>,
    rows: usize,
    flip: bool,
) -> CgResult<()> {
    let (hs, ws) = p.copy.unwrap_or((p.h, p.w));
    let (sh, sw) = (p.stride.0 as i64, p.stride.1 as i64);
    let (taps, kw) = ((p.kh * p.kw) as i64, p.kw as i64);
    let k = p.k() as i64;
    let ow = p.ow;
    // Vector steps that stay inside a source row for every tap.
    let reach = ws as i64 - ((p.kw - 1) * p.dil.1) as i64;
    let nvec = (ow / VEC).min(reach.max(0) as usize / (VEC * sw as usize));
    let i8t = cx.i8_t();
    let wide_t = i8t.vec_type((VEC as i64 * sw) as u32);
    let flip_v = VectorType::const_vector(&vec![i8t.const_int(0x80, false); 4 * VEC]);
    cx.for_range(0, p.k4() as i64, |cx, q| {
        let mut srcs = vec![];
        for t in 0..4 {
            let kk = cx.smin(cx.add_c(cx.mul_c(q, 4)?, t)?, cx.i64(k - 1))?;
            let c = cx.b.build_int_unsigned_div(kk, cx.i64(taps), "")?;
            let tap = cx.b.build_int_unsigned_rem(kk, cx.i64(taps), "")?;
            let ki = cx.b.build_int_unsigned_div(tap, cx.i64(kw), "")?;
            let kj = cx.b.build_int_unsigned_rem(tap, cx.i64(kw), "")?;
            let off = cx.add(
                cx.mul_c(c, (hs * ws) as i64)?,
                cx.add(
                    cx.mul_c(ki, (p.dil.0 * ws) as i64)?,
                    cx.mul_c(kj, p.dil.1 as i64)?,
                )?,
            )?;
            srcs.push(cx.gep(DType::I8, src, off)?);
        }
        let dq = cx.gep(DType::I8, dst, cx.mul_c(q, p.ldb as i64)?)?;
        cx.for_range(0, rows as i64, |cx, r| {
            let row = cx.mul_c(cx.add(r0, r)?, sh * ws as i64)?;
            let s_row: Vec<PointerValue> = srcs
                .iter()
                .map(|s| cx.gep(DType::I8, *s, row))
                .collect::<CgResult<_>>()?;
            let d = cx.gep(DType::I8, dq, cx.mul_c(r, (ow * 4) as i64)?)?;
            // One vector step: positions [o0, o0 + VEC).
            let step = |cx: &mut KernelCx<'_, 'ctx>, o0: IntValue<'ctx>| -> CgResult<()> {
                let mut parts = vec![];
                for s in &s_row {
                    let sp = cx.gep(DType::I8, *s, cx.mul_c(o0, sw)?)?;
                    let l = cx.b.build_load(wide_t, sp, "")?;
                    if let Some(i) = inkwell::values::BasicValue::as_instruction_value(&l) {
                        i.set_alignment(1)
                            .map_err(|e| crate::CodegenError::Llvm(e.to_string()))?;
                    }
                    let l = l.into_vector_value();
                    parts.push(if sw == 1 {
                        l
                    } else {
                        let idx: Vec<u32> = (0..VEC as u32).map(|j| j * sw as u32).collect();
                        cx.shuffle(l, wide_t.get_undef(), &idx)?
                    });
                }
                let n = VEC as u32;
                let lo = cx.shuffle(parts[0], parts[1], &(0..2 * n).collect::<Vec<_>>())?;
                let hi = cx.shuffle(parts[2], parts[3], &(0..2 * n).collect::<Vec<_>>())?;
                // Position o, row t comes from part t, lane o.
                let idx: Vec<u32> = (0..4 * n).map(|l| (l % 4) * n + l / 4).collect();
                let mut v = cx.shuffle(lo, hi, &idx)?;
                if flip {
                    v = cx.b.build_xor(v, flip_v, "")?;
                }
                let st =
                    cx.b.build_store(cx.gep(DType::I8, d, cx.mul_c(o0, 4)?)?, v)?;
                st.set_alignment(1)
                    .map_err(|e| crate::CodegenError::Llvm(e.to_string()))?;
                Ok(())
            };
            cx.for_range(0, nvec as i64, |cx, v| {
                let o0 = cx.mul_c(v, VEC as i64)?;
                step(cx, o0)
            })?;
            // A ragged row end: one more step overlapping the last one
            // (rewriting the same bytes) when its reads stay in the row.
            let overlap = nvec * VEC < ow && ow >= VEC && (ow as i64) * sw <= reach;
            if overlap {
                step(cx, cx.i64((ow - VEC) as i64))?;
            }
            let scalar_from = if overlap { ow } else { nvec * VEC };
            cx.for_range(scalar_from as i64, ow as i64, |cx, o| {
                for (t, s) in s_row.iter().enumerate() {
                    let mut b = cx.load(DType::I8, *s, cx.mul_c(o, sw)?)?.into_int_value();
                    if flip {
                        b = cx.b.build_xor(b, i8t.const_int(0x80, false), "")?;
                    }
                    let di = cx.add_c(cx.mul_c(o, 4)?, t as i64)?;
                    cx.store(DType::I8, d, di, b.into())?;
                }
                Ok(())
            })
        })
    })
}
