//! Calibration data for `--quantize int8`: loads sample sets from a `.npy`
//! file, a `.npz` archive or a folder of ONNX `input_*.pb` files into the form
//! `PassContext::calibration` takes: sample-major, one tensor per graph input
//! in input order, each with the input's static shape.
//!
//! **Shapes.** An input of shape `S` (rank r) takes an array of shape
//! - `[N, S…]` (rank r + 1): `N` samples, the leading axis is the sample axis;
//! - `[M, S[1..]…]` (rank r ≥ 1): `M` rows of the input's batch axis, grouped
//!   in file order into `M / S[0]` samples of `S[0]` rows (`M` must be a
//!   multiple of `S[0]`). For the usual batch-1 input `[1, 3, 224, 224]` this
//!   is a plain stack of images `[N, 3, 224, 224]`.
//!
//! `.pb` sample files must have exactly the input's shape.
//!
//! **Element types.** A float32 input takes float32 or float64 arrays
//! (float64, numpy's default, is rounded to the nearest float32); an int64
//! input takes int64 or int32; an int32 input int32. Every float value must
//! be finite (NaN and ±inf would poison the ranges).
//!
//! **Sources.** A `.npy` feeds a single-input model. A `.npz` holds one array
//! per input name (or, as `np.savez` names positional arrays, `arr_0`,
//! `arr_1`, … in input order), all with the same sample count. A folder holds
//! `input_0.pb, input_1.pb, …` (one sample) and/or `test_data_set_*/`
//! subfolders of them (one sample each), as in the ONNX test-data layout.
//! The file type is recognized by content, not by extension.
//!
//! Every error is one line naming the file (and the array or input).

use anyhow::{anyhow, Result};
use npyz::{DType as NpyDType, NpyFile, Order, TypeChar};
use qcc_ir::{numel, DType, Graph, Tensor, TensorData, TensorType};
use qcc_passes::CalibrationMethod;
use std::fs;
use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};

#[cfg(test)]
mod tests;

/// Calibration samples: `samples[s][i]` is input `i` of sample `s`.
pub type Samples = Vec<Vec<Tensor>>;

/// A graph input as calibration data must match it.
#[derive(Clone, Debug, PartialEq)]
pub struct InputSpec {
    pub name: String,
    pub ty: TensorType,
}

/// The inputs of a graph, in input order.
pub fn input_specs(g: &Graph) -> Vec<InputSpec> {
    g.inputs()
        .iter()
        .filter_map(|&id| {
            let n = g.node(id);
            n.outputs.first().map(|ty| InputSpec {
                name: n.name.clone(),
                ty: ty.clone(),
            })
        })
        .collect()
}

/// Loads calibration samples for a graph with the given inputs from a `.npy`
/// file, a `.npz` archive or a folder of `input_*.pb` sets.
pub fn load(path: &Path, inputs: &[InputSpec]) -> Result<Samples> {
    let named = |msg: String| anyhow!("calibration data {}: {msg}", path.display());
    if inputs.is_empty() {
        return Err(named("the model has no inputs to calibrate".into()));
    }
    let meta = fs::metadata(path).map_err(|e| named(format!("cannot read: {e}")))?;
    if meta.is_dir() {
        return load_dir(path, inputs).map_err(|msg| anyhow!("calibration data {msg}"));
    }
    if !meta.is_file() {
        return Err(named(
            "not a regular file (a FIFO, socket or device)".into(),
        ));
    }
    let bytes = fs::read(path).map_err(|e| named(format!("cannot read: {e}")))?;
    let samples = if bytes.starts_with(NPY_MAGIC) {
        load_npy(&bytes, inputs)
    } else if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
        load_npz(bytes, inputs)
    } else {
        Err("not a .npy file, a .npz archive or a folder of input_*.pb files".into())
    };
    samples.map_err(named)
}

