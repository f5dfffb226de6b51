//! Models that arrive quantized (testdata's hand-written QDQ `qdq_cnn`, and
//! the `ort_qdq_*` (QDQ) and `ort_qop_*` (QOperator) cases onnxruntime's
//! `quantize_static` wrote):
//! `fold-qdq` must turn their layers into integer kernels with the model's
//! own scales, and the native code must compute what qcc's interpreter
//! computes on the same optimized graph, bit for bit, on every output that
//! depends only on integer arithmetic, quantize/dequantize and data
//! movement. Each model gets the inputs of its remaining float nodes
//! (Softmax, BatchNormalization, Concat…) as extra outputs, so every case has
//! such outputs. Closeness to onnxruntime is e2e.rs's job (same cases).

mod common;

use common::{exact_outputs, same_bits, with_extra_outputs, DataSet};
use qcc_ir::{DType, Graph, Op};

/// Each case and how many of its Conv/Gemm/MatMul layers must become
/// `QConv`/`QGemm`/`QMatMul` (all of them; the transformers' attention
/// products are MatMuls of two run-time tensors).
const CASES: &[(&str, usize)] = &[
    ("qdq_cnn", 3),
    ("ort_qdq_cnn_s8s8", 5),
    ("ort_qdq_cnn_u8s8", 5),
    ("ort_qdq_cnn_u8u8", 5),
    ("ort_qdq_cnn_u8u8_pt", 5),
    ("ort_qdq_mlp_u8u8_pt", 3),
    ("qdq_u8_weights", 2),
    ("ort_qdq_mlp_u8s8", 3),
    ("ort_qop_cnn_s8s8", 5),
    ("ort_qop_mlp_u8s8", 3),
    ("ort_qop_requant", 3),
    ("ort_qdq_transformer", 16),
    ("ort_qop_transformer", 16),
];

fn weighted_int_layers(g: &Graph) -> usize {
    g.node_ids()
        .into_iter()
        .filter(|&id| {
            matches!(
                g.node(id).op,
                Op::QConv { .. } | Op::QGemm { .. } | Op::QMatMul { .. }
            )
        })
        .count()
}

/// Names of the ONNX nodes that compute floats from floats (what stays float).
fn float_nodes(g: &Graph) -> Vec<String> {
    g.node_ids()
        .into_iter()
        .filter(|&id| {
            let n = g.node(id);
            let float_out = n.outputs.iter().any(|t| t.dtype == DType::F32);
            float_out
                && !matches!(
                    n.op,
                    Op::Input { .. }
                        | Op::Const { .. }
                        | Op::Dequantize { .. }
                        | Op::Reshape { .. }
                )
        })
        // A QOperator node's expansion is named `<node>/<op><k>`.
        .map(|id| g.node(id).name.split('/').next().unwrap_or("").to_string())
        .collect()
}

fn optimized(model: &std::path::Path) -> Result<Graph, String> {
    let (g, _) = qcc::optimize_file(model, &Default::default(), None)
        .map_err(|e| format!("optimize: {e:#}"))?;
    Ok(g)
}

fn check(name: &str, layers: usize) -> Result<String, String> {
    let dir = common::repo_root().join("testdata").join(name);
    let original = dir.join("model.onnx");
    let data: DataSet = common::load_data_set(&common::data_set_dirs(&dir)?[0])?;
    let g = optimized(&original)?;
    let got = weighted_int_layers(&g);
    if got != layers {
        return Err(format!(
            "{got} QConv/QGemm layers after fold-qdq, expected {layers}"
        ));
    }

    let work = common::WorkDir::new(&format!("{name}-qdq"))?;
    let model = work.path().join("augmented.onnx");
    // The C harness takes at most 16 outputs: the model's own and 15 more.
    let extra: Vec<String> = float_nodes(&g).into_iter().take(15).collect();
    with_extra_outputs(&original, &model, &extra)?;
    let g = optimized(&model)?;
    let exact = exact_outputs(&g);
    if !exact.iter().any(|&e| e) {
        return Err("no output is computed by integer code alone".into());
    }
    let want = qcc_interp::run(&g, &data.inputs).map_err(|e| format!("interpreter: {e}"))?;
    let compiled = common::compile_and_link(&format!("{name}-qdq-native"), &model, &[])?;
    let types = want.iter().map(|t| t.ty()).collect::<Vec<_>>();
    let native = common::run_app(&compiled.app, compiled.work.path(), &data.inputs, &types)?;
    let mut checked = 0;
    for (o, (e, (got, want))) in exact.iter().zip(native.iter().zip(&want)).enumerate() {
        if *e {
            same_bits(got, want)
                .map_err(|m| format!("output #{o} ({}): {m}", g.outputs[o].name))?;
            checked += 1;
        }
    }
    Ok(format!(
        "{name}: {layers} integer layers, {checked} of {} outputs bit-exact",
        exact.len()
    ))
}

#[test]
fn imported_qdq_models_run_integer_kernels_bit_exact_with_the_interpreter() {
    let mut failures = vec![];
    for &(name, layers) in CASES {
        match check(name, layers) {
            Ok(line) => println!("{line}"),
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `ort_qop_requant`'s scales put many results exactly on a half step
/// (and its QLinearMul next to one): the default float requantization gives
/// onnxruntime's integer kernels' outputs bit for bit, on every output; the
/// fixed-point form (`--requantize fixed-point`) rounds those ties upward
/// and differs from them on the Conv, the MatMul and the Mul (whose zero
/// point onnxruntime adds before rounding), by one step at most.
#[test]
fn float_requantization_matches_onnxruntime_and_fixed_point_differs_on_ties() {
    let dir = common::repo_root().join("testdata/ort_qop_requant");
    let data = common::load_data_set(&common::data_set_dirs(&dir).expect("data")[0]).expect("data");
    let run = |mode| {
        let opts = qcc::CompileOptions {
            requantize: mode,
            ..Default::default()
        };
        let (g, _) = qcc::optimize_file(&dir.join("model.onnx"), &opts, None).expect("optimize");
        qcc_interp::run(&g, &data.inputs).expect("interpreter")
    };
    let float = run(qcc::Requantize::Float);
    for ((name, want), got) in data.outputs.iter().zip(&float) {
        same_bits(got, want).unwrap_or_else(|e| panic!("float requantization, {name}: {e}"));
    }
    let fixed = run(qcc::Requantize::FixedPoint);
    for ((name, want), got) in data.outputs.iter().zip(&fixed) {
        let (g, w) = (got.to_f32_vec(), want.to_f32_vec());
        let differ = g.iter().zip(&w).filter(|(a, b)| a != b).count();
        let worst = g
            .iter()
            .zip(&w)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        println!(
            "fixed point, {name}: {differ} of {} differ, by at most {worst}",
            w.len()
        );
        if ["conv", "matmul", "mul"].contains(&name.as_str()) {
            assert!(differ > 0, "{name}: the ties did not show");
        }
        // One step of the output's scale at most (the concat also carries
        // the conv's step: it concatenates the conv's output).
        let step = match name.as_str() {
            "conv" => 2.0,
            "depthwise" => 0.9,
            "matmul" => 16.0,
            "mul" => 1.0,
            _ => 2.0 + 0.7,
        };
        assert!(
            worst <= step * 1.001,
            "{name}: off by {worst}, one step is {step}"
        );
    }
}
