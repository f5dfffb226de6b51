//! `--emit onnx`: the quantized graph written as a QDQ ONNX model. Checks the
//! file's structure (decoded with qcc's prost types) and, with ONNX Runtime
//! from the repo's `.venv` (`scripts/setup.sh`), that it computes what qcc's
//! interpreter computes on the quantized graph, within one quantization step.
//! ONNX Runtime runs the file as written (graph optimizations off: the QDQ
//! model's own definition); with them on it fuses the pairs into its int8
//! kernels, whose uint8 x int8 products saturate 16-bit pair sums
//! (`vpmaddubsw`) on CPUs without VNNI, several steps away on AVX2-only
//! machines.

use npyz::WriterBuilder;
use prost::Message;
use qcc::{CalibrationData, CompileOptions, QuantConfig, QuantizeOptions};
use qcc_ir::{DType, Graph, Op, Tensor, TensorData};
use qcc_onnx::proto::ModelProto;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Deterministic pseudo-random N(0,1)-ish samples.
fn samples(n: usize) -> Vec<f32> {
    let mut s: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            let mut acc = 0.0f32;
            for _ in 0..4 {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                acc += (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
            }
            acc * 1.7
        })
        .collect()
}

fn write_npy<T: npyz::AutoSerialize + Copy>(path: &Path, shape: &[usize], data: &[T]) {
    let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    let mut bytes = vec![];
    let mut w = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&shape)
        .writer(&mut bytes)
        .begin_nd()
        .expect("npy header");
    w.extend(data.iter().copied()).expect("npy data");
    w.finish().expect("npy finish");
    std::fs::write(path, bytes).expect("write npy");
}

struct Case {
    /// The quantized graph (parameters in its types).
    graph: Graph,
    /// The decoded `--emit onnx` output and its path.
    model: ModelProto,
    onnx: PathBuf,
    /// Samples `[N, ...input shape]` (float) used for calibration and comparison.
    calib: PathBuf,
    n: usize,
    _dir: tempfile::TempDir,
}

/// Quantizes `testdata/<name>` through the CLI with `--emit onnx` and through
/// the library (same options) for the interpreter.
fn prepare(name: &str, shape: &[usize], io_int8: bool) -> Case {
    prepare_bits(name, shape, io_int8, 8)
}

