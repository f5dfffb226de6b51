//! Bad inputs: each gets a one-line error naming the file or node, exit code 1
//! (2 for usage errors), no panic, and no output file left behind.
//! The malformed models come from `testdata/gen_bad_models.py`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn bad(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/bad")
        .join(name)
}

struct Outcome {
    code: i32,
    stderr: String,
    leftovers: Vec<String>,
}

fn qcc(args: &[&str]) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.o");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_qcc"));
    cmd.args(args).arg("-o").arg(&out);
    let o = cmd.output().expect("run qcc");
    let leftovers = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    Outcome {
        code: o.status.code().expect("qcc was killed by a signal"),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        leftovers,
    }
}

/// Compiles a bad model and checks the error: exit 1, one line, mentions every `needles`, no output.
fn expect_error(model: &str, extra: &[&str], needles: &[&str]) {
    expect_error_at(bad(model).to_str().unwrap(), extra, needles);
}

#[test]
fn empty_file() {
    expect_error("empty.onnx", &[], &["empty.onnx"]);
}

#[test]
fn truncated_protobuf() {
    expect_error("truncated.onnx", &[], &["truncated.onnx"]);
}

#[test]
fn random_bytes() {
    expect_error("random.onnx", &[], &["random.onnx"]);
}

#[test]
fn unknown_op() {
    expect_error("unknown_op.onnx", &[], &["mystery", "FancyOp"]);
}

#[test]
fn missing_initializer() {
    expect_error("missing_initializer.onnx", &[], &["conv1", "'W'"]);
}

/// ConvInteger runs as an exact float Conv only while its sums stay below
/// 2^24; past that it is refused, not rounded.
#[test]
fn conv_integer_past_2_24_is_refused() {
    expect_error(
        "conv_integer_overflow.onnx",
        &[],
        &["'wide'", "ConvInteger", "2^24", "not supported"],
    );
}

#[test]
fn symbolic_dims_need_input_shape() {
    expect_error(
        "symbolic_width.onnx",
        &[],
        &["'x'", "symbolic dim 'width' at axis 1", "--input-shape"],
    );
}

#[test]
fn symbolic_dims_with_wrong_rank() {
    expect_error(
        "symbolic_dims.onnx",
        &["--input-shape", "x=1,4,4"],
        &["'x'"],
    );
}

/// Compiles `model` (testdata/bad) with `extra`: exit 0, an object, and the
/// one stderr line, which must mention every needle.
fn expect_note(model: &str, extra: &[&str], needles: &[&str]) {
    let path = bad(model);
    let mut args = vec![path.to_str().unwrap()];
    args.extend(extra);
    let o = qcc(&args);
    assert_eq!(o.code, 0, "{model}: {}", o.stderr);
    assert!(
        o.leftovers.contains(&"out.o".to_string()),
        "{:?}",
        o.leftovers
    );
    let lines: Vec<&str> = o.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{model}: want one note: {}", o.stderr);
    assert!(lines[0].starts_with("qcc: note: "), "{}", lines[0]);
    for n in needles {
        assert!(
            lines[0].contains(n),
            "{model}: note should mention '{n}': {}",
            lines[0]
        );
    }
}

/// A symbolic batch dim (the only one) defaults to 1, with a note; a
/// declared output shape that disagrees with the computed one is a hint,
/// noted and overridden (a dtype conflict stays an error).
#[test]
fn export_quirks_compile_with_a_note() {
    expect_note(
        "symbolic_dims.onnx",
        &[],
        &["input 'x' dim 'batch' set to 1", "--input-shape"],
    );
    expect_note(
        "output_rank0.onnx",
        &[],
        &[
            "graph output 'y'",
            "declared with shape []",
            "f32[1,4]",
            "computed shape is used",
        ],
    );
    // --input-shape chooses, and then nothing is noted.
    let path = bad("symbolic_dims.onnx");
    let o = qcc(&[path.to_str().unwrap(), "--input-shape", "x=2,4"]);
    assert_eq!((o.code, o.stderr.as_str()), (0, ""));
}

/// A few hundred bytes of ConstantOfShape must not become gigabytes: the
/// importer's budget for generated constants stops it at the first fill,
/// quickly, with the node's name (before, four fills allocated 7 GiB and
/// aborted after 47 s; one made a 1 GiB object).
#[test]
fn constant_fill_bombs() {
    for model in ["fill_bomb.onnx", "fill_1gib.onnx"] {
        let t = std::time::Instant::now();
        expect_error(model, &[], &["fill0", "ConstantOfShape", "bytes"]);
        assert!(
            t.elapsed().as_secs() < 20,
            "{model}: took {:?}",
            t.elapsed()
        );
    }
}

