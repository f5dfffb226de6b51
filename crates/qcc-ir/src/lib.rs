//! qcc's intermediate representation.
//!
//! One graph type ([`Graph`]) serves every stage of the pipeline, from the
//! ONNX importer to code generation. Nodes hold a closed [`Op`], their input
//! [`ValueId`]s and one [`TensorType`] per output; weights live in a table on
//! the graph and are reached through `Const` nodes.
//!
//! **Invariants** (checked by [`verify`]):
//! - every shape is static; every value's type equals what [`infer()`] derives;
//! - the graph is acyclic;
//! - this crate depends on neither prost nor LLVM.

mod error;
mod graph;
pub mod infer;
pub mod op;
mod print;
pub mod quant;
pub mod resize;
mod tensor;
mod types;
mod verify;

pub use error::IrError;
pub use graph::{Graph, GraphOutput, Node, NodeId, ValueId, WeightId};
pub use infer::infer;
pub use op::*;
pub use print::print;
pub use quant::{Epilogue, QParams, Rescale};
pub use tensor::{Tensor, TensorData};
pub use types::{
    broadcast_shapes, broadcast_strides, numel, strides_of, AxisQuant, DType, Shape, TensorType,
};
pub use verify::verify;
