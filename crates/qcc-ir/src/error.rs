use thiserror::Error;

/// Errors of the IR layer. A `Verify` error after a pass is a qcc bug.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum IrError {
    #[error("node '{node}' ({op}): {msg}")]
    Shape {
        node: String,
        op: &'static str,
        msg: String,
    },
    #[error("verifier: node '{node}': {msg}")]
    Verify { node: String, msg: String },
    #[error("the graph has a cycle through node '{node}'")]
    Cycle { node: String },
}
