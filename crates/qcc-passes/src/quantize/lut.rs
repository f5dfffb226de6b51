//! Activations in the integer domain: Relu and Clip become clamp bounds of
//! an epilogue; every other supported activation becomes a 256-entry table
//! (`Op::Lut`) evaluated with the interpreter's own float semantics.

use qcc_ir::quant::{dequantize, quantize};
use qcc_ir::{Op, QParams, Tensor, UnaryOp};

/// Whether `u` can end a unified module.
pub fn is_module_activation(u: &UnaryOp) -> bool {
    matches!(
        u,
        UnaryOp::Relu
            | UnaryOp::Clip { .. }
            | UnaryOp::LeakyRelu { .. }
            | UnaryOp::HardSwish
            | UnaryOp::Silu
            | UnaryOp::Gelu
            | UnaryOp::GeluTanh
            | UnaryOp::HardSigmoid { .. }
            | UnaryOp::Sigmoid
            | UnaryOp::Tanh
    )
}

/// The clamp bounds implementing Relu or Clip on i8 values with parameters
/// `q`; `None` for activations that need a table.
pub fn clamp_bounds(u: &UnaryOp, q: QParams) -> Option<(i32, i32)> {
    match *u {
        UnaryOp::Relu => Some((quantize(0.0, q, -128, 127), 127)),
        UnaryOp::Clip { min, max } => {
            let lo = if min.is_nan() {
                -128
            } else {
                quantize(min, q, -128, 127)
            };
            let hi = if max.is_nan() {
                127
            } else {
                quantize(max, q, -128, 127)
            };
            Some((lo, hi.max(lo)))
        }
        _ => None,
    }
}

/// The table of `u` from i8 inputs with parameters `input` to i8 outputs with
/// parameters `output`: entry `i` is for the input value `i - 128`.
pub fn table(u: UnaryOp, input: QParams, output: QParams) -> Result<Vec<i32>, String> {
    let xs: Vec<f32> = (-128..128).map(|q| dequantize(q, input)).collect();
    let x = Tensor::from_f32(vec![256], xs).ok_or("internal: table input")?;
    let ys = qcc_interp::eval_op(&Op::Unary(u), &[&x], &[])?;
    let ys = ys
        .first()
        .and_then(|t| t.as_f32())
        .ok_or("internal: table output")?;
    Ok(ys.iter().map(|&y| quantize(y, output, -128, 127)).collect())
}

/// The table of `Quantize(Dequantize(i))` from `input`'s parameters to
/// `output`'s: the float simulation of a change of parameters, as ONNX
/// Runtime's QLinearConcat computes it for each input.
pub fn requantize_table(input: QParams, output: QParams) -> Vec<i32> {
    (-128..128)
        .map(|q| quantize(dequantize(q, input), output, -128, 127))
        .collect()
}

/// A table followed by a requantize (`in_zp`, `epi`): one table.
pub fn then_requantize(t: &[i32], in_zp: i32, epi: &qcc_ir::Epilogue) -> Vec<i32> {
    t.iter()
        .map(|&y| crate::quantize::epilogue::requantize(in_zp, epi, y))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relu_clamps_at_the_zero_point_and_clip_at_its_bounds() {
        let q = QParams {
            scale: 0.05,
            zero_point: -20,
        };
        assert_eq!(clamp_bounds(&UnaryOp::Relu, q), Some((-20, 127)));
        let c = UnaryOp::Clip { min: 0.0, max: 6.0 };
        assert_eq!(clamp_bounds(&c, q), Some((-20, 100)));
        let c = UnaryOp::Clip {
            min: f32::NEG_INFINITY,
            max: f32::INFINITY,
        };
        assert_eq!(clamp_bounds(&c, q), Some((-128, 127)));
        assert_eq!(clamp_bounds(&UnaryOp::Sigmoid, q), None);
    }

    #[test]
    fn sigmoid_table_is_monotone_and_spans_its_output() {
        let input = QParams {
            scale: 8.0 / 255.0,
            zero_point: 0,
        };
        let output = QParams {
            scale: 1.0 / 255.0,
            zero_point: -128,
        };
        let t = table(UnaryOp::Sigmoid, input, output).unwrap();
        assert_eq!(t.len(), 256);
        assert!(t.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(t[128], quantize(0.5, output, -128, 127), "sigmoid(0) = 0.5");
        assert!(t[0] < -120 && t[255] > 120);
    }
}
