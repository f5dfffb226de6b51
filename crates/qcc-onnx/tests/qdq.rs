//! QuantizeLinear / DequantizeLinear (`src/ops/quant.rs`): run-time tensors
//! with one scale and zero point become the IR's Quantize / Dequantize,
//! constant tensors are computed at import whatever their axis or blocks,
//! and what qcc cannot do exactly is refused by name.

mod common;

use common::*;
use qcc_ir::{Tensor, TensorData};
use qcc_onnx::proto::TensorProto;

const INT8: i32 = 3;
const UINT8: i32 = 2;
const INT32: i32 = 6;

/// An integer initializer of ONNX type `dt` (stored in `int32_data`).
fn tint(name: &str, dt: i32, dims: &[i64], v: &[i32]) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(dt),
        int32_data: v.to_vec(),
        ..Default::default()
    }
}

fn run(g: &qcc_ir::Graph, x: Vec<f32>, shape: &[usize]) -> Vec<f32> {
    let x = Tensor::new(shape.to_vec(), TensorData::F32(x)).unwrap();
    qcc_interp::run(g, &[x]).expect("interpreter")[0].to_f32_vec()
}

/// `y = DQ(Q(x))` per tensor, int8 with a nonzero zero point: rounding
/// half to even, saturation at both ends.
#[test]
fn a_run_time_pair_rounds_and_saturates() {
    let m = model(
        13,
        graph(
            vec![
                node("q", "QuantizeLinear", &["x", "s", "z"], &["xq"]),
                node("dq", "DequantizeLinear", &["xq", "s", "z"], &["y"]),
            ],
            vec![fvi("x", &[6])],
            vec![out("y")],
            vec![tf32("s", &[], &[0.5]), tint("z", INT8, &[], &[-10])],
        ),
    );
    let g = import(&m).expect("imports");
    assert_eq!(ops(&g), ["quantize", "dequantize"]);
    // x/0.5 = 0.5 → 0, 1.5 → 2, -2.5 → -2; 100 → 200-10 saturates at 127.
    let y = run(&g, vec![0.25, 0.75, -1.25, 100.0, -100.0, 3.0], &[6]);
    assert_eq!(y, [0.0, 1.0, -1.0, 68.5, -59.0, 3.0]);
}

/// Without a zero point the quantized type is uint8.
#[test]
fn no_zero_point_means_uint8() {
    let m = model(
        13,
        graph(
            vec![node("q", "QuantizeLinear", &["x", "s"], &["y"])],
            vec![fvi("x", &[3])],
            vec![out("y")],
            vec![tf32("s", &[], &[1.0])],
        ),
    );
    let g = import(&m).expect("imports");
    assert_eq!(output_types(&g), ["u8[3](s=1,z=0)"]);
}

/// Weights (int8, one scale per output channel) and an int32 bias are
/// computed at import: the float op sees `(q - zp) · scale`.
#[test]
fn constant_weights_are_dequantized_per_axis() {
    let m = model(
        13,
        graph(
            vec![
                node("dqw", "DequantizeLinear", &["wq", "ws", "wz"], &["w"]).i("axis", 0),
                node("dqb", "DequantizeLinear", &["bq", "bs"], &["b"]).i("axis", 0),
                node("mm", "MatMul", &["x", "w"], &["xw"]),
                node("add", "Add", &["xw", "b"], &["y"]),
            ],
            vec![fvi("x", &[1, 2])],
            vec![out("y")],
            vec![
                tint("wq", INT8, &[2, 2], &[1, -2, 3, 127]),
                tf32("ws", &[2], &[0.5, 0.25]),
                tint("wz", INT8, &[2], &[0, 1]),
                tint("bq", INT32, &[2], &[4, -8]),
                tf32("bs", &[2], &[0.25, 0.125]),
            ],
        ),
    );
    let g = import(&m).expect("imports");
    // w = [[0.5, -1], [0.5, 31.5]], b = [1, -1].
    assert_eq!(run(&g, vec![1.0, 2.0], &[1, 2]), [2.5, 61.0]);
}

