//! binarize: a MatMul, or a Gemm with `trans_b` and no bias, of a Sign by
//! ±1 constant weights becomes a SignMatMul with the same results; what is
//! not a binary layer is left alone.

use qcc_ir::{Graph, Op, Tensor, TensorType, UnaryOp, ValueId};
use qcc_passes::{binarize, PassContext};

/// `y = op(Sign(x), w)` with x `[2, 5]`, w of `wshape` from `w`.
fn layer(op: Op, wshape: Vec<usize>, w: Vec<f32>, bias: bool) -> Graph {
    let mut g = Graph::new("t");
    let x = g.add_input("x", TensorType::f32([2, 5]));
    let s = g
        .add_node(Op::Unary(UnaryOp::Sign), "sign", vec![ValueId::of(x)])
        .unwrap();
    let wc = g.add_const("w", Tensor::from_f32(wshape, w).unwrap());
    let mut ins = vec![ValueId::of(s), ValueId::of(wc)];
    if bias {
        let b = g.add_const("b", Tensor::from_f32(vec![3], vec![0.5; 3]).unwrap());
        ins.push(ValueId::of(b));
    }
    let y = g.add_node(op, "fc", ins).unwrap();
    g.add_output("y", ValueId::of(y));
    g
}

fn pm(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| if (i * 7) % 3 == 0 { -1.0 } else { 1.0 })
        .collect()
}

fn run(g: &Graph) -> Vec<f32> {
    let x = Tensor::from_f32(
        vec![2, 5],
        vec![0.3, -2.0, 0.0, 1.5, -0.0, -0.1, 4.0, 0.2, -3.0, 0.0],
    )
    .unwrap();
    qcc_interp::run(g, &[x]).unwrap()[0].to_f32_vec()
}

fn binarized(mut g: Graph) -> (bool, Graph) {
    let changed = binarize::run(&mut g, &mut PassContext::default()).unwrap();
    qcc_ir::verify(&g).unwrap();
    (changed, g)
}

fn ops(g: &Graph) -> Vec<&'static str> {
    g.node_ids()
        .into_iter()
        .map(|id| g.node(id).op.name())
        .filter(|n| *n != "const" && *n != "input")
        .collect()
}

#[test]
fn matmul_and_transposed_gemm_become_sign_matmul() {
    let gemm = Op::Gemm {
        alpha: 1.0,
        beta: 1.0,
        trans_a: false,
        trans_b: true,
    };
    for (op, wshape) in [(Op::MatMul, vec![5, 3]), (gemm, vec![3, 5])] {
        let g = layer(op.clone(), wshape, pm(15), false);
        let want = run(&g);
        let (changed, b) = binarized(g);
        assert!(changed, "{op:?}");
        assert_eq!(ops(&b), ["sign_matmul"], "{op:?}");
        assert_eq!(run(&b), want, "{op:?}");
    }
}

#[test]
fn other_layers_stay() {
    let gemm = |alpha| Op::Gemm {
        alpha,
        beta: 1.0,
        trans_a: false,
        trans_b: false,
    };
    let mut half = pm(15);
    half[4] = 0.5;
    for (what, g) in [
        (
            "a weight of 0.5",
            layer(Op::MatMul, vec![5, 3], half, false),
        ),
        ("a bias", layer(gemm(1.0), vec![5, 3], pm(15), true)),
        ("alpha 2", layer(gemm(2.0), vec![5, 3], pm(15), false)),
    ] {
        let (changed, b) = binarized(g);
        assert!(!changed, "{what}");
        assert!(ops(&b).contains(&"sign"), "{what}");
    }
}

