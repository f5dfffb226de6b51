//! What passes share besides the graph: options and side tables.
//!
//! Analyses keyed by [`ValueId`] or [`NodeId`] live here, not in the graph,
//! so the IR stays one plain data structure; a pass that needs an analysis
//! states it in its `//!` header and fails clearly when it is missing.
//!
//! The quantization passes fill, in pipeline order:
//! - `fuse-modules` → [`PassContext::modules`];
//! - `calibrate` → [`PassContext::ranges`] and [`PassContext::value_stats`];
//! - `insert-qdq` → [`PassContext::quant_stats`] (layers, naive counts);
//! - `cancel-qdq` → the final counts.
//!
//! The quantization parameters of 8-bit values are not here: they are part
//! of the values' types (`TensorType::quant`).

use crate::quantize::moments::InputMoments;
use crate::quantize::weights::QuantWeights;
use qcc_ir::{NodeId, Tensor, ValueId};
use std::collections::HashMap;

pub use crate::quantize::stats::{LayerStat, QdqCounts, QuantStats};

/// How activation ranges are chosen from calibration data.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CalibrationMethod {
    /// Observed minimum and maximum.
    MinMax,
    /// Clips both tails: the range is `[P(100 - p), P(p)]` of the observed
    /// values (e.g. `p = 99.99`), read from a 2048-bin histogram.
    Percentile(f64),
    /// TensorRT-style: the threshold on |x| minimizing the KL divergence between
    /// the 2048-bin histogram and its 8-bit quantization.
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

/// How the integer kernels of a model that arrives quantized requantize
/// (`fold-qdq`, `--requantize`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Requantize {
    /// ONNX Runtime's float requantization (`f32(acc) · s`, rounded half to
    /// even, with `s = (s_x · s_w) / s_y` computed in f32), so that the
    /// integer layers give its CPU kernels' results bit for bit.
    #[default]
    Float,
    /// qcc's fixed-point multipliers and shifts: integer-only code, for
    /// cores without an FPU; within one step of the float form.
    FixedPoint,
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
    /// Bits of the symmetric weight range, 2 to 8 (`--weight-bits`): weights
    /// in `±(2^(bits-1) - 1)`, stored in int8. 7 lets AVX2 cores use their
    /// `vpmaddubsw` kernels, which are exact only on weights within ±64.
    pub weight_bits: u32,
    /// Per-layer weight bits (`--bits NAME=BITS,...`), overriding
    /// `weight_bits` for the Conv/Gemm/MatMul nodes named.
    pub layer_bits: Vec<(String, u32)>,
    /// Layers whose weights become ternary (`--ternary NAME,...`): TNT's
    /// {-α, 0, +α} per output channel, stored in 2 bits.
    pub ternary: Vec<String>,
    /// Weights already quantized in this compilation (clones share it).
    pub memo: WeightMemo,
}

/// Quantized weights by layer name, width, ternary or not, and a
/// fingerprint of everything else they depend on (the float weights, the
/// scale format, per-channel or not). `--quantize auto` reruns the passes
/// after calibration once per trial and point; without this each run redid
/// every lowered layer's rounding search (GPTQ), a fifth of its time on
/// MobileNetV2. Shared by clones, so the parallel trials fill one memo.
#[derive(Clone, Debug, Default)]
pub struct WeightMemo(std::sync::Arc<std::sync::Mutex<HashMap<MemoKey, QuantWeights>>>);

/// Layer name, weight bits, ternary, fingerprint ([`WeightMemo`]).
pub type MemoKey = (String, u32, bool, u64);

impl WeightMemo {
    /// The memoized weights under `key`, or `make()`'s (then kept).
    pub fn get_or<E>(
        &self,
        key: MemoKey,
        make: impl FnOnce() -> Result<QuantWeights, E>,
    ) -> Result<QuantWeights, E> {
        if let Some(q) = self.0.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(q);
        }
        let q = make()?;
        if let Ok(mut m) = self.0.lock() {
            m.insert(key, q.clone());
        }
        Ok(q)
    }
}

impl QuantConfig {
    /// The weight bits of the layer anchored at node `name` (2 when ternary).
    pub fn bits_of(&self, name: &str) -> u32 {
        if self.is_ternary(name) {
            return 2;
        }
        self.layer_bits
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map_or(self.weight_bits, |&(_, b)| b)
    }

    /// Whether the layer anchored at node `name` is ternary.
    pub fn is_ternary(&self, name: &str) -> bool {
        self.ternary.iter().any(|n| n == name)
    }
}

impl Default for QuantConfig {
    fn default() -> Self {
        QuantConfig {
            method: CalibrationMethod::MinMax,
            scales: ScaleFormat::FixedPoint,
            per_channel: true,
            keep_float: vec![],
            io_int8: false,
            weight_bits: 8,
            layer_bits: vec![],
            ternary: vec![],
            memo: WeightMemo::default(),
        }
    }
}

/// A real-valued range `[min, max]` chosen for a value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Range {
    pub min: f32,
    pub max: f32,
}

/// What a unified module computes before its optional activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ModuleKind {
    /// `Conv` with constant weight (and constant bias, if any).
    Conv,
    /// `Gemm` with constant B and a constant per-column (or absent) C.
    Gemm,
    /// `MatMul` with a constant 2-D B.
    MatMul,
    /// A `BatchNorm` that `fold-batch-norm` could not fold (a depthwise 1×1 conv).
    BatchNorm,
    /// Elementwise `Add`, `Sub` or `Mul` of two tensors.
    Add,
    Sub,
    Mul,
    /// `MatMul` of two computed tensors (attention's Q·Kᵀ and P·V).
    ActMatMul,
}

