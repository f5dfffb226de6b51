//! The targets, CPUs and target features qcc accepts: a curated table per
//! architecture family, with each CPU's capabilities that kernels care about
//! (NEON, dotprod, i8mm, DSP, MVE, double-precision FPU).
//!
//! LLVM's C API cannot list the CPUs or features of a target (`llc
//! -mcpu=help` prints them from C++ tables), and an unknown name only makes
//! LLVM print a warning and ignore it. So qcc validates names against this
//! table, and `tests/targets.rs` checks the table against LLVM itself: every
//! name is in `llc -mtriple=T -mcpu=help`, and every capability bit matches
//! whether `llc -mcpu=CPU` can select the instruction (e.g. `sdot`) for it.

/// CPU / target capabilities, as bits of [`Caps`].
pub mod cap {
    /// Advanced SIMD (NEON).
    pub const NEON: u16 = 1;
    /// `sdot`/`udot` (Armv8.2 dot product).
    pub const DOTPROD: u16 = 2;
    /// `smmla`/`usmmla` (Armv8.6 int8 matrix multiply).
    pub const I8MM: u16 = 4;
    /// The 32-bit ARM DSP extension (`smlad`, saturating and SIMD32 ops).
    pub const DSP: u16 = 8;
    /// M-profile vector extension (Helium).
    pub const MVE: u16 = 16;
    /// A double-precision FPU (scalar `f64` in hardware).
    pub const FP64: u16 = 32;
    /// Fused multiply-add in hardware (VFPv4 and later).
    pub const FMA: u16 = 64;
}

use cap::*;

/// A set of [`cap`] bits.
pub type Caps = u16;

/// Architecture families: one CPU and feature table each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    X86_64,
    Aarch64,
    /// 32-bit ARMv7-A Linux, hard float.
    Armv7,
    /// Cortex-M4/M7: ARMv7E-M with DSP and FPU.
    ThumbV7em,
    /// Cortex-M33/M35P, and with `--cpu` the ARMv8.1-M cores (M52/M55/M85, Helium).
    ThumbV8mMain,
}

/// One supported target, as `qcc --print targets` lists it.
#[derive(Clone, Copy, Debug)]
pub struct TargetDesc {
    /// The spelling users pass to `--target` (normalized by LLVM before use).
    pub triple: &'static str,
    pub family: Family,
    pub about: &'static str,
    /// The CPU used when `--cpu` is not given (the architecture's baseline).
    pub default_cpu: &'static str,
    /// Features always enabled for this target, whatever the CPU.
    pub baseline_features: &'static str,
}

/// A CPU name LLVM accepts for a family, with its capabilities.
#[derive(Clone, Copy, Debug)]
pub struct CpuDesc {
    pub name: &'static str,
    pub caps: Caps,
}

/// A target feature users may pass as `+name` / `-name`.
#[derive(Clone, Copy, Debug)]
pub struct FeatureDesc {
    pub name: &'static str,
    pub about: &'static str,
    /// Capabilities it adds (`+`) or removes (`-`).
    pub caps: Caps,
    /// The target's ABI needs it (e.g. the FPU of a hard-float target): `-name` is refused.
    pub abi: bool,
    /// Only the CPU can bring it (e.g. an M-profile core's double-precision
    /// FPU or Helium): `+name` is refused, `-name` drops it.
    pub remove_only: bool,
}

