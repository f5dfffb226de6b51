//! Elementwise kernels: `Op::Unary` (f32) and `Op::Binary` (numpy
//! broadcasting; f32 for every op, integers for Add/Sub/Mul/Div/Max/Min).
//!
//! Operand strides come from `broadcast_strides` and are coalesced, so the
//! innermost loop is as long and as contiguous as the shapes allow.

use super::expect_inputs;
use crate::cx::{CgResult, KernelCx, Operand};
use inkwell::values::{BasicValueEnum, FloatValue, IntValue};
use inkwell::{FloatPredicate, IntPredicate};
use qcc_ir::{BinaryOp, DType, Node, Op, UnaryOp};

/// Emits `out[i] = f(in[i])`.
pub fn emit_unary<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    node: &Node,
    ins: &[Operand<'_, 'ctx>],
    out: &Operand<'_, 'ctx>,
) -> CgResult<()> {
    expect_inputs(cx, ins, 1)?;
    let Op::Unary(op) = node.op else {
        return Err(cx.unsupported("not a unary op"));
    };
    let x = &ins[0];
    if x.numel() != out.numel() {
        return Err(cx.unsupported("input and output sizes differ"));
    }
    let dt = x.dtype();
    let int = matches!(dt, DType::I64 | DType::I32 | DType::I8);
    if int && matches!(op, UnaryOp::Neg | UnaryOp::Abs | UnaryOp::Sign) && out.dtype() == dt {
        // Wrapping, like the interpreter: -MIN = MIN, |MIN| = MIN.
        return cx.for_range(0, out.numel() as i64, |cx, i| {
            let v = cx.load(dt, x.ptr, i)?.into_int_value();
            let n = cx.b.build_int_neg(v, "")?;
            let y = if op == UnaryOp::Neg {
                n
            } else if op == UnaryOp::Sign {
                // clamp(x, -1, 1)
                let t = v.get_type();
                let (one, m1) = (t.const_int(1, false), t.const_int(u64::MAX, true));
                let hi = cx.icmp(IntPredicate::SGT, v, one)?;
                let v = cx.b.build_select(hi, one, v, "")?.into_int_value();
                let lo = cx.icmp(IntPredicate::SLT, v, m1)?;
                cx.b.build_select(lo, m1, v, "")?.into_int_value()
            } else {
                let neg = cx.icmp(IntPredicate::SLT, v, v.get_type().const_zero())?;
                cx.b.build_select(neg, n, v, "")?.into_int_value()
            };
            cx.store(dt, out.ptr, i, y.into())
        });
    }
    if dt != DType::F32 || out.dtype() != DType::F32 {
        return Err(cx.unsupported(format!(
            "{dt} input (only f32, and signed integers for Neg, Abs and Sign)"
        )));
    }
    cx.for_range(0, out.numel() as i64, |cx, i| {
        let v = cx.load_f32(x.ptr, i)?;
        let y = unary(cx, op, v)?;
        cx.store_f32(out.ptr, i, y)
    })
}

