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
    let path = bad(model);
    let mut args = vec![path.to_str().unwrap()];
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

#[test]
fn symbolic_dims_need_input_shape() {
    expect_error("symbolic_dims.onnx", &[], &["'x'", "--input-shape"]);
}

#[test]
fn symbolic_dims_with_wrong_rank() {
    expect_error(
        "symbolic_dims.onnx",
        &["--input-shape", "x=1,4,4"],
        &["'x'"],
    );
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
