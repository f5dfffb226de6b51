//! The cross-compilation options of the `qcc` binary: `--print targets|cpus|
//! features`, `--stats`, and the one-line errors for unknown targets, CPUs
//! and features (before the model is read; no output file is left).

mod common;

use std::process::{Command, Output};

fn qcc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_qcc"))
        .args(args)
        .output()
        .expect("run qcc")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn print_lists_targets_cpus_and_features() {
    let t = qcc(&["--print", "targets"]);
    assert!(t.status.success(), "{}", stderr(&t));
    for want in [
        "aarch64-unknown-linux-gnu",
        "armv7-unknown-linux-gnueabihf",
        "thumbv7em-none-eabihf",
        "thumbv8m.main-none-eabihf",
    ] {
        assert!(stdout(&t).contains(want), "{}", stdout(&t));
    }
    let c = qcc(&["--target", "thumbv7em-none-eabihf", "--print", "cpus"]);
    assert!(c.status.success(), "{}", stderr(&c));
    assert!(stdout(&c).contains("cortex-m4") && stdout(&c).contains("cortex-m7"));
    let c = qcc(&["--target", "aarch64-unknown-linux-gnu", "--print", "cpus"]);
    let a76 = stdout(&c)
        .lines()
        .find(|l| l.split_whitespace().next() == Some("cortex-a76"))
        .map(str::to_string);
    assert!(a76.is_some_and(|l| l.contains("dotprod") && !l.contains("i8mm")));
    let f = qcc(&[
        "--target",
        "aarch64-unknown-linux-gnu",
        "--print",
        "features",
    ]);
    assert!(stdout(&f).contains("+dotprod") && stdout(&f).contains("+i8mm"));
    let bad = qcc(&["--target", "mips-unknown-linux-gnu", "--print", "cpus"]);
    assert_eq!(bad.status.code(), Some(1));
    let none = qcc(&["--print", "everything"]);
    assert_eq!(
        none.status.code(),
        Some(2),
        "clap rejects an unknown --print value"
    );
}

#[test]
fn bad_target_cpu_or_feature_is_a_one_line_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("m.o");
    let model = common::repo_root().join("testdata/mlp/model.onnx");
    let model = model.to_str().expect("utf-8 path");
    let out_s = out.to_str().expect("utf-8 path");
    for (flags, hint) in [
        (
            &["--target", "riscv64-unknown-linux-gnu"][..],
            "supported targets",
        ),
        (&["--target", "thumbv7em-none-eabi"][..], "soft-float"),
        (
            &[
                "--target",
                "aarch64-unknown-linux-gnu",
                "--cpu",
                "cortex-a99",
            ][..],
            "valid CPUs",
        ),
        (
            &[
                "--target",
                "thumbv7em-none-eabihf",
                "--features",
                "+dotprod",
            ][..],
            "valid features",
        ),
        (
            &["--target", "thumbv7em-none-eabihf", "--cpu", "native"][..],
            "host",
        ),
    ] {
        let mut args = vec![model, "-o", out_s];
        args.extend_from_slice(flags);
        let o = qcc(&args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{flags:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{flags:?}: {err}");
        assert!(
            err.starts_with("qcc: error: ") && err.contains(hint),
            "{flags:?}: {err}"
        );
        assert!(!out.exists(), "{flags:?} left {}", out.display());
    }
}

#[test]
fn stats_report_flash_ram_and_stack() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("m.o");
    let model = common::repo_root().join("testdata/mlp/model.onnx");
    let o = Command::new(env!("CARGO_BIN_EXE_qcc"))
        .arg(&model)
        .arg("-o")
        .arg(&out)
        .args(["--target", "thumbv7em-none-eabihf", "--stats"])
        .output()
        .expect("run qcc");
    let err = stderr(&o);
    if !o.status.success() && common::is_unsupported(&err) {
        eprintln!("mlp is not supported yet: {err}");
        return;
    }
    assert!(o.status.success(), "{err}");
    let s = stdout(&o);
    let header = std::fs::read_to_string(dir.path().join("m.h")).expect("header");
    let ws = header
        .lines()
        .find_map(|l| l.strip_prefix("#define M_WORKSPACE_SIZE "))
        .expect("workspace macro")
        .trim()
        .to_string();
    assert!(
        s.contains("target: thumbv7em-unknown-none-eabihf (cpu cortex-m4)"),
        "{s}"
    );
    assert!(
        s.contains(&format!("ram: {ws} bytes (workspace {ws})")),
        "{s}"
    );
    assert!(s.lines().any(|l| l.starts_with("flash: ")), "{s}");
    assert!(
        s.lines()
            .any(|l| l.starts_with("stack: ") && l.contains("m_run")),
        "{s}"
    );
}
