//! Quantization of particular graph shapes: a concat of two branches (one
//! through a max pool), table activations, `--keep-float`, a float island
//! (Softmax), MatMul with a 3-D input, a standalone BatchNorm, Sub/Mul with
//! constants, layout ops, pools that cannot be integer, an accumulator that
//! could overflow, and a Relu that must stay a requantize.

mod quant_common;

use qcc_ir::{BinaryOp, Graph, Op, UnaryOp, ValueId};
use qcc_passes::{PassContext, QuantConfig, ScaleFormat};
use quant_common::*;

/// Quantizes a copy of `g` with `cfg`, checks the side table, the halving of
/// quantization ops and the accuracy; returns the quantized graph.
fn check(g: &Graph, cfg: QuantConfig, min_db: f64) -> (Graph, PassContext) {
    let mut q = g.clone();
    let mut rng = Rng::new(3);
    let cal = samples(g, &mut rng, 8);
    let cx = quantize(&mut q, cfg, cal);
    check_qparams(&q, &cx);
    let mut rng = Rng::new(4);
    let test = samples(g, &mut rng, 3);
    let (want, got) = compare(g, &q, &test);
    let db = sqnr(&want, &got);
    let text = qcc_ir::print(&q).unwrap();
    eprintln!(
        "{}: SQNR {db:.1} dB, naive {:?}, final {:?}\n{text}",
        g.name, cx.quant_stats.naive, cx.quant_stats.final_counts
    );
    assert!(db > min_db, "{}: SQNR {db:.1} dB\n{text}", g.name);
    (q, cx)
}

fn two_branch_concat() -> Graph {
    let mut rng = Rng::new(11);
    let mut g = Graph::new("concat");
    let x = input(&mut g, "x", &[1, 3, 8, 8]);
    let a = conv(&mut g, &mut rng, "conv_a", x, 4, 3, 1);
    let a = relu(&mut g, "relu_a", a);
    let a = node(&mut g, Op::MaxPool(pool(3, 1, 1)), "pool_a", vec![a]);
    let b = conv(&mut g, &mut rng, "conv_b", x, 6, 1, 1);
    let c = node(&mut g, Op::Concat { axis: 1 }, "cat", vec![a, b]);
    let y = conv(&mut g, &mut rng, "conv_c", c, 4, 3, 1);
    g.add_output("y", y);
    g
}

#[test]
fn concat_shares_one_scale_pushed_into_both_branches() {
    for scales in [ScaleFormat::FixedPoint, ScaleFormat::Pow2] {
        let g = two_branch_concat();
        let cfg = QuantConfig {
            scales,
            ..Default::default()
        };
        let (q, cx) = check(&g, cfg, 30.0);
        let text = qcc_ir::print(&q).unwrap();
        // The concat's requantizes moved before the pool and merged into both convs.
        let c = counts(&q);
        assert_eq!(
            (c.quantize, c.dequantize, c.requantize),
            (1, 1, 0),
            "{text}"
        );
        assert_eq!(count(&q, "concat"), 1);
        assert_eq!(count(&q, "qconv"), 3);
        let n = cx.quant_stats.naive;
        assert!(2 * c.total() <= n.total(), "{c:?} vs {n:?}");
        // Both inputs of the concat carry the concat's parameters.
        let cat = q
            .node_ids()
            .into_iter()
            .find(|&id| q.node(id).name == "cat")
            .unwrap();
        let pc = q
            .value_type(ValueId::of(cat))
            .quant
            .expect("concat parameters");
        for v in q.node(cat).inputs() {
            assert_eq!(q.value_type(*v).quant, Some(pc));
        }
    }
}

