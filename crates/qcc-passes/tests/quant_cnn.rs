//! The quantization pipeline on a small CNN (conv+relu → maxpool → conv+relu
//! → conv → add(residual)+relu → global average pool → flatten → gemm):
//! which ops become integer, how many quantization ops remain against the
//! naive QDQ insertion, and how close the quantized outputs are to float.

mod quant_common;

use qcc_ir::{Graph, Op};
use qcc_passes::{QuantConfig, ScaleFormat};
use quant_common::*;

fn cnn() -> Graph {
    let mut rng = Rng::new(7);
    let mut g = Graph::new("cnn");
    let x = input(&mut g, "x", &[1, 3, 16, 16]);
    let c1 = conv(&mut g, &mut rng, "conv1", x, 8, 3, 1);
    let r1 = relu(&mut g, "relu1", c1);
    let mp = node(&mut g, Op::MaxPool(pool(2, 2, 0)), "pool", vec![r1]);
    let c2 = conv(&mut g, &mut rng, "conv2", mp, 8, 3, 1);
    let r2 = relu(&mut g, "relu2", c2);
    let c3 = conv(&mut g, &mut rng, "conv3", r2, 8, 3, 1);
    let add = node(
        &mut g,
        Op::Binary(qcc_ir::BinaryOp::Add),
        "add",
        vec![c3, mp],
    );
    let r3 = relu(&mut g, "relu3", add);
    let m = gap(&mut g, "gap", r3);
    let flat = node(
        &mut g,
        Op::Reshape { shape: vec![1, 8] },
        "flatten",
        vec![m],
    );
    let y = fc(&mut g, &mut rng, "fc", flat, 10);
    g.add_output("y", y);
    g
}

fn run(cfg: QuantConfig) -> (Graph, Graph, qcc_passes::PassContext) {
    let float = cnn();
    let mut g = float.clone();
    let mut rng = Rng::new(1);
    let cal = samples(&g, &mut rng, 8);
    let cx = quantize(&mut g, cfg, cal);
    (float, g, cx)
}

fn accuracy(float: &Graph, g: &Graph) -> f64 {
    let mut rng = Rng::new(99);
    let test = samples(float, &mut rng, 4);
    let (want, got) = compare(float, g, &test);
    sqnr(&want, &got)
}

#[test]
fn every_layer_is_integer_and_only_the_borders_quantize() {
    let (float, g, cx) = run(QuantConfig::default());
    let text = qcc_ir::print(&g).unwrap();
    // Modules and their activations fused: no float conv/relu/add/pool left.
    assert_eq!(
        ops(&g),
        [
            "quantize",
            "qconv",
            "max_pool",
            "qconv",
            "qconv",
            "qadd",
            "qmean",
            "reshape",
            "qgemm",
            "dequantize"
        ],
        "{text}"
    );
    let c = counts(&g);
    assert_eq!(
        (c.quantize, c.dequantize, c.requantize),
        (1, 1, 0),
        "{text}"
    );
    // Naive: a dequantize after each of the 8 integer ops, a quantize before
    // each (the pool's output, read by conv2 and add, is quantized once): 8 + 8.
    let n = cx.quant_stats.naive;
    assert_eq!((n.quantize, n.dequantize, n.requantize), (8, 8, 0));
    assert!(2 * c.total() <= n.total(), "{c:?} vs naive {n:?}");
    assert_eq!(cx.quant_stats.final_counts, c);
    check_qparams(&g, &cx);
    // The residual add's relu became its clamp: lower bound = zero point.
    let add = g
        .node_ids()
        .into_iter()
        .find(|&id| g.node(id).name == "add")
        .unwrap();
    let Op::QAdd { epi, .. } = &g.node(add).op else {
        panic!("{text}")
    };
    assert_eq!(epi.min, epi.zero_point, "{text}");
    let db = accuracy(&float, &g);
    eprintln!(
        "cnn fixed-point per-channel SQNR {db:.1} dB\n{}",
        cx.quant_stats.render()
    );
    assert!(db > 25.0, "SQNR {db:.1} dB");
}

#[test]
fn pow2_scales_leave_only_shifts() {
    let cfg = QuantConfig {
        scales: ScaleFormat::Pow2,
        ..Default::default()
    };
    let (float, g, cx) = run(cfg);
    let text = qcc_ir::print(&g).unwrap();
    let rs = rescales(&g);
    assert!(!rs.is_empty());
    for r in &rs {
        assert!(r.is_pow2(), "{r:?}\n{text}");
    }
    // 16x16 → pool → 8x8: the mean over 64 cells is a shift too.
    assert_eq!(count(&g, "qmean"), 1, "{text}");
    for id in g.node_ids() {
        for q in g.node(id).outputs.iter().filter_map(|t| t.quant) {
            assert_eq!(q.scale.log2().fract(), 0.0, "{q:?} is not a power of two");
        }
    }
    check_qparams(&g, &cx);
    let c = counts(&g);
    assert!(2 * c.total() <= cx.quant_stats.naive.total(), "{c:?}");
    let db = accuracy(&float, &g);
    eprintln!("cnn pow2 SQNR {db:.1} dB");
    assert!(db > 20.0, "SQNR {db:.1} dB");
}

