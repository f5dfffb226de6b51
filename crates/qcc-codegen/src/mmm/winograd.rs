//! 3×3 stride-1 float convolution by Winograd's minimal filtering,
//! F(2×2, 3×3) (Lavin & Gray, *Fast Algorithms for Convolutional Neural
//! Networks*): 16 multiplications per 2×2 output tile and input/output
//! channel pair instead of 36, so the GEMM work is 4/9 of a direct
//! convolution's.
//!
//! With `d` a 4×4 input patch and `g` a 3×3 filter, a 2×2 output tile is
//! `Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A`. Summed over input channels, the `⊙` becomes
//! 16 independent GEMMs, one per position `ξ` of the 4×4 transformed tile:
//! `M_ξ[OC][T] = U_ξ[OC][C] × V_ξ[C][T]` over the `T` tiles.
//!
//! * `U = G g Gᵀ` is computed at compile time (in f64) and packed per `ξ`
//!   into the panels of the packed-A microkernel (`pack::pack_a`).
//! * Per block of whole tile rows (sized so the block's `V` stays in L2),
//!   each input channel's rows are copied into a zero-bordered plane in
//!   scratch, and `V = Bᵀ d B` is computed `VL` tiles at a time: two vector
//!   loads per patch row, split into even and odd columns, then 32 vector
//!   adds and subtractions for 16 results stored to `V_ξ`.
//! * The 16 GEMMs run on the same packed-A microkernel as every other f32
//!   convolution, into `M` in scratch.
//! * `Y = Aᵀ M A` (8 + 8 adds per `VL` tiles), the bias, the residual
//!   (ConvAdd) and the clamp, and the two output columns of each tile
//!   interleaved back into NCHW rows.
//!
//! `B`, `G` and `A` hold only 0, ±1 and ±½, so the transforms add no
//! rounding beyond a few additions; results differ from the direct
//! convolution by float reassociation only (measured in the tests against
//! the interpreter within the usual f32 tolerance).

use super::conv::zero;
use super::dw::load;
use super::pack::pack_a;
use super::qdw::{lane_mask, store_prefix};
use super::ukernel::{ALayout, Call, F32Ukr};
use super::{div_ceil, for_blocks, next_panel, Conv2d, Simd};
use crate::cx::{CgResult, KernelCx, Operand};
use crate::kernels::conv::const_f32_table;
use crate::kernels::quant::if_else;
use inkwell::types::VectorType;
use inkwell::values::{IntValue, PointerValue, VectorValue};
use inkwell::{FloatPredicate, IntPredicate};
use qcc_ir::ConvAttrs;

/// Bytes of the transformed input block (`V`) the plan keeps in cache.
const V_BUDGET: usize = 1 << 20;

/// The plan of one F(2×2, 3×3) convolution.
#[derive(Clone, Debug, PartialEq)]
pub struct Wino {
    pub geo: Conv2d,
    /// Tile rows and tiles per row (`ceil(OH/2)`, `ceil(OW/2)`).
    pub th: usize,
    pub tw: usize,
    /// Tile rows per block.
    pub tr: usize,
    /// Row width of the zero-bordered input plane (floats).
    pub wp: usize,
    /// Tiles per vector (the target's f32 lanes).
    pub vl: usize,
    /// The GEMM microkernel (packed A: the transformed weights).
    pub ukr: F32Ukr,
}

impl std::ops::Deref for Wino {
    type Target = Conv2d;
    fn deref(&self) -> &Conv2d {
        &self.geo
    }
}

