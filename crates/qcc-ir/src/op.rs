//! The closed set of operations of qcc's IR.
//!
//! Attributes are normalized by the importer: every axis is non-negative, pads
//! are explicit (auto_pad resolved), parameters that ONNX passes as constant
//! inputs (Reshape's shape, Slice's starts, Clip's bounds, Resize's scales…)
//! are attributes here, so an op's inputs are only the tensors it computes on.

use crate::graph::WeightId;
use crate::quant::{Epilogue, QParams};
use crate::types::DType;
use std::fmt;

/// Elementwise operation of one input.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnaryOp {
    Relu,
    Sigmoid,
    Tanh,
    Exp,
    Log,
    Sqrt,
    Neg,
    Abs,
    /// -1, 0 or +1 by the sign of x (ONNX Sign; NaN stays NaN, -0 stays -0).
    Sign,
    Reciprocal,
    Erf,
    /// Round half to even (ONNX Round).
    Round,
    HardSwish,
    /// `x · sigmoid(x)` (SiLU, Swish).
    Silu,
    /// `x/2 · (1 + erf(x/√2))` (GELU, erf form).
    Gelu,
    /// `x/2 · (1 + tanh(√(2/π) · (x + 0.044715·x³)))` (GELU, tanh form:
    /// ONNX `Gelu` with `approximate='tanh'`, GPT-2-style exports).
    GeluTanh,
    /// `x >= 0 ? x : alpha * x`
    LeakyRelu {
        alpha: f32,
    },
    /// `clamp(alpha * x + beta, 0, 1)`
    HardSigmoid {
        alpha: f32,
        beta: f32,
    },
    /// `clamp(x, min, max)`; the bounds are ±inf when absent.
    Clip {
        min: f32,
        max: f32,
    },
}

/// Elementwise operation of two inputs with numpy-style broadcasting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Max,
    Min,
    Pow,
    /// `a >= 0 ? a : a * b` (ONNX PRelu, `b` is the slope)
    PRelu,
}

/// Elementwise comparisons (numpy broadcasting), giving `bool`. Float
/// comparisons with NaN are false (IEEE ordered predicates).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CompareOp {
    Equal,
    Greater,
    GreaterOrEqual,
    Less,
    LessOrEqual,
}

/// Elementwise logic on `bool` tensors (numpy broadcasting).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LogicOp {
    And,
    Or,
    Xor,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReduceOp {
    Mean,
    Max,
    Sum,
}

/// Convolution attributes. The kernel size comes from the weight's shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvAttrs {
    /// One per spatial dim.
    pub strides: Vec<usize>,
    /// `[begin_0, begin_1, …, end_0, end_1, …]`, as in ONNX.
    pub pads: Vec<usize>,
    pub dilations: Vec<usize>,
    pub group: usize,
    /// ConvTranspose only (zeros for Conv): extra size added at the end of each spatial dim.
    pub output_padding: Vec<usize>,
}

/// Pooling attributes (MaxPool, AveragePool).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolAttrs {
    pub kernel: Vec<usize>,
    pub strides: Vec<usize>,
    /// `[begin…, end…]`
    pub pads: Vec<usize>,
    pub dilations: Vec<usize>,
    pub ceil_mode: bool,
    /// AveragePool only: whether padded cells count in the divisor.
    pub count_include_pad: bool,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ResizeMode {
    Nearest,
    Linear,
    /// Keys' cubic convolution with coefficient `a` (ONNX `cubic_coeff_a`,
    /// -0.75 by default) over four taps per dim; `exclude_outside` drops the
    /// taps that fall outside the input and renormalizes the others
    /// ([`crate::resize::cubic_taps`]).
    Cubic {
        a: f32,
        exclude_outside: bool,
    },
}

/// How Resize maps an output coordinate to an input coordinate (ONNX names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CoordTransform {
    HalfPixel,
    PytorchHalfPixel,
    AlignCorners,
    Asymmetric,
    HalfPixelSymmetric,
}

