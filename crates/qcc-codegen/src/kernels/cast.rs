//! Cast between every pair of element types.
//!
//! float → int truncates toward zero and saturates (NaN → 0), like Rust's
//! `as` (ONNX leaves out-of-range values undefined); anything → bool is
//! `x != 0`; bool → anything is 0 or 1 (any non-zero byte counts as true);
//! int → int wraps (truncation) or extends by the source's signedness.

use super::expect_inputs;
use crate::cx::{CgResult, KernelCx, Operand};
use inkwell::types::BasicTypeEnum;
use inkwell::values::BasicValueEnum;
use inkwell::{FloatPredicate, IntPredicate};
use qcc_ir::{DType, Node};

fn is_signed(d: DType) -> bool {
    matches!(d, DType::I64 | DType::I32 | DType::I8)
}

/// Converts one element of `from` (its stored LLVM type) into `to`'s stored type.
pub fn convert<'ctx>(
    cx: &KernelCx<'_, 'ctx>,
    v: BasicValueEnum<'ctx>,
    from: DType,
    to: DType,
) -> CgResult<BasicValueEnum<'ctx>> {
    if from == to {
        return Ok(v);
    }
    let i8t = cx.i8_t();
    let to_ty: BasicTypeEnum = cx.elem_type(to);
    if from == DType::F32 {
        let x = v.into_float_value();
        if to == DType::Bool {
            let nz = cx.fcmp(FloatPredicate::UNE, x, cx.f32(0.0))?;
            return Ok(cx.b.build_int_z_extend(nz, i8t, "")?.into());
        }
        if to == DType::I64 {
            return Ok(cx.f32_to_i64_sat(x)?.into());
        }
        // Saturation as a clamp in f32 (NaN → 0) and a plain conversion of
        // an in-range value: the same numbers as `llvm.fptosi.sat`, but it
        // vectorizes on every target. i32's upper bound is no f32: clamp to
        // the largest f32 below 2^31, then give values from 2^31 on i32::MAX.
        let (lo, hi) = match to {
            DType::U8 => (0.0, 255.0),
            DType::I8 => (-128.0, 127.0),
            _ => (-2_147_483_648.0, 2_147_483_520.0),
        };
        let nan = cx.fcmp(FloatPredicate::UNO, x, x)?;
        let c = cx.fclamp(x, lo, hi)?;
        let c = cx.select_f(nan, cx.f32(0.0), c)?;
        let mut i = cx.b.build_float_to_signed_int(c, cx.i32_t(), "")?;
        if to == DType::I32 {
            let big = cx.fcmp(FloatPredicate::OGE, x, cx.f32(2_147_483_648.0))?;
            i =
                cx.b.build_select(big, cx.i32(i32::MAX), i, "")?
                    .into_int_value();
        }
        let t = to_ty.into_int_type();
        return Ok(cx.b.build_int_cast_sign_flag(i, t, true, "")?.into());
    }
    // Integer or bool source; normalize bool to 0/1 first.
    let mut x = v.into_int_value();
    if from == DType::Bool {
        let nz = cx.icmp(IntPredicate::NE, x, i8t.const_zero())?;
        x = cx.b.build_int_z_extend(nz, i8t, "")?;
    }
    let signed = is_signed(from);
    match to {
        DType::F32 if from == DType::I64 => Ok(cx.i64_to_f32(x, true)?.into()),
        DType::F32 => Ok(if signed {
            cx.b.build_signed_int_to_float(x, cx.f32_t(), "")?.into()
        } else {
            cx.b.build_unsigned_int_to_float(x, cx.f32_t(), "")?.into()
        }),
        DType::Bool => {
            let nz = cx.icmp(IntPredicate::NE, x, x.get_type().const_zero())?;
            Ok(cx.b.build_int_z_extend(nz, i8t, "")?.into())
        }
        _ => {
            let t = to_ty.into_int_type();
            Ok(cx.b.build_int_cast_sign_flag(x, t, signed, "")?.into())
        }
    }
}

pub fn emit<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    _node: &Node,
    ins: &[Operand<'_, 'ctx>],
    out: &Operand<'_, 'ctx>,
) -> CgResult<()> {
    expect_inputs(cx, ins, 1)?;
    let x = &ins[0];
    if x.numel() != out.numel() {
        return Err(cx.unsupported("input and output sizes differ"));
    }
    let (from, to) = (x.dtype(), out.dtype());
    if from == to
        || (from.size() == to.size()
            && matches!((from, to), (DType::I8, DType::U8) | (DType::U8, DType::I8)))
    {
        return cx.memcpy(
            out.ptr,
            out.align,
            x.ptr,
            x.align,
            out.ty.byte_size() as u64,
        );
    }
    cx.for_range(0, out.numel() as i64, |cx, i| {
        let v = cx.load(from, x.ptr, i)?;
        let r = convert(cx, v, from, to)?;
        cx.store(to, out.ptr, i, r)
    })
}
