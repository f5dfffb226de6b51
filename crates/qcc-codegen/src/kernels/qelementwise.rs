//! Elementwise integer kernels: Quantize (f32 → 8-bit), Dequantize
//! (8-bit/i32 → f32), Requantize, Lut (256-entry table) and the
//! broadcasting QAdd / QMul.
//!
//! Quantize computes `x / scale` with one f32 division (or, on targets
//! with a hardware FMA and for the scales `qcc_ir::quant::exact_reciprocal`
//! proves it for, `fma(x, hi, x · lo)`, which gives the same f32), maps NaN to 0
//! (hence to the zero point), clamps to ±65536 and rounds half to even with
//! `(v + 1.5·2^23) - 1.5·2^23` (exact for |v| < 2^22 under the default
//! round-to-nearest-even mode; no fast-math flags, so LLVM keeps both
//! operations), never through `llvm.roundeven`/`rint`, which are libm calls
//! on some targets. Dequantize is `sitofp(q - zp) * scale`, one f32 multiply.
//!
//! Requantize, QAdd and QMul accumulate in i32; a worst case that does not
//! fit (possible only with huge QAdd multipliers) is rejected at compile time.

use super::expect_inputs;
use super::quant::{
    check_i32, const_i32_table, const_i8_table, ext_i32, iadd, imul, isub, load_ext, max_centered,
    need_int8, Chan, EpiEmit,
};
use crate::cx::{CgResult, KernelCx, Operand};
use crate::loops::coalesce;
use crate::math::ROUND_MAGIC;
use crate::mmm::Simd;
use inkwell::values::IntValue;
use inkwell::FloatPredicate;
use qcc_ir::{broadcast_strides, strides_of, DType, Node, Op};

fn same_count(cx: &KernelCx<'_, '_>, x: &Operand, out: &Operand) -> CgResult<()> {
    if x.numel() != out.numel() {
        return Err(cx.unsupported(format!("input {} and output {} sizes differ", x.ty, out.ty)));
    }
    Ok(())
}

fn need_out(cx: &KernelCx<'_, '_>, out: &Operand, to: DType) -> CgResult<(i32, i32)> {
    if out.dtype() != to {
        return Err(cx.unsupported(format!("output {} is not of type {to}", out.ty)));
    }
    need_int8(cx, out, "output")
}

/// `clamp(round_half_even(x / scale) + zp, lo, hi)`, elementwise.
pub fn emit_quantize<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    node: &Node,
    ins: &[Operand<'_, 'ctx>],
    out: &Operand<'_, 'ctx>,
) -> CgResult<()> {
    expect_inputs(cx, ins, 1)?;
    let Op::Quantize { q, to } = &node.op else {
        return Err(cx.unsupported("not a quantize"));
    };
    let x = &ins[0];
    if x.dtype() != DType::F32 {
        return Err(cx.unsupported(format!("input {} must be f32", x.ty)));
    }
    let (lo, hi) = need_out(cx, out, *to)?;
    same_count(cx, x, out)?;
    if !(q.scale.is_finite() && q.scale > 0.0 && (lo..=hi).contains(&q.zero_point)) {
        return Err(cx.unsupported(format!("bad quantization parameters {q:?} for {to}")));
    }
    let (scale, zp) = (q.scale, q.zero_point);
    // The division as one multiplication and one FMA where that is exact
    // for this scale and the target fuses in hardware.
    let hw_fma = matches!(cx.target.simd, Simd::Avx2 | Simd::Avx512 | Simd::Neon64);
    let recip = hw_fma
        .then(|| qcc_ir::quant::exact_reciprocal(scale))
        .flatten();
    cx.for_range(0, out.numel() as i64, |cx, i| {
        let x = cx.load_f32(x.ptr, i)?;
        // `qcc_ir::quant::quantize_fused`: NaN from x, x clamped first.
        let (v, nan) = match recip {
            Some((hi, lo)) => {
                let m = qcc_ir::quant::FUSED_X_MAX;
                let xc = cx.fclamp(x, -m, m)?;
                let xl = cx.fmul(xc, cx.f32(lo))?;
                let args = [xc.into(), cx.f32(hi).into(), xl.into()];
                let v = cx
                    .call_intrinsic("llvm.fma", &[cx.f32_t().into()], &args)?
                    .into_float_value();
                (v, cx.fcmp(FloatPredicate::UNO, x, x)?)
            }
            None => {
                let v = cx.fdiv(x, cx.f32(scale))?;
                (v, cx.fcmp(FloatPredicate::UNO, v, v)?)
            }
        };
        let v = cx.select_f(nan, cx.f32(0.0), v)?;
        let v = cx.fclamp(v, -65536.0, 65536.0)?;
        let r = cx.fsub(cx.fadd(v, cx.f32(ROUND_MAGIC))?, cx.f32(ROUND_MAGIC))?;
        let r = cx.b.build_float_to_signed_int(r, cx.i32_t(), "")?;
        let r = iadd(cx, r, cx.i32(zp))?;
        let r = cx.smin(cx.smax(r, cx.i32(lo))?, cx.i32(hi))?;
        let r = cx.b.build_int_truncate(r, cx.i8_t(), "")?;
        cx.store(*to, out.ptr, i, r.into())
    })
}