/// Checks samples given in memory the way [`load`] checks files: at least
/// one sample, one tensor per input of the input's type, finite values.
pub fn check_samples(samples: &Samples, inputs: &[InputSpec]) -> Result<()> {
    if samples.is_empty() {
        return Err(anyhow!("calibration data holds zero samples"));
    }
    for (s, row) in samples.iter().enumerate() {
        if row.len() != inputs.len() {
            return Err(anyhow!(
                "calibration sample #{s} has {} tensors, the model has {} input(s) ({})",
                row.len(),
                inputs.len(),
                names(inputs)
            ));
        }
        for (t, spec) in row.iter().zip(inputs) {
            let at = |msg: String| anyhow!("calibration sample #{s}, input '{}': {msg}", spec.name);
            if !t.ty().same_layout(&spec.ty) {
                return Err(at(format!("tensor {} does not fit {}", t.ty(), spec.ty)));
            }
            if let Some((k, x)) = first_non_finite(t.data()) {
                return Err(at(format!("element {} is {x}", index_str(k, t.shape()))));
            }
        }
    }
    Ok(())
}

/// Parses `--calibration`: `minmax`, `percentile` (99.99), `percentile=P`
/// (50 < P ≤ 100: the range is `[P(100 − p), P(p)]`), `entropy` or `mse`.
pub fn parse_method(s: &str) -> Result<CalibrationMethod, String> {
    const KNOWN: &str = "minmax, percentile[=P], entropy, mse";
    match s {
        "minmax" => Ok(CalibrationMethod::MinMax),
        "percentile" => Ok(CalibrationMethod::Percentile(99.99)),
        "entropy" => Ok(CalibrationMethod::Entropy),
        "mse" => Ok(CalibrationMethod::Mse),
        _ => match s.strip_prefix("percentile=") {
            Some(p) => p
                .parse::<f64>()
                .ok()
                .filter(|p| *p > 50.0 && *p <= 100.0)
                .map(CalibrationMethod::Percentile)
                .ok_or_else(|| format!("'{p}' is not a percentile in (50, 100]")),
            None => Err(format!("unknown method '{s}' (known: {KNOWN})")),
        },
    }
}

const NPY_MAGIC: &[u8] = b"\x93NUMPY";

/// One array read from a `.npy` file, in C order.
#[derive(Debug)]
struct Array {
    shape: Vec<usize>,
    data: ArrayData,
    /// numpy's type string, for messages (`<f4`).
    descr: String,
}

#[derive(Debug)]
enum ArrayData {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I64(Vec<i64>),
    I32(Vec<i32>),
}

fn load_npy(bytes: &[u8], inputs: &[InputSpec]) -> Result<Samples, String> {
    let spec = match inputs {
        [one] => one,
        _ => {
            return Err(format!(
                "a .npy file holds one array, but the model has {} inputs ({}); \
                 use a .npz archive with one array per input name",
                inputs.len(),
                names(inputs)
            ))
        }
    };
    let arr = read_npy(bytes)?;
    Ok(to_samples(arr, spec)?
        .into_iter()
        .map(|t| vec![t])
        .collect())
}

