//! Gemm, MatMul, BatchNormalization, Layer- and InstanceNormalization, LRN,
//! Softmax/LogSoftmax and Dropout.

use super::R;
use crate::node::NodeCx;
use qcc_ir::{numel, BinaryOp, Op, ReduceOp, UnaryOp, ValueId};

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

/// What [`normalize`] builds: `mean(x)`, `sqrt(mean(D·D) + epsilon)` and
/// `D / that`, with `D = x - mean(x)`.
struct Normalized {
    mean: ValueId,
    std_dev: ValueId,
    y: ValueId,
}

/// `x` normalized over `axes` (kept as size-1 dims for broadcasting), as
/// LayerNormalization and InstanceNormalization define it.
fn normalize(
    cx: &mut NodeCx,
    x: ValueId,
    axes: Vec<usize>,
    epsilon: f32,
) -> Result<Normalized, crate::error::Problem> {
    let mean = Op::Reduce {
        op: ReduceOp::Mean,
        axes,
        keepdims: true,
    };
    let m = cx.add_aux("mean", mean.clone(), vec![x])?;
    let d = cx.add_aux("centered", Op::Binary(BinaryOp::Sub), vec![x, m])?;
    let d2 = cx.add_aux("squared", Op::Binary(BinaryOp::Mul), vec![d, d])?;
    let var = cx.add_aux("variance", mean, vec![d2])?;
    let eps = super::elementwise::scalar(cx, "epsilon", epsilon);
    let ve = cx.add_aux("variance_eps", Op::Binary(BinaryOp::Add), vec![var, eps])?;
    let sd = cx.add_aux("std_dev", Op::Unary(UnaryOp::Sqrt), vec![ve])?;
    let y = cx.add_aux("normalized", Op::Binary(BinaryOp::Div), vec![d, sd])?;
    Ok(Normalized {
        mean: m,
        std_dev: sd,
        y,
    })
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
    let mul = Op::Binary(BinaryOp::Mul);
    let Normalized {
        mean: m,
        std_dev: sd,
        y: n,
    } = normalize(cx, x, (axis..rank).collect(), epsilon)?;
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

/// InstanceNormalization: per image and channel over the spatial dims,
/// `D = x - mean(x)`, `y = D / sqrt(mean(D·D) + epsilon) · scale[c] + B[c]`.
pub(super) fn instance_norm(cx: &mut NodeCx) -> R {
    let x = cx.input(0)?;
    let ty = cx.ty(x);
    let rank = ty.rank();
    if rank < 3 || ty.dtype != qcc_ir::DType::F32 {
        return Err(cx.err(format!("input must be f32 [N, C, D1, …], got {ty}")));
    }
    let epsilon = cx.attr(cx.attrs.float_or("epsilon", 1e-5))?;
    let c = ty.shape[1];
    // scale and B `[C]` as `[C, 1, …]`, to broadcast over the spatial dims.
    let per_channel = |cx: &mut NodeCx, i: usize, what: &str| -> Result<_, crate::error::Problem> {
        let v = cx.input(i)?;
        let t = cx.ty(v);
        if t.shape != [c] {
            return Err(cx.err(format!("input '{what}' is {t}, expected [{c}]")));
        }
        let mut shape = vec![c];
        shape.resize(rank - 1, 1);
        cx.add_aux(what, Op::Reshape { shape }, vec![v])
    };
    let scale = per_channel(cx, 1, "scale")?;
    let bias = per_channel(cx, 2, "B")?;
    let n = normalize(cx, x, (2..rank).collect(), epsilon)?.y;
    let s = cx.add_aux("scaled", Op::Binary(BinaryOp::Mul), vec![n, scale])?;
    Ok(vec![cx.add(Op::Binary(BinaryOp::Add), vec![s, bias])?])
}

/// LRN across channels: `y = x / (bias + alpha/size · Σ x²)^beta`, the sum
/// over the `size` channels around each (zero outside). The windowed mean
/// `Σ x² / size` is an AveragePool counting the padding, over `x²` viewed
/// as `[N, 1, C, rest]` with a `size × 1` window.
pub(super) fn lrn(cx: &mut NodeCx) -> R {
    let x = cx.input(0)?;
    let ty = cx.ty(x);
    if ty.rank() < 3 || ty.dtype != qcc_ir::DType::F32 {
        return Err(cx.err(format!("input must be f32 [N, C, D1, …], got {ty}")));
    }
    let size = cx
        .attr(cx.attrs.int("size"))?
        .ok_or_else(|| cx.err("attribute 'size' is missing"))?;
    if size < 1 {
        return Err(cx.err(format!("attribute size={size} must be positive")));
    }
    let size = size as usize;
    let alpha = cx.attr(cx.attrs.float_or("alpha", 1e-4))?;
    let beta = cx.attr(cx.attrs.float_or("beta", 0.75))?;
    let bias = cx.attr(cx.attrs.float_or("bias", 1.0))?;
    let (n, c) = (ty.shape[0], ty.shape[1]);
    let rest: usize = ty.shape[2..].iter().product();
    let mul = Op::Binary(BinaryOp::Mul);
    let sq = cx.add_aux("squared", mul.clone(), vec![x, x])?;
    let v = cx.add_aux(
        "view",
        Op::Reshape {
            shape: vec![n, 1, c, rest],
        },
        vec![sq],
    )?;
    let pool = qcc_ir::PoolAttrs {
        kernel: vec![size, 1],
        strides: vec![1, 1],
        pads: vec![(size - 1) / 2, 0, size / 2, 0],
        dilations: vec![1, 1],
        ceil_mode: false,
        count_include_pad: true,
    };
    let avg = cx.add_aux("window_mean", Op::AveragePool(pool), vec![v])?;
    let avg = cx.add_aux(
        "unview",
        Op::Reshape {
            shape: ty.shape.clone(),
        },
        vec![avg],
    )?;
    let a = super::elementwise::scalar(cx, "alpha", alpha);
    let scaled = cx.add_aux("scaled", mul, vec![avg, a])?;
    let b = super::elementwise::scalar(cx, "bias", bias);
    let base = cx.add_aux("base", Op::Binary(BinaryOp::Add), vec![scaled, b])?;
    let e = super::elementwise::scalar(cx, "beta", beta);
    let den = cx.add_aux("denominator", Op::Binary(BinaryOp::Pow), vec![base, e])?;
    Ok(vec![cx.add(Op::Binary(BinaryOp::Div), vec![x, den])?])
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
