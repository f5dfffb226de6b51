//! Shared code of the end-to-end (`e2e.rs`) and ONNX node (`onnx_node.rs`) tests:
//! compile a model with the `qcc` binary, link it with the C harness
//! (`tests/harness/harness.c`), run it on ONNX `TensorProto` inputs, and compare
//! its outputs with expected tensors within a tolerance.
//!
//! The int8 helpers ([`Int8Model`], calibration files, extra outputs before
//! float code, bit-exact comparison) serve the cross tests.
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

/// One line of `testdata/manifest.txt`: `CASE atol=A rtol=R [oracle=…] [QCC FLAGS…]`.
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
            if tok == "oracle=onnxruntime" {
                continue;
            }
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

// ---------------------------------------------------------------------------
// Int8 models for the cross tests (cross_linux.rs, cross_cortex_m.rs): the
// approach of int8_e2e.rs. A manifest case is quantized with minmax
// calibration on deterministic samples derived from its test_data_set_0;
// the inputs of the nodes the quantizer leaves in float become extra graph
// outputs, so every model has outputs computed in integer arithmetic; the
// library's quantized graph run by the interpreter is the oracle, bit for bit
// on those outputs and within the case's tolerance on the float tail.
// ---------------------------------------------------------------------------

/// Number of calibration samples (the stored input and perturbed copies).
pub const CALIBRATION_SAMPLES: usize = 8;

/// A deterministic value in [-1, 1) from two integers (a 64-bit hash).
pub fn noise(a: u64, b: u64) -> f32 {
    let mut x = a
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(b.wrapping_mul(0xC2B2_AE3D_27D4_EB4F));
    x ^= x >> 31;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 29;
    ((x >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
}

/// Calibration sample `k` of a stored input: `x * scale_k + 0.3 * noise`
/// (sample 0 is `x` itself).
pub fn perturbed(x: &Tensor, k: usize) -> Tensor {
    let scale = [1.0, 0.8, 1.2, 0.6, 1.4, 0.9, 1.1, 1.0][k % 8];
    let v = x
        .to_f32_vec()
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            if k == 0 {
                v
            } else {
                v * scale + 0.3 * noise(k as u64, i as u64)
            }
        })
        .collect();
    Tensor::from_f32(x.shape().to_vec(), v).expect("same element count")
}

/// Every element times `factor` (inputs out of the calibrated range).
pub fn scaled(inputs: &[Tensor], factor: f32) -> Vec<Tensor> {
    inputs
        .iter()
        .map(|x| {
            let v = x.to_f32_vec().iter().map(|v| v * factor).collect();
            Tensor::from_f32(x.shape().to_vec(), v).expect("same element count")
        })
        .collect()
}

/// How calibration samples are stored on disk.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CalibFormat {
    /// One `.npy`, the sample axis replacing the batch axis (one input).
    Npy,
    /// A `.npz` with one array per input, the sample axis in front.
    Npz,
    /// A folder of `test_data_set_K/input_I.pb`.
    Folder,
}

/// The format int8_e2e.rs uses for a case (one per case, so each loader runs).
pub fn calib_format(case: &str) -> CalibFormat {
    match case {
        "small_cnn" => CalibFormat::Npy,
        "mlp" => CalibFormat::Npz,
        _ => CalibFormat::Folder,
    }
}

fn npy_bytes(shape: &[usize], data: &[f32]) -> Result<Vec<u8>, String> {
    use npyz::WriterBuilder;
    let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    let err = |e: std::io::Error| format!("writing .npy: {e}");
    let mut out = vec![];
    let mut w = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&shape)
        .writer(&mut out)
        .begin_nd()
        .map_err(err)?;
    w.extend(data.iter().copied()).map_err(err)?;
    w.finish().map_err(err)?;
    Ok(out)
}