fn load_npz(bytes: Vec<u8>, inputs: &[InputSpec]) -> Result<Samples, String> {
    // The zip reader keeps one entry per name (the last): numpy would load
    // that one too, silently. Refuse an archive that names a member twice.
    if let Some(name) = duplicate_zip_name(&bytes) {
        let name = npyz::npz::array_name_from_file_name(&name).unwrap_or(&name);
        return Err(format!("array '{name}' appears twice"));
    }
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| format!("not a valid .npz archive: {e}"))?;
    let mut arrays: Vec<(String, Array)> = vec![];
    for i in 0..zip.len() {
        let mut f = zip
            .by_index(i)
            .map_err(|e| format!("not a valid .npz archive: entry {i}: {e}"))?;
        let file_name = f
            .name()
            .map_err(|e| format!("not a valid .npz archive: entry {i}: {e}"))?
            .into_owned();
        let Some(name) = npyz::npz::array_name_from_file_name(&file_name).map(str::to_string)
        else {
            continue; // numpy ignores entries that are not arrays too
        };
        if arrays.iter().any(|(n, _)| *n == name) {
            return Err(format!("array '{name}' appears twice"));
        }
        let declared = f.size();
        let unpack = |e: std::io::Error| format!("array '{name}': cannot unpack: {e}");
        // Name and header first: a member no input takes is refused before
        // its data is unpacked (a small archive can declare gigabytes).
        let slot = inputs
            .iter()
            .position(|i| i.name == name)
            .or_else(|| positional_slot(&name, inputs.len()))
            .ok_or_else(|| not_an_input(&name, inputs))?;
        let mut buf = vec![];
        (&mut f)
            .take(NPY_HEAD_MAX.min(declared.saturating_add(1)))
            .read_to_end(&mut buf)
            .map_err(unpack)?;
        let spec = &inputs[slot];
        if let Some(shape) = npy_header_shape(&buf) {
            if !takes(&spec.ty.shape, &shape) {
                return Err(format!(
                    "array '{name}': shape {shape:?} (its header) does not fit input '{}' {:?}",
                    spec.name, spec.ty.shape
                ));
            }
        }
        let rest = declared.saturating_add(1).saturating_sub(buf.len() as u64);
        (&mut f).take(rest).read_to_end(&mut buf).map_err(unpack)?;
        if buf.len() as u64 != declared {
            return Err(format!(
                "array '{name}': unpacks to {} bytes, the archive says {declared}",
                buf.len()
            ));
        }
        let arr = read_npy(&buf).map_err(|e| format!("array '{name}': {e}"))?;
        arrays.push((name, arr));
    }
    if arrays.is_empty() {
        return Err("the archive holds no .npy arrays".into());
    }
    let slots = match_arrays(&arrays, inputs)?;
    let mut per_input: Vec<Option<Vec<Tensor>>> = vec![None; inputs.len()];
    let mut first: Option<(String, usize)> = None;
    for ((name, arr), slot) in arrays.into_iter().zip(slots) {
        let samples = to_samples(arr, &inputs[slot]).map_err(|e| format!("array '{name}': {e}"))?;
        match &first {
            Some((other, n)) if *n != samples.len() => {
                return Err(format!(
                    "array '{name}' has {} samples but array '{other}' has {n}",
                    samples.len()
                ))
            }
            Some(_) => {}
            None => first = Some((name, samples.len())),
        }
        per_input[slot] = Some(samples);
    }
    let columns: Vec<Vec<Tensor>> = per_input.into_iter().flatten().collect();
    Ok(transpose(columns))
}

/// Which input each array of a `.npz` feeds; every input must get exactly one.
fn match_arrays(arrays: &[(String, Array)], inputs: &[InputSpec]) -> Result<Vec<usize>, String> {
    let by_name = |n: &str| inputs.iter().position(|i| i.name == n);
    let positional = |n: &str| positional_slot(n, inputs.len());
    let all_positional = arrays.iter().all(|(n, _)| by_name(n).is_none())
        && arrays.iter().all(|(n, _)| positional(n).is_some());
    let mut slots = vec![];
    for (n, _) in arrays {
        let slot = if all_positional {
            positional(n)
        } else {
            by_name(n)
        };
        let slot = slot.ok_or_else(|| not_an_input(n, inputs))?;
        slots.push(slot);
    }
    if let Some(missing) = (0..inputs.len()).find(|i| !slots.contains(i)) {
        let have: Vec<&str> = arrays.iter().map(|(n, _)| n.as_str()).collect();
        return Err(format!(
            "no array for input '{}' (arrays: {})",
            inputs[missing].name,
            have.join(", ")
        ));
    }
    Ok(slots)
}

/// The input numpy's positional name `arr_K` stands for (`K < inputs`).
fn positional_slot(n: &str, inputs: usize) -> Option<usize> {
    n.strip_prefix("arr_")
        .and_then(|k| k.parse::<usize>().ok())
        .filter(|&k| k < inputs && n == format!("arr_{k}"))
}

fn not_an_input(n: &str, inputs: &[InputSpec]) -> String {
    format!(
        "array '{n}' is not an input of the model (inputs: {})",
        names(inputs)
    )
}

/// Input-major columns → sample-major rows (all columns have the same length).
fn transpose(columns: Vec<Vec<Tensor>>) -> Samples {
    let n = columns.first().map_or(0, Vec::len);
    let mut rows: Samples = (0..n).map(|_| Vec::with_capacity(columns.len())).collect();
    for col in columns {
        for (row, t) in rows.iter_mut().zip(col) {
            row.push(t);
        }
    }
    rows
}