impl ModuleKind {
    /// Whether the module does the heavy lifting (a reduction with weights):
    /// those are quantized wherever they are; light ones only next to integer code.
    pub fn is_heavy(self) -> bool {
        matches!(
            self,
            ModuleKind::Conv | ModuleKind::Gemm | ModuleKind::MatMul | ModuleKind::BatchNorm
        )
    }
}

/// A unified module (Geng et al.): one weighted or elementwise op plus the
/// activation applied to its only use, quantized as one integer kernel.
#[derive(Clone, Debug, PartialEq)]
pub struct Module {
    pub kind: ModuleKind,
    /// The Conv/Gemm/MatMul/BatchNorm/Add/Sub/Mul node.
    pub anchor: NodeId,
    /// A MatMul's bias: the `Add` of a constant `[N]` vector that is the
    /// anchor's only user (PyTorch's Linear exports as MatMul + Add); it
    /// becomes the integer kernel's bias.
    pub bias: Option<NodeId>,
    /// The activation (Relu, Clip, LeakyRelu, HardSwish, HardSigmoid, Sigmoid,
    /// Tanh) reading the anchor's (or the bias's) output, its only user.
    pub act: Option<NodeId>,
}

impl Module {
    /// The anchor's output: the module's pre-activation value.
    pub fn pre_act(&self) -> ValueId {
        ValueId::of(self.bias.unwrap_or(self.anchor))
    }

    /// The module's result: the activation's output, or the pre-activation.
    pub fn output(&self) -> ValueId {
        ValueId::of(self.act.unwrap_or(self.pre_act().node))
    }
}

/// What calibration saw of one value (over every sample).
#[derive(Clone, Debug, PartialEq)]
pub struct ValueStats {
    /// Observed extremes (finite elements only; 0 when none).
    pub min: f32,
    pub max: f32,
    /// Mean of x² (signal power), for SQNR estimates.
    pub mean_square: f64,
    /// Number of finite elements seen.
    pub count: u64,
    /// Elements that were NaN or ±inf (ignored above).
    pub non_finite: u64,
    /// Mean squared error of clamping to the chosen range (0 for minmax).
    pub clip_noise: f64,
    /// Fraction of elements inside the chosen range.
    pub in_range: f64,
}

impl ValueStats {
    /// Estimated signal-to-quantization-noise ratio in dB of 8-bit values at
    /// `scale`: rounding noise `scale²/12` inside the range plus clipping noise.
    pub fn sqnr_db(&self, scale: f32) -> f64 {
        let s = scale as f64;
        let noise = self.in_range * s * s / 12.0 + self.clip_noise;
        if noise <= 0.0 || self.mean_square <= 0.0 {
            return f64::INFINITY;
        }
        10.0 * (self.mean_square / noise).log10()
    }
}

/// Reports calibration progress as `(steps done, steps in all)`; the CLI
/// draws a progress bar with it. Does nothing by default.
#[derive(Clone, Default)]
pub struct Progress(pub Option<std::sync::Arc<dyn Fn(usize, usize) + Send + Sync>>);

impl Progress {
    pub fn report(&self, done: usize, total: usize) {
        if let Some(f) = &self.0 {
            f(done, total)
        }
    }
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Progress(on)"
        } else {
            "Progress(off)"
        })
    }
}

#[derive(Clone, Debug, Default)]
pub struct PassContext {
    /// Calibration progress callback (`calibrate` reports one step per sample and sweep).
    pub progress: Progress,
    /// `Some` when quantizing; quantization passes do nothing otherwise.
    pub quant: Option<QuantConfig>,
    /// Calibration samples, each one tensor per graph input in input order.
    pub calibration: Vec<Vec<Tensor>>,
    /// Unified modules found by `fuse-modules`, in topological order of anchors.
    pub modules: Vec<Module>,
    /// Activation ranges chosen by `calibrate`, by value of the float graph
    /// (always containing 0). Keys refer to the graph as `calibrate` saw it:
    /// after `insert-qdq` only the values left in float are still meaningful.
    pub ranges: HashMap<ValueId, Range>,
    /// Calibration statistics by value of the float graph (keys as `ranges`).
    pub value_stats: HashMap<ValueId, ValueStats>,
    /// Per-layer report and quantize/dequantize/requantize counts (`--stats`).
    pub quant_stats: QuantStats,
    /// Moments of the input vectors of each layer quantized below 8 bits,
    /// by anchor node (`calibrate`; bias correction and GPTQ rounding).
    /// Shared by clones: a layer's input Hessian is `k × k` f64 (170 MB at
    /// k = 4608), and `--quantize auto` clones the context for every trial.
    pub layer_inputs: std::sync::Arc<HashMap<NodeId, InputMoments>>,
    /// How `fold-qdq`'s integer kernels requantize (`--requantize`).
    pub requantize: Requantize,
}

impl PassContext {
    /// The module whose activation or anchor is `node`, if any.
    pub fn module_of(&self, node: NodeId) -> Option<&Module> {
        self.modules
            .iter()
            .find(|m| m.anchor == node || m.act == Some(node) || m.bias == Some(node))
    }
}
