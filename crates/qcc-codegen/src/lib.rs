//! LLVM backend of qcc. Only this crate sees inkwell.
//!
//! [`compile`] plans memory ([`plan_memory`]), lowers the graph to
//! an LLVM module (`lower`: weights, one internal function per node, the
//! exported `P_run` / `P_workspace_size`), optimizes it with the `-O3`
//! pipeline and emits an object file plus a C header (`header`).
//! Kernels (`kernels/`) are written against [`cx::KernelCx`]; see
//! `KERNEL_API.md`.

pub mod cx;
mod header;
pub mod kernels;
pub mod loops;
mod lower;
pub mod math;
pub mod mmm;
pub mod plan_memory;
pub mod portable;
pub mod stats;
mod target;
mod target_list;
pub mod target_table;

use inkwell::context::Context;
use inkwell::passes::PassBuilderOptions;
use inkwell::targets::{FileType, TargetTriple};
use qcc_ir::Graph;
use thiserror::Error;

pub use header::{HeaderInfo, Port};
pub use stats::{StackUse, Stats};
pub use target::{resolve as resolve_target, TargetInfo, SUPPORTED_ARCHES};
pub use target_list::{print_info, PrintKind};

#[derive(Debug, Error)]
pub enum CodegenError {
    /// An honest gap: the op or configuration has no lowering yet.
    #[error("node '{node}' ({op}): unsupported by the backend: {msg}")]
    Unsupported {
        node: String,
        op: &'static str,
        msg: String,
    },
    #[error("target: {0}")]
    Target(String),
    /// The model does not fit the target's address space.
    #[error("{0}")]
    TooLarge(String),
    /// Always a qcc bug.
    #[error("internal error: LLVM rejected the generated module: {0}")]
    Llvm(String),
    /// The graph or options handed to the backend are invalid (a qcc bug or a bad option).
    #[error("invalid backend input: {0}")]
    Graph(String),
}

/// What to generate and for which machine.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Target triple; `None` means the host. Normalized before use.
    pub target: Option<String>,
    /// CPU name; `None` means the host CPU when not cross-compiling, else the triple's baseline.
    pub cpu: Option<String>,
    /// Extra LLVM target features, e.g. `+dotprod,+i8mm`.
    pub features: Option<String>,
    /// Symbol prefix `P` (a C identifier): exported symbols are `P_run`, `P_workspace_size`.
    pub prefix: String,
    pub emit_asm: bool,
    pub emit_llvm_ir: bool,
    /// Also export `P_run_profiled`, which times every node with a clock
    /// function the caller passes (the header lists the nodes).
    pub profile: bool,
    /// Keep 3×3 stride-1 float convolutions off Winograd F(2×2, 3×3)
    /// (`mmm::winograd`): every float convolution then sums its products in
    /// the direct order.
    pub no_winograd: bool,
}

/// Everything `compile` produces.
#[derive(Clone, Debug, Default)]
pub struct Artifacts {
    pub object: Vec<u8>,
    pub header: String,
    pub asm: Option<String>,
    /// The optimized LLVM IR.
    pub llvm_ir: Option<String>,
    pub workspace_size: usize,
    /// The normalized target triple the object was generated for.
    pub triple: String,
    /// The resolved target: triple, CPU, features and capabilities.
    pub target: TargetInfo,
    /// Flash, RAM and stack use (`qcc --stats`).
    pub stats: Stats,
}

/// The largest object a target with `ptr_bits`-bit pointers can hold: C's
/// `PTRDIFF_MAX` there.
fn addressable(ptr_bits: u32) -> u128 {
    (1u128 << (ptr_bits.clamp(16, 64) - 1)) - 1
}

/// Every tensor of `g`, and all its weights together, must fit the target's
/// address space (computed without overflow); the error names the tensor.
fn check_sizes(g: &Graph, triple: &str, ptr_bits: u32) -> Result<(), CodegenError> {
    let limit = addressable(ptr_bits);
    let bytes = |t: &qcc_ir::TensorType| {
        t.shape
            .iter()
            .try_fold(t.dtype.size() as u128, |a, &d| a.checked_mul(d as u128))
            .unwrap_or(u128::MAX)
    };
    let too_big = |what: String, n: u128| {
        let n = if n == u128::MAX {
            "more than 2^128".to_string()
        } else {
            n.to_string()
        };
        CodegenError::TooLarge(format!(
            "{what} needs {n} bytes, more than a {ptr_bits}-bit {triple} can address ({limit})"
        ))
    };
    let mut weights: u128 = 0;
    for id in g
        .topo_order()
        .map_err(|e| CodegenError::Graph(e.to_string()))?
    {
        let n = g.node(id);
        for t in &n.outputs {
            let b = bytes(t);
            if b > limit {
                let what = match n.op {
                    qcc_ir::Op::Input { .. } => "input",
                    qcc_ir::Op::Const { .. } => "constant",
                    _ => "tensor",
                };
                return Err(too_big(format!("{what} '{}' ({t})", n.name), b));
            }
            if matches!(n.op, qcc_ir::Op::Const { .. }) {
                weights = weights.saturating_add(b);
            }
        }
    }
    if weights > limit {
        return Err(too_big("the weights together".into(), weights));
    }
    Ok(())
}

