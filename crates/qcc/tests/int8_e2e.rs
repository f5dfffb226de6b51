//! Int8 end to end: each CNN/MLP case of `testdata/manifest.txt` is quantized
//! with the `qcc` binary (`--quantize int8`; minmax and mse calibration with
//! `--scales fixed-point` and `pow2`, minmax with `--io int8`; entropy in a
//! test of its own), linked with the C harness, run, and compared with qcc's
//! interpreter on the quantized graph that the library (`qcc::optimize_file`)
//! builds with the same options:
//!
//! - **bit for bit** on every output whose value depends only on integer
//!   arithmetic, quantize/dequantize and data movement (see [`exact_outputs`]).
//!   Each model gets the inputs of the nodes the quantizer left in float
//!   (its trailing Softmax, an average pool it has no integer kernel for) as
//!   extra outputs, so every case has such outputs even when float code
//!   follows;
//! - on the other outputs, within the case's float tolerance from the
//!   manifest (8-bit ones within one step): float kernels (Softmax, or a float average pool feeding a
//!   Quantize) use their own approximations and differ from the interpreter
//!   by rounding, as in e2e.rs. (A float difference feeding a Quantize could
//!   in principle move one value by a whole 8-bit step; with these fixed
//!   inputs it does not, so the comparison is deterministic.)
//!
//! The quantized outputs must also stay near the float model's (the stored
//! onnxruntime outputs): within [`FLOAT_TOLERANCE`] of each output's largest
//! magnitude. That bound is int8 noise, not a kernel tolerance (see there).
//!
//! Calibration data: the case's `test_data_set_0` inputs plus deterministic
//! perturbations (scaled and noised copies), written by this test as a
//! `.npy` (small_cnn, batch axis replaced by the sample axis), a `.npz`
//! (mlp) and a folder of `test_data_set_*/input_0.pb` (symbolic_batch), so
//! every loader runs end to end. The models are evaluated on the stored
//! inputs, two calibration samples and one sample 3× out of the calibrated
//! range (saturation).

mod common;

use common::{
    calib_format, close_enough, exact_outputs, has_integer_ops, noise, perturbed, same_bits,
    scaled, with_extra_outputs, write_calibration, DataSet, CALIBRATION_SAMPLES,
};
use qcc::{CalibrationData, CompileOptions, QuantConfig, QuantizeOptions};
use qcc_ir::{DType, Graph, Tensor, TensorData, ValueId};
use std::path::Path;

/// Largest |quantized − float| accepted, as a fraction of the output's
/// largest |float| value. One 8-bit step is 1/255 (0.4%) of a range, up to
/// twice that with power-of-two scales (rounded up); errors of 3 to 8 chained
/// layers add up and are amplified by later weights. Seen: 1 to 6% (minmax
/// and mse; small_cnn with pow2 the worst).
const FLOAT_TOLERANCE: f64 = 0.1;

/// `(max |got − want|, max |want|)` over two float tensors.
fn max_err(got: &Tensor, want: &Tensor) -> (f64, f64) {
    let (g, w) = (got.to_f32_vec(), want.to_f32_vec());
    let err = g
        .iter()
        .zip(&w)
        .map(|(a, b)| (*a as f64 - *b as f64).abs())
        .fold(0.0, f64::max);
    let mag = w.iter().map(|b| (*b as f64).abs()).fold(0.0, f64::max);
    (err, mag)
}

/// One quantization setting of a case.
#[derive(Clone, Copy, Debug)]
struct Variant {
    method: &'static str,
    scales: &'static str,
    /// `--io int8`: 8-bit graph inputs and outputs.
    io_int8: bool,
    /// `--weight-bits`.
    weight_bits: u32,
}

impl Variant {
    fn flags(&self, calib: &Path) -> Vec<String> {
        let mut f: Vec<String> = [
            "--quantize",
            "int8",
            "--calibration",
            self.method,
            "--scales",
            self.scales,
        ]
        .map(String::from)
        .to_vec();
        if self.io_int8 {
            f.extend(["--io".to_string(), "int8".to_string()]);
        }
        if self.weight_bits != 8 {
            f.extend(["--weight-bits".to_string(), self.weight_bits.to_string()]);
        }
        f.push("--calibration-data".into());
        f.push(calib.display().to_string());
        f
    }

    fn config(&self) -> Result<QuantConfig, String> {
        Ok(QuantConfig {
            method: qcc::calibration::parse_method(self.method)?,
            scales: match self.scales {
                "pow2" => qcc::ScaleFormat::Pow2,
                _ => qcc::ScaleFormat::FixedPoint,
            },
            io_int8: self.io_int8,
            weight_bits: self.weight_bits,
            ..QuantConfig::default()
        })
    }
}

