//! The `qcc` command line. Errors print one line on stderr and exit 1;
//! usage errors exit 2 (clap). A failed compilation leaves no output file.

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use qcc::{c_identifier, parse_const_input, parse_input_shape, CompileOptions};
use qcc::{CalibrationData, CalibrationMethod, QuantConfig, QuantizeOptions, ScaleFormat};
use std::collections::HashMap;
use std::fs;
use std::io::IsTerminal;
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
        #[command(flatten)]
        quant: QuantArgs,
    },
}

#[derive(Args)]
struct ShapeArgs {
    /// Fix an input's shape, e.g. `x=1,3,224,224` (repeatable).
    #[arg(long = "input-shape", value_name = "NAME=DIMS", value_parser = parse_input_shape)]
    input_shape: Vec<(String, Vec<usize>)>,
    /// Bake an input in as a constant, e.g. `sample_rate=16000` or
    /// `use_fp=true` (one value, or one per element); an `If` on it folds
    /// away (repeatable).
    #[arg(long = "const-input", value_name = "NAME=VALUE", value_parser = parse_const_input)]
    const_input: Vec<(String, Vec<String>)>,
}

impl ShapeArgs {
    fn map(&self) -> HashMap<String, Vec<usize>> {
        self.input_shape.iter().cloned().collect()
    }

    fn consts(&self) -> HashMap<String, Vec<String>> {
        self.const_input.iter().cloned().collect()
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum QuantType {
    Int8,
    /// Per-layer weight bits (8, 4, 2) chosen against --weight-budget or
    /// --min-sqnr from each layer's measured sensitivity.
    Auto,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scales {
    /// 31-bit fixed-point multiplier and rounding shift.
    FixedPoint,
    /// Power-of-two scales: every requantization is a rounding shift.
    Pow2,
}

/// How the integer layers of a model that arrives quantized requantize.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum RequantizeArg {
    /// ONNX Runtime's float requantization: its CPU int8 results, bit for bit.
    Float,
    /// Integer-only fixed-point multipliers and shifts (cores without an FPU);
    /// within one output step of the float form.
    FixedPoint,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum IoType {
    F32,
    Int8,
}

/// Quantization options (see docs/QUANTIZATION.md).
#[derive(Args)]
struct QuantArgs {
    /// Quantize the model (needs --calibration-data).
    #[arg(long, value_enum, value_name = "TYPE", requires = "calibration_data")]
    quantize: Option<QuantType>,
    /// Calibration samples: a .npy whose first axis is the sample axis
    /// (single-input models), a .npz with one array per input name, or a
    /// folder of input_*.pb sets.
    #[arg(long, value_name = "PATH", requires = "quantize")]
    calibration_data: Option<PathBuf>,
    /// How activation ranges are chosen: minmax, percentile[=P] (default 99.99), entropy or mse.
    #[arg(
        long,
        value_name = "METHOD",
        default_value = "minmax",
        value_parser = qcc::calibration::parse_method,
        requires = "quantize"
    )]
    calibration: CalibrationMethod,
    /// How requantization scales are represented.
    #[arg(long, value_enum, default_value = "fixed-point", requires = "quantize")]
    scales: Scales,
    /// One weight scale per tensor instead of per output channel.
    #[arg(long, requires = "quantize")]
    per_tensor: bool,
    /// Nodes to keep in float (comma list of node names).
    #[arg(
        long,
        value_name = "NODE,...",
        value_delimiter = ',',
        requires = "quantize"
    )]
    keep_float: Vec<String>,
    /// Element type of the model's inputs and outputs; int8 exposes quantized I/O.
    #[arg(long, value_enum, default_value = "f32", requires = "quantize")]
    io: IoType,
    /// Bits of the symmetric weight range (2-8; 3-4 bits are stored two per
    /// byte, 2 bits four). 7 runs exactly on AVX2's faster `vpmaddubsw` kernels.
    #[arg(
        long,
        value_name = "BITS",
        default_value_t = 8,
        value_parser = clap::value_parser!(u32).range(2..=8),
        requires = "quantize"
    )]
    weight_bits: u32,
    /// Weight bits of named layers (Conv, Gemm or MatMul node names, as
    /// `--stats` lists them), overriding --weight-bits: `conv3=4,fc=2`.
    #[arg(
        long,
        value_name = "NODE=BITS,...",
        value_delimiter = ',',
        value_parser = parse_layer_bits,
        requires = "quantize"
    )]
    bits: Vec<(String, u32)>,
    /// Layers whose weights become ternary, {-α, 0, +α} per output channel
    /// (TNT's cosine-similarity search, no retraining), stored in 2 bits.
    #[arg(
        long,
        value_name = "NODE,...",
        value_delimiter = ',',
        requires = "quantize"
    )]
    ternary: Vec<String>,
    /// With --quantize auto: most bytes of weights, e.g. 40KB, 1.5MB, or a
    /// percentage of the 8-bit weights (55%).
    #[arg(
        long,
        value_name = "SIZE",
        value_parser = qcc::auto::parse_budget,
        conflicts_with = "min_sqnr"
    )]
    weight_budget: Option<qcc::auto::Goal>,
    /// With --quantize auto: least SQNR at the outputs, in dB (against the
    /// float model on the calibration samples).
    #[arg(long, value_name = "DB")]
    min_sqnr: Option<f64>,
    /// For a model that arrives quantized (QDQ, QLinearConv…): how its
    /// Conv/Gemm/MatMul layers requantize.
    #[arg(long, value_enum, default_value = "float", conflicts_with = "quantize")]
    requantize: RequantizeArg,
}

