//! Reading and decoding model files, and finding the default-domain opset.

use crate::error::{OnnxError, Problem};
use crate::proto::ModelProto;
use prost::Message;
use std::path::Path;

/// Lowest and highest default-domain opset versions the importer handles.
///
/// Opsets 24 and 25 changed the ops qcc supports (Cast, Constant, Flatten,
/// Identity, Pad, Reshape, Shape, Squeeze, Transpose, Unsqueeze…) only by
/// admitting new element types (float8/4-bit variants), which the tensor
/// reader rejects on their own; the semantics for qcc's types are unchanged.
pub const MIN_OPSET: i64 = 1;
pub const MAX_OPSET: i64 = 25;

/// Reads a whole file, mapping I/O errors to an error naming it. Only
/// regular files are read: a FIFO or device would block or never end.
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, OnnxError> {
    let io = |source| OnnxError::Io {
        file: path.display().to_string(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_file() {
        let what = if meta.is_dir() {
            "is a folder, not a model file"
        } else {
            "is not a regular file (a FIFO, socket or device)"
        };
        return Err(io(std::io::Error::other(what)));
    }
    std::fs::read(path).map_err(io)
}

/// Decodes a protobuf message, mapping decode errors to an error naming the file.
pub(crate) fn decode<M: Message + Default>(path: &Path, bytes: &[u8]) -> Result<M, OnnxError> {
    M::decode(bytes).map_err(|e| OnnxError::Decode {
        file: path.display().to_string(),
        msg: e.to_string(),
    })
}

/// Reads and decodes an ONNX model file.
pub(crate) fn read_model(path: &Path) -> Result<ModelProto, OnnxError> {
    let bytes = read_file(path)?;
    decode(path, &bytes)
}

/// The newest ONNX IR version qcc reads (that of the onnx 1.22 release).
pub(crate) const MAX_IR_VERSION: i64 = 13;

/// Whether a node or opset domain is the default ONNX domain.
pub(crate) fn is_default_domain(domain: &str) -> bool {
    domain.is_empty() || domain == "ai.onnx"
}

/// The model's opset version for the default domain, checked to be one qcc handles.
pub(crate) fn default_opset(model: &ModelProto) -> Result<i64, Problem> {
    let ir = model.ir_version();
    if !(1..=MAX_IR_VERSION).contains(&ir) {
        return Err(Problem::Graph(if model.ir_version.is_none() {
            "the model has no ir_version".to_string()
        } else {
            format!("ir_version {ir} is out of range (qcc reads 1 through {MAX_IR_VERSION})")
        }));
    }
    let versions: Vec<i64> = model
        .opset_import
        .iter()
        .filter(|o| is_default_domain(o.domain()))
        .map(|o| o.version())
        .collect();
    if let [a, b, ..] = versions[..] {
        return Err(Problem::Graph(format!(
            "the default ONNX domain is imported twice (opsets {a} and {b})"
        )));
    }
    let found = versions.first().copied();
    let version = match found {
        Some(v) => v,
        // IR versions before 3 had no opset_import: such models use opset 1.
        None if model.ir_version() < 3 => 1,
        None => {
            return Err(Problem::Graph(
                "the model imports no opset for the default ONNX domain".into(),
            ))
        }
    };
    if !(MIN_OPSET..=MAX_OPSET).contains(&version) {
        return Err(Problem::Graph(format!(
            "default-domain opset {version} is not supported (qcc handles opsets {MIN_OPSET} through {MAX_OPSET})"
        )));
    }
    Ok(version)
}
