//! What a compiled model costs on the device (`qcc --stats`): flash (code
//! and read-only data, from the object's sections), RAM (the workspace, plus
//! any writable data, which qcc never emits) and the deepest stack use.
//!
//! Stack: every function gets LLVM's `"warn-stack-size"="0"` attribute just
//! before object emission, so LLVM's prologue/epilogue inserter reports each
//! frame size (`stack frame size (N) exceeds limit (0) in function 'f'`)
//! through the context's diagnostic handler, which [`emit_measured`] installs
//! for the duration of the emission. The call graph of the optimized module
//! then gives the deepest chain from `P_run`. Calls to `memcpy`/`memset`
//! (whose frames LLVM cannot know) are listed, not counted.
//!
//! The handler also turns LLVM error diagnostics into errors instead of
//! LLVM's default of printing them and exiting the process.

use crate::CodegenError;
use inkwell::attributes::AttributeLoc;
use inkwell::context::Context;
use inkwell::llvm_sys::core::{
    LLVMContextSetDiagnosticHandler, LLVMDisposeMessage, LLVMGetDiagInfoDescription,
    LLVMGetDiagInfoSeverity,
};
use inkwell::llvm_sys::prelude::LLVMDiagnosticInfoRef;
use inkwell::llvm_sys::LLVMDiagnosticSeverity;
use inkwell::memory_buffer::MemoryBuffer;
use inkwell::module::Module;
use inkwell::values::{CallSiteValue, FunctionValue, InstructionOpcode};
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{c_void, CStr};

/// Sizes in bytes, as `--stats` reports them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Machine code and unwind tables (`.text*`, `.ARM.exidx*`).
    pub code_bytes: u64,
    /// Read-only data: the weights and constant tables (`.rodata*`).
    pub rodata_bytes: u64,
    /// Initialized writable data (`.data*`): flash and RAM. qcc emits none.
    pub data_bytes: u64,
    /// Zero-initialized and thread-local data (`.bss*`, `.tbss`): RAM. qcc emits none.
    pub bss_bytes: u64,
    /// The workspace the caller provides.
    pub workspace_bytes: u64,
    /// The deepest stack use LLVM reports, when it reported frame sizes.
    pub stack: Option<StackUse>,
}

impl Stats {
    /// Bytes of flash (or other read-only memory) the model occupies.
    pub fn flash_bytes(&self) -> u64 {
        self.code_bytes + self.rodata_bytes + self.data_bytes
    }
    /// Bytes of RAM besides the stack.
    pub fn ram_bytes(&self) -> u64 {
        self.workspace_bytes + self.data_bytes + self.bss_bytes
    }
}

/// The deepest chain of calls from the entry point, with each frame size.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StackUse {
    pub deepest_bytes: u64,
    /// `(function, frame bytes)` from the entry point down.
    pub path: Vec<(String, u64)>,
    /// External functions called anywhere (e.g. `memcpy`), not counted.
    pub external_calls: Vec<String>,
}

