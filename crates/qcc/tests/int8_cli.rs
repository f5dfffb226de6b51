//! The `--quantize int8` command line: usage errors exit 2; bad calibration
//! data exits 1 with one line naming the file (and array or input) and
//! leaves no output file; `--stats` prints the quantization report.
//! The model is `testdata/small_cnn` (one input `x`, f32[1,3,16,16]).

use npyz::WriterBuilder;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

fn model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/small_cnn/model.onnx")
}

struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
    leftovers: Vec<String>,
}

/// Runs `qcc MODEL -o OUT/out.o ARGS…` with a fresh, empty output folder.
fn qcc(args: &[&str]) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_qcc"))
        .arg(model())
        .arg("-o")
        .arg(dir.path().join("out.o"))
        .args(args)
        .output()
        .expect("run qcc");
    let leftovers = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    Outcome {
        code: o.status.code().expect("qcc was killed by a signal"),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        leftovers,
    }
}

fn npy<T: npyz::AutoSerialize + Copy>(shape: &[u64], data: &[T]) -> Vec<u8> {
    let mut out = vec![];
    let mut w = npyz::WriteOptions::new()
        .default_dtype()
        .shape(shape)
        .writer(&mut out)
        .begin_nd()
        .unwrap();
    w.extend(data.iter().copied()).unwrap();
    w.finish().unwrap();
    out
}

fn npz(arrays: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut z = zip::ZipWriter::new(std::io::Cursor::new(vec![]));
    for (name, bytes) in arrays {
        z.start_file(
            format!("{name}.npy"),
            zip::write::SimpleFileOptions::default(),
        )
        .unwrap();
        z.write_all(bytes).unwrap();
    }
    z.finish().unwrap().into_inner()
}

/// `n` samples of the model's input, stacked along the batch axis.
fn samples(n: usize) -> Vec<f32> {
    (0..n * 768)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
        .collect()
}

/// Compiles with calibration file `name` holding `bytes`; expects exit 1,
/// one line mentioning the file and every needle, and no output file.
fn expect_calibration_error(name: &str, bytes: &[u8], needles: &[&str]) {
    let data = tempfile::tempdir().unwrap();
    let path = data.path().join(name);
    fs::write(&path, bytes).unwrap();
    let o = qcc(&[
        "--quantize",
        "int8",
        "--calibration-data",
        path.to_str().unwrap(),
    ]);
    assert_eq!(o.code, 1, "{name}: exit code; stderr: {}", o.stderr);
    assert!(!o.stderr.contains("panicked"), "{name}: {}", o.stderr);
    let lines: Vec<&str> = o.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{name}: want one line: {}", o.stderr);
    for n in [name].iter().chain(needles) {
        assert!(
            lines[0].contains(n),
            "{name}: should mention '{n}': {}",
            lines[0]
        );
    }
    assert!(o.leftovers.is_empty(), "{name}: left {:?}", o.leftovers);
}

#[test]
fn missing_calibration_file() {
    let o = qcc(&[
        "--quantize",
        "int8",
        "--calibration-data",
        "/nonexistent/calib.npy",
    ]);
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(o.stderr.contains("calib.npy"), "{}", o.stderr);
    assert_eq!(o.stderr.lines().count(), 1, "{}", o.stderr);
    assert!(o.leftovers.is_empty());
}

#[test]
fn not_numpy() {
    expect_calibration_error("calib.npy", b"a text file\n", &["not a .npy"]);
}

#[test]
fn wrong_dtype() {
    expect_calibration_error(
        "ints.npy",
        &npy(&[2, 3, 16, 16], &vec![1i32; 1536]),
        &["<i4", "'x'", "float32"],
    );
}

#[test]
fn wrong_shape() {
    expect_calibration_error(
        "shape.npy",
        &npy(&[2, 3, 16, 15], &vec![1.0f32; 1440]),
        &["[2, 3, 16, 15]", "'x'"],
    );
}

#[test]
fn nan_is_located() {
    let mut v = samples(2);
    v[768 + 5] = f32::NAN;
    expect_calibration_error(
        "nan.npy",
        &npy(&[2, 3, 16, 16], &v),
        &["element [1, 0, 0, 5] is NaN"],
    );
}

#[test]
fn zero_samples() {
    expect_calibration_error(
        "empty.npy",
        &npy::<f32>(&[0, 3, 16, 16], &[]),
        &["zero samples"],
    );
}