/// [`prepare`] with `--weight-bits bits`.
fn prepare_bits(name: &str, shape: &[usize], io_int8: bool, bits: u32) -> Case {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = root().join("testdata").join(name).join("model.onnx");
    let n = 6;
    let mut full = vec![n];
    full.extend_from_slice(shape);
    let calib = dir.path().join("calib.npy");
    write_npy(&calib, &full, &samples(full.iter().product()));
    let out = dir.path().join("net.o");
    let mut args = vec![
        model.to_str().expect("path").to_string(),
        "--quantize".into(),
        "int8".into(),
        "--calibration-data".into(),
        calib.to_str().expect("path").into(),
        "--emit".into(),
        "onnx".into(),
        "-o".into(),
        out.to_str().expect("path").into(),
    ];
    if io_int8 {
        args.extend(["--io".into(), "int8".into()]);
    }
    if bits != 8 {
        args.extend(["--weight-bits".into(), bits.to_string()]);
    }
    let o = Command::new(env!("CARGO_BIN_EXE_qcc"))
        .args(&args)
        .output()
        .expect("run qcc");
    assert!(
        o.status.success(),
        "qcc failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let onnx = dir.path().join("net.onnx");
    assert!(!out.exists(), "--emit onnx alone must not write the object");
    let bytes = std::fs::read(&onnx).expect("net.onnx written");
    let decoded = ModelProto::decode(bytes.as_slice()).expect("a valid ModelProto");
    let opts = CompileOptions {
        quantize: Some(QuantizeOptions {
            config: QuantConfig {
                io_int8,
                weight_bits: bits,
                ..Default::default()
            },
            data: CalibrationData::Path(calib.clone()),
            progress: Default::default(),
        }),
        ..Default::default()
    };
    let (graph, _) = qcc::optimize_file(&model, &opts, None).expect("quantize");
    Case {
        graph,
        model: decoded,
        onnx,
        calib,
        n,
        _dir: dir,
    }
}

fn count(m: &ModelProto, op: &str) -> usize {
    let g = m.graph.as_ref().expect("graph");
    g.node.iter().filter(|n| n.op_type() == op).count()
}

/// Structural checks: opset, I/O names, every node input defined before use,
/// one QuantizeLinear per IR op that produces new 8-bit values, one
/// DequantizeLinear per weight and bias and per distinct activation view.
fn check_structure(c: &Case) {
    let m = &c.model;
    assert_eq!(m.opset_import.len(), 1);
    let int4 = qcc_onnx::proto::tensor_proto::DataType::Int4 as i32;
    let narrow = m
        .graph
        .as_ref()
        .is_some_and(|g| g.initializer.iter().any(|t| t.data_type() == int4));
    // 13, or 21 where weights are written as INT4.
    assert_eq!(m.opset_import[0].version(), if narrow { 21 } else { 13 });
    let g = m.graph.as_ref().expect("graph");
    let ir = &c.graph;
    let in_names: Vec<&str> = g.input.iter().map(|v| v.name()).collect();
    let want: Vec<&str> = ir
        .inputs()
        .iter()
        .map(|&i| ir.node(i).name.as_str())
        .collect();
    assert_eq!(in_names, want);
    let out_names: Vec<&str> = g.output.iter().map(|v| v.name()).collect();
    let want: Vec<&str> = ir.outputs.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(out_names, want);

    let mut defined: HashSet<&str> = g.initializer.iter().map(|t| t.name()).collect();
    defined.extend(in_names.iter().copied());
    for n in &g.node {
        for i in n.input.iter().filter(|i| !i.is_empty()) {
            assert!(
                defined.contains(i.as_str()),
                "node '{}' reads '{i}' before it is defined",
                n.name()
            );
        }
        for o in &n.output {
            assert!(defined.insert(o.as_str()), "'{o}' is written twice");
        }
    }
    for o in &out_names {
        assert!(defined.contains(o), "output '{o}' is never written");
    }

    let mut quantizing = 0;
    let mut weights = 0;
    let mut views = HashSet::new();
    for id in ir.node_ids() {
        let node = ir.node(id);
        let x = |i: usize| node.inputs()[i];
        match &node.op {
            Op::Quantize { .. } => quantizing += 1,
            Op::Dequantize { q } => {
                views.insert((x(0), q.zero_point));
            }
            Op::Requantize { in_zero_point, .. } => {
                quantizing += 1;
                views.insert((x(0), *in_zero_point));
            }
            Op::QConv {
                x_zero_point: zp, ..
            }
            | Op::QAvgPool {
                x_zero_point: zp, ..
            }
            | Op::QMean {
                x_zero_point: zp, ..
            } => {
                quantizing += 1;
                views.insert((x(0), *zp));
                if matches!(node.op, Op::QConv { .. }) {
                    weights += 2;
                }
            }
            Op::QGemm { a_zero_point, .. } => {
                quantizing += 1;
                weights += 2;
                views.insert((x(0), *a_zero_point));
            }
            Op::QAdd {
                a_zero_point,
                b_zero_point,
                ..
            }
            | Op::QMul {
                a_zero_point,
                b_zero_point,
                ..
            } => {
                quantizing += 1;
                views.insert((x(0), *a_zero_point));
                views.insert((x(1), *b_zero_point));
            }
            _ => {}
        }
    }
    assert!(quantizing > 0, "the graph has no integer ops");
    assert_eq!(count(m, "QuantizeLinear"), quantizing);
    assert_eq!(count(m, "DequantizeLinear"), weights + views.len());
    for n in &g.node {
        assert!(
            n.domain().is_empty(),
            "node '{}' is not in the standard domain",
            n.name()
        );
    }
}

fn python() -> Option<PathBuf> {
    let p = root().join(".venv/bin/python");
    if p.exists() {
        return Some(p);
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "{} is missing: run scripts/setup.sh (needed to check --emit onnx with onnxruntime)",
            p.display()
        );
    }
    eprintln!(
        "skipping the onnxruntime check: {} is missing (run scripts/setup.sh)",
        p.display()
    );
    None
}

