//! ONNX frontend (stub: being written). Only this crate sees prost types.

use qcc_ir::{Graph, Tensor};
use std::collections::HashMap;
use std::path::Path;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum OnnxError {
    #[error("{0}")]
    Other(String),
}

/// Options of the importer.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// Static shapes for graph inputs, by ONNX input name (fixes symbolic dims).
    pub input_shapes: HashMap<String, Vec<usize>>,
}

/// Reads an ONNX model file and imports its main graph.
pub fn load_model(path: &Path, opts: &ImportOptions) -> Result<Graph, OnnxError> {
    let _ = (path, opts);
    Err(OnnxError::Other("importer not implemented yet".into()))
}

/// Lists every problem that keeps the model from compiling (unsupported ops
/// and attributes, missing shapes…), all at once. Empty means it would import.
pub fn check_model(path: &Path, opts: &ImportOptions) -> Result<Vec<String>, OnnxError> {
    let _ = (path, opts);
    Err(OnnxError::Other("importer not implemented yet".into()))
}

/// Reads a serialized ONNX `TensorProto` (`input_0.pb`, `output_0.pb`): its name and value.
pub fn read_tensor_pb(path: &Path) -> Result<(String, Tensor), OnnxError> {
    let _ = path;
    Err(OnnxError::Other("importer not implemented yet".into()))
}