/// `y = Where(x ≥ 0, 1, -1) · s` times weights ±α (QONNX's BipolarQuant
/// of the activations and of the weights, folded).
fn bipolar_layer(s: f32, alpha: f32) -> Graph {
    use qcc_ir::{BinaryOp, CompareOp};
    let mut g = Graph::new("t");
    let x = g.add_input("x", TensorType::f32([2, 5]));
    let scalar = |g: &mut Graph, name: &str, v: f32| {
        ValueId::of(g.add_const(name, Tensor::from_f32(vec![], vec![v]).unwrap()))
    };
    let (zero, one, minus) = (
        scalar(&mut g, "zero", 0.0),
        scalar(&mut g, "one", 1.0),
        scalar(&mut g, "minus", -1.0),
    );
    let ge = g
        .add_node(
            Op::Compare(CompareOp::GreaterOrEqual),
            "ge",
            vec![ValueId::of(x), zero],
        )
        .unwrap();
    let w = g
        .add_node(Op::Where, "where", vec![ValueId::of(ge), one, minus])
        .unwrap();
    let sc = scalar(&mut g, "s", s);
    let a = g
        .add_node(
            Op::Binary(BinaryOp::Mul),
            "scaled",
            vec![ValueId::of(w), sc],
        )
        .unwrap();
    let wv: Vec<f32> = pm(15).iter().map(|v| v * alpha).collect();
    let wc = g.add_const("w", Tensor::from_f32(vec![5, 3], wv).unwrap());
    let y = g
        .add_node(Op::MatMul, "fc", vec![ValueId::of(a), ValueId::of(wc)])
        .unwrap();
    g.add_output("y", ValueId::of(y));
    g
}

/// QONNX's bipolar layer (zeros count +1) with power-of-two scales becomes a
/// bipolar SignMatMul times s·α, with the same results (the inputs hold
/// zeros of both signs); other scales keep the float MatMul.
#[test]
fn bipolar_layers_become_bipolar_sign_matmul() {
    let g = bipolar_layer(0.5, 0.25);
    let want = run(&g);
    let (changed, b) = binarized(g);
    assert!(changed);
    assert!(ops(&b).contains(&"sign_matmul"), "{:?}", ops(&b));
    let bipolar = b.node_ids().into_iter().any(|id| {
        b.node(id).op
            == Op::SignMatMul {
                bipolar: true,
                step: None,
            }
    });
    assert!(bipolar);
    assert_eq!(run(&b), want);
    let g = bipolar_layer(0.3, 0.25);
    let (changed, b) = binarized(g);
    assert!(!changed && ops(&b).contains(&"matmul"));
}

/// `y = Conv(pool(Sign(x)), w)` with x `[1, 3, 6, 6]` and a 2×2 MaxPool
/// between the Sign and the Conv when `pooled`; w `[3, 3/group, 3, 3]` from `w`.
fn conv_layer(w: Vec<f32>, pooled: bool, bias: bool, group: usize) -> Graph {
    let mut g = Graph::new("t");
    let x = g.add_input("x", TensorType::f32([1, 3, 6, 6]));
    let mut s = g
        .add_node(Op::Unary(UnaryOp::Sign), "sign", vec![ValueId::of(x)])
        .unwrap();
    if pooled {
        let pool = qcc_ir::PoolAttrs {
            kernel: vec![2, 2],
            strides: vec![2, 2],
            pads: vec![0; 4],
            dilations: vec![1, 1],
            ceil_mode: false,
            count_include_pad: false,
        };
        s = g
            .add_node(Op::MaxPool(pool), "pool", vec![ValueId::of(s)])
            .unwrap();
    }
    let wc = g.add_const("w", Tensor::from_f32(vec![3, 3 / group, 3, 3], w).unwrap());
    let mut ins = vec![ValueId::of(s), ValueId::of(wc)];
    if bias {
        let b = g.add_const("b", Tensor::from_f32(vec![3], vec![0.5; 3]).unwrap());
        ins.push(ValueId::of(b));
    }
    let conv = qcc_ir::ConvAttrs {
        strides: vec![1, 1],
        pads: vec![1, 1, 1, 1],
        dilations: vec![1, 1],
        group,
        output_padding: vec![0, 0],
    };
    let y = g.add_node(Op::Conv(conv), "conv", ins).unwrap();
    g.add_output("y", ValueId::of(y));
    g
}

fn run_conv(g: &Graph) -> Vec<f32> {
    let v: Vec<f32> = (0..108)
        .map(|i| match i % 5 {
            0 => 0.0,
            k => (k as f32 - 2.5) * (1.0 + (i % 3) as f32),
        })
        .collect();
    let x = Tensor::from_f32(vec![1, 3, 6, 6], v).unwrap();
    qcc_interp::run(g, &[x]).unwrap()[0].to_f32_vec()
}

