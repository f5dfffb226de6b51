//! fold-batch-norm removes the BatchNorm and keeps the graph's results.

use qcc_ir::{ConvAttrs, Graph, Op, Tensor, TensorType, ValueId};
use qcc_passes::fold_batch_norm;

fn seq(n: usize, k: f32) -> Vec<f32> {
    (0..n).map(|i| (i as f32 * 0.37 + k).sin()).collect()
}

fn cst(g: &mut Graph, name: &str, shape: Vec<usize>, k: f32) -> ValueId {
    let n = shape.iter().product();
    let mut v = seq(n, k);
    if name == "var" {
        v.iter_mut().for_each(|x| *x = x.abs() + 0.1);
    }
    ValueId::of(g.add_const(name, Tensor::from_f32(shape, v).unwrap()))
}

fn with_bn(g: &mut Graph, y: ValueId, c: usize) -> ValueId {
    let p: Vec<ValueId> = ["scale", "bias", "mean", "var"]
        .iter()
        .enumerate()
        .map(|(i, n)| cst(g, n, vec![c], i as f32))
        .collect();
    let mut ins = vec![y];
    ins.extend(p);
    ValueId::of(
        g.add_node(Op::BatchNorm { epsilon: 1e-5 }, "bn", ins)
            .unwrap(),
    )
}

/// Runs the pass and checks: no BatchNorm left, same outputs as before (within float rounding).
fn check(mut g: Graph, input: Tensor) {
    let before = qcc_interp::run(&g, std::slice::from_ref(&input)).unwrap();
    assert!(
        fold_batch_norm::run(&mut g, &mut Default::default()).unwrap(),
        "nothing folded"
    );
    qcc_ir::verify(&g).unwrap();
    let text = qcc_ir::print(&g).unwrap();
    assert!(!text.contains("batch_norm"), "{text}");
    let after = qcc_interp::run(&g, &[input]).unwrap();
    let (a, b) = (before[0].as_f32().unwrap(), after[0].as_f32().unwrap());
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() <= 1e-5 * (1.0 + x.abs()), "{x} vs {y}");
    }
}

#[test]
fn conv_then_batch_norm() {
    for bias in [false, true] {
        let mut g = Graph::new("t");
        let x = ValueId::of(g.add_input("x", TensorType::f32(vec![1, 2, 5, 5])));
        let w = cst(&mut g, "w", vec![3, 2, 3, 3], 0.5);
        let mut ins = vec![x, w];
        if bias {
            ins.push(cst(&mut g, "b", vec![3], 0.9));
        }
        let attrs = ConvAttrs {
            strides: vec![1, 1],
            pads: vec![1; 4],
            dilations: vec![1, 1],
            group: 1,
            output_padding: vec![0, 0],
        };
        let y = ValueId::of(g.add_node(Op::Conv(attrs), "conv", ins).unwrap());
        let z = with_bn(&mut g, y, 3);
        g.add_output("z", z);
        check(g, Tensor::from_f32(vec![1, 2, 5, 5], seq(50, 2.0)).unwrap());
    }
}

#[test]
fn gemm_and_matmul_then_batch_norm() {
    for (op, w_shape) in [
        (
            Op::Gemm {
                alpha: 1.0,
                beta: 0.5,
                trans_a: false,
                trans_b: true,
            },
            vec![4, 6],
        ),
        (
            Op::Gemm {
                alpha: 1.0,
                beta: 1.0,
                trans_a: false,
                trans_b: false,
            },
            vec![6, 4],
        ),
        (Op::MatMul, vec![6, 4]),
    ] {
        let mut g = Graph::new("t");
        let x = ValueId::of(g.add_input("x", TensorType::f32(vec![3, 6])));
        let w = cst(&mut g, "w", w_shape, 0.3);
        let mut ins = vec![x, w];
        if matches!(op, Op::Gemm { .. }) {
            ins.push(cst(&mut g, "c", vec![4], 0.1));
        }
        let y = ValueId::of(g.add_node(op, "mm", ins).unwrap());
        let z = with_bn(&mut g, y, 4);
        g.add_output("z", z);
        check(g, Tensor::from_f32(vec![3, 6], seq(18, 1.0)).unwrap());
    }
}

#[test]
fn shared_producer_is_left_alone() {
    let mut g = Graph::new("t");
    let x = ValueId::of(g.add_input("x", TensorType::f32(vec![2, 3])));
    let w = cst(&mut g, "w", vec![3, 3], 0.3);
    let y = ValueId::of(g.add_node(Op::MatMul, "mm", vec![x, w]).unwrap());
    let z = with_bn(&mut g, y, 3);
    g.add_output("z", z);
    g.add_output("y", y);
    assert!(!fold_batch_norm::run(&mut g, &mut Default::default()).unwrap());
}