/// How Resize rounds in nearest mode (ONNX names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NearestMode {
    RoundPreferFloor,
    RoundPreferCeil,
    Floor,
    Ceil,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ResizeAttrs {
    pub mode: ResizeMode,
    pub coord: CoordTransform,
    pub nearest: NearestMode,
    /// Scale per dim (output/input); used by the coordinate transform.
    pub scales: Vec<f32>,
    /// Output size per dim.
    pub sizes: Vec<usize>,
}

/// An IR operation. Inputs are listed per variant.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Graph input number `index` (in ONNX graph order). No inputs.
    Input {
        index: usize,
    },
    /// A constant from the graph's weight table. No inputs.
    Const {
        weight: WeightId,
    },
    /// Inputs: x `[N,C,…]`, w `[M,C/group,k…]`, optional bias `[M]`.
    Conv(ConvAttrs),
    /// A float `Conv` whose result is clamped, `y < min ? min : (y > max ? max
    /// : y)` (NaN passes, like Clip): a Conv and the Relu or Clip that was its
    /// only use, one kernel (`fuse-activation`). Inputs as `Conv`.
    ConvClamp {
        conv: ConvAttrs,
        min: f32,
        max: f32,
    },
    /// A float `Conv` plus a residual of its output's type, then clamped
    /// like `ConvClamp` (`±inf`: no clamp): `clamp(conv(x, w, b) + r)`, a
    /// Conv, the Add that was its only use (`fuse-residual`) and the Relu or
    /// Clip after it (`fuse-activation`), one kernel. Inputs: x, w, bias
    /// `[M]` (always present), r.
    ConvAdd {
        conv: ConvAttrs,
        min: f32,
        max: f32,
    },
    /// Inputs: x `[N,C,…]`, w `[C,M/group,k…]`, optional bias `[M]`.
    ConvTranspose(ConvAttrs),
    /// `alpha * op(a) @ op(b) + beta * c`. Inputs: a, b, optional c (unidirectionally broadcast).
    Gemm {
        alpha: f32,
        beta: f32,
        trans_a: bool,
        trans_b: bool,
    },
    /// Numpy matmul (batch dims broadcast, rank-1 operands promoted). Inputs: a, b.
    MatMul,
    Unary(UnaryOp),
    Binary(BinaryOp),
    /// `a op b` → bool. Inputs: a, b of one element type.
    Compare(CompareOp),
    /// `a op b` on bools. Inputs: a, b.
    Logic(LogicOp),
    /// Logical not of a bool tensor. Input: x.
    Not,
    /// `cond ? x : y`, the three broadcast together. Inputs: cond (bool),
    /// x, y (one element type).
    Where,
    /// Softmax along one axis (opset ≥ 13 semantics).
    Softmax {
        axis: usize,
    },
    MaxPool(PoolAttrs),
    AveragePool(PoolAttrs),
    Reduce {
        op: ReduceOp,
        axes: Vec<usize>,
        keepdims: bool,
    },
    /// Inference batch normalization. Inputs: x, scale, bias, mean, var (each `[C]`).
    BatchNorm {
        epsilon: f32,
    },
    /// Same elements, new shape (Reshape, Flatten, Squeeze, Unsqueeze, Identity).
    Reshape {
        shape: Vec<usize>,
    },
    Transpose {
        perm: Vec<usize>,
    },
    /// Variadic concatenation along `axis`.
    Concat {
        axis: usize,
    },
    /// Strided slice over every dim: `out[i] = in[starts[d] + i * steps[d]]`,
    /// `lens[d]` elements per dim. Starts are in range; steps are non-zero.
    Slice {
        starts: Vec<i64>,
        steps: Vec<i64>,
        lens: Vec<usize>,
    },
    /// Constant padding, `[begin…, end…]` per dim.
    Pad {
        pads: Vec<usize>,
        value: f32,
    },
    Resize(ResizeAttrs),
    Cast {
        to: DType,
    },
    /// ONNX Gather. Inputs: data, indices (integer; negative counts from the end).
    Gather {
        axis: usize,
    },

    // ---- Integer (quantized) ops. Arithmetic: `crate::quant`. ----
    /// f32 → `to` (I8 or U8): `quant::quantize` elementwise, saturating to `to`'s range.
    Quantize {
        q: QParams,
        to: DType,
    },
    /// I8/U8/I32 → f32: `quant::dequantize` elementwise.
    Dequantize {
        q: QParams,
    },
    /// 8-bit → 8-bit with new parameters: `epi.apply(x - in_zero_point, 0)` (per tensor).
    Requantize {
        in_zero_point: i32,
        epi: Epilogue,
        to: DType,
    },
    /// Integer convolution. Inputs: x (I8/U8) `[N,C,…]`, w (I8) `[M,C/group,k…]`, bias (I32) `[M]`.
    /// `acc = bias[m] + Σ (x - x_zero_point) * w` (padding contributes 0), out = `epi.apply(acc, m)`.
    QConv {
        conv: ConvAttrs,
        x_zero_point: i32,
        epi: Epilogue,
        to: DType,
    },
    /// Integer matrix product. Inputs: a (I8/U8) `[M,K]`, b (I8) `[K,N]`, bias (I32) `[N]`.
    /// `acc = bias[j] + Σ_k (a[i,k] - a_zero_point) * b[k,j]`, out = `epi.apply(acc, j)`.
    QGemm {
        a_zero_point: i32,
        epi: Epilogue,
        to: DType,
    },
    /// Integer add with broadcasting. `acc = (a - a_zp) * a_mul + (b - b_zp) * b_mul`,
    /// out = `epi.apply(acc, 0)`.
    QAdd {
        a_zero_point: i32,
        a_multiplier: i32,
        b_zero_point: i32,
        b_multiplier: i32,
        epi: Epilogue,
        to: DType,
    },
    /// Integer matrix product of two run-time operands (attention's Q·Kᵀ
    /// and P·V). Inputs: a (I8) `[…, M, K]`, b (I8) `[K, N]` or `[…, K, N]`
    /// with a's batch dims. `acc = Σ_k (a - a_zp)·(b - b_zp)` (exact i32,
    /// K ≤ `MATMUL_INTEGER_MAX_K`), out = `epi.apply(acc, 0)` (per tensor).
    QMatMul {
        a_zero_point: i32,
        b_zero_point: i32,
        epi: Epilogue,
        to: DType,
    },
    /// Integer multiply with broadcasting. `acc = (a - a_zp) * (b - b_zp)`, out = `epi.apply(acc, 0)`.
    QMul {
        a_zero_point: i32,
        b_zero_point: i32,
        epi: Epilogue,
        to: DType,
    },
    /// Integer average pool whose windows all count the same number of cells
    /// (`count_include_pad`, or no padding; no ceil_mode overhang).
    /// `acc = Σ (x - x_zero_point)` over the window (padding contributes 0),
    /// out = `epi.apply(acc, 0)` (the epilogue includes 1/count). Output type = input type.
    QAvgPool {
        pool: PoolAttrs,
        x_zero_point: i32,
        epi: Epilogue,
    },
    /// Integer mean over axes: `acc = Σ (x - x_zero_point)`, out = `epi.apply(acc, 0)`
    /// (the epilogue includes 1/count). Output type = input type.
    QMean {
        axes: Vec<usize>,
        keepdims: bool,
        x_zero_point: i32,
        epi: Epilogue,
    },
    /// ONNX MatMulInteger. Inputs: a (I8/U8) `[…, M, K]`, b (I8/U8) `[K, N]` or
    /// `[…, K, N]` with a's batch dims, a_zero_point (a's type, one element),
    /// b_zero_point (b's type, one element or one per column). Output I32
    /// `[…, M, N]`: `Σ_k (a - a_zp)·(b - b_zp[n])`, exact (K ≤ `MATMUL_INTEGER_MAX_K`).
    /// The zero points may be run-time values (`DynamicQuantizeLinear`'s).
    MatMulInteger,
    /// Integer softmax along the last axis of an i8 tensor
    /// (`quant::softmax_row` per row): `e = table[max(row) - x]`, out =
    /// `clamp(zero_point + round(e · scale_inv / Σ e))` as `to`, i.e. the
    /// probabilities in steps of `1 / scale_inv`. `table` has 256 entries in
    /// `0..=SOFTMAX_ONE` (`table[0] > 0`), `scale_inv` in `1..=32768`.
    QSoftmax {
        table: Vec<i32>,
        scale_inv: i32,
        zero_point: i32,
        to: DType,
    },
    /// Table lookup on 8-bit values: out = `table[x - min(input dtype)]` (256 entries, within `to`'s range).
    Lut {
        table: Vec<i32>,
        to: DType,
    },
    /// A binary layer: `Sign(u) · w`. Inputs: u (F32) `[…, K]`, w (F32,
    /// constant, every element -1 or +1) `[K, N]`. Output F32 `[…, N]`:
    /// `Σ_k sign(u[…, k]) · w[k, n]`, an integer of magnitude at most K,
    /// exact (NaN in a row of u makes the row NaN). With `bipolar`, sign is
    /// QONNX's bipolar one instead: `u ≥ 0 ? 1 : -1` (zeros count +1, NaN
    /// counts -1, no NaN out). The kernel keeps w as bits and counts with
    /// popcount (`binarize`); K ≤ [`SIGN_MATMUL_MAX_K`].
    SignMatMul {
        bipolar: bool,
        /// The sign of a monotone function of each count, as integer
        /// thresholds (see [`SignStep`]): outputs in {-1, 0, +1}.
        step: Option<Box<SignStep>>,
    },
    /// A binary convolution: `Conv(Sign(x), w)`, 2-D, one group, no bias.
    /// Inputs: x (F32) `[N, C, H, W]`, w (F32, constant, every element -1
    /// or +1) `[OC, C, KH, KW]`. Output F32 `[N, OC, OH, OW]` (the window
    /// geometry of `Conv`): `Σ sign(x)·w` over each window, padding counting
    /// 0, an integer of magnitude at most `C·KH·KW`, exact (a NaN in a window
    /// makes its outputs NaN). `bipolar` as for [`Op::SignMatMul`]. The
    /// kernel keeps w and the input's signs as bits (`binarize`);
    /// `C·KH·KW ≤` [`SIGN_MATMUL_MAX_K`] and `KH·KW ≤` [`SIGN_CONV_MAX_TAPS`].
    SignConv {
        conv: ConvAttrs,
        bipolar: bool,
        /// As for [`Op::SignMatMul`], per output channel (axis 1).
        step: Option<Box<SignStep>>,
    },
}

