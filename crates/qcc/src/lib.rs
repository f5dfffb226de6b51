//! qcc as a library: the same pipeline the `qcc` command runs, for build
//! scripts and tests. `compile_file` = import → passes → codegen;
//! [`CompileOptions::quantize`] turns on int8 quantization.

pub mod auto;
pub mod calibration;
pub mod stats;

use anyhow::{Context, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub use qcc_codegen::{Artifacts, Options as CodegenOptions};
pub use qcc_ir::Graph;
pub use qcc_passes::{CalibrationMethod, PassContext, QuantConfig, Requantize, ScaleFormat};

/// Where calibration samples come from.
#[derive(Clone, Debug)]
pub enum CalibrationData {
    /// A `.npy`, a `.npz` or a folder of `input_*.pb` sets (see [`calibration`]).
    Path(PathBuf),
    /// Samples in memory: `samples[s][i]` is input `i` of sample `s`.
    Samples(calibration::Samples),
}

/// `--quantize int8`: the quantization options and the calibration data.
#[derive(Clone, Debug)]
pub struct QuantizeOptions {
    pub config: QuantConfig,
    pub data: CalibrationData,
    /// Calibration progress callback (the CLI's progress bar).
    pub progress: qcc_passes::Progress,
}

/// Everything that shapes a compilation besides the model file.
#[derive(Clone, Debug, Default)]
pub struct CompileOptions {
    /// Static shapes for graph inputs by name (`--input-shape`).
    pub input_shapes: HashMap<String, Vec<usize>>,
    /// Graph inputs baked in as constants (`--const-input`): their values
    /// as written, by name.
    pub const_inputs: HashMap<String, Vec<String>>,
    pub codegen: CodegenOptions,
    /// Quantize to int8 (`--quantize int8`); `None` compiles in float.
    pub quantize: Option<QuantizeOptions>,
    /// How the integer layers of a model that arrives quantized requantize
    /// (`--requantize`).
    pub requantize: Requantize,
}

impl CompileOptions {
    /// What the importer needs of these options.
    pub fn import_options(&self) -> qcc_onnx::ImportOptions {
        qcc_onnx::ImportOptions {
            input_shapes: self.input_shapes.clone(),
            const_inputs: self.const_inputs.clone(),
        }
    }
}

/// `s` on one line with no terminal control sequences: names from a model
/// may hold newlines or escape codes, printed here as `\n`, `\x1b`, ….
pub fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Imports an ONNX model and verifies the imported graph. What the import
/// notes (a symbolic batch dim set to 1, a declared output shape the
/// computed one overrides) goes to stderr as `qcc: note: …` lines.
pub fn import(model: &Path, input_shapes: &HashMap<String, Vec<usize>>) -> Result<Graph> {
    let opts = qcc_onnx::ImportOptions {
        input_shapes: input_shapes.clone(),
        ..Default::default()
    };
    import_with(model, &opts)
}

/// [`import`] with every import option (`--const-input` too).
pub fn import_with(model: &Path, opts: &qcc_onnx::ImportOptions) -> Result<Graph> {
    let (g, notes) = qcc_onnx::load_model_noted(model, opts)?;
    for n in notes {
        eprintln!("qcc: note: {}", one_line(&n));
    }
    qcc_ir::verify(&g).context("internal error: the imported graph is invalid")?;
    Ok(g)
}

/// Runs the default pass pipeline, stopping after `stop_after` if given
/// (`"import"` stops before the first pass).
pub fn optimize(g: &mut Graph, stop_after: Option<&str>) -> Result<()> {
    optimize_with(g, &mut qcc_passes::PassContext::default(), stop_after)
}

/// [`optimize`] with a pass context (quantization options, calibration data).
pub fn optimize_with(
    g: &mut Graph,
    cx: &mut qcc_passes::PassContext,
    stop_after: Option<&str>,
) -> Result<()> {
    if stop_after == Some("import") {
        return Ok(());
    }
    if let Some(name) = stop_after {
        qcc_passes::pass(name)?;
    }
    qcc_passes::Pipeline::default().run(g, cx, stop_after)?;
    Ok(())
}

/// The pass context for compiling `g`: without `quantize`, the default one;
/// with it, its options and the calibration samples, loaded and checked
/// against `g`'s inputs.
pub fn pass_context(g: &Graph, quantize: Option<&QuantizeOptions>) -> Result<PassContext> {
    let mut cx = PassContext::default();
    if let Some(q) = quantize {
        // A model someone already quantized keeps the scales it was given:
        // qcc's own calibration would quantize its simulation a second time.
        if let Some(id) = g.node_ids().into_iter().find(|&id| {
            matches!(
                g.node(id).op,
                qcc_ir::Op::Quantize { .. } | qcc_ir::Op::Dequantize { .. }
            )
        }) {
            anyhow::bail!(
                "--quantize: the model is already quantized (node '{}' is a {}); \
                 compile it without --quantize",
                g.node(id).name,
                g.node(id).op.name()
            );
        }
        for name in &q.config.keep_float {
            if !g.node_ids().into_iter().any(|id| g.node(id).name == *name) {
                anyhow::bail!("--keep-float: the model has no node named '{name}'");
            }
        }
        let inputs = calibration::input_specs(g);
        cx.calibration = match &q.data {
            CalibrationData::Path(p) => calibration::load(p, &inputs)?,
            CalibrationData::Samples(s) => {
                calibration::check_samples(s, &inputs)?;
                s.clone()
            }
        };
        cx.quant = Some(q.config.clone());
        cx.progress = q.progress.clone();
    }
    Ok(cx)
}

/// Imports a model and runs the pipeline on it as [`compile_file`] does
/// (stopping after `stop_after` if given); returns the graph and the pass
/// context, which holds what the passes recorded (ranges, quantization tables).
pub fn optimize_file(
    model: &Path,
    opts: &CompileOptions,
    stop_after: Option<&str>,
) -> Result<(Graph, PassContext)> {
    let mut g = import_with(model, &opts.import_options())?;
    let mut cx = pass_context(&g, opts.quantize.as_ref())?;
    cx.requantize = opts.requantize;
    optimize_with(&mut g, &mut cx, stop_after)?;
    Ok((g, cx))
}

/// Imports, optimizes and compiles a model into an object file and header (in memory).
pub fn compile_file(model: &Path, opts: &CompileOptions) -> Result<Artifacts> {
    let (g, _) = optimize_file(model, opts, None)?;
    codegen(&g, &opts.codegen)
}

/// Compiles an optimized graph (8-bit graph inputs and outputs carry their
/// parameters in their types, which the header states).
pub fn codegen(g: &Graph, opts: &CodegenOptions) -> Result<Artifacts> {
    Ok(qcc_codegen::compile(g, opts)?)
}

/// Turns a file stem into a C identifier usable as a symbol prefix.
pub fn c_identifier(stem: &str) -> String {
    let mut s: String = stem
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    s
}

/// Parses `NAME=V0,V1,…` (`--const-input`): the values stay text until the
/// importer knows the input's element type.
pub fn parse_const_input(s: &str) -> Result<(String, Vec<String>), String> {
    let (name, values) = s
        .split_once('=')
        .ok_or_else(|| format!("'{s}' is not NAME=VALUE[,VALUE…]"))?;
    if name.is_empty() || values.trim().is_empty() {
        return Err(format!("'{s}' needs a name and at least one value"));
    }
    Ok((
        name.to_string(),
        values.split(',').map(|v| v.trim().to_string()).collect(),
    ))
}

/// Parses `NAME=1,3,224,224`.
pub fn parse_input_shape(s: &str) -> Result<(String, Vec<usize>), String> {
    let (name, dims) = s
        .rsplit_once('=')
        .ok_or_else(|| format!("'{s}' is not NAME=D0,D1,…"))?;
    if name.is_empty() {
        return Err(format!("'{s}' has an empty input name"));
    }
    let dims = dims
        .split(',')
        .map(|d| {
            d.trim()
                .parse::<usize>()
                .map_err(|_| format!("'{s}': dimension '{d}' is not a non-negative integer"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((name.to_string(), dims))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        assert_eq!(c_identifier("model"), "model");
        assert_eq!(c_identifier("my-net.v2"), "my_net_v2");
        assert_eq!(c_identifier("3d"), "_3d");
        assert_eq!(c_identifier(""), "_");
    }

    #[test]
    fn input_shapes() {
        assert_eq!(
            parse_input_shape("x=1,3,224,224").unwrap(),
            ("x".to_string(), vec![1, 3, 224, 224])
        );
        assert!(parse_input_shape("x").is_err());
        assert!(parse_input_shape("=1").is_err());
        assert!(parse_input_shape("x=1,-3").is_err());
    }
}
