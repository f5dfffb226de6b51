//! `--quantize auto`: per-layer weight bits chosen against a weight budget
//! or an output SQNR.
//!
//! 1. The graph is calibrated once, with every layer's input moments (so
//!    any layer may later drop below 8 bits), and the float graph's outputs
//!    are taken on up to [`SAMPLES`] calibration samples (fewer on large
//!    models, down to [`MIN_SAMPLES`], by a multiply-accumulate budget).
//! 2. Sensitivity: for each Conv/Gemm/MatMul layer and each lower width
//!    ([`WIDTHS`]), the rest of the pipeline runs with only that layer
//!    lowered and the interpreter measures the outputs' SQNR against float;
//!    the layer's cost is the noise power it adds over all-8-bit. These
//!    trials are independent and run in parallel (rayon; each one
//!    deterministic, so the choice does not depend on the thread count:
//!    MNIST-sized CNN on 2 cores, 3.3 → 2.0 s).
//! 3. The frontier: noise powers assumed additive, a knapsack over the
//!    layers' widths ([`pareto`]) gives, for every weight size, the least
//!    predicted noise. [`SPREAD`] points of it spread over the sizes are
//!    measured for the table and plot.
//! 4. The choice: with `--weight-budget`, the point predicted best within the
//!    budget is measured too, and the best measured point within the budget
//!    wins; with `--min-sqnr`, points predicted to reach it are measured from
//!    the smallest until one does.
//!
//! Weight bytes count what the object stores: 8-bit weights one per byte,
//! 3- and 4-bit two, 2-bit four (`qcc_codegen`'s packed panels), depthwise
//! kernels one per byte whatever their width.

use crate::{pass_context, CompileOptions};
use anyhow::{bail, Context, Result};
use qcc_ir::{DType, Graph, NodeId, Op, Tensor, ValueId};
use qcc_passes::context::ModuleKind;
use qcc_passes::{PassContext, Pipeline, PASSES};
use rayon::prelude::*;
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::path::Path;

/// Calibration samples the outputs' SQNR is measured on, at most.
pub const SAMPLES: usize = 32;
/// ... and at least (when the calibration set has them).
pub const MIN_SAMPLES: usize = 2;
/// Interpreter multiply-accumulates all measurements together may take
/// before the samples are cut below [`SAMPLES`].
const MAC_BUDGET: f64 = 2e10;
/// Frontier points measured for the table and plot (besides the chosen).
pub const SPREAD: usize = 10;
/// Resolution of the weight bytes in the frontier search.
const BUCKETS: usize = 4096;
/// The widths a layer may take, from the widest.
pub const WIDTHS: [u32; 3] = [8, 4, 2];

/// What `--quantize auto` aims for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Goal {
    /// At most this many bytes of weights.
    Budget(usize),
    /// Budget as a percentage of the all-8-bit weight bytes.
    BudgetPercent(f64),
    /// At least this SQNR (dB) at the outputs.
    MinSqnr(f64),
}

/// One point of the explored frontier.
#[derive(Clone, Debug)]
pub struct Point {
    /// The layers below 8 bits.
    pub layer_bits: Vec<(String, u32)>,
    pub weight_bytes: usize,
    /// Predicted from the per-layer sensitivities, and measured.
    pub predicted_db: f64,
    pub measured_db: f64,
}

/// The frontier and the point chosen.
#[derive(Clone, Debug)]
pub struct Choice {
    /// The measured points, from the most bytes.
    pub points: Vec<Point>,
    pub chosen: usize,
    /// Weight bytes with every layer at 8 bits.
    pub int8_bytes: usize,
    /// Layers the choice covers.
    pub layers: usize,
    /// Calibration samples each point was measured on.
    pub samples: usize,
}

impl Choice {
    pub fn layer_bits(&self) -> Vec<(String, u32)> {
        self.points[self.chosen].layer_bits.clone()
    }
}

