//! Binary layers: `SignMatMul`, `Sign(u) · w` with w ∈ {-1, +1}, counted
//! with popcount.
//!
//! The weights are stored as bits, one 64-bit word per 64 rows of K and
//! output column (`wb[n][K/64]`, bit set for +1): 32× smaller than f32. Per
//! row of u the kernel builds two masks, `pos` (u > 0) and `neg` (u < 0);
//! zeros are in neither. With `P = |pos|`, `Q = |neg|` and `wp` the +1 bits
//! of a column,
//!
//! ```text
//! Σ_k sign(u_k)·w_k = (|pos ∧ wp| - |pos ∧ ¬wp|) - (|neg ∧ wp| - |neg ∧ ¬wp|)
//!                   = 2·|pos ∧ wp| - P - 2·|neg ∧ wp| + Q
//! ```
//!
//! (the XNOR-popcount identity of BNNs, extended to the zeros ONNX's Sign
//! gives). Bits past K are 0 in both masks. `llvm.ctpop` lowers to each
//! target's population count (`popcnt`, NEON `cnt`, a bit-trick sequence on
//! Cortex-M). A row holding NaN gives NaN, like the float product. The
//! bipolar form (QONNX) puts u ≥ 0 in `pos` and everything else (NaN too)
//! in `neg`.

use super::expect_inputs;
use crate::cx::{CgResult, KernelCx, Operand};
use inkwell::{FloatPredicate, IntPredicate};
use qcc_ir::{DType, Node, Op};

