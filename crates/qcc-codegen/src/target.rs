//! Target selection: triple normalization and validation, the CPU and its
//! features (checked against `target_table`), and the LLVM `TargetMachine`
//! (-O3; PIC for hosted targets, static for bare metal).
//!
//! Rules (see README "Cross-compiling for a board"):
//! * no `--target`: the host, with the host CPU and its features;
//! * `--target T`: T's baseline CPU (`generic` AArch64 = Armv8.0-A + NEON,
//!   `generic` ARMv7-A + NEON, Cortex-M4, Cortex-M33) plus T's baseline features,
//!   so that no optional instruction (dotprod, i8mm, MVE…) leaks in unless
//!   `--cpu` or `--features` asks for it; `--cpu native` is the host CPU;
//! * unknown triples, CPUs and features are errors that list the valid ones,
//!   before LLVM sees them (LLVM would only warn and ignore them).

use crate::target_table::{self as table, cap, Caps, CpuDesc, Family, TargetDesc, TARGETS};
use crate::{CodegenError, Options};
use inkwell::targets::{
    CodeModel, InitializationConfig, RelocMode, Target, TargetMachine, TargetTriple,
};
use inkwell::OptimizationLevel;
use std::sync::Once;

/// What the backend supports, for messages (kept for API compatibility).
pub const SUPPORTED_ARCHES: &str =
    "x86_64, aarch64, armv7 (hard float), thumbv7em and thumbv8m.main (bare metal, hard float)";

fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let cfg = InitializationConfig::default();
        Target::initialize_x86(&cfg);
        Target::initialize_aarch64(&cfg);
        Target::initialize_arm(&cfg);
    });
}

/// The chosen target: the machine plus what the rest of the backend needs.
pub struct Chosen {
    pub machine: TargetMachine,
    /// The normalized triple (e.g. `thumbv7em-unknown-none-eabihf`).
    pub triple: String,
    pub info: TargetInfo,
}

/// A resolved target, CPU and feature set (what `--stats` prints).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TargetInfo {
    /// The normalized triple.
    pub triple: String,
    pub cpu: String,
    /// The LLVM feature string the machine was created with.
    pub features: String,
    /// Capabilities kernels may use (bits of `target_table::cap`).
    pub caps: Caps,
    /// No operating system: static relocation, no libc beyond memcpy/memset.
    pub bare_metal: bool,
    /// The CPU and features are the host's (no `--target`, or `--cpu native`).
    pub host_cpu: bool,
}

impl TargetInfo {
    pub fn has(&self, bit: Caps) -> bool {
        self.caps & bit == bit
    }
}

