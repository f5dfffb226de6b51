//! ONNX MatMulInteger: `Σ_k (a - a_zp)·(b - b_zp[n])` into i32, exactly,
//! with zero points that may be run-time values (`DynamicQuantizeLinear`
//! computes A's). Each output row is accumulated in place: zeroed, then for
//! each k `out[i, ·] += (a[i, k] - a_zp) · (b[k, ·] - b_zp[·])`, an inner
//! loop over B's row and the output row, both contiguous, which LLVM
//! vectorizes. (The i8 GEMM microkernels take compile-time zero points;
//! this kernel is the general, exact path.)

use super::expect_inputs;
use super::quant::{iadd, imul, isub, load_ext, need_int8};
use crate::cx::{CgResult, KernelCx, Operand};
use qcc_ir::{DType, Node};

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
