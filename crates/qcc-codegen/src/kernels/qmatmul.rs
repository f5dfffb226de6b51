//! ONNX MatMulInteger: `Σ_k (a - a_zp)·(b - b_zp[n])` into i32, exactly,
//! with zero points that may be run-time values (`DynamicQuantizeLinear`
//! computes A's). Each output row is accumulated in place: zeroed, then for
//! each k `out[i, ·] += (a[i, k] - a_zp) · (b[k, ·] - b_zp[·])`, an inner
//! loop over B's row and the output row, both contiguous, which LLVM
//! vectorizes. (The i8 GEMM microkernels take compile-time zero points;
//! this kernel is the general, exact path.) QMatMul (two run-time i8
//! operands, attention's products) uses the same loops on a stack row and
//! requantizes it.

use super::conv::for_bounds;
use super::expect_inputs;
use super::quant::{chunk_width, for_chunks, iadd, imul, isub, load_ext, need_int8, Chan, EpiEmit};
use crate::cx::{CgResult, KernelCx, Operand};
use qcc_ir::{DType, Node, Op};

pub fn emit_matmul_integer<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    _node: &Node,
    ins: &[Operand<'_, 'ctx>],
    out: &Operand<'_, 'ctx>,
) -> CgResult<()> {
    expect_inputs(cx, ins, 4)?;
    let (a, b, az, bz) = (&ins[0], &ins[1], &ins[2], &ins[3]);
    need_int8(cx, a, "A")?;
    need_int8(cx, b, "B")?;
    if out.dtype() != DType::I32 || az.dtype() != a.dtype() || bz.dtype() != b.dtype() {
        return Err(cx.unsupported(format!(
            "A {}, B {}, zero points {} and {}, output {}: the zero points must have their operand's type and the output must be i32",
            a.ty, b.ty, az.ty, bz.ty, out.ty
        )));
    }
    let r = out.rank();
    let (m, n) = (out.shape()[r - 2], out.shape()[r - 1]);
    let k = a.shape()[a.rank() - 1];
    let batches: usize = out.shape()[..r - 2].iter().product();
    let b_batched = b.rank() > 2;
    let za = load_ext(cx, az.dtype(), az.ptr, cx.i64(0))?;
    let zb_one = bz.numel() == 1;
    let zb0 = load_ext(cx, bz.dtype(), bz.ptr, cx.i64(0))?;
    let (mk, mn, kn) = ((m * k) as i64, (m * n) as i64, (k * n) as i64);
    cx.for_nest(&[batches, m], |cx, iv| {
        let (t, i) = (iv[0], iv[1]);
        let orow = cx.dot(&[t, i], &[mn, n as i64], 0)?;
        let arow = cx.dot(&[t, i], &[mk, k as i64], 0)?;
        let bbase = cx.dot(&[t], &[if b_batched { kn } else { 0 }], 0)?;
        cx.for_range(0, n as i64, |cx, j| {
            let o = cx.add(orow, j)?;
            cx.store(DType::I32, out.ptr, o, cx.i32(0).into())
        })?;
        cx.for_range(0, k as i64, |cx, kk| {
            let av = load_ext(cx, a.dtype(), a.ptr, cx.add(arow, kk)?)?;
            let av = isub(cx, av, za)?;
            let brow = cx.add(bbase, cx.mul_c(kk, n as i64)?)?;
            cx.for_range(0, n as i64, |cx, j| {
                let bv = load_ext(cx, b.dtype(), b.ptr, cx.add(brow, j)?)?;
                let zb = if zb_one {
                    zb0
                } else {
                    load_ext(cx, bz.dtype(), bz.ptr, j)?
                };
                let p = imul(cx, av, isub(cx, bv, zb)?)?;
                let o = cx.add(orow, j)?;
                let acc = cx.load(DType::I32, out.ptr, o)?.into_int_value();
                cx.store(DType::I32, out.ptr, o, iadd(cx, acc, p)?.into())
            })
        })
    })
}

