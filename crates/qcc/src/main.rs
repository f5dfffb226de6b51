//! The `qcc` command line. Errors print one line on stderr and exit 1;
//! usage errors exit 2 (clap). A failed compilation leaves no output file.

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use qcc::{c_identifier, parse_input_shape, CompileOptions};
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "qcc",
    version,
    about = "A quantizing ahead-of-time compiler for ONNX models",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    compile: CompileArgs,
}

#[derive(Subcommand)]
enum Command {
    /// List every unsupported op or attribute of a model at once; compiles nothing.
    Check {
        model: PathBuf,
        #[command(flatten)]
        shapes: ShapeArgs,
    },
    /// Print the IR of a model at a stage of the pipeline.
    Dump {
        model: PathBuf,
        /// Stop after this pass (`import` for the graph as imported); default: the whole pipeline.
        #[arg(long, value_name = "PASS")]
        after: Option<String>,
        #[command(flatten)]
        shapes: ShapeArgs,
    },
}

#[derive(Args)]
struct ShapeArgs {
    /// Fix an input's shape, e.g. `x=1,3,224,224` (repeatable).
    #[arg(long = "input-shape", value_name = "NAME=DIMS", value_parser = parse_input_shape)]
    input_shape: Vec<(String, Vec<usize>)>,
}

impl ShapeArgs {
    fn map(&self) -> HashMap<String, Vec<usize>> {
        self.input_shape.iter().cloned().collect()
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Emit {
    Obj,
    Asm,
    LlvmIr,
    Header,
}

/// What `--print` lists.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PrintWhat {
    Targets,
    Cpus,
    Features,
}

#[derive(Args)]
struct CompileArgs {
    /// The ONNX model to compile.
    #[arg(required_unless_present = "print")]
    model: Option<PathBuf>,
    /// Output object file (default: the model's stem + `.o` in the current folder).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
    /// Symbol prefix (default: the output file's stem as a C identifier).
    #[arg(long)]
    name: Option<String>,
    /// Target triple (default: the host).
    #[arg(long)]
    target: Option<String>,
    /// Target CPU (default: the host CPU, or the triple's baseline when cross-compiling).
    #[arg(long)]
    cpu: Option<String>,
    /// Extra LLVM target features, e.g. `+dotprod,+i8mm`.
    #[arg(long)]
    features: Option<String>,
    /// List the supported targets, or the CPUs or features of `--target` (default: the host), and exit.
    #[arg(long, value_enum, value_name = "WHAT")]
    print: Option<PrintWhat>,
    /// Print the model's flash (code + weights), RAM (workspace) and deepest stack use.
    #[arg(long)]
    stats: bool,
    /// What to write (comma list).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "obj,header")]
    emit: Vec<Emit>,
    /// Where to write the header (default: next to the object, `.h`).
    #[arg(long, value_name = "PATH")]
    header: Option<PathBuf>,
    #[command(flatten)]
    shapes: ShapeArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Check { model, shapes }) => check(&model, &shapes),
        Some(Command::Dump {
            model,
            after,
            shapes,
        }) => dump(&model, after.as_deref(), &shapes),
        None => compile(&cli.compile),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            let msg: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            eprintln!("qcc: error: {}", msg.join(": "));
            ExitCode::from(1)
        }
    }
}

fn check(model: &Path, shapes: &ShapeArgs) -> Result<ExitCode> {
    let opts = qcc_onnx::ImportOptions {
        input_shapes: shapes.map(),
    };
    let problems = qcc_onnx::check_model(model, &opts)?;
    if problems.is_empty() {
        println!("{}: ok", model.display());
        return Ok(ExitCode::SUCCESS);
    }
    for p in &problems {
        println!("{}: {p}", model.display());
    }
    eprintln!("qcc: {} problem(s) found", problems.len());
    Ok(ExitCode::from(1))
}

fn dump(model: &Path, after: Option<&str>, shapes: &ShapeArgs) -> Result<ExitCode> {
    let mut g = qcc::import(model, &shapes.map())?;
    qcc::optimize(&mut g, after)?;
    print!("{}", qcc_ir::print(&g)?);
    Ok(ExitCode::SUCCESS)
}

fn compile(a: &CompileArgs) -> Result<ExitCode> {
    if let Some(what) = a.print {
        let kind = match what {
            PrintWhat::Targets => qcc_codegen::PrintKind::Targets,
            PrintWhat::Cpus => qcc_codegen::PrintKind::Cpus,
            PrintWhat::Features => qcc_codegen::PrintKind::Features,
        };
        print!("{}", qcc_codegen::print_info(kind, a.target.as_deref())?);
        return Ok(ExitCode::SUCCESS);
    }
    let model = a.model.as_ref().context("no model given")?;
    let output = match &a.output {
        Some(o) => o.clone(),
        None => PathBuf::from(
            model
                .file_stem()
                .map(|s| s.to_os_string())
                .unwrap_or_else(|| "model".into()),
        )
        .with_extension("o"),
    };
    let stem = output
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("model")
        .to_string();
    let prefix = match &a.name {
        Some(n) => {
            if c_identifier(n) != *n {
                bail!("--name '{n}' is not a C identifier");
            }
            n.clone()
        }
        None => c_identifier(&stem),
    };
    let emit = |e| a.emit.contains(&e);
    let opts = CompileOptions {
        input_shapes: a.shapes.map(),
        codegen: qcc::CodegenOptions {
            target: a.target.clone(),
            cpu: a.cpu.clone(),
            features: a.features.clone(),
            prefix,
            emit_asm: emit(Emit::Asm),
            emit_llvm_ir: emit(Emit::LlvmIr),
        },
    };
    // Unknown targets, CPUs and features fail before the model is read.
    qcc_codegen::resolve_target(&opts.codegen)?;
    let art = qcc::compile_file(model, &opts)?;

    let header_path = a
        .header
        .clone()
        .unwrap_or_else(|| output.with_extension("h"));
    let mut files: Vec<(PathBuf, Vec<u8>)> = vec![];
    if emit(Emit::Obj) {
        files.push((output.clone(), art.object));
    }
    if emit(Emit::Header) {
        files.push((header_path, art.header.into_bytes()));
    }
    if let Some(s) = art.asm {
        files.push((output.with_extension("s"), s.into_bytes()));
    }
    if let Some(s) = art.llvm_ir {
        files.push((output.with_extension("ll"), s.into_bytes()));
    }
    write_all_or_nothing(&files)?;
    if a.stats {
        print!("{}", qcc_codegen::stats::render(&art.stats, &art.target));
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes every file to a temporary name beside it, then renames them all;
/// on any failure, removes what it wrote so no partial output is left.
fn write_all_or_nothing(files: &[(PathBuf, Vec<u8>)]) -> Result<()> {
    let mut tmps = vec![];
    let result = (|| -> Result<()> {
        for (path, bytes) in files {
            let mut tmp = path.clone().into_os_string();
            tmp.push(".qcc-tmp");
            let tmp = PathBuf::from(tmp);
            tmps.push(tmp.clone());
            fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", path.display()))?;
        }
        for ((path, _), tmp) in files.iter().zip(&tmps) {
            fs::rename(tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
        }
        Ok(())
    })();
    if result.is_err() {
        for t in &tmps {
            let _ = fs::remove_file(t);
        }
    }
    result
}