/// Opset 21's blocks: one scale per `block_size` elements along the axis.
#[test]
fn constant_blocks_are_dequantized() {
    let m = model(
        21,
        graph(
            vec![
                node("dqw", "DequantizeLinear", &["wq", "ws"], &["w"])
                    .i("axis", 1)
                    .i("block_size", 2),
                node("add", "Add", &["x", "w"], &["y"]),
            ],
            vec![fvi("x", &[2, 3])],
            vec![out("y")],
            vec![
                tint("wq", UINT8, &[2, 3], &[1, 2, 3, 4, 5, 6]),
                tf32("ws", &[2, 2], &[1.0, 10.0, 0.5, 0.25]),
            ],
        ),
    );
    let g = import(&m).expect("imports");
    assert_eq!(
        run(&g, vec![0.0; 6], &[2, 3]),
        [1.0, 2.0, 30.0, 2.0, 2.5, 1.5]
    );
}

#[test]
fn what_is_not_exact_is_refused_by_name() {
    let pair = |s: TensorProto, z: TensorProto, axis: Option<i64>| {
        let mut q = node("q", "QuantizeLinear", &["x", "s", "z"], &["y"]);
        if let Some(a) = axis {
            q = q.i("axis", a);
        }
        model(
            13,
            graph(vec![q], vec![fvi("x", &[2, 3])], vec![out("y")], vec![s, z]),
        )
    };
    let cases = [
        (
            pair(tf32("s", &[], &[0.0]), tint("z", INT8, &[], &[0]), None),
            "node 'q' (QuantizeLinear): scale 0 is not a positive finite number",
        ),
        (
            pair(
                tf32("s", &[2], &[1.0, 2.0]),
                tint("z", INT8, &[2], &[0, 0]),
                Some(1),
            ),
            "node 'q' (QuantizeLinear): per-axis scale f32[2] does not match axis 1 of length 3",
        ),
        (
            pair(tf32("s", &[], &[1.0]), tint("z", INT32, &[], &[0]), None),
            "node 'q' (QuantizeLinear): quantized type i32 is not supported (int8 and uint8 are)",
        ),
    ];
    for (m, want) in cases {
        let msg = import_err(&m);
        assert!(msg.contains(want), "{msg}\nwant: {want}");
    }
}

/// Weight-only quantized embeddings: an int8 table gathered at run time,
/// then dequantized with one scale and zero point per feature (axis 1).
#[test]
fn a_gathered_int8_embedding_is_dequantized_per_axis() {
    let m = model(
        13,
        graph(
            vec![
                node("g", "Gather", &["table", "ids"], &["rows"]).i("axis", 0),
                node("dq", "DequantizeLinear", &["rows", "s", "z"], &["y"]).i("axis", 1),
            ],
            vec![vi("ids", INT64, &["2"])],
            vec![out("y")],
            vec![
                tint("table", INT8, &[3, 2], &[10, -20, 30, 40, -128, 127]),
                tf32("s", &[2], &[0.5, 0.25]),
                tint("z", INT8, &[2], &[0, 4]),
            ],
        ),
    );
    let g = import(&m).expect("imports");
    let ids = Tensor::new(vec![2], TensorData::I64(vec![2, 0])).unwrap();
    let y = qcc_interp::run(&g, &[ids]).expect("interpreter")[0].to_f32_vec();
    // Row 2: (-128 - 0)·0.5, (127 - 4)·0.25; row 0: 10·0.5, (-20 - 4)·0.25.
    assert_eq!(y, [-64.0, 30.75, 5.0, -6.0]);
}

