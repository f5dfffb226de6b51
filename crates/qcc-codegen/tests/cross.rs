//! Cross-compiled models run under qemu-user: 32-bit ARM exercises the inline
//! integer division and i64 ↔ f32 conversions (src/portable.rs) that replace
//! libgcc calls, and the float kernels must agree with the host. The
//! baseline builds run on the oldest cores of their architecture
//! (`qemu-aarch64 -cpu cortex-a53`: no dotprod; `qemu-arm -cpu cortex-a8`:
//! VFPv3 + NEON, no VFPv4), proving no optional instruction leaks in.
//! Bare-metal objects are checked without running them (crates/qcc's
//! `cross_cortex_m` test runs them): hard-float ABI, no writable or
//! thread-local data, weights in `.rodata`, and `--stats` figures.
//!
//! A missing cross gcc or qemu skips these tests locally, and fails them
//! when `CI` is set (scripts/setup.sh installs the tools).

mod common;
use common::*;
use object::{Object, ObjectSection};
use qcc_codegen::{compile, CodegenError, Options};
use qcc_ir::{BinaryOp, DType, Graph, Op, Tensor, TensorData, TensorType, UnaryOp, ValueId};
use std::process::Command;

const TARGETS: [&str; 2] = ["armv7-unknown-linux-gnueabihf", "aarch64-unknown-linux-gnu"];

/// The cross toolchain for `triple`; `None` (skip) only outside CI.
fn toolchain(triple: &'static str) -> Option<Toolchain> {
    match cross(triple) {
        Some(tc) => Some(tc),
        None if std::env::var_os("CI").is_some() => panic!(
            "{triple}: cross gcc or qemu-user is missing, and CI is set (scripts/setup.sh installs them)"
        ),
        None => None,
    }
}

fn ints(dt: DType, v: &[i64]) -> Tensor {
    let data = match dt {
        DType::I64 => TensorData::I64(v.to_vec()),
        DType::I32 => TensorData::I32(v.iter().map(|&x| x as i32).collect()),
        DType::I8 => TensorData::I8(v.iter().map(|&x| x as i8).collect()),
        DType::U8 => TensorData::U8(v.iter().map(|&x| x as u8).collect()),
        _ => unreachable!("integer types only"),
    };
    tensor(&[v.len()], data)
}

/// Rust reference: truncating division in the type's width, 0 for /0, wrapping.
fn div_ref(dt: DType, a: &[i64], b: &[i64]) -> Vec<i64> {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| match dt {
            DType::I64 => x
                .checked_div(y)
                .unwrap_or(if y == 0 { 0 } else { x.wrapping_neg() }),
            DType::I32 => {
                let (x, y) = (x as i32, y as i32);
                (if y == 0 { 0 } else { x.wrapping_div(y) }) as i64
            }
            DType::I8 => {
                let (x, y) = (x as i8, y as i8);
                (if y == 0 { 0 } else { x.wrapping_div(y) }) as i64
            }
            DType::U8 => {
                let (x, y) = (x as u8, y as u8);
                x.checked_div(y).unwrap_or(0) as i64
            }
            _ => unreachable!("integer types only"),
        })
        .collect()
}

#[test]
fn integer_division_on_cross_targets() {
    let a = [
        7,
        -7,
        100,
        0,
        i64::MIN,
        i64::MAX,
        -128,
        255,
        1 << 40,
        -(1 << 35) - 3,
        9,
        -1,
    ];
    let b = [2, 2, -3, 5, -1, 7, -1, 16, 3, 1000, 0, i64::MIN];
    for tc in TARGETS.into_iter().filter_map(toolchain) {
        for dt in [DType::I64, DType::I32, DType::I8, DType::U8] {
            let (ta, tb) = (ints(dt, &a), ints(dt, &b));
            let mut g = Graph::new("div");
            let x = g.add_input("a", ta.ty());
            let y = g.add_input("b", tb.ty());
            let q = g
                .add_node(
                    Op::Binary(BinaryOp::Div),
                    "q",
                    vec![ValueId::of(x), ValueId::of(y)],
                )
                .expect("valid");
            g.add_output("q", ValueId::of(q));
            let got = run_with(&tc, &g, &[ta.to_le_bytes(), tb.to_le_bytes()]);
            let an: Vec<i64> = ta.to_i64_vec().expect("ints");
            let bn: Vec<i64> = tb.to_i64_vec().expect("ints");
            let want = ints(dt, &div_ref(dt, &an, &bn));
            assert_close(&got[0], &want, 0.0, &format!("{:?} {dt}", tc.triple));
        }
    }
}

