//! Comparisons (`Op::Compare`, any one element type → bool), logic
//! (`Op::Logic`, `Op::Not`) and selection (`Op::Where`), with numpy
//! broadcasting. Bools are bytes holding 0 or 1. Float comparisons use
//! ordered predicates: anything compared with NaN is false, like the
//! interpreter.

use super::expect_inputs;
use crate::cx::{CgResult, KernelCx, Operand};
use crate::loops::coalesce;
use inkwell::values::{BasicValueEnum, IntValue};
use inkwell::{FloatPredicate, IntPredicate};
use qcc_ir::{broadcast_strides, strides_of, CompareOp, DType, LogicOp, Node, Op};

/// The output shape and the strides of the output, then of each operand
/// broadcast to it (numpy rules; coalesced), or an error when an operand
/// has a higher rank. Shared by every broadcasting elementwise kernel.
pub(crate) fn broadcast(
    cx: &KernelCx<'_, '_>,
    ins: &[&Operand<'_, '_>],
    out: &Operand<'_, '_>,
) -> CgResult<(Vec<usize>, Vec<Vec<i64>>)> {
    let shape = out.shape().to_vec();
    if ins.iter().any(|o| o.rank() > shape.len()) {
        return Err(cx.unsupported("operand rank exceeds the output rank"));
    }
    let i64s = |v: Vec<usize>| v.into_iter().map(|s| s as i64).collect::<Vec<i64>>();
    let mut st = vec![i64s(strides_of(&shape))];
    st.extend(
        ins.iter()
            .map(|o| i64s(broadcast_strides(o.shape(), &shape))),
    );
    Ok(coalesce(&shape, &st))
}

fn as_byte<'ctx>(cx: &KernelCx<'_, 'ctx>, b: IntValue<'ctx>) -> CgResult<BasicValueEnum<'ctx>> {
    Ok(cx.b.build_int_z_extend(b, cx.i8_t(), "")?.into())
}

/// `out = a op b` (bool).
pub fn emit_compare<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    node: &Node,
    ins: &[Operand<'_, 'ctx>],
    out: &Operand<'_, 'ctx>,
) -> CgResult<()> {
    expect_inputs(cx, ins, 2)?;
    let Op::Compare(op) = node.op else {
        return Err(cx.unsupported("not a comparison"));
    };
    let (a, b) = (&ins[0], &ins[1]);
    let dt = a.dtype();
    if b.dtype() != dt || out.dtype() != DType::Bool {
        return Err(cx.unsupported(format!(
            "operands {} and {} must match and the output be bool",
            a.ty, b.ty
        )));
    }
    let (shape, st) = broadcast(cx, &[a, b], out)?;
    let unsigned = matches!(dt, DType::U8 | DType::Bool);
    cx.for_nest(&shape, |cx, ivs| {
        let io = cx.dot(ivs, &st[0], 0)?;
        let x = cx.load(dt, a.ptr, cx.dot(ivs, &st[1], 0)?)?;
        let y = cx.load(dt, b.ptr, cx.dot(ivs, &st[2], 0)?)?;
        let r = if dt == DType::F32 {
            let p = match op {
                CompareOp::Equal => FloatPredicate::OEQ,
                CompareOp::Greater => FloatPredicate::OGT,
                CompareOp::GreaterOrEqual => FloatPredicate::OGE,
                CompareOp::Less => FloatPredicate::OLT,
                CompareOp::LessOrEqual => FloatPredicate::OLE,
            };
            cx.fcmp(p, x.into_float_value(), y.into_float_value())?
        } else {
            let p = match (op, unsigned) {
                (CompareOp::Equal, _) => IntPredicate::EQ,
                (CompareOp::Greater, false) => IntPredicate::SGT,
                (CompareOp::Greater, true) => IntPredicate::UGT,
                (CompareOp::GreaterOrEqual, false) => IntPredicate::SGE,
                (CompareOp::GreaterOrEqual, true) => IntPredicate::UGE,
                (CompareOp::Less, false) => IntPredicate::SLT,
                (CompareOp::Less, true) => IntPredicate::ULT,
                (CompareOp::LessOrEqual, false) => IntPredicate::SLE,
                (CompareOp::LessOrEqual, true) => IntPredicate::ULE,
            };
            cx.icmp(p, x.into_int_value(), y.into_int_value())?
        };
        cx.store(DType::Bool, out.ptr, io, as_byte(cx, r)?)
    })
}

/// `out = a op b` on bools, and `out = !x`.
pub fn emit_logic<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    node: &Node,
    ins: &[Operand<'_, 'ctx>],
    out: &Operand<'_, 'ctx>,
) -> CgResult<()> {
    let op = match node.op {
        Op::Logic(l) => Some(l),
        Op::Not => None,
        _ => return Err(cx.unsupported("not a logic op")),
    };
    expect_inputs(cx, ins, if op.is_some() { 2 } else { 1 })?;
    if ins.iter().chain([out]).any(|o| o.dtype() != DType::Bool) {
        return Err(cx.unsupported("operands and output must be bool"));
    }
    let refs: Vec<&Operand> = ins.iter().collect();
    let (shape, st) = broadcast(cx, &refs, out)?;
    cx.for_nest(&shape, |cx, ivs| {
        let io = cx.dot(ivs, &st[0], 0)?;
        let x = cx.load(DType::Bool, ins[0].ptr, cx.dot(ivs, &st[1], 0)?)?;
        let x = x.into_int_value();
        let r = match op {
            None => cx.b.build_xor(x, cx.i8_t().const_int(1, false), "")?,
            Some(l) => {
                let y = cx.load(DType::Bool, ins[1].ptr, cx.dot(ivs, &st[2], 0)?)?;
                let y = y.into_int_value();
                match l {
                    LogicOp::And => cx.b.build_and(x, y, "")?,
                    LogicOp::Or => cx.b.build_or(x, y, "")?,
                    LogicOp::Xor => cx.b.build_xor(x, y, "")?,
                }
            }
        };
        cx.store(DType::Bool, out.ptr, io, r.into())
    })
}

/// `out = cond ? x : y`.
pub fn emit_where<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    node: &Node,
    ins: &[Operand<'_, 'ctx>],
    out: &Operand<'_, 'ctx>,
) -> CgResult<()> {
    expect_inputs(cx, ins, 3)?;
    if node.op != Op::Where {
        return Err(cx.unsupported("not a where"));
    }
    let (c, x, y) = (&ins[0], &ins[1], &ins[2]);
    let dt = out.dtype();
    if c.dtype() != DType::Bool || x.dtype() != dt || y.dtype() != dt {
        return Err(cx.unsupported(format!(
            "needs a bool condition and operands of the output type, got {}, {} and {}",
            c.ty, x.ty, y.ty
        )));
    }
    let (shape, st) = broadcast(cx, &[c, x, y], out)?;
    cx.for_nest(&shape, |cx, ivs| {
        let io = cx.dot(ivs, &st[0], 0)?;
        let cv = cx.load(DType::Bool, c.ptr, cx.dot(ivs, &st[1], 0)?)?;
        let take = cx.icmp(
            IntPredicate::NE,
            cv.into_int_value(),
            cx.i8_t().const_int(0, false),
        )?;
        let a = cx.load(dt, x.ptr, cx.dot(ivs, &st[2], 0)?)?;
        let b = cx.load(dt, y.ptr, cx.dot(ivs, &st[3], 0)?)?;
        let r = cx.select(take, a, b)?;
        cx.store(dt, out.ptr, io, r)
    })
}