/// One `NODE=BITS` of `--bits` (BITS 2-8).
fn parse_layer_bits(s: &str) -> Result<(String, u32), String> {
    let (name, bits) = s
        .rsplit_once('=')
        .ok_or_else(|| format!("'{s}' is not NODE=BITS"))?;
    let b: u32 = bits
        .parse()
        .map_err(|_| format!("'{bits}' in '{s}' is not a number of bits"))?;
    if name.is_empty() || !(2..=8).contains(&b) {
        return Err(format!("'{s}': want a node name and 2 to 8 bits"));
    }
    Ok((name.to_string(), b))
}

impl QuantArgs {
    /// The goal of `--quantize auto` (a usage error without one, or with one
    /// and another `--quantize`).
    fn auto_goal(&self) -> Result<Option<qcc::auto::Goal>, UsageError> {
        let goal = match (self.weight_budget, self.min_sqnr) {
            (Some(g), _) => Some(g),
            (None, Some(db)) if db.is_finite() => Some(qcc::auto::Goal::MinSqnr(db)),
            (None, Some(db)) => {
                return Err(UsageError(format!("--min-sqnr {db} is not a number of dB")))
            }
            (None, None) => None,
        };
        match (self.quantize, goal) {
            (Some(QuantType::Auto), None) => Err(UsageError(
                "--quantize auto needs --weight-budget or --min-sqnr".into(),
            )),
            (Some(QuantType::Auto), Some(g)) => {
                if !self.bits.is_empty() || !self.ternary.is_empty() || self.weight_bits != 8 {
                    return Err(UsageError(
                        "--quantize auto chooses the bits itself: drop --bits, --ternary and --weight-bits".into(),
                    ));
                }
                Ok(Some(g))
            }
            (_, Some(_)) => Err(UsageError(
                "--weight-budget and --min-sqnr go with --quantize auto".into(),
            )),
            (_, None) => Ok(None),
        }
    }

    fn requantize(&self) -> qcc::Requantize {
        match self.requantize {
            RequantizeArg::Float => qcc::Requantize::Float,
            RequantizeArg::FixedPoint => qcc::Requantize::FixedPoint,
        }
    }