/// The targets qcc supports, in the order `--print targets` shows them.
pub const TARGETS: &[TargetDesc] = &[
    TargetDesc {
        triple: "x86_64-unknown-linux-gnu",
        family: Family::X86_64,
        about: "x86-64 Linux (also -musl, macOS and Windows triples)",
        default_cpu: "x86-64",
        baseline_features: "",
    },
    TargetDesc {
        triple: "aarch64-unknown-linux-gnu",
        family: Family::Aarch64,
        about: "64-bit ARM Linux: Raspberry Pi 3/4/5, Jetson, Graviton (also -musl, -android, Apple)",
        default_cpu: "generic",
        baseline_features: "+neon",
    },
    TargetDesc {
        triple: "armv7-unknown-linux-gnueabihf",
        family: Family::Armv7,
        about: "32-bit ARMv7-A Linux, hard float, VFPv3-D32 + NEON: Raspberry Pi 2/3/4 in 32-bit mode",
        default_cpu: "generic",
        baseline_features: "+neon",
    },
    TargetDesc {
        triple: "thumbv7em-none-eabihf",
        family: Family::ThumbV7em,
        about: "bare-metal Cortex-M4F/M7F (DSP, hard float): STM32F4/F7/H7, nRF52",
        default_cpu: "cortex-m4",
        baseline_features: "",
    },
    TargetDesc {
        triple: "thumbv8m.main-none-eabihf",
        family: Family::ThumbV8mMain,
        about: "bare-metal Cortex-M33/M35P (DSP, hard float): STM32U5/L5, nRF53, RP2350; --cpu cortex-m55/m85 for Helium",
        default_cpu: "cortex-m33",
        baseline_features: "",
    },
];

/// The [`TargetDesc`] of a family.
pub fn target_of(family: Family) -> &'static TargetDesc {
    TARGETS
        .iter()
        .find(|t| t.family == family)
        .unwrap_or(&TARGETS[0])
}

/// x86-64 CPUs (LLVM's names; 32-bit-only CPUs left out). No capability bits:
/// x86 kernels rely on LLVM's own lowering.
const X86_CPUS: &str =
    "alderlake amdfam10 arrowlake arrowlake-s arrowlake_s athlon-fx athlon64 athlon64-sse3 \
    atom atom_sse4_2 atom_sse4_2_movbe barcelona bdver1 bdver2 bdver3 bdver4 bonnell \
    broadwell btver1 btver2 cannonlake cascadelake clearwaterforest cooperlake core-avx-i \
    core-avx2 core2 core_2_duo_sse4_1 core_2_duo_ssse3 core_2nd_gen_avx core_3rd_gen_avx \
    core_4th_gen_avx core_4th_gen_avx_tsx core_5th_gen_avx core_5th_gen_avx_tsx \
    core_aes_pclmulqdq core_i7_sse4_2 corei7 corei7-avx diamondrapids emeraldrapids generic \
    goldmont goldmont-plus goldmont_plus gracemont grandridge graniterapids graniterapids-d \
    graniterapids_d haswell icelake-client icelake-server icelake_client icelake_server \
    ivybridge k8 k8-sse3 knl knm lunarlake meteorlake mic_avx512 nehalem nocona novalake \
    opteron opteron-sse3 pantherlake penryn raptorlake rocketlake sandybridge sapphirerapids \
    sierraforest silvermont skx skylake skylake-avx512 skylake_avx512 slm tigerlake tremont \
    westmere wildcatlake x86-64 x86-64-v2 x86-64-v3 x86-64-v4 znver1 znver2 znver3 znver4 znver5";

/// The vector features a named x86-64 CPU implies that qcc's kernel
/// selection reads (LLVM enables them itself for the CPU; qcc must know them
/// to pick AVX2, AVX-512 or VNNI microkernels). Conservative: a CPU missing
/// here gets the baseline kernels, never an instruction it lacks.
pub fn x86_cpu_features(cpu: &str) -> &'static [&'static str] {
    const AVX2: &[&str] = &["+avx2", "+fma"];
    const AVX512: &[&str] = &["+avx2", "+fma", "+avx512f", "+avx512bw"];
    const VNNI: &[&str] = &["+avx2", "+fma", "+avx512f", "+avx512bw", "+avx512vnni"];
    const AMX: &[&str] = &[
        "+avx2",
        "+fma",
        "+avx512f",
        "+avx512bw",
        "+avx512vnni",
        "+amx-tile",
        "+amx-int8",
    ];
    match cpu {
        "haswell"
        | "core-avx2"
        | "core_4th_gen_avx"
        | "core_4th_gen_avx_tsx"
        | "broadwell"
        | "core_5th_gen_avx"
        | "core_5th_gen_avx_tsx"
        | "skylake"
        | "alderlake"
        | "raptorlake"
        | "meteorlake"
        | "arrowlake"
        | "arrowlake-s"
        | "arrowlake_s"
        | "lunarlake"
        | "pantherlake"
        | "gracemont"
        | "sierraforest"
        | "grandridge"
        | "clearwaterforest"
        | "bdver4"
        | "znver1"
        | "znver2"
        | "znver3"
        | "x86-64-v3" => AVX2,
        "skylake-avx512" | "skylake_avx512" | "skx" | "cannonlake" | "x86-64-v4" => AVX512,
        "cascadelake" | "cooperlake" | "icelake-client" | "icelake_client" | "icelake-server"
        | "icelake_server" | "tigerlake" | "rocketlake" | "znver4" | "znver5" => VNNI,
        "sapphirerapids" | "emeraldrapids" | "graniterapids" | "graniterapids-d"
        | "graniterapids_d" | "diamondrapids" => AMX,
        _ => &[],
    }
}