#[test]
fn table_activations_become_luts() {
    let mut rng = Rng::new(12);
    let mut g = Graph::new("luts");
    let x = input(&mut g, "x", &[1, 3, 8, 8]);
    let a = conv(&mut g, &mut rng, "conv1", x, 6, 3, 1);
    let a = unary(&mut g, UnaryOp::Sigmoid, "sig", a);
    let a = node(&mut g, Op::MaxPool(pool(2, 2, 0)), "pool", vec![a]);
    let a = unary(&mut g, UnaryOp::Tanh, "tanh", a); // standalone: after a pool
    let a = conv(&mut g, &mut rng, "conv2", a, 6, 3, 1);
    let a = unary(&mut g, UnaryOp::HardSwish, "hswish", a);
    let a = conv(&mut g, &mut rng, "conv3", a, 4, 1, 1);
    let a = unary(&mut g, UnaryOp::LeakyRelu { alpha: 0.1 }, "leaky", a);
    g.add_output("y", a);
    let (q, cx) = check(&g, QuantConfig::default(), 25.0);
    let text = qcc_ir::print(&q).unwrap();
    assert_eq!(count(&q, "lut"), 4, "{text}");
    for u in ["sigmoid", "tanh", "hard_swish", "leaky_relu"] {
        assert_eq!(count(&q, u), 0, "{text}");
    }
    assert_eq!(counts(&q).total(), 2, "{text}");
    let kinds: Vec<&str> = cx
        .quant_stats
        .layers
        .iter()
        .map(|l| l.kind.as_str())
        .collect();
    assert_eq!(
        kinds,
        [
            "qconv+lut(sigmoid)",
            "lut(tanh)",
            "qconv+lut(hard_swish)",
            "qconv+lut(leaky_relu)"
        ]
    );
}