/// The scalar function of a unary op.
pub fn unary<'ctx>(
    cx: &KernelCx<'_, 'ctx>,
    op: UnaryOp,
    x: FloatValue<'ctx>,
) -> CgResult<FloatValue<'ctx>> {
    let zero = cx.f32(0.0);
    match op {
        UnaryOp::Relu => {
            let neg = cx.fcmp(FloatPredicate::OLT, x, zero)?;
            cx.select_f(neg, zero, x)
        }
        UnaryOp::Sigmoid => cx.sigmoid(x),
        UnaryOp::Tanh => cx.tanh(x),
        UnaryOp::Exp => cx.exp(x),
        UnaryOp::Log => cx.log(x),
        UnaryOp::Sqrt => cx.sqrt(x),
        UnaryOp::Neg => cx.fneg(x),
        UnaryOp::Abs => cx.fabs(x),
        UnaryOp::Sign => {
            // +1 above zero, -1 below, else x itself (±0, NaN).
            let pos = cx.fcmp(FloatPredicate::OGT, x, zero)?;
            let neg = cx.fcmp(FloatPredicate::OLT, x, zero)?;
            let y = cx.select_f(neg, cx.f32(-1.0), x)?;
            cx.select_f(pos, cx.f32(1.0), y)
        }
        UnaryOp::Reciprocal => cx.fdiv(cx.f32(1.0), x),
        UnaryOp::Erf => cx.erf(x),
        UnaryOp::Round => {
            // Adding and subtracting 1.5·2^23 rounds half to even below 2^22
            // in magnitude; larger floats are integers already (NaN passes).
            let magic = cx.f32(crate::math::ROUND_MAGIC);
            let r = cx.fsub(cx.fadd(x, magic)?, magic)?;
            let small = cx.fcmp(FloatPredicate::OLT, cx.fabs(x)?, cx.f32(4_194_304.0))?;
            cx.select_f(small, r, x)
        }
        UnaryOp::HardSwish => {
            let h = cx.fmuladd(x, cx.f32(1.0 / 6.0), cx.f32(0.5))?;
            let h = cx.fclamp(h, 0.0, 1.0)?;
            cx.fmul(x, h)
        }
        UnaryOp::Silu => cx.fmul(x, cx.sigmoid(x)?),
        UnaryOp::Gelu => {
            // x · (1/2 + erf(x/√2)/2)
            let e = cx.erf(cx.fmul(x, cx.f32(std::f32::consts::FRAC_1_SQRT_2))?)?;
            let h = cx.fmuladd(e, cx.f32(0.5), cx.f32(0.5))?;
            cx.fmul(x, h)
        }
        UnaryOp::GeluTanh => {
            // x · (1/2 + tanh(√(2/π)·(x + 0.044715·x³))/2)
            let k = (2.0 / std::f64::consts::PI).sqrt() as f32;
            let x2 = cx.fmul(x, x)?;
            let u = cx.fmul(x, cx.fmuladd(x2, cx.f32(0.044715 * k), cx.f32(k))?)?;
            let h = cx.fmuladd(cx.tanh(u)?, cx.f32(0.5), cx.f32(0.5))?;
            cx.fmul(x, h)
        }
        UnaryOp::LeakyRelu { alpha } => {
            let neg = cx.fcmp(FloatPredicate::OLT, x, zero)?;
            let scaled = cx.fmul(x, cx.f32(alpha))?;
            cx.select_f(neg, scaled, x)
        }
        UnaryOp::HardSigmoid { alpha, beta } => {
            let h = cx.fmuladd(x, cx.f32(alpha), cx.f32(beta))?;
            cx.fclamp(h, 0.0, 1.0)
        }
        UnaryOp::Clip { min, max } => cx.fclamp(x, min, max),
    }
}

/// How to compute a float Pow when the exponent is one known constant.
#[derive(Clone, Copy, Debug, PartialEq)]
enum PowPlan {
    One,
    Identity,
    Sqrt,
    Int(i32),
    General,
}

fn pow_plan(e: f32) -> PowPlan {
    if e == 0.0 {
        PowPlan::One
    } else if e == 1.0 {
        PowPlan::Identity
    } else if e == 0.5 {
        PowPlan::Sqrt
    } else if e.fract() == 0.0 && e.abs() <= 64.0 {
        PowPlan::Int(e as i32)
    } else {
        PowPlan::General
    }
}

/// The single value of a constant operand whose elements are all equal.
fn splat_f32(o: &Operand) -> Option<f32> {
    let v = o.konst?.as_f32()?;
    let first = *v.first()?;
    v.iter()
        .all(|x| x.to_bits() == first.to_bits())
        .then_some(first)
}