#[test]
fn i64_float_conversions_on_cross_targets() {
    let floats = vec![
        0.0f32,
        -0.0,
        0.99,
        -0.99,
        1.5,
        -2.5,
        16_777_216.0,
        1e10,
        -1e10,
        9.2e18,
        -9.2e18,
        1e19,
        -1e19,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        1e-40,
        123_456_789.0,
    ];
    let longs = vec![
        0i64,
        1,
        -1,
        16_777_217,
        16_777_219,
        -16_777_217,
        (1 << 40) + (1 << 16),
        (1 << 40) + (1 << 16) + 1,
        i64::MAX,
        i64::MIN,
        i64::MIN + 1,
        123_456_789_123,
        -987_654_321_987,
        (1 << 24) - 1,
    ];
    let ft = f32_tensor(&[floats.len()], floats.clone());
    let lt = i64_tensor(&[longs.len()], longs.clone());
    let mut g = Graph::new("conv");
    let x = g.add_input("f", ft.ty());
    let y = g.add_input("l", lt.ty());
    let to_i = g
        .add_node(Op::Cast { to: DType::I64 }, "to_i", vec![ValueId::of(x)])
        .expect("valid");
    let to_f = g
        .add_node(Op::Cast { to: DType::F32 }, "to_f", vec![ValueId::of(y)])
        .expect("valid");
    g.add_output("i", ValueId::of(to_i));
    g.add_output("f", ValueId::of(to_f));
    let want_i = i64_tensor(&[floats.len()], floats.iter().map(|&v| v as i64).collect());
    let want_f = f32_tensor(&[longs.len()], longs.iter().map(|&v| v as f32).collect());
    let inputs = [ft.to_le_bytes(), lt.to_le_bytes()];
    let mut chains = vec![HOST];
    chains.extend(TARGETS.into_iter().filter_map(toolchain));
    for tc in chains {
        let got = run_with(&tc, &g, &inputs);
        assert_close(&got[0], &want_i, 0.0, &format!("{:?} f32->i64", tc.triple));
        assert_close(&got[1], &want_f, 0.0, &format!("{:?} i64->f32", tc.triple));
    }
}

/// Exp, tanh, erf, sigmoid, hard-swish, max with a constant, pow, abs, log
/// on a [3, 40] input: every float approximation qcc emits instead of libm.
fn float_graph() -> (Graph, Vec<Vec<u8>>) {
    let shape = vec![3, 40];
    let mut g = Graph::new("f");
    let x = g.add_input("x", TensorType::f32(shape.clone()));
    let mut outs = vec![];
    for (k, op) in [
        UnaryOp::Exp,
        UnaryOp::Tanh,
        UnaryOp::Erf,
        UnaryOp::Sigmoid,
        UnaryOp::HardSwish,
        UnaryOp::Silu,
        UnaryOp::Gelu,
        UnaryOp::GeluTanh,
    ]
    .into_iter()
    .enumerate()
    {
        let y = g
            .add_node(Op::Unary(op), format!("u{k}"), vec![ValueId::of(x)])
            .expect("valid");
        outs.push(y);
    }
    let c = g.add_const("c", rand_tensor(&[40], 4));
    let mx = g
        .add_node(
            Op::Binary(BinaryOp::Max),
            "mx",
            vec![ValueId::of(x), ValueId::of(c)],
        )
        .expect("valid");
    let p = g
        .add_node(
            Op::Binary(BinaryOp::Pow),
            "p",
            vec![ValueId::of(mx), ValueId::of(c)],
        )
        .expect("valid");
    let ab = g
        .add_node(Op::Unary(UnaryOp::Abs), "ab", vec![ValueId::of(p)])
        .expect("valid");
    let lg = g
        .add_node(Op::Unary(UnaryOp::Log), "lg", vec![ValueId::of(ab)])
        .expect("valid");
    outs.push(lg);
    // Sign, and a binary layer (weights as bits, popcount: NEON `cnt` on
    // ARM).
    let sg = g
        .add_node(Op::Unary(UnaryOp::Sign), "sg", vec![ValueId::of(x)])
        .expect("valid");
    outs.push(sg);
    let pm: Vec<f32> = rand_f32(40 * 5, 6, -1.0, 1.0)
        .iter()
        .map(|&v| if v < 0.0 { -1.0 } else { 1.0 })
        .collect();
    let w = g.add_const("pm", Tensor::from_f32(vec![40, 5], pm).expect("shape"));
    let bm = g
        .add_node(
            Op::SignMatMul {
                bipolar: false,
                step: None,
            },
            "bm",
            vec![ValueId::of(x), ValueId::of(w)],
        )
        .expect("valid");
    outs.push(bm);
    for (k, o) in outs.iter().enumerate() {
        g.add_output(format!("y{k}"), ValueId::of(*o));
    }
    (g, vec![rand_tensor(&shape, 5).to_le_bytes()])
}

