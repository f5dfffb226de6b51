//! Convolution (1-D and 2-D, NCHW, groups) as GEMM on the microkernels.
//!
//! Per image and group, the output plane `[M = OC/g][N = OH·OW]` is
//! `W[M][K] × X̂[K][N]` with `K = C/g · KH · KW`. The weights are packed at
//! compile time (`pack::pack_a`). `X̂` is the input itself for a 1×1,
//! unit-stride, unpadded convolution (`direct`: no im2col; where the target
//! has scratch, each L2-sized block of it is copied into `NR`-column panels
//! so the microkernel streams B contiguously, not one row per k step `H·W`
//! floats apart: 1.61 → 1.40 ms on a 1×1 64→256 56² layer, ResNet-50
//! 115 → 105 ms, side by side on Zen 3); otherwise
//! it is an implicit im2col over *phase copies* in the node's workspace
//! scratch, per `KC × NC` block (whole input channels × whole output rows,
//! sized so the block stays in L2 while every `MR`-row panel of weights
//! streams over it). A copy `(kj, φ)` holds, per channel, the input rows
//! `q·sh + φ - pad` (φ a row phase `ki·dh mod sh` some tap uses) sampled at
//! the columns `ox·sw + kj·dw - pad`, zero outside the input, `OW` to a row:
//! the X̂ row of tap `(ki, kj)` of channel `c` is then the copy
//! `(kj, (ki·dh) mod sh)` of `c` from row `(ki·dh) / sh` on, read
//! contiguously over the block's positions. The microkernels (`.o`) take
//! each k step's row from a table of those offsets; K runs channel, `kj`,
//! `ki` (the weights are packed in that order) over copies laid out
//! `[c][kj][phase]`, so a tile's k steps read upwards through memory. A 3×3 stride-1 layer
//! copies its input 3 times instead of 9 (stride 2: 6; a 7×7 stride-2 stem:
//! 14 instead of 49).
//! Shapes are static, so the blocks split into full ones (a loop) and one
//! tail (emitted once with its own constant sizes): every size the code
//! sees is a constant.
//!
//! When few output positions fill the microkernel's vector columns badly
//! (7×7 = 49 positions in 32-lane tiles use 49 of 64 lanes), the GEMM runs
//! transposed instead: `Cᵀ[N][M] = X̂ᵀ × Wᵀ`, positions as the microkernel's
//! rows (X̂ read in place column-major, [`ALayout::Cols`]) and output
//! channels as its vector columns (weights packed as `[M/NR][K][NR]`, bias
//! per column). `Cᵀ` lands in scratch and is transposed into the NCHW
//! output once per N block, after its last K block. A transposed GEMM with
//! at least four weight panels first copies each K block of positions (the
//! input planes of a 1×1, the phase copies' rows otherwise) into packed-A
//! panels (`[N/MR][KC][MR]`, `KC` ≤ 256 so a weight panel stays in L1) and
//! runs the packed-A microkernel: reading them in place costs a cache line
//! per k step per call. Side by side on Zen 3 (µs, before → after, ONNX
//! Runtime): 1×1 960→320 at 7² 612 → 467 (481); 3×3 stride 2 256→256 at
//! 28² 3485 → 2685 (3072); 1×1 stride 2 512→1024 at 28² 3905 → 2903 (2881).

use super::pack::{pack_a, pad_bias};
use super::ukernel::{ALayout, Call, F32Ukr, ACCUMULATE, BIAS_COLS, RESIDUAL};
use super::{div_ceil, for_blocks, next_panel, Conv2d, Simd};
use crate::cx::{CgResult, KernelCx, Operand};
use crate::kernels::conv::{const_f32_table, valid_range};
use crate::kernels::quant::if_else;
use inkwell::values::{IntValue, PointerValue};
use inkwell::IntPredicate;
use qcc_ir::{ConvAttrs, DType};