/// Writes `samples[k][i]` (sample `k`, input `i` named `names[i]`) into
/// `work` in `format`; returns the path to give `--calibration-data`.
pub fn write_calibration(
    work: &Path,
    format: CalibFormat,
    names: &[String],
    samples: &[Vec<Tensor>],
) -> Result<PathBuf, String> {
    use prost::Message;
    use std::io::Write;
    let io = |e: std::io::Error| format!("writing calibration data: {e}");
    let first = samples.first().ok_or("no calibration samples")?;
    let stacked = |i: usize, rows_replace_batch: bool| {
        let mut shape = first[i].shape().to_vec();
        if rows_replace_batch && !shape.is_empty() {
            shape[0] *= samples.len();
        } else {
            shape.insert(0, samples.len());
        }
        let data: Vec<f32> = samples.iter().flat_map(|s| s[i].to_f32_vec()).collect();
        npy_bytes(&shape, &data)
    };
    match format {
        CalibFormat::Npy => {
            let p = work.join("calib.npy");
            fs::write(&p, stacked(0, true)?).map_err(io)?;
            Ok(p)
        }
        CalibFormat::Npz => {
            let p = work.join("calib.npz");
            let zerr = |e: zip::result::ZipError| format!("writing calib.npz: {e}");
            let mut z = zip::ZipWriter::new(fs::File::create(&p).map_err(io)?);
            for (i, name) in names.iter().enumerate() {
                z.start_file(
                    format!("{name}.npy"),
                    zip::write::SimpleFileOptions::default(),
                )
                .map_err(zerr)?;
                z.write_all(&stacked(i, false)?).map_err(io)?;
            }
            z.finish().map_err(zerr)?;
            Ok(p)
        }
        CalibFormat::Folder => {
            let p = work.join("calib");
            for (k, s) in samples.iter().enumerate() {
                let set = p.join(format!("test_data_set_{k}"));
                fs::create_dir_all(&set).map_err(io)?;
                for (i, (t, name)) in s.iter().zip(names).enumerate() {
                    let bytes = qcc_onnx::tensor_to_proto(name, t).encode_to_vec();
                    fs::write(set.join(format!("input_{i}.pb")), bytes).map_err(io)?;
                }
            }
            Ok(p)
        }
    }
}

/// Copies `model` to `out` with the inputs of the nodes named in
/// `float_nodes` added as extra graph outputs: the last values before float
/// code. Returns the added names.
pub fn with_extra_outputs(
    model: &Path,
    out: &Path,
    float_nodes: &[String],
) -> Result<Vec<String>, String> {
    use prost::Message;
    let bytes = fs::read(model).map_err(|e| format!("cannot read {}: {e}", model.display()))?;
    let mut m = qcc_onnx::proto::ModelProto::decode(&bytes[..])
        .map_err(|e| format!("cannot decode {}: {e}", model.display()))?;
    let g = m.graph.as_mut().ok_or("model without a graph")?;
    let mut taken: Vec<String> = g
        .output
        .iter()
        .chain(&g.input)
        .map(|o| o.name().to_string())
        .chain(g.initializer.iter().map(|t| t.name().to_string()))
        .collect();
    let mut extra = vec![];
    for n in g
        .node
        .iter()
        .filter(|n| float_nodes.iter().any(|f| f == n.name()))
    {
        for i in &n.input {
            if !i.is_empty() && !taken.contains(i) {
                taken.push(i.clone());
                extra.push(i.clone());
            }
        }
    }
    for name in &extra {
        g.output.push(qcc_onnx::proto::ValueInfoProto {
            name: Some(name.clone()),
            ..Default::default()
        });
    }
    fs::write(out, m.encode_to_vec())
        .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    Ok(extra)
}

/// Whether each graph output is computed by integer arithmetic, quantize,
/// dequantize and data movement only (so native code must match the
/// interpreter bit for bit), rather than by some float kernel.
pub fn exact_outputs(g: &qcc_ir::Graph) -> Vec<bool> {
    use qcc_ir::{Op, ValueId};
    use std::collections::HashMap;
    fn exact(g: &qcc_ir::Graph, v: ValueId, memo: &mut HashMap<ValueId, bool>) -> bool {
        if let Some(&e) = memo.get(&v) {
            return e;
        }
        let n = g.node(v.node);
        let float_out = n.outputs.iter().any(|t| t.dtype == DType::F32);
        let own = match &n.op {
            Op::Input { .. } | Op::Const { .. } => true,
            Op::Quantize { .. } | Op::Dequantize { .. } => true,
            Op::Reshape { .. }
            | Op::Transpose { .. }
            | Op::Concat { .. }
            | Op::Slice { .. }
            | Op::Pad { .. }
            | Op::Gather { .. }
            | Op::MaxPool(_) => true,
            _ => !float_out,
        };
        let e = own && n.inputs().iter().all(|&i| exact(g, i, memo));
        memo.insert(v, e);
        e
    }
    let mut memo = HashMap::new();
    g.outputs
        .iter()
        .map(|o| exact(g, o.value, &mut memo))
        .collect()
}

/// Whether the graph has integer layers (the quantizer did its job).
pub fn has_integer_ops(g: &qcc_ir::Graph) -> bool {
    use qcc_ir::Op;
    g.node_ids().into_iter().any(|id| {
        matches!(
            g.node(id).op,
            Op::QConv { .. } | Op::QGemm { .. } | Op::QAdd { .. } | Op::QMul { .. }
        )
    })
}