#[test]
fn conv_of_signs_becomes_sign_conv() {
    for pooled in [false, true] {
        let g = conv_layer(pm(81), pooled, false, 1);
        let want = run_conv(&g);
        let (changed, b) = binarized(g);
        assert!(changed, "pooled {pooled}");
        let want_ops: &[&str] = if pooled {
            &["sign", "max_pool", "sign_conv"]
        } else {
            &["sign_conv"]
        };
        assert_eq!(ops(&b), want_ops, "pooled {pooled}");
        assert_eq!(run_conv(&b), want, "pooled {pooled}");
    }
    // A bias, several groups or weights other than ±1: not binary layers.
    let mut w = pm(81);
    w[4] = 0.5;
    for g in [
        conv_layer(pm(81), false, true, 1),
        conv_layer(pm(27), false, false, 3),
        conv_layer(w, false, false, 1),
    ] {
        let (changed, b) = binarized(g);
        assert!(!changed);
        assert!(ops(&b).contains(&"conv"));
    }
}

/// XNOR-Net's scaled binary weights: ±α per output channel (powers of two,
/// so the float sums are exact) become a `SignConv` by the ±1 weights times
/// α per channel; an α that is not a power of two is no binary layer.
#[test]
fn per_channel_alpha_scales_the_counts() {
    let alphas = [1.0f32, 0.5, 4.0];
    let w: Vec<f32> = pm(81)
        .iter()
        .enumerate()
        .map(|(i, v)| v * alphas[i / 27])
        .collect();
    let g = conv_layer(w.clone(), true, false, 1);
    let want = run_conv(&g);
    let (changed, b) = binarized(g);
    assert!(changed);
    assert_eq!(ops(&b), ["sign", "max_pool", "sign_conv", "mul"]);
    assert_eq!(run_conv(&b), want);
    let mut odd = w;
    odd[30] *= 0.3 / 0.5; // channel 1 now mixes 0.5 and 0.3
    let (changed, _) = binarized(conv_layer(odd, true, false, 1));
    assert!(!changed);
    let third: Vec<f32> = pm(81)
        .iter()
        .enumerate()
        .map(|(i, v)| v * if i / 27 == 2 { 0.3 } else { 1.0 })
        .collect();
    let (changed, _) = binarized(conv_layer(third, true, false, 1));
    assert!(!changed);
}

/// `x [2, 5] → Sign → MatMul ±1 [5, 3]`, then `links` (op, per-channel
/// constant `[3]` or `[1, 3]`, whether the chain value is the second
/// operand), then `end`: a `Sign` ("sign"), nothing ("none"), or a second
/// binary layer through a Sign ("layer").
/// One link of a chain: op, constant, its shape, whether the chain value
/// is the second operand.
type ChainLink = (qcc_ir::BinaryOp, Vec<f32>, Vec<usize>, bool);

fn chain(links: &[ChainLink], end: &str) -> Graph {
    let mut g = Graph::new("t");
    let x = g.add_input("x", TensorType::f32([2, 5]));
    let s = g
        .add_node(Op::Unary(UnaryOp::Sign), "sign", vec![ValueId::of(x)])
        .unwrap();
    let wc = g.add_const("w", Tensor::from_f32(vec![5, 3], pm(15)).unwrap());
    let mut v = ValueId::of(
        g.add_node(Op::MatMul, "fc", vec![ValueId::of(s), ValueId::of(wc)])
            .unwrap(),
    );
    for (i, (op, k, shape, second)) in links.iter().enumerate() {
        let kc = ValueId::of(g.add_const(
            format!("k{i}"),
            Tensor::from_f32(shape.clone(), k.clone()).unwrap(),
        ));
        let ins = if *second { vec![kc, v] } else { vec![v, kc] };
        v = ValueId::of(g.add_node(Op::Binary(*op), format!("l{i}"), ins).unwrap());
    }
    let y = match end {
        "sign" => ValueId::of(
            g.add_node(Op::Unary(UnaryOp::Sign), "sign2", vec![v])
                .unwrap(),
        ),
        "layer" => {
            let s2 = g
                .add_node(Op::Unary(UnaryOp::Sign), "sign2", vec![v])
                .unwrap();
            let w2 = g.add_const("w2", Tensor::from_f32(vec![3, 2], pm(6)).unwrap());
            ValueId::of(
                g.add_node(Op::MatMul, "fc2", vec![ValueId::of(s2), ValueId::of(w2)])
                    .unwrap(),
            )
        }
        _ => v,
    };
    g.add_output("y", y);
    g
}

