//! The object file and its entry points: symbols, return codes, the output
//! epilogue, two models in one program, determinism, cross targets.

mod common;
use common::*;
use object::{Architecture, Object, ObjectSection, ObjectSymbol, SectionKind};
use qcc_codegen::{compile, CodegenError, Options};
use qcc_ir::{BinaryOp, DType, Graph, Op, TensorType, UnaryOp, ValueId};
use std::collections::BTreeSet;
use std::process::Command;

/// A model touching many kernels (exp/log/erf/pow, concat, transpose, pad,
/// gather, cast) with a non-empty workspace.
fn busy_model() -> Graph {
    let mut g = Graph::new("busy");
    let x = g.add_input("x", TensorType::f32(vec![2, 3, 4]));
    let w = g.add_const("w", rand_tensor(&[3, 4], 99));
    let e = g
        .add_node(Op::Unary(UnaryOp::Exp), "e", vec![ValueId::of(x)])
        .expect("valid");
    let a = g
        .add_node(
            Op::Binary(BinaryOp::Add),
            "a",
            vec![ValueId::of(e), ValueId::of(w)],
        )
        .expect("valid");
    let l = g
        .add_node(Op::Unary(UnaryOp::Log), "l", vec![ValueId::of(a)])
        .expect("valid");
    let f = g
        .add_node(Op::Unary(UnaryOp::Erf), "f", vec![ValueId::of(l)])
        .expect("valid");
    let p = g
        .add_node(
            Op::Binary(BinaryOp::Pow),
            "p",
            vec![ValueId::of(f), ValueId::of(x)],
        )
        .expect("valid");
    let t = g
        .add_node(
            Op::Transpose {
                perm: vec![2, 0, 1],
            },
            "t",
            vec![ValueId::of(p)],
        )
        .expect("valid");
    let c = g
        .add_node(
            Op::Concat { axis: 1 },
            "c",
            vec![ValueId::of(t), ValueId::of(t)],
        )
        .expect("valid");
    let pd = g
        .add_node(
            Op::Pad {
                pads: vec![1, 0, 0, 0, 0, 2],
                value: 0.25,
            },
            "pad",
            vec![ValueId::of(c)],
        )
        .expect("valid");
    let ci = g
        .add_node(Op::Cast { to: DType::I64 }, "ci", vec![ValueId::of(pd)])
        .expect("valid");
    let cf = g
        .add_node(Op::Cast { to: DType::F32 }, "cf", vec![ValueId::of(ci)])
        .expect("valid");
    let idx = g.add_const("idx", i64_tensor(&[2], vec![1, -1]));
    let ga = g
        .add_node(
            Op::Gather { axis: 0 },
            "g",
            vec![ValueId::of(cf), ValueId::of(idx)],
        )
        .expect("valid");
    g.add_output("y", ValueId::of(ga));
    g.add_output("z", ValueId::of(t));
    g
}

fn symbols(obj: &[u8]) -> (BTreeSet<String>, BTreeSet<String>) {
    let f = object::File::parse(obj).expect("parse object");
    let mut defined = BTreeSet::new();
    let mut undefined = BTreeSet::new();
    for s in f.symbols() {
        let name = s.name().expect("symbol name").to_string();
        if s.is_undefined() {
            if !name.is_empty() {
                undefined.insert(name);
            }
        } else if s.is_global() {
            defined.insert(name);
        }
    }
    (defined, undefined)
}

fn check_object(obj: &[u8], prefix: &str, arch: Architecture) {
    let f = object::File::parse(obj).expect("parse object");
    assert_eq!(f.architecture(), arch);
    let (defined, undefined) = symbols(obj);
    let want: BTreeSet<String> = [format!("{prefix}_run"), format!("{prefix}_workspace_size")]
        .into_iter()
        .collect();
    assert_eq!(defined, want, "exported symbols");
    // memcpy/memset/memmove; on 32-bit ARM LLVM calls them by their run-time
    // ABI names (__aeabi_memcpy4, __aeabi_memclr8, …), which every ARM libc or
    // libgcc/compiler-rt provides alongside memcpy.
    let allowed = ["memcpy", "memset", "memmove"];
    let aeabi = [
        "__aeabi_memcpy",
        "__aeabi_memmove",
        "__aeabi_memset",
        "__aeabi_memclr",
    ];
    for u in &undefined {
        let ok = allowed.contains(&u.as_str())
            || (arch == Architecture::Arm && aeabi.iter().any(|p| u.starts_with(p)));
        assert!(ok, "{arch:?}: undefined symbol {u}");
    }
    for s in f.sections() {
        let size = s.size();
        match s.kind() {
            SectionKind::Data | SectionKind::UninitializedData => {
                assert_eq!(size, 0, "writable section {:?}", s.name())
            }
            SectionKind::Tls | SectionKind::UninitializedTls => {
                panic!("TLS section {:?}", s.name())
            }
            _ => {}
        }
    }
}

