//! Error types: [`Problem`] says what is wrong inside a model (without the
//! file name); [`OnnxError`] is what the public functions return and always
//! names the file.

use std::fmt;
use thiserror::Error;

/// One thing wrong with a model, located by node, tensor or graph.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// A node's problem: `node 'conv1' (Conv): …`.
    Node {
        node: String,
        op: String,
        msg: String,
    },
    /// A tensor's problem (initializer, Constant value, external data): `tensor 'w': …`.
    Tensor { tensor: String, msg: String },
    /// Anything else (graph inputs and outputs, opsets, cycles…).
    Graph(String),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Node { node, op, msg } => write!(f, "node '{node}' ({op}): {msg}"),
            Problem::Tensor { tensor, msg } => write!(f, "tensor '{tensor}': {msg}"),
            Problem::Graph(msg) => f.write_str(msg),
        }
    }
}

impl Problem {
    pub(crate) fn tensor(tensor: &str, msg: impl Into<String>) -> Problem {
        Problem::Tensor {
            tensor: tensor.to_string(),
            msg: msg.into(),
        }
    }
}

/// Errors of the ONNX frontend. Every message names the file.
#[derive(Debug, Error)]
pub enum OnnxError {
    /// The file could not be read.
    #[error("{file}: cannot read the file: {source}")]
    Io {
        file: String,
        source: std::io::Error,
    },
    /// The bytes are not a protobuf message of the expected kind.
    #[error("{file}: not a valid ONNX protobuf file: {msg}")]
    Decode { file: String, msg: String },
    /// The file decodes but the model cannot be imported.
    #[error("{file}: {problem}")]
    Invalid { file: String, problem: Problem },
}

impl OnnxError {
    pub(crate) fn invalid(file: &std::path::Path, problem: Problem) -> OnnxError {
        OnnxError::Invalid {
            file: file.display().to_string(),
            problem,
        }
    }
}