/// `(q - zp) as f32 * scale`, elementwise (I8, U8 or I32 input).
pub fn emit_dequantize<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    node: &Node,
    ins: &[Operand<'_, 'ctx>],
    out: &Operand<'_, 'ctx>,
) -> CgResult<()> {
    expect_inputs(cx, ins, 1)?;
    let Op::Dequantize { q } = &node.op else {
        return Err(cx.unsupported("not a dequantize"));
    };
    let x = &ins[0];
    let dt = x.dtype();
    if !matches!(dt, DType::I8 | DType::U8 | DType::I32) || out.dtype() != DType::F32 {
        return Err(cx.unsupported(format!(
            "input {} must be i8, u8 or i32 and the output f32",
            x.ty
        )));
    }
    same_count(cx, x, out)?;
    if !(q.scale.is_finite() && q.scale > 0.0) {
        return Err(cx.unsupported(format!("bad scale {}", q.scale)));
    }
    let (scale, zp) = (q.scale, q.zero_point);
    cx.for_range(0, out.numel() as i64, |cx, i| {
        let v = cx.load(dt, x.ptr, i)?.into_int_value();
        let v = if dt == DType::I32 {
            v
        } else {
            ext_i32(cx, dt, v)?
        };
        let v = isub(cx, v, cx.i32(zp))?;
        let f = cx.b.build_signed_int_to_float(v, cx.f32_t(), "")?;
        cx.store_f32(out.ptr, i, cx.fmul(f, cx.f32(scale))?)
    })
}

/// `epi.apply(x - in_zp, 0)`, elementwise.
pub fn emit_requantize<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    node: &Node,
    ins: &[Operand<'_, 'ctx>],
    out: &Operand<'_, 'ctx>,
) -> CgResult<()> {
    expect_inputs(cx, ins, 1)?;
    let Op::Requantize {
        in_zero_point,
        epi,
        to,
    } = &node.op
    else {
        return Err(cx.unsupported("not a requantize"));
    };
    let x = &ins[0];
    let dt = x.dtype();
    let rx = need_int8(cx, x, "input")?;
    need_out(cx, out, *to)?;
    same_count(cx, x, out)?;
    let e = EpiEmit::new(cx, epi, *to, 1)?;
    let zx = *in_zero_point;
    check_i32(cx, max_centered(rx, zx) as i128, "x - zero point")?;
    let p = e.params(cx, Chan::Static(0))?;
    cx.for_range(0, out.numel() as i64, |cx, i| {
        let v = load_ext(cx, dt, x.ptr, i)?;
        let acc = isub(cx, v, cx.i32(zx))?;
        let r = e.apply(cx, acc, &p)?;
        cx.store(*to, out.ptr, i, r.into())
    })
}

