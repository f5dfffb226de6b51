//! Gemm, MatMul, BatchNormalization, Softmax/LogSoftmax and Dropout.

use super::R;
use crate::node::NodeCx;
use qcc_ir::{numel, Op, UnaryOp};

pub(super) fn gemm(cx: &mut NodeCx) -> R {
    let trans_a = cx.attr(cx.attrs.flag("transA", false))?;
    let trans_b = cx.attr(cx.attrs.flag("transB", false))?;
    let op = Op::Gemm {
        alpha: cx.attr(cx.attrs.float_or("alpha", 1.0))?,
        beta: cx.attr(cx.attrs.float_or("beta", 1.0))?,
        trans_a,
        trans_b,
    };
    let mut ins = vec![cx.input(0)?, cx.input(1)?];
    if let Some(c) = cx.opt_input(2)? {
        // Before opset 7, C broadcasts only with broadcast=1; otherwise it
        // has the result's shape.
        if cx.opset < 7 && !cx.attr(cx.attrs.flag("broadcast", false))? {
            let (a, b) = (cx.ty(ins[0]).shape, cx.ty(ins[1]).shape);
            let m = if trans_a { a.get(1) } else { a.first() };
            let n = if trans_b { b.first() } else { b.get(1) };
            let want: Vec<usize> = m.into_iter().chain(n).copied().collect();
            if cx.ty(c).shape != want {
                return Err(cx.err(format!(
                    "C {} must have the result's shape {want:?} at opset {} without broadcast=1",
                    cx.ty(c),
                    cx.opset
                )));
            }
        }
        ins.push(c);
    }
    Ok(vec![cx.add(op, ins)?])
}

pub(super) fn matmul(cx: &mut NodeCx) -> R {
    let ins = vec![cx.input(0)?, cx.input(1)?];
    Ok(vec![cx.add(Op::MatMul, ins)?])
}

/// Inference batch normalization (training mode and outputs are refused by validation).
pub(super) fn batch_norm(cx: &mut NodeCx) -> R {
    let epsilon = cx.attr(cx.attrs.float_or("epsilon", 1e-5))?;
    let ins = (0..5).map(|i| cx.input(i)).collect::<Result<Vec<_>, _>>()?;
    Ok(vec![cx.add(Op::BatchNorm { epsilon }, ins)?])
}

/// Softmax and LogSoftmax (as Softmax then Log). Before opset 13 the input is
/// coerced to 2-D `[prod(d[..axis]), prod(d[axis..])]`: expressed as
/// Reshape → Softmax(axis 1) → Reshape, or a plain Softmax when `axis` is the last dim.
pub(super) fn softmax(cx: &mut NodeCx, log: bool) -> R {
    let x = cx.input(0)?;
    let ty = cx.ty(x);
    let rank = ty.rank();
    let modern = cx.opset >= 13;
    let axis = cx.attr(cx.attrs.int_or("axis", if modern { -1 } else { 1 }))?;
    let axis = cx.axis(axis, rank, "attribute 'axis'")?;
    let finish = |cx: &mut NodeCx, v| -> Result<_, crate::error::Problem> {
        if log {
            cx.add(Op::Unary(UnaryOp::Log), vec![v])
        } else {
            Ok(v)
        }
    };
    let softmax_named = |cx: &mut NodeCx, axis, v| {
        if log {
            cx.add_aux("softmax", Op::Softmax { axis }, vec![v])
        } else {
            cx.add(Op::Softmax { axis }, vec![v])
        }
    };
    if modern || axis + 1 == rank {
        let s = softmax_named(cx, axis, x)?;
        return Ok(vec![finish(cx, s)?]);
    }
    let flat = vec![numel(&ty.shape[..axis]), numel(&ty.shape[axis..])];
    let r = cx.add_aux("coerce_2d", Op::Reshape { shape: flat }, vec![x])?;
    let s = cx.add_aux("softmax_2d", Op::Softmax { axis: 1 }, vec![r])?;
    let back = Op::Reshape { shape: ty.shape };
    let out = if log {
        let b = cx.add_aux("restore_shape", back, vec![s])?;
        finish(cx, b)?
    } else {
        cx.add(back, vec![s])?
    };
    Ok(vec![out])
}

/// Dropout at inference is the identity; a constant `training_mode` of true is refused.
pub(super) fn dropout(cx: &mut NodeCx) -> R {
    if cx.opset >= 12 {
        if let Some(t) = cx.const_input(2, "training_mode")? {
            if t.to_f32_vec().iter().any(|&v| v != 0.0) {
                return Err(cx.err("training_mode=true is not supported"));
            }
        }
    }
    let x = cx.input(0)?;
    Ok(vec![cx.identity(x)?])
}