const ORT_SCRIPT: &str = r#"
import sys, numpy as np, onnxruntime as ort
model, inp, out = sys.argv[1:4]
k = int(sys.argv[4]) if len(sys.argv) > 4 else 0
so = ort.SessionOptions()
so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
s = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
name = s.get_inputs()[0].name
x = np.load(inp)
np.save(out, np.stack([s.run(None, {name: x[i]})[k] for i in range(x.shape[0])]))
"#;

/// The quantization step of the value behind output 0: its own scale when
/// 8-bit, else that of the Dequantize feeding it through float ops.
fn output_step(c: &Case) -> f32 {
    let g = &c.graph;
    let mut v = g.outputs[0].value;
    loop {
        if let Some(q) = g.value_type(v).quant {
            return q.scale;
        }
        let n = g.node(v.node);
        if let Op::Dequantize { q } = n.op {
            return q.scale;
        }
        v = *n
            .inputs()
            .first()
            .expect("an output computed from a quantized value");
    }
}

/// Runs every calibration sample through ONNX Runtime and qcc's interpreter.
fn check_with_onnxruntime(c: &Case) {
    let Some(py) = python() else { return };
    let dir = c.onnx.parent().expect("dir");
    let g = &c.graph;
    let in_ty = g.value_type(qcc_ir::ValueId::of(g.inputs()[0])).clone();
    let raw = npyz::NpyFile::new(&std::fs::read(&c.calib).expect("calib")[..])
        .expect("npy")
        .into_vec::<f32>()
        .expect("f32");
    let per = in_ty.numel();
    let mut inputs = vec![];
    for s in 0..c.n {
        let x = raw[s * per..(s + 1) * per].to_vec();
        let t = match in_ty.dtype {
            DType::F32 => Tensor::from_f32(in_ty.shape.clone(), x),
            DType::I8 => {
                let q = g.input_quant(0).expect("input qparams");
                let v = x
                    .iter()
                    .map(|&f| qcc_ir::quant::quantize(f, q, -128, 127) as i8)
                    .collect();
                Tensor::new(in_ty.shape.clone(), TensorData::I8(v))
            }
            other => panic!("unexpected input type {other}"),
        };
        inputs.push(t.expect("input tensor"));
    }
    let inp = dir.join("inputs.npy");
    let mut shape = vec![c.n];
    shape.extend_from_slice(&in_ty.shape);
    match in_ty.dtype {
        DType::I8 => {
            let all: Vec<i8> = inputs
                .iter()
                .flat_map(|t| match t.data() {
                    TensorData::I8(v) => v.clone(),
                    _ => vec![],
                })
                .collect();
            write_npy(&inp, &shape, &all)
        }
        _ => write_npy(&inp, &shape, &raw),
    }
    let out = dir.join("ort.npy");
    let script = dir.join("run_ort.py");
    std::fs::write(&script, ORT_SCRIPT).expect("script");
    let o = Command::new(&py)
        .args([&script, &c.onnx, &inp, &out])
        .output()
        .expect("run python");
    assert!(
        o.status.success(),
        "onnxruntime failed on {}: {}",
        c.onnx.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    let ort_bytes = std::fs::read(&out).expect("ort output");
    let npy = npyz::NpyFile::new(&ort_bytes[..]).expect("npy");
    let got: Vec<f64> = match g.value_type(g.outputs[0].value).dtype {
        DType::I8 => npy
            .into_vec::<i8>()
            .expect("i8")
            .iter()
            .map(|&v| v as f64)
            .collect(),
        _ => npy
            .into_vec::<f32>()
            .expect("f32")
            .iter()
            .map(|&v| v as f64)
            .collect(),
    };
    let (step, unit) = match g.value_type(g.outputs[0].value).dtype {
        DType::I8 => (1.0, "levels"),
        _ => (output_step(c) as f64, "(float)"),
    };
    let mut worst = 0.0f64;
    let mut k = 0;
    for x in &inputs {
        let want = qcc_interp::run(g, std::slice::from_ref(x)).expect("interpreter");
        for w in want[0].to_f32_vec() {
            let d = (got[k] - w as f64).abs();
            worst = worst.max(d);
            k += 1;
        }
    }
    assert_eq!(k, got.len(), "output element count");
    eprintln!(
        "{}: worst |ort - qcc| = {worst} {unit}, step {step}",
        c.onnx.display()
    );
    assert!(
        worst <= step * 1.0001,
        "onnxruntime differs from qcc by {worst} {unit} (> one step {step})"
    );
}

#[test]
fn small_cnn_qdq_onnx() {
    let c = prepare("small_cnn", &[1, 3, 16, 16], false);
    check_structure(&c);
    assert!(count(&c.model, "Conv") >= 4);
    check_with_onnxruntime(&c);
}

/// 4-bit weights (`--weight-bits 4`: their type says 4 bits) are written as
/// ONNX INT4 with INT4 zero points, in an opset-21 model whose reductions
/// take their axes as inputs, and ONNX Runtime computes what qcc does.
#[test]
fn small_cnn_4bit_weights_export_as_int4() {
    let c = prepare_bits("small_cnn", &[1, 3, 16, 16], false, 4);
    check_structure(&c);
    assert_eq!(c.model.opset_import[0].version(), 21);
    let g = c.model.graph.as_ref().expect("graph");
    let int4 = qcc_onnx::proto::tensor_proto::DataType::Int4 as i32;
    let narrow: Vec<_> = g
        .initializer
        .iter()
        .filter(|t| t.data_type() == int4)
        .collect();
    assert!(narrow.len() >= 4, "{} INT4 initializers", narrow.len());
    for t in narrow {
        let n: i64 = t.dims.iter().product();
        assert_eq!(
            t.raw_data().len() as i64,
            (n + 1) / 2,
            "'{}' packed",
            t.name()
        );
    }
    check_with_onnxruntime(&c);
}

#[test]
fn mlp_qdq_onnx() {
    let c = prepare("mlp", &[4, 32], false);
    check_structure(&c);
    check_with_onnxruntime(&c);
}

#[test]
fn mlp_int8_io_qdq_onnx() {
    let c = prepare("mlp", &[4, 32], true);
    check_structure(&c);
    let g = c.model.graph.as_ref().expect("graph");
    let int8 = qcc_onnx::proto::tensor_proto::DataType::Int8 as i32;
    for v in g.input.iter().chain(&g.output) {
        let Some(qcc_onnx::proto::type_proto::Value::TensorType(t)) =
            v.r#type.as_ref().and_then(|t| t.value.clone())
        else {
            panic!("'{}' has no tensor type", v.name());
        };
        assert_eq!(
            t.elem_type(),
            int8,
            "'{}' should be int8 with --io int8",
            v.name()
        );
    }
    check_with_onnxruntime(&c);
}

#[test]
fn export_refuses_to_overwrite_the_model() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = dir.path().join("m.onnx");
    std::fs::copy(root().join("testdata/mlp/model.onnx"), &model).expect("copy");
    let before = std::fs::read(&model).expect("read");
    let o = Command::new(env!("CARGO_BIN_EXE_qcc"))
        .current_dir(dir.path())
        .args(["m.onnx", "--emit", "onnx"])
        .output()
        .expect("run qcc");
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("overwrite"));
    assert_eq!(std::fs::read(&model).expect("read"), before);
}

