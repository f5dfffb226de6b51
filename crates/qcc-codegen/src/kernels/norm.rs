//! Kernel for BatchNorm (stub: to be written against `KERNEL_API.md`).

use crate::cx::{CgResult, KernelCx, Operand};
use qcc_ir::Node;

/// Emits the body of the node function for BatchNorm.
pub fn emit<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    node: &Node,
    ins: &[Operand<'_, 'ctx>],
    out: &Operand<'_, 'ctx>,
) -> CgResult<()> {
    let _ = (node, ins, out);
    Err(cx.unsupported("no kernel yet"))
}