#[test]
fn host_object_exports_exactly_two_symbols() {
    let g = busy_model();
    let art = compile(&g, &host("busy")).expect("compile");
    let arch = if cfg!(target_arch = "x86_64") {
        Architecture::X86_64
    } else {
        Architecture::Aarch64
    };
    check_object(&art.object, "busy", arch);
    assert!(art.workspace_size > 0 && art.workspace_size.is_multiple_of(64));
}

#[test]
fn cross_targets_produce_objects() {
    let g = busy_model();
    for (triple, arch) in [
        ("x86_64-unknown-linux-gnu", Architecture::X86_64),
        ("aarch64-unknown-linux-gnu", Architecture::Aarch64),
        ("armv7-unknown-linux-gnueabihf", Architecture::Arm),
        ("thumbv7em-none-eabihf", Architecture::Arm),
    ] {
        let opts = Options {
            target: Some(triple.into()),
            prefix: "net".into(),
            emit_asm: true,
            ..Default::default()
        };
        let art = compile(&g, &opts).unwrap_or_else(|e| panic!("{triple}: {e}"));
        check_object(&art.object, "net", arch);
        assert!(art.asm.as_deref().is_some_and(|a| a.contains("net_run")));
    }
}

#[test]
fn unknown_target_and_bad_prefix_are_errors() {
    let g = busy_model();
    let opts = Options {
        target: Some("mips-unknown-linux-gnu".into()),
        prefix: "m".into(),
        ..Default::default()
    };
    match compile(&g, &opts) {
        Err(CodegenError::Target(msg)) => assert!(msg.contains("aarch64"), "{msg}"),
        other => panic!("expected a target error, got {other:?}"),
    }
    for bad in ["", "1x", "a-b", "a b"] {
        assert!(compile(&g, &host(bad)).is_err(), "prefix {bad:?} accepted");
    }
}

#[test]
fn compilation_is_deterministic() {
    let g = busy_model();
    let mut o = host("d");
    o.emit_llvm_ir = true;
    let a = compile(&g, &o).expect("compile");
    let b = compile(&g, &o).expect("compile");
    assert_eq!(a.object, b.object);
    assert_eq!(a.llvm_ir, b.llvm_ir);
    assert_eq!(a.header, b.header);
    let ir = a.llvm_ir.expect("ir requested");
    for banned in [
        "@llvm.exp",
        "@llvm.log",
        "@llvm.pow",
        "@expf",
        "@logf",
        "@llvm.floor",
        "@llvm.round",
    ] {
        assert!(!ir.contains(banned), "IR references {banned}");
    }
}

#[test]
fn return_codes_for_null_and_misaligned_pointers() {
    let mut g = Graph::new("rc");
    let x = g.add_input("x", TensorType::f32(vec![64]));
    let r = g
        .add_node(Op::Unary(UnaryOp::Relu), "r", vec![ValueId::of(x)])
        .expect("valid");
    let n = g
        .add_node(Op::Unary(UnaryOp::Neg), "n", vec![ValueId::of(r)])
        .expect("valid");
    g.add_output("y", ValueId::of(n));
    let art = compile(&g, &host("rc")).expect("compile");
    assert!(
        art.workspace_size > 0,
        "relu's output lives in the workspace"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("model.o"), &art.object).expect("write");
    std::fs::write(dir.path().join("model.h"), &art.header).expect("write");
    let harness = r#"
#include <stdio.h>
#include <stdlib.h>
#include "model.h"
int main(void) {
    static float x[64], y[64];
    unsigned char *ws = aligned_alloc(64, RC_WORKSPACE_SIZE + 64);
    const void *ins[1] = {x};
    void *outs[1] = {y};
    const void *null_in[1] = {NULL};
    void *null_out[1] = {NULL};
    for (int i = 0; i < 64; i++) x[i] = (float)(i - 32);
    printf("%d %d %d %d %d %d %d\n",
        rc_run(NULL, outs, ws),
        rc_run(ins, NULL, ws),
        rc_run(null_in, outs, ws),
        rc_run(ins, null_out, ws),
        rc_run(ins, outs, NULL),
        rc_run(ins, outs, ws + 8),
        rc_run(ins, outs, ws));
    int ok = 1;
    for (int i = 0; i < 64; i++) ok &= y[i] == -(x[i] > 0 ? x[i] : 0.0f);
    printf("%s\n", ok ? "ok" : "wrong");
    return 0;
}
"#;
    std::fs::write(dir.path().join("main.c"), harness).expect("write");
    let app = dir.path().join("app");
    link(dir.path(), &["main.c", "model.o"], &app);
    let out = Command::new(&app).output().expect("run");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1 1 1 1 1 2 0\nok\n");
}

