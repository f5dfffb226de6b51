//! Cross-compiled end-to-end runs on ARM Linux under qemu-user: every case of
//! `testdata/manifest.txt` (plus a few ONNX node tests, always runnable) is
//! compiled by the `qcc` binary for
//!
//! * `aarch64-unknown-linux-gnu` with the default (baseline) CPU, run under
//!   `qemu-aarch64 -cpu cortex-a53`: a core without dotprod/i8mm, so an
//!   optional instruction leaking into a baseline build traps;
//! * the same with `--features +dotprod,+i8mm`, run under `-cpu max`;
//! * `armv7-unknown-linux-gnueabihf` (baseline: VFPv3 + NEON), run under
//!   `qemu-arm -cpu cortex-a8` (no VFPv4, so no fused multiply-add may leak in);
//!
//! linked with the cross gcc (dynamically, `-L` gives qemu the sysroot),
//! and its outputs compared with the x86 build's and onnxruntime's (floats
//! within the case's tolerance) and with qcc's interpreter (integer outputs
//! bit-exact, floats within the tolerance).
//!
//! qemu is called explicitly (binfmt_misc is not relied upon). A case whose
//! host build fails as unsupported is reported and skipped (e2e.rs fails for
//! it); any other failure fails the test. Missing tools skip locally and fail
//! under CI (`CI` set).

mod common;

use common::{DataSet, ManifestCase, Tolerance};
use qcc_ir::Tensor;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// A cross configuration.
struct Board {
    name: &'static str,
    cc: &'static str,
    qemu: &'static str,
    sysroot: &'static str,
    qemu_cpu: &'static str,
    qcc_flags: &'static [&'static str],
}

const AARCH64_BASELINE: Board = Board {
    name: "aarch64 baseline on cortex-a53",
    cc: "aarch64-linux-gnu-gcc",
    qemu: "qemu-aarch64",
    sysroot: "/usr/aarch64-linux-gnu",
    qemu_cpu: "cortex-a53",
    qcc_flags: &["--target", "aarch64-unknown-linux-gnu"],
};

const AARCH64_DOTPROD_I8MM: Board = Board {
    name: "aarch64 +dotprod,+i8mm",
    cc: "aarch64-linux-gnu-gcc",
    qemu: "qemu-aarch64",
    sysroot: "/usr/aarch64-linux-gnu",
    qemu_cpu: "max",
    qcc_flags: &[
        "--target",
        "aarch64-unknown-linux-gnu",
        "--features",
        "+dotprod,+i8mm",
    ],
};

const ARMV7: Board = Board {
    name: "armv7 on cortex-a8",
    cc: "arm-linux-gnueabihf-gcc",
    qemu: "qemu-arm",
    sysroot: "/usr/arm-linux-gnueabihf",
    qemu_cpu: "cortex-a8",
    qcc_flags: &["--target", "armv7-unknown-linux-gnueabihf"],
};

/// ONNX node tests (`.cache/onnx-node`, installed by scripts/setup.sh) run
/// besides the manifest: elementwise ops that need no big kernel, so the
/// cross path is exercised even while a kernel is missing.
const NODE_CASES: &[(&str, Tolerance)] = &[
    (
        "test_erf",
        Tolerance {
            atol: 1e-6,
            rtol: 1e-4,
        },
    ),
    (
        "test_tanh",
        Tolerance {
            atol: 1e-6,
            rtol: 1e-4,
        },
    ),
    (
        "test_transpose_all_permutations_4",
        Tolerance {
            atol: 0.0,
            rtol: 0.0,
        },
    ),
];

/// A case to run: its model, data sets, tolerance and qcc flags.
struct Case {
    name: String,
    model: PathBuf,
    tol: Tolerance,
    flags: Vec<String>,
    data: Vec<DataSet>,
}

fn load_case(name: &str, dir: &Path, tol: Tolerance, flags: &[String]) -> Result<Case, String> {
    let data = common::data_set_dirs(dir)?
        .iter()
        .map(|d| common::load_data_set(d))
        .collect::<Result<_, _>>()?;
    Ok(Case {
        name: name.to_string(),
        model: dir.join("model.onnx"),
        tol,
        flags: flags.to_vec(),
        data,
    })
}

fn cases() -> Result<Vec<Case>, String> {
    let root = common::repo_root();
    let mut out = vec![];
    for ManifestCase { name, tol, flags } in common::read_manifest()? {
        out.push(load_case(
            &name,
            &root.join("testdata").join(&name),
            tol,
            &flags,
        )?);
    }
    for (name, tol) in NODE_CASES {
        let dir = root.join(".cache/onnx-node").join(name);
        if !dir.is_dir() {
            return Err(format!(
                "{} is missing: run bash scripts/setup.sh",
                dir.display()
            ));
        }
        out.push(load_case(name, &dir, *tol, &[])?);
    }
    Ok(out)
}

