//! Cross-compiled end-to-end runs on ARM Linux under qemu-user: every case of
//! `testdata/manifest.txt` (plus a few ONNX node tests, always runnable) is
//! compiled by the `qcc` binary for
//!
//! * `aarch64-unknown-linux-gnu` with the default (baseline) CPU, run under
//!   `qemu-aarch64 -cpu cortex-a53`: a core without dotprod/i8mm, so an
//!   optional instruction leaking into a baseline build traps (and, for code
//!   the inputs do not reach, no object's disassembly may contain one);
//! * the same with `--features +dotprod,+i8mm`, run under `-cpu max` (some
//!   int8 model's object must contain dotprod/i8mm instructions);
//! * `armv7-unknown-linux-gnueabihf` (baseline: VFPv3 + NEON), run under
//!   `qemu-arm -cpu cortex-a8` (no VFPv4, so no fused multiply-add may leak in);
//!
//! linked with the cross gcc (dynamically, `-L` gives qemu the sysroot),
//! and its outputs compared with the x86 build's and onnxruntime's (floats
//! within the case's tolerance) and with qcc's interpreter (integer outputs
//! bit-exact, floats within the tolerance).
//!
//! The int8 models ([`INT8_CASES`]: small_cnn, mlp and symbolic_batch
//! quantized with minmax calibration, fixed-point scales, and small_cnn with
//! power-of-two scales too) run on every configuration as well, built the way
//! int8_e2e.rs builds them (one calibration file per model; the inputs of the
//! nodes left in float are extra outputs, see `common::Int8Model`): every
//! output computed in integer arithmetic must equal the interpreter's on the
//! library's quantized graph and the x86 build's bit for bit, the outputs
//! after float code within the case's tolerance.
//!
//! qemu is called explicitly (binfmt_misc is not relied upon). A case whose
//! host build fails as unsupported is reported and skipped (e2e.rs fails for
//! it); any other failure fails the test. Missing tools skip locally and fail
//! under CI (`CI` set).

mod common;

use common::{DataSet, Int8Model, ManifestCase, Tolerance};
use qcc_ir::Tensor;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// A cross configuration.
struct Board {
    name: &'static str,
    cc: &'static str,
    qemu: &'static str,
    sysroot: &'static str,
    qemu_cpu: &'static str,
    qcc_flags: &'static [&'static str],
    /// What the object's disassembly must show of dotprod/i8mm.
    dot: DotCheck,
}

/// The static check of dotprod (`sdot`…) and i8mm (`smmla`…) instructions
/// in each object, besides the run on a core that lacks them.
#[derive(Clone, Copy, PartialEq)]
enum DotCheck {
    /// Baseline: none may appear in any object.
    Forbidden,
    /// With the features: some int8 model must use them.
    Used,
    /// Not checked (armv7 has no such instructions).
    Unchecked,
}

const AARCH64_OBJDUMP: &str = "aarch64-linux-gnu-objdump";

const AARCH64_BASELINE: Board = Board {
    name: "aarch64 baseline on cortex-a53",
    cc: "aarch64-linux-gnu-gcc",
    qemu: "qemu-aarch64",
    sysroot: "/usr/aarch64-linux-gnu",
    qemu_cpu: "cortex-a53",
    qcc_flags: &["--target", "aarch64-unknown-linux-gnu"],
    dot: DotCheck::Forbidden,
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
    dot: DotCheck::Used,
};

