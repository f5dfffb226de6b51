//! The text of `qcc --print targets|cpus|features`: the supported targets,
//! and the CPUs and features of one target (the host's without `--target`).

use crate::target::{self, host_triple};
use crate::target_table::{self as table, cap_names, TARGETS};
use crate::CodegenError;

/// What `--print` lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrintKind {
    Targets,
    Cpus,
    Features,
}

/// The listing for `kind`; `target` picks the target for CPUs and features.
pub fn print_info(kind: PrintKind, target: Option<&str>) -> Result<String, CodegenError> {
    let mut out = String::new();
    match kind {
        PrintKind::Targets => {
            out.push_str("Targets (--target TRIPLE; without --cpu, each target's baseline CPU):\n");
            let w = TARGETS.iter().map(|t| t.triple.len()).max().unwrap_or(0);
            for t in TARGETS {
                out.push_str(&format!(
                    "  {:w$}  {} [default cpu {}{}]\n",
                    t.triple,
                    t.about,
                    t.default_cpu,
                    if t.baseline_features.is_empty() {
                        String::new()
                    } else {
                        format!(" {}", t.baseline_features)
                    }
                ));
            }
            out.push_str(&format!(
                "Host: {} (the default target, with the host CPU)\n",
                host_triple()
            ));
        }
        PrintKind::Cpus => {
            let (triple, desc, bare_metal) = target::resolve_target(target)?;
            out.push_str(&format!(
                "CPUs for {triple} (--cpu NAME; default {}{}), with the capabilities qcc's kernels use:\n",
                desc.default_cpu,
                if target.is_none() { " with --target, the host CPU without" } else { "" }
            ));
            let cpus = table::cpus(desc.family);
            let w = cpus.iter().map(|c| c.name.len()).max().unwrap_or(0);
            for c in &cpus {
                let line = format!("  {:w$}  {}", c.name, cap_names(c.caps).join(" "));
                out.push_str(line.trim_end());
                out.push('\n');
            }
            if !bare_metal {
                out.push_str(&format!(
                    "  {:w$}  the host CPU (when {triple} is the host's architecture)\n",
                    "native"
                ));
            }
        }
        PrintKind::Features => {
            let (triple, desc, _) = target::resolve_target(target)?;
            out.push_str(&format!(
                "Features for {triple} (--features +NAME,-NAME{}):\n",
                if desc.baseline_features.is_empty() {
                    String::new()
                } else {
                    format!("; always on: {}", desc.baseline_features)
                }
            ));
            let feats = table::features(desc.family);
            let w = feats.iter().map(|f| f.name.len()).max().unwrap_or(0) + 1;
            for f in feats {
                let rule = if f.abi {
                    " [cannot be disabled]"
                } else if f.remove_only {
                    " [comes with the CPU; can only be disabled]"
                } else {
                    ""
                };
                out.push_str(&format!(
                    "  {:w$}  {}{rule}\n",
                    format!("+{}", f.name),
                    f.about
                ));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_targets_cpus_and_features() {
        let t = print_info(PrintKind::Targets, None).expect("targets");
        for want in [
            "aarch64-unknown-linux-gnu",
            "thumbv7em-none-eabihf",
            "Host:",
        ] {
            assert!(t.contains(want), "{t}");
        }
        let c = print_info(PrintKind::Cpus, Some("aarch64-linux-gnu")).expect("cpus");
        assert!(
            c.contains("cortex-a76") && c.contains("dotprod") && c.contains("native"),
            "{c}"
        );
        let m = print_info(PrintKind::Cpus, Some("thumbv7em-none-eabihf")).expect("cpus");
        assert!(
            m.contains("cortex-m7") && !m.contains("native") && !m.contains("cortex-a"),
            "{m}"
        );
        let f = print_info(PrintKind::Features, Some("aarch64-unknown-linux-gnu")).expect("f");
        assert!(f.contains("+i8mm") && f.contains("always on: +neon"), "{f}");
        assert!(print_info(PrintKind::Cpus, Some("mips-linux-gnu")).is_err());
    }
}
