//! Target selection: triple normalization, CPU and features, and the LLVM
//! `TargetMachine` (PIC, default code model, -O3).

use crate::{CodegenError, Options};
use inkwell::targets::{
    CodeModel, InitializationConfig, RelocMode, Target, TargetMachine, TargetTriple,
};
use inkwell::OptimizationLevel;
use std::sync::Once;

/// Architectures (first component of a triple) the backend supports.
pub const SUPPORTED_ARCHES: &str =
    "x86_64, aarch64, arm/armv6/armv7/armv8 and thumbv6m/thumbv7*/thumbv8*";

fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let cfg = InitializationConfig::default();
        Target::initialize_x86(&cfg);
        Target::initialize_aarch64(&cfg);
        Target::initialize_arm(&cfg);
    });
}

/// The chosen target: machine plus the facts the rest of the backend needs.
pub struct Chosen {
    pub machine: TargetMachine,
    pub triple: String,
}

fn arch_supported(arch: &str) -> bool {
    arch == "x86_64"
        || arch == "aarch64"
        || arch == "arm64"
        || arch.starts_with("arm") && !arch.starts_with("armeb") && !arch.starts_with("arm64_32")
        || arch.starts_with("thumb") && !arch.starts_with("thumbeb")
}

/// Features a cross target's "generic" CPU lacks but its triple promises:
/// hard-float bare-metal Cortex-M triples get their FPU (else LLVM emits
/// soft-float library calls).
fn baseline_features(triple: &str) -> &'static str {
    let arch = triple.split('-').next().unwrap_or("");
    let hard_float = triple.ends_with("hf");
    match arch {
        "thumbv7em" if hard_float => "+vfp4d16sp",
        "thumbv8m.main" if hard_float => "+fp-armv8d16sp",
        _ => "",
    }
}

/// Creates the target machine for `opts`.
pub fn choose(opts: &Options) -> Result<Chosen, CodegenError> {
    init();
    let host = TargetMachine::normalize_triple(&TargetMachine::get_default_triple());
    let triple = match &opts.target {
        Some(t) => TargetMachine::normalize_triple(&TargetTriple::create(t)),
        None => TargetMachine::normalize_triple(&TargetMachine::get_default_triple()),
    };
    let triple_str = triple.as_str().to_string_lossy().into_owned();
    let arch = triple_str.split('-').next().unwrap_or("");
    if !arch_supported(arch) {
        return Err(CodegenError::Target(format!(
            "unsupported target triple '{triple_str}'; supported architectures: {SUPPORTED_ARCHES} (little-endian)"
        )));
    }
    let target = Target::from_triple(&triple).map_err(|e| {
        CodegenError::Target(format!(
            "unsupported target triple '{triple_str}' ({e}); supported architectures: {SUPPORTED_ARCHES}"
        ))
    })?;
    let cross = triple.as_str() != host.as_str();
    let cpu = match &opts.cpu {
        Some(c) => c.clone(),
        None if !cross => TargetMachine::get_host_cpu_name().to_string(),
        None => "generic".to_string(),
    };
    let mut features = if !cross && opts.cpu.is_none() {
        TargetMachine::get_host_cpu_features().to_string()
    } else if opts.cpu.is_none() {
        baseline_features(&triple_str).to_string()
    } else {
        String::new()
    };
    if let Some(f) = &opts.features {
        if !f.is_empty() {
            if !features.is_empty() {
                features.push(',');
            }
            features.push_str(f);
        }
    }
    let machine = target
        .create_target_machine(
            &triple,
            &cpu,
            &features,
            OptimizationLevel::Aggressive,
            RelocMode::PIC,
            CodeModel::Default,
        )
        .ok_or_else(|| {
            CodegenError::Target(format!(
                "LLVM cannot create a target machine for '{triple_str}' (cpu '{cpu}', features '{features}')"
            ))
        })?;
    Ok(Chosen {
        machine,
        triple: triple_str,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_unknown_arch() {
        let opts = Options {
            target: Some("riscv64-unknown-linux-gnu".into()),
            ..Default::default()
        };
        let Err(CodegenError::Target(msg)) = choose(&opts) else {
            panic!("riscv64 must be rejected");
        };
        assert!(msg.contains("x86_64") && msg.contains("aarch64"), "{msg}");
    }

    #[test]
    fn normalizes_bare_metal_triple() {
        let opts = Options {
            target: Some("thumbv7em-none-eabihf".into()),
            ..Default::default()
        };
        let c = choose(&opts).expect("thumbv7em is supported");
        assert_eq!(c.triple, "thumbv7em-unknown-none-eabihf");
    }
}