fn names(inputs: &[InputSpec]) -> String {
    inputs
        .iter()
        .map(|i| i.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The first file name a zip archive's central directory lists twice, read
/// from the end-of-central-directory record (`None` for an archive this
/// cannot read, which the zip reader then reports, or a ZIP64 one).
fn duplicate_zip_name(z: &[u8]) -> Option<String> {
    const EOCD: [u8; 4] = [0x50, 0x4b, 0x05, 0x06];
    const CDFH: [u8; 4] = [0x50, 0x4b, 0x01, 0x02];
    let u16_at = |i: usize| Some(u16::from_le_bytes(z.get(i..i + 2)?.try_into().ok()?) as usize);
    let u32_at = |i: usize| Some(u32::from_le_bytes(z.get(i..i + 4)?.try_into().ok()?) as usize);
    // The record is 22 bytes plus a comment of at most 65535.
    let lo = z.len().saturating_sub(22 + 65_535);
    let e = (lo..=z.len().checked_sub(22)?)
        .rev()
        .find(|&i| z[i..i + 4] == EOCD)?;
    let (count, mut at) = (u16_at(e + 10)?, u32_at(e + 16)?);
    let mut seen = std::collections::HashSet::new();
    for _ in 0..count {
        if z.get(at..at + 4)? != CDFH {
            return None;
        }
        let (n, x, c) = (u16_at(at + 28)?, u16_at(at + 30)?, u16_at(at + 32)?);
        let name = String::from_utf8_lossy(z.get(at + 46..at + 46 + n)?).into_owned();
        if !seen.insert(name.clone()) {
            return Some(name);
        }
        at += 46 + n + x + c;
    }
    None
}

/// Bytes of a `.npz` member read before its header is checked: the magic,
/// version and length fields and the longest version-1 header.
const NPY_HEAD_MAX: u64 = 12 + 65_535;

/// Whether an array of `shape` can hold samples of an input of shape `want`
/// (`[N, want…]`, or `[M, want[1..]…]` rows of its batch axis; see
/// `to_samples`).
fn takes(want: &[usize], shape: &[u64]) -> bool {
    let eq = |a: &[u64], b: &[usize]| {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| *x == *y as u64)
    };
    (shape.len() == want.len() + 1 && eq(&shape[1..], want))
        || (!want.is_empty() && shape.len() == want.len() && eq(&shape[1..], &want[1..]))
}

/// The dimensions a `.npy` header (at the start of `bytes`) declares, when
/// the header is all there and its shape reads as a tuple of integers.
fn npy_header_shape(bytes: &[u8]) -> Option<Vec<u64>> {
    if !bytes.starts_with(NPY_MAGIC) {
        return None;
    }
    let (len, start) = match *bytes.get(6)? {
        1 => (
            u16::from_le_bytes([*bytes.get(8)?, *bytes.get(9)?]) as usize,
            10usize,
        ),
        2 | 3 => (
            u32::from_le_bytes(bytes.get(8..12)?.try_into().ok()?) as usize,
            12,
        ),
        _ => return None,
    };
    let text = String::from_utf8_lossy(bytes.get(start..start.checked_add(len)?)?);
    let at = text.find("'shape'").or_else(|| text.find("\"shape\""))?;
    let rest = &text[at..];
    let (open, close) = (rest.find('(')?, rest.find(')')?);
    if close < open {
        return None;
    }
    rest[open + 1..close]
        .split(',')
        .map(|d| d.trim().trim_end_matches('L'))
        .filter(|d| !d.is_empty())
        .map(|d| d.parse().ok())
        .collect()
}

/// Checks the shape in a `.npy` header before npyz sees it (npyz multiplies
/// the dimensions without overflow checks); returns where the data starts.
fn precheck_npy_header(bytes: &[u8]) -> Result<usize, String> {
    let truncated = || "truncated .npy header".to_string();
    let version = *bytes.get(6).ok_or_else(truncated)?;
    let (len, start) = match version {
        1 => {
            let b = bytes.get(8..10).ok_or_else(truncated)?;
            (u16::from_le_bytes([b[0], b[1]]) as usize, 10usize)
        }
        2 | 3 => {
            let b = bytes.get(8..12).ok_or_else(truncated)?;
            (u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize, 12)
        }
        v => return Err(format!("unsupported .npy format version {v}")),
    };
    let data_start = start.saturating_add(len);
    let header = bytes.get(start..data_start).ok_or_else(truncated)?;
    let text = String::from_utf8_lossy(header);
    let Some(at) = text.find("'shape'").or_else(|| text.find("\"shape\"")) else {
        return Ok(data_start); // npyz reports the missing key
    };
    let rest = &text[at..];
    let (Some(open), Some(close)) = (rest.find('('), rest.find(')')) else {
        return Ok(data_start);
    };
    if close < open {
        return Ok(data_start);
    }
    let mut product: u64 = 1;
    let mut empty = false;
    for dim in rest[open + 1..close].split(',') {
        let dim = dim.trim().trim_end_matches('L');
        if dim.is_empty() {
            continue;
        }
        let Ok(d) = dim.parse::<u64>() else {
            return Ok(data_start);
        };
        empty |= d == 0;
        if d != 0 {
            product = product
                .checked_mul(d)
                .ok_or_else(|| format!("array shape ({}) is too large", &rest[open + 1..close]))?;
        }
    }
    // Every element takes at least one byte; this also keeps npyz's
    // stride products far from overflow.
    if !empty && product > bytes.len() as u64 {
        return Err(format!(
            "truncated: the header declares {product} elements but the file has {} bytes",
            bytes.len()
        ));
    }
    Ok(data_start)
}

fn read_npy(bytes: &[u8]) -> Result<Array, String> {
    if !bytes.starts_with(NPY_MAGIC) {
        return Err("not a .npy file".into());
    }
    let data_start = precheck_npy_header(bytes)?;
    // npyz's parse errors run over several lines: one line here.
    let f = NpyFile::new(bytes).map_err(|e| {
        let words: Vec<String> = e
            .to_string()
            .split_whitespace()
            .map(str::to_string)
            .collect();
        format!("not a valid .npy file: {}", words.join(" "))
    })?;
    let descr = f.dtype().descr();
    let (kind, size) = match f.dtype() {
        NpyDType::Plain(ts) => (ts.type_char(), ts.size_field()),
        _ => return Err(format!("element type {descr} is not supported")),
    };
    let shape = f
        .shape()
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| format!("dimension {d} is too large")))
        .collect::<Result<Vec<usize>, String>>()?;
    let n = f.len();
    let available = bytes.len().saturating_sub(data_start) as u64;
    if n.checked_mul(size).is_none_or(|b| b > available) {
        return Err(format!(
            "truncated: {n} elements of {descr} do not fit in {available} bytes"
        ));
    }
    let fortran = f.order() == Order::Fortran;
    let bad = |e: std::io::Error| format!("cannot read the data: {e}");
    let data = match (kind, size) {
        (TypeChar::Float, 4) => ArrayData::F32(f.into_vec().map_err(bad)?),
        (TypeChar::Float, 8) => ArrayData::F64(f.into_vec().map_err(bad)?),
        (TypeChar::Int, 8) => ArrayData::I64(f.into_vec().map_err(bad)?),
        (TypeChar::Int, 4) => ArrayData::I32(f.into_vec().map_err(bad)?),
        _ => {
            return Err(format!(
                "element type {descr} is not supported (use float32, float64, int64 or int32)"
            ))
        }
    };
    let data = if fortran {
        match data {
            ArrayData::F32(v) => ArrayData::F32(fortran_to_c(&v, &shape)),
            ArrayData::F64(v) => ArrayData::F64(fortran_to_c(&v, &shape)),
            ArrayData::I64(v) => ArrayData::I64(fortran_to_c(&v, &shape)),
            ArrayData::I32(v) => ArrayData::I32(fortran_to_c(&v, &shape)),
        }
    } else {
        data
    };
    Ok(Array { shape, data, descr })
}