impl Wino {
    /// The plan, or `None` when Winograd does not apply or does not pay:
    /// not a 2-D 3×3 stride-1 undilated ungrouped convolution, too few
    /// channels or tiles to amortize the transforms, no vector unit with
    /// FMA, or no scratch (bare metal).
    pub fn new(
        a: &ConvAttrs,
        x: &[usize],
        wsh: &[usize],
        out: &[usize],
        simd: Simd,
        bare_metal: bool,
    ) -> Option<Wino> {
        if bare_metal || !matches!(simd, Simd::Avx2 | Simd::Avx512 | Simd::Neon64) {
            return None;
        }
        if x.len() != 4 || a.group.max(1) != 1 {
            return None;
        }
        let geo = Conv2d::of(a, x, wsh, out)?;
        let square = (geo.kh, geo.kw) == (3, 3) && geo.stride == (1, 1) && geo.dil == (1, 1);
        if !square || wsh[1] != geo.c || wsh[0] != geo.oc {
            return None;
        }
        let (th, tw) = (geo.oh.div_ceil(2), geo.ow.div_ceil(2));
        let vl = simd.f32_lanes();
        let ukr = F32Ukr::for_target(simd, ALayout::Packed, geo.oc);
        // The transforms cost about as much as 2 MACs per channel and tile,
        // the GEMM's columns are tiles: few channels or a row of tiles
        // narrower than a vector make them dominate.
        if geo.c < 16 || geo.oc < 16 || th * tw < 32 {
            return None;
        }
        let tr = (V_BUDGET / (16 * geo.c * tw * 4)).clamp(1, th);
        let wp = 2 * tw.next_multiple_of(vl) + 2;
        Some(Wino {
            geo,
            th,
            tw,
            tr,
            wp,
            vl,
            ukr,
        })
    }

    /// Row stride of `V_ξ` and `M_ξ` (the tiles of a full block).
    fn ldv(&self) -> usize {
        self.tr * self.tw
    }

    /// Floats of the bordered plane (one channel, one block's rows).
    fn plane(&self) -> usize {
        (2 * self.tr + 2) * self.wp
    }

    /// Workspace scratch: the plane, then `V` (`[16][C][ldv]`), then `M`
    /// (`[16][OC][ldv]`).
    pub fn scratch_bytes(&self) -> usize {
        4 * (self.plane() + 16 * (self.c + self.oc) * self.ldv())
    }
}

/// `G` of F(2, 3): `U = G g Gᵀ`.
const G: [[f64; 3]; 4] = [
    [1.0, 0.0, 0.0],
    [0.5, 0.5, 0.5],
    [0.5, -0.5, 0.5],
    [0.0, 0.0, 1.0],
];

/// The transformed weights `U_ξ[oc][c]`, `ξ = 4i + j`, from `w[OC][C][3][3]`.
fn transform_weights(w: &[f32], oc: usize, c: usize) -> Vec<Vec<f32>> {
    let mut u = vec![vec![0f32; oc * c]; 16];
    for o in 0..oc {
        for ci in 0..c {
            let g = &w[(o * c + ci) * 9..][..9];
            // t = G g (4×3), then u = t Gᵀ (4×4).
            let mut t = [[0f64; 3]; 4];
            for (i, row) in t.iter_mut().enumerate() {
                for (b, v) in row.iter_mut().enumerate() {
                    *v = (0..3).map(|a| G[i][a] * g[a * 3 + b] as f64).sum();
                }
            }
            for i in 0..4 {
                for j in 0..4 {
                    let v: f64 = (0..3).map(|b| t[i][b] * G[j][b]).sum();
                    u[4 * i + j][o * c + ci] = v as f32;
                }
            }
        }
    }
    u
}

/// Emits the convolution (see the module docs); `w` are the constant
/// weights `[OC][C][3][3]`, `bias` the constant bias or none; `res` is added
/// to every output, which is then clamped to `lo..=hi` (`±inf`: none).
#[allow(clippy::too_many_arguments)]
pub fn emit<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    p: &Wino,
    x: &Operand<'_, 'ctx>,
    w: &[f32],
    bias: Option<&[f32]>,
    res: Option<PointerValue<'ctx>>,
    (lo, hi): (f32, f32),
    out: &Operand<'_, 'ctx>,
) -> CgResult<()> {
    let u = p.ukr;
    let (c, oc) = (p.c, p.oc);
    let panel = div_ceil(oc, u.mr) * c * u.mr;
    let mut packed = Vec::with_capacity(16 * panel);
    for uxi in transform_weights(w, oc, c) {
        packed.extend(pack_a(&uxi, oc, c, c, 1, u.mr));
    }
    let ut = const_f32_table(cx, "wino.u", &packed);
    let zeros = vec![0f32; oc];
    let bt = const_f32_table(cx, "wino.bias", bias.unwrap_or(&zeros));
    let zt = const_f32_table(cx, "wino.zero", &vec![0f32; u.mr]);
    let s = cx
        .scratch
        .ok_or_else(|| cx.unsupported("no scratch for the Winograd transforms"))?;
    let v = cx.gep_f32(s, cx.i64(p.plane() as i64))?;
    let m = cx.gep_f32(v, cx.i64((16 * c * p.ldv()) as i64))?;
    let f = u.function(cx)?;
    let (hw, ohw) = ((p.h * p.w) as i64, (p.oh * p.ow) as i64);
    let blk = Block {
        p,
        f,
        ut,
        bt,
        zt,
        plane: s,
        v,
        m,
        clamp: (lo, hi),
    };
    cx.for_range(0, p.batch as i64, |cx, bi| {
        let xb = cx.gep_f32(x.ptr, cx.mul_c(bi, c as i64 * hw)?)?;
        let o_at = cx.mul_c(bi, oc as i64 * ohw)?;
        let ob = cx.gep_f32(out.ptr, o_at)?;
        let rb = res.map(|r| cx.gep_f32(r, o_at)).transpose()?;
        for_blocks(cx, p.th, p.tr, |cx, t, rows| {
            let ty0 = cx.mul_c(t, p.tr as i64)?;
            blk.input(cx, xb, ty0, rows)?;
            blk.gemms(cx, rows)?;
            blk.output(cx, ob, rb, ty0, rows)
        })
    })
}

