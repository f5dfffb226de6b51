//! Constants and types: Identity, Constant, ConstantOfShape, Range, Shape,
//! Size (all but Identity become IR constants since shapes are static),
//! Cast and CastLike.

use super::{MAX_CONST_ELEMS, R};
use crate::error::Problem;
use crate::node::NodeCx;
use crate::tensor::{dtype_of, to_tensor};
use qcc_ir::{DType, Op, Tensor, TensorData};

pub(super) fn identity(cx: &mut NodeCx) -> R {
    let x = cx.input(0)?;
    Ok(vec![cx.identity(x)?])
}

/// Converts a tensor attribute, turning tensor problems into node problems.
fn attr_tensor(cx: &NodeCx, name: &str) -> Result<Option<Tensor>, Problem> {
    let Some(t) = cx.attr(cx.attrs.tensor(name))? else {
        return Ok(None);
    };
    match to_tensor(t, &cx.imp.dir) {
        Ok(v) => Ok(Some(v)),
        Err(Problem::Tensor { msg, .. }) => Err(cx.err(format!("attribute '{name}': {msg}"))),
        Err(p) => Err(p),
    }
}

pub(super) fn constant(cx: &mut NodeCx) -> R {
    let a = cx.attrs;
    let t = if let Some(t) = attr_tensor(cx, "value")? {
        t
    } else if let Some(f) = cx.attr(a.float("value_float"))? {
        Tensor::from_f32(Vec::<usize>::new(), vec![f]).expect("one element")
    } else if let Some(v) = cx.attr(a.floats("value_floats"))? {
        Tensor::from_f32(vec![v.len()], v).expect("n elements")
    } else if let Some(i) = cx.attr(a.int("value_int"))? {
        Tensor::from_i64(Vec::<usize>::new(), vec![i]).expect("one element")
    } else if let Some(v) = cx.attr(a.ints("value_ints"))? {
        Tensor::from_i64(vec![v.len()], v).expect("n elements")
    } else {
        return Err(cx.err("has no supported value attribute"));
    };
    Ok(vec![cx.add_const("", t)])
}

/// A tensor of `shape` filled with the single element of `value`.
fn filled(value: &Tensor, shape: Vec<usize>) -> Option<Tensor> {
    let n: usize = shape.iter().product();
    let data = match value.data() {
        TensorData::F32(v) => TensorData::F32(vec![*v.first()?; n]),
        TensorData::I64(v) => TensorData::I64(vec![*v.first()?; n]),
        TensorData::I32(v) => TensorData::I32(vec![*v.first()?; n]),
        TensorData::I8(v) => TensorData::I8(vec![*v.first()?; n]),
        TensorData::U8(v) => TensorData::U8(vec![*v.first()?; n]),
        TensorData::Bool(v) => TensorData::Bool(vec![*v.first()?; n]),
    };
    Tensor::new(shape, data)
}

fn check_size(cx: &NodeCx, shape: &[usize]) -> Result<(), Problem> {
    match shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) {
        Some(n) if n <= MAX_CONST_ELEMS => Ok(()),
        _ => Err(cx.err(format!("shape {shape:?} is too large"))),
    }
}

pub(super) fn constant_of_shape(cx: &mut NodeCx) -> R {
    let spec = cx
        .const_ints(0, "input")?
        .ok_or_else(|| cx.err("input 'input' is missing"))?;
    let shape = cx.usizes(&spec, "input 'input'")?;
    check_size(cx, &shape)?;
    let value = attr_tensor(cx, "value")?
        .unwrap_or_else(|| Tensor::from_f32(vec![1], vec![0.0]).expect("one element"));
    if value.numel() != 1 {
        return Err(cx.err(format!(
            "attribute 'value' must hold one element, got {}",
            value.ty()
        )));
    }
    cx.generate(&qcc_ir::TensorType::new(value.dtype(), shape.clone()))?;
    let t = filled(&value, shape).ok_or_else(|| cx.err("cannot build the constant"))?;
    Ok(vec![cx.add_const("", t)])
}