/// A run-time tensor quantized per axis (float ops computing ONNX's
/// `saturate(round_half_even(x / scale) + zero_point)` element by element)
/// and in blocks along an axis, then dequantized in blocks.
#[test]
fn run_time_tensors_quantize_per_axis_and_in_blocks() {
    let x = Tensor::from_f32(
        vec![2, 4],
        vec![1.0, 2.5, -300.0, 7.0, -3.5, 0.75, 1000.0, f32::MIN],
    )
    .unwrap();
    let per_axis = model(
        13,
        graph(
            vec![node("q", "QuantizeLinear", &["x", "s", "z"], &["y"]).i("axis", 1)],
            vec![fvi("x", &[2, 4])],
            vec![out("y")],
            vec![
                tf32("s", &[4], &[1.0, 0.5, 2.0, 0.25]),
                tint("z", INT8, &[4], &[0, -3, 5, 100]),
            ],
        ),
    );
    let g = import(&per_axis).expect("imports");
    let y = qcc_interp::run(&g, std::slice::from_ref(&x)).expect("interpreter");
    // 1/1 = 1; 2.5/0.5 = 5 - 3 = 2; -300/2 = -150 + 5 = -145; 7/0.25 = 28
    // + 100 = 128 → 127; -3.5 → -4 (ties to even); 0.75/0.5 = 1.5 → 2 - 3
    // = -1; 1000/2 + 5 → 127; MIN / 0.25 → -128.
    assert_eq!(
        y[0].data(),
        &TensorData::I8(vec![1, 2, -128, 127, -4, -1, 127, -128])
    );
    let blocked = model(
        21,
        graph(
            vec![
                node("q", "QuantizeLinear", &["x", "s", "z"], &["q8"])
                    .i("axis", 1)
                    .i("block_size", 3),
                node("dq", "DequantizeLinear", &["q8", "s", "z"], &["y"])
                    .i("axis", 1)
                    .i("block_size", 3),
            ],
            vec![fvi("x", &[2, 4])],
            vec![out("y")],
            vec![
                tf32("s", &[2, 2], &[2.0, 0.5, 4.0, 1.0]),
                tint("z", UINT8, &[2, 2], &[10, 0, 128, 255]),
            ],
        ),
    );
    let g = import(&blocked).expect("imports");
    let y = qcc_interp::run(&g, &[x]).expect("interpreter")[0].to_f32_vec();
    // Row 0, block (s 2, z 10) for columns 0-2: 1/2 → 0 (tie to even) + 10,
    // back to 0; 2.5/2 → 1; -300/2 → 0 after the clamp, back to -20;
    // column 3 (s 0.5, z 0): 14 → 7. Row 1 (s 4, z 128): -3.5/4 → -1, 0.75
    // /4 → 0, 1000/4 → 250 + 128 → 255 = 127·4; column 3 (s 1, z 255):
    // MIN → 0 = -255.
    assert_eq!(y, [0.0, 2.0, -20.0, 7.0, -4.0, 0.0, 508.0, -255.0]);
}

/// QuantizeLinear to int4 (opset 21 `output_dtype`) saturates to [-8, 7];
/// the result is held one value per byte as int8.
#[test]
fn quantizing_to_int4_saturates_to_four_bits() {
    let m = model(
        21,
        graph(
            vec![node("q", "QuantizeLinear", &["x", "s"], &["y"]).i("output_dtype", 22)],
            vec![fvi("x", &[5])],
            vec![out("y")],
            vec![tf32("s", &[], &[0.5])],
        ),
    );
    let g = import(&m).expect("imports");
    let x = Tensor::from_f32(vec![5], vec![-100.0, -4.25, 1.25, 3.5, 9.0]).unwrap();
    let y = qcc_interp::run(&g, &[x]).expect("interpreter");
    // -200 → -8; -8.5 → -8 (ties to even); 2.5 → 2; 7; 18 → 7.
    assert_eq!(y[0].data(), &TensorData::I8(vec![-8, -8, 2, 7, 7]));
}

/// A cast to a 4-bit type (CastLike to an int4 graph input, held as int8)
/// would have to saturate to four bits: refused by name, not run as int8.
#[test]
fn a_cast_to_int4_is_refused() {
    let m = model(
        21,
        graph(
            vec![node("c", "CastLike", &["x", "like"], &["y"])],
            vec![fvi("x", &[3]), vi("like", 22, &["1"])],
            vec![out("y")],
            vec![],
        ),
    );
    let msg = import_err(&m);
    assert!(
        msg.contains("node 'c' (CastLike): a cast to int4 or uint4 is not supported"),
        "{msg}"
    );
}