/// QMatMul: the same exact sums of two run-time i8 operands with
/// compile-time zero points, accumulated per output row in an i32 stack row
/// (chunks of at most `CHUNK` columns), then requantized by the epilogue
/// into `to`.
pub fn emit_qmatmul<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    node: &Node,
    ins: &[Operand<'_, 'ctx>],
    out: &Operand<'_, 'ctx>,
) -> CgResult<()> {
    let Op::QMatMul {
        a_zero_point,
        b_zero_point,
        epi,
        to,
    } = &node.op
    else {
        return Err(cx.unsupported("not a qmatmul"));
    };
    expect_inputs(cx, ins, 2)?;
    let (a, b) = (&ins[0], &ins[1]);
    if a.dtype() != DType::I8 || b.dtype() != DType::I8 || out.dtype() != *to {
        return Err(cx.unsupported(format!(
            "A {}, B {} and output {}: want i8, i8 and {to}",
            a.ty, b.ty, out.ty
        )));
    }
    let e = EpiEmit::new(cx, epi, *to, 1)?;
    let p = e.params(cx, Chan::Static(0))?;
    let r = out.rank();
    let (m, n) = (out.shape()[r - 2], out.shape()[r - 1]);
    let k = a.shape()[a.rank() - 1];
    let batches: usize = out.shape()[..r - 2].iter().product();
    let b_batched = b.rank() > 2;
    let (mk, mn, kn) = ((m * k) as i64, (m * n) as i64, (k * n) as i64);
    let (za, zb) = (cx.i32(*a_zero_point), cx.i32(*b_zero_point));
    if (1..=MAX_UNROLLED_K).contains(&k) && n >= 8 && n.is_multiple_of(8) {
        return qmatmul_blocks(
            cx,
            (a, b, out),
            (batches, m, k, n),
            (*a_zero_point, *b_zero_point),
            epi,
        );
    }
    let acc = cx.stack_array(DType::I32, chunk_width(n as i64) as u64)?;
    cx.for_nest(&[batches, m], |cx, iv| {
        let (t, i) = (iv[0], iv[1]);
        let orow = cx.dot(&[t, i], &[mn, n as i64], 0)?;
        let arow = cx.dot(&[t, i], &[mk, k as i64], 0)?;
        let bbase = cx.dot(&[t], &[if b_batched { kn } else { 0 }], 0)?;
        for_chunks(cx, n as i64, |cx, ch| {
            let c0 = ch.start(cx);
            for_bounds(cx, ch.range(), |cx, j| {
                cx.store(DType::I32, acc, cx.sub(j, c0)?, cx.i32(0).into())
            })?;
            cx.for_range(0, k as i64, |cx, kk| {
                let av = load_ext(cx, DType::I8, a.ptr, cx.add(arow, kk)?)?;
                let av = isub(cx, av, za)?;
                let brow = cx.add(bbase, cx.mul_c(kk, n as i64)?)?;
                for_bounds(cx, ch.range(), |cx, j| {
                    let bv = load_ext(cx, DType::I8, b.ptr, cx.add(brow, j)?)?;
                    let s = cx.sub(j, c0)?;
                    let old = cx.load(DType::I32, acc, s)?.into_int_value();
                    let v = iadd(cx, old, imul(cx, av, isub(cx, bv, zb)?)?)?;
                    cx.store(DType::I32, acc, s, v.into())
                })
            })?;
            for_bounds(cx, ch.range(), |cx, j| {
                let s = cx.load(DType::I32, acc, cx.sub(j, c0)?)?.into_int_value();
                let q = e.apply(cx, s, &p)?;
                cx.store(*to, out.ptr, cx.add(orow, j)?, q.into())
            })
        })
    })
}

/// The largest K whose QMatMul sums are unrolled in registers.
const MAX_UNROLLED_K: usize = 64;

/// QMatMul with K ≤ [`MAX_UNROLLED_K`] and N a multiple of 8 (attention's
/// products): per output row and block of 8 columns, the K products are
/// summed in one `<8 x i32>` register (unrolled: `splat(a - za) · (b - zb)`
/// over 8 bytes of B's row), then requantized by the microkernels'
/// vector epilogue and stored as 8 bytes.
fn qmatmul_blocks<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    (a, b, out): (&Operand<'_, 'ctx>, &Operand<'_, 'ctx>, &Operand<'_, 'ctx>),
    (batches, m, k, n): (usize, usize, usize, usize),
    (za, zb): (i32, i32),
    epi: &qcc_ir::Epilogue,
) -> CgResult<()> {
    use crate::mmm::qukernel::{requant_mode, requantize, splat_params};
    const L: u32 = 8;
    let params = splat_params(cx, epi, L)?;
    let mode = requant_mode(&cx.target, &epi.rescale);
    let (v8, v32) = (cx.i8_t().vec_type(L), cx.i32_t().vec_type(L));
    let vzb = cx.splat(cx.i32(zb).into(), L)?;
    let b_batched = b.rank() > 2;
    let (mk, mn, kn) = ((m * k) as i64, (m * n) as i64, (k * n) as i64);
    cx.for_nest(&[batches, m, n / 8], |cx, iv| {
        let (t, i, jb) = (iv[0], iv[1], iv[2]);
        let arow = cx.dot(&[t, i], &[mk, k as i64], 0)?;
        let col = cx.mul_c(jb, L as i64)?;
        let bcol = cx.add(cx.dot(&[t], &[if b_batched { kn } else { 0 }], 0)?, col)?;
        let mut acc = v32.const_zero();
        for kk in 0..k as i64 {
            let av = load_ext(cx, DType::I8, a.ptr, cx.add_c(arow, kk)?)?;
            let av = cx.splat(isub(cx, av, cx.i32(za))?.into(), L)?;
            let p = cx.gep(DType::I8, b.ptr, cx.add_c(bcol, kk * n as i64)?)?;
            let bv = cx.b.build_load(v8, p, "")?;
            if let Some(ins) = inkwell::values::BasicValue::as_instruction_value(&bv) {
                ins.set_alignment(1)
                    .map_err(|e| crate::CodegenError::Llvm(e.to_string()))?;
            }
            let bv = cx.b.build_int_s_extend(bv.into_vector_value(), v32, "")?;
            let bv = cx.b.build_int_sub(bv, vzb, "")?;
            acc =
                cx.b.build_int_add(acc, cx.b.build_int_mul(av, bv, "")?, "")?;
        }
        let y = requantize(cx, acc, params, mode)?;
        let o = cx.add(cx.dot(&[t, i], &[mn, n as i64], 0)?, col)?;
        let st = cx.b.build_store(cx.gep(DType::I8, out.ptr, o)?, y)?;
        st.set_alignment(1)
            .map_err(|e| crate::CodegenError::Llvm(e.to_string()))?;
        Ok(())
    })
}