fn target_list() -> String {
    TARGETS
        .iter()
        .map(|t| t.triple)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The normalized form of a triple, as LLVM spells it.
pub fn normalize(triple: &str) -> String {
    TargetMachine::normalize_triple(&TargetTriple::create(triple))
        .as_str()
        .to_string_lossy()
        .into_owned()
}

/// The host's normalized triple.
pub fn host_triple() -> String {
    TargetMachine::normalize_triple(&TargetMachine::get_default_triple())
        .as_str()
        .to_string_lossy()
        .into_owned()
}

/// Classifies a normalized triple: its family and whether it is bare metal.
pub fn classify(norm: &str) -> Result<(Family, bool), CodegenError> {
    let parts: Vec<&str> = norm.split('-').collect();
    let arch = parts.first().copied().unwrap_or("");
    let os = parts.get(2).copied().unwrap_or("");
    let os = os.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
    let env = parts.get(3).copied().unwrap_or("");
    let unsupported = |why: &str| {
        CodegenError::Target(format!(
            "unsupported target '{norm}'{why}; supported targets: {} (see `qcc --print targets`)",
            target_list()
        ))
    };
    let soft = || {
        unsupported(" (soft-float ABI: qcc supports the hard-float variants, e.g. armv7-unknown-linux-gnueabihf, thumbv7em-none-eabihf)")
    };
    let hosted = |env_ok: &[&str]| -> Result<(), CodegenError> {
        let os_ok = matches!(
            os,
            "linux" | "darwin" | "macos" | "macosx" | "ios" | "windows" | "freebsd"
        );
        if os_ok && (os != "linux" || env_ok.contains(&env)) {
            Ok(())
        } else {
            Err(unsupported(""))
        }
    };
    let bare = || -> Result<(), CodegenError> {
        match (os, env) {
            ("none", "eabihf") => Ok(()),
            ("none", "eabi") => Err(soft()),
            _ => Err(unsupported(
                " (Cortex-M targets are bare metal: *-none-eabihf)",
            )),
        }
    };
    match arch {
        "x86_64" => hosted(&["gnu", "musl", ""]).map(|()| (Family::X86_64, false)),
        "aarch64" | "arm64" => {
            hosted(&["gnu", "musl", "android", ""]).map(|()| (Family::Aarch64, false))
        }
        "armv7" | "armv7a" | "armv7l" | "armv7hl" => match (os, env) {
            ("linux", "gnueabihf" | "musleabihf") => Ok((Family::Armv7, false)),
            ("linux", "gnueabi" | "musleabi") => Err(soft()),
            _ => Err(unsupported("")),
        },
        "thumbv7em" => bare().map(|()| (Family::ThumbV7em, true)),
        "thumbv8m.main" => bare().map(|()| (Family::ThumbV8mMain, true)),
        a if a.starts_with("thumbv8.1m") => Err(unsupported(
            " (for ARMv8.1-M use thumbv8m.main-none-eabihf with --cpu cortex-m55, cortex-m85 or cortex-m52)",
        )),
        _ => Err(unsupported("")),
    }
}

/// Resolves a `--target` value (or the host for `None`): normalized triple and table entry.
pub fn resolve_target(
    target: Option<&str>,
) -> Result<(String, &'static TargetDesc, bool), CodegenError> {
    init();
    let triple = match target {
        Some(t) if t.trim().is_empty() => {
            return Err(CodegenError::Target(format!(
                "empty target triple; supported targets: {}",
                target_list()
            )))
        }
        Some(t) => normalize(t.trim()),
        None => host_triple(),
    };
    let (family, bare_metal) = classify(&triple)?;
    Ok((triple, table::target_of(family), bare_metal))
}

fn parse_features(
    text: &str,
    triple: &str,
    family: Family,
    caps: &mut Caps,
) -> Result<Vec<String>, CodegenError> {
    let valid = table::features(family);
    let list = || {
        valid
            .iter()
            .map(|f| format!("+{}", f.name))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = vec![];
    for tok in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let (sign, name) = tok.split_at(tok.chars().next().map_or(0, char::len_utf8));
        if sign != "+" && sign != "-" {
            return Err(CodegenError::Target(format!(
                "feature '{tok}' must start with '+' or '-' (e.g. +{tok})"
            )));
        }
        let Some(desc) = valid.iter().find(|f| f.name == name) else {
            return Err(CodegenError::Target(format!(
                "unknown feature '{name}' for {triple}; valid features: {} (see `qcc --target {triple} --print features`)",
                list()
            )));
        };
        if sign == "-" && desc.abi {
            return Err(CodegenError::Target(format!(
                "feature '-{name}' cannot be disabled on {triple}: its ABI needs it"
            )));
        }
        if sign == "+" && desc.remove_only && *caps & desc.caps != desc.caps {
            return Err(CodegenError::Target(format!(
                "feature '+{name}' is not available on {triple} with this CPU; pick a --cpu that has it (see `qcc --target {triple} --print cpus`)"
            )));
        }
        if sign == "+" {
            *caps |= desc.caps;
        } else {
            *caps &= !desc.caps;
        }
        out.push(tok.to_string());
    }
    // Dot product and int8 matrix multiply are NEON instructions.
    if matches!(family, Family::Armv7 | Family::Aarch64) && *caps & cap::NEON == 0 {
        *caps &= !(cap::DOTPROD | cap::I8MM);
    }
    Ok(out)
}

/// Capabilities named in an LLVM feature string (the host's).
fn caps_of_feature_string(family: Family, s: &str) -> Caps {
    let mut caps = table::family_caps(family);
    for tok in s.split(',') {
        if let Some(name) = tok.strip_prefix('+') {
            if let Some(f) = table::features(family).iter().find(|f| f.name == name) {
                caps |= f.caps;
            }
        }
    }
    caps
}

fn find_cpu(family: Family, name: &str) -> Option<CpuDesc> {
    table::cpus(family).into_iter().find(|c| c.name == name)
}

/// Whether the last `+name`/`-name` in an LLVM feature string enables `name`
/// (absent: off).
pub fn feature_on(features: &str, name: &str) -> bool {
    features
        .split(',')
        .map(str::trim)
        .rfind(|t| t.get(1..) == Some(name))
        .is_some_and(|t| t.starts_with('+'))
}

/// Resolves the CPU, features and capabilities for `opts` (no LLVM machine yet).
pub fn resolve(opts: &Options) -> Result<TargetInfo, CodegenError> {
    let (triple, desc, bare_metal) = resolve_target(opts.target.as_deref())?;
    let family = desc.family;
    let host = host_triple();
    let host_family = classify(&host).ok().map(|(f, _)| f);
    let native_ok = host_family == Some(family) && !bare_metal;
    let cpu_arg = opts.cpu.as_deref().map(str::trim).filter(|c| !c.is_empty());
    let use_host = match cpu_arg {
        None => opts.target.is_none(),
        Some("native") if native_ok => true,
        Some("native") => {
            return Err(CodegenError::Target(format!(
                "--cpu native means the host CPU, but {triple} is not the host's architecture; name a CPU (see `qcc --target {triple} --print cpus`)"
            )))
        }
        Some(_) => false,
    };
    let mut features: Vec<String> = vec![];
    let (cpu, mut caps) = if use_host {
        let f = TargetMachine::get_host_cpu_features().to_string();
        let caps = caps_of_feature_string(family, &f);
        features.extend(f.split(',').filter(|s| !s.is_empty()).map(str::to_string));
        (TargetMachine::get_host_cpu_name().to_string(), caps)
    } else {
        let name = cpu_arg.unwrap_or(desc.default_cpu);
        let Some(c) = find_cpu(family, name) else {
            let valid: Vec<&str> = table::cpus(family).iter().map(|c| c.name).collect();
            return Err(CodegenError::Target(format!(
                "unknown CPU '{name}' for {triple}; valid CPUs: {}",
                valid.join(", ")
            )));
        };
        (c.name.to_string(), c.caps)
    };
    // The target's baseline comes first so that the CPU cannot drop it
    // (`+neon` on armv7: LLVM 22's ARMv7 cores leave NEON off).
    let mut all = parse_features(desc.baseline_features, &triple, family, &mut caps)?;
    if family == Family::X86_64 && !use_host {
        // What the named CPU implies, before `--features` (which may remove it).
        all.extend(table::x86_cpu_features(&cpu).iter().map(|f| f.to_string()));
    }
    all.extend(features);
    if let Some(f) = opts.features.as_deref() {
        all.extend(parse_features(f, &triple, family, &mut caps)?);
    }
    Ok(TargetInfo {
        triple,
        cpu,
        features: all.join(","),
        caps,
        bare_metal,
        host_cpu: use_host,
    })
}

/// Creates the target machine for `opts`.
pub fn choose(opts: &Options) -> Result<Chosen, CodegenError> {
    let info = resolve(opts)?;
    let triple = TargetTriple::create(&info.triple);
    let target = Target::from_triple(&triple).map_err(|e| {
        CodegenError::Target(format!(
            "LLVM has no backend for '{}' ({e}); supported targets: {}",
            info.triple,
            target_list()
        ))
    })?;
    // Firmware is linked at fixed addresses: no GOT, plain absolute addresses.
    let reloc = if info.bare_metal {
        RelocMode::Static
    } else {
        RelocMode::PIC
    };
    let machine = target
        .create_target_machine(
            &triple,
            &info.cpu,
            &info.features,
            OptimizationLevel::Aggressive,
            reloc,
            CodeModel::Default,
        )
        .ok_or_else(|| {
            CodegenError::Target(format!(
                "LLVM cannot create a target machine for '{}' (cpu '{}', features '{}')",
                info.triple, info.cpu, info.features
            ))
        })?;
    Ok(Chosen {
        machine,
        triple: info.triple.clone(),
        info,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(target: Option<&str>, cpu: Option<&str>, features: Option<&str>) -> Options {
        Options {
            target: target.map(str::to_string),
            cpu: cpu.map(str::to_string),
            features: features.map(str::to_string),
            ..Default::default()
        }
    }

    fn err(o: &Options) -> String {
        match resolve(o) {
            Err(CodegenError::Target(m)) => m,
            other => panic!("expected a target error, got {other:?}"),
        }
    }

    #[test]
    fn rejects_unknown_arch() {
        let msg = err(&opts(Some("riscv64-unknown-linux-gnu"), None, None));
        assert!(msg.contains("x86_64") && msg.contains("aarch64"), "{msg}");
        assert!(msg.contains("thumbv7em-none-eabihf"), "{msg}");
        for bad in [
            "",
            "  ",
            "mips",
            "armv6-unknown-linux-gnueabihf",
            "thumbv6m-none-eabi",
        ] {
            assert!(resolve(&opts(Some(bad), None, None)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn rejects_soft_float() {
        for t in ["thumbv7em-none-eabi", "armv7-unknown-linux-gnueabi"] {
            let msg = err(&opts(Some(t), None, None));
            assert!(msg.contains("soft-float"), "{msg}");
        }
    }

    #[test]
    fn normalizes_bare_metal_triple() {
        let c = choose(&opts(Some("thumbv7em-none-eabihf"), None, None)).expect("supported");
        assert_eq!(c.triple, "thumbv7em-unknown-none-eabihf");
        assert_eq!(c.info.cpu, "cortex-m4");
        assert!(c.info.bare_metal);
        assert!(c.info.has(cap::DSP) && !c.info.has(cap::FP64));
    }

    #[test]
    fn cross_defaults_are_baselines() {
        let a = resolve(&opts(Some("aarch64-linux-gnu"), None, None)).expect("ok");
        assert_eq!(a.triple, "aarch64-unknown-linux-gnu");
        assert_eq!(a.cpu, "generic");
        assert!(a.has(cap::NEON) && !a.has(cap::DOTPROD) && !a.has(cap::I8MM));
        let v7 = resolve(&opts(Some("armv7-unknown-linux-gnueabihf"), None, None)).expect("ok");
        assert_eq!(
            (v7.cpu.as_str(), v7.features.as_str()),
            ("generic", "+neon")
        );
        assert!(v7.has(cap::NEON) && !v7.has(cap::FMA));
        let m = resolve(&opts(Some("thumbv8m.main-none-eabihf"), None, None)).expect("ok");
        assert_eq!(m.cpu, "cortex-m33");
        assert!(m.has(cap::DSP) && !m.has(cap::MVE));
        let m55 = resolve(&opts(
            Some("thumbv8m.main-none-eabihf"),
            Some("cortex-m55"),
            None,
        ));
        assert!(m55.expect("ok").has(cap::MVE | cap::FP64));
    }

    #[test]
    fn cpu_and_features_add_capabilities() {
        let t = Some("aarch64-unknown-linux-gnu");
        let a76 = resolve(&opts(t, Some("cortex-a76"), None)).expect("ok");
        assert!(a76.has(cap::DOTPROD) && !a76.has(cap::I8MM));
        let f = resolve(&opts(t, None, Some("+dotprod, +i8mm"))).expect("ok");
        assert!(f.has(cap::DOTPROD | cap::I8MM));
        assert_eq!(f.features, "+neon,+dotprod,+i8mm");
        let off = resolve(&opts(t, Some("neoverse-v1"), Some("-i8mm"))).expect("ok");
        assert!(off.has(cap::DOTPROD) && !off.has(cap::I8MM));
        let no_neon = resolve(&opts(
            Some("armv7-unknown-linux-gnueabihf"),
            Some("cortex-a55"),
            Some("-neon"),
        ))
        .expect("ok");
        assert!(!no_neon.has(cap::NEON) && !no_neon.has(cap::DOTPROD));
    }

    /// A named x86 CPU brings the vector features its kernels are chosen by;
    /// `--features` can still take them away; the baseline has none.
    #[test]
    fn named_x86_cpus_imply_their_vector_features() {
        let t = Some("x86_64-unknown-linux-gnu");
        let on = |cpu: &str, f: Option<&str>, name: &str| {
            feature_on(&resolve(&opts(t, Some(cpu), f)).expect("ok").features, name)
        };
        assert!(on("znver4", None, "avx512vnni") && on("znver4", None, "avx512bw"));
        assert!(on("haswell", None, "avx2") && on("haswell", None, "fma"));
        assert!(!on("haswell", None, "avx512f"));
        assert!(on("skylake-avx512", None, "avx512f") && !on("skylake-avx512", None, "avx512vnni"));
        assert!(!on("haswell", Some("-avx2"), "avx2"));
        assert!(!on("x86-64", None, "avx2") && !on("nehalem", None, "avx2"));
    }

    #[test]
    fn unknown_cpu_and_feature_list_valid_ones() {
        let t = Some("aarch64-unknown-linux-gnu");
        let msg = err(&opts(t, Some("cortex-a99"), None));
        assert!(
            msg.contains("cortex-a99") && msg.contains("cortex-a76"),
            "{msg}"
        );
        let msg = err(&opts(t, None, Some("+dotprd")));
        assert!(msg.contains("dotprd") && msg.contains("+dotprod"), "{msg}");
        let msg = err(&opts(t, None, Some("dotprod")));
        assert!(msg.contains("'+' or '-'"), "{msg}");
        // A Cortex-A core is not a Cortex-M core, and the reverse.
        assert!(resolve(&opts(
            Some("thumbv7em-none-eabihf"),
            Some("cortex-a53"),
            None
        ))
        .is_err());
        assert!(resolve(&opts(t, Some("cortex-m4"), None)).is_err());
        // dotprod is not an M-profile feature.
        assert!(resolve(&opts(Some("thumbv7em-none-eabihf"), None, Some("+dotprod"))).is_err());
    }

    #[test]
    fn abi_features_cannot_be_removed_nor_cpu_features_added() {
        let m4 = Some("thumbv7em-none-eabihf");
        assert!(err(&opts(m4, None, Some("-vfp4d16sp"))).contains("ABI"));
        assert!(err(&opts(m4, None, Some("+fp64"))).contains("CPU"));
        let m7 = resolve(&opts(m4, Some("cortex-m7"), Some("-fp64"))).expect("ok");
        assert!(!m7.has(cap::FP64));
        let m33 = Some("thumbv8m.main-none-eabihf");
        assert!(resolve(&opts(m33, None, Some("+mve"))).is_err());
        assert!(resolve(&opts(m33, Some("cortex-m55"), Some("+mve"))).is_ok());
        assert!(err(&opts(
            Some("aarch64-unknown-linux-gnu"),
            None,
            Some("-neon")
        ))
        .contains("ABI"));
    }

    #[test]
    fn native_only_for_the_host_architecture() {
        assert!(err(&opts(Some("thumbv7em-none-eabihf"), Some("native"), None)).contains("native"));
        let host = resolve(&opts(None, Some("native"), None)).expect("host");
        assert_eq!(host.cpu, TargetMachine::get_host_cpu_name().to_string());
    }

    #[test]
    fn every_listed_target_builds_a_machine() {
        for t in TARGETS {
            let c = choose(&opts(Some(t.triple), None, None))
                .unwrap_or_else(|e| panic!("{}: {e}", t.triple));
            assert_eq!(c.info.cpu, t.default_cpu);
        }
    }
}