const ARMV7: Board = Board {
    name: "armv7 on cortex-a8",
    cc: "arm-linux-gnueabihf-gcc",
    qemu: "qemu-arm",
    sysroot: "/usr/arm-linux-gnueabihf",
    qemu_cpu: "cortex-a8",
    qcc_flags: &["--target", "armv7-unknown-linux-gnueabihf"],
    dot: DotCheck::Unchecked,
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

/// AArch64 dotprod and i8mm mnemonics.
const DOT_MNEMONICS: &[&str] = &["sdot", "udot", "usdot", "sudot", "smmla", "ummla", "usmmla"];

/// The dotprod/i8mm mnemonics of an `objdump -d` listing, whose
/// instruction lines read `   4e60:\t4e809481 \tsdot\tv1.4s, v4.16b, v0.16b`.
fn dot_mnemonics(asm: &str) -> Vec<&str> {
    asm.lines()
        .filter_map(|l| l.split('\t').nth(2))
        .map(str::trim)
        .filter(|m| DOT_MNEMONICS.contains(m))
        .collect()
}

/// Counts the dotprod/i8mm instructions in `work/model.o` (0 when the board
/// is unchecked); an error when the board forbids them and some are there.
fn dot_instructions(board: &Board, work: &Path) -> Result<usize, String> {
    if board.dot == DotCheck::Unchecked {
        return Ok(0);
    }
    let mut cmd = Command::new(AARCH64_OBJDUMP);
    cmd.arg("-d").arg(work.join("model.o"));
    let asm = common::run_command(cmd, "objdump", work, Duration::from_secs(60))?;
    let found = dot_mnemonics(&asm);
    if board.dot == DotCheck::Forbidden && !found.is_empty() {
        return Err(format!(
            "the baseline object has {} dotprod/i8mm instructions (first: {})",
            found.len(),
            found[0]
        ));
    }
    Ok(found.len())
}

/// Compiles, links and runs one case on `board`; returns a summary line.
fn run_case(board: &Board, case: &Case, host: &[Vec<Tensor>]) -> Result<String, String> {
    let work = common::WorkDir::new(&format!("{}-{}", case.name, board.qemu_cpu))?;
    let mut flags = case.flags.clone();
    flags.extend(board.qcc_flags.iter().map(|s| s.to_string()));
    common::qcc_compile(&case.model, work.path(), &flags)?;
    dot_instructions(board, work.path())?;
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

/// Int8 models run on every board: `(case, --scales)`, minmax calibration.
const INT8_CASES: &[(&str, &str)] = &[
    ("small_cnn", "fixed-point"),
    ("small_cnn", "pow2"),
    ("mlp", "fixed-point"),
    ("symbolic_batch", "fixed-point"),
];

/// An int8 model, its oracle, and the x86 build's outputs on each eval.
struct Int8Case {
    model: Int8Model,
    host: Vec<Vec<Tensor>>,
}

/// Prepares an int8 model and runs its x86 build (checked against the
/// interpreter too, so a host bug is not blamed on the board).
fn int8_case(case: &ManifestCase, scales: &'static str) -> Result<Int8Case, String> {
    let work = common::WorkDir::new(&format!("{}-int8-{scales}-x86", case.name))?;
    let (model, onnx, flags) = Int8Model::prepare(case, scales, work.path())?;
    common::qcc_compile(&onnx, work.path(), &flags).map_err(|e| format!("host build: {e}"))?;
    let app = common::build_app(work.path()).map_err(|e| format!("host build: {e}"))?;
    let types = model.output_types();
    let mut host = vec![];
    for (e, (_, inputs)) in model.evals.iter().enumerate() {
        let got = common::run_app(&app, work.path(), inputs, &types)
            .map_err(|e| format!("host run: {e}"))?;
        model
            .check(e, &got, &model.want[e], "the interpreter")
            .map_err(|e| format!("host run: {e}"))?;
        host.push(got);
    }
    Ok(Int8Case { model, host })
}

/// Every int8 case, prepared once per test binary.
fn all_int8() -> &'static Result<Vec<Int8Case>, String> {
    static CASES: OnceLock<Result<Vec<Int8Case>, String>> = OnceLock::new();
    CASES.get_or_init(|| {
        let manifest = common::read_manifest()?;
        INT8_CASES
            .iter()
            .map(|&(name, scales)| {
                let case = manifest
                    .iter()
                    .find(|c| c.name == name)
                    .ok_or_else(|| format!("{name} is not in testdata/manifest.txt"))?;
                int8_case(case, scales).map_err(|e| format!("{name}-int8-{scales}: {e}"))
            })
            .collect()
    })
}

/// Compiles, links and runs one int8 case on `board`; returns a summary
/// line and the number of dotprod/i8mm instructions in its object.
fn run_int8(board: &Board, case: &Int8Case) -> Result<(String, usize), String> {
    let m = &case.model;
    let work = common::WorkDir::new(&format!("{}-{}", m.label, board.qemu_cpu))?;
    let (onnx, mut flags) = m.write_files(work.path())?;
    flags.extend(board.qcc_flags.iter().map(|s| s.to_string()));
    common::qcc_compile(&onnx, work.path(), &flags)?;
    let dots = dot_instructions(board, work.path())?;
    let app = common::build_app_cross(work.path(), board.cc, &[])?;
    let runner: Vec<String> = [board.qemu, "-L", board.sysroot, "-cpu", board.qemu_cpu]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let types = m.output_types();
    let mut exact = 0;
    for (e, (_, inputs)) in m.evals.iter().enumerate() {
        let got = common::run_app_under(&runner, &app, work.path(), inputs, &types)?;
        exact += m.check(e, &got, &m.want[e], "the interpreter")?;
        m.check(e, &got, &case.host[e], "the x86 build")?;
    }
    let mut summary = format!(
        "{exact} outputs bit-exact with the interpreter and x86 over {} inputs (exact: {:?}), the rest within tolerance",
        m.evals.len(),
        m.exact_names()
    );
    if board.dot == DotCheck::Used {
        summary.push_str(&format!("; {dots} dotprod/i8mm instructions"));
    }
    Ok((summary, dots))
}

fn run_board(board: &Board) {
    let mut tools = vec![board.cc, board.qemu];
    if board.dot != DotCheck::Unchecked {
        tools.push(AARCH64_OBJDUMP);
    }
    if !common::tools_available(&tools, board.name) {
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
    let mut dots = 0;
    match all_int8() {
        Ok(int8) => {
            for case in int8 {
                match run_int8(board, case) {
                    Ok((summary, d)) => {
                        ran += 1;
                        dots += d;
                        println!("cross {} {}: {summary}", board.name, case.model.label);
                    }
                    Err(e) => failures.push(format!("{}: {e}", case.model.label)),
                }
            }
        }
        Err(e) => failures.push(format!("int8: {e}")),
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
    assert!(
        board.dot != DotCheck::Used || dots > 0,
        "cross {}: no int8 model uses a dotprod/i8mm instruction",
        board.name
    );
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

#[test]
fn finds_dot_instructions_in_a_listing() {
    let asm = "0000000000000000 <m.qgemm>:\n   0:\t4e809481 \tsdot\tv1.4s, v4.16b, v0.16b\n   4:\t4e80a462 \tsmmla\tv2.4s, v3.16b, v0.16b\n   8:\t0e20c020 \tsmull\tv0.8h, v1.8b, v0.8b\n   c:\td65f03c0 \tret\n";
    assert_eq!(dot_mnemonics(asm), vec!["sdot", "smmla"]);
    assert!(dot_mnemonics("   0:\t0e20c020 \tsmull\tv0.8h, v1.8b, v0.8b\n").is_empty());
}