/// The GEMM view of one convolution, with its blocking.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvGemm {
    /// The convolution's geometry (its fields read through `Deref`).
    pub geo: Conv2d,
    pub groups: usize,
    /// Output channels per group (GEMM M).
    pub m: usize,
    /// Input channels per group.
    pub cg: usize,
    /// 1×1, unit stride, no padding: the input is X̂.
    pub direct: bool,
    /// Input channels per K block.
    pub c_block: usize,
    /// Output positions per N block (direct) or output rows per block.
    pub n_block: usize,
    /// The row sets of the copies, `(phase, first row)`: the input rows of
    /// copy row `q` are `(q + first)·sh + phase - pad`.
    pub sets: Vec<(usize, usize)>,
    /// Per `ki`: its row set and the row it starts from in that set's copy.
    pub set_of: Vec<(usize, usize)>,
    /// Rows a copy holds beyond the block's output rows.
    pub ext: usize,
    /// Floats per copy (`n_block + ext` rows of `OW`, rounded up to 16).
    pub cs: usize,
    /// The microkernel; `ALayout::Cols` runs the GEMM transposed.
    pub ukr: F32Ukr,
    /// Row stride of the transposed output block in scratch (`Cols` only).
    pub ldct: usize,
    /// Direct, not transposed, with scratch: see [`ConvGemm::packs_b`].
    pub pack_b: bool,
    /// Transposed: each K block of positions is copied into `MR`-position
    /// panels (`[N/MR][K][MR]`, the packed-A layout) and the GEMM runs on
    /// the packed-A microkernel instead of reading the NCHW planes (or the
    /// phase copies) column-major in place.
    pub pack_cols: bool,
}

impl std::ops::Deref for ConvGemm {
    type Target = Conv2d;
    fn deref(&self) -> &Conv2d {
        &self.geo
    }
}

impl ConvGemm {
    /// The plan for a convolution, or `None` when the microkernel path does
    /// not apply (transposed, depthwise-like groups, rank > 2, or scratch on
    /// a bare-metal target).
    pub fn new(
        a: &ConvAttrs,
        x: &[usize],
        wsh: &[usize],
        out: &[usize],
        simd: Simd,
        bare_metal: bool,
    ) -> Option<ConvGemm> {
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
        let direct = kh * kw == 1
            && stride == (1, 1)
            && a.pads.iter().all(|&p| p == 0)
            && (oh, ow) == (h, w);
        if !direct && bare_metal {
            return None;
        }
        let cg = c / g;
        let taps = kh * kw;
        let normal = F32Ukr::for_target(simd, ALayout::Packed, m);
        let ukr = cols_tile(simd, m, oh * ow, cg * taps, normal).unwrap_or(normal);
        // K block: whole input channels, at most ~1024 rows (256 for a
        // transposed direct GEMM, whose `K × NR` weight panel then stays in
        // L1 while every packed position panel streams past it), split
        // evenly.
        // (Only where at least 4 weight panels read each packed copy: with
        // fewer the copy costs more than the strided reads it saves, 1.2×
        // slower on a 1×1 192→32 layer at 28².)
        let pack_cols = ukr.a == ALayout::Cols && !bare_metal && m >= 4 * ukr.nr;
        let kb = if pack_cols { 256 } else { 1024 };
        let blocks = div_ceil(cg * taps, kb);
        let c_block = div_ceil(cg, blocks);
        let kc = c_block * taps;
        // Phase copies (one per kj and row phase, each `ext` rows longer)
        // when the GEMM reads them by broadcasts (transposed) or their rows
        // start on cache lines (OW a multiple of 16); otherwise one copy per
        // tap, an explicit im2col, whose rows are aligned: a vector load
        // split across two lines costs more than the copies save.
        let dh = geo.dil.0;
        let phased = ukr.a == ALayout::Cols || ow.is_multiple_of(16);
        let (sets, set_of, ext) = if phased {
            let mut phases: Vec<usize> = (0..kh).map(|ki| ki * dh % stride.0).collect();
            phases.sort_unstable();
            phases.dedup();
            let of = |ki: usize| phases.iter().position(|&p| p == ki * dh % stride.0);
            let set_of = (0..kh)
                .map(|ki| (of(ki).unwrap_or(0), ki * dh / stride.0))
                .collect();
            let sets: Vec<(usize, usize)> = phases.iter().map(|&p| (p, 0)).collect();
            (sets, set_of, (kh - 1) * dh / stride.0)
        } else {
            let sets = (0..kh)
                .map(|ki| (ki * dh % stride.0, ki * dh / stride.0))
                .collect();
            (sets, (0..kh).map(|ki| (ki, 0)).collect(), 0)
        };
        let (n_block, cs) = if direct {
            let cols = simd.l2_budget() / (4 * kc);
            let step = if ukr.a == ALayout::Cols {
                ukr.mr
            } else {
                ukr.nr
            };
            let nb = (cols / step).max(1) * step;
            (nb.min(oh * ow), 0)
        } else {
            // Output rows whose copies fit the L2 budget.
            let per_row = 4 * kw * sets.len() * c_block * ow.max(1);
            let rows = (simd.l2_budget() / per_row)
                .saturating_sub(ext)
                .clamp(1, oh.max(1));
            (rows, ((rows + ext) * ow).next_multiple_of(16))
        };
        // One copy per tap is an explicit im2col: its rows are evenly
        // spaced (`cs` floats), no offsets table needed.
        let ukr = F32Ukr {
            offsets: phased && !direct,
            ..ukr
        };
        Some(ConvGemm {
            geo,
            groups: g,
            m,
            cg,
            direct,
            c_block,
            n_block,
            sets,
            set_of,
            ext,
            cs,
            ukr,
            ldct: m.next_multiple_of(16),
            pack_b: direct && ukr.a != ALayout::Cols && !bare_metal,
            pack_cols,
        })
    }