/// A binary layer's batch norm (any per-channel chain of `+ k`, `- k`,
/// `k - x`, `· k`, `/ k`) and `Sign`, folded into one integer threshold
/// pair per output channel, as BNN does: the count `c` of channel `o`
/// (`m = -c` where `flip[o]`, else `c`) gives `+1` when `m ≥ pos[o]`, `0`
/// when `zero[o] ≤ m < pos[o]`, else `-1`; a NaN count stays NaN.
/// `binarize` finds the thresholds by evaluating the float chain it
/// replaces (monotone, so a search over the counts' range is exact).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SignStep {
    pub flip: Vec<bool>,
    pub zero: Vec<i32>,
    pub pos: Vec<i32>,
}

impl SignStep {
    /// The axis of a binary layer's output (of rank `rank`) its output
    /// channels, and so its thresholds, run along: 1 for a `SignConv`, the
    /// last for a `SignMatMul`; `None` for other ops.
    pub fn axis(op: &Op, rank: usize) -> Option<usize> {
        match op {
            Op::SignConv { .. } => Some(1),
            Op::SignMatMul { .. } => rank.checked_sub(1),
            _ => None,
        }
    }

    /// Output channels.
    pub fn len(&self) -> usize {
        self.flip.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flip.is_empty()
    }

