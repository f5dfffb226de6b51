//! The curated target table (`src/target_table.rs`) checked against LLVM
//! itself, through `llc` of the same LLVM the backend links
//! (`$LLVM_SYS_221_PREFIX/bin/llc`, set by .cargo/config.toml):
//!
//! * every CPU and feature name in the table is in `llc -mtriple=T -mcpu=help`
//!   (LLVM's C API cannot list them; an unknown name only makes LLVM warn);
//! * every capability bit of every ARM CPU is what LLVM gives that CPU:
//!   dotprod/i8mm/NEON/DSP/MVE by whether `llc -mcpu=CPU` can select an
//!   intrinsic that needs the feature (a separate process: LLVM aborts when it
//!   cannot), FMA and FP64 by whether the assembly uses `vfma.f32`/`vadd.f64`.
//!
//! Without llc the tests skip locally and fail under CI.

use qcc_codegen::target_table::{self as table, cap, Caps, Family, TARGETS};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn llc() -> Option<PathBuf> {
    let prefix = std::env::var_os("LLVM_SYS_221_PREFIX")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/llvm-22"));
    let llc = prefix.join("bin/llc");
    let ok = Command::new(&llc).arg("--version").output().is_ok_and(|o| {
        o.status.success() && String::from_utf8_lossy(&o.stdout).contains("LLVM version 22")
    });
    if ok {
        return Some(llc);
    }
    let msg = format!("{} (LLVM 22) not found", llc.display());
    if std::env::var_os("CI").is_some() {
        panic!("{msg}; CI is set, so this is a failure");
    }
    eprintln!("{msg}: skipped");
    None
}

/// LLVM's triple for a family (the table's triples are user spellings).
fn llvm_triple(f: Family) -> &'static str {
    match f {
        Family::X86_64 => "x86_64-unknown-linux-gnu",
        Family::Aarch64 => "aarch64-unknown-linux-gnu",
        Family::Armv7 => "armv7-unknown-linux-gnueabihf",
        Family::ThumbV7em => "thumbv7em-unknown-none-eabihf",
        Family::ThumbV8mMain => "thumbv8m.main-unknown-none-eabihf",
    }
}

/// The CPU and feature names `llc -mcpu=help` lists for a triple.
fn llvm_names(llc: &Path, triple: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let o = Command::new(llc)
        .args([&format!("-mtriple={triple}"), "-mcpu=help"])
        .stdin(Stdio::null())
        .output()
        .expect("run llc");
    // llc prints the lists on stdout or stderr depending on the version.
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let (mut cpus, mut feats) = (BTreeSet::new(), BTreeSet::new());
    let mut section = 0;
    for line in text.lines() {
        if line.starts_with("Available CPUs") {
            section = 1;
        } else if line.starts_with("Available features") {
            section = 2;
        } else if let Some(name) = line
            .strip_prefix("  ")
            .and_then(|l| l.split_whitespace().next())
        {
            match section {
                1 => cpus.insert(name.to_string()),
                2 => feats.insert(name.to_string()),
                _ => false,
            };
        }
    }
    assert!(
        !cpus.is_empty() && !feats.is_empty(),
        "llc listed nothing for {triple}:\n{text}"
    );
    (cpus, feats)
}

#[test]
fn table_names_are_llvm_names() {
    let Some(llc) = llc() else { return };
    for t in TARGETS {
        let (cpus, feats) = llvm_names(&llc, llvm_triple(t.family));
        for c in table::cpus(t.family) {
            assert!(
                cpus.contains(c.name),
                "{}: LLVM has no CPU '{}'",
                t.triple,
                c.name
            );
        }
        for f in table::features(t.family) {
            assert!(
                feats.contains(f.name),
                "{}: LLVM has no feature '{}'",
                t.triple,
                f.name
            );
        }
    }
}

/// A function calling intrinsic `name` on its parameters.
fn probe(ret: &str, name: &str, params: &str, types: &str) -> String {
    format!(
        "define {ret} @f({params}) {{\n  %r = call {ret} @{name}({params})\n  ret {ret} %r\n}}\ndeclare {ret} @{name}({types})\n"
    )
}

