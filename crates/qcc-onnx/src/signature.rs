//! Types of graph inputs and outputs from their `ValueInfoProto`s: static
//! input types (symbolic dims fixed by the given input shapes) and the check
//! of declared output types against the computed ones.

use crate::error::Problem;
use crate::proto::type_proto;
use crate::proto::ValueInfoProto;
use crate::tensor;
use qcc_ir::TensorType;

/// A dimension as declared: a number, a symbol, or nothing.
enum Dim {
    Fixed(usize),
    Symbol(String),
    Unknown,
}

/// Why a graph input named like an initializer contradicts it (its declared
/// element type or a fixed dim differs, or its rank), if it does; symbolic
/// and unknown dims, and an input with no declared type, agree with anything.
pub(crate) fn input_contradicts(vi: &ValueInfoProto, init: &TensorType) -> Option<String> {
    let (code, dims) = declared(vi).ok()?;
    let dtype_differs = tensor::io_dtype_of(code).is_ok_and(|d| d != init.dtype);
    let dims_differ = dims.is_some_and(|ds| {
        ds.len() != init.shape.len()
            || ds
                .iter()
                .zip(&init.shape)
                .any(|(d, &s)| matches!(d, Dim::Fixed(v) if *v != s))
    });
    (dtype_differs || dims_differ).then(|| {
        format!(
            "is a graph input whose declared type does not match its initializer {init} \
             (ONNX Runtime rejects this)"
        )
    })
}

/// The declared type of a value: element type code and dims (`None`: no shape).
fn declared(vi: &ValueInfoProto) -> Result<(i32, Option<Vec<Dim>>), String> {
    let Some(type_proto::Value::TensorType(t)) = vi.r#type.as_ref().and_then(|t| t.value.as_ref())
    else {
        return Err("is not a tensor".into());
    };
    let dims = match &t.shape {
        None => None,
        Some(s) => {
            let mut dims = Vec::with_capacity(s.dim.len());
            for d in &s.dim {
                use crate::proto::tensor_shape_proto::dimension::Value;
                dims.push(match &d.value {
                    // -1 is how some exporters (Paddle) write "dynamic".
                    Some(Value::DimValue(-1)) => Dim::Unknown,
                    Some(Value::DimValue(v)) => Dim::Fixed(
                        usize::try_from(*v).map_err(|_| format!("has negative dim {v}"))?,
                    ),
                    Some(Value::DimParam(p)) if !p.is_empty() => Dim::Symbol(p.clone()),
                    _ => Dim::Unknown,
                });
            }
            Some(dims)
        }
    };
    Ok((t.elem_type(), dims))
}

/// The static type of a graph input, using `given` (from `--input-shape`) for unknown dims.
pub(crate) fn input_type(
    vi: &ValueInfoProto,
    given: Option<&Vec<usize>>,
) -> Result<TensorType, Problem> {
    let name = vi.name();
    let fail = |msg: String| Problem::Graph(format!("input '{name}' {msg}"));
    let (code, dims) = declared(vi).map_err(fail)?;
    let dtype =
        tensor::io_dtype_of(code).map_err(|m| Problem::Graph(format!("input '{name}': {m}")))?;
    if let Some(given) = given {
        if let Some(dims) = &dims {
            if dims.len() != given.len() {
                return Err(fail(format!(
                    "has rank {} but the given shape {given:?} has {} dims",
                    dims.len(),
                    given.len()
                )));
            }
            for (axis, (d, &g)) in dims.iter().zip(given).enumerate() {
                if let Dim::Fixed(v) = d {
                    if *v != g {
                        return Err(fail(format!(
                            "has dim {v} at axis {axis} but the given shape {given:?} says {g}"
                        )));
                    }
                }
            }
        }
        return checked_type(dtype, given.clone()).map_err(fail);
    }
    let Some(dims) = dims else {
        return Err(fail(format!(
            "has no shape; pass --input-shape {name}=<dims>"
        )));
    };
    let hint = || {
        let example: Vec<String> = dims
            .iter()
            .map(|d| match d {
                Dim::Fixed(v) => v.to_string(),
                _ => "1".into(),
            })
            .collect();
        format!("pass --input-shape {name}={}", example.join(","))
    };
    let mut shape = Vec::with_capacity(dims.len());
    for (axis, d) in dims.iter().enumerate() {
        match d {
            Dim::Fixed(v) => shape.push(*v),
            // A symbolic leading (batch) dim, the only one: batch 1, said
            // in a note (`leading_batch_note`).
            Dim::Symbol(_) | Dim::Unknown
                if axis == 0 && dims[1..].iter().all(|d| matches!(d, Dim::Fixed(_))) =>
            {
                shape.push(1)
            }
            Dim::Symbol(s) => {
                return Err(fail(format!(
                    "has symbolic dim '{s}' at axis {axis}; {}",
                    hint()
                )))
            }
            Dim::Unknown => {
                return Err(fail(format!(
                    "has an unknown dim at axis {axis}; {}",
                    hint()
                )))
            }
        }
    }
    checked_type(dtype, shape).map_err(fail)
}

