//! Reference interpreter for qcc's IR (stub: being written).

use qcc_ir::{Graph, Op, Tensor, TensorType};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum InterpError {
    #[error("node '{node}' ({op}): {msg}")]
    Node {
        node: String,
        op: &'static str,
        msg: String,
    },
    #[error("{0}")]
    Graph(String),
}

/// Evaluates one op on concrete inputs. `outputs` are the node's declared output types.
pub fn eval_op(op: &Op, inputs: &[&Tensor], outputs: &[TensorType]) -> Result<Vec<Tensor>, String> {
    let _ = (op, inputs, outputs);
    Err("interpreter not implemented yet".into())
}

/// Runs a whole graph; `inputs` in graph-input order. Returns the graph outputs in order.
pub fn run(g: &Graph, inputs: &[Tensor]) -> Result<Vec<Tensor>, InterpError> {
    let _ = (g, inputs);
    Err(InterpError::Graph("interpreter not implemented yet".into()))
}
