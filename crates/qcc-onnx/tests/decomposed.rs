//! Ops the importer builds from other IR ops: Pad's reflect, edge and wrap
//! modes (slices and concats), Tile, CumSum; and what they refuse.

mod common;

use common::*;
use qcc_ir::{Tensor, TensorData};
use qcc_onnx::proto::ModelProto;

fn one_op(opset: i64, n: N, inits: Vec<qcc_onnx::proto::TensorProto>) -> ModelProto {
    model(
        opset,
        graph(vec![n], vec![fvi("x", &[1, 4])], vec![out("y")], inits),
    )
}

fn run(m: &ModelProto) -> Vec<f32> {
    let g = import(m).expect("imports");
    let x = Tensor::new(vec![1, 4], TensorData::F32(vec![1.0, 2.0, 3.0, 4.0])).unwrap();
    qcc_interp::run(&g, &[x]).expect("interpreter")[0].to_f32_vec()
}

fn pad(mode: &str, before: i64, after: i64) -> ModelProto {
    one_op(
        19,
        node("p", "Pad", &["x", "pads"], &["y"]).s("mode", mode),
        vec![ti64("pads", &[4], &[0, before, 0, after])],
    )
}

#[test]
fn pad_modes_copy_the_right_elements() {
    assert_eq!(
        run(&pad("reflect", 2, 3)),
        [3.0, 2.0, 1.0, 2.0, 3.0, 4.0, 3.0, 2.0, 1.0]
    );
    assert_eq!(run(&pad("edge", 1, 2)), [1.0, 1.0, 2.0, 3.0, 4.0, 4.0, 4.0]);
    assert_eq!(
        run(&pad("wrap", 3, 1)),
        [2.0, 3.0, 4.0, 1.0, 2.0, 3.0, 4.0, 1.0]
    );
}

#[test]
fn tile_and_cumsum() {
    let tile = one_op(
        13,
        node("t", "Tile", &["x", "r"], &["y"]),
        vec![ti64("r", &[2], &[2, 1])],
    );
    assert_eq!(run(&tile), [1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0, 4.0]);
    let cum = |excl: i64, rev: i64| {
        one_op(
            14,
            node("c", "CumSum", &["x", "a"], &["y"])
                .i("exclusive", excl)
                .i("reverse", rev),
            vec![ti64("a", &[], &[1])],
        )
    };
    assert_eq!(run(&cum(0, 0)), [1.0, 3.0, 6.0, 10.0]);
    assert_eq!(run(&cum(1, 0)), [0.0, 1.0, 3.0, 6.0]);
    assert_eq!(run(&cum(0, 1)), [10.0, 9.0, 7.0, 4.0]);
    assert_eq!(run(&cum(1, 1)), [9.0, 7.0, 4.0, 0.0]);
}

#[test]
fn what_does_not_fit_is_refused_by_name() {
    let msg = import_err(&pad("reflect", 4, 0));
    assert!(
        msg.contains("node 'p' (Pad): reflect padding of 4 and 0 does not fit dim 1 of size 4"),
        "{msg}"
    );
    let msg = import_err(&one_op(
        13,
        node("t", "Tile", &["x", "r"], &["y"]),
        vec![ti64("r", &[1], &[2])],
    ));
    assert!(
        msg.contains("node 't' (Tile): repeats [2] must hold 2 non-negative values"),
        "{msg}"
    );
}

#[test]
fn einsum_transposes_sums_and_refuses_diagonals() {
    let e = |eq: &str| {
        model(
            13,
            graph(
                vec![node("e", "Einsum", &["x"], &["y"]).s("equation", eq)],
                vec![fvi("x", &[2, 2])],
                vec![out("y")],
                vec![],
            ),
        )
    };
    let run2 = |m: &ModelProto| {
        let g = import(m).expect("imports");
        let x = Tensor::new(vec![2, 2], TensorData::F32(vec![1.0, 2.0, 3.0, 4.0])).unwrap();
        qcc_interp::run(&g, &[x]).expect("interpreter")[0].to_f32_vec()
    };
    assert_eq!(run2(&e("ij->ji")), [1.0, 3.0, 2.0, 4.0]);
    assert_eq!(run2(&e("ij->i")), [3.0, 7.0]);
    assert_eq!(run2(&e("ji")), [1.0, 3.0, 2.0, 4.0]);
    let msg = import_err(&e("ii->i"));
    assert!(
        msg.contains("node 'e' (Einsum): equation 'ii->i': letter 'i' repeats within one operand"),
        "{msg}"
    );
}

/// TopK: ties come out lowest index first, and a -inf in the data is not
/// confused with a position already taken.
#[test]
fn top_k_orders_ties_and_keeps_infinities_apart() {
    let m = model(
        13,
        graph(
            vec![node("t", "TopK", &["x", "k"], &["v", "i"]).i("axis", 1)],
            vec![fvi("x", &[1, 4])],
            vec![out("v"), out("i")],
            vec![ti64("k", &[1], &[3])],
        ),
    );
    let g = import(&m).expect("imports");
    let x = Tensor::new(
        vec![1, 4],
        TensorData::F32(vec![f32::NEG_INFINITY, 3.0, f32::NEG_INFINITY, 3.0]),
    )
    .unwrap();
    let out = qcc_interp::run(&g, &[x]).expect("interpreter");
    assert_eq!(out[0].to_f32_vec(), [3.0, 3.0, f32::NEG_INFINITY]);
    assert_eq!(out[1].to_i64_vec().unwrap(), [1, 3, 0]);
}