/// Parses `--weight-budget`: bytes with an optional `B`, `KB`/`KiB` (1024),
/// `MB`/`MiB` suffix, or a percentage of the 8-bit weights (`55%`).
pub fn parse_budget(s: &str) -> Result<Goal, String> {
    let t = s.trim();
    if let Some(p) = t.strip_suffix('%') {
        let v: f64 = p
            .trim()
            .parse()
            .map_err(|_| format!("'{s}' is not a percentage"))?;
        if !(v > 0.0 && v <= 100.0) {
            return Err(format!("'{s}': want a percentage in (0, 100]"));
        }
        return Ok(Goal::BudgetPercent(v));
    }
    let lower = t.to_ascii_lowercase();
    let (num, mul) = [
        ("kib", 1024.0),
        ("kb", 1024.0),
        ("k", 1024.0),
        ("mib", 1048576.0),
        ("mb", 1048576.0),
        ("m", 1048576.0),
        ("b", 1.0),
    ]
    .iter()
    .find_map(|(suf, m)| lower.strip_suffix(suf).map(|n| (n.trim().to_string(), *m)))
    .unwrap_or((lower.clone(), 1.0));
    let v: f64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a size (bytes, KB, MB or a percentage)"))?;
    if !(v > 0.0 && v.is_finite()) {
        return Err(format!("'{s}': want a positive size"));
    }
    Ok(Goal::Budget((v * mul) as usize))
}

/// Bits per stored weight of a layer at `bits` (packed panels).
fn stored_bits(bits: u32) -> usize {
    match bits {
        0..=2 => 2,
        3..=4 => 4,
        _ => 8,
    }
}

/// A candidate layer: its anchor's name, weight count, and whether its
/// kernel is depthwise (stored one weight per byte).
struct Layer {
    name: String,
    weights: usize,
    depthwise: bool,
    /// Multiply-accumulates per sample.
    macs: usize,
}

impl Layer {
    fn bytes(&self, bits: u32) -> usize {
        let b = if self.depthwise { 8 } else { stored_bits(bits) };
        (self.weights * b).div_ceil(8)
    }
}

/// The graph calibrated once and the float reference.
struct Setup {
    g: Graph,
    cx: PassContext,
    /// Index in `PASSES` of the first pass after `calibrate`.
    rest: usize,
    samples: Vec<Vec<Tensor>>,
    reference: Vec<Vec<Tensor>>,
    layers: Vec<Layer>,
}