/// The host (x86) build's outputs of one case, per data set; `None` when
/// qcc does not support the model yet.
type HostRun = Result<Option<Vec<Vec<Tensor>>>, String>;

fn host_run(case: &Case) -> HostRun {
    let compiled = match common::compile_and_link(&case.name, &case.model, &case.flags) {
        Ok(c) => c,
        Err(e) if common::is_unsupported(&e) => return Ok(None),
        Err(e) => return Err(format!("host build: {e}")),
    };
    let mut outs = vec![];
    for d in &case.data {
        outs.push(compiled.run(d).map_err(|e| format!("host run: {e}"))?);
    }
    Ok(Some(outs))
}

/// Every case with its host outputs, computed once per test binary.
fn all_cases() -> &'static Result<Vec<(Case, HostRun)>, String> {
    static CASES: OnceLock<Result<Vec<(Case, HostRun)>, String>> = OnceLock::new();
    CASES.get_or_init(|| {
        Ok(cases()?
            .into_iter()
            .map(|c| {
                let h = host_run(&c);
                (c, h)
            })
            .collect())
    })
}

fn check_outputs(
    got: &[Tensor],
    want: &[(String, Tensor)],
    tol: Tolerance,
    against: &str,
) -> Result<f64, String> {
    let errs = common::compare_outputs(got, want, tol, against)?;
    Ok(errs.iter().map(|e| e.1).fold(0.0, f64::max))
}

fn named(like: &[(String, Tensor)], values: &[Tensor]) -> Vec<(String, Tensor)> {
    like.iter()
        .map(|(n, _)| n.clone())
        .zip(values.iter().cloned())
        .collect()
}

/// Compiles, links and runs one case on `board`; returns a summary line.
fn run_case(board: &Board, case: &Case, host: &[Vec<Tensor>]) -> Result<String, String> {
    let work = common::WorkDir::new(&format!("{}-{}", case.name, board.qemu_cpu))?;
    let mut flags = case.flags.clone();
    flags.extend(board.qcc_flags.iter().map(|s| s.to_string()));
    common::qcc_compile(&case.model, work.path(), &flags)?;
    let app = common::build_app_cross(work.path(), board.cc, &[])?;
    let runner: Vec<String> = [board.qemu, "-L", board.sysroot, "-cpu", board.qemu_cpu]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut worst = [0.0f64; 3];
    for (d, host_outs) in case.data.iter().zip(host) {
        let types: Vec<_> = d.outputs.iter().map(|(_, t)| t.ty()).collect();
        let got = common::run_app_under(&runner, &app, work.path(), &d.inputs, &types)?;
        let interp = common::interp_outputs(&case.model, &case.flags, &d.inputs)?;
        let errs = [
            check_outputs(
                &got,
                &named(&d.outputs, host_outs),
                case.tol,
                "the x86 build",
            )?,
            check_outputs(&got, &d.outputs, case.tol, "onnxruntime")?,
            check_outputs(
                &got,
                &named(&d.outputs, &interp),
                case.tol,
                "the interpreter",
            )?,
        ];
        for (w, e) in worst.iter_mut().zip(errs) {
            *w = w.max(e);
        }
    }
    Ok(format!(
        "max abs err vs x86 {:.2e}, vs onnxruntime {:.2e}, vs interpreter {:.2e}",
        worst[0], worst[1], worst[2]
    ))
}

fn run_board(board: &Board) {
    if !common::tools_available(&[board.cc, board.qemu], board.name) {
        return;
    }
    let cases = all_cases()
        .as_ref()
        .unwrap_or_else(|e| panic!("{}: {e}", board.name));
    let (mut failures, mut ran, mut skipped) = (vec![], 0, vec![]);
    for (case, host) in cases {
        match host {
            Ok(Some(h)) => match run_case(board, case, h) {
                Ok(summary) => {
                    ran += 1;
                    println!("cross {} {}: {summary}", board.name, case.name);
                }
                Err(e) => failures.push(format!("{}: {e}", case.name)),
            },
            Ok(None) => skipped.push(case.name.as_str()),
            Err(e) => failures.push(format!("{}: {e}", case.name)),
        }
    }
    if !skipped.is_empty() {
        println!(
            "cross {}: skipped (unsupported on the host too; see e2e): {}",
            board.name,
            skipped.join(", ")
        );
    }
    assert!(
        failures.is_empty(),
        "cross {}: {} case(s) failed:\n  {}",
        board.name,
        failures.len(),
        failures.join("\n  ")
    );
    assert!(ran > 0, "cross {}: no case ran", board.name);
}

#[test]
fn aarch64_baseline_runs_on_cortex_a53() {
    run_board(&AARCH64_BASELINE);
}

#[test]
fn aarch64_dotprod_i8mm() {
    run_board(&AARCH64_DOTPROD_I8MM);
}

#[test]
fn armv7_neon_runs_on_cortex_a8() {
    run_board(&ARMV7);
}