#[test]
fn npz_with_unknown_array() {
    expect_calibration_error(
        "calib.npz",
        &npz(&[
            ("x", npy(&[1, 3, 16, 16], &samples(1))),
            ("y", npy(&[1], &[0.0f32])),
        ]),
        &["array 'y'", "not an input", "inputs: x"],
    );
}

#[test]
fn npz_missing_input() {
    expect_calibration_error(
        "calib.npz",
        &npz(&[("input", npy(&[1, 3, 16, 16], &samples(1)))]),
        &["array 'input'", "not an input"],
    );
}

fn usage_error(args: &[&str], needle: &str) {
    let o = qcc(args);
    assert_eq!(o.code, 2, "{args:?}: {}", o.stderr);
    assert!(o.stderr.contains(needle), "{args:?}: {}", o.stderr);
    assert!(o.leftovers.is_empty());
}

#[test]
fn usage_errors_exit_2() {
    usage_error(&["--quantize", "int8"], "--calibration-data");
    usage_error(&["--calibration-data", "c.npy"], "--quantize");
    usage_error(
        &["--quantize", "int4", "--calibration-data", "c.npy"],
        "int4",
    );
    for bad in ["max", "percentile=0", "percentile=abc"] {
        usage_error(
            &[
                "--quantize",
                "int8",
                "--calibration-data",
                "c.npy",
                "--calibration",
                bad,
            ],
            "--calibration",
        );
    }
    usage_error(
        &[
            "--quantize",
            "int8",
            "--calibration-data",
            "c.npy",
            "--scales",
            "pow3",
        ],
        "pow3",
    );
    usage_error(
        &[
            "--quantize",
            "int8",
            "--calibration-data",
            "c.npy",
            "--io",
            "int4",
        ],
        "int4",
    );
    usage_error(&["--per-tensor"], "--quantize");
    // --requantize is for models that arrive quantized.
    usage_error(
        &[
            "--quantize",
            "int8",
            "--calibration-data",
            "c.npy",
            "--requantize",
            "fixed-point",
        ],
        "--requantize",
    );
    usage_error(&["--requantize", "float32"], "float32");
}