/// What every block of one convolution shares.
struct Block<'p, 'ctx> {
    p: &'p Wino,
    f: inkwell::values::FunctionValue<'ctx>,
    /// Packed `U` (`[16][OC/MR][C][MR]`), the bias, `MR` zeros.
    ut: PointerValue<'ctx>,
    bt: PointerValue<'ctx>,
    zt: PointerValue<'ctx>,
    /// Scratch: the bordered plane, `V`, `M`.
    plane: PointerValue<'ctx>,
    v: PointerValue<'ctx>,
    m: PointerValue<'ctx>,
    clamp: (f32, f32),
}

impl<'ctx> Block<'_, 'ctx> {
    fn vt(&self, cx: &KernelCx<'_, 'ctx>, lanes: usize) -> VectorType<'ctx> {
        cx.f32_t().vec_type(lanes as u32)
    }

    /// `V` for tile rows `[ty0, ty0 + rows)` of every input channel.
    fn input(
        &self,
        cx: &mut KernelCx<'_, 'ctx>,
        xb: PointerValue<'ctx>,
        ty0: IntValue<'ctx>,
        rows: usize,
    ) -> CgResult<()> {
        let p = self.p;
        let (h, w, wp) = (p.h as i64, p.w as i64, p.wp as i64);
        let (pt, pl) = (p.pad.0 as i64, p.pad.1 as i64);
        let win = p.w.min(p.wp - p.pad.1);
        let ldv = p.ldv() as i64;
        let c_all = p.c as i64;
        cx.for_range(0, c_all, |cx, ci| {
            let xc = cx.gep_f32(xb, cx.mul_c(ci, h * w)?)?;
            // The plane: rows 2·ty0 - pt + q, columns from -pl, zero outside.
            cx.for_range(0, (2 * rows + 2) as i64, |cx, q| {
                let ih = cx.add_c(cx.add(cx.mul_c(ty0, 2)?, q)?, -pt)?;
                let dst = cx.gep_f32(self.plane, cx.mul_c(q, wp)?)?;
                let ge = cx.icmp(IntPredicate::SGE, ih, cx.i64(0))?;
                let lt = cx.icmp(IntPredicate::SLT, ih, cx.i64(h))?;
                let inside = cx.b.build_and(ge, lt, "")?;
                if_else(
                    cx,
                    inside,
                    |cx| {
                        let src = cx.gep_f32(xc, cx.mul_c(ih, w)?)?;
                        zero(cx, dst, 0, pl)?;
                        cx.memcpy(cx.gep_f32(dst, cx.i64(pl))?, 4, src, 4, (win * 4) as u64)?;
                        zero(cx, dst, pl + win as i64, wp)
                    },
                    |cx| zero(cx, dst, 0, wp),
                )
            })?;
            cx.for_range(0, rows as i64, |cx, tyl| {
                let prow = cx.gep_f32(self.plane, cx.mul_c(tyl, 2 * wp)?)?;
                let vrow = cx.add(cx.mul_c(ci, ldv)?, cx.mul_c(tyl, p.tw as i64)?)?;
                for_blocks(cx, p.tw, p.vl, |cx, b, len| {
                    let tx0 = cx.mul_c(b, p.vl as i64)?;
                    self.input_vector(
                        cx,
                        cx.gep_f32(prow, cx.mul_c(tx0, 2)?)?,
                        cx.add(vrow, tx0)?,
                        len,
                    )
                })
            })
        })
    }

    /// `V` of the `len` (≤ VL) tiles whose patches start at `at` in the
    /// plane, stored at `V_ξ + vat`.
    fn input_vector(
        &self,
        cx: &mut KernelCx<'_, 'ctx>,
        at: PointerValue<'ctx>,
        vat: IntValue<'ctx>,
        len: usize,
    ) -> CgResult<()> {
        let p = self.p;
        let vl = p.vl as u32;
        let wide = self.vt(cx, 2 * p.vl);
        let even: Vec<u32> = (0..vl).map(|j| 2 * j).collect();
        let odd: Vec<u32> = (0..vl).map(|j| 2 * j + 1).collect();
        // d[r][m]: patch row r, column m, for VL tiles.
        let mut d = Vec::with_capacity(4);
        for r in 0..4 {
            let row = cx.gep_f32(at, cx.i64(r * p.wp as i64))?;
            let lo = load(cx, wide, row, None)?;
            let hi = load(cx, wide, cx.gep_f32(row, cx.i64(2))?, None)?;
            let u = wide.get_undef();
            d.push([
                cx.shuffle(lo, u, &even)?,
                cx.shuffle(lo, u, &odd)?,
                cx.shuffle(hi, u, &even)?,
                cx.shuffle(hi, u, &odd)?,
            ]);
        }
        // Bᵀ d (rows), then (Bᵀ d) B (columns).
        let bt = |cx: &KernelCx<'_, 'ctx>,
                  e: [VectorValue<'ctx>; 4]|
         -> CgResult<[VectorValue<'ctx>; 4]> {
            let (add, sub) = (
                |a, b| cx.b.build_float_add(a, b, ""),
                |a, b| cx.b.build_float_sub(a, b, ""),
            );
            Ok([
                sub(e[0], e[2])?,
                add(e[1], e[2])?,
                sub(e[2], e[1])?,
                sub(e[1], e[3])?,
            ])
        };
        let mut t = [[d[0][0]; 4]; 4];
        for mcol in 0..4 {
            let col = bt(cx, [d[0][mcol], d[1][mcol], d[2][mcol], d[3][mcol]])?;
            for i in 0..4 {
                t[i][mcol] = col[i];
            }
        }
        let plane_v = (p.c * p.ldv()) as i64;
        for (i, ti) in t.iter().enumerate() {
            let vi = bt(cx, *ti)?;
            for (j, v) in vi.iter().enumerate() {
                let xi = (4 * i + j) as i64;
                let dst = cx.gep_f32(self.v, cx.add_c(vat, xi * plane_v)?)?;
                store_prefix(cx, dst, *v, len)?;
            }
        }
        Ok(())
    }

    /// The 16 GEMMs `M_ξ = U_ξ × V_ξ` of a block of `rows` tile rows.
    fn gemms(&self, cx: &mut KernelCx<'_, 'ctx>, rows: usize) -> CgResult<()> {
        let p = self.p;
        let u = p.ukr;
        let (c, oc, ldv) = (p.c, p.oc, p.ldv());
        let n = rows * p.tw;
        let panel = c * u.mr;
        let panels = div_ceil(oc, u.mr);
        cx.for_range(0, 16, |cx, xi| {
            let uxi = cx.gep_f32(self.ut, cx.mul_c(xi, (panels * panel) as i64)?)?;
            let vxi = cx.gep_f32(self.v, cx.mul_c(xi, (c * ldv) as i64)?)?;
            let mxi = cx.gep_f32(self.m, cx.mul_c(xi, (oc * ldv) as i64)?)?;
            for_blocks(cx, oc, u.mr, |cx, mb, mrv| {
                let a = cx.gep_f32(uxi, cx.mul_c(mb, panel as i64)?)?;
                let crow = cx.gep_f32(mxi, cx.mul_c(mb, (u.mr * ldv) as i64)?)?;
                for_blocks(cx, n, u.nr, |cx, np, nrv| {
                    let col = cx.mul_c(np, u.nr as i64)?;
                    let cp = cx.gep_f32(crow, col)?;
                    Call {
                        k: c as i64,
                        a,
                        lda: 0,
                        b: cx.gep_f32(vxi, col)?,
                        ldb: ldv as i64,
                        c: cp,
                        ldc: ldv as i64,
                        bias: self.zt,
                        mr_valid: mrv,
                        nr_valid: nrv,
                        flags: cx.i32(0),
                        lo: cx.f32(f32::NEG_INFINITY),
                        hi: cx.f32(f32::INFINITY),
                        pf: next_panel(cx, a, panel, c, np)?,
                        r: cp,
                        off: cp,
                    }
                    .emit(cx, self.f)
                })
            })
        })
    }

    /// `Y = Aᵀ M A` + bias, the residual and the clamp, into output rows
    /// `[2·ty0, 2·(ty0 + rows))`.
    fn output(
        &self,
        cx: &mut KernelCx<'_, 'ctx>,
        ob: PointerValue<'ctx>,
        rb: Option<PointerValue<'ctx>>,
        ty0: IntValue<'ctx>,
        rows: usize,
    ) -> CgResult<()> {
        let p = self.p;
        let vl = p.vl;
        let ohw = (p.oh * p.ow) as i64;
        let ldv = p.ldv() as i64;
        // Tile vectors whose 2·VL output columns all exist, then the rest
        // (at most VL tiles, fewer output columns) once.
        let safe = p.ow / (2 * vl);
        let rest = p.tw - safe * vl;
        cx.for_range(0, p.oc as i64, |cx, o| {
            let bias = cx.splat(cx.load_f32(self.bt, o)?.into(), vl as u32)?;
            let plane = cx.mul_c(o, ohw)?;
            let oplane = cx.gep_f32(ob, plane)?;
            let rplane = rb.map(|r| cx.gep_f32(r, plane)).transpose()?;
            cx.for_range(0, rows as i64, |cx, tyl| {
                let ty = cx.add(ty0, tyl)?;
                let mrow = cx.add(cx.mul_c(o, ldv)?, cx.mul_c(tyl, p.tw as i64)?)?;
                let vec = OutVec {
                    oplane,
                    rplane,
                    ty,
                    mrow,
                    bias,
                };
                cx.for_range(0, safe as i64, |cx, b| {
                    let tx0 = cx.mul_c(b, vl as i64)?;
                    self.output_vector(cx, &vec, tx0, vl, 2 * vl)
                })?;
                if rest > 0 {
                    let tx0 = cx.i64((safe * vl) as i64);
                    self.output_vector(cx, &vec, tx0, rest, p.ow - 2 * safe * vl)?;
                }
                Ok(())
            })
        })
    }

    /// The `len` tiles from `tx0` of one tile row: `cols` output columns.
    fn output_vector(
        &self,
        cx: &mut KernelCx<'_, 'ctx>,
        ov: &OutVec<'ctx>,
        tx0: IntValue<'ctx>,
        len: usize,
        cols: usize,
    ) -> CgResult<()> {
        let p = self.p;
        let vl = p.vl;
        let vt = self.vt(cx, vl);
        let mask = (len < vl).then(|| lane_mask(cx, vl, len));
        let plane_m = (p.oc * p.ldv()) as i64;
        let at = cx.add(ov.mrow, tx0)?;
        let mut mv = Vec::with_capacity(16);
        for xi in 0..16 {
            let src = cx.gep_f32(self.m, cx.add_c(at, xi * plane_m)?)?;
            mv.push(load(cx, vt, src, mask)?);
        }
        let at_ = |cx: &KernelCx<'_, 'ctx>,
                   e: [VectorValue<'ctx>; 4]|
         -> CgResult<[VectorValue<'ctx>; 2]> {
            let s = cx.b.build_float_add(e[1], e[2], "")?;
            let d = cx.b.build_float_sub(e[1], e[2], "")?;
            Ok([
                cx.b.build_float_add(e[0], s, "")?,
                cx.b.build_float_sub(d, e[3], "")?,
            ])
        };
        // Aᵀ M (2×4), then (Aᵀ M) A (2×2).
        let mut s = [[mv[0]; 4]; 2];
        for j in 0..4 {
            let col = at_(cx, [mv[j], mv[4 + j], mv[8 + j], mv[12 + j]])?;
            s[0][j] = col[0];
            s[1][j] = col[1];
        }
        let inter: Vec<u32> = (0..vl as u32).flat_map(|l| [l, l + vl as u32]).collect();
        let wide = self.vt(cx, 2 * vl);
        let omask = (cols < 2 * vl).then(|| lane_mask(cx, 2 * vl, cols));
        let x0 = cx.mul_c(tx0, 2)?;
        for (i, si) in s.iter().enumerate() {
            let y = at_(cx, *si)?;
            let y0 = cx.b.build_float_add(y[0], ov.bias, "")?;
            let y1 = cx.b.build_float_add(y[1], ov.bias, "")?;
            let mut row = cx.shuffle(y0, y1, &inter)?;
            let oy = cx.add_c(cx.mul_c(ov.ty, 2)?, i as i64)?;
            let at = cx.add(cx.mul_c(oy, p.ow as i64)?, x0)?;
            let mut store = |cx: &mut KernelCx<'_, 'ctx>| -> CgResult<()> {
                if let Some(r) = ov.rplane {
                    let rv = load(cx, wide, cx.gep_f32(r, at)?, omask)?;
                    row = cx.b.build_float_add(row, rv, "")?;
                }
                let (lo, hi) = self.clamp;
                if (lo, hi) != (f32::NEG_INFINITY, f32::INFINITY) {
                    let b = cx.b;
                    let lo = cx.splat(cx.f32(lo).into(), 2 * vl as u32)?;
                    let hi = cx.splat(cx.f32(hi).into(), 2 * vl as u32)?;
                    let below = b.build_float_compare(FloatPredicate::OLT, row, lo, "")?;
                    let x = b.build_select(below, lo, row, "")?.into_vector_value();
                    let above = b.build_float_compare(FloatPredicate::OGT, x, hi, "")?;
                    row = b.build_select(above, hi, x, "")?.into_vector_value();
                }
                store_prefix(cx, cx.gep_f32(ov.oplane, at)?, row, cols)
            };
            if i == 1 && p.oh % 2 == 1 {
                // The last tile row of an odd-height output has one row.
                let inside = cx.icmp(IntPredicate::SLT, oy, cx.i64(p.oh as i64))?;
                if_else(cx, inside, store, |_| Ok(()))?;
            } else {
                store(cx)?;
            }
        }
        Ok(())
    }
}

/// One tile row of one output channel.
struct OutVec<'ctx> {
    oplane: PointerValue<'ctx>,
    rplane: Option<PointerValue<'ctx>>,
    /// The tile row.
    ty: IntValue<'ctx>,
    /// Offset of the row's first tile in `M_0`.
    mrow: IntValue<'ctx>,
    bias: VectorValue<'ctx>,
}

