//! `run` on small graphs built with `qcc_ir::Graph`.

use super::*;
use crate::{run, InterpError};
use qcc_ir::{BinaryOp, DType, Graph, TensorType, UnaryOp, ValueId};

/// `relu(x @ w + b)` with x: f32[1,3], plus `x` itself as a second output.
fn mlp() -> Graph {
    let mut g = Graph::new("mlp");
    let x = g.add_input("x", TensorType::f32([1, 3]));
    let w = g.add_const("w", t(&[3, 2], vec![1.0, -1.0, 2.0, -2.0, 3.0, -3.0]));
    let b = g.add_const("b", t(&[2], vec![0.5, 0.5]));
    let mm = g
        .add_node(Op::MatMul, "mm", vec![ValueId::of(x), ValueId::of(w)])
        .unwrap();
    let add = g
        .add_node(
            Op::Binary(BinaryOp::Add),
            "add",
            vec![ValueId::of(mm), ValueId::of(b)],
        )
        .unwrap();
    let relu = g
        .add_node(Op::Unary(UnaryOp::Relu), "relu", vec![ValueId::of(add)])
        .unwrap();
    g.add_output("y", ValueId::of(relu));
    g.add_output("x_again", ValueId::of(x));
    qcc_ir::verify(&g).unwrap();
    g
}

#[test]
fn runs_a_small_mlp() {
    let g = mlp();
    let x = t(&[1, 3], vec![1.0, 1.0, 1.0]);
    let out = run(&g, std::slice::from_ref(&x)).unwrap();
    assert_eq!(out.len(), 2);
    assert_close(&out[0], &[1, 2], &[6.5, 0.0], 0.0);
    assert_eq!(out[1], x);
}

#[test]
fn intermediate_used_twice_and_output_twice() {
    let mut g = Graph::new("diamond");
    let x = g.add_input("x", TensorType::f32([2]));
    let e = g
        .add_node(Op::Unary(UnaryOp::Exp), "e", vec![ValueId::of(x)])
        .unwrap();
    let n = g
        .add_node(Op::Unary(UnaryOp::Neg), "n", vec![ValueId::of(e)])
        .unwrap();
    let s = g
        .add_node(
            Op::Binary(BinaryOp::Mul),
            "s",
            vec![ValueId::of(e), ValueId::of(n)],
        )
        .unwrap();
    g.add_output("a", ValueId::of(s));
    g.add_output("b", ValueId::of(e));
    g.add_output("c", ValueId::of(s));
    let out = run(&g, &[t(&[2], vec![0.0, 1.0])]).unwrap();
    let e1 = std::f32::consts::E;
    assert_close(&out[0], &[2], &[-1.0, -e1 * e1], 1e-6);
    assert_close(&out[1], &[2], &[1.0, e1], 1e-6);
    assert_eq!(out[0], out[2]);
}

#[test]
fn shape_subgraph_on_i64() {
    // Cast(Gather(shape, -1) * 2) — the kind of graph constant folding evaluates.
    let mut g = Graph::new("shape");
    let s = g.add_const("s", ti(&[3], vec![1, 3, 224]));
    let i = g.add_const("i", ti(&[], vec![-1]));
    let two = g.add_const("two", ti(&[], vec![2]));
    let ga = g
        .add_node(
            Op::Gather { axis: 0 },
            "ga",
            vec![ValueId::of(s), ValueId::of(i)],
        )
        .unwrap();
    let m = g
        .add_node(
            Op::Binary(BinaryOp::Mul),
            "m",
            vec![ValueId::of(ga), ValueId::of(two)],
        )
        .unwrap();
    let c = g
        .add_node(Op::Cast { to: DType::F32 }, "c", vec![ValueId::of(m)])
        .unwrap();
    g.add_output("y", ValueId::of(c));
    let out = run(&g, &[]).unwrap();
    assert_close(&out[0], &[], &[448.0], 0.0);
}

#[test]
fn wrong_input_count_shape_or_dtype_is_an_error() {
    let g = mlp();
    let err = run(&g, &[]).unwrap_err();
    assert!(matches!(err, InterpError::Graph(_)), "{err}");
    assert!(err.to_string().contains("takes 1 inputs, got 0"), "{err}");
    let err = run(&g, &[t(&[1, 4], vec![0.0; 4])]).unwrap_err();
    assert!(matches!(err, InterpError::Input { index: 0, .. }), "{err}");
    assert!(
        err.to_string().contains("expected f32[1,3], got f32[1,4]"),
        "{err}"
    );
    let err = run(&g, &[ti(&[1, 3], vec![0; 3])]).unwrap_err();
    assert!(err.to_string().contains("got i64[1,3]"), "{err}");
}

#[test]
fn node_errors_name_the_node() {
    // Gather with indices from a graph input: an out-of-range index fails at run time.
    let mut g = Graph::new("g");
    let d = g.add_const("d", t(&[3], vec![1.0, 2.0, 3.0]));
    let i = g.add_input("i", TensorType::new(DType::I64, vec![1]));
    let ga = g
        .add_node(
            Op::Gather { axis: 0 },
            "pick",
            vec![ValueId::of(d), ValueId::of(i)],
        )
        .unwrap();
    g.add_output("y", ValueId::of(ga));
    assert_close(
        &run(&g, &[ti(&[1], vec![-3])]).unwrap()[0],
        &[1],
        &[1.0],
        0.0,
    );
    let err = run(&g, &[ti(&[1], vec![5])]).unwrap_err();
    match &err {
        InterpError::Node { node, op, msg } => {
            assert_eq!((node.as_str(), *op), ("pick", "gather"));
            assert!(msg.contains("out of range"), "{msg}");
        }
        other => panic!("unexpected {other}"),
    }
}

#[test]
fn mistyped_node_is_an_error_not_a_panic() {
    // A node whose declared type disagrees with its inputs (an unverified graph).
    let mut g = Graph::new("bad");
    let x = g.add_input("x", TensorType::f32([2]));
    let r = g.add_node_typed(
        Op::Unary(UnaryOp::Relu),
        "r",
        vec![ValueId::of(x)],
        vec![TensorType::f32([3])],
    );
    g.add_output("y", ValueId::of(r));
    let err = run(&g, &[t(&[2], vec![1.0, 2.0])]).unwrap_err();
    assert!(matches!(err, InterpError::Node { .. }), "{err}");
}