/// Reorders column-major elements into row-major order.
fn fortran_to_c<T: Copy>(v: &[T], shape: &[usize]) -> Vec<T> {
    // Fortran strides: 1, d0, d0*d1, …
    let mut strides = Vec::with_capacity(shape.len());
    let mut s = 1usize;
    for &d in shape {
        strides.push(s);
        s = s.saturating_mul(d);
    }
    let mut coords = vec![0usize; shape.len()];
    let mut out = Vec::with_capacity(v.len());
    for _ in 0..v.len() {
        let at: usize = coords.iter().zip(&strides).map(|(c, s)| c * s).sum();
        out.push(v[at]);
        for d in (0..shape.len()).rev() {
            coords[d] += 1;
            if coords[d] < shape[d] {
                break;
            }
            coords[d] = 0;
        }
    }
    out
}

/// Splits an array into samples of `spec`'s shape (see the module docs).
fn to_samples(arr: Array, spec: &InputSpec) -> Result<Vec<Tensor>, String> {
    let want = &spec.ty.shape;
    let got = &arr.shape;
    let n_samples = if got.len() == want.len() + 1 && got[1..] == want[..] {
        got[0]
    } else if !want.is_empty() && got.len() == want.len() && got[1..] == want[1..] {
        let batch = want[0];
        if batch == 0 || !got[0].is_multiple_of(batch) {
            return Err(format!(
                "{} rows do not make whole samples of input '{}' {:?} (batch {batch})",
                got[0], spec.name, want
            ));
        }
        got[0] / batch
    } else {
        let rows = if want.is_empty() {
            String::new()
        } else {
            format!(" or [M, {}] (M rows of the batch axis)", dims(&want[1..]))
        };
        return Err(format!(
            "shape {got:?} does not fit input '{}' {want:?}: expected [N, {}] (N samples){rows}",
            spec.name,
            dims(want)
        ));
    };
    if n_samples == 0 {
        return Err("holds zero samples".into());
    }
    let data = convert(arr.data, &arr.descr, got, spec)?;
    if let Some((i, x)) = first_non_finite(&data) {
        return Err(format!("element {} is {x}", index_str(i, got)));
    }
    split(data, n_samples, &spec.ty)
}