#[cfg(test)]
mod tests {
    use super::transform_weights;

    /// F(2, 3) reproduces a direct 3×3 correlation on one 4×4 patch.
    #[test]
    fn one_tile_matches_direct() {
        let g: Vec<f32> = (0..9).map(|i| (i as f32 * 0.37).sin()).collect();
        let d: Vec<f64> = (0..16).map(|i| (i as f64 * 0.91).cos()).collect();
        let u = transform_weights(&g, 1, 1);
        let bt = [
            [1.0, 0.0, -1.0, 0.0],
            [0.0, 1.0, 1.0, 0.0],
            [0.0, -1.0, 1.0, 0.0],
            [0.0, 1.0, 0.0, -1.0],
        ];
        let at = [[1.0, 1.0, 1.0, 0.0], [0.0, 1.0, -1.0, -1.0]];
        // V = Bᵀ d B, M = U ⊙ V, Y = Aᵀ M A.
        let mut v = [[0f64; 4]; 4];
        for (i, vi) in v.iter_mut().enumerate() {
            for (j, vij) in vi.iter_mut().enumerate() {
                for r in 0..4 {
                    for c in 0..4 {
                        *vij += bt[i][r] * d[r * 4 + c] * bt[j][c];
                    }
                }
            }
        }
        for y in 0..2 {
            for x in 0..2 {
                let mut wino = 0.0;
                for i in 0..4 {
                    for j in 0..4 {
                        wino += at[y][i] * u[4 * i + j][0] as f64 * v[i][j] * at[x][j];
                    }
                }
                let direct: f64 = (0..9)
                    .map(|t| g[t] as f64 * d[(y + t / 3) * 4 + x + t % 3])
                    .sum();
                assert!((wino - direct).abs() < 1e-6, "{y},{x}: {wino} vs {direct}");
            }
        }
    }
}