    /// Workspace scratch the node needs, in bytes: the im2col block, then
    /// (transposed GEMM) the `Cᵀ` block.
    pub fn scratch_bytes(&self) -> usize {
        self.im2col_bytes() + self.ct_bytes()
    }

    /// Bytes of the phase copies of one K block and its packed position
    /// panels, or (direct, not transposed) of its input block packed in
    /// `NR`-column panels.
    fn im2col_bytes(&self) -> usize {
        if self.packs_b() {
            return self.c_block * self.n_block.next_multiple_of(self.ukr.nr) * 4;
        }
        self.copies_bytes() + self.packed_cols_bytes()
    }

    /// Bytes of the phase copies of one K block.
    fn copies_bytes(&self) -> usize {
        self.copies() * self.c_block * self.cs * 4
    }

    /// Bytes of one K block of positions in packed-A panels (`pack_cols`).
    fn packed_cols_bytes(&self) -> usize {
        if !self.pack_cols {
            return 0;
        }
        let positions = if self.direct {
            self.n_block
        } else {
            self.n_block * self.ow
        };
        self.c_block * self.kh * self.kw * positions.next_multiple_of(self.ukr.mr) * 4
    }

    /// A direct GEMM that copies each block of input rows into `[N/NR][K][NR]`
    /// panels, so a microkernel streams its B contiguously instead of one
    /// row per k step `H·W` floats apart (one page each on a 56² map).
    fn packs_b(&self) -> bool {
        self.pack_b
    }

    /// Number of phase copies (0 when direct).
    fn copies(&self) -> usize {
        if self.direct {
            0
        } else {
            self.kw * self.sets.len()
        }
    }

    /// The implicit im2col: for each k of a K block (`c·KH·KW + ki·KW + kj`,
    /// local channel `c`), the offset in floats of its X̂ row in the block's
    /// copies, laid out `[c][row set][kj]` (with one set per tap, exactly
    /// an im2col's rows).
    fn offsets(&self) -> Vec<i32> {
        let (kw, nsets) = (self.kw, self.sets.len());
        let mut off = Vec::with_capacity(self.c_block * self.kh * kw);
        for c in 0..self.c_block {
            for &(set, row) in &self.set_of {
                for kj in 0..kw {
                    let copy = (c * nsets + set) * kw + kj;
                    off.push((copy * self.cs + row * self.ow) as i32);
                }
            }
        }
        off
    }

    fn ct_bytes(&self) -> usize {
        if self.ukr.a != ALayout::Cols {
            return 0;
        }
        let positions = if self.direct {
            self.n_block
        } else {
            self.n_block * self.ow
        };
        positions * self.ldct * 4
    }

    /// Rows of a weight panel: the microkernel's rows, or its columns when
    /// the GEMM runs transposed.
    fn panel(&self) -> usize {
        if self.ukr.a == ALayout::Cols {
            self.ukr.nr
        } else {
            self.ukr.mr
        }
    }

