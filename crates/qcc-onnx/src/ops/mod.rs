//! One module per op family; each builder turns one ONNX node into IR nodes
//! and returns the IR values of the node's outputs, in order. [`validate`]
//! holds the static checks (op known, attribute values supported) that
//! `check_model` runs on every node.

mod control;
mod conv;
mod einsum;
mod elementwise;
mod misc;
mod nbits;
mod nn;
mod pool;
mod qlinear;
mod qonnx;
mod quant;
mod reduce;
mod resize;
mod rnn;
mod schema;
#[rustfmt::skip]
mod schema_table;
mod shape;
mod slicing;
mod validate;

use crate::error::Problem;
use crate::node::NodeCx;
use qcc_ir::{BinaryOp, CompareOp, LogicOp, Op, ReduceOp, UnaryOp, ValueId};

pub(crate) use validate::validate;

type R = Result<Vec<ValueId>, Problem>;

/// Every supported default-domain op and the first opset that defines it.
pub(crate) const OPS: &[(&str, i64)] = &[
    ("Abs", 1),
    ("Add", 1),
    ("And", 1),
    ("ArgMax", 1),
    ("ArgMin", 1),
    ("AveragePool", 1),
    ("BatchNormalization", 1),
    ("Cast", 1),
    ("CastLike", 15),
    ("Clip", 1),
    ("Concat", 1),
    ("Constant", 1),
    ("ConstantOfShape", 9),
    ("Conv", 1),
    ("ConvInteger", 10),
    ("ConvTranspose", 1),
    ("CumSum", 11),
    ("DequantizeLinear", 10),
    ("Div", 1),
    ("Dropout", 1),
    ("DynamicQuantizeLinear", 11),
    ("Einsum", 12),
    ("Equal", 1),
    ("Erf", 9),
    ("Exp", 1),
    ("Expand", 8),
    ("Flatten", 1),
    ("GRU", 1),
    ("Gather", 1),
    ("Gelu", 20),
    ("Gemm", 1),
    ("GlobalAveragePool", 1),
    ("GlobalMaxPool", 1),
    ("Greater", 1),
    ("GreaterOrEqual", 12),
    ("HardSigmoid", 1),
    ("HardSwish", 14),
    ("Identity", 1),
    ("If", 1),
    ("InstanceNormalization", 1),
    ("LRN", 1),
    ("LSTM", 1),
    ("LayerNormalization", 17),
    ("LeakyRelu", 1),
    ("Less", 1),
    ("LessOrEqual", 12),
    ("Log", 1),
    ("LogSoftmax", 1),
    ("MatMul", 1),
    ("MatMulInteger", 10),
    ("Max", 1),
    ("MaxPool", 1),
    ("Min", 1),
    ("Mul", 1),
    ("Neg", 1),
    ("Not", 1),
    ("Or", 1),
    ("PRelu", 1),
    ("Pad", 1),
    ("Pow", 1),
    ("QLinearConv", 10),
    ("QLinearMatMul", 10),
    ("QuantizeLinear", 10),
    ("RNN", 1),
    ("Range", 11),
    ("Reciprocal", 1),
    ("ReduceMax", 1),
    ("ReduceMean", 1),
    ("ReduceSum", 1),
    ("Relu", 1),
    ("Reshape", 1),
    ("Resize", 10),
    ("Round", 11),
    ("ScatterND", 11),
    ("Shape", 1),
    ("Sigmoid", 1),
    ("Sign", 9),
    ("Size", 1),
    ("Slice", 1),
    ("Softmax", 1),
    ("Split", 1),
    ("Sqrt", 1),
    ("Squeeze", 1),
    ("Sub", 1),
    ("Sum", 1),
    ("Tanh", 1),
    ("Tile", 6),
    ("TopK", 1),
    ("Transpose", 1),
    ("Unsqueeze", 1),
    ("Upsample", 7),
    ("Where", 9),
    ("Xor", 1),
];

/// Every supported op of ONNX Runtime's `com.microsoft` domain (the
/// QOperator format's contrib ops): its input count range and attributes.
pub(crate) const CONTRIB: &[(&str, usize, usize, &[&str])] = &[
    (
        "DynamicQuantizeLSTM",
        12,
        12,
        &[
            "activation_alpha",
            "activation_beta",
            "activations",
            "clip",
            "direction",
            "hidden_size",
            "input_forget",
        ],
    ),
    (
        "MatMulNBits",
        3,
        6,
        &["K", "N", "accuracy_level", "bits", "block_size"],
    ),
    ("QGemm", 6, 9, &["alpha", "transA", "transB"]),
    ("QLinearAdd", 7, 8, &[]),
    (
        "QLinearAveragePool",
        4,
        5,
        &[
            "auto_pad",
            "ceil_mode",
            "channels_last",
            "count_include_pad",
            "kernel_shape",
            "pads",
            "strides",
        ],
    ),
    ("QLinearConcat", 5, usize::MAX, &["axis"]),
    ("QLinearGlobalAveragePool", 4, 5, &["channels_last"]),
    ("QLinearLeakyRelu", 4, 5, &["alpha"]),
    ("QLinearMul", 7, 8, &[]),
    ("QLinearSigmoid", 4, 5, &[]),
    ("QLinearSoftmax", 4, 5, &["axis", "opset"]),
];

