//! `C[M][N] = A[M][K] × B[K][N] (+ bias[N])` with a constant B (Gemm and
//! MatMul against weights) on the microkernels.
//!
//! A is the run-time operand, read in place (strided rows, broadcast); B is
//! packed at compile time into `[N/NR][K][NR]` column panels (transposed and
//! scaled by `alpha` on the way), so each k step of the microkernel reads
//! `NR` contiguous floats. The bias per column (Gemm's `beta · C` when C is
//! a constant `[N]` or `[1, N]`) is padded beside the panels and becomes the
//! microkernel's initial accumulator.

use super::pack::pack_a;
use super::ukernel::{ALayout, Call, F32Ukr, BIAS_COLS};
use super::Simd;
use super::{div_ceil, for_blocks, next_panel};
use crate::cx::{CgResult, KernelCx};
use crate::kernels::conv::const_f32_table;
use inkwell::values::{IntValue, PointerValue};

/// Packs B (element `(kk, j)` at `b[kk * rs + j * cs]`, `k × n`) into
/// column panels `[ceil(n/nr)][k][nr]`, scaled by `alpha`, zero-padded.
pub fn pack_b(
    b: &[f32],
    k: usize,
    n: usize,
    rs: usize,
    cs: usize,
    nr: usize,
    alpha: f32,
) -> Vec<f32> {
    // Column panels of B are the row panels of Bᵀ.
    let mut out = pack_a(b, n, k, cs, rs, nr);
    if alpha != 1.0 {
        out.iter_mut().for_each(|v| *v *= alpha);
    }
    out
}

/// One `[M,K] @ [K,N]` product against a constant, packed B.
pub struct ConstB<'ctx> {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub ukr: F32Ukr,
    /// Packed panels and the padded bias (zeros when none).
    pub panels: PointerValue<'ctx>,
    pub bias: PointerValue<'ctx>,
}

impl<'ctx> ConstB<'ctx> {
    /// Packs B (see [`pack_b`]) and the bias for an `m`-row product.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cx: &KernelCx<'_, 'ctx>,
        simd: Simd,
        (m, n, k): (usize, usize, usize),
        b: &[f32],
        (rs, cs): (usize, usize),
        alpha: f32,
        bias: Option<&[f32]>,
    ) -> ConstB<'ctx> {
        // No wider than N needs: a 10-column layer on a 1-row tile widened
        // to 64 columns would pad its panels 6.4× (flash and work).
        let wide = F32Ukr::for_target(simd, ALayout::Strided, m);
        let ukr = F32Ukr {
            nr: wide.nr.min(n.next_multiple_of(wide.lanes())),
            ..wide
        };
        let packed = pack_b(b, k, n, rs, cs, ukr.nr, alpha);
        let mut bp = vec![0f32; div_ceil(n, ukr.nr).max(1) * ukr.nr];
        if let Some(v) = bias {
            bp[..n].copy_from_slice(&v[..n]);
        }
        ConstB {
            m,
            n,
            k,
            ukr,
            panels: const_f32_table(cx, "mmm.b", &packed),
            bias: const_f32_table(cx, "mmm.bias", &bp),
        }
    }

    /// `out[off + i*n + j] = Σ_k a[a_off + i*lda + k] · B(k, j) + bias[j]`.
    pub fn emit(
        &self,
        cx: &mut KernelCx<'_, 'ctx>,
        a: PointerValue<'ctx>,
        lda: usize,
        out: PointerValue<'ctx>,
        lo: f32,
        hi: f32,
    ) -> CgResult<()> {
        let u = self.ukr;
        let f = u.function(cx)?;
        let (m, n, k) = (self.m, self.n, self.k);
        let (mr, nr) = (u.mr, u.nr);
        let call = |cx: &mut KernelCx<'_, 'ctx>,
                    np: IntValue<'ctx>,
                    nrv: usize,
                    mb: IntValue<'ctx>,
                    mrv: usize|
         -> CgResult<()> {
            let row = cx.mul_c(mb, mr as i64)?;
            let ap = cx.gep_f32(a, cx.mul_c(row, lda as i64)?)?;
            let bp = cx.gep_f32(self.panels, cx.mul_c(np, (k * nr) as i64)?)?;
            let col = cx.mul_c(np, nr as i64)?;
            let cp = cx.gep_f32(out, cx.add(cx.mul_c(row, n as i64)?, col)?)?;
            let bias = cx.gep_f32(self.bias, col)?;
            Call {
                k: k as i64,
                a: ap,
                lda: lda as i64,
                b: bp,
                ldb: nr as i64,
                c: cp,
                ldc: n as i64,
                bias,
                mr_valid: mrv,
                nr_valid: nrv,
                flags: cx.i32(BIAS_COLS as i32),
                lo: cx.f32(lo),
                hi: cx.f32(hi),
                pf: next_panel(cx, bp, k * nr, k, mb)?,
                r: cp,
                off: cp,
            }
            .emit(cx, f)
        };
        // Column panels outside: one K × NR panel of B serves every row block.
        for_blocks(cx, n, nr, |cx, np, nrv| {
            for_blocks(cx, m, mr, |cx, mb, mrv| call(cx, np, nrv, mb, mrv))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::pack_b;

    #[test]
    fn column_panels() {
        // B = [[1,2,3],[4,5,6]] (k=2, n=3), panels of 2 columns.
        let b = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let p = pack_b(&b, 2, 3, 3, 1, 2, 1.0);
        assert_eq!(p, vec![1.0, 2.0, 4.0, 5.0, 3.0, 0.0, 6.0, 0.0]);
        // B given transposed, scaled by 2.
        let bt = [1.0, 4.0, 2.0, 5.0, 3.0, 6.0];
        let q = pack_b(&bt, 2, 3, 1, 2, 2, 2.0);
        assert_eq!(q, p.iter().map(|v| v * 2.0).collect::<Vec<_>>());
    }
}