    /// Channel `o`'s output for count `c`.
    pub fn apply(&self, o: usize, c: i64) -> f32 {
        let m = if self.flip[o] { -c } else { c };
        if m >= self.pos[o] as i64 {
            1.0
        } else if m >= self.zero[o] as i64 {
            0.0
        } else {
            -1.0
        }
    }

    /// Why this does not fit a layer of `n` output channels, if it does not.
    pub fn check(&self, n: usize) -> Result<(), String> {
        if self.flip.len() != n || self.zero.len() != n || self.pos.len() != n {
            return Err(format!(
                "{}/{}/{} thresholds for {n} channels",
                self.flip.len(),
                self.zero.len(),
                self.pos.len()
            ));
        }
        if let Some(o) = (0..n).find(|&o| self.zero[o] > self.pos[o]) {
            return Err(format!(
                "channel {o}: zero threshold above the positive one"
            ));
        }
        Ok(())
    }
}

/// Most taps (`KH·KW`) of a [`Op::SignConv`] window: its kernel's window sum
/// of per-position NaN marks (2^20 each) must stay inside an i32.
pub const SIGN_CONV_MAX_TAPS: usize = 1024;

/// Largest K of a [`Op::SignMatMul`] (and `C·KH·KW` of a [`Op::SignConv`]):
/// its kernel's counts, with their NaN mark, stay inside an i32.
pub const SIGN_MATMUL_MAX_K: usize = 1 << 16;

