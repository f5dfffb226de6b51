//! The ISA dot-product paths of the int8 dot core: AVX512-VNNI `vpdpbusd`
//! on a host that has it, AArch64 `sdot` with `+dotprod` (run under
//! `qemu-aarch64 -cpu max`), and none of them for baseline CPUs. Results
//! are bit-identical to the reference, worst-case values included.

mod common;
mod quant_common;
use common::*;
use qcc_codegen::{compile, Artifacts, Options};
use qcc_ir::{DType, Graph, Op, Rescale, Tensor};
use quant_common::*;
use std::process::Command;

/// QGemm `[m,k] x [k,n]` with constant B and bias; the accumulator is
/// rescaled by `2^-shift` to i8.
fn gemm(a: &Tensor, b: &Tensor, zp: i32, shift: u32) -> (Graph, Vec<Tensor>, Vec<i64>) {
    let n = b.shape()[1];
    let bias = ints(DType::I32, &[n], &rand_ints(n, 7, -5000, 5000));
    let op = Op::QGemm {
        a_zero_point: zp,
        epi: epi(Rescale::uniform(1, shift), 0, DType::I8),
        to: DType::I8,
    };
    let want = ref_qgemm(&op, a, b, &bias);
    let (g, ins) = op_graph(
        op,
        vec![Arg::In(a.clone()), Arg::Const(b.clone()), Arg::Const(bias)],
    );
    (g, ins, want)
}

/// Cases: random i8 and u8 activations with long rows and ragged tails,
/// and the worst case (all -128 / 127 against ±127 weights).
fn cases() -> Vec<(Graph, Vec<Tensor>, Vec<i64>, String)> {
    let mut out = vec![];
    for (dt, zp) in [(DType::I8, 3), (DType::U8, 130)] {
        for (m, k, n) in [(3, 200, 7), (2, 64, 4), (1, 17, 5)] {
            let a = rand_t8(dt, &[m, k], 11 + k as u64);
            let b = ints(DType::I8, &[k, n], &rand_ints(k * n, 5, -128, 127));
            let (g, ins, want) = gemm(&a, &b, zp, 10);
            out.push((g, ins, want, format!("{dt} {m}x{k}x{n}")));
        }
    }
    let k = 4099;
    for av in [-128i64, 127] {
        let a = ints(DType::I8, &[2, k], &vec![av; 2 * k]);
        let w: Vec<i64> = (0..k * 4)
            .map(|i| if (i / 4 + i % 4) % 3 == 0 { -127 } else { 127 })
            .collect();
        let b = ints(DType::I8, &[k, 4], &w);
        let (g, ins, want) = gemm(&a, &b, 0, 20);
        out.push((g, ins, want, format!("worst case a={av}")));
    }
    out
}

fn compile_for(g: &Graph, target: Option<&str>, cpu: Option<&str>, f: Option<&str>) -> Artifacts {
    let opts = Options {
        target: target.map(str::to_string),
        cpu: cpu.map(str::to_string),
        features: f.map(str::to_string),
        prefix: "m".into(),
        ..Default::default()
    };
    compile(g, &opts).unwrap_or_else(|e| panic!("compile: {e}"))
}

/// The mnemonics of `objdump -d` (`None`: objdump missing).
fn mnemonics(objdump: &str, obj: &[u8]) -> Option<Vec<String>> {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("m.o");
    std::fs::write(&p, obj).expect("write object");
    let o = Command::new(objdump).arg("-d").arg(&p).output().ok()?;
    assert!(o.status.success(), "{objdump} failed");
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    Some(
        text.lines()
            .filter_map(|l| l.split('\t').nth(2))
            .filter_map(|m| m.split_whitespace().next())
            .map(str::to_string)
            .collect(),
    )
}

fn host_has(feature: &str) -> bool {
    std::fs::read_to_string("/proc/cpuinfo")
        .map(|s| s.split_whitespace().any(|w| w == feature))
        .unwrap_or(false)
}

#[test]
fn host_results_are_exact() {
    for (g, ins, want, what) in cases() {
        let got = run_native(&g, &ins).remove(0);
        assert_same(&got, &expect(&g, &want), &format!("host {what}"));
    }
}

#[test]
fn x86_uses_vpdpbusd_only_when_available() {
    if !cfg!(target_arch = "x86_64") {
        return;
    }
    let (g, ..) = cases().remove(0);
    let Some(host) = mnemonics("objdump", &compile_for(&g, None, None, None).object) else {
        eprintln!("objdump missing: skipped");
        return;
    };
    let count = |v: &[String]| v.iter().filter(|m| m.starts_with("vpdpbusd")).count();
    if host_has("avx512_vnni") && host_has("avx512bw") {
        assert!(count(&host) > 0, "host object has no vpdpbusd");
    }
    assert!(host.iter().all(|m| m != "vpdpbusds" && m != "vpmaddubsw"));
    let t = Some("x86_64-unknown-linux-gnu");
    let base = mnemonics("objdump", &compile_for(&g, t, Some("x86-64"), None).object);
    assert_eq!(
        base.map(|v| count(&v)),
        Some(0),
        "baseline x86-64 has vpdpbusd"
    );
    let feats = Some("+avx512f,+avx512bw,+avx512vnni");
    let vnni = mnemonics("objdump", &compile_for(&g, t, Some("x86-64"), feats).object);
    assert!(
        vnni.is_some_and(|v| count(&v) > 0),
        "+avx512vnni has no vpdpbusd"
    );
}

#[test]
fn aarch64_dotprod_is_exact_under_qemu() {
    let Some(tc) = cross("aarch64-unknown-linux-gnu") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "aarch64 cross tools missing"
        );
        return;
    };
    let t = Some("aarch64-unknown-linux-gnu");
    let sdots = |obj: &[u8]| {
        mnemonics("aarch64-linux-gnu-objdump", obj)
            .expect("aarch64-linux-gnu-objdump")
            .iter()
            .filter(|m| *m == "sdot")
            .count()
    };
    for (g, ins, want, what) in cases() {
        let base = compile_for(&g, t, None, None);
        assert_eq!(sdots(&base.object), 0, "{what}: baseline aarch64 has sdot");
        let off = compile_for(&g, t, Some("cortex-a76"), Some("-dotprod"));
        assert_eq!(sdots(&off.object), 0, "{what}: -dotprod still has sdot");
        let art = compile_for(&g, t, None, Some("+dotprod"));
        if ins[0].shape()[1] >= 16 {
            assert!(sdots(&art.object) > 0, "{what}: +dotprod has no sdot");
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let app = build_app_with(&tc, dir.path(), &g, &art, "m");
        for (i, x) in ins.iter().enumerate() {
            std::fs::write(dir.path().join(format!("in{i}.bin")), x.to_le_bytes()).expect("in");
        }
        let runner = tc.runner.expect("emulator");
        let o = Command::new(runner)
            .args(["-cpu", "max"])
            .arg(&app)
            .current_dir(dir.path())
            .output()
            .expect("run qemu");
        assert!(o.status.success(), "{what}: qemu failed");
        let bytes = std::fs::read(dir.path().join("out0.bin")).expect("output");
        let got = Tensor::from_le_bytes(g.value_type(g.outputs[0].value), &bytes).expect("size");
        let want = expect(&g, &want);
        assert_same(&got, &want, &format!("aarch64 +dotprod {what}"));
        if let Some(i) = interp(&g, &ins) {
            assert_same(
                &got,
                &i[0],
                &format!("aarch64 +dotprod vs interpreter {what}"),
            );
        }
    }
}