/// `table[x - min(dtype)]`, elementwise.
pub fn emit_lut<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    node: &Node,
    ins: &[Operand<'_, 'ctx>],
    out: &Operand<'_, 'ctx>,
) -> CgResult<()> {
    expect_inputs(cx, ins, 1)?;
    let Op::Lut { table, to } = &node.op else {
        return Err(cx.unsupported("not a lut"));
    };
    let x = &ins[0];
    let dt = x.dtype();
    let (xlo, _) = need_int8(cx, x, "input")?;
    let (lo, hi) = need_out(cx, out, *to)?;
    same_count(cx, x, out)?;
    if table.len() != 256 || table.iter().any(|v| !(lo..=hi).contains(v)) {
        return Err(cx.unsupported(format!("table must have 256 entries within {to}'s range")));
    }
    let bytes: Vec<i8> = table.iter().map(|&v| v as u8 as i8).collect();
    let t = const_i8_table(cx, "lut", &bytes);
    cx.for_range(0, out.numel() as i64, |cx, i| {
        let v = cx.load_index(dt, x.ptr, i)?;
        let k = cx.add_c(v, -(xlo as i64))?;
        let r = cx.load(DType::I8, t, k)?;
        cx.store(*to, out.ptr, i, r)
    })
}

/// QSoftmax (`qcc_ir::quant::softmax_row`) on each row of the last axis:
/// the row's maximum, `S = Σ table[max - x]` (i32), `r = N / S` in f32,
/// then each output `clamp(zp + round_half_even(e · r))` (rounded by the
/// `ROUND_MAGIC` addition: `e · r ≤ N ≤ 32768`).
pub fn emit_qsoftmax<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    node: &Node,
    ins: &[Operand<'_, 'ctx>],
    out: &Operand<'_, 'ctx>,
) -> CgResult<()> {
    expect_inputs(cx, ins, 1)?;
    let Op::QSoftmax {
        table,
        scale_inv,
        zero_point,
        to,
    } = &node.op
    else {
        return Err(cx.unsupported("not a qsoftmax"));
    };
    let x = &ins[0];
    let one = qcc_ir::quant::SOFTMAX_ONE;
    let n = x.shape().last().copied().unwrap_or(0);
    if x.dtype() != DType::I8
        || x.rank() == 0
        || table.len() != 256
        || table[0] <= 0
        || table.iter().any(|&t| !(0..=one).contains(&t))
        || n > qcc_ir::quant::SOFTMAX_MAX_ROW
        || !(1..=32768).contains(scale_inv)
    {
        return Err(cx.unsupported(format!(
            "input {}: want i8 rows of at most {} and a 256-entry table within 0..={one}",
            x.ty,
            qcc_ir::quant::SOFTMAX_MAX_ROW
        )));
    }
    let (lo, hi) = need_out(cx, out, *to)?;
    same_count(cx, x, out)?;
    let n = n as i64;
    let rows = x.numel() as i64 / n.max(1);
    let t = const_i32_table(cx, "qsoftmax.exp", table);
    let m_slot = cx.stack_array(DType::I32, 1)?;
    let s_slot = cx.stack_array(DType::I32, 1)?;
    let zero = cx.i64(0);
    cx.for_range(0, rows, |cx, r| {
        let base = cx.mul_c(r, n)?;
        cx.store(DType::I32, m_slot, zero, cx.i32(-128).into())?;
        cx.for_range(0, n, |cx, j| {
            let v = load_ext(cx, DType::I8, x.ptr, cx.add(base, j)?)?;
            let m = cx.load(DType::I32, m_slot, zero)?.into_int_value();
            cx.store(DType::I32, m_slot, zero, cx.smax(m, v)?.into())
        })?;
        let m = cx.load(DType::I32, m_slot, zero)?.into_int_value();
        // e_j = table[m - x_j], an i32 in 0..=SOFTMAX_ONE.
        let e_at = |cx: &KernelCx<'_, 'ctx>, j: IntValue<'ctx>| -> CgResult<IntValue<'ctx>> {
            let v = load_ext(cx, DType::I8, x.ptr, cx.add(base, j)?)?;
            let d = cx.b.build_int_s_extend(isub(cx, m, v)?, cx.i64_t(), "")?;
            Ok(cx.load(DType::I32, t, d)?.into_int_value())
        };
        cx.store(DType::I32, s_slot, zero, cx.i32(0).into())?;
        cx.for_range(0, n, |cx, j| {
            let e = e_at(cx, j)?;
            let s = cx.load(DType::I32, s_slot, zero)?.into_int_value();
            cx.store(DType::I32, s_slot, zero, iadd(cx, s, e)?.into())
        })?;
        let s = cx.load(DType::I32, s_slot, zero)?.into_int_value();
        let sf = cx.b.build_signed_int_to_float(s, cx.f32_t(), "")?;
        let r = cx.fdiv(cx.f32(*scale_inv as f32), sf)?;
        cx.for_range(0, n, |cx, j| {
            let e =
                cx.b.build_signed_int_to_float(e_at(cx, j)?, cx.f32_t(), "")?;
            let v = cx.fadd(cx.fmul(e, r)?, cx.f32(ROUND_MAGIC))?;
            let q = isub(cx, cx.f32_bits(v)?, cx.i32(ROUND_MAGIC.to_bits() as i32))?;
            let q = iadd(cx, q, cx.i32(*zero_point))?;
            let q = cx.smin(cx.smax(q, cx.i32(lo))?, cx.i32(hi))?;
            let q = cx.b.build_int_truncate(q, cx.i8_t(), "")?;
            cx.store(*to, out.ptr, cx.add(base, j)?, q.into())
        })
    })
}