pub fn emit<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    node: &Node,
    ins: &[Operand<'_, 'ctx>],
    out: &Operand<'_, 'ctx>,
) -> CgResult<()> {
    expect_inputs(cx, ins, 2)?;
    let Op::SignMatMul { bipolar } = node.op else {
        return Err(cx.unsupported("not a sign_matmul"));
    };
    // Bipolar: u ≥ 0 counts +1, anything else (NaN too) -1.
    let (ppos, pneg) = if bipolar {
        (FloatPredicate::OGE, FloatPredicate::ULT)
    } else {
        (FloatPredicate::OGT, FloatPredicate::OLT)
    };
    let (u, w) = (&ins[0], &ins[1]);
    let (k, n) = match (u.shape().last(), w.shape()) {
        (Some(&k), &[kw, n]) if k == kw => (k, n),
        _ => return Err(cx.unsupported("operands must be [..., K] and [K, N]")),
    };
    if u.dtype() != DType::F32 || out.dtype() != DType::F32 {
        return Err(cx.unsupported("binary layer on non-f32 values"));
    }
    if k == 0 || k > qcc_ir::SIGN_MATMUL_MAX_K {
        return Err(cx.unsupported(format!("K = {k} past the verifier's bound")));
    }
    let wv = w
        .konst
        .and_then(|t| t.as_f32())
        .ok_or_else(|| cx.unsupported("weights computed at run time"))?;
    if wv.iter().any(|&v| v != 1.0 && v != -1.0) {
        return Err(cx.unsupported("weights other than -1 and +1"));
    }
    let words = k.div_ceil(64);
    let mut bits = vec![0u64; n * words];
    for kk in 0..k {
        for j in 0..n {
            if wv[kk * n + j] > 0.0 {
                bits[j * words + kk / 64] |= 1 << (kk % 64);
            }
        }
    }
    let bytes: Vec<u8> = bits.iter().flat_map(|v| v.to_le_bytes()).collect();
    let wb = super::conv::const_data(cx, "binary.w", &bytes);
    let rows = u.ty.numel() / k;
    let pos = cx.stack_array(DType::I64, words as u64)?;
    let neg = cx.stack_array(DType::I64, words as u64)?;
    // [P, Q, any NaN, |pos ∧ wp|, |neg ∧ wp|], i32: every count is at most
    // K, so the sum converts to f32 inline everywhere (an i64 conversion is
    // a libcall on 32-bit ARM).
    let acc = cx.stack_array(DType::I32, 5)?;
    let i32t = cx.i32_t();
    let zero32 = i32t.const_zero();
    let i64t = cx.i64_t();
    let zero = cx.i64(0);
    let popcount = |cx: &KernelCx<'_, 'ctx>, v: inkwell::values::IntValue<'ctx>| {
        let c = cx
            .call_intrinsic("llvm.ctpop", &[i64t.into()], &[v.into()])?
            .into_int_value();
        Ok::<_, crate::CodegenError>(cx.b.build_int_truncate(c, i32t, "")?)
    };
    cx.for_range(0, rows as i64, |cx, r| {
        cx.for_range(0, words as i64, |cx, wd| {
            cx.store(DType::I64, pos, wd, zero.into())?;
            cx.store(DType::I64, neg, wd, zero.into())
        })?;
        cx.store(DType::I32, acc, cx.i64(2), zero32.into())?;
        let base = cx.mul_c(r, k as i64)?;
        cx.for_range(0, k as i64, |cx, kk| {
            let x = cx.load_f32(u.ptr, cx.add(base, kk)?)?;
            let zf = cx.f32(0.0);
            let wd = cx.b.build_right_shift(kk, cx.i64(6), false, "")?;
            let bit =
                cx.b.build_left_shift(cx.i64(1), cx.b.build_and(kk, cx.i64(63), "")?, "")?;
            for (mask, pred) in [(pos, ppos), (neg, pneg)] {
                let on = cx.fcmp(pred, x, zf)?;
                let b = cx.b.build_select(on, bit, zero, "")?.into_int_value();
                let m = cx.load(DType::I64, mask, wd)?.into_int_value();
                cx.store(DType::I64, mask, wd, cx.b.build_or(m, b, "")?.into())?;
            }
            let nan = cx.fcmp(FloatPredicate::UNO, x, x)?;
            let nan = cx.b.build_int_z_extend(nan, i32t, "")?;
            let f = cx.load(DType::I32, acc, cx.i64(2))?.into_int_value();
            let f = cx.b.build_or(f, nan, "")?;
            cx.store(DType::I32, acc, cx.i64(2), f.into())
        })?;
        cx.store(DType::I32, acc, cx.i64(0), zero32.into())?;
        cx.store(DType::I32, acc, cx.i64(1), zero32.into())?;
        cx.for_range(0, words as i64, |cx, wd| {
            for (slot, mask) in [(0, pos), (1, neg)] {
                let m = cx.load(DType::I64, mask, wd)?.into_int_value();
                let c = cx.load(DType::I32, acc, cx.i64(slot))?.into_int_value();
                let c = cx.add(c, popcount(cx, m)?)?;
                cx.store(DType::I32, acc, cx.i64(slot), c.into())?;
            }
            Ok(())
        })?;
        let orow = cx.mul_c(r, n as i64)?;
        cx.for_range(0, n as i64, |cx, j| {
            cx.store(DType::I32, acc, cx.i64(3), zero32.into())?;
            cx.store(DType::I32, acc, cx.i64(4), zero32.into())?;
            let col = cx.mul_c(j, words as i64)?;
            cx.for_range(0, words as i64, |cx, wd| {
                let wp = cx.load(DType::I64, wb, cx.add(col, wd)?)?.into_int_value();
                for (slot, mask) in [(3, pos), (4, neg)] {
                    let m = cx.load(DType::I64, mask, wd)?.into_int_value();
                    let hit = popcount(cx, cx.b.build_and(m, wp, "")?)?;
                    let c = cx.load(DType::I32, acc, cx.i64(slot))?.into_int_value();
                    cx.store(DType::I32, acc, cx.i64(slot), cx.add(c, hit)?.into())?;
                }
                Ok(())
            })?;
            let get = |cx: &KernelCx<'_, 'ctx>, s: i64| {
                Ok::<_, crate::CodegenError>(cx.load(DType::I32, acc, cx.i64(s))?.into_int_value())
            };
            let (p, q, a, b) = (get(cx, 0)?, get(cx, 1)?, get(cx, 3)?, get(cx, 4)?);
            let sum = cx.sub(cx.add(cx.sub(cx.mul_c(a, 2)?, p)?, q)?, cx.mul_c(b, 2)?)?;
            let y = cx.b.build_signed_int_to_float(sum, cx.f32_t(), "")?;
            let y = if bipolar {
                y
            } else {
                let nan = cx.icmp(IntPredicate::NE, get(cx, 2)?, zero32)?;
                cx.select_f(nan, cx.f32(f32::NAN), y)?
            };
            cx.store_f32(out.ptr, cx.add(orow, j)?, y)
        })
    })
}