    fn k(&self) -> usize {
        self.cg * self.kh * self.kw
    }
}

/// Emits the convolution; `w` must be a constant, `bias` a constant or absent;
/// `res` (a residual laid out like the output) is added to every output,
/// which is then clamped to `lo..=hi` (`±inf`: no clamp), in the epilogue
/// of its last K block.
#[allow(clippy::too_many_arguments)]
pub fn emit<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    p: &ConvGemm,
    x: &Operand<'_, 'ctx>,
    w: &[f32],
    bias: Option<&[f32]>,
    res: Option<PointerValue<'ctx>>,
    (lo, hi): (f32, f32),
    out: &Operand<'_, 'ctx>,
) -> CgResult<()> {
    let u = p.ukr;
    let (m, k, pm) = (p.m, p.k(), p.panel());
    let panels = div_ceil(m, pm);
    // Packed weights and padded bias of every group, one table each.
    let mut wp = Vec::with_capacity(p.groups * panels * k * pm);
    let mut bp = Vec::with_capacity(p.groups * panels * pm);
    for g in 0..p.groups {
        wp.extend(pack_a(&w[g * m * k..(g + 1) * m * k], m, k, k, 1, pm));
        bp.extend(pad_bias(bias.map(|b| &b[g * m..(g + 1) * m]), m, pm));
    }
    let wt = const_f32_table(cx, "mmm.w", &wp);
    let bt = const_f32_table(cx, "mmm.bias", &bp);
    let off = if !u.offsets {
        wt
    } else {
        crate::kernels::quant::const_i32_table(cx, "mmm.off", &p.offsets())
    };
    let f = if p.pack_cols {
        F32Ukr {
            a: ALayout::Packed,
            offsets: false,
            ..u
        }
        .function(cx)?
    } else {
        u.function(cx)?
    };
    let scratch = if p.scratch_bytes() == 0 {
        None
    } else {
        Some(
            cx.scratch
                .ok_or_else(|| cx.unsupported("no scratch for the im2col"))?,
        )
    };
    let (im2col, ct) = match scratch {
        Some(s) if p.direct && !p.packs_b() && !p.pack_cols => (None, Some(s)),
        Some(s) if p.ct_bytes() > 0 => (
            Some(s),
            Some(cx.gep_f32(s, cx.i64((p.im2col_bytes() / 4) as i64))?),
        ),
        s => (s, None),
    };
    let (hw, ohw) = ((p.h * p.w) as i64, (p.oh * p.ow) as i64);
    let c_all = (p.cg * p.groups) as i64;
    let oc_all = (m * p.groups) as i64;
    cx.for_range(0, p.batch as i64, |cx, bi| {
        cx.for_range(0, p.groups as i64, |cx, g| {
            let xg = cx.gep_f32(
                x.ptr,
                cx.mul_c(cx.add(cx.mul_c(bi, c_all)?, cx.mul_c(g, p.cg as i64)?)?, hw)?,
            )?;
            let o_off = cx.mul_c(cx.add(cx.mul_c(bi, oc_all)?, cx.mul_c(g, m as i64)?)?, ohw)?;
            let og = cx.gep_f32(out.ptr, o_off)?;
            let rg = res.map(|r| cx.gep_f32(r, o_off)).transpose()?;
            let wg = cx.gep_f32(wt, cx.mul_c(g, (panels * k * pm) as i64)?)?;
            let bg = cx.gep_f32(bt, cx.mul_c(g, (panels * pm) as i64)?)?;
            let gx = Group {
                p,
                f,
                clamp: (lo, hi),
                xg,
                og,
                rg,
                wg,
                bg,
                scratch: im2col,
                ct,
                off,
            };
            // N blocks: full ones in a loop, then the tail.
            let total = if p.direct { ohw as usize } else { p.oh };
            for_blocks(cx, total, p.n_block, |cx, t, len| {
                let n0 = cx.mul_c(t, p.n_block as i64)?;
                gx.n_block(cx, n0, len)
            })
        })
    })
}

