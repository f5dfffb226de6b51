//! Softmax along one axis (opset ≥ 13): `exp(x - max) / Σ exp(x - max)`,
//! with the inline `exp` of `math.rs` (no libm).
//!
//! The tensor is viewed as `[outer, dim, inner]`. Along the last axis
//! (`inner == 1`) each row takes three passes: max, exp and sum (a
//! reassociable sum, so it vectorizes), divide. Otherwise the inner
//! positions are processed in chunks of up to `CHUNK` lanes, with the
//! running max and sum of each lane in a small stack array, so every inner
//! loop is contiguous.

use super::expect_inputs;
use super::reduce::{fadd_reassoc, fmax_nan};
use crate::cx::{CgResult, KernelCx, Operand};
use inkwell::values::IntValue;
use qcc_ir::{DType, Node, Op};

/// Inner positions handled together (the stack arrays hold 2 × CHUNK f32).
const CHUNK: usize = 256;

/// Emits the body of the node function for Softmax.
pub fn emit<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    node: &Node,
    ins: &[Operand<'_, 'ctx>],
    out: &Operand<'_, 'ctx>,
) -> CgResult<()> {
    let Op::Softmax { axis } = node.op else {
        return Err(cx.unsupported("not a softmax"));
    };
    expect_inputs(cx, ins, 1)?;
    let x = &ins[0];
    if x.dtype() != DType::F32 || out.dtype() != DType::F32 {
        return Err(cx.unsupported("only f32 operands are supported"));
    }
    if axis >= x.rank() || x.shape() != out.shape() {
        return Err(cx.unsupported(format!("axis {axis} does not fit {}", x.ty)));
    }
    let s = x.shape();
    let outer: usize = s[..axis].iter().product();
    let dim = s[axis] as i64;
    let inner: usize = s[axis + 1..].iter().product();
    if dim == 0 || outer == 0 || inner == 0 {
        return Ok(());
    }
    if inner == 1 {
        return rows(cx, x, out, outer as i64, dim);
    }
    let chunk = inner.min(CHUNK);
    let mx = cx.stack_array(DType::F32, chunk as u64)?;
    let sm = cx.stack_array(DType::F32, chunk as u64)?;
    let inner = inner as i64;
    let full = inner / chunk as i64 * chunk as i64;
    let tail = (inner - full) as usize;
    // One chunk of `len` lanes starting at inner position `c` of outer slice `o`.
    let body = |cx: &mut KernelCx<'_, 'ctx>, o: IntValue<'ctx>, c: IntValue<'ctx>, len: usize| {
        let len = len as i64;
        let base = cx.add(cx.mul_c(o, dim * inner)?, c)?;
        // at(j, t) = base + j*inner + t
        let at = |cx: &KernelCx<'_, 'ctx>, j: IntValue<'ctx>, t: IntValue<'ctx>| {
            cx.add(cx.add(base, cx.mul_c(j, inner)?)?, t)
        };
        cx.for_range(0, len, |cx, t| {
            cx.store_f32(mx, t, cx.f32(f32::NEG_INFINITY))
        })?;
        cx.for_range(0, dim, |cx, j| {
            cx.for_range(0, len, |cx, t| {
                let v = cx.load_f32(x.ptr, at(cx, j, t)?)?;
                let m = fmax_nan(cx, cx.load_f32(mx, t)?, v)?;
                cx.store_f32(mx, t, m)
            })
        })?;
        cx.for_range(0, len, |cx, t| cx.store_f32(sm, t, cx.f32(0.0)))?;
        cx.for_range(0, dim, |cx, j| {
            cx.for_range(0, len, |cx, t| {
                let i = at(cx, j, t)?;
                let v = cx.load_f32(x.ptr, i)?;
                let e = cx.exp(cx.fsub(v, cx.load_f32(mx, t)?)?)?;
                cx.store_f32(out.ptr, i, e)?;
                cx.store_f32(sm, t, cx.fadd(cx.load_f32(sm, t)?, e)?)
            })
        })?;
        cx.for_range(0, dim, |cx, j| {
            cx.for_range(0, len, |cx, t| {
                let i = at(cx, j, t)?;
                let v = cx.fdiv(cx.load_f32(out.ptr, i)?, cx.load_f32(sm, t)?)?;
                cx.store_f32(out.ptr, i, v)
            })
        })
    };
    cx.for_range(0, outer as i64, |cx, o| {
        cx.for_range_step(0, full, chunk as i64, |cx, c| body(cx, o, c, chunk))?;
        if tail > 0 {
            body(cx, o, cx.i64(full), tail)?;
        }
        Ok(())
    })
}

/// Softmax of `outer` contiguous rows of `dim` elements.
fn rows<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    x: &Operand<'_, 'ctx>,
    out: &Operand<'_, 'ctx>,
    outer: i64,
    dim: i64,
) -> CgResult<()> {
    let mx = cx.stack_array(DType::F32, 1)?;
    let sm = cx.stack_array(DType::F32, 1)?;
    let zero = cx.i64(0);
    cx.for_range(0, outer, |cx, o| {
        let base = cx.mul_c(o, dim)?;
        cx.store_f32(mx, zero, cx.f32(f32::NEG_INFINITY))?;
        cx.for_range(0, dim, |cx, j| {
            let v = cx.load_f32(x.ptr, cx.add(base, j)?)?;
            cx.store_f32(mx, zero, fmax_nan(cx, cx.load_f32(mx, zero)?, v)?)
        })?;
        let m = cx.load_f32(mx, zero)?;
        cx.store_f32(sm, zero, cx.f32(0.0))?;
        cx.for_range(0, dim, |cx, j| {
            let i = cx.add(base, j)?;
            let e = cx.exp(cx.fsub(cx.load_f32(x.ptr, i)?, m)?)?;
            cx.store_f32(out.ptr, i, e)?;
            cx.store_f32(sm, zero, fadd_reassoc(cx, cx.load_f32(sm, zero)?, e)?)
        })?;
        let total = cx.load_f32(sm, zero)?;
        cx.for_range(0, dim, |cx, j| {
            let i = cx.add(base, j)?;
            cx.store_f32(out.ptr, i, cx.fdiv(cx.load_f32(out.ptr, i)?, total)?)
        })
    })
}