#[test]
fn float_kernels_agree_with_host_on_cross_targets() {
    let (g, input) = float_graph();
    let want = run_with(&HOST, &g, &input);
    for tc in TARGETS.into_iter().filter_map(toolchain) {
        let got = run_with(&tc, &g, &input);
        for (k, (a, b)) in got.iter().zip(&want).enumerate() {
            assert_close(a, b, 2e-6, &format!("{:?} output {k}", tc.triple));
        }
    }
}

/// Compiles `g` for `tc`'s triple with `cpu`/`features`, links it statically
/// and runs it under `qemu -cpu QEMU_CPU`.
fn run_under(
    tc: &Toolchain,
    qemu_cpu: &str,
    (cpu, features): (Option<&str>, Option<&str>),
    g: &Graph,
    inputs: &[Vec<u8>],
) -> Vec<Tensor> {
    let opts = Options {
        target: tc.triple.map(str::to_string),
        cpu: cpu.map(str::to_string),
        features: features.map(str::to_string),
        prefix: "m".into(),
        ..Default::default()
    };
    let art = compile(g, &opts).unwrap_or_else(|e| panic!("compile: {e}"));
    let dir = tempfile::tempdir().expect("tempdir");
    let app = build_app_with(tc, dir.path(), g, &art, "m");
    for (i, bytes) in inputs.iter().enumerate() {
        std::fs::write(dir.path().join(format!("in{i}.bin")), bytes).expect("write input");
    }
    let runner = tc.runner.expect("a cross toolchain has an emulator");
    let o = Command::new(runner)
        .args(["-cpu", qemu_cpu])
        .arg(&app)
        .current_dir(dir.path())
        .output()
        .expect("run qemu");
    assert!(
        o.status.success(),
        "{runner} -cpu {qemu_cpu}: exit {:?}: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    g.outputs
        .iter()
        .enumerate()
        .map(|(j, out)| {
            let bytes = std::fs::read(dir.path().join(format!("out{j}.bin"))).expect("output");
            Tensor::from_le_bytes(g.value_type(out.value), &bytes).expect("output size")
        })
        .collect()
}

#[test]
fn baseline_builds_run_on_the_oldest_cores() {
    let (g, input) = float_graph();
    let want = run_with(&HOST, &g, &input);
    // Cortex-A53 lacks dotprod and i8mm; Cortex-A8 lacks VFPv4 (fused multiply-add).
    for (triple, qemu_cpu) in [
        ("aarch64-unknown-linux-gnu", "cortex-a53"),
        ("armv7-unknown-linux-gnueabihf", "cortex-a8"),
    ] {
        let Some(tc) = toolchain(triple) else {
            continue;
        };
        let got = run_under(&tc, qemu_cpu, (None, None), &g, &input);
        for (k, (a, b)) in got.iter().zip(&want).enumerate() {
            assert_close(a, b, 2e-6, &format!("{triple} on {qemu_cpu}, output {k}"));
        }
    }
}

#[test]
fn dotprod_i8mm_and_cpu_builds_run() {
    let (g, input) = float_graph();
    let want = run_with(&HOST, &g, &input);
    let Some(tc) = toolchain("aarch64-unknown-linux-gnu") else {
        return;
    };
    for (qemu_cpu, cpu, features) in [
        ("max", None, Some("+dotprod,+i8mm")),
        ("cortex-a76", Some("cortex-a76"), None),
    ] {
        let got = run_under(&tc, qemu_cpu, (cpu, features), &g, &input);
        for (k, (a, b)) in got.iter().zip(&want).enumerate() {
            assert_close(a, b, 2e-6, &format!("{cpu:?} {features:?}, output {k}"));
        }
    }
}

/// The float graph plus a weight, casts through i64 and a transpose (workspace).
fn firmware_graph() -> Graph {
    let (mut g, _) = float_graph();
    let x = g.inputs()[0];
    let w = g.add_const("w", rand_tensor(&[3, 40], 9));
    let m = g
        .add_node(
            Op::Binary(BinaryOp::Mul),
            "m",
            vec![ValueId::of(x), ValueId::of(w)],
        )
        .expect("valid");
    let t = g
        .add_node(
            Op::Transpose { perm: vec![1, 0] },
            "t",
            vec![ValueId::of(m)],
        )
        .expect("valid");
    let i = g
        .add_node(Op::Cast { to: DType::I64 }, "i", vec![ValueId::of(t)])
        .expect("valid");
    let d = g
        .add_node(
            Op::Binary(BinaryOp::Div),
            "d",
            vec![ValueId::of(i), ValueId::of(i)],
        )
        .expect("valid");
    let f = g
        .add_node(Op::Cast { to: DType::F32 }, "f", vec![ValueId::of(d)])
        .expect("valid");
    g.add_output("f", ValueId::of(f));
    g
}

fn uleb(b: &[u8], i: &mut usize) -> Option<u64> {
    let (mut v, mut shift) = (0u64, 0);
    loop {
        let byte = *b.get(*i)?;
        *i += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
        shift += 7;
    }
}

/// The file-scope `aeabi` build attributes of an ARM object (`.ARM.attributes`):
/// numeric tags only (string-valued ones are skipped).
fn arm_attributes(f: &object::File) -> Vec<(u64, u64)> {
    let sec = f
        .section_by_name(".ARM.attributes")
        .expect("ARM objects carry build attributes");
    let b = sec.data().expect("attributes");
    assert_eq!(b.first(), Some(&b'A'), "attributes format");
    let rd32 = |i: usize| {
        b.get(i..i + 4)
            .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize)
    };
    let mut out = vec![];
    let mut i = 1;
    while let Some(len) = rd32(i) {
        let end = (i + len).min(b.len());
        let vendor_end = i + 4 + b[i + 4..end].iter().position(|&c| c == 0).expect("vendor");
        if &b[i + 4..vendor_end] == b"aeabi" {
            let mut j = vendor_end + 1;
            // Tag_File (1), size, then attributes.
            if b.get(j) == Some(&1) {
                let sub_end = (j + rd32(j + 1).expect("size")).min(end);
                j += 5;
                while j < sub_end {
                    let Some(tag) = uleb(b, &mut j) else { break };
                    let string = tag == 4 || tag == 5 || tag == 67 || (tag > 32 && tag % 2 == 1);
                    if tag == 32 {
                        uleb(b, &mut j);
                    }
                    if string || tag == 32 {
                        j += b[j..]
                            .iter()
                            .position(|&c| c == 0)
                            .map_or(b.len(), |p| p + 1);
                    } else if let Some(v) = uleb(b, &mut j) {
                        out.push((tag, v));
                    }
                }
            }
        }
        i = end;
    }
    out
}