/// QAdd and QMul with numpy broadcasting.
pub fn emit_binary<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    node: &Node,
    ins: &[Operand<'_, 'ctx>],
    out: &Operand<'_, 'ctx>,
) -> CgResult<()> {
    expect_inputs(cx, ins, 2)?;
    // (a_zp, a_mul, b_zp, b_mul); a multiply uses no multipliers.
    let (za, ma, zb, mb, epi, to, mul) = match &node.op {
        Op::QAdd {
            a_zero_point,
            a_multiplier,
            b_zero_point,
            b_multiplier,
            epi,
            to,
        } => (
            *a_zero_point,
            *a_multiplier,
            *b_zero_point,
            *b_multiplier,
            epi,
            *to,
            false,
        ),
        Op::QMul {
            a_zero_point,
            b_zero_point,
            epi,
            to,
        } => (*a_zero_point, 1, *b_zero_point, 1, epi, *to, true),
        _ => return Err(cx.unsupported("not a quantized add or multiply")),
    };
    let (a, b) = (&ins[0], &ins[1]);
    let (ra, rb) = (need_int8(cx, a, "A")?, need_int8(cx, b, "B")?);
    need_out(cx, out, to)?;
    let e = EpiEmit::new(cx, epi, to, 1)?;
    // The accumulator is i32, like every integer kernel's (the interpreter
    // rejects larger ones too): check its worst case.
    let (wa, wb) = (max_centered(ra, za) as i128, max_centered(rb, zb) as i128);
    let worst = if mul {
        wa * wb
    } else {
        wa * (ma as i128).abs() + wb * (mb as i128).abs()
    };
    check_i32(cx, worst, "the sum")?;
    let shape = out.shape().to_vec();
    if a.rank() > shape.len() || b.rank() > shape.len() {
        return Err(cx.unsupported("operand rank exceeds the output rank"));
    }
    if qcc_ir::broadcast_shapes(a.shape(), b.shape()).as_deref() != Some(shape.as_slice()) {
        return Err(cx.unsupported(format!(
            "{} and {} do not broadcast to {}",
            a.ty, b.ty, out.ty
        )));
    }
    let to_i64 = |v: Vec<usize>| v.into_iter().map(|s| s as i64).collect::<Vec<i64>>();
    let so = to_i64(strides_of(&shape));
    let sa = to_i64(broadcast_strides(a.shape(), &shape));
    let sb = to_i64(broadcast_strides(b.shape(), &shape));
    let (cshape, st) = coalesce(&shape, &[so, sa, sb]);
    let p = e.params(cx, Chan::Static(0))?;
    let (da, db) = (a.dtype(), b.dtype());
    // Same-shape QAdd on x86 with a high shift: 16 lanes at a time through
    // the microkernels' 32-bit requantization, the rest below.
    let n = out.numel();
    let same = a.shape() == shape.as_slice() && b.shape() == shape.as_slice();
    let done = if !mul
        && same
        && crate::mmm::qukernel::requant_mode(&cx.target, &epi.rescale)
            == crate::mmm::qukernel::Requant::High
    {
        let lanes = 16;
        let full = n / lanes * lanes;
        add_vectors(cx, (a, za, ma), (b, zb, mb), epi, out, full / lanes)?;
        full
    } else {
        0
    };
    if done > 0 {
        if done == n {
            return Ok(());
        }
        return cx.for_range(done as i64, n as i64, |cx, i| {
            let (xa, xb) = (load_ext(cx, da, a.ptr, i)?, load_ext(cx, db, b.ptr, i)?);
            let ta = scale_i32(cx, isub(cx, xa, cx.i32(za))?, ma)?;
            let tb = scale_i32(cx, isub(cx, xb, cx.i32(zb))?, mb)?;
            let r = e.apply(cx, iadd(cx, ta, tb)?, &p)?;
            cx.store(to, out.ptr, i, r.into())
        });
    }
    cx.for_nest(&cshape, |cx, ivs| {
        let io = cx.dot(ivs, &st[0], 0)?;
        let ia = cx.dot(ivs, &st[1], 0)?;
        let ib = cx.dot(ivs, &st[2], 0)?;
        let (xa, xb) = (load_ext(cx, da, a.ptr, ia)?, load_ext(cx, db, b.ptr, ib)?);
        let ta = isub(cx, xa, cx.i32(za))?;
        let tb = isub(cx, xb, cx.i32(zb))?;
        let acc = if mul {
            imul(cx, ta, tb)?
        } else {
            let ta = scale_i32(cx, ta, ma)?;
            iadd(cx, ta, scale_i32(cx, tb, mb)?)?
        };
        let r = e.apply(cx, acc, &p)?;
        cx.store(to, out.ptr, io, r.into())
    })
}

