//! QGemm (`[M,K] × [K,N]` with constant int8 B) on the int8 microkernels.
//!
//! B is packed at compile time into column panels, `[N/NR][K/4][NR][4]`
//! (`pack::pack_k4` of its transpose), with the folded bias, multipliers
//! and shifts padded per column beside it. A (the activations) is packed at
//! run time into the node's workspace scratch as `[M/MR][K/4][MR][4]`,
//! flipped to the dot instruction's signedness on the way, once, however
//! many column panels then read it. The epilogue parameters are per column.

use super::amx::{self, AmxPlan};
use super::pack::{pack_bits, pack_k4};
use super::qukernel::{epi_tables, Dot, I8Ukr, QCall};
use super::{div_ceil, for_blocks};
use crate::cx::{CgResult, KernelCx, Operand};
use crate::kernels::quant::const_i8_table;
use crate::portable::TargetFacts;
use inkwell::values::{IntValue, PointerValue};
use qcc_ir::quant::Epilogue;
use qcc_ir::DType;

/// The microkernel plan of one `[m,k] × [k,n]` QGemm.
#[derive(Clone, Debug, PartialEq)]
pub struct QGemmPlan {
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub ukr: I8Ukr,
    /// On AMX tiles instead of `ukr` (Linux x86-64 with `amx-int8`, when
    /// [`amx::worth`] it).
    pub amx: Option<AmxPlan>,
    /// Bits per stored weight of B: 8, or 4 or 2
    /// ([`TargetFacts::stored_bits`], not on AMX): then each column panel is
    /// unpacked into scratch once, and every row panel reads it.
    pub stored_bits: u32,
}

impl QGemmPlan {
    /// The plan, or `None` on a bare-metal target (which keeps its smaller
    /// code and no scratch).
    pub fn new(facts: &TargetFacts, m: usize, k: usize, n: usize) -> Option<QGemmPlan> {
        if facts.bare_metal || m == 0 || k == 0 || n == 0 {
            return None;
        }
        let amx = (facts.amx && amx::worth(m, k)).then_some(AmxPlan { m, k, n });
        // No wider than N needs: a 10-column head at batch 1 on a 1-row tile
        // widened to 32 or 64 columns would pad its weight panels 3-6×.
        let wide = I8Ukr::for_target(facts, true, m);
        let ukr = I8Ukr {
            nr: wide.nr.min(n.next_multiple_of(wide.dot.cols_per_acc())),
            ..wide
        };
        Some(QGemmPlan {
            m,
            k,
            n,
            ukr,
            stored_bits: if amx.is_some() { 8 } else { facts.stored_bits },
            amx,
        })
    }

    fn k4(&self) -> usize {
        div_ceil(self.k, 4)
    }

    /// Bytes of the packed A.
    fn a_bytes(&self) -> usize {
        div_ceil(self.m, self.ukr.mr) * self.k4() * self.ukr.mr * 4 * self.ukr.a_bytes()
    }

    /// Workspace scratch the node needs (the packed A, and one unpacked B
    /// panel below 8 stored bits), in bytes.
    pub fn scratch_bytes(&self) -> usize {
        if let Some(p) = &self.amx {
            return p.scratch_bytes();
        }
        let panel = if self.stored_bits < 8 {
            self.k4() * self.ukr.nr * 4
        } else {
            0
        };
        self.a_bytes() + panel
    }

    /// The dot instruction whose operand signedness the packing follows
    /// (`tdpbusd` reads u8 × s8 like `vpdpbusd`).
    pub fn dot(&self) -> Dot {
        if self.amx.is_some() {
            return Dot::Vnni512;
        }
        self.ukr.dot
    }
}