/// `--profile`: `P_run_profiled` computes what `P_run` computes, calls the
/// caller's clock around every node (and no timer of its own), fills one
/// tick count per node, and the header names the nodes in that order.
#[test]
fn profiled_run_times_every_node_with_the_callers_clock() {
    let mut g = Graph::new("pr");
    let x = g.add_input("x", TensorType::f32(vec![64]));
    let r = g
        .add_node(Op::Unary(UnaryOp::Relu), "first", vec![ValueId::of(x)])
        .expect("valid");
    let n = g
        .add_node(Op::Unary(UnaryOp::Neg), "second", vec![ValueId::of(r)])
        .expect("valid");
    g.add_output("y", ValueId::of(n));
    let opts = Options {
        profile: true,
        ..host("pr")
    };
    let art = compile(&g, &opts).expect("compile");
    let (defined, undefined) = symbols(&art.object);
    assert!(defined.contains("pr_run_profiled") && defined.contains("pr_run"));
    assert!(
        undefined
            .iter()
            .all(|u| ["memcpy", "memset", "memmove"].contains(&u.as_str())),
        "{undefined:?}"
    );
    assert!(art.header.contains("#define PR_NUM_PROFILED_NODES 2"));
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("model.o"), &art.object).expect("write");
    std::fs::write(dir.path().join("model.h"), &art.header).expect("write");
    let harness = r#"
#include <stdio.h>
#include <stdlib.h>
#include "model.h"
static uint64_t now;
static uint64_t tick(void) { now += 7; return now; }
int main(void) {
    static float x[64], y[64], z[64];
    static const char *const names[] = PR_PROFILED_NODE_NAMES;
    unsigned char *ws = aligned_alloc(64, PR_WORKSPACE_SIZE + 64);
    uint64_t ticks[PR_NUM_PROFILED_NODES] = {0};
    const void *ins[1] = {x};
    void *outs[1] = {y}, *outs2[1] = {z};
    for (int i = 0; i < 64; i++) x[i] = (float)(i - 32);
    printf("%d %d ", pr_run_profiled(ins, outs, ws, NULL, ticks),
        pr_run_profiled(ins, outs, ws, tick, NULL));
    printf("%d %d", pr_run_profiled(ins, outs, ws, tick, ticks), pr_run(ins, outs2, ws));
    for (int i = 0; i < PR_NUM_PROFILED_NODES; i++) printf(" %s=%llu", names[i], (unsigned long long)ticks[i]);
    int ok = 1;
    for (int i = 0; i < 64; i++) ok &= y[i] == z[i] && y[i] == -(x[i] > 0 ? x[i] : 0.0f);
    printf(" %s %llu\n", ok ? "ok" : "wrong", (unsigned long long)now);
    return 0;
}
"#;
    std::fs::write(dir.path().join("main.c"), harness).expect("write");
    let app = dir.path().join("app");
    link(dir.path(), &["main.c", "model.o"], &app);
    let out = Command::new(&app).output().expect("run");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "1 1 0 0 first (relu)=7 second (neg)=7 ok 28\n"
    );
}

#[test]
fn outputs_that_are_inputs_constants_or_repeated_are_copied() {
    let mut g = Graph::new("epi");
    let x = g.add_input("x", TensorType::f32(vec![2, 3]));
    let k = g.add_const("k", f32_tensor(&[2], vec![4.0, 5.0]));
    let s = g
        .add_node(Op::Unary(UnaryOp::Abs), "s", vec![ValueId::of(x)])
        .expect("valid");
    let r = g
        .add_node(Op::Reshape { shape: vec![6] }, "r", vec![ValueId::of(x)])
        .expect("valid");
    g.add_output("x_again", ValueId::of(x));
    g.add_output("k", ValueId::of(k));
    g.add_output("s1", ValueId::of(s));
    g.add_output("s2", ValueId::of(s));
    g.add_output("r", ValueId::of(r));
    let xv = rand_tensor(&[2, 3], 3);
    let abs: Vec<f32> = xv.as_f32().expect("f32").iter().map(|v| v.abs()).collect();
    check(
        &g,
        std::slice::from_ref(&xv),
        &[
            xv.clone(),
            f32_tensor(&[2], vec![4.0, 5.0]),
            f32_tensor(&[2, 3], abs.clone()),
            f32_tensor(&[2, 3], abs),
            xv.clone().reshaped(vec![6]).expect("same size"),
        ],
        0.0,
    );
}

