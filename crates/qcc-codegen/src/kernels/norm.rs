//! Inference BatchNorm: `y = (x - mean) / sqrt(var + eps) * scale + bias`
//! per channel (dim 1), computed as `y = x * a[c] + b[c]` with
//! `a = scale / sqrt(var + eps)` and `b = bias - mean * a`.
//!
//! When the four parameters are constants, `a` and `b` are folded in Rust
//! (in f64, rounded once) into two constant tables; otherwise they are
//! computed once per channel at run time.

use super::conv::const_f32_table;
use super::expect_inputs;
use crate::cx::{CgResult, KernelCx, Operand};
use inkwell::values::{FloatValue, IntValue, PointerValue};
use qcc_ir::{DType, Node, Op};

/// Per-channel multiplier and offset folded from constant parameters.
pub(crate) fn fold(
    eps: f32,
    scale: &[f32],
    bias: &[f32],
    mean: &[f32],
    var: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    scale
        .iter()
        .zip(bias)
        .zip(mean.iter().zip(var))
        .map(|((&s, &b), (&m, &v))| {
            let a = s as f64 / (v as f64 + eps as f64).sqrt();
            (a as f32, (b as f64 - m as f64 * a) as f32)
        })
        .unzip()
}

/// Where the per-channel multiplier and offset come from.
enum Params<'ctx> {
    Tables(PointerValue<'ctx>, PointerValue<'ctx>),
    Runtime {
        scale: PointerValue<'ctx>,
        bias: PointerValue<'ctx>,
        mean: PointerValue<'ctx>,
        var: PointerValue<'ctx>,
    },
}

impl<'ctx> Params<'ctx> {
    fn at(
        &self,
        cx: &KernelCx<'_, 'ctx>,
        eps: f32,
        c: IntValue<'ctx>,
    ) -> CgResult<(FloatValue<'ctx>, FloatValue<'ctx>)> {
        match *self {
            Params::Tables(a, b) => Ok((cx.load_f32(a, c)?, cx.load_f32(b, c)?)),
            Params::Runtime {
                scale,
                bias,
                mean,
                var,
            } => {
                let v = cx.fadd(cx.load_f32(var, c)?, cx.f32(eps))?;
                let a = cx.fdiv(cx.load_f32(scale, c)?, cx.sqrt(v)?)?;
                let ma = cx.fmul(cx.load_f32(mean, c)?, a)?;
                Ok((a, cx.fsub(cx.load_f32(bias, c)?, ma)?))
            }
        }
    }
}

/// Emits the body of the node function for BatchNorm.
pub fn emit<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    node: &Node,
    ins: &[Operand<'_, 'ctx>],
    out: &Operand<'_, 'ctx>,
) -> CgResult<()> {
    let Op::BatchNorm { epsilon } = node.op else {
        return Err(cx.unsupported("not a batch norm"));
    };
    expect_inputs(cx, ins, 5)?;
    let x = &ins[0];
    if ins.iter().chain([out]).any(|o| o.dtype() != DType::F32) {
        return Err(cx.unsupported("only f32 operands are supported"));
    }
    if x.rank() < 2 || x.shape() != out.shape() {
        return Err(cx.unsupported(format!("input {} must be [N,C,…]", x.ty)));
    }
    let ch = x.shape()[1];
    if ins[1..5].iter().any(|p| p.numel() != ch) {
        return Err(cx.unsupported(format!("parameters must have {ch} elements")));
    }
    let konst: Option<Vec<&[f32]>> = ins[1..5]
        .iter()
        .map(|p| p.konst.and_then(|t| t.as_f32()).filter(|v| v.len() == ch))
        .collect();
    let params = match konst.as_deref() {
        Some(&[s, b, m, v]) => {
            let (a, b) = fold(epsilon, s, b, m, v);
            Params::Tables(
                const_f32_table(cx, "bn.mul", &a),
                const_f32_table(cx, "bn.add", &b),
            )
        }
        _ => Params::Runtime {
            scale: ins[1].ptr,
            bias: ins[2].ptr,
            mean: ins[3].ptr,
            var: ins[4].ptr,
        },
    };
    let inner: usize = x.shape()[2..].iter().product();
    let (n, ch, inner) = (x.shape()[0] as i64, ch as i64, inner as i64);
    cx.for_range(0, n, |cx, b| {
        cx.for_range(0, ch, |cx, c| {
            let (a, off) = params.at(cx, epsilon, c)?;
            let base = cx.mul_c(cx.add(cx.mul_c(b, ch)?, c)?, inner)?;
            cx.for_range(0, inner, |cx, i| {
                let k = cx.add(base, i)?;
                let v = cx.fmuladd(cx.load_f32(x.ptr, k)?, a, off)?;
                cx.store_f32(out.ptr, k, v)
            })
        })
    })
}

#[cfg(test)]
mod tests {
    use super::fold;

    #[test]
    fn folding_matches_the_formula() {
        let (a, b) = fold(1e-5, &[2.0, 0.5], &[1.0, -1.0], &[3.0, 0.0], &[4.0, 0.25]);
        let x = 5.0f32;
        for c in 0..2 {
            let want = [
                (x - 3.0) / (4.0f32 + 1e-5).sqrt() * 2.0 + 1.0,
                x / (0.25f32 + 1e-5).sqrt() * 0.5 - 1.0,
            ][c];
            assert!((x * a[c] + b[c] - want).abs() < 1e-5, "channel {c}");
        }
    }
}