fn is_c_identifier(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(f) if f.is_ascii_alphabetic() || f == '_')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
}

/// Compiles a verified graph (after the pass pipeline) into an object file and C header.
pub fn compile(g: &Graph, opts: &Options) -> Result<Artifacts, CodegenError> {
    if !is_c_identifier(&opts.prefix) {
        return Err(CodegenError::Graph(format!(
            "symbol prefix '{}' is not a C identifier",
            opts.prefix
        )));
    }
    let chosen = target::choose(opts)?;
    let tm = &chosen.machine;
    let td = tm.get_target_data();

    let ctx = Context::create();
    let name = if g.name.is_empty() { "model" } else { &g.name };
    let module = ctx.create_module(name);
    module.set_triple(&TargetTriple::create(&chosen.triple));
    module.set_data_layout(&td.get_data_layout());

    let facts = portable::TargetFacts {
        ptr_bits: td.get_pointer_byte_size(None) * 8,
        arm32: chosen.triple.starts_with("arm") || chosen.triple.starts_with("thumb"),
        dotprod: chosen.triple.starts_with("aarch64")
            && chosen.info.has(target_table::cap::DOTPROD),
        avx512vnni: chosen.triple.starts_with("x86_64")
            && target::feature_on(&chosen.info.features, "avx512vnni")
            && target::feature_on(&chosen.info.features, "avx512bw"),
        amx: chosen.triple.starts_with("x86_64")
            && chosen.triple.contains("linux")
            && target::feature_on(&chosen.info.features, "amx-tile")
            && target::feature_on(&chosen.info.features, "amx-int8")
            && target::feature_on(&chosen.info.features, "avx512bw")
            && target::feature_on(&chosen.info.features, "avx512vnni")
            && (!chosen.info.host_cpu || mmm::amx::host_grants_amx()),
        simd: mmm::Simd::of_target(&chosen.triple, &chosen.info),
        bare_metal: chosen.info.bare_metal,
        winograd: !opts.no_winograd,
        small_weights: false,
        stored_bits: 8,
    };
    check_sizes(g, &chosen.triple, facts.ptr_bits)?;
    let plan = plan_memory::plan_with_scratch(g, &|id| mmm::node_scratch(g, id, &facts))
        .map_err(|e| CodegenError::Graph(format!("memory planning failed: {e}")))?;
    let limit = addressable(facts.ptr_bits);
    if plan.workspace_size as u128 > limit {
        return Err(CodegenError::TooLarge(format!(
            "the workspace needs {} bytes, more than a {}-bit {} can address ({limit})",
            plan.workspace_size, facts.ptr_bits, chosen.triple
        )));
    }
    let nodes = lower::Lowering::new(&ctx, &module, g, &plan, &opts.prefix, &td, facts)
        .run(opts.profile)?;
    let amx = mmm::amx::used_in(&module);
    module
        .verify()
        .map_err(|e| CodegenError::Llvm(e.to_string()))?;
    module
        .run_passes("default<O3>", tm, PassBuilderOptions::create())
        .map_err(|e| CodegenError::Llvm(format!("optimization failed: {e}")))?;

    // Print the IR and clone for assembly before object emission: codegen
    // preparation rewrites the module in place.
    let llvm_ir = opts
        .emit_llvm_ir
        .then(|| module.print_to_string().to_string());
    let for_asm = opts.emit_asm.then(|| module.clone());
    let entry = format!("{}_run", opts.prefix);
    let (object, stack) = stats::emit_measured(&ctx, &module, &entry, || {
        Ok(tm
            .write_to_memory_buffer(&module, FileType::Object)
            .map_err(|e| CodegenError::Llvm(format!("object emission failed: {e}")))?
            .as_slice()
            .to_vec())
    })?;
    let mut stats = Stats {
        workspace_bytes: plan.workspace_size as u64,
        stack,
        ..Default::default()
    };
    stats::add_section_sizes(&object, &mut stats)?;
    let asm = match for_asm {
        Some(m) => {
            let buf = tm
                .write_to_memory_buffer(&m, FileType::Assembly)
                .map_err(|e| CodegenError::Llvm(format!("assembly emission failed: {e}")))?;
            Some(String::from_utf8_lossy(buf.as_slice()).into_owned())
        }
        None => None,
    };

    // 8-bit inputs and outputs (`--io int8`): the header states their
    // parameters, from their types, as `PU_INPUT<i>_SCALE` / `_ZERO_POINT`.
    let port = |name: &str, v| Port {
        name: name.to_string(),
        ty: g.value_type(v).clone(),
        q: g.value_type(v).quant,
    };
    let inputs = g
        .inputs()
        .iter()
        .map(|&id| port(&g.node(id).name, qcc_ir::ValueId::of(id)))
        .collect();
    let outputs = g.outputs.iter().map(|o| port(&o.name, o.value)).collect();
    let header = header::render(&HeaderInfo {
        prefix: &opts.prefix,
        model_name: name,
        workspace_size: plan.workspace_size,
        inputs,
        outputs,
        profiled: opts.profile.then_some(nodes),
        amx,
    });
    Ok(Artifacts {
        object,
        header,
        asm,
        llvm_ir,
        workspace_size: plan.workspace_size,
        triple: chosen.triple,
        target: chosen.info,
        stats,
    })
}
