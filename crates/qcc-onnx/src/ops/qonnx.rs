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
//! A `Quant` of at most 8 bits with a constant scale and zero point is read
//! in the forms a QDQ model imports as (`integer_form`: the weight's
//! integers behind `Cast · scale`; an 8-bit activation with zero point 0 as
//! `Quantize` + `Dequantize`), so `fold-qdq` compiles the layers between
//! them to integer kernels; the values are the float simulation's. Other
//! quantizers stay the simulation; `constant-fold` computes quantized
//! weights' floats where no integer kernel reads them (±scale for bipolar
//! weights, which `binarize` reads as binary).

use super::elementwise::scalar;
use super::R;
use crate::error::Problem;
use crate::node::NodeCx;
use qcc_ir::{BinaryOp, CompareOp, DType, Op, QParams, Tensor, TensorData, UnaryOp, ValueId};

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
    if bits <= 8.0 {
        let full_byte = bits == 8.0 && !narrow;
        if let Some(v) = integer_form(cx, (x, scale, zeropt), (lo, hi), signed, full_byte)? {
            return Ok(vec![v]);
        }
    }
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

/// A `Quant` of at most 8 bits with a constant scale and an integer
/// zero point, in the forms `fold-qdq` compiles to integer kernels, each
/// computing the float simulation's values to the bit:
///
/// - on a constant (a weight): the integers `q = clamp(round(x / scale +
///   zeropt), lo, hi)`, computed here with the same f32 operations, as an
///   8-bit constant behind `Cast · scale` (less the zero point) — what a
///   DequantizeLinear of a weight imports as; per tensor, or per channel
///   along one axis of the weight. Weights within 4 or 2 bits are then
///   stored packed by the integer kernels.
/// - on a run-time value: a whole 8-bit range (`bitwidth` 8, not narrow),
///   one scale and a zero point of 0 (then `round(x/scale + 0)` is exactly
///   QuantizeLinear's `round(x/scale) + 0`): `Quantize` then `Dequantize`.
///
/// Anything else keeps the float simulation (`None`).
fn integer_form(
    cx: &mut NodeCx,
    (x, scale, zeropt): (ValueId, ValueId, ValueId),
    (lo, hi): (f32, f32),
    signed: bool,
    full_byte: bool,
) -> Result<Option<ValueId>, Problem> {
    let konst = |cx: &mut NodeCx, v| cx.imp.const_value(v).ok().flatten();
    let (Some(st), Some(zt)) = (konst(cx, scale), konst(cx, zeropt)) else {
        return Ok(None);
    };
    let (Some(sv), Some(zv)) = (st.as_f32(), zt.as_f32()) else {
        return Ok(None);
    };
    let &[zp] = zv else { return Ok(None) };
    let qtype = if signed { DType::I8 } else { DType::U8 };
    let (tlo, thi) = if signed {
        (-128.0, 127.0)
    } else {
        (0.0, 255.0)
    };
    let finite = sv.iter().all(|s| s.is_finite() && *s > 0.0);
    if !finite || zp.fract() != 0.0 || !(tlo..=thi).contains(&zp) {
        return Ok(None);
    }
    let xty = cx.ty(x);
    if let Some(xt) = konst(cx, x) {
        let Some(xv) = xt.as_f32() else {
            return Ok(None);
        };
        // One scale, or one per channel along a single axis of x.
        let shape = &xty.shape;
        let channel: Box<dyn Fn(usize) -> usize> = if sv.len() == 1 {
            Box::new(|_| 0)
        } else {
            let ss = st.shape();
            let big: Vec<usize> = (0..ss.len()).filter(|&i| ss[i] != 1).collect();
            match big.as_slice() {
                [a] if ss.len() == shape.len() && ss[*a] == shape[*a] => {
                    let (dim, inner) = (shape[*a], shape[*a + 1..].iter().product::<usize>());
                    Box::new(move |i| i / inner.max(1) % dim.max(1))
                }
                _ => return Ok(None),
            }
        };
        let q: Vec<f32> = xv
            .iter()
            .enumerate()
            .map(|(i, &w)| (w / sv[channel(i)] + zp).round_ties_even().clamp(lo, hi))
            .collect();
        let data = if signed {
            TensorData::I8(q.iter().map(|&v| v as i8).collect())
        } else {
            TensorData::U8(q.iter().map(|&v| v as u8).collect())
        };
        let t = Tensor::new(shape.clone(), data).ok_or_else(|| cx.err("bad constant"))?;
        let q = cx.add_const("q", t);
        let mut v = cx.add_aux("float", Op::Cast { to: DType::F32 }, vec![q])?;
        if zp != 0.0 {
            v = cx.add_aux("centered", Op::Binary(BinaryOp::Sub), vec![v, zeropt])?;
        }
        return Ok(Some(cx.add(Op::Binary(BinaryOp::Mul), vec![v, scale])?));
    }
    if !full_byte || zp != 0.0 || sv.len() != 1 || xty.dtype != DType::F32 {
        return Ok(None);
    }
    let q = QParams {
        scale: sv[0],
        zero_point: 0,
    };
    let v = cx.add_aux("quantized", Op::Quantize { q, to: qtype }, vec![x])?;
    Ok(Some(cx.add(Op::Dequantize { q }, vec![v])?))
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