/// Bit-for-bit comparison (floats by their bits).
pub fn same_bits(got: &Tensor, want: &Tensor) -> Result<(), String> {
    if got.ty() != want.ty() {
        return Err(format!("type {}, expected {}", got.ty(), want.ty()));
    }
    if got.to_le_bytes() == want.to_le_bytes() {
        return Ok(());
    }
    let (g, w) = (got.to_f32_vec(), want.to_f32_vec());
    let bad: Vec<usize> = (0..g.len())
        .filter(|&i| g[i].to_bits() != w[i].to_bits())
        .collect();
    let first: Vec<String> = bad
        .iter()
        .take(4)
        .map(|&i| format!("[{i}] {:e} vs {:e}", g[i], w[i]))
        .collect();
    Err(format!(
        "{} of {} elements differ: {}",
        bad.len(),
        g.len(),
        first.join(", ")
    ))
}

/// Outputs after float code: floats within `tol`, 8-bit ones within one step.
pub fn close_enough(got: &Tensor, want: &Tensor, tol: Tolerance) -> Result<(), String> {
    match (got.to_i64_vec(), want.to_i64_vec()) {
        (Some(g), Some(w)) if got.ty() == want.ty() => {
            match g.iter().zip(&w).position(|(a, b)| (a - b).abs() > 1) {
                Some(i) => Err(format!("[{i}] is {} vs {}", g[i], w[i])),
                None => Ok(()),
            }
        }
        _ => compare(got, want, tol).map(|_| ()),
    }
}

/// A manifest case quantized to int8 (minmax calibration, float I/O), with
/// what the library computes for it: the oracle of the cross tests.
pub struct Int8Model {
    /// `CASE-int8-SCALES`, e.g. `small_cnn-int8-pow2`.
    pub label: String,
    pub case: ManifestCase,
    /// `--scales`: `fixed-point` or `pow2`.
    pub scales: &'static str,
    /// `--weight-bits` (8 by default).
    pub weight_bits: u32,
    /// Graph input names, in order (for the calibration files).
    input_names: Vec<String>,
    samples: Vec<Vec<Tensor>>,
    /// Nodes the quantizer left in float (their inputs are extra outputs).
    float_nodes: Vec<String>,
    /// Output names of the augmented model, and which are bit-exact.
    pub out_names: Vec<String>,
    pub exact: Vec<bool>,
    /// The inputs the model is evaluated on, and the interpreter's outputs
    /// on the library's quantized graph for each.
    pub evals: Vec<(&'static str, Vec<Tensor>)>,
    pub want: Vec<Vec<Tensor>>,
}

impl Int8Model {
    /// Quantizes `case` with `--scales scales`: writes the calibration data
    /// and the model with extra outputs into `work` (see [`Self::write_files`],
    /// whose result it returns too), builds the library's quantized graph
    /// and runs the interpreter on it.
    pub fn prepare(
        case: &ManifestCase,
        scales: &'static str,
        work: &Path,
    ) -> Result<(Int8Model, PathBuf, Vec<String>), String> {
        Self::prepare_bits(case, scales, 8, work)
    }