/// Float inputs as the compiled model takes them: quantized with the graph
/// input's parameters when it is 8-bit (`--io int8`).
fn model_inputs(g: &Graph, inputs: &[Tensor]) -> Result<Vec<Tensor>, String> {
    inputs
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let Some(q) = g.input_quant(i) else {
                return Ok(t.clone());
            };
            let v: Vec<i8> = t
                .to_f32_vec()
                .iter()
                .map(|&x| qcc_ir::quant::quantize(x, q, -128, 127) as i8)
                .collect();
            Tensor::new(t.shape().to_vec(), TensorData::I8(v))
                .ok_or_else(|| format!("input {i}: bad element count"))
        })
        .collect()
}

/// An output as real numbers: dequantized with its parameters when 8-bit.
fn real_output(g: &Graph, o: usize, t: &Tensor) -> Result<Tensor, String> {
    if t.dtype() == DType::F32 {
        return Ok(t.clone());
    }
    let q = g
        .output_quant(o)
        .ok_or_else(|| format!("8-bit output #{o} has no recorded parameters"))?;
    let v = t
        .to_i64_vec()
        .ok_or("not an integer tensor")?
        .iter()
        .map(|&x| qcc_ir::quant::dequantize(x as i32, q))
        .collect();
    Tensor::from_f32(t.shape().to_vec(), v).ok_or_else(|| "bad element count".to_string())
}

fn check(case: &common::ManifestCase, v: Variant) -> Result<(), String> {
    let dir = common::repo_root().join("testdata").join(&case.name);
    let data: DataSet = common::load_data_set(&common::data_set_dirs(&dir)?[0])?;
    let label = format!(
        "{}-{}-{}{}",
        case.name,
        v.method.replace('=', ""),
        v.scales,
        if v.io_int8 { "-io-int8" } else { "" }
    ) + &if v.weight_bits == 8 {
        String::new()
    } else {
        format!("-w{}", v.weight_bits)
    };
    let work = common::WorkDir::new(&label)?;
    let original = dir.join("model.onnx");

    let shapes = common::input_shapes_of(&case.flags)?;
    let float_graph = qcc::import(&original, &shapes).map_err(|e| format!("import: {e:#}"))?;
    let names: Vec<String> = float_graph
        .inputs()
        .iter()
        .map(|&id| float_graph.node(id).name.clone())
        .collect();
    let samples: Vec<Vec<Tensor>> = (0..CALIBRATION_SAMPLES)
        .map(|k| data.inputs.iter().map(|x| perturbed(x, k)).collect())
        .collect();
    let calib = write_calibration(work.path(), calib_format(&case.name), &names, &samples)?;

    // The library's quantized graph: the oracle.
    let opts = CompileOptions {
        input_shapes: shapes,
        quantize: Some(QuantizeOptions {
            config: v.config()?,
            data: CalibrationData::Path(calib.clone()),
            progress: Default::default(),
        }),
        ..Default::default()
    };
    let library =
        |m: &Path| qcc::optimize_file(m, &opts, None).map_err(|e| format!("library: {e:#}"));
    let (_, cx) = library(&original)?;
    let float_nodes: Vec<String> = cx
        .quant_stats
        .float_nodes
        .iter()
        .map(|(n, _)| n.clone())
        .collect();
    let model = work.path().join("augmented.onnx");
    let extra = with_extra_outputs(&original, &model, &float_nodes)?;
    let (qgraph, _) = library(&model)?;
    if !has_integer_ops(&qgraph) {
        return Err(
            "the quantized graph has no integer layers (quantization passes missing?)".into(),
        );
    }
    if v.io_int8 {
        let io: Vec<ValueId> = qgraph
            .inputs()
            .iter()
            .map(|&n| ValueId::of(n))
            .chain(qgraph.outputs.iter().map(|o| o.value))
            .collect();
        if let Some(f) = io
            .iter()
            .find(|&&x| qgraph.value_type(x).dtype == DType::F32)
        {
            return Err(format!(
                "--io int8 left {} in float",
                qgraph.node(f.node).name
            ));
        }
    }
    let exact = exact_outputs(&qgraph);
    if !exact.iter().any(|&e| e) {
        return Err(
            "no output is computed in integer arithmetic; nothing to compare bit for bit".into(),
        );
    }

    // The binary, with the same options.
    let mut flags = case.flags.clone();
    flags.extend(v.flags(&calib));
    common::qcc_compile(&model, work.path(), &flags)?;
    let app = common::build_app(work.path())?;

    let out_of_range = scaled(&data.inputs, 3.0);
    let evals: [(&str, &[Tensor]); 4] = [
        ("test_data_set_0", &data.inputs),
        ("calibration sample 3", &samples[3]),
        ("calibration sample 6", &samples[6]),
        ("3x out of range", &out_of_range),
    ];
    let out_names: Vec<String> = qgraph.outputs.iter().map(|o| o.name.clone()).collect();
    let mut compared_exact = 0;
    let mut first_outputs = vec![];
    for (what, inputs) in evals {
        let inputs = model_inputs(&qgraph, inputs)?;
        let want = qcc_interp::run(&qgraph, &inputs).map_err(|e| format!("interpreter: {e}"))?;
        let types: Vec<_> = want.iter().map(|t| t.ty()).collect();
        let got = common::run_app(&app, work.path(), &inputs, &types)?;
        for (o, ((g, w), &is_exact)) in got.iter().zip(&want).zip(&exact).enumerate() {
            let name = &out_names[o];
            if is_exact {
                same_bits(g, w)
                    .map_err(|e| format!("{what}: output '{name}' vs interpreter: {e}"))?;
                compared_exact += 1;
            } else {
                close_enough(g, w, case.tol).map_err(|e| {
                    format!("{what}: output '{name}' (after float code) vs interpreter: {e}")
                })?;
            }
        }
        if first_outputs.is_empty() {
            first_outputs = got;
        }
    }
    println!(
        "int8 {label}: {compared_exact} outputs bit-exact, exact outputs {:?}, extra outputs {extra:?}",
        out_names
            .iter()
            .zip(&exact)
            .filter(|(_, e)| **e)
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
    );

    // Quantization noise against the float model (stored onnxruntime outputs).
    for (name, want) in &data.outputs {
        let o = out_names
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| format!("output '{name}' missing"))?;
        let got = real_output(&qgraph, o, &first_outputs[o])?;
        let (err, mag) = max_err(&got, want);
        println!(
            "int8 {label}: output '{name}' vs float: max abs err {err:.3e} (max |float| {mag:.3e})"
        );
        if err > FLOAT_TOLERANCE * mag.max(1e-6) {
            return Err(format!(
                "output '{name}' is {err:.3e} off the float model (more than {FLOAT_TOLERANCE} of its max |value| {mag:.3e})"
            ));
        }
    }
    Ok(())
}