/// One group of one image.
struct Group<'p, 'ctx> {
    p: &'p ConvGemm,
    f: inkwell::values::FunctionValue<'ctx>,
    /// The output clamp, applied by the last K block.
    clamp: (f32, f32),
    xg: PointerValue<'ctx>,
    og: PointerValue<'ctx>,
    wg: PointerValue<'ctx>,
    bg: PointerValue<'ctx>,
    /// The im2col block (absent when direct).
    scratch: Option<PointerValue<'ctx>>,
    /// The `Cᵀ` block of a transposed GEMM.
    ct: Option<PointerValue<'ctx>>,
    /// The residual of this group (laid out like `og`).
    rg: Option<PointerValue<'ctx>>,
    /// The offsets table of the implicit im2col (`ConvGemm::offsets`).
    off: PointerValue<'ctx>,
}

impl<'ctx> Group<'_, 'ctx> {
    /// N block starting at `n0` (a position when direct, an output row
    /// otherwise) of `len` positions / rows; loops over K blocks.
    fn n_block(&self, cx: &mut KernelCx<'_, 'ctx>, n0: IntValue<'ctx>, len: usize) -> CgResult<()> {
        let p = self.p;
        let cb = p.c_block;
        for_blocks(cx, p.cg, cb, |cx, t, cw| {
            let c0 = cx.mul_c(t, cb as i64)?;
            self.k_block(cx, n0, len, c0, cw)
        })?;
        let Some(ct) = self.ct else {
            return Ok(());
        };
        // Transposed GEMM: Cᵀ[pos][ch] (finished; clamped, unless a residual
        // comes first, here) into the NCHW output.
        let (positions, col0) = if p.direct {
            (len, n0)
        } else {
            (len * p.ow, cx.mul_c(n0, p.ow as i64)?)
        };
        let ohw = (p.oh * p.ow) as i64;
        cx.for_range(0, p.m as i64, |cx, ch| {
            let at = cx.add(cx.mul_c(ch, ohw)?, col0)?;
            let dst = cx.gep_f32(self.og, at)?;
            let res = self.rg.map(|r| cx.gep_f32(r, at)).transpose()?;
            let src = cx.gep_f32(ct, ch)?;
            cx.for_range(0, positions as i64, |cx, pos| {
                let mut v = cx.load_f32(src, cx.mul_c(pos, p.ldct as i64)?)?;
                if let Some(r) = res {
                    let sum = cx.b.build_float_add(v, cx.load_f32(r, pos)?, "")?;
                    v = cx.fclamp(sum, self.clamp.0, self.clamp.1)?;
                }
                cx.store_f32(dst, pos, v)
            })
        })
    }

    fn k_block(
        &self,
        cx: &mut KernelCx<'_, 'ctx>,
        n0: IntValue<'ctx>,
        len: usize,
        c0: IntValue<'ctx>,
        cw: usize,
    ) -> CgResult<()> {
        let p = self.p;
        let u = p.ukr;
        let taps = p.kh * p.kw;
        let (hw, ohw) = ((p.h * p.w) as i64, (p.oh * p.ow) as i64);
        let kc0 = cx.mul_c(c0, taps as i64)?;
        // B for this block: the input rows themselves, their copy in panels,
        // or the im2col in scratch. (`bstep`: floats from one column panel
        // of B to the next, per column.)
        let mut bstep = 1;
        let (bptr, ldb, ncols, col0) = match self.scratch {
            None => (
                cx.gep_f32(self.xg, cx.add(cx.mul_c(c0, hw)?, n0)?)?,
                hw,
                len,
                n0,
            ),
            Some(s) if p.direct && (p.packs_b() || p.pack_cols) => {
                // The input rows as `NR`-column panels of B, or (transposed)
                // `MR`-position panels of A.
                let src = cx.gep_f32(self.xg, cx.add(cx.mul_c(c0, hw)?, n0)?)?;
                let width = if p.pack_cols { u.mr } else { u.nr };
                copy_panels(cx, (s, width), (src, len, cw), |cx, kk| cx.mul_c(kk, hw))?;
                if p.pack_cols {
                    (s, 0, len, n0)
                } else {
                    bstep = cw as i64;
                    (s, u.nr as i64, len, n0)
                }
            }
            Some(s) => {
                self.phase_copies(cx, s, n0, len, c0, cw)?;
                let (positions, col0) = (len * p.ow, cx.mul_c(n0, p.ow as i64)?);
                if p.pack_cols {
                    // The copies' rows (`off`) as packed-A position panels.
                    let packed = cx.gep_f32(s, cx.i64((p.copies_bytes() / 4) as i64))?;
                    let off = self.off;
                    copy_panels(cx, (packed, u.mr), (s, positions, cw * taps), |cx, kk| {
                        let at = cx.load(DType::I32, off, kk)?.into_int_value();
                        Ok(cx.b.build_int_s_extend(at, cx.i64_t(), "")?)
                    })?;
                    (packed, 0, positions, col0)
                } else {
                    // (The row stride of an im2col; offsets kernels ignore it.)
                    (s, p.cs as i64, positions, col0)
                }
            }
        };
        // flags: accumulate into C after the first K block.
        let cols = u.a == ALayout::Cols;
        let init = if cols { BIAS_COLS } else { 0 };
        let first = cx.icmp(IntPredicate::EQ, c0, cx.i64(0))?;
        let last = if cw == p.cg {
            cx.b.build_int_compare(IntPredicate::EQ, cx.i64(0), cx.i64(0), "")?
        } else {
            cx.icmp(IntPredicate::EQ, c0, cx.i64((p.cg - cw) as i64))?
        };
        // The residual, then the clamp, only on the finished sums: the last
        // K block (a transposed GEMM with a residual does both on the way
        // out of Cᵀ).
        let res = if cols { None } else { self.rg };
        let late = cols && self.rg.is_some();
        let on_last = |v: u64| -> CgResult<IntValue<'ctx>> {
            Ok(cx
                .b
                .build_select(last, cx.i32(v as i32), cx.i32(0), "")?
                .into_int_value())
        };
        let start =
            cx.b.build_select(first, cx.i32(init as i32), cx.i32(ACCUMULATE as i32), "")?
                .into_int_value();
        let flags = if res.is_some() {
            cx.b.build_or(start, on_last(RESIDUAL)?, "")?
        } else {
            start
        };
        let pick = |v: f32, none: f32| -> CgResult<inkwell::values::FloatValue<'ctx>> {
            let v = if late { none } else { v };
            Ok(cx
                .b
                .build_select(last, cx.f32(v), cx.f32(none), "")?
                .into_float_value())
        };
        let (lo, hi) = (
            pick(self.clamp.0, f32::NEG_INFINITY)?,
            pick(self.clamp.1, f32::INFINITY)?,
        );
        let (mr, nr) = (u.mr, u.nr);
        let kc = (cw * taps) as i64;
        let k_all = (p.cg * taps) as i64;
        let call = |cx: &mut KernelCx<'_, 'ctx>,
                    mb: IntValue<'ctx>,
                    mrv: usize,
                    np: IntValue<'ctx>,
                    nrv: usize|
         -> CgResult<()> {
            let a = cx.gep_f32(
                self.wg,
                cx.mul_c(cx.add(cx.mul_c(mb, k_all)?, kc0)?, mr as i64)?,
            )?;
            let col = cx.mul_c(np, nr as i64)?;
            let b = cx.gep_f32(bptr, cx.mul_c(col, bstep)?)?;
            let crow = cx.mul_c(cx.mul_c(mb, mr as i64)?, ohw)?;
            let c_at = cx.add(crow, cx.add(col0, col)?)?;
            let c = cx.gep_f32(self.og, c_at)?;
            let r = match res {
                Some(r) => cx.gep_f32(r, c_at)?,
                None => c,
            };
            let bias = cx.gep_f32(self.bg, cx.mul_c(mb, mr as i64)?)?;
            let pf = next_panel(cx, a, k_all as usize * mr, kc as usize, np)?;
            Call {
                k: kc,
                a,
                lda: 0,
                b,
                ldb,
                c,
                ldc: ohw,
                bias,
                mr_valid: mrv,
                nr_valid: nrv,
                flags,
                lo,
                hi,
                pf,
                r,
                off: self.off,
            }
            .emit(cx, self.f)
        };
        if let (true, Some(ct)) = (cols, self.ct) {
            // Transposed: positions are the rows (A, read in place), output
            // channels the columns (B, the weight panels); each K × NR weight
            // panel serves every position panel.
            let ldct = p.ldct as i64;
            return for_blocks(cx, p.m, nr, |cx, mp, nrv| {
                for_blocks(cx, ncols, mr, |cx, pp, mrv| {
                    let pos = cx.mul_c(pp, mr as i64)?;
                    let ch = cx.mul_c(mp, nr as i64)?;
                    let b = cx.gep_f32(
                        self.wg,
                        cx.mul_c(cx.add(cx.mul_c(mp, k_all)?, kc0)?, nr as i64)?,
                    )?;
                    let c = cx.gep_f32(ct, cx.add(cx.mul_c(pos, ldct)?, ch)?)?;
                    let a = if p.pack_cols {
                        cx.gep_f32(bptr, cx.mul_c(pos, kc)?)?
                    } else {
                        cx.gep_f32(bptr, pos)?
                    };
                    Call {
                        k: kc,
                        a,
                        lda: ldb,
                        b,
                        ldb: nr as i64,
                        c,
                        ldc: ldct,
                        bias: cx.gep_f32(self.bg, ch)?,
                        mr_valid: mrv,
                        nr_valid: nrv,
                        flags,
                        lo,
                        hi,
                        pf: next_panel(cx, b, k_all as usize * nr, kc as usize, pp)?,
                        r: c,
                        off: self.off,
                    }
                    .emit(cx, self.f)
                })
            });
        }
        for_blocks(cx, p.m, mr, |cx, mb, mrv| {
            for_blocks(cx, ncols, nr, |cx, np, nrv| call(cx, mb, mrv, np, nrv))
        })
    }

    /// Writes the phase copies of channels `[c0, c0+cw)` for output rows
    /// `[r0, r0+rows)` into `s` (see the module docs), zeros where a
    /// window reaches into the padding.
    fn phase_copies(
        &self,
        cx: &mut KernelCx<'_, 'ctx>,
        s: PointerValue<'ctx>,
        r0: IntValue<'ctx>,
        rows: usize,
        c0: IntValue<'ctx>,
        cw: usize,
    ) -> CgResult<()> {
        let p = self.p;
        let (sh, sw) = (p.stride.0 as i64, p.stride.1 as i64);
        let dw = p.dil.1 as i64;
        let (ph, pw) = (p.pad.0 as i64, p.pad.1 as i64);
        let (h, w, ow) = (p.h as i64, p.w as i64, p.ow as i64);
        let hw = h * w;
        let nsets = p.sets.len();
        // The row sets as a table `[phase - pad, first row]` (a loop, not
        // one copy of the code per set: a 7×7 im2col has 7 of them).
        let table: Vec<i32> = p
            .sets
            .iter()
            .flat_map(|&(phase, first)| [phase as i32 - ph as i32, first as i32])
            .collect();
        let sets = crate::kernels::quant::const_i32_table(cx, "mmm.sets", &table);
        for kj in 0..p.kw {
            let shift = kj as i64 * dw - pw;
            let (lo, hi) = valid_range(shift, sw, ow, w);
            cx.for_range(0, nsets as i64, |cx, si| {
                let field = |cx: &KernelCx<'_, 'ctx>, f: i64| -> CgResult<IntValue<'ctx>> {
                    let v = cx.load(DType::I32, sets, cx.add_c(cx.mul_c(si, 2)?, f)?)?;
                    Ok(cx
                        .b
                        .build_int_s_extend(v.into_int_value(), cx.i64_t(), "")?)
                };
                let (phase, first) = (field(cx, 0)?, field(cx, 1)?);
                cx.for_range(0, cw as i64, |cx, cl| {
                    let xc = cx.gep_f32(self.xg, cx.mul_c(cx.add(c0, cl)?, hw)?)?;
                    let copy = cx.add(cx.mul_c(cl, nsets as i64)?, si)?;
                    let copy = cx.add_c(cx.mul_c(copy, p.kw as i64)?, kj as i64)?;
                    let at = cx.mul_c(copy, p.cs as i64)?;
                    let dst_c = cx.gep_f32(s, at)?;
                    cx.for_range(0, (rows + p.ext) as i64, |cx, q| {
                        let row = cx.mul_c(cx.add(cx.add(r0, q)?, first)?, sh)?;
                        let ih = cx.add(row, phase)?;
                        let dst = cx.gep_f32(dst_c, cx.mul_c(q, ow)?)?;
                        let ge = cx.icmp(IntPredicate::SGE, ih, cx.i64(0))?;
                        let lt = cx.icmp(IntPredicate::SLT, ih, cx.i64(h))?;
                        let inside = cx.b.build_and(ge, lt, "")?;
                        if_else(
                            cx,
                            inside,
                            |cx| {
                                let src = cx.gep_f32(xc, cx.mul_c(ih, w)?)?;
                                zero(cx, dst, 0, lo)?;
                                cx.for_range(lo, hi, |cx, o| {
                                    let v = cx.load_f32(src, cx.add_c(cx.mul_c(o, sw)?, shift)?)?;
                                    cx.store_f32(dst, o, v)
                                })?;
                                zero(cx, dst, hi, ow)
                            },
                            |cx| zero(cx, dst, 0, ow),
                        )
                    })
                })
            })?;
        }
        Ok(())
    }
}

