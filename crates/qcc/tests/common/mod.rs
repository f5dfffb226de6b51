//! Shared code of the end-to-end (`e2e.rs`) and ONNX node (`onnx_node.rs`) tests:
//! compile a model with the `qcc` binary, link it with the C harness
//! (`tests/harness/harness.c`), run it on ONNX `TensorProto` inputs, and compare
//! its outputs with expected tensors within a tolerance.
//!
//! Every step returns `Err(String)` with a one-line-first message; callers add
//! the case name. Environment: `CC` picks the C compiler (default `cc`);
//! `QCC_KEEP_TEMP=1` keeps each case's work folder and prints its path.

#![allow(dead_code)] // each test binary uses a different part

use qcc_ir::{DType, Tensor, TensorData, TensorType};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The symbol prefix every test model is compiled with (`model_run`, `MODEL_…`).
pub const PREFIX: &str = "model";
const QCC_TIMEOUT: Duration = Duration::from_secs(120);
const CC_TIMEOUT: Duration = Duration::from_secs(60);
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// The repository root (two levels above this crate).
pub fn repo_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

/// The C harness source.
pub fn harness_c() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/harness/harness.c")
}

/// `|got - want| <= atol + rtol * |want|` per element; NaN matches NaN only,
/// infinities match themselves only. Integer tensors must be equal.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerance {
    pub atol: f64,
    pub rtol: f64,
}

/// Parses `atol=A` / `rtol=R` tokens into `tol`; `Ok(false)` if `tok` is neither.
pub fn parse_tolerance_token(tok: &str, tol: &mut Tolerance) -> Result<bool, String> {
    let (key, value) = match tok.split_once('=') {
        Some(kv) => kv,
        None => return Ok(false),
    };
    let slot = match key {
        "atol" => &mut tol.atol,
        "rtol" => &mut tol.rtol,
        _ => return Ok(false),
    };
    *slot = value
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .ok_or_else(|| format!("bad tolerance '{tok}'"))?;
    Ok(true)
}

/// Inputs and expected outputs of one `test_data_set_N` folder, in ONNX order.
pub struct DataSet {
    pub dir: PathBuf,
    pub inputs: Vec<Tensor>,
    pub outputs: Vec<(String, Tensor)>,
}

/// Reads `input_0.pb`, `input_1.pb`, … and `output_0.pb`, … of a data set folder.
pub fn load_data_set(dir: &Path) -> Result<DataSet, String> {
    let read_all = |kind: &str| -> Result<Vec<(String, Tensor)>, String> {
        let mut v = vec![];
        loop {
            let p = dir.join(format!("{kind}_{}.pb", v.len()));
            if !p.exists() {
                return Ok(v);
            }
            let t = qcc_onnx::read_tensor_pb(&p)
                .map_err(|e| format!("cannot read {}: {e}", p.display()))?;
            v.push(t);
        }
    };
    let inputs = read_all("input")?.into_iter().map(|(_, t)| t).collect();
    let outputs = read_all("output")?;
    if outputs.is_empty() {
        return Err(format!("{} has no output_0.pb", dir.display()));
    }
    Ok(DataSet {
        dir: dir.to_path_buf(),
        inputs,
        outputs,
    })
}

/// Every `test_data_set_*` folder of a case, sorted.
pub fn data_set_dirs(case_dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries =
        fs::read_dir(case_dir).map_err(|e| format!("cannot list {}: {e}", case_dir.display()))?;
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_dir()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("test_data_set_"))
        })
        .collect();
    dirs.sort();
    if dirs.is_empty() {
        return Err(format!("{} has no test_data_set_*", case_dir.display()));
    }
    Ok(dirs)
}

/// A case's scratch folder, removed on drop unless `QCC_KEEP_TEMP=1`.
pub struct WorkDir {
    /// Deletes the folder on drop; `None` when kept.
    _guard: Option<tempfile::TempDir>,
    path: PathBuf,
}