/// Emits `out = a op b` with numpy broadcasting.
pub fn emit_binary<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    node: &Node,
    ins: &[Operand<'_, 'ctx>],
    out: &Operand<'_, 'ctx>,
) -> CgResult<()> {
    expect_inputs(cx, ins, 2)?;
    let Op::Binary(op) = node.op else {
        return Err(cx.unsupported("not a binary op"));
    };
    let (a, b) = (&ins[0], &ins[1]);
    let dt = out.dtype();
    if a.dtype() != dt || b.dtype() != dt {
        return Err(cx.unsupported(format!(
            "operand types {} and {} differ from the output {}",
            a.dtype(),
            b.dtype(),
            dt
        )));
    }
    match (dt, op) {
        (DType::F32, _) => {}
        (DType::I64 | DType::I32 | DType::I8 | DType::U8, BinaryOp::Add)
        | (DType::I64 | DType::I32 | DType::I8 | DType::U8, BinaryOp::Sub)
        | (DType::I64 | DType::I32 | DType::I8 | DType::U8, BinaryOp::Mul)
        | (DType::I64 | DType::I32 | DType::I8 | DType::U8, BinaryOp::Div)
        | (DType::I64 | DType::I32 | DType::I8 | DType::U8, BinaryOp::Max)
        | (DType::I64 | DType::I32 | DType::I8 | DType::U8, BinaryOp::Min) => {}
        _ => return Err(cx.unsupported(format!("{dt} operands"))),
    }
    let (cshape, st) = super::logic::broadcast(cx, &[a, b], out)?;
    let pow = match op {
        BinaryOp::Pow => splat_f32(b).map(pow_plan).unwrap_or(PowPlan::General),
        _ => PowPlan::General,
    };
    cx.for_nest(&cshape, |cx, ivs| {
        let io = cx.dot(ivs, &st[0], 0)?;
        let ib = cx.dot(ivs, &st[2], 0)?;
        let ia = cx.dot(ivs, &st[1], 0)?;
        let x = cx.load(dt, a.ptr, ia)?;
        let y = cx.load(dt, b.ptr, ib)?;
        let r: BasicValueEnum = if dt == DType::F32 {
            let (x, y) = (x.into_float_value(), y.into_float_value());
            float_binary(cx, op, pow, x, y)?.into()
        } else {
            let unsigned = dt == DType::U8;
            int_binary(cx, op, unsigned, x.into_int_value(), y.into_int_value())?.into()
        };
        cx.store(dt, out.ptr, io, r)
    })
}

fn float_binary<'ctx>(
    cx: &KernelCx<'_, 'ctx>,
    op: BinaryOp,
    pow: PowPlan,
    x: FloatValue<'ctx>,
    y: FloatValue<'ctx>,
) -> CgResult<FloatValue<'ctx>> {
    match op {
        BinaryOp::Add => cx.fadd(x, y),
        BinaryOp::Sub => cx.fsub(x, y),
        BinaryOp::Mul => cx.fmul(x, y),
        BinaryOp::Div => cx.fdiv(x, y),
        BinaryOp::Max => cx.fmax(x, y),
        BinaryOp::Min => cx.fmin(x, y),
        BinaryOp::PRelu => {
            let neg = cx.fcmp(FloatPredicate::OLT, x, cx.f32(0.0))?;
            cx.select_f(neg, cx.fmul(x, y)?, x)
        }
        BinaryOp::Pow => match pow {
            PowPlan::One => Ok(cx.f32(1.0)),
            PowPlan::Identity => Ok(x),
            PowPlan::Sqrt => cx.sqrt(x),
            PowPlan::Int(n) => cx.powi(x, n),
            PowPlan::General => cx.powf(x, y),
        },
    }
}

/// Integer arithmetic with wrapping Add/Sub/Mul and a Div that never traps:
/// division by zero gives 0 and `MIN / -1` wraps (ONNX leaves both undefined).
fn int_binary<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    op: BinaryOp,
    unsigned: bool,
    x: IntValue<'ctx>,
    y: IntValue<'ctx>,
) -> CgResult<IntValue<'ctx>> {
    Ok(match op {
        BinaryOp::Add => cx.b.build_int_add(x, y, "")?,
        BinaryOp::Sub => cx.b.build_int_sub(x, y, "")?,
        BinaryOp::Mul => cx.b.build_int_mul(x, y, "")?,
        BinaryOp::Max | BinaryOp::Min => {
            let p = match (op == BinaryOp::Max, unsigned) {
                (true, false) => IntPredicate::SGT,
                (true, true) => IntPredicate::UGT,
                (false, false) => IntPredicate::SLT,
                (false, true) => IntPredicate::ULT,
            };
            let c = cx.icmp(p, x, y)?;
            cx.select_i(c, x, y)?
        }
        BinaryOp::Div => cx.int_div(x, y, !unsigned)?,
        BinaryOp::Pow | BinaryOp::PRelu => {
            return Err(cx.unsupported("integer operands (only f32)"));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pow_plans() {
        assert_eq!(pow_plan(2.0), PowPlan::Int(2));
        assert_eq!(pow_plan(-3.0), PowPlan::Int(-3));
        assert_eq!(pow_plan(0.5), PowPlan::Sqrt);
        assert_eq!(pow_plan(1.0), PowPlan::Identity);
        assert_eq!(pow_plan(0.0), PowPlan::One);
        assert_eq!(pow_plan(2.5), PowPlan::General);
        assert_eq!(pow_plan(1000.0), PowPlan::General);
    }
}