#[test]
fn per_tensor_weights_use_one_scale_per_layer() {
    let cfg = QuantConfig {
        per_channel: false,
        ..Default::default()
    };
    let (float, g, cx) = run(cfg);
    for r in rescales(&g) {
        assert_eq!(r.channels(), 1);
    }
    check_qparams(&g, &cx);
    let db = accuracy(&float, &g);
    eprintln!("cnn per-tensor SQNR {db:.1} dB");
    assert!(db > 22.0, "SQNR {db:.1} dB");
}

#[test]
fn int8_io_exposes_quantized_inputs_and_outputs() {
    let cfg = QuantConfig {
        io_int8: true,
        ..Default::default()
    };
    let (float, g, cx) = run(cfg);
    let text = qcc_ir::print(&g).unwrap();
    assert_eq!(
        g.node(g.inputs()[0]).outputs[0].dtype,
        qcc_ir::DType::I8,
        "{text}"
    );
    assert_eq!(
        g.value_type(g.outputs[0].value).dtype,
        qcc_ir::DType::I8,
        "{text}"
    );
    assert_eq!(counts(&g).total(), 0, "{text}");
    let qi = g.input_quant(0).expect("input parameters");
    let qo = g.output_quant(0).expect("output parameters");
    check_qparams(&g, &cx);
    // Quantize the test input by hand, dequantize the output by hand.
    let mut rng = Rng::new(99);
    let test = samples(&float, &mut rng, 2);
    let (mut want, mut got) = (vec![], vec![]);
    for s in &test {
        want.extend(qcc_interp::run(&float, s).unwrap()[0].to_f32_vec());
        let x: Vec<i8> = s[0]
            .as_f32()
            .unwrap()
            .iter()
            .map(|&v| qcc_ir::quant::quantize(v, qi, -128, 127) as i8)
            .collect();
        let x = qcc_ir::Tensor::new(s[0].shape().to_vec(), qcc_ir::TensorData::I8(x)).unwrap();
        let y = qcc_interp::run(&g, &[x]).unwrap();
        let y = y[0].to_i64_vec().unwrap();
        got.extend(y.iter().map(|&q| qcc_ir::quant::dequantize(q as i32, qo)));
    }
    let db = sqnr(&want, &got);
    assert!(db > 25.0, "SQNR {db:.1} dB");
}

#[test]
fn stats_report_layers_and_counts() {
    let (_, _, cx) = run(QuantConfig::default());
    let s = &cx.quant_stats;
    let kinds: Vec<&str> = s.layers.iter().map(|l| l.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "qconv+relu",
            "qconv+relu",
            "qconv",
            "qadd+relu",
            "qreduce_mean",
            "qgemm"
        ]
    );
    for l in &s.layers {
        let r = l.range.unwrap();
        assert!(r.min <= 0.0 && r.max >= 0.0, "{l:?}");
        assert!(l.act_sqnr_db.unwrap() > 20.0, "{l:?}");
        if l.weight_bits > 0 {
            assert!(l.weight_sqnr_db.unwrap() > 30.0, "{l:?}");
        }
    }
    let text = s.render();
    assert!(
        text.contains("conv1") && text.contains("naive QDQ insertion"),
        "{text}"
    );
}

#[test]
fn float_compilation_is_unchanged_without_quant_config() {
    let mut g = cnn();
    let before = qcc_ir::print(&g).unwrap();
    let mut cx = qcc_passes::PassContext::default();
    // Every pass up to the quantization's last (fuse-activation, after it,
    // changes float graphs on purpose).
    qcc_passes::Pipeline::default()
        .run(&mut g, &mut cx, Some("cancel-qdq"))
        .unwrap();
    assert_eq!(qcc_ir::print(&g).unwrap(), before);
    for p in ["fuse-modules", "calibrate", "insert-qdq", "cancel-qdq"] {
        let info = qcc_passes::pass(p).unwrap();
        assert!(!(info.run)(&mut g, &mut cx).unwrap(), "{p}");
    }
    assert!(cx.modules.is_empty() && cx.ranges.is_empty());
}

/// IR snapshots (`tests/snapshots/`) before and after the quantization
/// passes: `fuse-modules` and `calibrate` leave the float graph unchanged,
/// `insert-qdq` gives the naive QDQ form, `cancel-qdq` the final graph.
#[test]
fn ir_after_each_quantization_pass() {
    let mut settings = insta::Settings::clone_current();
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| {
        let float = qcc_ir::print(&cnn()).unwrap();
        for stop in ["fuse-modules", "calibrate", "insert-qdq", "cancel-qdq"] {
            let mut g = cnn();
            let mut rng = Rng::new(1);
            let mut cx = qcc_passes::PassContext {
                quant: Some(QuantConfig::default()),
                calibration: samples(&g, &mut rng, 8),
                ..Default::default()
            };
            qcc_passes::Pipeline::default()
                .run(&mut g, &mut cx, Some(stop))
                .unwrap();
            let text = qcc_ir::print(&g).unwrap();
            if matches!(stop, "fuse-modules" | "calibrate") {
                assert_eq!(text, float, "{stop} changed the graph");
            } else {
                insta::assert_snapshot!(format!("cnn@{stop}"), text);
            }
        }
    });
}