/// Tag_ABI_VFP_args: 1 = floats passed in VFP registers (hard-float ABI).
const TAG_ABI_VFP_ARGS: u64 = 28;

#[test]
fn bare_metal_objects_are_hard_float_rodata_only_and_report_stats() {
    let g = firmware_graph();
    for (triple, cpu) in [
        ("thumbv7em-none-eabihf", None),
        ("thumbv7em-none-eabihf", Some("cortex-m7")),
        ("thumbv8m.main-none-eabihf", None),
        ("thumbv8m.main-none-eabihf", Some("cortex-m55")),
    ] {
        let what = format!("{triple} {cpu:?}");
        let opts = Options {
            target: Some(triple.into()),
            cpu: cpu.map(str::to_string),
            prefix: "m".into(),
            ..Default::default()
        };
        let art = compile(&g, &opts).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(art.target.bare_metal, "{what}");
        let f = object::File::parse(&*art.object).expect("parse");
        let attrs = arm_attributes(&f);
        assert!(
            attrs.contains(&(TAG_ABI_VFP_ARGS, 1)),
            "{what}: not the hard-float ABI: {attrs:?}"
        );
        let mut rodata = 0;
        for s in f.sections() {
            let name = s.name().unwrap_or("");
            if name.starts_with(".rodata") {
                rodata += s.size();
            }
            for bad in [".data", ".bss", ".tdata", ".tbss", ".init_array"] {
                assert!(
                    !name.starts_with(bad) || s.size() == 0,
                    "{what}: {name} holds {} bytes",
                    s.size()
                );
            }
        }
        // The weight (480 bytes) and the kernels' constant tables are in
        // read-only sections (small ones LLVM may fold into code when it
        // unrolls a loop completely, as it does for Helium).
        let st = &art.stats;
        assert_eq!(st.rodata_bytes, rodata, "{what}");
        assert!(rodata > 0 && st.flash_bytes() >= 480, "{what}: {st:?}");
        assert!(
            st.code_bytes > 0 && st.data_bytes == 0 && st.bss_bytes == 0,
            "{what}: {st:?}"
        );
        assert_eq!(st.workspace_bytes, art.workspace_size as u64);
        assert_eq!(st.ram_bytes(), art.workspace_size as u64, "{what}");
        let stack = st
            .stack
            .as_ref()
            .unwrap_or_else(|| panic!("{what}: no stack figure"));
        assert_eq!(stack.path[0].0, "m_run", "{what}");
        assert!(stack.path.len() >= 2, "{what}: {stack:?}");
        assert_eq!(
            stack.deepest_bytes,
            stack.path.iter().map(|p| p.1).sum::<u64>()
        );
        assert!(stack.deepest_bytes < 4096, "{what}: {stack:?}");
        for e in &stack.external_calls {
            assert!(
                ["memcpy", "memset", "memmove"].contains(&e.as_str()),
                "{what}: calls {e}"
            );
        }
    }
}

