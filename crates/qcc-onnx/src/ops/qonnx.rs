//! QONNX's quantizers as Brevitas and FINN export them (domains
//! `qonnx.custom_op.general`, `finn.custom_op.general`, `onnx.brevitas`),
//! read as the float simulation they define:
//!
//! - `Quant(x, scale, zeropt, bitwidth)`: `y = (clamp(round(x / scale +
//!   zeropt), lo, hi) - zeropt) · scale`, with `[lo, hi]` the range of a
//!   `bitwidth`-bit integer (`signed`; `narrow` drops the most negative
//!   signed or the largest unsigned value); `rounding_mode` ROUND (half to
//!   even; FLOOR and CEIL are refused by name). `bitwidth` must be a
//!   constant scalar from 1 to 24.
//! - `BipolarQuant(x, scale)`: `y = (x ≥ 0 ? 1 : -1) · scale`.
//!
//! On constant weights `constant-fold` then leaves the quantized values
//! (±scale for bipolar weights, which `binarize` reads as binary).

use super::elementwise::scalar;
use super::R;
use crate::node::NodeCx;
use qcc_ir::{BinaryOp, CompareOp, Op, UnaryOp};

/// The domains QONNX's custom ops are exported in.
pub(crate) fn is_qonnx_domain(domain: &str) -> bool {
    matches!(
        domain,
        "qonnx.custom_op.general" | "finn.custom_op.general" | "onnx.brevitas"
    )
}

/// QONNX ops qcc reads: input count range and attributes.
pub(crate) const QONNX: &[(&str, usize, usize, &[&str])] = &[
    ("Quant", 4, 4, &["narrow", "rounding_mode", "signed"]),
    ("BipolarQuant", 2, 2, &[]),
];

/// The integer range of a `bits`-bit value.
pub(crate) fn int_range(bits: u32, signed: bool, narrow: bool) -> (f32, f32) {
    if signed {
        let half = 2f64.powi(bits as i32 - 1);
        ((-half + narrow as i32 as f64) as f32, (half - 1.0) as f32)
    } else {
        (
            0.0,
            (2f64.powi(bits as i32) - 1.0 - narrow as i32 as f64) as f32,
        )
    }
}

pub(super) fn quant(cx: &mut NodeCx) -> R {
    let x = cx.input(0)?;
    let (scale, zeropt) = (cx.input(1)?, cx.input(2)?);
    let bits = cx
        .const_scalar(3, "bitwidth")?
        .ok_or_else(|| cx.err("input 'bitwidth' must be a constant"))?;
    if !(bits.fract() == 0.0 && (1.0..=24.0).contains(&bits)) {
        return Err(cx.err(format!(
            "bitwidth {bits} is not a whole number from 1 to 24"
        )));
    }
    let signed = cx.attr(cx.attrs.int_or("signed", 1))? != 0;
    let narrow = cx.attr(cx.attrs.int_or("narrow", 0))? != 0;
    let mode = cx.attr(cx.attrs.string_or("rounding_mode", "ROUND"))?;
    if mode != "ROUND" {
        return Err(cx.err(format!("unsupported attribute rounding_mode='{mode}'")));
    }
    let (lo, hi) = int_range(bits as u32, signed, narrow);
    let v = cx.add_aux("scaled", Op::Binary(BinaryOp::Div), vec![x, scale])?;
    let v = cx.add_aux("shifted", Op::Binary(BinaryOp::Add), vec![v, zeropt])?;
    let v = cx.add_aux("rounded", Op::Unary(UnaryOp::Round), vec![v])?;
    let v = cx.add_aux(
        "clamped",
        Op::Unary(UnaryOp::Clip { min: lo, max: hi }),
        vec![v],
    )?;
    let v = cx.add_aux("centered", Op::Binary(BinaryOp::Sub), vec![v, zeropt])?;
    Ok(vec![cx.add(Op::Binary(BinaryOp::Mul), vec![v, scale])?])
}

pub(super) fn bipolar(cx: &mut NodeCx) -> R {
    let x = cx.input(0)?;
    let scale = cx.input(1)?;
    let zero = scalar(cx, "zero", 0.0);
    let (plus, minus) = (scalar(cx, "plus", 1.0), scalar(cx, "minus", -1.0));
    let ge = Op::Compare(CompareOp::GreaterOrEqual);
    let nonneg = cx.add_aux("nonnegative", ge, vec![x, zero])?;
    let sign = cx.add_aux("sign", Op::Where, vec![nonneg, plus, minus])?;
    Ok(vec![cx.add(Op::Binary(BinaryOp::Mul), vec![sign, scale])?])
}