impl Op {
    /// The op's name as printed in IR dumps.
    /// Ops that move 8-bit values without changing what they stand for:
    /// their output has the quantization parameters of their (first) input.
    pub fn keeps_quant(&self) -> bool {
        matches!(
            self,
            Op::MaxPool(_)
                | Op::Reshape { .. }
                | Op::Transpose { .. }
                | Op::Slice { .. }
                | Op::Pad { .. }
                | Op::Concat { .. }
        )
    }

    pub fn name(&self) -> &'static str {
        match self {
            Op::Input { .. } => "input",
            Op::Const { .. } => "const",
            Op::Conv(_) => "conv",
            Op::ConvClamp { .. } => "conv_clamp",
            Op::ConvAdd { .. } => "conv_add",
            Op::ConvTranspose(_) => "conv_transpose",
            Op::Gemm { .. } => "gemm",
            Op::MatMul => "matmul",
            Op::Unary(u) => match u {
                UnaryOp::Relu => "relu",
                UnaryOp::Sigmoid => "sigmoid",
                UnaryOp::Tanh => "tanh",
                UnaryOp::Exp => "exp",
                UnaryOp::Log => "log",
                UnaryOp::Sqrt => "sqrt",
                UnaryOp::Neg => "neg",
                UnaryOp::Abs => "abs",
                UnaryOp::Sign => "sign",
                UnaryOp::Reciprocal => "reciprocal",
                UnaryOp::Erf => "erf",
                UnaryOp::Round => "round",
                UnaryOp::HardSwish => "hard_swish",
                UnaryOp::Silu => "silu",
                UnaryOp::Gelu => "gelu",
                UnaryOp::GeluTanh => "gelu_tanh",
                UnaryOp::LeakyRelu { .. } => "leaky_relu",
                UnaryOp::HardSigmoid { .. } => "hard_sigmoid",
                UnaryOp::Clip { .. } => "clip",
            },
            Op::Binary(b) => match b {
                BinaryOp::Add => "add",
                BinaryOp::Sub => "sub",
                BinaryOp::Mul => "mul",
                BinaryOp::Div => "div",
                BinaryOp::Max => "max",
                BinaryOp::Min => "min",
                BinaryOp::Pow => "pow",
                BinaryOp::PRelu => "prelu",
            },
            Op::Compare(c) => match c {
                CompareOp::Equal => "equal",
                CompareOp::Greater => "greater",
                CompareOp::GreaterOrEqual => "greater_or_equal",
                CompareOp::Less => "less",
                CompareOp::LessOrEqual => "less_or_equal",
            },
            Op::Logic(l) => match l {
                LogicOp::And => "and",
                LogicOp::Or => "or",
                LogicOp::Xor => "xor",
            },
            Op::Not => "not",
            Op::Where => "where",
            Op::Softmax { .. } => "softmax",
            Op::MaxPool(_) => "max_pool",
            Op::AveragePool(_) => "average_pool",
            Op::Reduce { op, .. } => match op {
                ReduceOp::Mean => "reduce_mean",
                ReduceOp::Max => "reduce_max",
                ReduceOp::Sum => "reduce_sum",
            },
            Op::BatchNorm { .. } => "batch_norm",
            Op::Reshape { .. } => "reshape",
            Op::Transpose { .. } => "transpose",
            Op::Concat { .. } => "concat",
            Op::Slice { .. } => "slice",
            Op::Pad { .. } => "pad",
            Op::Resize(_) => "resize",
            Op::Cast { .. } => "cast",
            Op::Gather { .. } => "gather",
            Op::Quantize { .. } => "quantize",
            Op::Dequantize { .. } => "dequantize",
            Op::Requantize { .. } => "requantize",
            Op::QConv { .. } => "qconv",
            Op::QGemm { .. } => "qgemm",
            Op::QAdd { .. } => "qadd",
            Op::QMul { .. } => "qmul",
            Op::QMatMul { .. } => "qmatmul",
            Op::QAvgPool { .. } => "qavg_pool",
            Op::QMean { .. } => "qmean",
            Op::MatMulInteger => "matmul_integer",
            Op::SignMatMul { .. } => "sign_matmul",
            Op::SignConv { .. } => "sign_conv",
            Op::Lut { .. } => "lut",
            Op::QSoftmax { .. } => "qsoftmax",
        }
    }

    /// Number of outputs the op produces.
    pub fn num_outputs(&self) -> usize {
        1
    }

    /// Allowed input counts `(min, max)`; `max == usize::MAX` for variadic ops.
    pub fn arity(&self) -> (usize, usize) {
        match self {
            Op::Input { .. } | Op::Const { .. } => (0, 0),
            Op::Conv(_) | Op::ConvClamp { .. } | Op::ConvTranspose(_) | Op::Gemm { .. } => (2, 3),
            Op::MatMul | Op::Binary(_) | Op::Gather { .. } | Op::SignMatMul { .. } => (2, 2),
            Op::SignConv { .. } => (2, 2),
            Op::Compare(_) | Op::Logic(_) => (2, 2),
            Op::Where => (3, 3),
            Op::QAdd { .. } | Op::QMul { .. } | Op::QMatMul { .. } => (2, 2),
            Op::QConv { .. } | Op::QGemm { .. } => (3, 3),
            Op::ConvAdd { .. } | Op::MatMulInteger => (4, 4),
            Op::BatchNorm { .. } => (5, 5),
            Op::Concat { .. } => (1, usize::MAX),
            _ => (1, 1),
        }
    }

    /// Attributes as `key=value` pairs, for the printer.
    pub fn attrs(&self) -> Vec<(&'static str, String)> {
        fn l<T: fmt::Debug>(v: &[T]) -> String {
            format!("{v:?}").replace(' ', "")
        }
        match self {
            Op::Input { index } => vec![("index", index.to_string())],
            Op::Const { .. } => vec![],
            Op::Conv(c) | Op::ConvTranspose(c) => {
                let mut v = vec![
                    ("strides", l(&c.strides)),
                    ("pads", l(&c.pads)),
                    ("dilations", l(&c.dilations)),
                    ("group", c.group.to_string()),
                ];
                if c.output_padding.iter().any(|&p| p != 0) {
                    v.push(("output_padding", l(&c.output_padding)));
                }
                v
            }
            Op::Gemm {
                alpha,
                beta,
                trans_a,
                trans_b,
            } => vec![
                ("alpha", alpha.to_string()),
                ("beta", beta.to_string()),
                ("trans_a", trans_a.to_string()),
                ("trans_b", trans_b.to_string()),
            ],
            Op::MatMul | Op::Binary(_) => vec![],
            Op::Compare(_) | Op::Logic(_) | Op::Not | Op::Where => vec![],
            Op::Unary(u) => match u {
                UnaryOp::LeakyRelu { alpha } => vec![("alpha", alpha.to_string())],
                UnaryOp::HardSigmoid { alpha, beta } => {
                    vec![("alpha", alpha.to_string()), ("beta", beta.to_string())]
                }
                UnaryOp::Clip { min, max } => {
                    vec![("min", min.to_string()), ("max", max.to_string())]
                }
                _ => vec![],
            },
            Op::Softmax { axis } => vec![("axis", axis.to_string())],
            Op::MaxPool(p) | Op::AveragePool(p) => {
                let mut v = vec![
                    ("kernel", l(&p.kernel)),
                    ("strides", l(&p.strides)),
                    ("pads", l(&p.pads)),
                ];
                if p.dilations.iter().any(|&d| d != 1) {
                    v.push(("dilations", l(&p.dilations)));
                }
                if p.ceil_mode {
                    v.push(("ceil_mode", "true".into()));
                }
                if matches!(self, Op::AveragePool(_)) {
                    v.push(("count_include_pad", p.count_include_pad.to_string()));
                }
                v
            }
            Op::Reduce { axes, keepdims, .. } => {
                vec![("axes", l(axes)), ("keepdims", keepdims.to_string())]
            }
            Op::BatchNorm { epsilon } => vec![("epsilon", epsilon.to_string())],
            Op::Reshape { .. } => vec![],
            Op::Transpose { perm } => vec![("perm", l(perm))],
            Op::Concat { axis } => vec![("axis", axis.to_string())],
            Op::Slice { starts, steps, .. } => vec![("starts", l(starts)), ("steps", l(steps))],
            Op::Pad { pads, value } => vec![("pads", l(pads)), ("value", value.to_string())],
            Op::Resize(r) => vec![
                (
                    "mode",
                    match r.mode {
                        ResizeMode::Nearest => "nearest".into(),
                        ResizeMode::Linear => "linear".into(),
                        ResizeMode::Cubic { a, exclude_outside } => {
                            format!("cubic(a={a},exclude_outside={exclude_outside})")
                        }
                    },
                ),
                ("coord", format!("{:?}", r.coord)),
                ("nearest", format!("{:?}", r.nearest)),
                ("scales", l(&r.scales)),
            ],
            Op::Cast { to } => vec![("to", to.to_string())],
            Op::Gather { axis } => vec![("axis", axis.to_string())],
            Op::Quantize { q, to } => vec![("q", qp(q)), ("to", to.to_string())],
            Op::Dequantize { q } => vec![("q", qp(q))],
            Op::Requantize {
                in_zero_point,
                epi,
                to,
            } => vec![
                ("in_zp", in_zero_point.to_string()),
                ("epi", ep(epi)),
                ("to", to.to_string()),
            ],
            Op::ConvClamp { conv, min, max } | Op::ConvAdd { conv, min, max } => {
                let mut v = Op::Conv(conv.clone()).attrs();
                v.push(("min", format!("{min:?}")));
                v.push(("max", format!("{max:?}")));
                v
            }
            Op::QConv {
                conv,
                x_zero_point,
                epi,
                to,
            } => {
                let mut v = Op::Conv(conv.clone()).attrs();
                v.push(("x_zp", x_zero_point.to_string()));
                v.push(("epi", ep(epi)));
                v.push(("to", to.to_string()));
                v
            }
            Op::QGemm {
                a_zero_point,
                epi,
                to,
            } => vec![
                ("a_zp", a_zero_point.to_string()),
                ("epi", ep(epi)),
                ("to", to.to_string()),
            ],
            Op::QAdd {
                a_zero_point,
                a_multiplier,
                b_zero_point,
                b_multiplier,
                epi,
                to,
            } => vec![
                ("a", format!("({a_zero_point},{a_multiplier})")),
                ("b", format!("({b_zero_point},{b_multiplier})")),
                ("epi", ep(epi)),
                ("to", to.to_string()),
            ],
            Op::QMul {
                a_zero_point,
                b_zero_point,
                epi,
                to,
            }
            | Op::QMatMul {
                a_zero_point,
                b_zero_point,
                epi,
                to,
            } => vec![
                ("a_zp", a_zero_point.to_string()),
                ("b_zp", b_zero_point.to_string()),
                ("epi", ep(epi)),
                ("to", to.to_string()),
            ],
            Op::QAvgPool {
                pool,
                x_zero_point,
                epi,
            } => {
                let mut v = Op::AveragePool(pool.clone()).attrs();
                v.push(("x_zp", x_zero_point.to_string()));
                v.push(("epi", ep(epi)));
                v
            }
            Op::QMean {
                axes,
                keepdims,
                x_zero_point,
                epi,
            } => vec![
                ("axes", l(axes)),
                ("keepdims", keepdims.to_string()),
                ("x_zp", x_zero_point.to_string()),
                ("epi", ep(epi)),
            ],
            Op::Lut { to, .. } => vec![("to", to.to_string())],
            Op::QSoftmax {
                scale_inv,
                zero_point,
                to,
                ..
            } => vec![
                ("step", format!("1/{scale_inv}")),
                ("zp", zero_point.to_string()),
                ("to", to.to_string()),
            ],
            Op::SignMatMul { bipolar, step } => sign_attrs(vec![], *bipolar, step),
            Op::SignConv {
                conv,
                bipolar,
                step,
            } => sign_attrs(Op::Conv(conv.clone()).attrs(), *bipolar, step),
            Op::MatMulInteger => vec![],
        }
    }
}