impl WorkDir {
    pub fn new(case: &str) -> Result<WorkDir, String> {
        let prefix: String = case
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let dir = tempfile::Builder::new()
            .prefix(&format!("qcc-{prefix}-"))
            .tempdir()
            .map_err(|e| format!("cannot make a temporary folder: {e}"))?;
        let path = dir.path().to_path_buf();
        if std::env::var_os("QCC_KEEP_TEMP").is_some_and(|v| v == "1") {
            eprintln!("{case}: keeping {}", path.display());
            return Ok(WorkDir {
                _guard: None,
                path: dir.keep(),
            });
        }
        Ok(WorkDir {
            _guard: Some(dir),
            path,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Runs a command with its output in files of `work` (no pipe deadlocks) and a
/// time limit; returns its stdout, or an error with the head of its stderr.
pub fn run_command(
    mut cmd: Command,
    what: &str,
    work: &Path,
    timeout: Duration,
) -> Result<String, String> {
    let out_path = work.join(format!("{what}.stdout"));
    let err_path = work.join(format!("{what}.stderr"));
    let open =
        |p: &Path| fs::File::create(p).map_err(|e| format!("cannot create {}: {e}", p.display()));
    cmd.stdin(Stdio::null())
        .stdout(open(&out_path)?)
        .stderr(open(&err_path)?);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("{what}: cannot start {:?}: {e}", cmd.get_program()))?;
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{what}: timed out after {}s", timeout.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(format!("{what}: wait failed: {e}")),
        }
    };
    let stdout = fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = fs::read_to_string(&err_path).unwrap_or_default();
    if !status.success() {
        let mut lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        let more = lines.len().saturating_sub(8);
        lines.truncate(8);
        let mut msg = format!("{what} failed ({status}): {}", lines.join("\n    "));
        if more > 0 {
            msg.push_str(&format!("\n    … {more} more lines"));
        }
        return Err(msg);
    }
    Ok(stdout)
}

/// Compiles `model` with the `qcc` binary into `work/model.o` and `work/model.h`.
pub fn qcc_compile(model: &Path, work: &Path, flags: &[String]) -> Result<(), String> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_qcc"));
    cmd.arg(model)
        .arg("-o")
        .arg(work.join("model.o"))
        .args(["--name", PREFIX])
        .args(flags);
    run_command(cmd, "qcc", work, QCC_TIMEOUT)?;
    for f in ["model.o", "model.h"] {
        if !work.join(f).is_file() {
            return Err(format!("qcc succeeded but wrote no {f}"));
        }
    }
    Ok(())
}