/// The transposed-GEMM microkernel for an `m × n × k` convolution GEMM when
/// it beats `normal`: positions as rows, in the row count (up to the
/// target's `f32_cols_mr_max`) that wastes the fewest rows on `n`, output
/// channels as the target's tile columns. The cost per output, in MACs at
/// the kernel's peak, is `k` over the share of the tile doing useful work,
/// plus about one peak cycle for moving the element out of `Cᵀ`.
fn cols_tile(simd: Simd, m: usize, n: usize, k: usize, normal: F32Ukr) -> Option<F32Ukr> {
    let max = simd.f32_cols_mr_max();
    if max == 0 {
        return None;
    }
    let padded = |len: usize, t: usize| div_ceil(len, t) * t;
    let mr = (max.div_ceil(2)..=max).min_by_key(|&r| (padded(n, r), std::cmp::Reverse(r)))?;
    let nr = simd.f32_tile().1;
    let used = |len: usize, t: usize| len as f64 / padded(len, t) as f64;
    let normal_cost = k as f64 / (used(n, normal.nr) * used(m, normal.mr));
    let cols_cost = k as f64 / (used(n, mr) * used(m, nr)) + (2 * simd.f32_lanes()) as f64;
    (cols_cost < 0.97 * normal_cost).then_some(F32Ukr {
        simd,
        mr,
        nr,
        a: ALayout::Cols,
        offsets: false,
    })
}