const D: Caps = DOTPROD;
const DM: Caps = DOTPROD | I8MM;

/// Every AArch64 CPU of LLVM 22 (all have NEON and FMA; see [`family_caps`]).
const AARCH64_CPUS: &[(&str, Caps)] = &[
    ("generic", 0),
    ("a64fx", 0),
    ("ampere1", DM),
    ("ampere1a", DM),
    ("ampere1b", DM),
    ("ampere1c", DM),
    ("apple-a7", 0),
    ("apple-a8", 0),
    ("apple-a9", 0),
    ("apple-a10", 0),
    ("apple-a11", 0),
    ("apple-a12", 0),
    ("apple-a13", D),
    ("apple-a14", D),
    ("apple-a15", DM),
    ("apple-a16", DM),
    ("apple-a17", DM),
    ("apple-a18", DM),
    ("apple-a19", DM),
    ("apple-m1", D),
    ("apple-m2", DM),
    ("apple-m3", DM),
    ("apple-m4", DM),
    ("apple-m5", DM),
    ("apple-s4", 0),
    ("apple-s5", 0),
    ("apple-s6", D),
    ("apple-s7", D),
    ("apple-s8", D),
    ("apple-s9", DM),
    ("apple-s10", DM),
    ("c1-nano", DM),
    ("c1-premium", DM),
    ("c1-pro", DM),
    ("c1-ultra", DM),
    ("carmel", 0),
    ("cobalt-100", DM),
    ("cortex-a320", DM),
    ("cortex-a34", 0),
    ("cortex-a35", 0),
    ("cortex-a53", 0),
    ("cortex-a55", D),
    ("cortex-a57", 0),
    ("cortex-a65", D),
    ("cortex-a65ae", D),
    ("cortex-a72", 0),
    ("cortex-a73", 0),
    ("cortex-a75", D),
    ("cortex-a76", D),
    ("cortex-a76ae", D),
    ("cortex-a77", D),
    ("cortex-a78", D),
    ("cortex-a78ae", D),
    ("cortex-a78c", D),
    ("cortex-a510", DM),
    ("cortex-a520", DM),
    ("cortex-a520ae", DM),
    ("cortex-a710", DM),
    ("cortex-a715", DM),
    ("cortex-a720", DM),
    ("cortex-a720ae", DM),
    ("cortex-a725", DM),
    ("cortex-r82", D),
    ("cortex-r82ae", D),
    ("cortex-x1", D),
    ("cortex-x1c", D),
    ("cortex-x2", DM),
    ("cortex-x3", DM),
    ("cortex-x4", DM),
    ("cortex-x925", DM),
    ("cyclone", 0),
    ("exynos-m3", 0),
    ("exynos-m4", D),
    ("exynos-m5", D),
    ("falkor", 0),
    ("fujitsu-monaka", DM),
    ("gb10", DM),
    ("grace", DM),
    ("kryo", 0),
    ("neoverse-512tvb", DM),
    ("neoverse-e1", D),
    ("neoverse-n1", D),
    ("neoverse-n2", DM),
    ("neoverse-n3", DM),
    ("neoverse-v1", DM),
    ("neoverse-v2", DM),
    ("neoverse-v3", DM),
    ("neoverse-v3ae", DM),
    ("olympus", DM),
    ("oryon-1", DM),
    ("saphira", D),
    ("thunderx", 0),
    ("thunderx2t99", 0),
    ("thunderx3t110", 0),
    ("thunderxt81", 0),
    ("thunderxt83", 0),
    ("thunderxt88", 0),
    ("tsv110", D),
];

