//! QGemm (`[M,K] × [K,N]` with constant int8 B) on the int8 microkernels.
//!
//! B is packed at compile time into column panels, `[N/NR][K/4][NR][4]`
//! (`pack::pack_k4` of its transpose), with the folded bias, multipliers
//! and shifts padded per column beside it. A is read in place, four bytes
//! at a time (`QALayout::Strided`), flipped to the dot instruction's
//! signedness inside the microkernel; the epilogue parameters are per
//! column. K must be a multiple of four so that no read passes A's end.

use super::div_ceil;
use super::for_blocks;
use super::pack::{pack_k4, pad_to};
use super::qukernel::{I8Ukr, QALayout, QCall};
use crate::cx::{CgResult, KernelCx, Operand};
use crate::kernels::quant::{const_i32_table, const_i8_table};
use crate::portable::TargetFacts;
use qcc_ir::quant::Epilogue;
use qcc_ir::DType;

/// The microkernel for an `[m,k] × [k,n]` QGemm with activations of type
/// `adt`, or `None` when the path does not apply (K not a multiple of 4,
/// or a bare-metal target, which keeps its smaller code).
pub fn plan(facts: &TargetFacts, m: usize, k: usize, adt: DType) -> Option<I8Ukr> {
    if facts.bare_metal || k == 0 || !k.is_multiple_of(4) {
        return None;
    }
    let dot = super::qukernel::Dot::of(facts);
    let flip = dot.act_shift(adt) != 0;
    Some(I8Ukr::for_target(
        facts,
        QALayout::Strided { flip },
        true,
        m,
    ))
}

/// Emits the product. `bt` is B transposed (`[N][K]`), `bias` the folded
/// bias per column.
#[allow(clippy::too_many_arguments)]
pub fn emit<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    u: I8Ukr,
    (m, k, n): (usize, usize, usize),
    a: &Operand<'_, 'ctx>,
    bt: &[i64],
    bias: &[i32],
    epi: &Epilogue,
    out: &Operand<'_, 'ctx>,
) -> CgResult<()> {
    let (nr, k4) = (u.nr, div_ceil(k, 4));
    let r = &epi.rescale;
    let chan = |c: usize| if r.multiplier.len() == 1 { 0 } else { c };
    let mults: Vec<i32> = (0..n).map(|c| r.multiplier[chan(c)]).collect();
    let shifts: Vec<i32> = (0..n).map(|c| r.shift[chan(c)] as i32).collect();
    let wt = const_i8_table(cx, "mmm.qb", &pack_k4(bt, n, k, k, 1, nr));
    let tables = [
        const_i32_table(cx, "mmm.qbias", &pad_to(bias, nr, 0)),
        const_i32_table(cx, "mmm.qmul", &pad_to(&mults, nr, 1)),
        const_i32_table(cx, "mmm.qshift", &pad_to(&shifts, nr, 0)),
    ];
    let f = u.function(cx)?;
    for_blocks(cx, m, u.mr, |cx, mb, mrv| {
        let row0 = cx.mul_c(mb, u.mr as i64)?;
        let ap = cx.gep(DType::I8, a.ptr, cx.mul_c(row0, k as i64)?)?;
        let crow = cx.gep(DType::I8, out.ptr, cx.mul_c(row0, n as i64)?)?;
        for_blocks(cx, n, nr, |cx, np, nrv| {
            let col = cx.mul_c(np, nr as i64)?;
            let params = [
                cx.gep(DType::I32, tables[0], col)?,
                cx.gep(DType::I32, tables[1], col)?,
                cx.gep(DType::I32, tables[2], col)?,
            ];
            QCall {
                k4: k4 as i64,
                a: ap,
                lda: k as i64,
                b: cx.gep(DType::I8, wt, cx.mul_c(np, (k4 * nr * 4) as i64)?)?,
                ldb: (nr * 4) as i64,
                c: cx.gep(DType::I8, crow, col)?,
                ldc: n as i64,
                params,
                mr_valid: mrv,
                nr_valid: nrv,
                out: (epi.zero_point, epi.min, epi.max),
            }
            .emit(cx, f)
        })
    })
}