/// A binary layer's attributes: `bipolar`, and its thresholds as
/// `step=[zero/pos,…]` (`~zero/pos` where the channel's count is negated).
fn sign_attrs(
    mut v: Vec<(&'static str, String)>,
    bipolar: bool,
    step: &Option<Box<SignStep>>,
) -> Vec<(&'static str, String)> {
    if bipolar {
        v.push(("bipolar", "true".into()));
    }
    if let Some(s) = step {
        let t: Vec<String> = (0..s.len())
            .map(|o| {
                let f = if s.flip[o] { "~" } else { "" };
                format!("{f}{}/{}", s.zero[o], s.pos[o])
            })
            .collect();
        v.push(("step", format!("[{}]", t.join(","))));
    }
    v
}

fn qp(q: &QParams) -> String {
    format!("(s={},z={})", q.scale, q.zero_point)
}

/// An epilogue in one token: `m>>s` (fixed point) or `f32*s` (float form),
/// zero point and clamp; per-channel rescales print their count.
fn ep(e: &Epilogue) -> String {
    let r = &e.rescale;
    let scale = match (r.channels(), r.float_at(0)) {
        (1, Some(s)) => format!("f32*{s:e}"),
        (1, None) => format!("{}>>{}", r.multiplier[0], r.shift[0]),
        (n, Some(_)) => format!("f32_per_channel({n})"),
        (n, None) => format!("per_channel({n})"),
    };
    format!("({scale},zp={},[{},{}])", e.zero_point, e.min, e.max)
}

/// Resolves ONNX `auto_pad` into explicit `[begin…, end…]` pads.
/// `upper` is true for SAME_UPPER (extra padding at the end), false for SAME_LOWER.
pub fn same_pads(
    input: &[usize],
    kernel: &[usize],
    strides: &[usize],
    dilations: &[usize],
    upper: bool,
) -> Vec<usize> {
    let n = input.len();
    let mut pads = vec![0; 2 * n];
    for i in 0..n {
        let out = input[i].div_ceil(strides[i]);
        let eff_k = (kernel[i] - 1) * dilations[i] + 1;
        let total = ((out - 1) * strides[i] + eff_k).saturating_sub(input[i]);
        let small = total / 2;
        let big = total - small;
        if upper {
            pads[i] = small;
            pads[i + n] = big;
        } else {
            pads[i] = big;
            pads[i + n] = small;
        }
    }
    pads
}
