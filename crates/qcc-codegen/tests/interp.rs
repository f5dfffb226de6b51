//! Native results against the reference interpreter (`qcc_interp::run`) for
//! every kernel of this crate.

mod common;
use common::*;
use qcc_ir::{BinaryOp, DType, Graph, Op, Tensor, TensorType, UnaryOp, ValueId};

/// One node applied to graph inputs of the given tensors; all inputs are fed.
fn single(op: Op, inputs: &[Tensor]) -> Graph {
    let mut g = Graph::new("one");
    let ids: Vec<ValueId> = inputs
        .iter()
        .enumerate()
        .map(|(k, t)| ValueId::of(g.add_input(format!("x{k}"), t.ty())))
        .collect();
    let y = g.add_node(op, "op", ids).expect("valid node");
    g.add_output("y", ValueId::of(y));
    g
}

#[test]
fn unary_ops_match_interpreter() {
    let x = rand_tensor(&[3, 33], 1);
    let pos = f32_tensor(&[3, 33], rand_f32(99, 2, 0.01, 20.0));
    let ops = [
        UnaryOp::Relu,
        UnaryOp::Sigmoid,
        UnaryOp::Tanh,
        UnaryOp::Exp,
        UnaryOp::Neg,
        UnaryOp::Abs,
        UnaryOp::Reciprocal,
        UnaryOp::Erf,
        UnaryOp::HardSwish,
        UnaryOp::Silu,
        UnaryOp::Gelu,
        UnaryOp::GeluTanh,
        UnaryOp::LeakyRelu { alpha: 0.2 },
        UnaryOp::HardSigmoid {
            alpha: 0.3,
            beta: 0.4,
        },
        UnaryOp::Clip {
            min: -0.5,
            max: 1.0,
        },
    ];
    for op in ops {
        let g = single(Op::Unary(op), std::slice::from_ref(&x));
        check_interp(&g, std::slice::from_ref(&x), 2e-6);
    }
    for op in [UnaryOp::Log, UnaryOp::Sqrt] {
        let g = single(Op::Unary(op), std::slice::from_ref(&pos));
        check_interp(&g, std::slice::from_ref(&pos), 2e-6);
    }
}

#[test]
fn binary_ops_match_interpreter() {
    let a = rand_tensor(&[2, 3, 4], 3);
    let b = rand_tensor(&[3, 1], 4);
    for op in [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Max,
        BinaryOp::Min,
        BinaryOp::PRelu,
    ] {
        let ins = [a.clone(), b.clone()];
        check_interp(&single(Op::Binary(op), &ins), &ins, 1e-6);
    }
    let base = f32_tensor(&[2, 3, 4], rand_f32(24, 5, 0.1, 3.0));
    let ins = [base, b];
    check_interp(&single(Op::Binary(BinaryOp::Pow), &ins), &ins, 1e-5);
    let ia = i64_tensor(&[2, 3], vec![7, -7, 100, 0, 5, -12]);
    let ib = i64_tensor(&[3], vec![2, 3, -5]);
    for op in [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Max,
        BinaryOp::Min,
    ] {
        let ins = [ia.clone(), ib.clone()];
        check_interp(&single(Op::Binary(op), &ins), &ins, 0.0);
    }
}

#[test]
fn layout_ops_match_interpreter() {
    let x = rand_tensor(&[2, 3, 4], 6);
    let xs = std::slice::from_ref(&x);
    let cases = [
        Op::Reshape { shape: vec![4, 6] },
        Op::Transpose {
            perm: vec![2, 0, 1],
        },
        Op::Slice {
            starts: vec![1, 2, 3],
            steps: vec![-1, -1, -2],
            lens: vec![2, 2, 2],
        },
        Op::Pad {
            pads: vec![1, 0, 2, 0, 1, 1],
            value: -1.0,
        },
        Op::Cast { to: DType::I32 },
    ];
    for op in cases {
        check_interp(&single(op, xs), xs, 0.0);
    }
    let ins = [x.clone(), rand_tensor(&[2, 5, 4], 7)];
    check_interp(&single(Op::Concat { axis: 1 }, &ins), &ins, 0.0);
    let idx = i64_tensor(&[2, 2], vec![0, -1, 2, 1]);
    let ins = [x, idx];
    check_interp(&single(Op::Gather { axis: 1 }, &ins), &ins, 0.0);
}

#[test]
fn small_chain_matches_interpreter() {
    let mut g = Graph::new("chain");
    let x = g.add_input("x", TensorType::f32(vec![2, 8]));
    let w = g.add_const("w", rand_tensor(&[8], 8));
    let m = g
        .add_node(
            Op::Binary(BinaryOp::Mul),
            "m",
            vec![ValueId::of(x), ValueId::of(w)],
        )
        .expect("valid");
    let t = g
        .add_node(Op::Unary(UnaryOp::Tanh), "t", vec![ValueId::of(m)])
        .expect("valid");
    let r = g
        .add_node(Op::Reshape { shape: vec![4, 4] }, "r", vec![ValueId::of(t)])
        .expect("valid");
    let tr = g
        .add_node(
            Op::Transpose { perm: vec![1, 0] },
            "tr",
            vec![ValueId::of(r)],
        )
        .expect("valid");
    g.add_output("y", ValueId::of(tr));
    g.add_output("t", ValueId::of(t));
    check_interp(&g, &[rand_tensor(&[2, 8], 9)], 2e-6);
}