    fn options(&self) -> Option<QuantizeOptions> {
        self.quantize?;
        Some(QuantizeOptions {
            config: QuantConfig {
                method: self.calibration,
                scales: match self.scales {
                    Scales::FixedPoint => ScaleFormat::FixedPoint,
                    Scales::Pow2 => ScaleFormat::Pow2,
                },
                per_channel: !self.per_tensor,
                keep_float: self.keep_float.clone(),
                io_int8: self.io == IoType::Int8,
                weight_bits: self.weight_bits,
                layer_bits: self.bits.clone(),
                ternary: self.ternary.clone(),
                memo: Default::default(),
            },
            data: CalibrationData::Path(self.calibration_data.clone()?),
            progress: {
                let bar = std::sync::Mutex::new(progress("calibrating"));
                qcc_passes::Progress(Some(std::sync::Arc::new(move |done, total| {
                    if let Ok(mut f) = bar.lock() {
                        f(done, total)
                    }
                })))
            },
        })
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Emit {
    Obj,
    Asm,
    LlvmIr,
    Header,
    /// The optimized (quantized) graph as a QDQ ONNX model, `<output stem>.onnx`.
    Onnx,
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
    /// Print the model's flash (code + weights), RAM (workspace) and deepest stack use;
    /// with --quantize, also a per-layer quantization table and the counts of
    /// quantize, dequantize and requantize operations.
    #[arg(long)]
    stats: bool,
    /// Also export `P_run_profiled`: it times every node with a clock function
    /// the caller passes and fills one tick count per node; the header names
    /// the nodes (`P_PROFILED_NODE_NAMES`).
    #[arg(long)]
    profile: bool,
    /// Run 3×3 stride-1 float convolutions as direct GEMMs, never as
    /// Winograd F(2×2, 3×3) (4/9 of the multiplications; results differ
    /// from the direct sum by float rounding only).
    #[arg(long)]
    no_winograd: bool,
    /// What to write (comma list).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "obj,header")]
    emit: Vec<Emit>,
    /// Where to write the header (default: next to the object, `.h`).
    #[arg(long, value_name = "PATH")]
    header: Option<PathBuf>,
    #[command(flatten)]
    shapes: ShapeArgs,
    #[command(flatten)]
    quant: QuantArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Check { model, shapes }) => check(&model, &shapes),
        Some(Command::Dump {
            model,
            after,
            shapes,
            quant,
        }) => dump(&model, after.as_deref(), &shapes, &quant),
        None => compile(&cli.compile),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            let msg: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            // A context that repeats its source (e.g. an I/O error) says it once.
            let mut parts: Vec<String> = vec![];
            for m in msg {
                if !parts.last().is_some_and(|p| p.ends_with(&m)) {
                    parts.push(m);
                }
            }
            eprintln!("qcc: error: {}", one_line(&parts.join(": ")));
            let usage = e.downcast_ref::<UsageError>().is_some();
            ExitCode::from(if usage { 2 } else { 1 })
        }
    }
}

