//! `TensorProto` → [`qcc_ir::Tensor`]: element types, shapes, raw
//! little-endian data, the typed `*_data` fields and external data.

use crate::error::Problem;
use crate::external;
use crate::proto::tensor_proto::{DataLocation, DataType};
use crate::proto::TensorProto;
use qcc_ir::{DType, Tensor, TensorData, TensorType};
use std::path::Path;

const SUPPORTED: &str = "FLOAT, INT64, INT32, INT8, UINT8, BOOL";

/// ONNX's name of a `TensorProto.DataType` value (`DOUBLE`, `FLOAT16`…).
pub(crate) fn data_type_name(code: i32) -> String {
    match DataType::try_from(code) {
        Ok(t) => t.as_str_name().to_string(),
        Err(_) => format!("#{code}"),
    }
}

/// The qcc element type of an ONNX data type, or a message saying it is unsupported.
pub(crate) fn dtype_of(code: i32) -> Result<DType, String> {
    match DataType::try_from(code) {
        Ok(DataType::Float) => Ok(DType::F32),
        Ok(DataType::Int64) => Ok(DType::I64),
        Ok(DataType::Int32) => Ok(DType::I32),
        Ok(DataType::Int8) => Ok(DType::I8),
        Ok(DataType::Uint8) => Ok(DType::U8),
        Ok(DataType::Bool) => Ok(DType::Bool),
        _ => Err(format!(
            "data type {} is not supported (qcc supports {SUPPORTED})",
            data_type_name(code)
        )),
    }
}

/// Whether an ONNX data type code is int4 or uint4.
pub(crate) fn is_four_bit(code: i32) -> bool {
    matches!(
        DataType::try_from(code),
        Ok(DataType::Int4 | DataType::Uint4)
    )
}

/// The element type of a graph input or output: [`dtype_of`], and int4 /
/// uint4 as int8 / uint8 — one value per byte at the C boundary (the
/// header declares them `int8_t` / `uint8_t`), the way qcc holds 4-bit
/// constants too.
pub(crate) fn io_dtype_of(code: i32) -> Result<DType, String> {
    match DataType::try_from(code) {
        Ok(DataType::Int4) => Ok(DType::I8),
        Ok(DataType::Uint4) => Ok(DType::U8),
        _ => dtype_of(code),
    }
}

/// The ONNX data type code of a qcc element type.
pub fn data_type_code(dtype: DType) -> i32 {
    let t = match dtype {
        DType::F32 => DataType::Float,
        DType::I64 => DataType::Int64,
        DType::I32 => DataType::Int32,
        DType::I8 => DataType::Int8,
        DType::U8 => DataType::Uint8,
        DType::Bool => DataType::Bool,
    };
    t as i32
}

/// Whether `numel` elements of the widest type (8 bytes) can be addressed.
pub(crate) fn fits_in_memory(numel: usize) -> bool {
    numel
        .checked_mul(8)
        .is_some_and(|b| b <= isize::MAX as usize)
}

/// Checked conversion of ONNX dims to a static shape.
pub(crate) fn shape_of(dims: &[i64]) -> Result<Vec<usize>, String> {
    let mut numel: usize = 1;
    let mut shape = Vec::with_capacity(dims.len());
    for &d in dims {
        let d = usize::try_from(d).map_err(|_| format!("has negative dim {d} in {dims:?}"))?;
        numel = numel
            .checked_mul(d)
            .filter(|&n| fits_in_memory(n))
            .ok_or_else(|| format!("shape {dims:?} has too many elements"))?;
        shape.push(d);
    }
    Ok(shape)
}

/// Converts a `TensorProto`. `base_dir` is the folder external data is read from.
pub(crate) fn to_tensor(t: &TensorProto, base_dir: &Path) -> Result<Tensor, Problem> {
    let name = t.name();
    let err = |msg: String| Problem::tensor(name, msg);
    if let Ok(four @ (DataType::Int4 | DataType::Uint4)) = DataType::try_from(t.data_type()) {
        return to_tensor_4bit(t, base_dir, four == DataType::Int4);
    }
    let dtype = dtype_of(t.data_type()).map_err(err)?;
    let shape = shape_of(&t.dims).map_err(err)?;
    if t.segment.is_some() {
        return Err(err("segmented tensors are not supported".into()));
    }
    let ty = TensorType::new(dtype, shape);
    let n = ty.numel();
    if t.data_location() == DataLocation::External {
        let bytes = external::read(t, base_dir, ty.byte_size())?;
        return from_bytes(&ty, &bytes).map_err(err);
    }
    if let Some(raw) = &t.raw_data {
        return from_bytes(&ty, raw).map_err(err);
    }
    let count = |len: usize, field: &str| -> Result<(), Problem> {
        if len == n {
            Ok(())
        } else {
            Err(err(format!(
                "{field} has {len} elements but shape {:?} needs {n}",
                ty.shape
            )))
        }
    };
    let data = match dtype {
        DType::F32 => {
            count(t.float_data.len(), "float_data")?;
            TensorData::F32(t.float_data.clone())
        }
        DType::I64 => {
            count(t.int64_data.len(), "int64_data")?;
            TensorData::I64(t.int64_data.clone())
        }
        DType::I32 => {
            count(t.int32_data.len(), "int32_data")?;
            TensorData::I32(t.int32_data.clone())
        }
        DType::I8 => {
            count(t.int32_data.len(), "int32_data")?;
            TensorData::I8(t.int32_data.iter().map(|&v| v as i8).collect())
        }
        DType::U8 => {
            count(t.int32_data.len(), "int32_data")?;
            TensorData::U8(t.int32_data.iter().map(|&v| v as u8).collect())
        }
        DType::Bool => {
            count(t.int32_data.len(), "int32_data")?;
            TensorData::Bool(t.int32_data.iter().map(|&v| v != 0).collect())
        }
    };
    Tensor::new(ty.shape.clone(), data).ok_or_else(|| err("element count mismatch".into()))
}