/// `(capability, IR that LLVM can only compile when the CPU has it)`.
fn intrinsic_probes(family: Family) -> Vec<(Caps, String)> {
    let dot = |name| {
        probe(
            "<4 x i32>",
            name,
            "<4 x i32> %a, <16 x i8> %b, <16 x i8> %c",
            "<4 x i32>, <16 x i8>, <16 x i8>",
        )
    };
    let smlad = || {
        probe(
            "i32",
            "llvm.arm.smlad",
            "i32 %a, i32 %b, i32 %c",
            "i32, i32, i32",
        )
    };
    match family {
        Family::Aarch64 => vec![
            (cap::DOTPROD, dot("llvm.aarch64.neon.sdot.v4i32.v16i8")),
            (cap::I8MM, dot("llvm.aarch64.neon.smmla.v4i32.v16i8")),
        ],
        Family::Armv7 => vec![
            (
                cap::NEON,
                probe(
                    "<2 x float>",
                    "llvm.arm.neon.vpadd.v2f32",
                    "<2 x float> %a, <2 x float> %b",
                    "<2 x float>, <2 x float>",
                ),
            ),
            (cap::DOTPROD, dot("llvm.arm.neon.sdot.v4i32.v16i8")),
            (cap::I8MM, dot("llvm.arm.neon.smmla.v4i32.v16i8")),
            (cap::DSP, smlad()),
        ],
        Family::ThumbV7em | Family::ThumbV8mMain => vec![
            (cap::DSP, smlad()),
            (
                cap::MVE,
                probe("<16 x i1>", "llvm.arm.mve.vctp8", "i32 %a", "i32"),
            ),
        ],
        Family::X86_64 => vec![],
    }
}

/// Float code whose assembly shows whether the CPU has FMA and an FP64 unit.
const FLOAT_PROBE: &str = "define float @f(float %a, float %b, float %c) {
  %r = call float @llvm.fma.f32(float %a, float %b, float %c)
  ret float %r
}
define double @g(double %a, double %b) {
  %r = fadd double %a, %b
  ret double %r
}
declare float @llvm.fma.f32(float, float, float)
";

/// Runs llc on `ir` for a CPU (without the target's baseline features, so
/// that the table's per-CPU bits are tested); returns the assembly on success.
fn llc_compiles(
    llc: &Path,
    dir: &Path,
    triple: &str,
    cpu: &str,
    ir: &str,
    tag: &str,
) -> Option<String> {
    let file = dir.join(format!("{tag}-{cpu}.ll"));
    std::fs::write(&file, ir).expect("write probe");
    let o = Command::new(llc)
        .args([
            &format!("-mtriple={triple}"),
            &format!("-mcpu={cpu}"),
            "-o",
            "-",
        ])
        .arg(&file)
        .stdin(Stdio::null())
        .output()
        .expect("run llc");
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
}

#[test]
fn table_capabilities_match_llvm() {
    let Some(llc) = llc() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut jobs = vec![];
    for t in TARGETS {
        if t.family == Family::X86_64 {
            continue;
        }
        for c in table::cpus(t.family) {
            jobs.push((t.family, c));
        }
    }
    // Two threads: about 250 llc runs of a few tens of milliseconds.
    let chunks: Vec<_> = jobs.chunks(jobs.len().div_ceil(2)).collect();
    let failures: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .iter()
            .map(|chunk| {
                let (llc, dir) = (&llc, dir.path());
                s.spawn(move || {
                    let mut bad = vec![];
                    for (family, c) in chunk.iter() {
                        let triple = llvm_triple(*family);
                        let mut got = table::family_caps(*family);
                        for (bit, ir) in intrinsic_probes(*family) {
                            if llc_compiles(llc, dir, triple, c.name, &ir, &format!("{bit}"))
                                .is_some()
                            {
                                got |= bit;
                            }
                        }
                        if *family != Family::Aarch64 {
                            let asm = llc_compiles(llc, dir, triple, c.name, FLOAT_PROBE, "float")
                                .unwrap_or_default();
                            if asm.contains("vfma.f32") {
                                got |= cap::FMA;
                            }
                            if asm.contains("vadd.f64") {
                                got |= cap::FP64;
                            }
                        }
                        if got != c.caps {
                            bad.push(format!(
                                "{triple} {}: table says {:?}, LLVM gives {:?}",
                                c.name,
                                table::cap_names(c.caps),
                                table::cap_names(got)
                            ));
                        }
                    }
                    bad
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("probe thread"))
            .collect()
    });
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
