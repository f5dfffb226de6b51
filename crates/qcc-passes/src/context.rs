//! What passes share besides the graph: options and side tables.
//!
//! Analyses keyed by [`ValueId`] live here, not in the graph, so the IR stays
//! one plain data structure; a pass that needs an analysis states it in its
//! `//!` header and fails clearly when it is missing.

use qcc_ir::{Tensor, ValueId};
use std::collections::HashMap;

/// How activation ranges are chosen from calibration data.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CalibrationMethod {
    /// Observed minimum and maximum.
    MinMax,
    /// The given percentile of |x| (e.g. 99.99), per tensor.
    Percentile(f64),
    /// Minimizes KL divergence between the 2048-bin histogram and its 8-bit quantization.
    Entropy,
    /// Minimizes the mean squared quantization error over candidate clip ranges.
    Mse,
}

/// How requantization scales are represented.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScaleFormat {
    /// 32-bit fixed-point multiplier and rounding shift.
    FixedPoint,
    /// Power-of-two scales: every requantization is a rounding shift.
    Pow2,
}

/// Options of `--quantize int8`.
#[derive(Clone, Debug)]
pub struct QuantConfig {
    pub method: CalibrationMethod,
    pub scales: ScaleFormat,
    /// Per-output-channel weight scales (`false` with `--per-tensor`).
    pub per_channel: bool,
    /// Node names to keep in float (`--keep-float`).
    pub keep_float: Vec<String>,
    /// Expose 8-bit inputs/outputs instead of float32 (`--io int8`).
    pub io_int8: bool,
}

impl Default for QuantConfig {
    fn default() -> Self {
        QuantConfig {
            method: CalibrationMethod::MinMax,
            scales: ScaleFormat::FixedPoint,
            per_channel: true,
            keep_float: vec![],
            io_int8: false,
        }
    }
}

/// A real-valued range `[min, max]` chosen for a value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Range {
    pub min: f32,
    pub max: f32,
}

#[derive(Clone, Debug, Default)]
pub struct PassContext {
    /// `Some` when quantizing; quantization passes do nothing otherwise.
    pub quant: Option<QuantConfig>,
    /// Calibration samples, each one tensor per graph input in input order.
    pub calibration: Vec<Vec<Tensor>>,
    /// Activation ranges chosen by `calibrate`, by value of the float graph.
    pub ranges: HashMap<ValueId, Range>,
}
