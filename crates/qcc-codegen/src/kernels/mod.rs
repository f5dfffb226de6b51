//! Kernels: one emitter per op family, dispatched from [`emit_node`] (the
//! only `match` over [`Op`] in the backend).
//!
//! Every kernel has the same signature:
//!
//! ```ignore
//! pub fn emit<'ctx>(cx: &mut KernelCx<'_, 'ctx>, node: &Node,
//!                   ins: &[Operand<'_, 'ctx>], out: &Operand<'_, 'ctx>) -> CgResult<()>
//! ```
//!
//! `ins` are the node's inputs in IR order, `out` its single output; the
//! kernel writes every element of `out`. See `KERNEL_API.md`.

pub mod binary;
pub mod cast;
pub mod conv;
pub mod elementwise;
pub mod gather;
pub mod layout;
pub mod logic;
pub mod matmul;
pub mod norm;
pub mod pool;
pub mod qconv;
pub(crate) mod qdot;
pub mod qelementwise;
pub mod qgemm;
pub mod qmatmul;
pub mod qpool;
pub mod quant;
pub mod reduce;
pub mod resize;
pub mod softmax;

use crate::cx::{CgResult, KernelCx, Operand};
use qcc_ir::{DType, Node, Op};

/// Emits the body of the function computing `node`.
pub fn emit_node<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    node: &Node,
    ins: &[Operand<'_, 'ctx>],
    out: &Operand<'_, 'ctx>,
) -> CgResult<()> {
    match &node.op {
        Op::Input { .. } | Op::Const { .. } => Err(cx.unsupported("has no code (internal error)")),
        Op::Conv(_) | Op::ConvClamp { .. } | Op::ConvAdd { .. } | Op::ConvTranspose(_) => {
            conv::emit(cx, node, ins, out)
        }
        Op::Gemm { .. } | Op::MatMul => matmul::emit(cx, node, ins, out),
        Op::Unary(_) => elementwise::emit_unary(cx, node, ins, out),
        Op::Binary(_) => elementwise::emit_binary(cx, node, ins, out),
        Op::Compare(_) => logic::emit_compare(cx, node, ins, out),
        Op::Logic(_) | Op::Not => logic::emit_logic(cx, node, ins, out),
        Op::Where => logic::emit_where(cx, node, ins, out),
        Op::Softmax { .. } => softmax::emit(cx, node, ins, out),
        Op::MaxPool(_) if matches!(ins.first().map(|x| x.dtype()), Some(DType::I8 | DType::U8)) => {
            qpool::emit_maxpool(cx, node, ins, out)
        }
        Op::MaxPool(_) | Op::AveragePool(_) => pool::emit(cx, node, ins, out),
        Op::Reduce { .. } => reduce::emit(cx, node, ins, out),
        Op::BatchNorm { .. } => norm::emit(cx, node, ins, out),
        Op::Reshape { .. } => layout::emit_reshape(cx, node, ins, out),
        Op::Transpose { .. } => layout::emit_transpose(cx, node, ins, out),
        Op::Concat { .. } => layout::emit_concat(cx, node, ins, out),
        Op::Slice { .. } => layout::emit_slice(cx, node, ins, out),
        Op::Pad { .. } => layout::emit_pad(cx, node, ins, out),
        Op::Resize(_) => resize::emit(cx, node, ins, out),
        Op::Cast { .. } => cast::emit(cx, node, ins, out),
        Op::Gather { .. } => gather::emit(cx, node, ins, out),
        Op::Quantize { .. } => qelementwise::emit_quantize(cx, node, ins, out),
        Op::Dequantize { .. } => qelementwise::emit_dequantize(cx, node, ins, out),
        Op::Requantize { .. } => qelementwise::emit_requantize(cx, node, ins, out),
        Op::Lut { .. } => qelementwise::emit_lut(cx, node, ins, out),
        Op::QAdd { .. } | Op::QMul { .. } => qelementwise::emit_binary(cx, node, ins, out),
        Op::QConv { .. } => qconv::emit(cx, node, ins, out),
        Op::QGemm { .. } => qgemm::emit(cx, node, ins, out),
        Op::QAvgPool { .. } => qpool::emit_avgpool(cx, node, ins, out),
        Op::QMean { .. } => qpool::emit_mean(cx, node, ins, out),
        Op::MatMulInteger => qmatmul::emit_matmul_integer(cx, node, ins, out),
        Op::QMatMul { .. } => qmatmul::emit_qmatmul(cx, node, ins, out),
        Op::QSoftmax { .. } => qelementwise::emit_qsoftmax(cx, node, ins, out),
        Op::SignMatMul { .. } | Op::SignConv { .. } => binary::emit(cx, node, ins, out),
    }
}

/// Checks the input count; kernels call this before indexing `ins`.
pub fn expect_inputs(cx: &KernelCx<'_, '_>, ins: &[Operand<'_, '_>], n: usize) -> CgResult<()> {
    if ins.len() < n {
        return Err(cx.unsupported(format!("expected {n} inputs, got {}", ins.len())));
    }
    Ok(())
}