#[test]
fn frame_sizes_follow_stack_arrays() {
    // A transpose of a big tensor needs no stack; the report must still
    // name the entry point and stay small, on every target.
    let g = firmware_graph();
    for t in [
        "x86_64-unknown-linux-gnu",
        "aarch64-unknown-linux-gnu",
        "armv7-unknown-linux-gnueabihf",
    ] {
        let opts = Options {
            target: Some(t.into()),
            prefix: "m".into(),
            ..Default::default()
        };
        let art = compile(&g, &opts).unwrap_or_else(|e| panic!("{t}: {e}"));
        let stack = art.stats.stack.clone().expect("stack figure");
        assert_eq!(stack.path[0].0, "m_run", "{t}");
        assert!(stack.deepest_bytes < 4096, "{t}: {stack:?}");
        assert!(
            art.stats.code_bytes > 0 && art.stats.flash_bytes() >= 480,
            "{t}"
        );
    }
}

#[test]
fn bad_target_cpu_and_features_are_errors() {
    let g = firmware_graph();
    let cases = [
        (Some("thumbv7em-none-eabi"), None, None, "soft-float"),
        (
            Some("riscv32-unknown-none-elf"),
            None,
            None,
            "aarch64-unknown-linux-gnu",
        ),
        (
            Some("aarch64-unknown-linux-gnu"),
            Some("cortex-a999"),
            None,
            "cortex-a76",
        ),
        (
            Some("aarch64-unknown-linux-gnu"),
            None,
            Some("+dotprd"),
            "+dotprod",
        ),
        (
            Some("thumbv7em-none-eabihf"),
            Some("cortex-m33"),
            None,
            "cortex-m7",
        ),
        (Some("thumbv7em-none-eabihf"), None, Some("+i8mm"), "+fp64"),
        (
            Some("armv7-unknown-linux-gnueabihf"),
            None,
            Some("-vfp3"),
            "ABI",
        ),
    ];
    for (target, cpu, features, hint) in cases {
        let opts = Options {
            target: target.map(str::to_string),
            cpu: cpu.map(str::to_string),
            features: features.map(str::to_string),
            prefix: "m".into(),
            ..Default::default()
        };
        match compile(&g, &opts) {
            Err(CodegenError::Target(m)) => {
                assert!(m.contains(hint), "{target:?} {cpu:?} {features:?}: {m}")
            }
            other => {
                panic!("{target:?} {cpu:?} {features:?}: expected a target error, got {other:?}")
            }
        }
    }
}

/// The premise of the baseline runs: qemu-user really traps an instruction
/// the emulated core lacks (here `sdot` on a Cortex-A53) instead of running it.
#[test]
fn qemu_traps_instructions_the_core_lacks() {
    let Some(tc) = toolchain("aarch64-unknown-linux-gnu") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("sdot.c"),
        "int main(void) {\n\
         __asm__ volatile(\"sdot v0.4s, v1.16b, v2.16b\" ::: \"v0\");\n\
         return 0;\n}\n",
    )
    .expect("write");
    let app = dir.path().join("sdot");
    link_with(
        &tc,
        dir.path(),
        &["-march=armv8.2-a+dotprod", "sdot.c"],
        &app,
    );
    let run = |cpu: &str| {
        Command::new(tc.runner.expect("emulator"))
            .args(["-cpu", cpu])
            .arg(&app)
            .output()
            .expect("run qemu")
            .status
            .success()
    };
    assert!(run("max"), "sdot must run on -cpu max");
    assert!(!run("cortex-a53"), "sdot must trap on -cpu cortex-a53");
}
