//! QONNX's `Quant` (`src/ops/qonnx.rs`): at most 8 bits with a constant
//! scale and zero point it is imported in the forms a QDQ model takes (so
//! `fold-qdq` compiles the layers between them to integer kernels), with
//! the float simulation's values; anything else stays that simulation.

mod common;

use common::*;
use qcc_ir::{Tensor, TensorData};

const DOM: &str = "qonnx.custom_op.general";

/// `y = Quant(x, s, z, bits)` with the given attributes; `x` an input of
/// `shape`, or (`weight`) a constant of those values.
fn quant(
    shape: &[usize],
    weight: Option<&[f32]>,
    (s_dims, s): (&[i64], &[f32]),
    (z, bits): (f32, f32),
    (signed, narrow): (i64, i64),
) -> qcc_ir::Graph {
    let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
    let mut inits = vec![
        tf32("s", s_dims, s),
        tf32("z", &[], &[z]),
        tf32("b", &[], &[bits]),
    ];
    let inputs = match weight {
        Some(w) => {
            inits.push(tf32("x", &dims, w));
            vec![]
        }
        None => vec![fvi("x", shape)],
    };
    let n = node("q", "Quant", &["x", "s", "z", "b"], &["y"])
        .domain(DOM)
        .i("signed", signed)
        .i("narrow", narrow);
    import(&model(13, graph(vec![n], inputs, vec![out("y")], inits))).expect("imports")
}

/// QONNX's definition, in f32 as the graph computes it.
fn reference(
    x: &[f32],
    s: &[f32],
    z: f32,
    (lo, hi): (f32, f32),
    ch: impl Fn(usize) -> usize,
) -> Vec<f32> {
    x.iter()
        .enumerate()
        .map(|(i, &v)| {
            let sc = s[ch(i)];
            ((v / sc + z).round_ties_even().clamp(lo, hi) - z) * sc
        })
        .collect()
}

fn run(g: &qcc_ir::Graph, inputs: &[Tensor]) -> Vec<f32> {
    qcc_interp::run(g, inputs).expect("interpreter")[0].to_f32_vec()
}

/// An 8-bit activation with zero point 0, signed or unsigned: `Quantize`
/// then `Dequantize` (what `fold-qdq` folds), giving the definition's
/// values, ties to even and saturation included.
#[test]
fn an_eight_bit_activation_is_a_quantize_pair() {
    let x = vec![0.25, 0.75, -1.25, 100.0, -100.0, 3.0, 0.5, -0.5];
    for (signed, range) in [(1, (-128.0, 127.0)), (0, (0.0, 255.0))] {
        let g = quant(&[8], None, (&[], &[0.5]), (0.0, 8.0), (signed, 0));
        assert_eq!(ops(&g), ["quantize", "dequantize"], "signed {signed}");
        let input = Tensor::new(vec![8], TensorData::F32(x.clone())).unwrap();
        assert_eq!(run(&g, &[input]), reference(&x, &[0.5], 0.0, range, |_| 0));
    }
}

/// A zero point, fewer bits, or a narrow range on a run-time value: the
/// float simulation (QuantizeLinear would round `x/s` before adding the
/// zero point, and has no narrow or 4-bit range of its own here).
#[test]
fn other_activations_stay_the_simulation() {
    let x = vec![0.25, 0.75, -1.25, 100.0, -100.0, 3.0];
    for ((z, bits), narrow, range) in [
        ((3.0, 8.0), 0, (-128.0, 127.0)),
        ((0.0, 4.0), 0, (-8.0, 7.0)),
        ((0.0, 8.0), 1, (-127.0, 127.0)),
    ] {
        let g = quant(&[6], None, (&[], &[0.5]), (z, bits), (1, narrow));
        assert!(
            !ops(&g).contains(&"quantize"),
            "{z} {bits} {narrow}: {:?}",
            ops(&g)
        );
        let input = Tensor::new(vec![6], TensorData::F32(x.clone())).unwrap();
        assert_eq!(run(&g, &[input]), reference(&x, &[0.5], z, range, |_| 0));
    }
}

/// A constant weight, 4-bit narrow with one scale per output column: its
/// integers as an int8 constant behind `Cast · scale` (the form a
/// DequantizeLinear of a weight takes), the definition's values; with a
/// zero point, `- zero_point` between them.
#[test]
fn a_quantized_weight_keeps_its_integers() {
    let w: Vec<f32> = (0..12).map(|i| (i as f32 - 5.5) * 0.37).collect();
    let s = [0.3, 0.5, 0.7];
    let g = quant(&[4, 3], Some(&w), (&[1, 3], &s), (0.0, 4.0), (1, 1));
    assert_eq!(ops(&g), ["cast", "mul"]);
    assert_eq!(run(&g, &[]), reference(&w, &s, 0.0, (-7.0, 7.0), |i| i % 3));
    let g = quant(&[4, 3], Some(&w), (&[], &[0.25]), (5.0, 8.0), (0, 0));
    assert_eq!(ops(&g), ["cast", "sub", "mul"]);
    assert_eq!(
        run(&g, &[]),
        reference(&w, &[0.25], 5.0, (0.0, 255.0), |_| 0)
    );
}