/// The first `vecs · 16` elements of a same-shape QAdd, 16 per step:
/// widened, centered and scaled in i32 lanes, then
/// `qukernel::requantize` on its 32-bit path (every shift is at least 33).
fn add_vectors<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    (a, za, ma): (&Operand<'_, 'ctx>, i32, i32),
    (b, zb, mb): (&Operand<'_, 'ctx>, i32, i32),
    epi: &qcc_ir::Epilogue,
    out: &Operand<'_, 'ctx>,
    vecs: usize,
) -> CgResult<()> {
    const L: u32 = 16;
    let v8 = cx.i8_t().vec_type(L);
    let v32 = cx.i32_t().vec_type(L);
    let splat = |cx: &KernelCx<'_, 'ctx>, v: i32| cx.splat(cx.i32(v).into(), L);
    let params = crate::mmm::qukernel::splat_params(cx, epi, L)?;
    let (cza, czb, cma, cmb) = (
        splat(cx, za)?,
        splat(cx, zb)?,
        splat(cx, ma)?,
        splat(cx, mb)?,
    );
    cx.for_range(0, vecs as i64, |cx, q| {
        let at = cx.mul_c(q, L as i64)?;
        let side = |cx: &KernelCx<'_, 'ctx>, o: &Operand<'_, 'ctx>, z, m| -> CgResult<_> {
            let p = cx.gep(DType::I8, o.ptr, at)?;
            let v = cx.b.build_load(v8, p, "")?;
            if let Some(i) = inkwell::values::BasicValue::as_instruction_value(&v) {
                i.set_alignment(1)
                    .map_err(|e| crate::CodegenError::Llvm(e.to_string()))?;
            }
            let w = cx.b.build_int_cast_sign_flag(
                v.into_vector_value(),
                v32,
                o.dtype() != DType::U8,
                "",
            )?;
            let w = cx.b.build_int_sub(w, z, "")?;
            Ok(cx.b.build_int_mul(w, m, "")?)
        };
        let acc =
            cx.b.build_int_add(side(cx, a, cza, cma)?, side(cx, b, czb, cmb)?, "")?;
        let r =
            crate::mmm::qukernel::requantize(cx, acc, params, crate::mmm::qukernel::Requant::High)?;
        let st = cx.b.build_store(cx.gep(DType::I8, out.ptr, at)?, r)?;
        st.set_alignment(1)
            .map_err(|e| crate::CodegenError::Llvm(e.to_string()))?;
        Ok(())
    })
}

/// `v * k` in i32 (no instruction when `k == 1`).
fn scale_i32<'ctx>(cx: &KernelCx<'_, 'ctx>, v: IntValue<'ctx>, k: i32) -> CgResult<IntValue<'ctx>> {
    if k == 1 {
        Ok(v)
    } else {
        imul(cx, v, cx.i32(k))
    }
}