fn small_chain(keep: &[&str]) -> (Graph, QuantConfig) {
    let mut rng = Rng::new(13);
    let mut g = Graph::new("keep");
    let x = input(&mut g, "x", &[1, 3, 8, 8]);
    let a = conv(&mut g, &mut rng, "conv1", x, 4, 3, 1);
    let a = relu(&mut g, "relu1", a);
    let a = conv(&mut g, &mut rng, "conv2", a, 4, 3, 1);
    let a = relu(&mut g, "relu2", a);
    let a = conv(&mut g, &mut rng, "conv3", a, 4, 3, 1);
    g.add_output("y", a);
    let cfg = QuantConfig {
        keep_float: keep.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    (g, cfg)
}

#[test]
fn keep_float_nodes_form_a_float_island() {
    let (g, cfg) = small_chain(&["conv2"]);
    let (q, cx) = check(&g, cfg, 28.0);
    let text = qcc_ir::print(&q).unwrap();
    // The float island conv2 + relu2 ends as one fused float kernel.
    assert_eq!(count(&q, "conv_clamp"), 1, "{text}");
    assert_eq!(count(&q, "conv") + count(&q, "relu"), 0, "{text}");
    assert_eq!(count(&q, "qconv"), 2, "{text}");
    // input Q, DQ into conv2, Q after relu2, DQ at the output.
    let c = counts(&q);
    assert_eq!(
        (c.quantize, c.dequantize, c.requantize),
        (2, 2, 0),
        "{text}"
    );
    assert!(cx
        .quant_stats
        .float_nodes
        .contains(&("conv2".to_string(), "--keep-float".to_string())));

    // Keeping only an activation float splits it from its module.
    let (g, cfg) = small_chain(&["relu1"]);
    let (q, _) = check(&g, cfg, 28.0);
    let text = qcc_ir::print(&q).unwrap();
    assert_eq!(count(&q, "relu"), 1, "{text}");
    assert_eq!(count(&q, "qconv"), 3, "{text}");
    assert_eq!(counts(&q).total(), 4, "{text}");
}

#[test]
fn ops_without_integer_kernels_stay_float_between_quantize_and_dequantize() {
    let mut rng = Rng::new(14);
    let mut g = Graph::new("island");
    let x = input(&mut g, "x", &[1, 3, 8, 8]);
    let a = conv(&mut g, &mut rng, "conv1", x, 4, 3, 1);
    let a = node(&mut g, Op::Softmax { axis: 1 }, "softmax", vec![a]);
    let a = unary(&mut g, UnaryOp::Exp, "exp", a);
    let a = conv(&mut g, &mut rng, "conv2", a, 4, 3, 1);
    let a = relu(&mut g, "relu2", a);
    g.add_output("y", a);
    let (q, cx) = check(&g, QuantConfig::default(), 28.0);
    let text = qcc_ir::print(&q).unwrap();
    assert_eq!(
        ops(&q),
        [
            "quantize",
            "qconv",
            "dequantize",
            "softmax",
            "exp",
            "quantize",
            "qconv",
            "dequantize"
        ],
        "{text}"
    );
    let floats: Vec<&str> = cx
        .quant_stats
        .float_nodes
        .iter()
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(floats, ["softmax", "exp"]);
}

#[test]
fn matmul_with_a_3d_input_is_a_2d_qgemm() {
    let mut rng = Rng::new(15);
    let mut g = Graph::new("matmul");
    let x = input(&mut g, "x", &[2, 4, 8]);
    let w = cst(&mut g, "w", &[8, 6], rng.normals(48, 0.35));
    let y = node(&mut g, Op::MatMul, "mm", vec![x, w]);
    let y = unary(&mut g, UnaryOp::Tanh, "tanh", y);
    g.add_output("y", y);
    let (q, _) = check(&g, QuantConfig::default(), 30.0);
    let text = qcc_ir::print(&q).unwrap();
    assert_eq!(
        ops(&q),
        [
            "quantize",
            "reshape",
            "qgemm",
            "reshape",
            "lut",
            "dequantize"
        ],
        "{text}"
    );
}

#[test]
fn gemm_with_transposed_a_and_alpha_beta() {
    let mut rng = Rng::new(16);
    let mut g = Graph::new("gemm");
    let x = input(&mut g, "x", &[8, 3]);
    let w = cst(&mut g, "w", &[8, 5], rng.normals(40, 0.35));
    let c = cst(&mut g, "c", &[1, 5], rng.normals(5, 0.5));
    let op = Op::Gemm {
        alpha: 0.5,
        beta: 2.0,
        trans_a: true,
        trans_b: false,
    };
    let y = node(&mut g, op, "gemm", vec![x, w, c]);
    g.add_output("y", y);
    let (q, _) = check(&g, QuantConfig::default(), 30.0);
    assert_eq!(ops(&q), ["quantize", "transpose", "qgemm", "dequantize"]);
}

#[test]
fn standalone_batch_norm_is_a_depthwise_qconv() {
    let mut rng = Rng::new(17);
    let mut g = Graph::new("bn");
    let x = input(&mut g, "x", &[1, 3, 6, 6]);
    let a = conv(&mut g, &mut rng, "conv1", x, 4, 3, 1);
    let a = relu(&mut g, "relu1", a);
    let p: Vec<ValueId> = ["scale", "bias", "mean", "var"]
        .iter()
        .map(|n| {
            let v: Vec<f32> = rng
                .normals(4, 0.5)
                .iter()
                .map(|x| if *n == "var" { x.abs() + 0.2 } else { *x + 1.0 })
                .collect();
            cst(&mut g, n, &[4], v)
        })
        .collect();
    let mut ins = vec![a];
    ins.extend(p);
    let y = node(&mut g, Op::BatchNorm { epsilon: 1e-5 }, "bn", ins);
    g.add_output("y", y);
    let (q, cx) = check(&g, QuantConfig::default(), 30.0);
    assert_eq!(ops(&q), ["quantize", "qconv", "qconv", "dequantize"]);
    assert_eq!(cx.quant_stats.layers[1].kind, "qconv(batch_norm)");
}

#[test]
fn sub_and_mul_with_constants_and_layout_ops() {
    let mut rng = Rng::new(18);
    let mut g = Graph::new("elementwise");
    let x = input(&mut g, "x", &[1, 4, 6, 6]);
    let a = conv(&mut g, &mut rng, "conv1", x, 4, 3, 1);
    let k = cst(&mut g, "k", &[4, 1, 1], vec![0.5, -0.25, 0.0, 1.0]);
    let a = node(&mut g, Op::Binary(BinaryOp::Sub), "sub", vec![a, k]);
    let s = cst(&mut g, "s", &[1], vec![1.5]);
    let a = node(&mut g, Op::Binary(BinaryOp::Mul), "mul", vec![s, a]);
    let a = node(
        &mut g,
        Op::Pad {
            pads: vec![0, 0, 1, 1, 0, 0, 1, 1],
            value: 0.0,
        },
        "pad",
        vec![a],
    );
    let a = node(
        &mut g,
        Op::Transpose {
            perm: vec![0, 1, 3, 2],
        },
        "transpose",
        vec![a],
    );
    let starts = vec![0, 1, 0, 0];
    let slice = Op::Slice {
        starts,
        steps: vec![1, 1, 1, 2],
        lens: vec![1, 3, 8, 4],
    };
    let a = node(&mut g, slice, "slice", vec![a]);
    let b = conv(&mut g, &mut rng, "conv2", a, 4, 3, 1);
    g.add_output("y", b);
    let (q, _) = check(&g, QuantConfig::default(), 28.0);
    let text = qcc_ir::print(&q).unwrap();
    assert_eq!(
        ops(&q),
        [
            "quantize",
            "qconv",
            "qadd",
            "qmul",
            "pad",
            "transpose",
            "slice",
            "qconv",
            "dequantize"
        ],
        "{text}"
    );
    // The pad value is the zero point of its input.
    let pad = q
        .node_ids()
        .into_iter()
        .find(|&id| q.node(id).name == "pad")
        .unwrap();
    let Op::Pad { value, .. } = q.node(pad).op else {
        panic!()
    };
    let mul = q.node(pad).inputs()[0];
    let Op::QMul { epi, .. } = &q.node(mul.node).op else {
        panic!("{text}")
    };
    assert_eq!(value, epi.zero_point as f32);
}

#[test]
fn pools_that_cannot_be_integer_stay_float() {
    let mut rng = Rng::new(19);
    let mut g = Graph::new("pools");
    let x = input(&mut g, "x", &[1, 3, 8, 8]);
    let a = conv(&mut g, &mut rng, "conv1", x, 4, 3, 1);
    let a = relu(&mut g, "relu1", a);
    let uniform = node(
        &mut g,
        Op::AveragePool(pool(3, 1, 1)),
        "avg_uniform",
        vec![a],
    );
    let mut p = pool(3, 1, 1);
    p.count_include_pad = false;
    let ragged = node(&mut g, Op::AveragePool(p), "avg_ragged", vec![uniform]);
    let y = conv(&mut g, &mut rng, "conv2", ragged, 4, 3, 1);
    g.add_output("y", y);
    let (q, cx) = check(&g, QuantConfig::default(), 28.0);
    let text = qcc_ir::print(&q).unwrap();
    assert_eq!(count(&q, "qavg_pool"), 1, "{text}");
    assert_eq!(count(&q, "average_pool"), 1, "{text}");
    let why = &cx.quant_stats.float_nodes[0];
    assert_eq!(why.0, "avg_ragged");
    assert!(why.1.contains("windows"), "{why:?}");

    // pow2 cannot divide by 9: both stay float.
    let cfg = QuantConfig {
        scales: ScaleFormat::Pow2,
        ..Default::default()
    };
    let (q, cx) = check(&g, cfg, 20.0);
    assert_eq!(count(&q, "average_pool"), 2);
    assert!(cx.quant_stats.float_nodes[0].1.contains("power-of-two"));
}

#[test]
fn a_reduction_that_could_overflow_i32_stays_float() {
    let k = 70_000;
    let mut g = Graph::new("overflow");
    let x = input(&mut g, "x", &[1, k]);
    let w: Vec<f32> = (0..2 * k)
        .map(|i| if i % 2 == 0 { 1.0 } else { -1.0 })
        .collect();
    let w = cst(&mut g, "w", &[k, 2], w);
    let y = node(&mut g, Op::MatMul, "big", vec![x, w]);
    g.add_output("y", y);
    let mut q = g.clone();
    let mut rng = Rng::new(5);
    let cal = samples(&g, &mut rng, 2);
    let cx = quantize(&mut q, QuantConfig::default(), cal);
    assert_eq!(ops(&q), ["matmul"]);
    let (name, why) = &cx.quant_stats.float_nodes[0];
    assert_eq!(name, "big");
    assert!(why.contains("accumulator could overflow"), "{why}");
    // Half the reduction fits (255 · 127 · 35000 < 2^31).
    let mut g = Graph::new("fits");
    let x = input(&mut g, "x", &[1, k / 2]);
    let w = cst(&mut g, "w", &[k / 2, 1], vec![1.0; k / 2]);
    let y = node(&mut g, Op::MatMul, "ok", vec![x, w]);
    g.add_output("y", y);
    let mut rng = Rng::new(5);
    let cal = samples(&g, &mut rng, 2);
    quantize(&mut g, QuantConfig::default(), cal);
    assert_eq!(count(&g, "qgemm"), 1);
}

#[test]
fn a_relu_after_a_shared_value_is_a_clamp_requantize() {
    let mut rng = Rng::new(20);
    let mut g = Graph::new("shared");
    let x = input(&mut g, "x", &[1, 3, 8, 8]);
    let a = conv(&mut g, &mut rng, "conv1", x, 4, 3, 1);
    let r = relu(&mut g, "relu", a); // not fused: conv1 has two users
    let b = conv(&mut g, &mut rng, "conv2", r, 4, 3, 1);
    let y = node(&mut g, Op::Binary(BinaryOp::Add), "add", vec![a, b]);
    g.add_output("y", y);
    let (q, cx) = check(&g, QuantConfig::default(), 28.0);
    let text = qcc_ir::print(&q).unwrap();
    assert_eq!(count(&q, "relu"), 0, "{text}");
    let c = counts(&q);
    assert_eq!(
        (c.quantize, c.dequantize, c.requantize),
        (1, 1, 1),
        "{text}"
    );
    let r = q
        .node_ids()
        .into_iter()
        .find(|&id| q.node(id).name == "relu")
        .unwrap();
    let Op::Requantize { epi, .. } = &q.node(r).op else {
        panic!("{text}")
    };
    // Requantized to the relu's own range [0, max]: the clamp is the zero point.
    assert_eq!((epi.min, epi.zero_point), (-128, -128));
    assert!(2 * c.total() <= cx.quant_stats.naive.total());
}

#[test]
fn a_relu_after_a_pool_merges_into_the_conv_before_it() {
    for scales in [ScaleFormat::FixedPoint, ScaleFormat::Pow2] {
        let mut rng = Rng::new(21);
        let mut g = Graph::new("pool_relu");
        let x = input(&mut g, "x", &[1, 3, 8, 8]);
        let a = conv(&mut g, &mut rng, "conv1", x, 4, 3, 1);
        let a = node(&mut g, Op::MaxPool(pool(2, 2, 0)), "pool", vec![a]);
        let a = relu(&mut g, "relu", a);
        let a = conv(&mut g, &mut rng, "conv2", a, 4, 3, 1);
        g.add_output("y", a);
        let cfg = QuantConfig {
            scales,
            ..Default::default()
        };
        let (q, _) = check(&g, cfg, 28.0);
        let text = qcc_ir::print(&q).unwrap();
        assert_eq!(
            ops(&q),
            ["quantize", "qconv", "max_pool", "qconv", "dequantize"],
            "{text}"
        );
        // conv1's epilogue now clamps at its zero point: the relu.
        let c1 = q
            .node_ids()
            .into_iter()
            .find(|&id| q.node(id).name == "conv1")
            .unwrap();
        let Op::QConv { epi, .. } = &q.node(c1).op else {
            panic!("{text}")
        };
        assert_eq!(epi.min, epi.zero_point, "{text}");
    }
}

#[test]
fn fuse_modules_records_modules_without_touching_the_graph() {
    let mut rng = Rng::new(22);
    let mut g = Graph::new("modules");
    let x = input(&mut g, "x", &[1, 3, 8, 8]);
    let a = conv(&mut g, &mut rng, "conv1", x, 4, 3, 1);
    let a = relu(&mut g, "relu1", a); // fused
    let b = conv(&mut g, &mut rng, "conv2", a, 4, 3, 1);
    let c = unary(&mut g, UnaryOp::Sigmoid, "sig", b); // not fused: conv2 has two users
    let d = node(&mut g, Op::Binary(BinaryOp::Add), "add", vec![b, c]);
    let d = unary(&mut g, UnaryOp::Tanh, "tanh", d); // fused into the add
    let e = node(&mut g, Op::Binary(BinaryOp::Mul), "mul", vec![d, d]);
    let f = node(&mut g, Op::MatMul, "mm", vec![e, e]); // both operands computed: a QMatMul module
    let h = conv(&mut g, &mut rng, "conv3", f, 4, 1, 1);
    let h = relu(&mut g, "relu3", h); // kept float: conv3 is a module without it
    g.add_output("y", h);
    g.add_output("mul", e);
    let before = qcc_ir::print(&g).unwrap();
    let mut cx = PassContext {
        quant: Some(QuantConfig {
            keep_float: vec!["relu3".into()],
            ..Default::default()
        }),
        ..Default::default()
    };
    assert!(!qcc_passes::fuse_modules::run(&mut g, &mut cx).unwrap());
    assert_eq!(qcc_ir::print(&g).unwrap(), before);
    let name = |id: qcc_ir::NodeId| g.node(id).name.clone();
    let found: Vec<(String, Option<String>)> = cx
        .modules
        .iter()
        .map(|m| (name(m.anchor), m.act.map(name)))
        .collect();
    let want = [
        ("conv1", Some("relu1")),
        ("conv2", None),
        ("add", Some("tanh")),
        ("mul", None),
        ("mm", None),
        ("conv3", None),
    ];
    let want: Vec<(String, Option<String>)> = want
        .iter()
        .map(|(a, b)| (a.to_string(), b.map(|s| s.to_string())))
        .collect();
    assert_eq!(found, want);
}