/// Emits the product. `bt` is B transposed (`[N][K]`), `bias` the folded
/// bias per column.
#[allow(clippy::too_many_arguments)]
pub fn emit<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    p: &QGemmPlan,
    a: &Operand<'_, 'ctx>,
    bt: &[i64],
    bias: &[i32],
    epi: &Epilogue,
    out: &Operand<'_, 'ctx>,
) -> CgResult<()> {
    if let Some(ap) = &p.amx {
        let flip = p.dot().act_shift(a.dtype()) != 0;
        return amx::emit(cx, ap, a, flip, bt, bias, epi, out);
    }
    let u = I8Ukr {
        requant: super::qukernel::requant_mode(&cx.target, &epi.rescale),
        ..p.ukr
    };
    let (m, k, n) = (p.m, p.k, p.n);
    let (mr, nr, k4) = (u.mr, u.nr, p.k4());
    let bp = pack_k4(bt, n, k, k, 1, nr);
    let b_panel = (k4 * nr * 4) as i64;
    let tables = epi_tables(cx, bias, &epi.rescale, (1, n, nr));
    let f = u.function(cx)?;
    let s = cx
        .scratch
        .ok_or_else(|| cx.unsupported("no scratch for the packed activations"))?;
    pack_acts(cx, p, a, s)?;
    let panel_bytes = k4 * mr * 4 * u.a_bytes();
    // One microkernel call: row panel `mb` of the packed A against the
    // column panel `np` of B, read at `b`.
    let call = |cx: &mut KernelCx<'_, 'ctx>,
                (mb, mrv): (IntValue<'ctx>, usize),
                (np, nrv): (IntValue<'ctx>, usize),
                b: PointerValue<'ctx>| {
        let ap = cx.gep(DType::I8, s, cx.mul_c(mb, panel_bytes as i64)?)?;
        let crow = cx.gep(DType::I8, out.ptr, cx.mul_c(mb, (mr * n) as i64)?)?;
        let col = cx.mul_c(np, nr as i64)?;
        let params = super::qukernel::tables_at(cx, &tables, col)?;
        QCall {
            k4: k4 as i64,
            a: ap,
            b,
            ldb: (nr * 4) as i64,
            c: cx.gep(DType::I8, crow, col)?,
            ldc: n as i64,
            params,
            mr_valid: mrv,
            nr_valid: nrv,
            out: (epi.zero_point, epi.min, epi.max),
        }
        .emit(cx, f)
    };
    let bits = p.stored_bits;
    if bits < 8 {
        // Column panels outside: each is unpacked once for every row panel.
        let wt = const_i8_table(cx, &format!("mmm.qb{bits}"), &pack_bits(&bp, bits));
        let buf = cx.gep_bytes(s, p.a_bytes() as i64)?;
        let stored = b_panel * bits as i64 / 8;
        return for_blocks(cx, n, nr, |cx, np, nrv| {
            let packed = cx.gep(DType::I8, wt, cx.mul_c(np, stored)?)?;
            super::qconv::unpack_bits(cx, packed, buf, stored, bits, false)?;
            for_blocks(cx, m, mr, |cx, mb, mrv| call(cx, (mb, mrv), (np, nrv), buf))
        });
    }
    let wt = const_i8_table(cx, "mmm.qb", &bp);
    for_blocks(cx, m, mr, |cx, mb, mrv| {
        for_blocks(cx, n, nr, |cx, np, nrv| {
            let b = cx.gep(DType::I8, wt, cx.mul_c(np, b_panel)?)?;
            call(cx, (mb, mrv), (np, nrv), b)
        })
    })
}

/// Packs A (`[M][K]` bytes) into `dst` as `[M/MR][K/4][MR][4]`, flipping
/// every byte when the dot instruction reads the other signedness, and
/// sign-extended to i16 where it reads them wide (`I8Ukr::a_bytes`). Rows
/// past M and bytes past K are left as they are: the microkernel's results
/// for those rows are not stored, and B is zero past K.
fn pack_acts<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    p: &QGemmPlan,
    a: &Operand<'_, 'ctx>,
    dst: inkwell::values::PointerValue<'ctx>,
) -> CgResult<()> {
    let (mr, k, k4) = (p.ukr.mr as i64, p.k as i64, p.k4() as i64);
    let flip = p.dot().act_shift(a.dtype()) != 0;
    let wide = p.amx.is_none() && p.ukr.a_bytes() == 2;
    let full = k / 4;
    cx.for_range(0, p.m as i64, |cx, i| {
        let panel = cx.b.build_int_unsigned_div(i, cx.i64(mr), "")?;
        let row = cx.b.build_int_unsigned_rem(i, cx.i64(mr), "")?;
        // i32 index of (i, q = 0) in the packed layout.
        let base = cx.add(cx.mul_c(panel, k4 * mr)?, row)?;
        let src = cx.gep(DType::I8, a.ptr, cx.mul_c(i, k)?)?;
        cx.for_range(0, full, |cx, q| {
            let sp = cx.gep(DType::I8, src, cx.mul_c(q, 4)?)?;
            let ld = cx.b.build_load(cx.i32_t(), sp, "")?;
            if let Some(ins) = inkwell::values::BasicValue::as_instruction_value(&ld) {
                ins.set_alignment(1)
                    .map_err(|e| crate::CodegenError::Llvm(e.to_string()))?;
            }
            let mut w = ld.into_int_value();
            if flip {
                w = cx.b.build_xor(w, cx.i32(0x8080_8080u32 as i32), "")?;
            }
            let at = cx.add(base, cx.mul_c(q, mr)?)?;
            if wide {
                let bytes = cx.b.build_bit_cast(w, cx.i8_t().vec_type(4), "")?;
                let halves = cx.b.build_int_s_extend(
                    bytes.into_vector_value(),
                    cx.ctx.i16_type().vec_type(4),
                    "",
                )?;
                let v = cx.b.build_bit_cast(halves, cx.i64_t(), "")?;
                return cx.store(DType::I64, dst, at, v);
            }
            cx.store(DType::I32, dst, at, w.into())
        })?;
        // The last, partial group, byte by byte.
        let at = cx.mul_c(cx.add(base, cx.i64(full * mr))?, 4)?;
        for t in 0..k % 4 {
            let mut b = cx
                .load(DType::I8, src, cx.i64(full * 4 + t))?
                .into_int_value();
            if flip {
                b = cx.b.build_xor(b, cx.i8_t().const_int(0x80, false), "")?;
            }
            if wide {
                let h = cx.b.build_int_s_extend(b, cx.ctx.i16_type(), "")?;
                let byte = cx.add_c(cx.mul_c(at, 2)?, 2 * t)?;
                cx.b.build_store(cx.gep(DType::I8, dst, byte)?, h)?;
            } else {
                cx.store(DType::I8, dst, cx.add_c(at, t)?, b.into())?;
            }
        }
        Ok(())
    })
}