pub(super) fn range(cx: &mut NodeCx) -> R {
    let mut get = |i: usize, what: &str| -> Result<Tensor, Problem> {
        let t = cx
            .const_input(i, what)?
            .ok_or_else(|| cx.err(format!("input '{what}' is missing")))?;
        if t.numel() != 1 {
            return Err(cx.err(format!("input '{what}' must be a scalar, got {}", t.ty())));
        }
        Ok(t)
    };
    let (start, limit, delta) = (get(0, "start")?, get(1, "limit")?, get(2, "delta")?);
    let dtype = start.dtype();
    if limit.dtype() != dtype || delta.dtype() != dtype {
        return Err(cx.err("start, limit and delta must have the same type"));
    }
    let t = match dtype {
        DType::F32 => {
            let (s, l, d) = (
                start.to_f32_vec()[0] as f64,
                limit.to_f32_vec()[0] as f64,
                delta.to_f32_vec()[0] as f64,
            );
            if d == 0.0 || !(s.is_finite() && l.is_finite() && d.is_finite()) {
                return Err(cx.err("start, limit and delta must be finite with delta ≠ 0"));
            }
            let n = ((l - s) / d).ceil().max(0.0);
            if n > MAX_CONST_ELEMS as f64 {
                return Err(cx.err("the range is too long"));
            }
            cx.generate(&qcc_ir::TensorType::new(dtype, vec![n as usize]))?;
            let v: Vec<f32> = (0..n as usize).map(|k| (s + k as f64 * d) as f32).collect();
            Tensor::from_f32(vec![v.len()], v)
        }
        DType::I64 | DType::I32 => {
            let one = |t: &Tensor| t.to_i64_vec().map(|v| v[0] as i128).unwrap_or(0);
            let (s, l, d) = (one(&start), one(&limit), one(&delta));
            if d == 0 {
                return Err(cx.err("delta must not be 0"));
            }
            let span = l - s;
            let n = if (span > 0) == (d > 0) && span != 0 {
                (span.abs() + d.abs() - 1) / d.abs()
            } else {
                0
            };
            if n > MAX_CONST_ELEMS as i128 {
                return Err(cx.err("the range is too long"));
            }
            cx.generate(&qcc_ir::TensorType::new(dtype, vec![n as usize]))?;
            let v: Vec<i128> = (0..n).map(|k| s + k * d).collect();
            let len = vec![v.len()];
            if dtype == DType::I64 {
                Tensor::from_i64(len, v.iter().map(|&x| x as i64).collect())
            } else {
                Tensor::new(len, TensorData::I32(v.iter().map(|&x| x as i32).collect()))
            }
        }
        other => return Err(cx.err(format!("type {other} is not supported"))),
    };
    let t = t.ok_or_else(|| cx.err("cannot build the range"))?;
    Ok(vec![cx.add_const("", t)])
}

/// Shape (with `start`/`end` from opset 15): a constant, since shapes are static.
pub(super) fn shape(cx: &mut NodeCx) -> R {
    let x = cx.input(0)?;
    let dims = cx.ty(x).shape;
    let r = dims.len() as i64;
    let clamp = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
    let start = clamp(cx.attr(cx.attrs.int_or("start", 0))?);
    let end = clamp(cx.attr(cx.attrs.int_or("end", r))?);
    let v: Vec<i64> = dims[start..end.max(start)]
        .iter()
        .map(|&d| d as i64)
        .collect();
    let t = Tensor::from_i64(vec![v.len()], v).expect("n elements");
    Ok(vec![cx.add_const("", t)])
}

pub(super) fn size(cx: &mut NodeCx) -> R {
    let x = cx.input(0)?;
    let n = cx.ty(x).numel() as i64;
    let t = Tensor::from_i64(Vec::<usize>::new(), vec![n]).expect("one element");
    Ok(vec![cx.add_const("", t)])
}

pub(super) fn cast(cx: &mut NodeCx) -> R {
    let x = cx.input(0)?;
    let to = crate::attrs::cast_to(&cx.attrs, cx.opset)
        .and_then(|to| to.ok_or_else(|| "attribute 'to' is missing".to_string()))
        .map_err(|m| cx.err(m))?;
    let to = i32::try_from(to)
        .map_err(|_| format!("unknown type {to}"))
        .and_then(dtype_of)
        .map_err(|m| cx.err(format!("attribute 'to': {m}")))?;
    Ok(vec![cx.add(Op::Cast { to }, vec![x])?])
}

pub(super) fn cast_like(cx: &mut NodeCx) -> R {
    let x = cx.input(0)?;
    if cx.input_is_four_bit(1) {
        // Held as int8 / uint8, but a cast to it would have to saturate to
        // four bits.
        return Err(cx.err("a cast to int4 or uint4 is not supported"));
    }
    let to = cx.ty(cx.input(1)?).dtype;
    Ok(vec![cx.add(Op::Cast { to }, vec![x])?])
}
