//! `If` whose condition is known at compile time folds into the branch it
//! takes; `--const-input` (`ImportOptions::const_inputs`) bakes a graph
//! input in so that it is; otherwise both branches run and `Where` selects.

mod common;

use common::*;
use qcc_ir::{Tensor, TensorData};
use qcc_onnx::proto::ModelProto;
use qcc_onnx::{load_model, ImportOptions};
use std::collections::HashMap;

/// `y = flag ? relu(x) : neg(x) * s`: the else branch reads an outer
/// initializer, the then branch an outer value.
fn if_model(flag_as_initializer: Option<bool>) -> ModelProto {
    let branch = |n: N| graph(vec![n], vec![], vec![out("b")], vec![]);
    let then = branch(node("relu", "Relu", &["x1"], &["b"]));
    let els = graph(
        vec![
            node("neg", "Neg", &["x1"], &["t"]),
            node("scale", "Mul", &["t", "s"], &["b"]),
        ],
        vec![],
        vec![out("b")],
        vec![],
    );
    let mut inits = vec![tf32("s", &[1], &[2.0])];
    let mut inputs = vec![fvi("x", &[2, 3])];
    match flag_as_initializer {
        Some(v) => inits.push(qcc_onnx::proto::TensorProto {
            name: Some("flag".into()),
            dims: vec![],
            data_type: Some(BOOL),
            int32_data: vec![v as i32],
            ..Default::default()
        }),
        None => inputs.push(vi("flag", BOOL, &[])),
    }
    model(
        13,
        graph(
            vec![
                node("id", "Identity", &["x"], &["x1"]),
                node("if1", "If", &["flag"], &["y"])
                    .g("then_branch", then)
                    .g("else_branch", els),
            ],
            inputs,
            vec![out("y")],
            inits,
        ),
    )
}

fn load(m: &ModelProto, consts: &[(&str, &str)]) -> Result<qcc_ir::Graph, String> {
    let (_d, p) = temp_model(m);
    let opts = ImportOptions {
        const_inputs: consts
            .iter()
            .map(|(k, v)| (k.to_string(), v.split(',').map(str::to_string).collect()))
            .collect::<HashMap<_, _>>(),
        ..Default::default()
    };
    load_model(&p, &opts).map_err(|e| e.to_string())
}

fn run(g: &qcc_ir::Graph) -> Vec<f32> {
    let x = Tensor::new(
        vec![2, 3],
        TensorData::F32(vec![-1.0, 2.0, -3.0, 4.0, 0.5, -0.5]),
    )
    .unwrap();
    let y = qcc_interp::run(g, &[x]).expect("interpreter");
    y[0].as_f32().unwrap().to_vec()
}

#[test]
fn a_baked_in_flag_selects_a_branch() {
    let m = if_model(None);
    let g = load(&m, &[("flag", "true")]).unwrap();
    assert_eq!(g.inputs().len(), 1, "flag is no longer an input");
    assert_eq!(run(&g), [0.0, 2.0, 0.0, 4.0, 0.5, 0.0]);
    let g = load(&m, &[("flag", "0")]).unwrap();
    assert_eq!(run(&g), [2.0, -4.0, 6.0, -8.0, -1.0, 1.0]);
}

#[test]
fn a_constant_condition_folds_without_help() {
    for (v, want) in [
        (true, [0.0, 2.0, 0.0, 4.0, 0.5, 0.0]),
        (false, [2.0, -4.0, 6.0, -8.0, -1.0, 1.0]),
    ] {
        let g = load(&if_model(Some(v)), &[]).unwrap();
        assert_eq!(run(&g), want);
    }
}

/// `run` with the flag as a second graph input.
fn run_flag(g: &qcc_ir::Graph, flag: bool) -> Vec<f32> {
    let x = Tensor::new(
        vec![2, 3],
        TensorData::F32(vec![-1.0, 2.0, -3.0, 4.0, 0.5, -0.5]),
    )
    .unwrap();
    let f = Tensor::new(vec![], TensorData::Bool(vec![flag])).unwrap();
    let y = qcc_interp::run(g, &[x, f]).expect("interpreter");
    y[0].as_f32().unwrap().to_vec()
}

#[test]
fn a_run_time_condition_selects_between_both_branches() {
    let g = load(&if_model(None), &[]).unwrap();
    assert_eq!(g.inputs().len(), 2, "the flag stays an input");
    assert!(ops(&g).contains(&"where"), "{:?}", ops(&g));
    assert_eq!(run_flag(&g, true), [0.0, 2.0, 0.0, 4.0, 0.5, 0.0]);
    assert_eq!(run_flag(&g, false), [2.0, -4.0, 6.0, -8.0, -1.0, 1.0]);
}

/// Branches whose outputs differ in shape cannot be selected between.
#[test]
fn branches_of_different_shapes_are_refused_by_name() {
    let branch = |n: N| graph(vec![n], vec![], vec![out("b")], vec![]);
    let then = branch(node("relu", "Relu", &["x"], &["b"]));
    let els = branch(node("sum", "ReduceSum", &["x"], &["b"]).i("keepdims", 0));
    let m = model(
        13,
        graph(
            vec![node("if1", "If", &["flag"], &["y"])
                .g("then_branch", then)
                .g("else_branch", els)],
            vec![vi("flag", BOOL, &[]), fvi("x", &[2, 3])],
            vec![out("y")],
            vec![],
        ),
    );
    let msg = load(&m, &[]).unwrap_err();
    assert!(
        msg.contains(
            "node 'if1' (If): output #0 ('b') is f32[2,3] in the then_branch and f32[] in the \
             else_branch"
        ),
        "{msg}"
    );
}

#[test]
fn bad_constant_inputs_are_named() {
    let m = if_model(None);
    let msg = load(&m, &[("flag", "maybe")]).unwrap_err();
    assert!(
        msg.contains("--const-input flag: 'maybe' is not a bool"),
        "{msg}"
    );
    let msg = load(&m, &[("flag", "1,0")]).unwrap_err();
    assert!(
        msg.contains("--const-input flag: 2 values given for bool[] (1 elements)"),
        "{msg}"
    );
    let msg = load(&m, &[("flag", "1"), ("rate", "16000")]).unwrap_err();
    assert!(
        msg.contains(
            "a constant is given for 'rate', which is not a graph input (inputs: flag, x)"
        ),
        "{msg}"
    );
    // A float input takes numbers, one per element or one for all.
    let g = load(&m, &[("flag", "1"), ("x", "1.5")]).unwrap();
    assert!(g.inputs().is_empty());
    assert_eq!(
        qcc_interp::run(&g, &[]).unwrap()[0].as_f32().unwrap(),
        &[1.5; 6]
    );
    let msg = load(&m, &[("flag", "1"), ("x", "1,2")]).unwrap_err();
    assert!(
        msg.contains("2 values given for f32[2,3] (6 elements)"),
        "{msg}"
    );
}