fn scale_model(k: f32) -> Graph {
    let mut g = Graph::new("scale");
    let x = g.add_input("x", TensorType::f32(vec![4]));
    let c = g.add_const("c", f32_tensor(&[1], vec![k]));
    let m = g
        .add_node(
            Op::Binary(BinaryOp::Mul),
            "m",
            vec![ValueId::of(x), ValueId::of(c)],
        )
        .expect("valid");
    let e = g
        .add_node(Op::Unary(UnaryOp::Relu), "e", vec![ValueId::of(m)])
        .expect("valid");
    g.add_output("y", ValueId::of(e));
    g
}

#[test]
fn two_models_link_into_one_program() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (p, k) in [("first", 2.0f32), ("second", -3.0)] {
        let art = compile(&scale_model(k), &host(p)).expect("compile");
        std::fs::write(dir.path().join(format!("{p}.o")), &art.object).expect("write");
        std::fs::write(dir.path().join(format!("{p}.h")), &art.header).expect("write");
    }
    let main = r#"
#include <stdio.h>
#include <stdlib.h>
#include "first.h"
#include "second.h"
int main(void) {
    float x[4] = {1, -2, 3, -4}, a[4], b[4];
    const void *ins[1] = {x};
    void *oa[1] = {a}, *ob[1] = {b};
    void *wa = aligned_alloc(64, FIRST_WORKSPACE_SIZE + 64);
    void *wb = aligned_alloc(64, SECOND_WORKSPACE_SIZE + 64);
    if (first_run(ins, oa, wa) || second_run(ins, ob, wb)) return 1;
    for (int i = 0; i < 4; i++) printf("%g %g\n", a[i], b[i]);
    return 0;
}
"#;
    std::fs::write(dir.path().join("main.c"), main).expect("write");
    let app = dir.path().join("app");
    link(dir.path(), &["main.c", "first.o", "second.o"], &app);
    let out = Command::new(&app).output().expect("run");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "2 0\n0 6\n6 0\n0 12\n"
    );
}

#[test]
fn header_compiles_as_cpp() {
    let Ok(v) = Command::new("c++").arg("--version").output() else {
        eprintln!("no c++ compiler; skipped");
        return;
    };
    if !v.status.success() {
        return;
    }
    let art = compile(&busy_model(), &host("busy")).expect("compile");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("busy.h"), &art.header).expect("write");
    std::fs::write(
        dir.path().join("t.cpp"),
        "#include \"busy.h\"\nstatic_assert(BUSY_NUM_INPUTS == 1, \"\");\nint main() { return busy_workspace_size() == BUSY_WORKSPACE_SIZE ? 0 : 1; }\n",
    )
    .expect("write");
    let o = Command::new("c++")
        .current_dir(dir.path())
        .args(["-std=c++11", "-Wall", "-Werror", "-fsyntax-only", "t.cpp"])
        .output()
        .expect("run c++");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn identical_nodes_share_one_function() {
    let mut g = Graph::new("shared");
    let x = g.add_input("x", TensorType::f32(vec![8, 8]));
    let mut v = ValueId::of(x);
    for i in 0..6 {
        let r = g
            .add_node(Op::Unary(UnaryOp::Tanh), format!("t{i}"), vec![v])
            .expect("valid");
        v = ValueId::of(r);
    }
    g.add_output("y", v);
    let art = compile(&g, &host("s")).expect("compile");
    let f = object::File::parse(&*art.object).expect("parse");
    let tanh_fns = f
        .symbols()
        .filter(|s| s.name().is_ok_and(|n| n.ends_with(".tanh")))
        .count();
    // Alignment differs between reading the caller's input, arena to arena,
    // and writing the caller's output: three variants for six nodes.
    assert_eq!(tanh_fns, 3, "six tanh nodes of one shape share code");
    let x0 = rand_tensor(&[8, 8], 1);
    let want: Vec<f32> = x0
        .as_f32()
        .expect("f32")
        .iter()
        .map(|&v| (0..6).fold(v as f64, |a, _| a.tanh()) as f32)
        .collect();
    check(&g, &[x0], &[f32_tensor(&[8, 8], want)], 2e-6);
}