/// A mistake in the command line itself (exit code 2, like clap's own).
#[derive(Debug)]
struct UsageError(String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

use qcc::one_line;

fn check(model: &Path, shapes: &ShapeArgs) -> Result<ExitCode> {
    let opts = qcc_onnx::ImportOptions {
        input_shapes: shapes.map(),
        const_inputs: shapes.consts(),
    };
    let problems = qcc_onnx::check_model(model, &opts)?;
    if problems.is_empty() {
        println!("{}: ok", model.display());
        return Ok(ExitCode::SUCCESS);
    }
    for p in &problems {
        println!("{}", one_line(&format!("{}: {p}", model.display())));
    }
    eprintln!("qcc: {} problem(s) found", problems.len());
    Ok(ExitCode::from(1))
}

fn dump(model: &Path, after: Option<&str>, shapes: &ShapeArgs, q: &QuantArgs) -> Result<ExitCode> {
    if q.auto_goal()?.is_some() {
        return Err(UsageError(
            "qcc dump takes no --quantize auto: compile with it, then dump with the --bits it chose".into(),
        )
        .into());
    }
    let opts = CompileOptions {
        input_shapes: shapes.map(),
        const_inputs: shapes.consts(),
        quantize: q.options(),
        requantize: q.requantize(),
        ..Default::default()
    };
    let (g, _) = qcc::optimize_file(model, &opts, after)?;
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
                return Err(UsageError(format!("--name '{n}' is not a C identifier")).into());
            }
            n.clone()
        }
        None => c_identifier(&stem),
    };
    let emit = |e| a.emit.contains(&e);
    let auto_goal = a.quant.auto_goal()?;
    let mut opts = CompileOptions {
        input_shapes: a.shapes.map(),
        const_inputs: a.shapes.consts(),
        codegen: qcc::CodegenOptions {
            target: a.target.clone(),
            cpu: a.cpu.clone(),
            features: a.features.clone(),
            prefix,
            emit_asm: emit(Emit::Asm),
            emit_llvm_ir: emit(Emit::LlvmIr),
            profile: a.profile,
            no_winograd: a.no_winograd,
        },
        quantize: a.quant.options(),
        requantize: a.quant.requantize(),
    };
    // Unknown targets, CPUs and features fail before the model is read.
    qcc_codegen::resolve_target(&opts.codegen)?;
    let auto = match auto_goal {
        Some(goal) => {
            let c = qcc::auto::choose(model, &opts, goal, &mut progress("choosing bits"))?;
            if let Some(q) = opts.quantize.as_mut() {
                q.config.layer_bits = c.layer_bits();
            }
            Some(c)
        }
        None => None,
    };
    let (graph, cx) = qcc::optimize_file(model, &opts, None)?;
    let art = qcc::codegen(&graph, &opts.codegen)?;
    let quant_stats = match (a.stats, &opts.quantize) {
        (true, Some(_)) => Some(qcc::stats::report(
            model,
            &opts,
            &graph,
            &cx,
            &mut progress("measuring SQNR"),
        )?),
        _ => None,
    };

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
    if emit(Emit::Onnx) {
        let path = output.with_extension("onnx");
        if fs::canonicalize(&path).ok() == fs::canonicalize(model).ok() && path.exists() {
            bail!(
                "--emit onnx would overwrite the input model {}; choose another -o",
                path.display()
            );
        }
        let onnx = qcc_onnx::export_model_bytes(&graph)?;
        files.push((path, onnx));
    }
    if let Some(c) = &auto {
        files.push((
            output.with_extension("pareto.svg"),
            qcc::auto::svg(c).into_bytes(),
        ));
    }
    check_output_paths(model, &files)?;
    write_all_or_nothing(&files)?;
    if let Some(c) = &auto {
        print!("{}", qcc::auto::render(c));
    }
    if a.stats {
        print!("{}", qcc_codegen::stats::render(&art.stats, &art.target));
    }
    if let Some(r) = quant_stats {
        print!("{}", qcc::stats::render(&r));
    }
    Ok(ExitCode::SUCCESS)
}

/// A progress bar on stderr for a loop of `total` steps, shown only when
/// stderr is a terminal; call it with `(done, total)`.
fn progress(what: &'static str) -> impl FnMut(usize, usize) {
    let show = std::io::stderr().is_terminal();
    let mut bar: Option<indicatif::ProgressBar> = None;
    move |done, total| {
        if !show {
            return;
        }
        let b = bar.get_or_insert_with(|| {
            let b = indicatif::ProgressBar::new(total as u64);
            if let Ok(style) =
                indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len}")
            {
                b.set_style(style.progress_chars("=> "));
            }
            b.set_message(what);
            b
        });
        b.set_position(done as u64);
        if done >= total {
            b.finish_and_clear();
        }
    }
}

/// Where `p` is or would be: its folder resolved (links included) plus its
/// name, so two spellings of one path compare equal before it exists.
fn resolved(p: &Path) -> PathBuf {
    if let Ok(r) = fs::canonicalize(p) {
        return r;
    }
    let dir = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let dir = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    match p.file_name() {
        Some(n) => dir.join(n),
        None => dir,
    }
}

/// Whether `a` and `b` are one existing file (the same path, a link to it,
/// or a hard link).
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// Refuses output paths that would overwrite the model, or each other.
fn check_output_paths(model: &Path, files: &[(PathBuf, Vec<u8>)]) -> Result<()> {
    let model_at = resolved(model);
    for (i, (p, _)) in files.iter().enumerate() {
        if resolved(p) == model_at || same_file(p, model) {
            bail!(
                "output {} is the input model; choose another -o or --header",
                p.display()
            );
        }
        for (q, _) in &files[..i] {
            if resolved(p) == resolved(q) || same_file(p, q) {
                bail!(
                    "two outputs would be written to {}; give -o and --header different paths",
                    p.display()
                );
            }
        }
    }
    Ok(())
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