/// Runs `check` on every case and variant; panics listing every failure.
fn run(cases: &[&str], variants: &[Variant]) {
    let manifest = common::read_manifest().unwrap_or_else(|e| panic!("int8: {e}"));
    let mut failures = vec![];
    for name in cases {
        let case = manifest
            .iter()
            .find(|c| c.name == *name)
            .unwrap_or_else(|| panic!("int8 {name}: not listed in testdata/manifest.txt"));
        for v in variants {
            if let Err(e) = check(case, *v) {
                failures.push(format!("{name} {v:?}: {e}"));
            }
        }
    }
    assert!(failures.is_empty(), "int8:\n  {}", failures.join("\n  "));
}

const fn variant(method: &'static str, scales: &'static str, io_int8: bool) -> Variant {
    Variant {
        method,
        scales,
        io_int8,
        weight_bits: 8,
    }
}

/// minmax and mse, both scale formats, and 8-bit I/O once.
const VARIANTS: [Variant; 5] = [
    variant("minmax", "fixed-point", false),
    variant("minmax", "pow2", false),
    variant("mse", "fixed-point", false),
    variant("mse", "pow2", false),
    variant("minmax", "fixed-point", true),
];

/// 7-bit weights (`--weight-bits 7`): on an AVX2 core without VNNI the
/// layers run on the `vpmaddubsw` microkernels; bit-exact like the others.
#[test]
fn seven_bit_weights() {
    let v = Variant {
        weight_bits: 7,
        ..variant("minmax", "fixed-point", false)
    };
    run(&["small_cnn", "mlp"], &[v]);
}

/// 4-bit weights (`--weight-bits 4`): GPTQ-rounded, stored two per byte
/// by the QConv/QGemm microkernels; bit-exact like the others.
#[test]
fn four_bit_weights() {
    let v = Variant {
        weight_bits: 4,
        ..variant("minmax", "fixed-point", false)
    };
    run(&["small_cnn", "mlp"], &[v]);
}

#[test]
fn small_cnn() {
    run(&["small_cnn"], &VARIANTS);
}

#[test]
fn mlp() {
    run(&["mlp"], &VARIANTS);
}

#[test]
fn symbolic_batch() {
    run(&["symbolic_batch"], &VARIANTS);
}

/// Entropy (KL) calibration: bit-exact like the others, and near float.
#[test]
fn entropy_calibration() {
    run(
        &["small_cnn", "mlp", "symbolic_batch"],
        &[variant("entropy", "fixed-point", false)],
    );
}

#[test]
fn noise_is_deterministic_and_bounded() {
    let v: Vec<f32> = (0..1000).map(|i| noise(3, i)).collect();
    assert!(v.iter().all(|x| (-1.0..1.0).contains(x)));
    assert_eq!(v, (0..1000).map(|i| noise(3, i)).collect::<Vec<_>>());
    let mean = v.iter().sum::<f32>() / 1000.0;
    assert!(mean.abs() < 0.1, "{mean}");
}