/// The first opset defining a supported op; `None` if qcc does not support it.
pub(crate) fn since(op_type: &str) -> Option<i64> {
    OPS.iter().find(|(n, _)| *n == op_type).map(|&(_, v)| v)
}

/// Translates one node (already validated).
pub(crate) fn build(cx: &mut NodeCx) -> R {
    use elementwise as e;
    match cx.node.op_type() {
        "Abs" => e::unary(cx, UnaryOp::Abs),
        "Sign" => e::unary(cx, UnaryOp::Sign),
        "Erf" => e::unary(cx, UnaryOp::Erf),
        "Round" => e::unary(cx, UnaryOp::Round),
        "Exp" => e::unary(cx, UnaryOp::Exp),
        "HardSwish" => e::unary(cx, UnaryOp::HardSwish),
        "Log" => e::unary(cx, UnaryOp::Log),
        "Neg" => e::unary(cx, UnaryOp::Neg),
        "Reciprocal" => e::unary(cx, UnaryOp::Reciprocal),
        "Relu" => e::unary(cx, UnaryOp::Relu),
        "Sigmoid" => e::unary(cx, UnaryOp::Sigmoid),
        "Sqrt" => e::unary(cx, UnaryOp::Sqrt),
        "Tanh" => e::unary(cx, UnaryOp::Tanh),
        "LeakyRelu" => e::leaky_relu(cx),
        "HardSigmoid" => e::hard_sigmoid(cx),
        "Clip" => e::clip(cx),
        "Gelu" => e::gelu(cx),
        "Add" => e::binary(cx, BinaryOp::Add),
        "Sub" => e::binary(cx, BinaryOp::Sub),
        "Mul" => e::binary(cx, BinaryOp::Mul),
        "Div" => e::binary(cx, BinaryOp::Div),
        "Pow" => e::binary(cx, BinaryOp::Pow),
        "PRelu" => e::binary(cx, BinaryOp::PRelu),
        "Max" => e::variadic(cx, BinaryOp::Max),
        "Min" => e::variadic(cx, BinaryOp::Min),
        "Sum" => e::variadic(cx, BinaryOp::Add),
        "Equal" => e::logic(cx, Op::Compare(CompareOp::Equal), 2),
        "Greater" => e::logic(cx, Op::Compare(CompareOp::Greater), 2),
        "GreaterOrEqual" => e::logic(cx, Op::Compare(CompareOp::GreaterOrEqual), 2),
        "Less" => e::logic(cx, Op::Compare(CompareOp::Less), 2),
        "LessOrEqual" => e::logic(cx, Op::Compare(CompareOp::LessOrEqual), 2),
        "And" => e::logic(cx, Op::Logic(LogicOp::And), 2),
        "Or" => e::logic(cx, Op::Logic(LogicOp::Or), 2),
        "Xor" => e::logic(cx, Op::Logic(LogicOp::Xor), 2),
        "Not" => e::logic(cx, Op::Not, 1),
        "Where" => e::logic(cx, Op::Where, 3),
        "Conv" => conv::conv(cx),
        "ConvTranspose" => conv::conv_transpose(cx),
        "MaxPool" => pool::max_pool(cx),
        "AveragePool" => pool::average_pool(cx),
        "GlobalAveragePool" => pool::global(cx, ReduceOp::Mean),
        "GlobalMaxPool" => pool::global(cx, ReduceOp::Max),
        "Gemm" => nn::gemm(cx),
        "MatMul" => nn::matmul(cx),
        "BatchNormalization" => nn::batch_norm(cx),
        "LayerNormalization" => nn::layer_norm(cx),
        "Softmax" => nn::softmax(cx, false),
        "LogSoftmax" => nn::softmax(cx, true),
        "Dropout" => nn::dropout(cx),
        "ReduceMean" => reduce::reduce(cx, ReduceOp::Mean, 18),
        "ReduceMax" => reduce::reduce(cx, ReduceOp::Max, 18),
        "ReduceSum" => reduce::reduce(cx, ReduceOp::Sum, 13),
        "Reshape" => shape::reshape(cx),
        "Flatten" => shape::flatten(cx),
        "Squeeze" => shape::squeeze(cx),
        "Unsqueeze" => shape::unsqueeze(cx),
        "Transpose" => shape::transpose(cx),
        "Expand" => shape::expand(cx),
        "Identity" => misc::identity(cx),
        "If" => control::if_(cx),
        "Concat" => slicing::concat(cx),
        "Split" => slicing::split(cx),
        "Slice" => slicing::slice(cx),
        "Gather" => slicing::gather(cx),
        "Pad" => slicing::pad(cx),
        "Resize" => resize::resize(cx),
        "Upsample" => resize::upsample(cx),
        "QuantizeLinear" => quant::quantize_linear(cx),
        "DynamicQuantizeLinear" => quant::dynamic_quantize_linear(cx),
        "MatMulInteger" => quant::matmul_integer(cx),
        "QLinearConv" => qlinear::conv(cx),
        "ConvInteger" => qlinear::conv_integer(cx),
        "QLinearMatMul" => qlinear::matmul(cx),
        "QGemm" => qlinear::gemm(cx),
        "QLinearAdd" => qlinear::binary(cx, "Add"),
        "QLinearMul" => qlinear::binary(cx, "Mul"),
        "QLinearAveragePool" => qlinear::unary(cx, "AveragePool"),
        "QLinearGlobalAveragePool" => qlinear::unary(cx, "GlobalAveragePool"),
        "QLinearLeakyRelu" => qlinear::unary(cx, "LeakyRelu"),
        "QLinearSigmoid" => qlinear::unary(cx, "Sigmoid"),
        "QLinearConcat" => qlinear::concat(cx),
        "MatMulNBits" => nbits::matmul_nbits(cx),
        "QLinearSoftmax" => qlinear::softmax(cx),
        "Quant" if qonnx::is_qonnx_domain(cx.node.domain()) => qonnx::quant(cx),
        "BipolarQuant" if qonnx::is_qonnx_domain(cx.node.domain()) => qonnx::bipolar(cx),
        "DequantizeLinear" => quant::dequantize_linear(cx),
        "LSTM" => rnn::recurrent(cx, rnn::Cell::Lstm, false),
        "DynamicQuantizeLSTM" => rnn::recurrent(cx, rnn::Cell::Lstm, true),
        "GRU" => rnn::recurrent(cx, rnn::Cell::Gru, false),
        "RNN" => rnn::recurrent(cx, rnn::Cell::Rnn, false),
        "InstanceNormalization" => nn::instance_norm(cx),
        "LRN" => nn::lrn(cx),
        "Tile" => slicing::tile(cx),
        "CumSum" => slicing::cumsum(cx),
        "ArgMax" => reduce::arg(cx, false),
        "ArgMin" => reduce::arg(cx, true),
        "Einsum" => einsum::einsum(cx),
        "TopK" => reduce::top_k(cx),
        "ScatterND" => slicing::scatter_nd(cx),
        "Constant" => misc::constant(cx),
        "ConstantOfShape" => misc::constant_of_shape(cx),
        "Range" => misc::range(cx),
        "Shape" => misc::shape(cx),
        "Size" => misc::size(cx),
        "Cast" => misc::cast(cx),
        "CastLike" => misc::cast_like(cx),
        op => Err(cx.err(unsupported(op, cx.node.domain()))),
    }
}