/// `--stats` with `--quantize`: the passes' table, measured SQNR per layer
/// and per output, and fewer quantization ops than the naive insertion.
#[test]
fn stats_report() {
    let data = tempfile::tempdir().unwrap();
    let calib = data.path().join("calib.npy");
    fs::write(&calib, npy(&[4, 3, 16, 16], &samples(4))).unwrap();
    let o = qcc(&[
        "--quantize",
        "int8",
        "--calibration-data",
        calib.to_str().unwrap(),
        "--calibration",
        "percentile=99.9",
        "--stats",
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let s = &o.stdout;
    assert!(
        s.contains("SQNR measured against float on 4 calibration sample(s)"),
        "{s}"
    );
    assert!(s.contains("output probs"), "{s}");
    let line = s
        .lines()
        .find(|l| l.starts_with("quantization ops:"))
        .unwrap_or_else(|| panic!("no counts line in:\n{s}"));
    let numbers: Vec<usize> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    // "q quantize, d dequantize, r requantize = total (naive …: nq + nd = naive)"
    assert!(numbers.len() >= 7, "{line}");
    let (total, naive) = (numbers[3], numbers[6]);
    assert!(naive > 0 && total < naive, "{line}");
    assert!(s.contains("qconv"), "no quantized conv layer in:\n{s}");
    let mut sorted = o.leftovers.clone();
    sorted.sort();
    assert_eq!(sorted, ["out.h", "out.o"]);
}

#[test]
fn keep_float_names_must_exist() {
    let data = tempfile::tempdir().unwrap();
    let calib = data.path().join("calib.npy");
    fs::write(&calib, npy(&[2, 3, 16, 16], &samples(2))).unwrap();
    let calib = calib.to_str().unwrap();
    let o = qcc(&[
        "--quantize",
        "int8",
        "--calibration-data",
        calib,
        "--keep-float",
        "Conv_4,NoSuchNode",
    ]);
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert_eq!(o.stderr.lines().count(), 1, "{}", o.stderr);
    assert!(o.stderr.contains("'NoSuchNode'"), "{}", o.stderr);
    assert!(o.leftovers.is_empty());

    let o = qcc(&[
        "--quantize",
        "int8",
        "--calibration-data",
        calib,
        "--keep-float",
        "Conv_4",
        "--per-tensor",
        "--stats",
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        o.stdout
            .lines()
            .any(|l| l.starts_with("Conv_4") && l.contains("float")),
        "{}",
        o.stdout
    );
}

/// `qcc dump` takes the quantization flags too.
#[test]
fn dump_quantized_graph() {
    let data = tempfile::tempdir().unwrap();
    let calib = data.path().join("calib.npy");
    fs::write(&calib, npy(&[2, 3, 16, 16], &samples(2))).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_qcc"))
        .arg("dump")
        .arg(model())
        .args(["--quantize", "int8", "--calibration-data"])
        .arg(&calib)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("qconv"), "{text}");
}

/// `--requantize` reaches `fold-qdq`: a model that arrives quantized gets
/// float-form epilogues by default (`f32*…`) and fixed-point ones (`m>>s`)
/// with `--requantize fixed-point`.
#[test]
fn requantize_flag_chooses_the_epilogue_form() {
    let model =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/ort_qop_requant/model.onnx");
    let dump = |extra: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_qcc"))
            .arg("dump")
            .arg(&model)
            .args(extra)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    let float = dump(&[]);
    assert!(
        float.contains("epi=(f32_per_channel(8)") && !float.contains(">>"),
        "{float}"
    );
    let fixed = dump(&["--requantize", "fixed-point"]);
    assert!(
        fixed.contains("epi=(per_channel(8)") && !fixed.contains("epi=(f32"),
        "{fixed}"
    );
}

#[test]
fn io_int8_header_states_scales_and_zero_points() {
    let data = tempfile::tempdir().unwrap();
    let calib = data.path().join("calib.npy");
    fs::write(&calib, npy(&[4, 3, 16, 16], &samples(4))).unwrap();
    let out = data.path().join("m.o");
    let o = Command::new(env!("CARGO_BIN_EXE_qcc"))
        .arg(model())
        .arg("-o")
        .arg(&out)
        .args(["--quantize", "int8", "--io", "int8", "--calibration-data"])
        .arg(&calib)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let h = fs::read_to_string(data.path().join("m.h")).unwrap();
    assert!(h.contains("/* input 0: \"x\" int8 [1,3,16,16] */"), "{h}");
    let scale = h
        .lines()
        .find_map(|l| l.strip_prefix("#define M_INPUT0_SCALE "))
        .unwrap_or_else(|| panic!("no input scale in:\n{h}"));
    let scale: f32 = scale.trim_end_matches('f').parse().unwrap();
    assert!(scale > 0.0 && scale < 1.0, "{scale}");
    assert!(h.contains("#define M_INPUT0_ZERO_POINT "), "{h}");
    // Without --io int8 the ports are float and carry no quantization macros.
    let o = Command::new(env!("CARGO_BIN_EXE_qcc"))
        .arg(model())
        .arg("-o")
        .arg(&out)
        .args(["--quantize", "int8", "--calibration-data"])
        .arg(&calib)
        .output()
        .unwrap();
    assert!(o.status.success());
    let h = fs::read_to_string(data.path().join("m.h")).unwrap();
    assert!(!h.contains("_SCALE"), "{h}");
}

/// `--weight-bits 7` keeps every weight within ±63, so an AVX2 build takes
/// the `vpmaddubsw` microkernels (8-bit weights keep `vpmaddwd`), and the
/// stats give the width; widths outside 2-8 are usage errors.
#[test]
fn seven_bit_weights_take_the_maddubs_kernels() {
    let data = tempfile::tempdir().unwrap();
    let calib = data.path().join("calib.npy");
    fs::write(&calib, npy(&[2, 3, 16, 16], &samples(2))).unwrap();
    for (bits, maddubs) in [("7", true), ("8", false)] {
        let asm = data.path().join(format!("w{bits}.s"));
        let o = Command::new(env!("CARGO_BIN_EXE_qcc"))
            .arg(model())
            .args(["--quantize", "int8", "--calibration-data"])
            .arg(&calib)
            .args(["--weight-bits", bits, "--stats", "--emit", "asm"])
            .args(["--target", "x86_64-unknown-linux-gnu", "--cpu", "x86-64"])
            .args(["--features", "+avx2,+fma", "-o"])
            .arg(&asm)
            .output()
            .expect("run qcc");
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(stdout.contains(&format!(" {bits}/8 ")), "{stdout}");
        let text = fs::read_to_string(&asm).unwrap();
        assert_eq!(text.contains("vpmaddubsw"), maddubs, "--weight-bits {bits}");
    }
    for bad in ["1", "9"] {
        usage_error(
            &[
                "--quantize",
                "int8",
                "--calibration-data",
                "c.npy",
                "--weight-bits",
                bad,
            ],
            "--weight-bits",
        );
    }
}

/// `--bits NODE=BITS` sets the weight bits of the named layers only (the
/// stats show each layer's width) and `--ternary NODE` makes one ternary
/// (`t`); a name that is no weighted layer is a one-line error naming it and
/// the flag, a malformed entry a usage error.
#[test]
fn bits_set_named_layers_only() {
    let calib = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/small_cnn");
    let calib = calib.to_str().unwrap();
    let o = qcc(&[
        "--quantize",
        "int8",
        "--calibration-data",
        calib,
        "--bits",
        "Conv_10=4,Gemm_42=2",
        "--stats",
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let bits_of = |layer: &str| {
        let row = o
            .stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(layer))
            .unwrap_or_else(|| panic!("no row {layer} in:\n{}", o.stdout));
        row.split_whitespace().nth(2).unwrap().to_string()
    };
    assert_eq!(bits_of("Conv_10"), "4/8");
    assert_eq!(bits_of("Gemm_42"), "2/8");
    assert_eq!(bits_of("Conv_4"), "8/8");
    assert_eq!(bits_of("Conv_24"), "8/8");
    let o = qcc(&[
        "--quantize",
        "int8",
        "--calibration-data",
        calib,
        "--ternary",
        "Conv_24",
        "--stats",
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let row = o
        .stdout
        .lines()
        .find(|l| l.starts_with("Conv_24 "))
        .unwrap();
    assert_eq!(row.split_whitespace().nth(2), Some("t/8"), "{row}");
    for (flag, name) in [
        ("--bits", "Relu_12"),
        ("--bits", "nope"),
        ("--ternary", "nope"),
    ] {
        let value = if flag == "--bits" {
            format!("{name}=4")
        } else {
            name.to_string()
        };
        let o = qcc(&[
            "--quantize",
            "int8",
            "--calibration-data",
            calib,
            flag,
            &value,
        ]);
        assert_eq!(o.code, 1, "{}", o.stderr);
        assert!(o.stderr.contains(&format!("'{name}'")), "{}", o.stderr);
        assert!(o.stderr.contains(flag), "{}", o.stderr);
        assert_eq!(o.stderr.lines().count(), 1, "{}", o.stderr);
        assert!(o.leftovers.is_empty(), "{:?}", o.leftovers);
    }
    for bad in ["Conv_10", "Conv_10=9", "Conv_10=x", "=4"] {
        usage_error(
            &[
                "--quantize",
                "int8",
                "--calibration-data",
                calib,
                "--bits",
                bad,
            ],
            "--bits",
        );
    }
}

/// `--quantize auto --weight-budget`: prints the measured frontier, marks a
/// choice within the budget, writes the plot beside the object; an
/// unreachable goal is a one-line error, a missing or misplaced goal a usage
/// error.
#[test]
fn auto_meets_the_weight_budget() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/digits");
    let (model, calib) = (root.join("model.onnx"), root.join("calib.npy"));
    let dir = tempfile::tempdir().unwrap();
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_qcc"))
            .arg(&model)
            .arg("-o")
            .arg(dir.path().join("d.o"))
            .arg("--calibration-data")
            .arg(&calib)
            .args(extra)
            .output()
            .expect("run qcc")
    };
    let o = run(&["--quantize", "auto", "--weight-budget", "55%", "--stats"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let chosen = out
        .lines()
        .find(|l| l.starts_with('*'))
        .unwrap_or_else(|| panic!("no chosen row:\n{out}"));
    let pct: f64 = chosen
        .split_whitespace()
        .nth(2)
        .unwrap()
        .trim_end_matches('%')
        .parse()
        .unwrap();
    assert!(pct <= 55.0 && pct > 40.0, "{chosen}");
    // The stats agree: some layer below 8 bits, the rest at 8.
    assert!(out.contains(" 4/8 ") && out.contains(" 8/8 "), "{out}");
    let svg = std::fs::read_to_string(dir.path().join("d.pareto.svg")).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("<polyline"),
        "{svg}"
    );
    let o = run(&["--quantize", "auto", "--min-sqnr", "1000"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("--min-sqnr") && err.lines().count() == 1,
        "{err}"
    );
    for args in [
        &["--quantize", "auto"][..],
        &["--quantize", "int8", "--weight-budget", "40KB"],
        &[
            "--quantize",
            "auto",
            "--weight-budget",
            "40KB",
            "--bits",
            "conv1=4",
        ],
        &["--quantize", "auto", "--weight-budget", "40 parsecs"],
    ] {
        let o = run(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
    }
}