#[test]
fn external_data_leaving_the_folder() {
    expect_error("external_escape.onnx", &[], &["escape.bin"]);
}

#[test]
fn cycle() {
    expect_error("cycle.onnx", &[], &["cycle"]);
}

#[test]
fn missing_file() {
    expect_error("no_such_model.onnx", &[], &["no_such_model.onnx"]);
}

#[test]
fn usage_errors_exit_2() {
    let o = Command::new(env!("CARGO_BIN_EXE_qcc")).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let o = Command::new(env!("CARGO_BIN_EXE_qcc"))
        .args(["m.onnx", "--input-shape", "x"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let o = Command::new(env!("CARGO_BIN_EXE_qcc"))
        .args(["m.onnx", "--emit", "exe"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn check_lists_every_unsupported_op() {
    let o = Command::new(env!("CARGO_BIN_EXE_qcc"))
        .arg("check")
        .arg(bad("two_unsupported.onnx"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("Hardmax"), "{stdout}");
    assert!(stdout.contains("FancyOp"), "{stdout}");
}

/// Runs qcc with `args` in `dir`, killing it (and failing) if it has not
/// finished within 60 s: a bad input must never make qcc hang.
fn qcc_in(dir: &Path, args: &[&str]) -> (i32, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_qcc"))
        .args(args)
        .current_dir(dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run qcc");
    let start = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let o = child.wait_with_output().expect("output");
            let text = String::from_utf8_lossy(&o.stderr).into_owned()
                + &String::from_utf8_lossy(&o.stdout);
            return (status.code().expect("not killed"), text);
        }
        if start.elapsed() > std::time::Duration::from_secs(60) {
            let _ = child.kill();
            panic!("qcc {args:?} hangs");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn mkfifo(path: &Path) {
    let ok = Command::new("mkfifo").arg(path).status().expect("mkfifo");
    assert!(ok.success(), "mkfifo {}", path.display());
}

/// A FIFO as external data, as the model, or as calibration data is refused
/// at once (opening one would block forever).
#[test]
fn fifos_are_refused_not_waited_on() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::copy(bad("external_beside.onnx"), d.join("m.onnx")).unwrap();
    mkfifo(&d.join("weights.bin"));
    for args in [&["check", "m.onnx"][..], &["m.onnx", "-o", "m.o"][..]] {
        let (code, text) = qcc_in(d, args);
        assert_eq!(code, 1, "{text}");
        assert!(
            text.contains("weights.bin") && text.contains("not a regular file"),
            "{text}"
        );
    }
    mkfifo(&d.join("fifo.onnx"));
    let (code, text) = qcc_in(d, &["fifo.onnx", "-o", "f.o"]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("fifo.onnx") && text.contains("not a regular file"),
        "{text}"
    );
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/digits/model.onnx");
    std::fs::copy(model, d.join("digits.onnx")).unwrap();
    mkfifo(&d.join("calib.npy"));
    let (code, text) = qcc_in(
        d,
        &[
            "digits.onnx",
            "-o",
            "q.o",
            "--quantize",
            "int8",
            "--calibration-data",
            "calib.npy",
        ],
    );
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("calib.npy") && text.contains("not a regular file"),
        "{text}"
    );
    assert!(!d.join("q.o").exists() && !d.join("f.o").exists() && !d.join("m.o").exists());
}

/// An output path that is the model (directly or through a link), or two
/// outputs on one path, is refused before anything is written.
#[test]
fn outputs_never_overwrite_the_model_or_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/digits/model.onnx");
    let original = std::fs::read(&model).unwrap();
    std::fs::copy(&model, d.join("m.onnx")).unwrap();
    std::os::unix::fs::symlink("m.onnx", d.join("link.onnx")).unwrap();
    std::fs::hard_link(d.join("m.onnx"), d.join("hard.onnx")).unwrap();
    for out in ["m.onnx", "./m.onnx", "link.onnx", "hard.onnx"] {
        let (code, text) = qcc_in(d, &["m.onnx", "-o", out]);
        assert_eq!(code, 1, "-o {out}: {text}");
        assert!(text.contains("is the input model"), "{text}");
        assert_eq!(
            std::fs::read(d.join("m.onnx")).unwrap(),
            original,
            "-o {out}"
        );
    }
    let (code, text) = qcc_in(d, &["m.onnx", "-o", "m.o", "--header", "m.o"]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("two outputs"), "{text}");
    let (code, text) = qcc_in(d, &["m.onnx", "-o", "m.o", "--header", "m.onnx"]);
    assert_eq!(code, 1, "{text}");
    assert!(!d.join("m.o").exists(), "partial output left behind");
    assert_eq!(std::fs::read(d.join("m.onnx")).unwrap(), original);
}

/// Names from the model are printed with their control characters escaped:
/// one line, no terminal escape sequences.
#[test]
fn control_characters_in_names_are_escaped() {
    expect_error("control_chars.onnx", &[], &["evil\\nname\\x1b[31m"]);
    let o = qcc(&[bad("control_chars.onnx").to_str().unwrap()]);
    assert!(!o.stderr.contains('\x1b'), "{}", o.stderr);
    let out = Command::new(env!("CARGO_BIN_EXE_qcc"))
        .arg("check")
        .arg(bad("control_chars.onnx"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(!stdout.contains('\x1b'), "{stdout}");
}

/// An invalid `--name` is a usage error (exit 2), and a folder given as the
/// model says so once.
#[test]
fn bad_name_is_a_usage_error_and_folders_are_named_once() {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/digits/model.onnx");
    let o = qcc(&[model.to_str().unwrap(), "--name", "1x"]);
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(o.leftovers.is_empty());
    let dir = tempfile::tempdir().unwrap();
    let o = qcc(&[dir.path().to_str().unwrap()]);
    assert_eq!(o.code, 1);
    assert_eq!(o.stderr.lines().count(), 1, "{}", o.stderr);
    assert_eq!(o.stderr.matches("folder").count(), 1, "{}", o.stderr);
}

/// A dim written as -1 (how Paddle says "dynamic") is an unknown dim:
/// `--input-shape` fixes it; without one, as the leading dim, it is 1 and
/// a note says so.
#[test]
fn minus_one_dims_take_the_given_shape() {
    expect_note(
        "minus_one_dim.onnx",
        &[],
        &["input 'x' dim 0 (unknown) set to 1"],
    );
    let o = qcc(&[
        bad("minus_one_dim.onnx").to_str().unwrap(),
        "--input-shape",
        "x=3,4",
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        o.leftovers.contains(&"out.o".to_string()),
        "{:?}",
        o.leftovers
    );
}

/// `--const-input` bakes an input in (the header then lists no such
/// input); a malformed flag is a usage error, a name that is not an input
/// or a value of the wrong type an error naming it.
#[test]
fn const_inputs_are_baked_in_or_refused() {
    let digits = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/digits/model.onnx");
    let m = digits.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (code, text) = qcc_in(d, &[m, "-o", "d.o", "--const-input", "x=0.5"]);
    assert_eq!(code, 0, "{text}");
    let header = std::fs::read_to_string(d.join("d.h")).unwrap();
    assert!(header.contains("#define D_NUM_INPUTS 0"), "{header}");
    let (code, text) = qcc_in(d, &[m, "-o", "e.o", "--const-input", "x"]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("'x' is not NAME=VALUE"), "{text}");
    expect_error_at(
        m,
        &["--const-input", "y=1"],
        &["a constant is given for 'y', which is not a graph input (inputs: x)"],
    );
    expect_error_at(
        m,
        &["--const-input", "x=half"],
        &["--const-input x: 'half' is not a number"],
    );
}

/// A model someone already quantized (QDQ) compiles as it is; asking qcc
/// to quantize it again is refused, naming a Q/DQ node.
#[test]
fn an_already_quantized_model_is_not_quantized_again() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata");
    let qdq = root.join("qdq_cnn/model.onnx");
    let calib = root.join("digits/calib.npy");
    expect_error_at(
        qdq.to_str().unwrap(),
        &[
            "--quantize",
            "int8",
            "--calibration-data",
            calib.to_str().unwrap(),
        ],
        &[
            "--quantize: the model is already quantized (node 'QuantizeLinear_",
            "compile it without --quantize",
        ],
    );
}

/// [`expect_error`] for a model given by path.
fn expect_error_at(model: &str, extra: &[&str], needles: &[&str]) {
    let mut args = vec![model];
    args.extend(extra);
    let o = qcc(&args);
    assert_eq!(o.code, 1, "{model}: exit code; stderr: {}", o.stderr);
    assert!(
        !o.stderr.contains("panicked"),
        "{model}: panic: {}",
        o.stderr
    );
    let lines: Vec<&str> = o.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{model}: want one line, got: {}", o.stderr);
    for n in needles {
        assert!(
            lines[0].contains(n),
            "{model}: error should mention '{n}': {}",
            lines[0]
        );
    }
    assert!(
        o.leftovers.is_empty(),
        "{model}: left behind {:?}",
        o.leftovers
    );
}