/// ARMv7-A and ARMv8-A (AArch32) application CPUs. In LLVM 22 the ARMv7 cores
/// do not enable NEON by themselves (it is optional in silicon): the armv7
/// target's baseline `+neon` adds it. ARMv8 cores always have it.
const ARMV7_CPUS: &[(&str, Caps)] = &[
    ("generic", DSP | FP64),
    ("cortex-a5", DSP | FP64 | FMA),
    ("cortex-a7", DSP | FP64 | FMA),
    ("cortex-a8", DSP | FP64),
    ("cortex-a9", DSP | FP64),
    ("cortex-a12", DSP | FP64 | FMA),
    ("cortex-a15", DSP | FP64 | FMA),
    ("cortex-a17", DSP | FP64 | FMA),
    ("cortex-a32", NEON | DSP | FP64 | FMA),
    ("cortex-a35", NEON | DSP | FP64 | FMA),
    ("cortex-a53", NEON | DSP | FP64 | FMA),
    ("cortex-a55", NEON | DOTPROD | DSP | FP64 | FMA),
    ("cortex-a57", NEON | DSP | FP64 | FMA),
    ("cortex-a72", NEON | DSP | FP64 | FMA),
    ("cortex-a73", NEON | DSP | FP64 | FMA),
    ("cortex-a75", NEON | DOTPROD | DSP | FP64 | FMA),
    ("cortex-a76", NEON | DOTPROD | DSP | FP64 | FMA),
    ("cortex-a77", NEON | DOTPROD | DSP | FP64 | FMA),
    ("cortex-a78", NEON | DOTPROD | DSP | FP64 | FMA),
    ("krait", DSP | FP64 | FMA),
];

/// Cortex-M cores with an FPU (a hard-float target needs one). A v8.1-M core
/// on the v8-M Mainline target generates v8.1-M code (LLVM takes the
/// architecture from the CPU), with Helium (MVE) when the core has it.
const V7EM_CPUS: &[(&str, Caps)] = &[("cortex-m4", DSP | FMA), ("cortex-m7", DSP | FMA | FP64)];
const V8M_CPUS: &[(&str, Caps)] = &[
    ("cortex-m33", DSP | FMA),
    ("cortex-m35p", DSP | FMA),
    ("star-mc1", DSP | FMA),
    ("cortex-m52", DSP | FMA | FP64 | MVE),
    ("cortex-m55", DSP | FMA | FP64 | MVE),
    ("cortex-m85", DSP | FMA | FP64 | MVE),
    ("star-mc3", DSP | FMA | FP64 | MVE),
];

/// Capabilities every CPU of a family has.
pub fn family_caps(family: Family) -> Caps {
    match family {
        Family::Aarch64 => NEON | FMA | FP64,
        _ => 0,
    }
}

/// The CPUs of a family, in the order `--print cpus` shows them.
pub fn cpus(family: Family) -> Vec<CpuDesc> {
    let table: &[(&str, Caps)] = match family {
        Family::X86_64 => {
            return X86_CPUS
                .split_whitespace()
                .map(|name| CpuDesc { name, caps: 0 })
                .collect()
        }
        Family::Aarch64 => AARCH64_CPUS,
        Family::Armv7 => ARMV7_CPUS,
        Family::ThumbV7em => V7EM_CPUS,
        Family::ThumbV8mMain => V8M_CPUS,
    };
    table
        .iter()
        .map(|&(name, caps)| CpuDesc {
            name,
            caps: caps | family_caps(family),
        })
        .collect()
}

