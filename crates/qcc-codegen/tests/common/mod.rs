//! Test helpers: compile a graph for the host, link it with a generated C
//! harness (`cc harness.c model.o`, no -lm), run it, read the outputs back.
#![allow(dead_code)]

use qcc_codegen::{compile, Artifacts, Options};
use qcc_ir::{DType, Graph, Tensor, TensorData, TensorType};
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

/// Host options with the given symbol prefix.
pub fn host(prefix: &str) -> Options {
    Options {
        prefix: prefix.into(),
        ..Default::default()
    }
}

/// Deterministic pseudo-random values (xorshift) in `[lo, hi)`.
pub fn rand_f32(n: usize, seed: u64, lo: f32, hi: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let u = (s >> 40) as f32 / (1u64 << 24) as f32;
            lo + (hi - lo) * u
        })
        .collect()
}

/// A deterministic f32 tensor with values in [-3, 3).
pub fn rand_tensor(shape: &[usize], seed: u64) -> Tensor {
    let n = shape.iter().product();
    Tensor::from_f32(shape.to_vec(), rand_f32(n, seed, -3.0, 3.0)).expect("sizes match")
}

fn c_string(s: &str) -> String {
    format!("{s:?}")
}

/// Writes `model.o`, `model.h` and `harness.c` into `dir` and links `app`.
/// The harness reads `in<i>.bin`, runs `<prefix>_run` with a 64-byte aligned
/// workspace and writes `out<j>.bin`; it exits with `10 + rc` if run fails.
pub fn build_app(dir: &Path, g: &Graph, art: &Artifacts, prefix: &str) -> std::path::PathBuf {
    build_app_with(&HOST, dir, g, art, prefix)
}

pub fn build_app_with(
    tc: &Toolchain,
    dir: &Path,
    g: &Graph,
    art: &Artifacts,
    prefix: &str,
) -> std::path::PathBuf {
    std::fs::write(dir.join("model.o"), &art.object).expect("write object");
    std::fs::write(dir.join("model.h"), &art.header).expect("write header");
    let n_in = g.inputs().len();
    let n_out = g.outputs.len();
    let mut c = String::new();
    c.push_str(
        "#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n#include \"model.h\"\n",
    );
    c.push_str(
        "static void *readf(const char *p, size_t n) {\n\
         void *b = malloc(n ? n : 1); FILE *f = fopen(p, \"rb\");\n\
         if (!b || !f || fread(b, 1, n, f) != n) { fprintf(stderr, \"cannot read %s\\n\", p); exit(2); }\n\
         fclose(f); return b; }\n\
         static void writef(const char *p, const void *b, size_t n) {\n\
         FILE *f = fopen(p, \"wb\"); if (!f || fwrite(b, 1, n, f) != n) exit(2); fclose(f); }\n",
    );
    c.push_str("int main(void) {\n");
    let _ = writeln!(
        c,
        "  const void *ins[{}]; void *outs[{}];",
        n_in + 1,
        n_out + 1
    );
    for (i, &id) in g.inputs().iter().enumerate() {
        let bytes = g.node(id).outputs[0].byte_size();
        let _ = writeln!(
            c,
            "  ins[{i}] = readf({}, {bytes});",
            c_string(&format!("in{i}.bin"))
        );
    }
    for (j, o) in g.outputs.iter().enumerate() {
        let bytes = g.value_type(o.value).byte_size();
        let _ = writeln!(c, "  outs[{j}] = malloc({});", bytes.max(1));
        let _ = writeln!(c, "  memset(outs[{j}], 0xAB, {});", bytes.max(1));
    }
    let pu = prefix.to_uppercase();
    let _ = writeln!(
        c,
        "  if ({prefix}_workspace_size() != {pu}_WORKSPACE_SIZE) return 3;\n\
         void *ws = aligned_alloc(64, {pu}_WORKSPACE_SIZE ? ({pu}_WORKSPACE_SIZE + 63) / 64 * 64 : 64);\n\
         if (!ws) return 4;\n\
         if ({pu}_WORKSPACE_SIZE) memset(ws, 0xCD, ({pu}_WORKSPACE_SIZE + 63) / 64 * 64);\n\
         int rc = {prefix}_run(ins, outs, ws);\n\
         if (rc) return 10 + rc;"
    );
    for (j, o) in g.outputs.iter().enumerate() {
        let bytes = g.value_type(o.value).byte_size();
        let _ = writeln!(
            c,
            "  writef({}, outs[{j}], {bytes});",
            c_string(&format!("out{j}.bin"))
        );
    }
    c.push_str("  return 0;\n}\n");
    std::fs::write(dir.join("harness.c"), c).expect("write harness");
    let app = dir.join("app");
    link_with(tc, dir, &["harness.c", "model.o"], &app);
    app
}