fn dims(v: &[usize]) -> String {
    v.iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Converts to the input's element type, or explains what it accepts.
/// A float64 NaN or infinity stays one in float32, so [`first_non_finite`]
/// reports it; finite values beyond float32's range are reported here.
fn convert(
    data: ArrayData,
    descr: &str,
    shape: &[usize],
    spec: &InputSpec,
) -> Result<TensorData, String> {
    let mismatch = |accepts: &str| {
        format!(
            "element type {descr} does not fit input '{}' of type {} (use {accepts})",
            spec.name,
            spec.ty.dtype.name()
        )
    };
    Ok(match (spec.ty.dtype, data) {
        (DType::F32, ArrayData::F32(v)) => TensorData::F32(v),
        (DType::F32, ArrayData::F64(v)) => {
            if let Some(i) = v.iter().position(|x| x.is_finite() && (*x as f32).is_infinite()) {
                return Err(format!(
                    "element {} = {:e} is out of float32 range",
                    index_str(i, shape),
                    v[i]
                ));
            }
            TensorData::F32(v.into_iter().map(|x| x as f32).collect())
        }
        (DType::F32, _) => return Err(mismatch("float32 or float64")),
        (DType::I64, ArrayData::I64(v)) => TensorData::I64(v),
        (DType::I64, ArrayData::I32(v)) => TensorData::I64(v.into_iter().map(i64::from).collect()),
        (DType::I64, _) => return Err(mismatch("int64 or int32")),
        (DType::I32, ArrayData::I32(v)) => TensorData::I32(v),
        (DType::I32, _) => return Err(mismatch("int32")),
        (other, _) => {
            return Err(format!(
                "input '{}' has element type {}; calibration data can feed float32, int64 and int32 inputs",
                spec.name,
                other.name()
            ))
        }
    })
}

/// The first NaN or infinity, as (flat index, "NaN" / "inf" / "-inf").
fn first_non_finite(data: &TensorData) -> Option<(usize, &'static str)> {
    let TensorData::F32(v) = data else {
        return None;
    };
    v.iter().position(|x| !x.is_finite()).map(|i| {
        let x = v[i];
        let what = if x.is_nan() {
            "NaN"
        } else if x > 0.0 {
            "inf"
        } else {
            "-inf"
        };
        (i, what)
    })
}

/// `[i, j, …]` of a flat row-major index.
fn index_str(mut flat: usize, shape: &[usize]) -> String {
    let mut idx = vec![0usize; shape.len()];
    for (d, &n) in shape.iter().enumerate().rev() {
        if n > 0 {
            idx[d] = flat % n;
            flat /= n;
        }
    }
    format!("{idx:?}")
}

/// Cuts flat data into `n` tensors of type `ty`.
fn split(data: TensorData, n: usize, ty: &TensorType) -> Result<Vec<Tensor>, String> {
    let per = numel(&ty.shape);
    let chunks: Vec<TensorData> = match data {
        TensorData::F32(v) => chunk(v, per, n, TensorData::F32),
        TensorData::I64(v) => chunk(v, per, n, TensorData::I64),
        TensorData::I32(v) => chunk(v, per, n, TensorData::I32),
        other => return Err(format!("internal: cannot split {}", other.dtype().name())),
    };
    chunks
        .into_iter()
        .map(|d| {
            Tensor::new(ty.shape.clone(), d)
                .ok_or_else(|| format!("internal: sample does not have {} elements", per))
        })
        .collect()
}

fn chunk<T: Clone>(
    v: Vec<T>,
    per: usize,
    n: usize,
    wrap: fn(Vec<T>) -> TensorData,
) -> Vec<TensorData> {
    if per == 0 {
        return (0..n).map(|_| wrap(vec![])).collect();
    }
    v.chunks(per).map(|c| wrap(c.to_vec())).collect()
}

/// Loads `input_*.pb` sample sets from a folder; messages name the file.
fn load_dir(dir: &Path, inputs: &[InputSpec]) -> Result<Samples, String> {
    let mut sets: Vec<PathBuf> = vec![];
    if dir.join("input_0.pb").is_file() {
        sets.push(dir.to_path_buf());
    }
    let entries = fs::read_dir(dir).map_err(|e| format!("{}: cannot list: {e}", dir.display()))?;
    let mut subdirs: Vec<(u64, String, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_string();
            let n = name.strip_prefix("test_data_set_")?.parse::<u64>().ok()?;
            e.path().is_dir().then(|| (n, name, e.path()))
        })
        .collect();
    subdirs.sort();
    sets.extend(subdirs.into_iter().map(|(_, _, p)| p));
    if sets.is_empty() {
        return Err(format!(
            "{}: holds no input_0.pb and no test_data_set_*/ folder",
            dir.display()
        ));
    }
    sets.iter().map(|set| load_set(set, inputs)).collect()
}