/// Why an op qcc does not import is unsupported: `unsupported op` (with its
/// domain when not ONNX's), and for the quantized formats qcc cannot read
/// yet, which format it is and what it reads instead.
pub(crate) fn unsupported(op: &str, domain: &str) -> String {
    let qdq = "qcc reads statically quantized models (quantize_static, QDQ or QOperator \
               format) or quantizes the float model itself (--quantize int8)";
    let ms = domain == "com.microsoft";
    let base = if crate::model::is_default_domain(domain) {
        "unsupported op".to_string()
    } else {
        format!("unsupported op (domain '{domain}')")
    };
    let kind = match op {
        "DynamicQuantizeMatMul" if ms => "dynamically quantized model (quantize_dynamic)",
        _ if !ms && CONTRIB.iter().any(|c| c.0 == op) => {
            return format!(
                "{base}: {op} is an ONNX Runtime contrib op, read in domain 'com.microsoft'"
            )
        }
        _ => return base,
    };
    format!("{base}: a {kind}, not supported yet; {qdq}")
}

/// Largest element count of a tensor the importer materializes itself
/// (ConstantOfShape, Range, Expand), so a hostile model cannot exhaust memory.
pub(crate) const MAX_CONST_ELEMS: usize = 1 << 28;

/// Largest total of bytes the importer generates for a whole model (the
/// sum over its ConstantOfShape, Range and Expand nodes): a tiny model must
/// not turn into gigabytes of weights.
pub(crate) const MAX_GENERATED_BYTES: u128 = 256 << 20;

#[cfg(test)]
mod tests {
    #[test]
    fn op_table_is_sorted_and_unique() {
        let names: Vec<&str> = super::OPS.iter().map(|(n, _)| *n).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(names, sorted);
    }
}