/// Adds the sizes of an object file's allocatable sections to `s`, by name
/// (ELF, Mach-O and COFF spellings).
pub fn add_section_sizes(object: &[u8], s: &mut Stats) -> Result<(), CodegenError> {
    let buf = MemoryBuffer::create_from_memory_range(object, "model.o");
    let bin = buf
        .create_binary_file(None)
        .map_err(|e| CodegenError::Llvm(format!("cannot read back the object: {e}")))?;
    let mut sections = bin
        .get_sections()
        .ok_or_else(|| CodegenError::Llvm("the object has no section table".into()))?;
    while let Some(sec) = sections.next_section() {
        let name = sec
            .get_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let size = sec.get_size();
        match classify_section(&name) {
            Some(SectionKind::Code) => s.code_bytes += size,
            Some(SectionKind::ReadOnly) => s.rodata_bytes += size,
            Some(SectionKind::Data) => s.data_bytes += size,
            Some(SectionKind::Bss) => s.bss_bytes += size,
            None => {}
        }
    }
    Ok(())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SectionKind {
    Code,
    ReadOnly,
    Data,
    Bss,
}

fn classify_section(name: &str) -> Option<SectionKind> {
    let has = |prefixes: &[&str]| prefixes.iter().any(|p| name.starts_with(p));
    if has(&[
        ".text",
        ".ARM.exidx",
        ".ARM.extab",
        ".eh_frame",
        "__text",
        ".pdata",
        ".xdata",
    ]) {
        Some(SectionKind::Code)
    } else if has(&[
        ".rodata",
        ".rdata",
        "__const",
        "__literal",
        "__cstring",
        ".srodata",
    ]) {
        Some(SectionKind::ReadOnly)
    } else if has(&[".data", ".tdata", "__data", ".sdata"]) {
        Some(SectionKind::Data)
    } else if has(&[".bss", ".tbss", "__bss", "__common", ".sbss"]) {
        Some(SectionKind::Bss)
    } else {
        None
    }
}

/// What the diagnostic handler collects during emission.
#[derive(Default)]
struct Collected {
    frames: BTreeMap<String, u64>,
    errors: Vec<String>,
}

/// Parses LLVM's `… stack frame size (N) exceeds limit (M) in function 'f'`.
fn parse_frame_diag(msg: &str) -> Option<(String, u64)> {
    let rest = &msg[msg.find("stack frame size (")? + "stack frame size (".len()..];
    let size: u64 = rest[..rest.find(')')?].trim().parse().ok()?;
    let end = msg.rfind('\'')?;
    let start = msg[..end].rfind('\'')? + 1;
    Some((msg[start..end].to_string(), size))
}

extern "C" fn on_diagnostic(info: LLVMDiagnosticInfoRef, state: *mut c_void) {
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        if info.is_null() || state.is_null() {
            return;
        }
        // SAFETY: `state` is the `Collected` that `emit_measured` keeps alive
        // (and exclusively lends to LLVM) while the handler is installed.
        let state = unsafe { &mut *(state as *mut Collected) };
        // SAFETY: LLVM passes a valid diagnostic; the description is a
        // malloc'ed C string that we own and dispose of.
        let (severity, text) = unsafe {
            let sev = LLVMGetDiagInfoSeverity(info);
            let p = LLVMGetDiagInfoDescription(info);
            if p.is_null() {
                return;
            }
            let text = CStr::from_ptr(p).to_string_lossy().into_owned();
            LLVMDisposeMessage(p);
            (sev, text)
        };
        if let Some((f, n)) = parse_frame_diag(&text) {
            state.frames.insert(f, n);
        } else if severity == LLVMDiagnosticSeverity::LLVMDSError {
            state.errors.push(text);
        }
    }));
}

/// Callees of every function defined in `module`: (defined callees, external callees).
fn call_graph(module: &Module<'_>) -> BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)> {
    let mut g = BTreeMap::new();
    for f in module.get_functions() {
        if f.count_basic_blocks() == 0 {
            continue;
        }
        let (mut inner, mut outer) = (BTreeSet::new(), BTreeSet::new());
        for bb in f.get_basic_block_iter() {
            let mut inst = bb.get_first_instruction();
            while let Some(i) = inst {
                if i.get_opcode() == InstructionOpcode::Call {
                    if let Some(callee) = CallSiteValue::try_from(i)
                        .ok()
                        .and_then(|c| c.get_called_fn_value())
                    {
                        let name = callee.get_name().to_string_lossy().into_owned();
                        if callee.count_basic_blocks() > 0 {
                            inner.insert(name);
                        } else if let Some(lib) = library_name(&name) {
                            outer.insert(lib.to_string());
                        } else if !name.starts_with("llvm.") {
                            outer.insert(name);
                        }
                    }
                }
                inst = i.get_next_instruction();
            }
        }
        g.insert(f.get_name().to_string_lossy().into_owned(), (inner, outer));
    }
    g
}

/// The library routine an intrinsic may become a call to.
fn library_name(intrinsic: &str) -> Option<&'static str> {
    if intrinsic.starts_with("llvm.memcpy") {
        Some("memcpy")
    } else if intrinsic.starts_with("llvm.memmove") {
        Some("memmove")
    } else if intrinsic.starts_with("llvm.memset") {
        Some("memset")
    } else {
        None
    }
}

fn deepest(
    f: &str,
    graph: &BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)>,
    frames: &BTreeMap<String, u64>,
    visiting: &mut BTreeSet<String>,
) -> Vec<(String, u64)> {
    let own = (f.to_string(), frames.get(f).copied().unwrap_or(0));
    if !visiting.insert(f.to_string()) {
        return vec![own];
    }
    let mut best: Vec<(String, u64)> = vec![];
    if let Some((callees, _)) = graph.get(f) {
        for c in callees {
            let p = deepest(c, graph, frames, visiting);
            let total = |p: &[(String, u64)]| p.iter().map(|x| x.1).sum::<u64>();
            if total(&p) > total(&best) || best.is_empty() {
                best = p;
            }
        }
    }
    visiting.remove(f);
    let mut path = vec![own];
    path.extend(best);
    path
}