fn setup(model: &Path, opts: &CompileOptions) -> Result<Setup> {
    let q = opts
        .quantize
        .as_ref()
        .context("--quantize auto needs calibration data")?;
    let g0 = crate::import_with(model, &opts.import_options())?;
    let mut cx = pass_context(&g0, Some(q))?;
    let mut float = g0.clone();
    crate::optimize(&mut float, None)?;
    // Calibrate once with every layer's moments: all of them "below 8".
    if let Some(c) = cx.quant.as_mut() {
        c.weight_bits = WIDTHS[WIDTHS.len() - 1];
        c.layer_bits.clear();
        c.ternary.clear();
    }
    let rest = PASSES
        .iter()
        .position(|p| p.name == "calibrate")
        .context("internal: no calibrate pass")?
        + 1;
    let mut g = g0;
    Pipeline {
        passes: PASSES[..rest].iter().collect(),
    }
    .run(&mut g, &mut cx, None)?;
    let layers = cx
        .modules
        .iter()
        .filter(|m| {
            matches!(
                m.kind,
                ModuleKind::Conv | ModuleKind::Gemm | ModuleKind::MatMul
            )
        })
        .filter_map(|m| {
            let n = g.node(m.anchor);
            let w = *n.inputs().get(1)?;
            g.const_value(w)?;
            let depthwise = match &n.op {
                Op::Conv(a) => a.group > 1 && g.value_type(w).shape.get(1) == Some(&1),
                _ => false,
            };
            // Multiply-accumulates: each output reads weights / channels.
            let wn = g.value_type(w).numel();
            let out = &n.outputs[0];
            let channels = match &n.op {
                Op::Conv(_) => g.value_type(w).shape.first().copied(),
                _ => out.shape.last().copied(),
            }
            .unwrap_or(1)
            .max(1);
            Some(Layer {
                name: n.name.clone(),
                weights: wn,
                depthwise,
                macs: out.numel() * (wn / channels),
            })
        })
        .collect::<Vec<_>>();
    if layers.is_empty() {
        bail!("--quantize auto: the model has no Conv, Gemm or MatMul with constant weights");
    }
    // Samples per measurement: up to SAMPLES, fewer on large models so the
    // interpreter's work over every trial stays near MAC_BUDGET (at least
    // MIN_SAMPLES); the same count on every machine.
    let macs: f64 = layers.iter().map(|l| l.macs as f64).sum::<f64>().max(1.0);
    let trials = (2 + layers.len() * (WIDTHS.len() - 1) + SPREAD) as f64;
    let fit = (MAC_BUDGET / (trials * macs)).floor() as usize;
    let count = fit.clamp(MIN_SAMPLES, SAMPLES).min(cx.calibration.len());
    let samples: Vec<Vec<Tensor>> = cx.calibration.iter().take(count).cloned().collect();
    let reference = samples
        .iter()
        .enumerate()
        .map(|(i, s)| {
            qcc_interp::run(&float, s)
                .with_context(|| format!("--quantize auto: float graph on calibration sample #{i}"))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Setup {
        g,
        cx,
        rest,
        samples,
        reference,
        layers,
    })
}

/// The all-8-bit graph and what it computes on each sample: a trial's
/// interpreter runs take the values of the nodes it shares with it (every
/// node upstream of the one layer a sensitivity trial lowers), so they
/// evaluate only what the change reaches.
struct Base {
    g: Graph,
    values: Vec<HashMap<ValueId, Tensor>>,
}

/// The nodes of `g` that compute what `base`'s node of the same id does:
/// the same op, name, output types and inputs, constants with the same
/// tensor, and every input from such a node.
fn shared_nodes(g: &Graph, base: &Graph) -> Result<HashSet<NodeId>> {
    let mut shared = HashSet::new();
    for id in g.topo_order()? {
        if !base.contains(id) {
            continue;
        }
        let (n, b) = (g.node(id), base.node(id));
        let same = n == b
            && n.inputs().iter().all(|v| shared.contains(&v.node))
            && match (&n.op, &b.op) {
                (Op::Const { weight: x }, Op::Const { weight: y }) => {
                    g.weights().get(x.0 as usize) == base.weights().get(y.0 as usize)
                }
                _ => true,
            };
        if same {
            shared.insert(id);
        }
    }
    Ok(shared)
}

impl Setup {
    /// The rest of the pipeline at `layer_bits` (others 8).
    fn graph(&self, layer_bits: &[(String, u32)]) -> Result<Graph> {
        let (mut g, mut cx) = (self.g.clone(), self.cx.clone());
        if let Some(c) = cx.quant.as_mut() {
            c.weight_bits = 8;
            c.layer_bits = layer_bits.to_vec();
        }
        Pipeline {
            passes: PASSES[self.rest..].iter().collect(),
        }
        .run(&mut g, &mut cx, None)?;
        Ok(g)
    }

    /// The all-8-bit graph, its values and its SQNR.
    fn base(&self) -> Result<(Base, f64)> {
        let g = self.graph(&[])?;
        let mut values = vec![];
        let db = self.sqnr(&g, None, Some(&mut values))?;
        Ok((Base { g, values }, db))
    }

    /// [`Setup::graph`] at `layer_bits`, then the outputs' SQNR against
    /// float over the samples, in dB.
    fn measure(&self, layer_bits: &[(String, u32)], base: &Base) -> Result<f64> {
        let g = self.graph(layer_bits)?;
        self.sqnr(&g, Some(base), None)
    }

    /// The outputs' SQNR of `g` against float over the samples, in dB;
    /// what the nodes it shares with `base` compute taken from there; with
    /// `keep`, every value computed (constants and inputs aside), per sample.
    fn sqnr(
        &self,
        g: &Graph,
        base: Option<&Base>,
        mut keep: Option<&mut Vec<HashMap<ValueId, Tensor>>>,
    ) -> Result<f64> {
        let shared = match base {
            Some(b) => shared_nodes(g, &b.g)?,
            None => HashSet::new(),
        };
        let in_q: Vec<_> = (0..g.inputs().len()).map(|i| g.input_quant(i)).collect();
        let (mut signal, mut noise) = (0f64, 0f64);
        for (s, (inputs, want)) in self.samples.iter().zip(&self.reference).enumerate() {
            let feed = crate::stats::quantize_inputs(g, inputs, &in_q)?;
            let known = |v: ValueId| {
                base.filter(|_| shared.contains(&v.node))
                    .and_then(|b| b.values.get(s)?.get(&v))
            };
            let mut seen = HashMap::new();
            let got = qcc_interp::run_seeded(g, &feed, &known, &mut |v, t| {
                if keep.is_some()
                    && !matches!(g.node(v.node).op, Op::Const { .. } | Op::Input { .. })
                {
                    seen.insert(v, t.clone());
                }
            })
            .with_context(|| format!("--quantize auto: calibration sample #{s}"))?;
            if let Some(k) = keep.as_mut() {
                k.push(seen);
            }
            for (o, (w, t)) in want.iter().zip(&got).enumerate() {
                let q = match g.value_type(g.outputs[o].value).dtype {
                    DType::F32 => qcc_ir::QParams {
                        scale: 1.0,
                        zero_point: 0,
                    },
                    _ => g.output_quant(o).context("internal: output parameters")?,
                };
                let y = crate::stats::dequantized(t, q).context("internal: output type")?;
                for (a, b) in w.to_f32_vec().iter().zip(&y) {
                    if a.is_finite() && b.is_finite() {
                        signal += (*a as f64).powi(2);
                        noise += (*a as f64 - *b as f64).powi(2);
                    }
                }
            }
        }
        Ok(if noise == 0.0 {
            f64::INFINITY
        } else {
            10.0 * (signal / noise).log10()
        })
    }
}

/// Relative noise power of an SQNR.
fn noise(db: f64) -> f64 {
    10f64.powf(-db / 10.0)
}

fn db(noise: f64) -> f64 {
    if noise <= 0.0 {
        f64::INFINITY
    } else {
        -10.0 * noise.log10()
    }
}

/// Explores the frontier and picks the point meeting `goal`.
pub fn choose(
    model: &Path,
    opts: &CompileOptions,
    goal: Goal,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Choice> {
    let s = setup(model, opts)?;
    let n = s.layers.len();
    let lower = &WIDTHS[1..];
    let total = 1 + n * lower.len() + SPREAD + 1;
    let mut done = 0;
    let mut tick = |progress: &mut dyn FnMut(usize, usize)| {
        done += 1;
        progress(done, total);
    };
    let (all8, base) = s.base()?;
    tick(progress);
    // Added noise of each layer at each lower width: independent trials,
    // as many at a time as there are threads (each one deterministic, so
    // the choice does not depend on the machine), progress after each batch.
    let mut cost: Vec<HashMap<u32, f64>> = vec![HashMap::from([(8, 0.0)]); n];
    let trials: Vec<(usize, u32)> = (0..n)
        .flat_map(|i| lower.iter().map(move |&b| (i, b)))
        .collect();
    for batch in trials.chunks(rayon::current_num_threads().max(1)) {
        let sqnr: Vec<Result<f64>> = batch
            .par_iter()
            .map(|&(i, b)| s.measure(&[(s.layers[i].name.clone(), b)], &all8))
            .collect();
        for (&(i, b), d) in batch.iter().zip(sqnr) {
            cost[i].insert(b, (noise(d?) - noise(base)).max(0.0));
            tick(progress);
        }
    }
    let bytes_of =
        |bits: &[u32]| -> usize { s.layers.iter().zip(bits).map(|(l, &b)| l.bytes(b)).sum() };
    let point = |bits: &[u32], added: f64| Point {
        layer_bits: s
            .layers
            .iter()
            .zip(bits)
            .filter(|(_, &b)| b != 8)
            .map(|(l, &b)| (l.name.clone(), b))
            .collect(),
        weight_bytes: bytes_of(bits),
        predicted_db: db(noise(base) + added),
        measured_db: f64::NAN,
    };
    let frontier: Vec<Point> = pareto(&s.layers, &cost)
        .into_iter()
        .map(|(bits, added)| point(&bits, added))
        .collect();
    let int8 = s.layers.iter().map(|l| l.bytes(8)).sum::<usize>();
    // A byte budget, or the least SQNR.
    let target = match goal {
        Goal::Budget(b) => Ok(b),
        Goal::BudgetPercent(p) => Ok((int8 as f64 * p / 100.0) as usize),
        Goal::MinSqnr(t) => Err(t),
    };
    // Points to measure: an even spread for the table, then the goal's.
    let mut measured: Vec<Point> = vec![];
    let measure = |p: &Point, measured: &mut Vec<Point>| -> Result<usize> {
        if let Some(i) = measured.iter().position(|m| m.layer_bits == p.layer_bits) {
            return Ok(i);
        }
        let mut p = p.clone();
        p.measured_db = if p.layer_bits.is_empty() {
            base
        } else {
            s.measure(&p.layer_bits, &all8)?
        };
        measured.push(p);
        Ok(measured.len() - 1)
    };
    let spread = SPREAD.min(frontier.len());
    for k in 0..spread {
        let i = if spread == 1 {
            0
        } else {
            k * (frontier.len() - 1) / (spread - 1)
        };
        measure(&frontier[i], &mut measured)?;
        tick(progress);
    }
    let chosen = match target {
        Ok(b) => {
            // The predicted best within the budget, then the best measured.
            let fits: Vec<&Point> = frontier.iter().filter(|p| p.weight_bytes <= b).collect();
            let Some(best) = fits
                .iter()
                .max_by(|x, y| x.predicted_db.total_cmp(&y.predicted_db))
            else {
                bail!(
                    "--weight-budget: no choice fits {b} bytes of weights (the smallest takes {} of the 8-bit {int8})",
                    frontier.iter().map(|p| p.weight_bytes).min().unwrap_or(int8)
                );
            };
            measure(best, &mut measured)?;
            (0..measured.len())
                .filter(|&i| measured[i].weight_bytes <= b)
                .max_by(|&x, &y| measured[x].measured_db.total_cmp(&measured[y].measured_db))
                .context("internal: nothing measured within the budget")?
        }
        Err(t) => {
            // The smallest predicted to reach it, then larger ones until
            // one measures it.
            let mut found = None;
            for p in frontier.iter().filter(|p| p.predicted_db >= t).take(8) {
                let i = measure(p, &mut measured)?;
                if measured[i].measured_db >= t {
                    found = Some(i);
                    break;
                }
            }
            let best = (0..measured.len())
                .filter(|&i| measured[i].measured_db >= t)
                .min_by_key(|&i| measured[i].weight_bytes);
            match found.and(best) {
                Some(i) => i,
                None => bail!(
                    "--min-sqnr: no choice reaches {t} dB at the outputs (all 8-bit measures {base:.1} dB)"
                ),
            }
        }
    };
    progress(total, total);
    let chosen_bits = measured[chosen].layer_bits.clone();
    measured.sort_by_key(|p| std::cmp::Reverse(p.weight_bytes));
    let chosen = measured
        .iter()
        .position(|p| p.layer_bits == chosen_bits)
        .context("internal: chosen point")?;
    Ok(Choice {
        points: measured,
        chosen,
        int8_bytes: int8,
        layers: n,
        samples: s.samples.len(),
    })
}

/// The Pareto frontier of (weight bytes, predicted added noise) over every
/// assignment of [`WIDTHS`] to the layers, by dynamic programming over the
/// bytes in at most [`BUCKETS`] units (each layer's bytes rounded up to a
/// unit, so a point never takes more than it says): from the largest to the
/// smallest, each point adds strictly less noise than every smaller one.
fn pareto(layers: &[Layer], cost: &[HashMap<u32, f64>]) -> Vec<(Vec<u32>, f64)> {
    let int8: usize = layers.iter().map(|l| l.bytes(8)).sum();
    let unit = int8.div_ceil(BUCKETS).max(1);
    let units = |l: &Layer, b: u32| l.bytes(b).div_ceil(unit);
    let cap: usize = layers.iter().map(|l| units(l, 8)).sum();
    // best[u]: least noise with exactly u units; pick[i][u]: layer i's width.
    let mut best = vec![f64::INFINITY; cap + 1];
    best[0] = 0.0;
    let mut pick: Vec<Vec<u8>> = Vec::with_capacity(layers.len());
    for (l, c) in layers.iter().zip(cost) {
        let mut next = vec![f64::INFINITY; cap + 1];
        let mut choice = vec![0u8; cap + 1];
        for (u, &b) in best.iter().enumerate() {
            if !b.is_finite() {
                continue;
            }
            for (k, w) in WIDTHS.iter().enumerate() {
                let v = u + units(l, *w);
                if v <= cap && b + c[w] < next[v] {
                    next[v] = b + c[w];
                    choice[v] = k as u8;
                }
            }
        }
        best = next;
        pick.push(choice);
    }
    let mut out = vec![];
    let mut least = f64::INFINITY;
    for (u, &noise) in best.iter().enumerate() {
        if noise < least - 1e-15 {
            least = noise;
            let mut bits = vec![8u32; layers.len()];
            let mut at = u;
            for i in (0..layers.len()).rev() {
                let w = WIDTHS[pick[i][at] as usize];
                bits[i] = w;
                at -= units(&layers[i], w);
            }
            out.push((bits, noise));
        }
    }
    out.reverse();
    out
}

/// The frontier as a table (chosen point marked `*`).
pub fn render(c: &Choice) -> String {
    let int8 = c.int8_bytes.max(1);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "--quantize auto: measured points of the frontier (outputs' SQNR against float on {} calibration samples)",
        c.samples
    );
    let _ = writeln!(
        out,
        "  {:>12} {:>8} {:>10} {:>10}  layers at 8/4/2 bits",
        "weight bytes", "of int8", "predicted", "measured"
    );
    for (i, p) in c.points.iter().enumerate() {
        let at = |b: u32| p.layer_bits.iter().filter(|(_, w)| *w == b).count();
        let lowered = p.layer_bits.len();
        let _ = writeln!(
            out,
            "{} {:>12} {:>7.1}% {:>7.1} dB {:>7.1} dB  {}/{}/{}",
            if i == c.chosen { "*" } else { " " },
            p.weight_bytes,
            100.0 * p.weight_bytes as f64 / int8 as f64,
            p.predicted_db,
            p.measured_db,
            c.layers - lowered,
            at(4),
            at(2)
        );
    }
    let p = &c.points[c.chosen];
    let bits: Vec<String> = p
        .layer_bits
        .iter()
        .map(|(n, b)| format!("{n}={b}"))
        .collect();
    let _ = writeln!(
        out,
        "chosen: {}, {} bytes of weights ({:.1}% of 8-bit), {:.1} dB",
        if bits.is_empty() {
            "all 8-bit".to_string()
        } else {
            format!("--bits {}", bits.join(","))
        },
        p.weight_bytes,
        100.0 * p.weight_bytes as f64 / int8 as f64,
        p.measured_db
    );
    out
}

/// The frontier as an SVG plot: measured output SQNR against weight bytes,
/// the chosen point circled.
pub fn svg(c: &Choice) -> String {
    let (w, h, m) = (640.0, 400.0, 60.0);
    let xs: Vec<f64> = c.points.iter().map(|p| p.weight_bytes as f64).collect();
    let ys: Vec<f64> = c
        .points
        .iter()
        .map(|p| {
            if p.measured_db.is_finite() {
                p.measured_db
            } else {
                100.0
            }
        })
        .collect();
    let (x0, x1) = (0.0, xs.iter().cloned().fold(1.0, f64::max));
    let y0 = ys.iter().cloned().fold(f64::INFINITY, f64::min).min(0.0);
    let y1 = ys
        .iter()
        .cloned()
        .fold(f64::NEG_INFINITY, f64::max)
        .max(y0 + 1.0);
    let px = |x: f64| m + (x - x0) / (x1 - x0) * (w - 2.0 * m);
    let py = |y: f64| h - m - (y - y0) / (y1 - y0) * (h - 2.0 * m);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<line x1="{m}" y1="{b}" x2="{r}" y2="{b}" stroke="black"/><line x1="{m}" y1="{m}" x2="{m}" y2="{b}" stroke="black"/>"#,
        b = h - m,
        r = w - m
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">weight bytes (0 to {x1:.0})</text>"#,
        w / 2.0,
        h - 20.0
    );
    let _ = writeln!(
        s,
        r#"<text x="16" y="{}" transform="rotate(-90 16 {})" text-anchor="middle">output SQNR, dB ({y0:.1} to {y1:.1})</text>"#,
        h / 2.0,
        h / 2.0
    );
    let path: Vec<String> = xs
        .iter()
        .zip(&ys)
        .map(|(&x, &y)| format!("{:.1},{:.1}", px(x), py(y)))
        .collect();
    let _ = writeln!(
        s,
        r#"<polyline points="{}" fill="none" stroke="steelblue" stroke-width="2"/>"#,
        path.join(" ")
    );
    for (i, (&x, &y)) in xs.iter().zip(&ys).enumerate() {
        let r = if i == c.chosen { 6 } else { 3 };
        let fill = if i == c.chosen {
            "crimson"
        } else {
            "steelblue"
        };
        let _ = writeln!(
            s,
            r#"<circle cx="{:.1}" cy="{:.1}" r="{r}" fill="{fill}"/>"#,
            px(x),
            py(y)
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A trial seeded with the all-8-bit graph's values measures exactly
    /// what a full interpreter run of its graph does, for every layer and
    /// width of the digits CNN; and the seeding skips work: a lowered layer
    /// shares every node upstream of it with the base, the last layer most.
    #[test]
    fn seeded_trials_measure_what_full_runs_do() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/digits");
        let opts = CompileOptions {
            quantize: Some(crate::QuantizeOptions {
                config: Default::default(),
                data: crate::CalibrationData::Path(dir.join("calib.npy")),
                progress: Default::default(),
            }),
            ..Default::default()
        };
        let s = setup(&dir.join("model.onnx"), &opts).expect("setup");
        let (base, db) = s.base().expect("base");
        assert_eq!(db.to_bits(), s.sqnr(&base.g, None, None).unwrap().to_bits());
        let mut most = 0;
        for l in &s.layers {
            for b in [4, 2] {
                let bits = [(l.name.clone(), b)];
                let g = s.graph(&bits).unwrap();
                let shared = shared_nodes(&g, &base.g).unwrap().len();
                assert!(
                    shared < g.node_count(),
                    "{} at {b}: nothing changed",
                    l.name
                );
                most = most.max(shared);
                let seeded = s.measure(&bits, &base).unwrap();
                let full = s.sqnr(&g, None, None).unwrap();
                assert_eq!(seeded.to_bits(), full.to_bits(), "{} at {b}", l.name);
            }
        }
        assert!(
            most > base.g.node_count() / 2,
            "at most {most} nodes shared"
        );
    }

    #[test]
    fn budgets_parse() {
        assert_eq!(parse_budget("40KB"), Ok(Goal::Budget(40 * 1024)));
        assert_eq!(parse_budget("1000"), Ok(Goal::Budget(1000)));
        assert_eq!(parse_budget("2 MiB"), Ok(Goal::Budget(2 << 20)));
        assert_eq!(parse_budget("55%"), Ok(Goal::BudgetPercent(55.0)));
        for bad in ["", "x", "-3KB", "0%", "150%", "KB"] {
            assert!(parse_budget(bad).is_err(), "{bad}");
        }
    }

    /// Two layers: the frontier holds every assignment no smaller one beats,
    /// from the largest.
    #[test]
    fn pareto_keeps_only_undominated_assignments() {
        let layers = [("a", 800), ("b", 80)].map(|(n, w)| Layer {
            name: n.into(),
            weights: w,
            depthwise: false,
            macs: 0,
        });
        let cost = [
            HashMap::from([(8, 0.0), (4, 0.001), (2, 0.1)]),
            HashMap::from([(8, 0.0), (4, 0.05), (2, 0.2)]),
        ];
        let f = pareto(&layers, &cost);
        let bits: Vec<Vec<u32>> = f.iter().map(|(b, _)| b.clone()).collect();
        // Bytes / noise: (8,4) 840/.05 loses to (4,8) 480/.001, (8,2)
        // 820/.2 too, and (4,2) 420/.201 to (2,8) 280/.1.
        assert_eq!(
            bits,
            vec![
                vec![8, 8],
                vec![4, 8],
                vec![4, 4],
                vec![2, 8],
                vec![2, 4],
                vec![2, 2],
            ]
        );
        assert!(f.windows(2).all(|w| w[0].1 < w[1].1));
        // A layer whose bits cost nothing is at 2 bits everywhere.
        let cost = [
            HashMap::from([(8, 0.0), (4, 0.5), (2, 0.6)]),
            HashMap::from([(8, 0.0), (4, 0.0), (2, 0.0)]),
        ];
        let f = pareto(&layers, &cost);
        assert_eq!(f[0].0, vec![8, 2], "b's bits are free");
        assert!(f.iter().all(|(b, _)| b[1] == 2));
    }

    #[test]
    fn storage_follows_the_packed_panels() {
        let l = Layer {
            name: "c".into(),
            weights: 9,
            depthwise: false,
            macs: 0,
        };
        assert_eq!(
            (l.bytes(8), l.bytes(4), l.bytes(3), l.bytes(2)),
            (9, 5, 5, 3)
        );
        let dw = Layer {
            depthwise: true,
            ..l
        };
        assert_eq!(dw.bytes(2), 9);
    }
}
