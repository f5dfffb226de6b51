//! Gemm, MatMul, BatchNormalization, Softmax/LogSoftmax and Dropout.

use super::R;
use crate::node::NodeCx;
use qcc_ir::{numel, BinaryOp, Op, ReduceOp, UnaryOp};

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

/// LayerNormalization (opset 17) over the dims from `axis` on, as the
/// spec writes it: `D = x - mean(x)`, `y = D / sqrt(mean(D·D) + epsilon) ·
/// scale + bias`, in f32 (`stash_type` 1); the optional outputs Mean and
/// InvStdDev are `mean(x)` and `1 / sqrt(mean(D·D) + epsilon)`.
pub(super) fn layer_norm(cx: &mut NodeCx) -> R {
    let x = cx.input(0)?;
    let rank = cx.ty(x).rank();
    let axis = cx.attr(cx.attrs.int_or("axis", -1))?;
    let axis = cx.axis(axis, rank, "attribute 'axis'")?;
    let epsilon = cx.attr(cx.attrs.float_or("epsilon", 1e-5))?;
    if cx.attr(cx.attrs.int_or("stash_type", 1))? != 1 {
        return Err(cx.err("stash_type other than 1 (float32) is not supported"));
    }
    let scale = cx.input(1)?;
    let bias = cx.opt_input(2)?;
    let mean = Op::Reduce {
        op: ReduceOp::Mean,
        axes: (axis..rank).collect(),
        keepdims: true,
    };
    let mul = Op::Binary(BinaryOp::Mul);
    let m = cx.add_aux("mean", mean.clone(), vec![x])?;
    let d = cx.add_aux("centered", Op::Binary(BinaryOp::Sub), vec![x, m])?;
    let d2 = cx.add_aux("squared", mul.clone(), vec![d, d])?;
    let var = cx.add_aux("variance", mean, vec![d2])?;
    let eps = super::elementwise::scalar(cx, "epsilon", epsilon);
    let ve = cx.add_aux("variance_eps", Op::Binary(BinaryOp::Add), vec![var, eps])?;
    let sd = cx.add_aux("std_dev", Op::Unary(UnaryOp::Sqrt), vec![ve])?;
    let n = cx.add_aux("normalized", Op::Binary(BinaryOp::Div), vec![d, sd])?;
    let y = match bias {
        Some(b) => {
            let s = cx.add_aux("scaled", mul, vec![n, scale])?;
            cx.add(Op::Binary(BinaryOp::Add), vec![s, b])?
        }
        None => cx.add(mul, vec![n, scale])?,
    };
    let mut outs = vec![y];
    if cx.node.output.len() > 1 {
        outs.push(m);
    }
    if cx.node.output.len() > 2 {
        outs.push(cx.add_aux("inv_std_dev", Op::Unary(UnaryOp::Reciprocal), vec![sd])?);
    }
    Ok(outs)
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