/// The graph on every sign pattern of a 5-wide row (3^5 of them, two rows
/// an input): every count a column of ±1 weights can reach.
fn run_many(g: &Graph) -> Vec<Vec<f32>> {
    (0..122)
        .map(|i| {
            let x: Vec<f32> = (0..10)
                .map(|j| {
                    let p = (2 * i + j / 5) % 243;
                    let digit = p / 3usize.pow((j % 5) as u32) % 3;
                    [-1.5, 0.0, 2.0][digit]
                })
                .collect();
            let x = Tensor::from_f32(vec![2, 5], x).unwrap();
            qcc_interp::run(g, &[x]).unwrap()[0].to_f32_vec()
        })
        .collect()
}

/// A binary layer's per-channel chain into a Sign (a batch norm's scale and
/// shift, a negative scale, `k - x`, a division, a zero scale) folds into
/// its thresholds: one node, the same values on every sign pattern of the
/// input, including counts the chain maps to exactly 0.
#[test]
fn batch_norm_and_sign_fold_into_thresholds() {
    use qcc_ir::BinaryOp::*;
    let cases: Vec<Vec<ChainLink>> = vec![
        // x·a + b: 0 at count 1 (a = 0.5, b = -0.5), never (a = -2, b = 1),
        // always (a = 0, b = 0).
        vec![
            (Mul, vec![0.5, -2.0, 0.0], vec![3], false),
            (Add, vec![-0.5, 1.0, 0.0], vec![1, 3], true),
        ],
        // (k - x) / d - e, one scalar constant.
        vec![
            (Sub, vec![1.0, -3.0, 0.5], vec![3], true),
            (Div, vec![4.0, -0.25, 2.0], vec![3], false),
            (Sub, vec![0.25], vec![], false),
        ],
    ];
    for (i, links) in cases.iter().enumerate() {
        for end in ["sign", "layer"] {
            let g = chain(links, end);
            let want = run_many(&g);
            let (changed, b) = binarized(g);
            assert!(changed);
            let ops = ops(&b);
            assert!(
                ops.iter().all(|o| *o == "sign_matmul"),
                "case {i} {end}: {ops:?}"
            );
            let stepped = b
                .node_ids()
                .into_iter()
                .any(|id| matches!(&b.node(id).op, Op::SignMatMul { step: Some(_), .. }));
            assert!(stepped, "case {i} {end}");
            assert_eq!(run_many(&b), want, "case {i} {end}");
        }
    }
}

/// What does not fold: no Sign at the end, a link read twice, a constant
/// along another axis than the channels', a division by zero.
#[test]
fn chains_that_are_not_per_channel_monotone_stay() {
    use qcc_ir::BinaryOp::*;
    let bn = vec![(Add, vec![0.5, -0.5, 1.5], vec![3], false)];
    let g = chain(&bn, "none");
    let (_, b) = binarized(g);
    assert!(ops(&b).contains(&"add"), "{:?}", ops(&b));
    // Along rows ([2, 1]), not channels.
    let rows = vec![(Add, vec![0.5, -0.5], vec![2, 1], false)];
    let (_, b) = binarized(chain(&rows, "sign"));
    assert!(ops(&b).contains(&"sign"), "{:?}", ops(&b));
    let div0 = vec![(Div, vec![1.0, 0.0, 2.0], vec![3], false)];
    let (_, b) = binarized(chain(&div0, "sign"));
    assert!(ops(&b).contains(&"sign"), "{:?}", ops(&b));
    // The shifted count also read by a second output.
    let mut g = chain(&bn, "sign");
    let shifted = g
        .node_ids()
        .into_iter()
        .find(|&id| g.node(id).name == "l0")
        .unwrap();
    g.add_output("also", ValueId::of(shifted));
    let (_, b) = binarized(g);
    assert!(ops(&b).contains(&"sign"), "{:?}", ops(&b));
}