    /// [`Self::prepare`] with `--weight-bits weight_bits`.
    pub fn prepare_bits(
        case: &ManifestCase,
        scales: &'static str,
        weight_bits: u32,
        work: &Path,
    ) -> Result<(Int8Model, PathBuf, Vec<String>), String> {
        let dir = repo_root().join("testdata").join(&case.name);
        let data = load_data_set(&data_set_dirs(&dir)?[0])?;
        let shapes = input_shapes_of(&case.flags)?;
        let float_graph =
            qcc::import(&dir.join("model.onnx"), &shapes).map_err(|e| format!("import: {e:#}"))?;
        let input_names = float_graph
            .inputs()
            .iter()
            .map(|&id| float_graph.node(id).name.clone())
            .collect();
        let samples = (0..CALIBRATION_SAMPLES)
            .map(|k| data.inputs.iter().map(|x| perturbed(x, k)).collect())
            .collect();
        let mut m = Int8Model {
            label: format!("{}-int8-{scales}", case.name),
            case: case.clone(),
            scales,
            weight_bits,
            input_names,
            samples,
            float_nodes: vec![],
            out_names: vec![],
            exact: vec![],
            evals: vec![],
            want: vec![],
        };
        let calib = m.write_calibration_in(work)?;
        let opts = qcc::CompileOptions {
            input_shapes: shapes,
            quantize: Some(qcc::QuantizeOptions {
                config: qcc::QuantConfig {
                    method: qcc::CalibrationMethod::MinMax,
                    scales: match scales {
                        "pow2" => qcc::ScaleFormat::Pow2,
                        _ => qcc::ScaleFormat::FixedPoint,
                    },
                    weight_bits,
                    ..qcc::QuantConfig::default()
                },
                data: qcc::CalibrationData::Path(calib.clone()),
                progress: Default::default(),
            }),
            ..Default::default()
        };
        let library =
            |p: &Path| qcc::optimize_file(p, &opts, None).map_err(|e| format!("library: {e:#}"));
        let (_, cx) = library(&dir.join("model.onnx"))?;
        m.float_nodes = cx
            .quant_stats
            .float_nodes
            .iter()
            .map(|(n, _)| n.clone())
            .collect();
        let (model, flags) = m.write_model_in(work, &calib)?;
        let (qgraph, _) = library(&model)?;
        if !has_integer_ops(&qgraph) {
            return Err("the quantized graph has no integer layers".into());
        }
        m.exact = exact_outputs(&qgraph);
        if !m.exact.iter().any(|&e| e) {
            return Err("no output is computed in integer arithmetic".into());
        }
        m.out_names = qgraph.outputs.iter().map(|o| o.name.clone()).collect();
        m.evals = vec![
            ("test_data_set_0", data.inputs.clone()),
            ("calibration sample 3", m.samples[3].clone()),
            ("3x out of range", scaled(&data.inputs, 3.0)),
        ];
        for (what, inputs) in &m.evals {
            let want = qcc_interp::run(&qgraph, inputs)
                .map_err(|e| format!("interpreter ({what}): {e}"))?;
            m.want.push(want);
        }
        Ok((m, model, flags))
    }

    /// Writes the calibration data and the model with extra outputs
    /// (`int8.onnx`) into `work`; returns the model and the qcc flags that
    /// compile it like the library did (the case's flags included).
    pub fn write_files(&self, work: &Path) -> Result<(PathBuf, Vec<String>), String> {
        let calib = self.write_calibration_in(work)?;
        self.write_model_in(work, &calib)
    }

    fn write_calibration_in(&self, work: &Path) -> Result<PathBuf, String> {
        write_calibration(
            work,
            calib_format(&self.case.name),
            &self.input_names,
            &self.samples,
        )
    }

    fn write_model_in(&self, work: &Path, calib: &Path) -> Result<(PathBuf, Vec<String>), String> {
        let original = repo_root()
            .join("testdata")
            .join(&self.case.name)
            .join("model.onnx");
        let model = work.join("int8.onnx");
        with_extra_outputs(&original, &model, &self.float_nodes)?;
        let mut flags = self.case.flags.clone();
        flags.extend(
            [
                "--quantize",
                "int8",
                "--calibration",
                "minmax",
                "--scales",
                self.scales,
                "--calibration-data",
            ]
            .map(String::from),
        );
        flags.push(calib.display().to_string());
        if self.weight_bits != 8 {
            flags.extend(["--weight-bits".to_string(), self.weight_bits.to_string()]);
        }
        Ok((model, flags))
    }

    /// The types of the model's outputs.
    pub fn output_types(&self) -> Vec<TensorType> {
        self.want
            .first()
            .map(|w| w.iter().map(|t| t.ty()).collect())
            .unwrap_or_default()
    }

    /// Compares a native run's outputs on eval `e` with `want` (the
    /// interpreter's, or another build's): bit for bit on the exact outputs,
    /// with [`close_enough`] on the others. Returns how many were exact.
    pub fn check(
        &self,
        e: usize,
        got: &[Tensor],
        want: &[Tensor],
        against: &str,
    ) -> Result<usize, String> {
        let what = self.evals.get(e).map_or("?", |x| x.0);
        if got.len() != want.len() || got.len() != self.exact.len() {
            return Err(format!(
                "{what}: {} outputs, {against} has {}",
                got.len(),
                want.len()
            ));
        }
        let mut exact = 0;
        for (o, (g, w)) in got.iter().zip(want).enumerate() {
            let name = &self.out_names[o];
            if self.exact[o] {
                same_bits(g, w)
                    .map_err(|e| format!("{what}: output '{name}' vs {against}: {e}"))?;
                exact += 1;
            } else {
                close_enough(g, w, self.case.tol).map_err(|e| {
                    format!("{what}: output '{name}' (after float code) vs {against}: {e}")
                })?;
            }
        }
        Ok(exact)
    }

    /// The names of the bit-exact outputs.
    pub fn exact_names(&self) -> Vec<&str> {
        self.out_names
            .iter()
            .zip(&self.exact)
            .filter(|(_, e)| **e)
            .map(|(n, _)| n.as_str())
            .collect()
    }
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