/// One sample: `input_0.pb … input_{k-1}.pb` of a folder.
fn load_set(set: &Path, inputs: &[InputSpec]) -> Result<Vec<Tensor>, String> {
    let count = (0..)
        .take_while(|i| set.join(format!("input_{i}.pb")).is_file())
        .count();
    if count != inputs.len() {
        return Err(format!(
            "{}: holds {count} input_*.pb file(s), the model has {} input(s) ({})",
            set.display(),
            inputs.len(),
            names(inputs)
        ));
    }
    inputs
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let file = set.join(format!("input_{i}.pb"));
            let (name, t) = qcc_onnx::read_tensor_pb(&file).map_err(|e| e.to_string())?;
            let at = |msg: String| format!("{}: {msg}", file.display());
            if let Some(j) = inputs.iter().position(|s| s.name == name) {
                if j != i && !name.is_empty() {
                    return Err(at(format!(
                        "holds input '{name}' (#{j}) where input '{}' (#{i}) belongs",
                        spec.name
                    )));
                }
            }
            if t.dtype() != spec.ty.dtype || t.shape() != &spec.ty.shape[..] {
                return Err(at(format!(
                    "tensor {} does not fit input '{}' {}",
                    t.ty(),
                    spec.name,
                    spec.ty
                )));
            }
            if let Some((k, x)) = first_non_finite(t.data()) {
                return Err(at(format!("element {} is {x}", index_str(k, t.shape()))));
            }
            Ok(t)
        })
        .collect()
}