const fn f(name: &'static str, about: &'static str, caps: Caps) -> FeatureDesc {
    FeatureDesc {
        name,
        about,
        caps,
        abi: false,
        remove_only: false,
    }
}

/// A feature the target's ABI needs: it cannot be disabled.
const fn abi(name: &'static str, about: &'static str, caps: Caps) -> FeatureDesc {
    FeatureDesc {
        abi: true,
        ..f(name, about, caps)
    }
}

/// A feature only the CPU brings: it can only be disabled.
const fn cpu(name: &'static str, about: &'static str, caps: Caps) -> FeatureDesc {
    FeatureDesc {
        remove_only: true,
        ..f(name, about, caps)
    }
}

const X86_FEATURES: &[FeatureDesc] = &[
    abi("sse2", "SSE2 (x86-64 baseline)", 0),
    f("sse3", "SSE3", 0),
    f("ssse3", "SSSE3", 0),
    f("sse4.1", "SSE4.1", 0),
    f("sse4.2", "SSE4.2", 0),
    f("popcnt", "POPCNT", 0),
    f("avx", "AVX", 0),
    f("avx2", "AVX2", 0),
    f("fma", "FMA3", FMA),
    f("f16c", "half-precision conversions", 0),
    f("bmi", "BMI", 0),
    f("bmi2", "BMI2", 0),
    f("lzcnt", "LZCNT", 0),
    f("movbe", "MOVBE", 0),
    f("avx512f", "AVX-512 foundation", 0),
    f("avx512cd", "AVX-512 conflict detection", 0),
    f("avx512bw", "AVX-512 byte and word", 0),
    f("avx512dq", "AVX-512 doubleword and quadword", 0),
    f("avx512vl", "AVX-512 vector length", 0),
    f("avx512vnni", "AVX-512 VNNI (int8 dot products)", 0),
    f("avx512bf16", "AVX-512 bfloat16", 0),
    f("avx512fp16", "AVX-512 float16", 0),
    f("avxvnni", "AVX-VNNI (int8 dot products)", 0),
    f("avxvnniint8", "AVX-VNNI-INT8", 0),
    f("amx-tile", "AMX tile registers", 0),
    f("amx-int8", "AMX int8 tile dot products", 0),
];

const AARCH64_FEATURES: &[FeatureDesc] = &[
    abi(
        "neon",
        "Advanced SIMD (always on: the AArch64 ABI needs it)",
        NEON,
    ),
    abi(
        "fp-armv8",
        "floating point (always on: the AArch64 ABI needs it)",
        0,
    ),
    f(
        "dotprod",
        "int8 dot product: sdot/udot (Armv8.2, optional; Cortex-A55/A75/A76+)",
        DOTPROD,
    ),
    f(
        "i8mm",
        "int8 matrix multiply: smmla/usmmla (Armv8.6; Cortex-A510/A710/X2+, Neoverse V1+)",
        I8MM,
    ),
    f("fullfp16", "half-precision arithmetic", 0),
    f(
        "fp16fml",
        "half-precision multiply-accumulate into single",
        0,
    ),
    f("bf16", "bfloat16", 0),
    f("sve", "Scalable Vector Extension", 0),
    f("sve2", "Scalable Vector Extension 2", 0),
    f("crc", "CRC32 instructions", 0),
    f("lse", "large system extension atomics", 0),
    f("rdm", "rounding doubling multiply-add", 0),
    f("rcpc", "release-consistent loads", 0),
    f("aes", "AES instructions", 0),
    f("sha2", "SHA1/SHA256 instructions", 0),
];