/// Copies `rows` rows of `len` positions (row `kk` at `src + row_at(kk)`)
/// into panels of `width` positions, `[len/width][rows][width]` from
/// `dst` on: the packed layout a microkernel streams (a partial last
/// panel keeps the full `width` row stride).
fn copy_panels<'a, 'ctx>(
    cx: &mut KernelCx<'a, 'ctx>,
    (dst, width): (PointerValue<'ctx>, usize),
    (src, len, rows): (PointerValue<'ctx>, usize, usize),
    row_at: impl Fn(&KernelCx<'a, 'ctx>, IntValue<'ctx>) -> CgResult<IntValue<'ctx>>,
) -> CgResult<()> {
    for_blocks(cx, len, width, |cx, t, valid| {
        let pos = cx.mul_c(t, width as i64)?;
        let panel = cx.gep_f32(dst, cx.mul_c(pos, rows as i64)?)?;
        let from = cx.gep_f32(src, pos)?;
        cx.for_range(0, rows as i64, |cx, kk| {
            let d = cx.gep_f32(panel, cx.mul_c(kk, width as i64)?)?;
            let f = cx.gep_f32(from, row_at(cx, kk)?)?;
            cx.memcpy(d, 4, f, 4, (valid * 4) as u64)
        })
    })
}

/// `dst[lo..hi] = 0`.
pub(super) fn zero<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    dst: PointerValue<'ctx>,
    lo: i64,
    hi: i64,
) -> CgResult<()> {
    if hi <= lo {
        return Ok(());
    }
    let p = cx.gep_f32(dst, cx.i64(lo))?;
    cx.memset(p, 4, 0, ((hi - lo) * 4) as u64)
}