/// Runs `emit` (the object emission of `module`) while collecting LLVM's
/// frame sizes; returns its result and the deepest stack use from `entry`.
/// LLVM error diagnostics raised during emission become an error.
pub fn emit_measured<T>(
    ctx: &Context,
    module: &Module<'_>,
    entry: &str,
    emit: impl FnOnce() -> Result<T, CodegenError>,
) -> Result<(T, Option<StackUse>), CodegenError> {
    let graph = call_graph(module);
    let attr = ctx.create_string_attribute("warn-stack-size", "0");
    let defined: Vec<FunctionValue> = module
        .get_functions()
        .filter(|f| f.count_basic_blocks() > 0)
        .collect();
    for f in &defined {
        f.add_attribute(AttributeLoc::Function, attr);
    }
    let mut state = Collected::default();
    // SAFETY: `state` outlives the emission, and the handler is removed
    // before `state` goes out of scope.
    unsafe {
        LLVMContextSetDiagnosticHandler(
            ctx.raw(),
            Some(on_diagnostic),
            &mut state as *mut Collected as *mut c_void,
        );
    }
    let result = emit();
    // SAFETY: resets the handler installed above.
    unsafe { LLVMContextSetDiagnosticHandler(ctx.raw(), None, std::ptr::null_mut()) };
    for f in &defined {
        f.remove_string_attribute(AttributeLoc::Function, "warn-stack-size");
    }
    let value = result?;
    if !state.errors.is_empty() {
        return Err(CodegenError::Llvm(state.errors.join("; ")));
    }
    if !graph.contains_key(entry) {
        return Ok((value, None));
    }
    let path = deepest(entry, &graph, &state.frames, &mut BTreeSet::new());
    let external: BTreeSet<String> = graph.values().flat_map(|(_, o)| o.clone()).collect();
    Ok((
        value,
        Some(StackUse {
            deepest_bytes: path.iter().map(|p| p.1).sum(),
            path,
            external_calls: external.into_iter().collect(),
        }),
    ))
}

/// The `--stats` report, one fact per line.
pub fn render(s: &Stats, target: &crate::TargetInfo) -> String {
    let cpu = if target.host_cpu {
        format!("host cpu {} with all its features", target.cpu)
    } else if target.features.is_empty() {
        format!("cpu {}", target.cpu)
    } else {
        format!("cpu {}, features {}", target.cpu, target.features)
    };
    let mut out = format!("target: {} ({cpu})\n", target.triple);
    out.push_str(&format!(
        "flash: {} bytes (code {}, read-only data and weights {}{})\n",
        s.flash_bytes(),
        s.code_bytes,
        s.rodata_bytes,
        if s.data_bytes > 0 {
            format!(", initialized data {}", s.data_bytes)
        } else {
            String::new()
        }
    ));
    out.push_str(&format!(
        "ram: {} bytes (workspace {}{}) plus the stack\n",
        s.ram_bytes(),
        s.workspace_bytes,
        if s.data_bytes + s.bss_bytes > 0 {
            format!(", static data {}", s.data_bytes + s.bss_bytes)
        } else {
            String::new()
        }
    ));
    match &s.stack {
        Some(st) => {
            let chain: Vec<String> = st.path.iter().map(|(f, n)| format!("{f} {n}")).collect();
            out.push_str(&format!(
                "stack: {} bytes deepest, as LLVM reports frames ({}){}\n",
                st.deepest_bytes,
                chain.join(" -> "),
                if st.external_calls.is_empty() {
                    String::new()
                } else {
                    format!(", plus {}'s own frames", st.external_calls.join("/"))
                }
            ));
        }
        None => out.push_str("stack: not reported by LLVM\n"),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_llvm_frame_diagnostics() {
        assert_eq!(
            parse_frame_diag(
                "<unknown>:0:0: stack frame size (48) exceeds limit (0) in function 'm.n3.conv'"
            ),
            Some(("m.n3.conv".to_string(), 48))
        );
        assert_eq!(
            parse_frame_diag("stack frame size (1024) exceeds limit (0) in 'f'"),
            Some(("f".to_string(), 1024))
        );
        assert_eq!(parse_frame_diag("some other warning 'x'"), None);
        assert_eq!(parse_frame_diag("stack frame size (x) in 'f'"), None);
    }

    #[test]
    fn classifies_sections() {
        use SectionKind::*;
        for (n, k) in [
            (".text", Some(Code)),
            (".text.m_run", Some(Code)),
            (".ARM.exidx.text", Some(Code)),
            (".rodata.cst16", Some(ReadOnly)),
            (".rodata.str1.1", Some(ReadOnly)),
            ("__const", Some(ReadOnly)),
            (".data.rel.ro", Some(Data)),
            (".bss", Some(Bss)),
            (".tbss", Some(Bss)),
            (".symtab", None),
            (".rel.text", None),
            (".ARM.attributes", None),
            (".note.GNU-stack", None),
        ] {
            assert_eq!(classify_section(n), k, "{n}");
        }
    }

    #[test]
    fn totals() {
        let s = Stats {
            code_bytes: 10,
            rodata_bytes: 20,
            data_bytes: 1,
            bss_bytes: 2,
            workspace_bytes: 64,
            stack: None,
        };
        assert_eq!((s.flash_bytes(), s.ram_bytes()), (31, 67));
    }
}
