//! LLVM backend of qcc (stub: being written). Only this crate sees inkwell.

use qcc_ir::Graph;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum CodegenError {
    /// An honest gap: the op or configuration has no lowering yet.
    #[error("node '{node}' ({op}): unsupported by the backend: {msg}")]
    Unsupported {
        node: String,
        op: &'static str,
        msg: String,
    },
    #[error("target: {0}")]
    Target(String),
    /// Always a qcc bug.
    #[error("internal error: LLVM rejected the generated module: {0}")]
    Llvm(String),
}

/// What to generate and for which machine.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Target triple; `None` means the host. Normalized before use.
    pub target: Option<String>,
    /// CPU name; `None` means the host CPU when not cross-compiling, else the triple's baseline.
    pub cpu: Option<String>,
    /// Extra LLVM target features, e.g. `+dotprod,+i8mm`.
    pub features: Option<String>,
    /// Symbol prefix `P` (a C identifier): exported symbols are `P_run`, `P_workspace_size`.
    pub prefix: String,
    pub emit_asm: bool,
    pub emit_llvm_ir: bool,
}

/// Everything `compile` produces.
#[derive(Clone, Debug, Default)]
pub struct Artifacts {
    pub object: Vec<u8>,
    pub header: String,
    pub asm: Option<String>,
    pub llvm_ir: Option<String>,
    pub workspace_size: usize,
}

/// Compiles a verified graph (after the pass pipeline) into an object file and C header.
pub fn compile(g: &Graph, opts: &Options) -> Result<Artifacts, CodegenError> {
    let _ = (g, opts);
    Err(CodegenError::Target("backend not implemented yet".into()))
}