const ARMV7_FEATURES: &[FeatureDesc] = &[
    f(
        "neon",
        "Advanced SIMD (on by default for this target; -neon for NEON-less chips)",
        NEON,
    ),
    abi("vfp3", "VFPv3 (the hard-float ABI needs an FPU)", FP64),
    f("d32", "32 double registers (implied by NEON)", 0),
    f("vfp4", "VFPv4: fused multiply-add (Cortex-A5/A7/A15+)", FMA),
    f("fp16", "half-precision conversions", 0),
    f("fullfp16", "half-precision arithmetic (Armv8.2)", 0),
    f(
        "dotprod",
        "int8 dot product: vsdot/vudot (Armv8.2; Cortex-A55/A75+ in 32-bit mode)",
        DOTPROD,
    ),
    f("i8mm", "int8 matrix multiply: vsmmla (Armv8.6)", I8MM),
    f("crc", "CRC32 instructions", 0),
    f("aes", "AES instructions", 0),
    f("sha2", "SHA1/SHA256 instructions", 0),
];

const V7EM_FEATURES: &[FeatureDesc] = &[
    abi(
        "vfp4d16sp",
        "single-precision FPv4 (the hard-float ABI needs it)",
        FMA,
    ),
    abi("dsp", "DSP extension (part of ARMv7E-M)", DSP),
    cpu(
        "fp64",
        "double-precision FPU (Cortex-M7; -fp64 for an M7 with a single-precision FPU)",
        FP64,
    ),
];

const V8M_FEATURES: &[FeatureDesc] = &[
    abi(
        "fp-armv8d16sp",
        "single-precision FPv5 (the hard-float ABI needs it)",
        FMA,
    ),
    cpu(
        "dsp",
        "DSP extension (optional in ARMv8-M: -dsp for a core without it)",
        DSP,
    ),
    cpu("fp64", "double-precision FPU (v8.1-M cores)", FP64),
    cpu("mve", "Helium integer vectors (v8.1-M cores)", MVE),
    cpu("mve.fp", "Helium float vectors (v8.1-M cores)", MVE),
];

/// The features users may pass for a family.
pub fn features(family: Family) -> &'static [FeatureDesc] {
    match family {
        Family::X86_64 => X86_FEATURES,
        Family::Aarch64 => AARCH64_FEATURES,
        Family::Armv7 => ARMV7_FEATURES,
        Family::ThumbV7em => V7EM_FEATURES,
        Family::ThumbV8mMain => V8M_FEATURES,
    }
}

/// Names of the capability bits in `caps`, e.g. `["neon", "dotprod"]`.
pub fn cap_names(caps: Caps) -> Vec<&'static str> {
    [
        (NEON, "neon"),
        (DOTPROD, "dotprod"),
        (I8MM, "i8mm"),
        (DSP, "dsp"),
        (MVE, "mve"),
        (FP64, "fp64"),
        (FMA, "fma"),
    ]
    .into_iter()
    .filter(|(bit, _)| caps & bit != 0)
    .map(|(_, n)| n)
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_are_unique_and_defaults_listed() {
        for t in TARGETS {
            let cpus = cpus(t.family);
            let names: HashSet<_> = cpus.iter().map(|c| c.name).collect();
            assert_eq!(names.len(), cpus.len(), "{}: duplicate CPU", t.triple);
            assert!(names.contains(t.default_cpu), "{}", t.triple);
            let feats: HashSet<_> = features(t.family).iter().map(|f| f.name).collect();
            assert_eq!(feats.len(), features(t.family).len(), "{}", t.triple);
            for b in t.baseline_features.split(',').filter(|s| !s.is_empty()) {
                assert!(feats.contains(&b[1..]), "{}: baseline {b}", t.triple);
            }
        }
    }

    #[test]
    fn baselines_lack_optional_extensions() {
        // The default CPU of every target must not promise dotprod/i8mm/MVE.
        for t in TARGETS {
            let c = cpus(t.family)
                .into_iter()
                .find(|c| c.name == t.default_cpu)
                .expect("listed");
            assert_eq!(c.caps & (DOTPROD | I8MM | MVE), 0, "{}", t.triple);
        }
    }

    #[test]
    fn cap_names_follow_bits() {
        assert_eq!(cap_names(NEON | I8MM), vec!["neon", "i8mm"]);
        assert!(cap_names(0).is_empty());
    }
}
