//! qcc's ONNX frontend: decodes ONNX protobuf files with prost types
//! generated from our own `proto/onnx.proto` and imports the main graph into
//! qcc's IR. Only this crate deals with protobuf; the rest of qcc sees a
//! [`Graph`].
//!
//! Modules: [`proto`] (generated types), `model` (reading, opsets),
//! `tensor` and `external` (tensor data), `attrs` (attribute access),
//! `topo` (node order), `signature` (graph input/output types), `import`
//! (the graph walk), `node` (what op builders see), `consteval`
//! (compile-time values of parameter inputs), `ops` (one module per op
//! family), `check` (all problems at once) and `export` (IR → ONNX for
//! `--emit onnx`).

mod attrs;
mod check;
mod consteval;
mod error;
mod export;
mod external;
mod import;
mod model;
mod node;
mod ops;
pub mod proto;
mod signature;
mod tensor;
mod topo;

pub use error::{OnnxError, Problem};
pub use export::{export_model, export_model_bytes, ExportError, EXPORT_OPSET};
pub use model::{MAX_OPSET, MIN_OPSET};

use qcc_ir::{Graph, Tensor};
use std::collections::HashMap;
use std::path::Path;

/// Options of the importer.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// Static shapes for graph inputs, by ONNX input name (fixes symbolic dims).
    pub input_shapes: HashMap<String, Vec<usize>>,
    /// Graph inputs baked in as constants (`--const-input`), by name: the
    /// values, one per element of the input, as written (`1`, `0.5`,
    /// `true`), converted to the input's element type.
    pub const_inputs: HashMap<String, Vec<String>>,
}

/// Reads an ONNX model file and imports its main graph.
pub fn load_model(path: &Path, opts: &ImportOptions) -> Result<Graph, OnnxError> {
    Ok(load_model_noted(path, opts)?.0)
}

/// [`load_model`], with the notes the import has for the user (a symbolic
/// batch dim set to 1, a declared output shape the computed one overrides),
/// one line each, for the CLI to print.
pub fn load_model_noted(
    path: &Path,
    opts: &ImportOptions,
) -> Result<(Graph, Vec<String>), OnnxError> {
    let model = model::read_model(path)?;
    let imported =
        import::import(&model, path, opts, false).map_err(|p| OnnxError::invalid(path, p))?;
    Ok((imported.graph, imported.notes))
}

/// Lists every problem that keeps the model from compiling (unsupported ops
/// and attributes, missing shapes…), all at once. Empty means it would import.
/// Messages do not repeat the file name; a file that cannot be read or
/// decoded is an error.
pub fn check_model(path: &Path, opts: &ImportOptions) -> Result<Vec<String>, OnnxError> {
    let model = model::read_model(path)?;
    Ok(check::check(&model, path, opts))
}

/// Reads a serialized ONNX `TensorProto` (`input_0.pb`, `output_0.pb`): its name and value.
pub fn read_tensor_pb(path: &Path) -> Result<(String, Tensor), OnnxError> {
    let bytes = model::read_file(path)?;
    let t: proto::TensorProto = model::decode(path, &bytes)?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let value = tensor::to_tensor(&t, dir).map_err(|p| OnnxError::invalid(path, p))?;
    Ok((t.name().to_string(), value))
}

/// Encodes a tensor as an ONNX `TensorProto` (raw little-endian data), e.g.
/// to write `input_0.pb` files or initializers.
pub fn tensor_to_proto(name: &str, t: &Tensor) -> proto::TensorProto {
    tensor::to_proto(name, t)
}