/// The note for an input whose only symbolic dim is the leading one, which
/// `input_type` sets to 1 when no shape is given.
pub(crate) fn leading_batch_note(
    vi: &ValueInfoProto,
    given: Option<&Vec<usize>>,
) -> Option<String> {
    if given.is_some() {
        return None;
    }
    let (_, Some(dims)) = declared(vi).ok()? else {
        return None;
    };
    let lead = match dims.first()? {
        Dim::Symbol(s) => format!("'{s}'"),
        Dim::Unknown => "0 (unknown)".into(),
        Dim::Fixed(_) => return None,
    };
    dims[1..]
        .iter()
        .all(|d| matches!(d, Dim::Fixed(_)))
        .then(|| {
            format!(
                "input '{}' dim {lead} set to 1; --input-shape to choose",
                vi.name()
            )
        })
}

/// A tensor type whose byte size cannot overflow.
fn checked_type(dtype: qcc_ir::DType, shape: Vec<usize>) -> Result<TensorType, String> {
    let n = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    match n {
        Some(n) if tensor::fits_in_memory(n) => Ok(TensorType::new(dtype, shape)),
        _ => Err(format!("has shape {shape:?}, which is too large")),
    }
}

/// Why a declared output type disagrees with the computed one, if it does:
/// `Err` for a conflict of element types (fatal), `Ok` for a shape that
/// is only a hint the computed shape overrides (a note).
pub(crate) fn output_mismatch(
    vi: &ValueInfoProto,
    actual: &TensorType,
) -> Option<Result<String, String>> {
    // No type at all is allowed for outputs (some exporters omit it).
    vi.r#type.as_ref()?;
    let (code, dims) = match declared(vi) {
        Ok(d) => d,
        Err(m) => return Some(Err(m)),
    };
    if code != 0 {
        match tensor::io_dtype_of(code) {
            Err(m) => return Some(Err(format!("is declared with an unsupported type: {m}"))),
            Ok(dt) if dt != actual.dtype => {
                return Some(Err(format!(
                    "is declared {} but computes {actual}",
                    dt.name()
                )))
            }
            Ok(_) => {}
        }
    }
    let dims = dims?;
    let shape_ok = dims.len() == actual.rank()
        && dims.iter().zip(&actual.shape).all(|(d, &a)| match d {
            Dim::Fixed(v) => *v == a,
            _ => true,
        });
    if shape_ok {
        return None;
    }
    let decl: Vec<String> = dims
        .iter()
        .map(|d| match d {
            Dim::Fixed(v) => v.to_string(),
            Dim::Symbol(s) => s.clone(),
            Dim::Unknown => "?".into(),
        })
        .collect();
    Some(Ok(format!(
        "is declared with shape [{}] but computes {actual}; the computed shape is used",
        decl.join(",")
    )))
}