#[test]
fn float_model_exports_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("f.o");
    let o = Command::new(env!("CARGO_BIN_EXE_qcc"))
        .args([
            root()
                .join("testdata/small_cnn/model.onnx")
                .to_str()
                .expect("path"),
            "--emit",
            "onnx,header",
            "-o",
        ])
        .arg(&out)
        .output()
        .expect("run qcc");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m = ModelProto::decode(&std::fs::read(dir.path().join("f.onnx")).expect("f.onnx")[..])
        .expect("decode");
    assert_eq!(
        count(&m, "QuantizeLinear") + count(&m, "DequantizeLinear"),
        0
    );
    assert!(dir.path().join("f.h").exists());
}

/// Models that arrive quantized round-trip: `--emit onnx` of the compiled
/// graph (integer kernels from `fold-qdq`, QOperator nodes read as QDQ,
/// dynamic MatMulInteger on the float GEMM, the transformer's QMatMul
/// attention products) runs in ONNX Runtime and gives the stored outputs
/// within the case's tolerance in `testdata/manifest.txt` (0 for
/// `ort_qop_requant`: the exported float requantization, QLinearMul's
/// rounding and the concat tables reproduce ONNX Runtime's bytes). The
/// binary layers of `binary_cnn` go back to Sign + Conv (its thresholds to
/// two Signs of shifted counts); every output is compared; the 9-bit weight
/// halves of `ort_qdq_cnn_u8u8_pt` export as int8 weights of a Conv reading
/// its input twice; `qdq_int4_cnn`'s 4-bit weights export as ONNX INT4
/// (opset 21).
#[test]
fn imported_models_round_trip_through_onnxruntime() {
    let Some(py) = python() else { return };
    let manifest = std::fs::read_to_string(root().join("testdata/manifest.txt")).expect("manifest");
    let tolerance = |case: &str| -> (f64, f64) {
        let line = manifest
            .lines()
            .find(|l| l.split_whitespace().next() == Some(case))
            .unwrap_or_else(|| panic!("{case} is not in the manifest"));
        let get = |key: &str| -> f64 {
            line.split_whitespace()
                .find_map(|t| t.strip_prefix(key))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{case}: no {key}"))
        };
        (get("atol="), get("rtol="))
    };
    // (case, outputs compared): output 0, or all (`binary_cnn`: its
    // thresholds are output 6). `ort_qop_requant`'s other outputs are not
    // compared: its QLinearMul exported as Dequantize, Mul, Quantize rounds
    // as ONNX Runtime's float simulation does, one step off its QLinearMul
    // kernel (which made the stored outputs) on some elements.
    for (case, all) in [
        ("qdq_cnn", true),
        ("ort_qdq_cnn_s8s8", true),
        ("ort_qop_cnn_s8s8", true),
        ("ort_qdq_mlp_u8s8", true),
        ("ort_dyn_transformer", true),
        ("ort_qop_requant", false),
        ("ort_qdq_transformer", true),
        ("binary_cnn", true),
        ("ort_qdq_cnn_u8u8_pt", true),
        ("qdq_int4_cnn", true),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = root().join("testdata").join(case).join("test_data_set_0");
        let o = Command::new(env!("CARGO_BIN_EXE_qcc"))
            .arg(root().join("testdata").join(case).join("model.onnx"))
            .args(["--emit", "onnx", "-o"])
            .arg(dir.path().join("m.o"))
            .output()
            .expect("run qcc");
        assert!(
            o.status.success(),
            "{case}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let (_, x) = qcc_onnx::read_tensor_pb(&data.join("input_0.pb")).expect("input");
        let mut shape = vec![1];
        shape.extend_from_slice(x.shape());
        let inp = dir.path().join("x.npy");
        match x.data() {
            TensorData::F32(v) => write_npy(&inp, &shape, v),
            TensorData::I64(v) => write_npy(&inp, &shape, v),
            other => panic!("{case}: input type {:?} not handled", other.dtype()),
        }
        let (script, out) = (dir.path().join("run.py"), dir.path().join("y.npy"));
        std::fs::write(&script, ORT_SCRIPT).expect("script");
        for k in 0.. {
            let Ok((_, want)) = qcc_onnx::read_tensor_pb(&data.join(format!("output_{k}.pb")))
            else {
                assert!(k > 0, "{case}: no output_0.pb");
                break;
            };
            if k > 0 && !all {
                break;
            }
            let r = Command::new(&py)
                .arg(&script)
                .arg(dir.path().join("m.onnx"))
                .args([&inp, &out])
                .arg(k.to_string())
                .output()
                .expect("run python");
            assert!(
                r.status.success(),
                "{case}: {}",
                String::from_utf8_lossy(&r.stderr)
            );
            let got: Vec<f32> = npyz::NpyFile::new(&std::fs::read(&out).expect("y.npy")[..])
                .expect("npy")
                .into_vec()
                .expect("f32");
            let (atol, rtol) = tolerance(case);
            let want = want.to_f32_vec();
            assert_eq!(got.len(), want.len(), "{case}: output {k} size");
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                let d = (*g as f64 - *w as f64).abs();
                assert!(
                    d <= atol + rtol * (*w as f64).abs(),
                    "{case}: exported model's output {k} [{i}] {g} vs {w}"
                );
            }
        }
    }
}