/// Compiles and links the harness with `work/model.o` into `work/app`
/// (`cc -O1`, warnings as errors, no -lm and no runtime library).
pub fn build_app(work: &Path) -> Result<PathBuf, String> {
    let cc = std::env::var_os("CC").unwrap_or_else(|| "cc".into());
    let app = work.join("app");
    let mut cmd = Command::new(cc);
    cmd.args(["-O1", "-std=c11", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(work)
        .arg(harness_c())
        .arg(work.join("model.o"))
        .arg("-o")
        .arg(&app);
    run_command(cmd, "cc", work, CC_TIMEOUT)?;
    Ok(app)
}

/// Runs the harness on `inputs`; `outputs` gives the expected type of each output.
pub fn run_app(
    app: &Path,
    work: &Path,
    inputs: &[Tensor],
    outputs: &[TensorType],
) -> Result<Vec<Tensor>, String> {
    run_app_under(&[], app, work, inputs, outputs)
}

/// [`run_app`] under an emulator: `runner[0] runner[1..] app ARGS…`
/// (e.g. `qemu-aarch64 -L /usr/aarch64-linux-gnu -cpu cortex-a53`); an
/// empty `runner` runs the app directly.
pub fn run_app_under(
    runner: &[String],
    app: &Path,
    work: &Path,
    inputs: &[Tensor],
    outputs: &[TensorType],
) -> Result<Vec<Tensor>, String> {
    let mut cmd = match runner.split_first() {
        Some((prog, args)) => {
            let mut c = Command::new(prog);
            c.args(args).arg(app);
            c
        }
        None => Command::new(app),
    };
    for (i, t) in inputs.iter().enumerate() {
        let p = work.join(format!("in{i}.bin"));
        fs::write(&p, t.to_le_bytes()).map_err(|e| format!("cannot write {}: {e}", p.display()))?;
        cmd.arg(format!("{}:{}", t.dtype().size(), p.display()));
    }
    let out_paths: Vec<PathBuf> = (0..outputs.len())
        .map(|o| work.join(format!("out{o}.bin")))
        .collect();
    for (ty, p) in outputs.iter().zip(&out_paths) {
        cmd.arg(format!("{}:{}", ty.dtype.size(), p.display()));
    }
    run_command(cmd, "app", work, RUN_TIMEOUT)?;
    let mut got = vec![];
    for (o, (ty, p)) in outputs.iter().zip(&out_paths).enumerate() {
        let bytes = fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
        let t = Tensor::from_le_bytes(ty, &bytes).ok_or_else(|| {
            format!(
                "output {o}: the model wrote {} bytes, expected {ty} ({} bytes)",
                bytes.len(),
                ty.byte_size()
            )
        })?;
        got.push(t);
    }
    Ok(got)
}

/// A model compiled and linked with the harness, ready to run.
pub struct Compiled {
    pub work: WorkDir,
    pub app: PathBuf,
}

/// `qcc` + `cc`: compiles `model` and links the harness in a fresh work folder.
pub fn compile_and_link(case: &str, model: &Path, flags: &[String]) -> Result<Compiled, String> {
    let work = WorkDir::new(case)?;
    qcc_compile(model, work.path(), flags)?;
    let app = build_app(work.path())?;
    Ok(Compiled { work, app })
}

impl Compiled {
    /// Runs the model on a data set's inputs; outputs typed like the expected ones.
    pub fn run(&self, data: &DataSet) -> Result<Vec<Tensor>, String> {
        let types: Vec<TensorType> = data.outputs.iter().map(|(_, t)| t.ty()).collect();
        run_app(&self.app, self.work.path(), &data.inputs, &types)
    }
}

/// One line of `testdata/manifest.txt`: `CASE atol=A rtol=R [QCC FLAGS…]`.
#[derive(Clone, Debug)]
pub struct ManifestCase {
    pub name: String,
    pub tol: Tolerance,
    pub flags: Vec<String>,
}

/// Reads `testdata/manifest.txt` (the end-to-end cases).
pub fn read_manifest() -> Result<Vec<ManifestCase>, String> {
    let path = repo_root().join("testdata/manifest.txt");
    let text =
        fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut cases = vec![];
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        let mut toks = line.split_whitespace();
        let Some(name) = toks.next() else { continue };
        let mut tol = Tolerance {
            atol: f64::NAN,
            rtol: f64::NAN,
        };
        let mut flags = vec![];
        for tok in toks {
            if !parse_tolerance_token(tok, &mut tol)
                .map_err(|e| format!("manifest.txt:{}: {e}", n + 1))?
            {
                flags.push(tok.to_string());
            }
        }
        if tol.atol.is_nan() || tol.rtol.is_nan() {
            return Err(format!(
                "manifest.txt:{}: {name}: needs atol= and rtol=",
                n + 1
            ));
        }
        cases.push(ManifestCase {
            name: name.to_string(),
            tol,
            flags,
        });
    }
    Ok(cases)
}

/// Whether every program answers `--version`. When one does not, the cross
/// tests skip locally (with a message) but fail when `CI` is set: CI installs
/// the tools with scripts/setup.sh.
pub fn tools_available(tools: &[&str], what: &str) -> bool {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| {
            !Command::new(t)
                .arg("--version")
                .stdin(Stdio::null())
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .collect();
    if missing.is_empty() {
        return true;
    }
    let msg = format!(
        "{what}: {} not installed (bash scripts/setup.sh installs it)",
        missing.join(", ")
    );
    if std::env::var_os("CI").is_some() {
        panic!("{msg}; CI is set, so this is a failure, not a skip");
    }
    eprintln!("{msg}: skipped");
    false
}

/// Whether a qcc error is an honest "not supported yet" (a kernel or op that
/// has not landed), as opposed to a failure.
pub fn is_unsupported(err: &str) -> bool {
    err.contains("unsupported by the backend") || err.contains("unsupported op")
}

/// Builds the harness with a cross compiler: `CC -O1 -std=c11 -Wall -Wextra
/// -Werror EXTRA… -I work harness.c work/model.o -o work/app`.
pub fn build_app_cross(work: &Path, cc: &str, extra: &[&str]) -> Result<PathBuf, String> {
    let app = work.join("app");
    let mut cmd = Command::new(cc);
    cmd.args(["-O1", "-std=c11", "-Wall", "-Wextra", "-Werror"])
        .args(extra)
        .arg("-I")
        .arg(work)
        .arg(harness_c())
        .arg(work.join("model.o"))
        .arg("-o")
        .arg(&app);
    run_command(cmd, "cc", work, CC_TIMEOUT)?;
    Ok(app)
}

/// The `--input-shape NAME=DIMS` flags of a manifest line, as a map.
pub fn input_shapes_of(
    flags: &[String],
) -> Result<std::collections::HashMap<String, Vec<usize>>, String> {
    let mut shapes = std::collections::HashMap::new();
    let mut it = flags.iter();
    while let Some(f) = it.next() {
        let spec = if f == "--input-shape" {
            it.next().ok_or("--input-shape without a value")?.as_str()
        } else if let Some(v) = f.strip_prefix("--input-shape=") {
            v
        } else {
            continue;
        };
        let (name, dims) = qcc::parse_input_shape(spec)?;
        shapes.insert(name, dims);
    }
    Ok(shapes)
}

/// Runs qcc's reference interpreter on the optimized graph of `model`.
pub fn interp_outputs(
    model: &Path,
    flags: &[String],
    inputs: &[Tensor],
) -> Result<Vec<Tensor>, String> {
    let shapes = input_shapes_of(flags)?;
    let mut g = qcc::import(model, &shapes).map_err(|e| format!("import: {e:#}"))?;
    qcc::optimize(&mut g, None).map_err(|e| format!("passes: {e:#}"))?;
    qcc_interp::run(&g, inputs).map_err(|e| format!("interpreter: {e}"))
}

/// Compares one tensor with its expected value; returns the largest absolute
/// error (0 for integers), or a message listing the first mismatches.
pub fn compare(got: &Tensor, want: &Tensor, tol: Tolerance) -> Result<f64, String> {
    if got.shape() != want.shape() {
        return Err(format!(
            "shape {:?}, expected {:?}",
            got.shape(),
            want.shape()
        ));
    }
    match (got.data(), want.data()) {
        (TensorData::F32(g), TensorData::F32(w)) => compare_f32(g, w, tol),
        (g, w) if g.dtype() == w.dtype() && g.dtype() != DType::F32 => {
            let (g, w) = (got.to_i64_vec(), want.to_i64_vec());
            let (g, w) = g.zip(w).ok_or("not an integer tensor")?;
            let bad: Vec<usize> = (0..g.len()).filter(|&i| g[i] != w[i]).collect();
            if bad.is_empty() {
                return Ok(0.0);
            }
            let list: Vec<String> = bad
                .iter()
                .take(5)
                .map(|&i| format!("[{i}] got {} want {}", g[i], w[i]))
                .collect();
            Err(format!(
                "{} of {} elements differ: {}",
                bad.len(),
                g.len(),
                list.join(", ")
            ))
        }
        (g, w) => Err(format!(
            "element type {}, expected {}",
            g.dtype().name(),
            w.dtype().name()
        )),
    }
}

fn compare_f32(got: &[f32], want: &[f32], tol: Tolerance) -> Result<f64, String> {
    let mut max_err = 0.0f64;
    let mut bad = vec![];
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let (g64, w64) = (g as f64, w as f64);
        let ok = if w.is_nan() || g.is_nan() {
            w.is_nan() && g.is_nan()
        } else if w.is_infinite() || g.is_infinite() {
            g == w
        } else {
            let err = (g64 - w64).abs();
            max_err = max_err.max(err);
            err <= tol.atol + tol.rtol * w64.abs()
        };
        if !ok {
            bad.push(i);
        }
    }
    if bad.is_empty() {
        return Ok(max_err);
    }
    let list: Vec<String> = bad
        .iter()
        .take(5)
        .map(|&i| format!("[{i}] got {:e} want {:e}", got[i], want[i]))
        .collect();
    Err(format!(
        "{} of {} elements off (max abs err {max_err:.3e}, atol {:e}, rtol {:e}): {}",
        bad.len(),
        got.len(),
        tol.atol,
        tol.rtol,
        list.join(", ")
    ))
}

/// Compares every output; returns the largest absolute error per output name.
pub fn compare_outputs(
    got: &[Tensor],
    want: &[(String, Tensor)],
    tol: Tolerance,
    against: &str,
) -> Result<Vec<(String, f64)>, String> {
    if got.len() != want.len() {
        return Err(format!(
            "{} outputs, expected {} ({against})",
            got.len(),
            want.len()
        ));
    }
    let mut errs = vec![];
    for (g, (name, w)) in got.iter().zip(want) {
        let e = compare(g, w, tol).map_err(|e| format!("output '{name}' vs {against}: {e}"))?;
        errs.push((name.clone(), e));
    }
    Ok(errs)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOL: Tolerance = Tolerance {
        atol: 1e-6,
        rtol: 1e-3,
    };

    fn f(v: Vec<f32>) -> Tensor {
        let n = v.len();
        Tensor::from_f32(vec![n], v).unwrap()
    }

    #[test]
    fn compare_accepts_within_tolerance() {
        let e = compare(
            &f(vec![1.0, 100.05, f32::NAN]),
            &f(vec![1.0, 100.0, f32::NAN]),
            TOL,
        );
        assert!((e.unwrap() - 0.05).abs() < 1e-4);
    }

    #[test]
    fn compare_rejects_outside_tolerance() {
        assert!(compare(&f(vec![1.01]), &f(vec![1.0]), TOL).is_err());
        assert!(compare(&f(vec![0.0]), &f(vec![f32::NAN]), TOL).is_err());
        assert!(compare(&f(vec![f32::INFINITY]), &f(vec![1e30]), TOL).is_err());
        assert!(compare(&f(vec![1.0, 2.0]), &f(vec![1.0]), TOL).is_err());
    }

    #[test]
    fn compare_integers_exactly() {
        let a = Tensor::from_i64(vec![2], vec![1, 2]).unwrap();
        let b = Tensor::from_i64(vec![2], vec![1, 3]).unwrap();
        assert_eq!(compare(&a, &a, TOL), Ok(0.0));
        assert!(compare(&a, &b, TOL).is_err());
        assert!(compare(&a, &f(vec![1.0, 2.0]), TOL).is_err());
    }

    #[test]
    fn tolerance_tokens() {
        let mut t = Tolerance {
            atol: 0.0,
            rtol: 0.0,
        };
        assert_eq!(parse_tolerance_token("atol=1e-5", &mut t), Ok(true));
        assert_eq!(parse_tolerance_token("rtol=0", &mut t), Ok(true));
        assert_eq!(parse_tolerance_token("--input-shape", &mut t), Ok(false));
        assert!(parse_tolerance_token("atol=x", &mut t).is_err());
        assert!(parse_tolerance_token("rtol=-1", &mut t).is_err());
        assert_eq!(
            t,
            Tolerance {
                atol: 1e-5,
                rtol: 0.0
            }
        );
    }
}
