//! Graph passes. Each pass is one file named like its CLI flag
//! (`constant_fold.rs` ↔ `--after constant-fold`) with a `//!` header saying
//! what it needs and what it guarantees. Every pass leaves the graph
//! verifier-clean; [`Pipeline::run`] checks that after each one.

pub mod binarize;
pub mod calibrate;
pub mod cancel_qdq;
pub mod constant_fold;
pub mod float_matmul_integer;
pub mod fold_batch_norm;
pub mod fold_qdq;
pub mod fuse_activation;
pub mod fuse_decomposed;
pub mod fuse_modules;
pub mod fuse_residual;
pub mod insert_qdq;
pub mod quantize;

pub mod context;

pub use context::{
    CalibrationMethod, LayerStat, Module, ModuleKind, PassContext, Progress, QdqCounts,
    QuantConfig, QuantStats, Range, Requantize, ScaleFormat, ValueStats,
};
use qcc_ir::{verify, Graph, IrError};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum PassError {
    #[error("pass {pass}: {msg}")]
    Failed { pass: &'static str, msg: String },
    #[error("internal error: the graph is invalid after pass {pass}: {err}")]
    Verifier { pass: &'static str, err: IrError },
    #[error("unknown pass '{0}'; known passes: {1}")]
    Unknown(String, String),
}

/// Whether a pass changed the graph.
pub type Changed = bool;

impl PassError {
    /// A pass's internal error (a qcc bug, not the user's): `internal: {e}`.
    pub fn internal(pass: &'static str, e: impl std::fmt::Display) -> PassError {
        PassError::Failed {
            pass,
            msg: format!("internal: {e}"),
        }
    }
}

/// A pass: its CLI name, what it does, and the function that runs it.
pub struct PassInfo {
    pub name: &'static str,
    pub about: &'static str,
    pub run: fn(&mut Graph, &mut PassContext) -> Result<Changed, PassError>,
}

/// Every pass, in the default pipeline's order.
pub static PASSES: &[PassInfo] = &[
    PassInfo {
        name: "fold-qdq",
        about: "a model quantized in the QDQ form: each dequantize → conv/gemm/matmul/add/mul/mean/layout op → quantize as its integer kernel, with the model's scales",
        run: fold_qdq::run,
    },
    PassInfo {
        name: "constant-fold",
        about: "evaluate nodes whose inputs are all constant; drop dead nodes and weights",
        run: constant_fold::run,
    },
    PassInfo {
        name: "binarize",
        about: "a binary layer (MatMul or Conv of a Sign by ±1 constant weights) as one SignMatMul or SignConv: weights kept as bits, products counted with popcount; a batch norm + Sign after it folded into integer thresholds per channel",
        run: binarize::run,
    },
    PassInfo {
        name: "fuse-decomposed",
        about: "recognize activations exported as several ops (HardSwish as x·Clip(x+3,0,6)/6 or x·HardSigmoid(x), SiLU as x·Sigmoid(x), GELU as x·(Erf(x/√2)+1)/2)",
        run: fuse_decomposed::run,
    },
    PassInfo {
        name: "fold-batch-norm",
        about: "fold inference batch norms into the conv/gemm/matmul feeding them",
        run: fold_batch_norm::run,
    },
    PassInfo {
        name: "fuse-modules",
        about: "quantization: find conv/gemm/add + activation modules (no-op without --quantize)",
        run: fuse_modules::run,
    },
    PassInfo {
        name: "calibrate",
        about: "quantization: choose activation ranges from calibration data (no-op without --quantize)",
        run: calibrate::run,
    },
    PassInfo {
        name: "insert-qdq",
        about: "quantization: integer kernels with quantize/dequantize around them (no-op without --quantize)",
        run: insert_qdq::run,
    },
    PassInfo {
        name: "cancel-qdq",
        about: "quantization: cancel, merge and fold quantize/dequantize/requantize (no-op without --quantize)",
        run: cancel_qdq::run,
    },
    PassInfo {
        name: "fuse-residual",
        about: "fold the residual Add that is a float conv's only use into the conv (one pass over memory)",
        run: fuse_residual::run,
    },
    PassInfo {
        name: "fuse-activation",
        about: "fold the Relu/Clip that is a float conv's only use into the conv (one pass over memory)",
        run: fuse_activation::run,
    },
    PassInfo {
        name: "float-matmul-integer",
        about: "run each MatMulInteger whose K keeps f32 sums exact (K ≤ 258) on the float GEMM, converting back to the same i32",
        run: float_matmul_integer::run,
    },
];

/// Looks a pass up by its CLI name.
pub fn pass(name: &str) -> Result<&'static PassInfo, PassError> {
    PASSES.iter().find(|p| p.name == name).ok_or_else(|| {
        PassError::Unknown(
            name.to_string(),
            PASSES.iter().map(|p| p.name).collect::<Vec<_>>().join(", "),
        )
    })
}

/// An ordered list of passes.
pub struct Pipeline {
    pub passes: Vec<&'static PassInfo>,
}

impl Default for Pipeline {
    fn default() -> Self {
        Pipeline {
            passes: PASSES.iter().collect(),
        }
    }
}

impl Pipeline {
    /// Runs the passes in order, verifying after each. `stop_after` ends the
    /// pipeline after the named pass (for `qcc dump --after`).
    pub fn run(
        &self,
        g: &mut Graph,
        cx: &mut PassContext,
        stop_after: Option<&str>,
    ) -> Result<(), PassError> {
        for p in &self.passes {
            (p.run)(g, cx)?;
            verify(g).map_err(|err| PassError::Verifier { pass: p.name, err })?;
            if stop_after == Some(p.name) {
                break;
            }
        }
        Ok(())
    }
}