/// How to build and run a program for one target.
#[derive(Clone, Debug)]
pub struct Toolchain {
    /// `None`: the host.
    pub triple: Option<&'static str>,
    pub cc: &'static str,
    pub extra: &'static [&'static str],
    /// Emulator to run the program with (`None`: run directly).
    pub runner: Option<&'static str>,
}

pub const HOST: Toolchain = Toolchain {
    triple: None,
    cc: "cc",
    extra: &[],
    runner: None,
};

fn have(cmd: &str) -> bool {
    Command::new(cmd)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A cross toolchain (gcc + qemu-user, static linking) for `triple`, if installed.
pub fn cross(triple: &'static str) -> Option<Toolchain> {
    let (cc, runner) = match triple {
        "armv7-unknown-linux-gnueabihf" => ("arm-linux-gnueabihf-gcc", "qemu-arm"),
        "aarch64-unknown-linux-gnu" => ("aarch64-linux-gnu-gcc", "qemu-aarch64"),
        _ => return None,
    };
    if !have(cc) || !have(runner) {
        // CI installs the cross tools (scripts/setup.sh): there, missing ones are a failure.
        assert!(
            std::env::var_os("CI").is_none(),
            "{cc} or {runner} not installed (run scripts/setup.sh)"
        );
        eprintln!("{cc} or {runner} not installed: {triple} run skipped");
        return None;
    }
    Some(Toolchain {
        triple: Some(triple),
        cc,
        extra: &["-static"],
        runner: Some(runner),
    })
}

/// `cc -std=c11 -Wall -Wextra -Werror <files> -o out` in `dir` (never -lm).
pub fn link(dir: &Path, files: &[&str], out: &Path) {
    link_with(&HOST, dir, files, out)
}

pub fn link_with(tc: &Toolchain, dir: &Path, files: &[&str], out: &Path) {
    let o = Command::new(tc.cc)
        .current_dir(dir)
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic"])
        .args(tc.extra)
        .args(files)
        .arg("-o")
        .arg(out)
        .output()
        .expect("run cc");
    assert!(
        o.status.success(),
        "link failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Compiles `g` for the host, runs it natively on `inputs`, returns the outputs.
pub fn run_native(g: &Graph, inputs: &[Tensor]) -> Vec<Tensor> {
    let raw: Vec<Vec<u8>> = inputs.iter().map(|t| t.to_le_bytes()).collect();
    run_native_raw(g, &raw)
}

/// Like [`run_native`], with inputs given as raw little-endian bytes.
pub fn run_native_raw(g: &Graph, inputs: &[Vec<u8>]) -> Vec<Tensor> {
    run_with(&HOST, g, inputs)
}

/// Compiles for `tc`'s target, links with its compiler and runs the program
/// (under its emulator when it has one).
pub fn run_with(tc: &Toolchain, g: &Graph, inputs: &[Vec<u8>]) -> Vec<Tensor> {
    run_with_opts(tc, g, inputs, host("m"), &[])
}

/// Like [`run_with`], with explicit options (CPU, features; the target and
/// prefix are set here) and extra emulator arguments (e.g. `-cpu max`).
pub fn run_with_opts(
    tc: &Toolchain,
    g: &Graph,
    inputs: &[Vec<u8>],
    mut opts: Options,
    runner_args: &[&str],
) -> Vec<Tensor> {
    let prefix = "m";
    opts.prefix = prefix.into();
    opts.target = tc.triple.map(str::to_string);
    let art = compile(g, &opts).unwrap_or_else(|e| panic!("compile: {e}"));
    let dir = tempfile::tempdir().expect("tempdir");
    let app = build_app_with(tc, dir.path(), g, &art, prefix);
    for (i, bytes) in inputs.iter().enumerate() {
        std::fs::write(dir.path().join(format!("in{i}.bin")), bytes).expect("write input");
    }
    let mut cmd = match tc.runner {
        Some(r) => {
            let mut c = Command::new(r);
            c.args(runner_args).arg(&app);
            c
        }
        None => Command::new(&app),
    };
    let o = cmd.current_dir(dir.path()).output().expect("run app");
    assert!(
        o.status.success(),
        "app failed with {:?}: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    g.outputs
        .iter()
        .enumerate()
        .map(|(j, out)| {
            let ty = g.value_type(out.value);
            let bytes = std::fs::read(dir.path().join(format!("out{j}.bin"))).expect("read output");
            Tensor::from_le_bytes(ty, &bytes).expect("output size")
        })
        .collect()
}

/// Asserts two tensors have the same type and elements within `tol`
/// (relative to max(1, |want|) for floats; exact for integers).
pub fn assert_close(got: &Tensor, want: &Tensor, tol: f32, what: &str) {
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    assert_eq!(got.dtype(), want.dtype(), "{what}: dtype");
    match (got.data(), want.data()) {
        (TensorData::F32(g), TensorData::F32(w)) => {
            for (i, (a, b)) in g.iter().zip(w).enumerate() {
                let ok =
                    (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= tol * b.abs().max(1.0);
                assert!(ok, "{what}: element {i}: got {a}, want {b}");
            }
        }
        (g, w) => assert_eq!(g, w, "{what}"),
    }
}

/// Runs natively and compares with values computed by the caller.
pub fn check(g: &Graph, inputs: &[Tensor], want: &[Tensor], tol: f32) {
    let got = run_native(g, inputs);
    assert_eq!(got.len(), want.len());
    for (j, (a, b)) in got.iter().zip(want).enumerate() {
        assert_close(a, b, tol, &format!("output {j}"));
    }
}

/// Runs natively and compares with the reference interpreter.
pub fn check_interp(g: &Graph, inputs: &[Tensor], tol: f32) {
    let want = qcc_interp::run(g, inputs).unwrap_or_else(|e| panic!("interpreter: {e}"));
    check(g, inputs, &want, tol);
}

/// A graph with one f32 input of `shape`, to be extended by the caller.
pub fn graph_with_input(shape: &[usize]) -> (Graph, qcc_ir::NodeId) {
    let mut g = Graph::new("test");
    let x = g.add_input("x", TensorType::f32(shape.to_vec()));
    (g, x)
}

pub fn f32_tensor(shape: &[usize], v: Vec<f32>) -> Tensor {
    Tensor::from_f32(shape.to_vec(), v).expect("sizes match")
}

pub fn i64_tensor(shape: &[usize], v: Vec<i64>) -> Tensor {
    Tensor::from_i64(shape.to_vec(), v).expect("sizes match")
}

pub fn tensor(shape: &[usize], data: TensorData) -> Tensor {
    Tensor::new(shape.to_vec(), data).expect("sizes match")
}

pub fn ty(dt: DType, shape: &[usize]) -> TensorType {
    TensorType::new(dt, shape.to_vec())
}