/// A constant int4 / uint4 tensor (two elements per byte, the first in the
/// low nibble: `raw_data`, external data, or `int32_data` holding one byte per
/// entry) as int8 / uint8 values. 4-bit weights then go wherever 8-bit ones
/// do (DequantizeLinear of constants).
fn to_tensor_4bit(t: &TensorProto, base_dir: &Path, signed: bool) -> Result<Tensor, Problem> {
    let name = t.name();
    let err = |msg: String| Problem::tensor(name, msg);
    let shape = shape_of(&t.dims).map_err(err)?;
    if t.segment.is_some() {
        return Err(err("segmented tensors are not supported".into()));
    }
    let n: usize = shape.iter().product();
    let bytes_needed = n.div_ceil(2);
    let bytes: Vec<u8> = if t.data_location() == DataLocation::External {
        external::read(t, base_dir, bytes_needed)?
    } else if let Some(raw) = &t.raw_data {
        raw.clone()
    } else {
        t.int32_data.iter().map(|&v| v as u8).collect()
    };
    if bytes.len() != bytes_needed {
        return Err(err(format!(
            "holds {} bytes but {n} 4-bit elements of shape {shape:?} need {bytes_needed}",
            bytes.len()
        )));
    }
    let nibble = |i: usize| (bytes[i / 2] >> (4 * (i % 2))) & 0x0f;
    let data = if signed {
        TensorData::I8((0..n).map(|i| ((nibble(i) << 4) as i8) >> 4).collect())
    } else {
        TensorData::U8((0..n).map(nibble).collect())
    };
    Tensor::new(shape, data).ok_or_else(|| err("element count mismatch".into()))
}

fn from_bytes(ty: &TensorType, bytes: &[u8]) -> Result<Tensor, String> {
    Tensor::from_le_bytes(ty, bytes).ok_or_else(|| {
        format!(
            "raw data has {} bytes but {ty} needs {}",
            bytes.len(),
            ty.byte_size()
        )
    })
}

/// Encodes a tensor as a `TensorProto` with little-endian `raw_data`.
pub fn to_proto(name: &str, t: &Tensor) -> TensorProto {
    TensorProto {
        name: Some(name.to_string()),
        dims: t.shape().iter().map(|&d| d as i64).collect(),
        data_type: Some(data_type_code(t.dtype())),
        raw_data: Some(t.to_le_bytes()),
        ..Default::default()
    }
}

/// A constant of type `ty` from values written as text (`--const-input`):
/// one per element, or one for every element. Integers must fit the type;
/// bools are `true`/`false`/`1`/`0`.
pub(crate) fn parse_values(ty: &qcc_ir::TensorType, text: &[String]) -> Result<Tensor, String> {
    let n = ty.numel();
    if text.len() != n && text.len() != 1 {
        return Err(format!(
            "{} values given for {ty} ({n} elements)",
            text.len()
        ));
    }
    let each = |i: usize| text[if text.len() == 1 { 0 } else { i }].trim();
    let int = |i: usize, lo: i64, hi: i64| -> Result<i64, String> {
        let s = each(i);
        s.parse::<i64>()
            .ok()
            .filter(|v| (lo..=hi).contains(v))
            .ok_or_else(|| format!("'{s}' is not a {} value", ty.dtype))
    };
    let data = match ty.dtype {
        DType::F32 => TensorData::F32(
            (0..n)
                .map(|i| {
                    let s = each(i);
                    s.parse::<f32>()
                        .map_err(|_| format!("'{s}' is not a number"))
                })
                .collect::<Result<_, _>>()?,
        ),
        DType::I64 => TensorData::I64(
            (0..n)
                .map(|i| int(i, i64::MIN, i64::MAX))
                .collect::<Result<_, _>>()?,
        ),
        DType::I32 => TensorData::I32(
            (0..n)
                .map(|i| int(i, i32::MIN as i64, i32::MAX as i64).map(|v| v as i32))
                .collect::<Result<_, _>>()?,
        ),
        DType::I8 => TensorData::I8(
            (0..n)
                .map(|i| int(i, -128, 127).map(|v| v as i8))
                .collect::<Result<_, _>>()?,
        ),
        DType::U8 => TensorData::U8(
            (0..n)
                .map(|i| int(i, 0, 255).map(|v| v as u8))
                .collect::<Result<_, _>>()?,
        ),
        DType::Bool => TensorData::Bool(
            (0..n)
                .map(|i| match each(i) {
                    "true" | "1" => Ok(true),
                    "false" | "0" => Ok(false),
                    s => Err(format!("'{s}' is not a bool (true, false, 1 or 0)")),
                })
                .collect::<Result<_, _>>()?,
        ),
    };
    Tensor::new(ty.shape.clone(), data).ok_or_else(|| format!("internal: values for {ty}"))
}
