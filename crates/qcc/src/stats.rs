//! The quantization part of `--stats`: the table the quantization passes
//! record (`PassContext::quant_stats`: per layer bits, scales, calibrated
//! range, estimated SQNR; nodes left in float; quantize, dequantize and
//! requantize counts against the naive QDQ insertion), followed by the SQNR
//! *measured* on the calibration set.
//!
//! **Measured SQNR** of a layer is `10·log10(Σ x² / Σ (x − x̂)²)` over every
//! calibration sample, where `x` is the float graph's value and `x̂` the
//! quantized graph's value at the same point, dequantized with its
//! quantization parameters: the error accumulated up to that layer, not just
//! the rounding of its own output. Graph outputs get their own line.
//!
//! **Matching values.** The float graph is the pipeline stopped after
//! `calibrate`, with the modules `fuse-modules` found in it. A layer's
//! quantized value is the 8-bit output of the node named by its
//! `LayerStat::output_node`; its float value is the output of the module
//! anchored at the float node named `LayerStat::name` (after the module's
//! activation), or that node's output when it anchors no module. Parameters
//! come from the quantized value's type, else from the layer's recorded
//! output parameters. A layer that cannot be matched shows `-` with a note.

use crate::calibration::Samples;
use crate::{optimize_file, CompileOptions};
use anyhow::{Context, Result};
use qcc_ir::quant::dequantize;
use qcc_ir::{DType, Graph, NodeId, QParams, Tensor, TensorData, ValueId};
use qcc_passes::context::{QdqCounts, QuantStats};
use qcc_passes::PassContext;
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::path::Path;

/// The quantization report of one compilation.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// What the passes recorded, with the final counts taken from the graph.
    pub stats: QuantStats,
    /// Measured SQNR (dB, `+inf` when exact) per layer of `stats.layers`.
    pub measured: Vec<Option<f64>>,
    /// Measured SQNR of each graph output, by output name.
    pub outputs: Vec<(String, Option<f64>)>,
    pub samples: usize,
    /// Remarks printed under the table (what could not be measured and why).
    pub notes: Vec<String>,
}

/// Σ x² and Σ (x − x̂)² of one compared value.
#[derive(Clone, Copy, Debug, Default)]
struct Power {
    signal: f64,
    noise: f64,
}

impl Power {
    fn add(&mut self, float: &[f32], approx: &[f32]) {
        for (&x, &y) in float.iter().zip(approx) {
            let (x, y) = (x as f64, y as f64);
            self.signal += x * x;
            self.noise += (x - y) * (x - y);
        }
    }

    fn db(&self) -> f64 {
        if self.noise == 0.0 {
            f64::INFINITY
        } else if self.signal == 0.0 {
            f64::NEG_INFINITY
        } else {
            10.0 * (self.signal / self.noise).log10()
        }
    }
}

/// A quantized value compared with a float one.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Probe {
    float: ValueId,
    quant: ValueId,
    q: QParams,
}

/// Builds the report for `quant`, the graph `optimize_file(model, opts)`
/// produced with context `cx`. Runs the float and the quantized graph on
/// every calibration sample; `progress(done, total)` follows that.
pub fn report(
    model: &Path,
    opts: &CompileOptions,
    quant: &Graph,
    cx: &PassContext,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Report> {
    let mut stats = cx.quant_stats.clone();
    stats.final_counts = QdqCounts::of(quant);
    let mut notes = vec![];
    // The float graph and the modules found in it.
    let (float, float_cx) = optimize_file(model, opts, Some("calibrate"))?;
    let probes: Vec<Option<Probe>> = stats
        .layers
        .iter()
        .map(|l| {
            let float_v = float_value(&float, &float_cx, &l.name)?;
            probe(quant, float_v, &l.output_node, Some(l.output))
        })
        .collect();
    if let Some(i) = probes.iter().position(Option::is_none) {
        notes.push(format!(
            "'-': no value of the quantized graph matches layer '{}' (see the module docs of qcc::stats)",
            stats.layers[i].name
        ));
    }
    let samples = &cx.calibration;
    let (layer_power, output_power) = measure(&float, quant, samples, &probes, progress)?;
    let measured = layer_power.iter().map(|p| p.map(|p| p.db())).collect();
    let outputs: Vec<(String, Option<f64>)> = quant
        .outputs
        .iter()
        .zip(&output_power)
        .map(|(o, p)| (o.name.clone(), p.map(|p| p.db())))
        .collect();
    if outputs.iter().any(|(_, p)| p.is_none()) {
        notes.push(
            "'-' output: not float (8-bit, whose parameters are not recorded, or bool)".to_string(),
        );
    }
    Ok(Report {
        stats,
        measured,
        outputs,
        samples: samples.len(),
        notes,
    })
}

/// The float value of the layer named `name`: its module's output, or the
/// node's (see the module docs).
fn float_value(float: &Graph, float_cx: &PassContext, name: &str) -> Option<ValueId> {
    let f_node = node_named(float, name)?;
    Some(
        float_cx
            .module_of(f_node)
            .filter(|m| m.anchor == f_node)
            .map_or(ValueId::of(f_node), |m| m.output()),
    )
}

/// Pairs `float_v` with the 8-bit output of node `output_node` of the
/// quantized graph and its parameters.
fn probe(
    quant: &Graph,
    float_v: ValueId,
    output_node: &str,
    recorded: Option<QParams>,
) -> Option<Probe> {
    let quant_v = quant.node_ids().into_iter().map(ValueId::of).find(|&v| {
        quant.node(v.node).name == output_node && !quant.value_type(v).dtype.is_float()
    })?;
    let q = quant.value_type(quant_v).quant.or(recorded)?;
    Some(Probe {
        float: float_v,
        quant: quant_v,
        q,
    })
}

fn node_named(g: &Graph, name: &str) -> Option<NodeId> {
    g.node_ids().into_iter().find(|&id| g.node(id).name == name)
}

type Powers = (Vec<Option<Power>>, Vec<Option<Power>>);

/// Runs both graphs on every sample; accumulates the power of each probe and
/// of each graph output.
fn measure(
    float: &Graph,
    quant: &Graph,
    samples: &Samples,
    probes: &[Option<Probe>],
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Powers> {
    let mut layer: Vec<Option<Power>> = probes
        .iter()
        .map(|p| p.as_ref().map(|_| Power::default()))
        .collect();
    let one = QParams {
        scale: 1.0,
        zero_point: 0,
    };
    let out_q: Vec<Option<QParams>> = (0..quant.outputs.len())
        .map(|i| match quant.value_type(quant.outputs[i].value).dtype {
            DType::F32 => Some(one),
            _ => quant.output_quant(i),
        })
        .collect();
    let mut outputs: Vec<Option<Power>> =
        out_q.iter().map(|q| q.map(|_| Power::default())).collect();
    let mut by_quant: HashMap<ValueId, Vec<usize>> = HashMap::new();
    for (i, p) in probes.iter().enumerate() {
        if let Some(p) = p {
            by_quant.entry(p.quant).or_default().push(i);
        }
    }
    // Quantized inputs (`--io int8`) are fed the quantized samples.
    let in_q: Vec<Option<QParams>> = (0..quant.inputs().len())
        .map(|i| quant.input_quant(i))
        .collect();
    let wanted: HashSet<ValueId> = probes.iter().flatten().map(|p| p.float).collect();
    for (s, inputs) in samples.iter().enumerate() {
        progress(s, samples.len());
        let mut kept: HashMap<ValueId, Vec<f32>> = HashMap::new();
        let f_out = qcc_interp::run_observed(float, inputs, &mut |v, t| {
            if wanted.contains(&v) {
                kept.insert(v, t.to_f32_vec());
            }
        })
        .with_context(|| format!("--stats: float graph on calibration sample #{s}"))?;
        let q_inputs = quantize_inputs(quant, inputs, &in_q)?;
        let mut mismatched = vec![];
        let q_out = qcc_interp::run_observed(quant, &q_inputs, &mut |v, t| {
            let Some(rows) = by_quant.get(&v) else { return };
            for &i in rows {
                let (Some(p), Some(acc)) = (&probes[i], &mut layer[i]) else {
                    continue;
                };
                let Some(x) = kept.get(&p.float) else {
                    continue;
                };
                match dequantized(t, p.q) {
                    Some(y) if y.len() == x.len() => acc.add(x, &y),
                    _ => mismatched.push(i),
                }
            }
        })
        .with_context(|| format!("--stats: quantized graph on calibration sample #{s}"))?;
        for i in mismatched {
            layer[i] = None;
        }
        for (o, ((f, q), p)) in f_out.iter().zip(&q_out).zip(&out_q).enumerate() {
            let (Some(p), Some(acc)) = (p, &mut outputs[o]) else {
                continue;
            };
            match dequantized(q, *p) {
                Some(y) if y.len() == f.numel() => acc.add(&f.to_f32_vec(), &y),
                _ => outputs[o] = None,
            }
        }
    }
    progress(samples.len(), samples.len());
    Ok((layer, outputs))
}

/// A sample as the quantized graph takes it: 8-bit inputs quantized with
/// their parameters, float ones as they are.
pub(crate) fn quantize_inputs(
    g: &Graph,
    inputs: &[Tensor],
    q: &[Option<QParams>],
) -> Result<Vec<Tensor>> {
    inputs
        .iter()
        .zip(q)
        .enumerate()
        .map(|(i, (t, q))| {
            let Some(q) = q else {
                return Ok(t.clone());
            };
            let ty = g.value_type(ValueId::of(g.inputs()[i])).clone();
            let (lo, hi) = qcc_ir::infer::int8_range(ty.dtype)
                .with_context(|| format!("--stats: input #{i} is {ty}, not 8-bit"))?;
            let v: Vec<i32> = t
                .to_f32_vec()
                .iter()
                .map(|&x| qcc_ir::quant::quantize(x, *q, lo, hi))
                .collect();
            let data = match ty.dtype {
                DType::U8 => TensorData::U8(v.iter().map(|&x| x as u8).collect()),
                _ => TensorData::I8(v.iter().map(|&x| x as i8).collect()),
            };
            Tensor::new(ty.shape.clone(), data)
                .with_context(|| format!("--stats: input #{i} does not have {ty}'s shape"))
        })
        .collect()
}

/// Real values of a tensor: f32 as is, 8-bit and i32 dequantized with `q`.
pub(crate) fn dequantized(t: &Tensor, q: QParams) -> Option<Vec<f32>> {
    Some(match t.data() {
        TensorData::F32(v) => v.clone(),
        TensorData::I8(v) => v.iter().map(|&x| dequantize(x as i32, q)).collect(),
        TensorData::U8(v) => v.iter().map(|&x| dequantize(x as i32, q)).collect(),
        TensorData::I32(v) => v.iter().map(|&x| dequantize(x, q)).collect(),
        _ => return None,
    })
}

fn fmt_db(db: Option<f64>) -> String {
    match db {
        None => "-".into(),
        Some(x) if x == f64::INFINITY => "exact".into(),
        Some(x) => format!("{x:.1}"),
    }
}

/// The report as text: the passes' table, then the measured SQNR.
pub fn render(r: &Report) -> String {
    let mut s = r.stats.render();
    let _ = writeln!(
        s,
        "SQNR measured against float on {} calibration sample(s), in dB:",
        r.samples
    );
    let width = r
        .stats
        .layers
        .iter()
        .map(|l| l.name.chars().count())
        .chain(r.outputs.iter().map(|(n, _)| n.chars().count() + 7))
        .max()
        .unwrap_or(0);
    for (l, db) in r.stats.layers.iter().zip(&r.measured) {
        let _ = writeln!(s, "  {:<width$}  {:>7}", l.name, fmt_db(*db));
    }
    for (name, db) in &r.outputs {
        let label = format!("output {name}");
        let _ = writeln!(s, "  {label:<width$}  {:>7}", fmt_db(*db));
    }
    for note in &r.notes {
        let _ = writeln!(s, "note: {note}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use qcc_ir::{Op, TensorType};
    use qcc_passes::context::LayerStat;

    #[test]
    fn power_in_db() {
        let mut p = Power::default();
        p.add(&[1.0, -1.0], &[1.1, -0.9]);
        // signal 2, noise 0.02 → 20 dB.
        assert!((p.db() - 20.0).abs() < 1e-4, "{}", p.db());
        let mut exact = Power::default();
        exact.add(&[1.0], &[1.0]);
        assert_eq!(exact.db(), f64::INFINITY);
        assert_eq!(fmt_db(Some(exact.db())), "exact");
        assert_eq!(fmt_db(None), "-");
    }

    #[test]
    fn dequantizes_and_quantizes_inputs() {
        let q = QParams {
            scale: 0.5,
            zero_point: 2,
        };
        let t = Tensor::new(vec![3], TensorData::I8(vec![2, 4, -128])).unwrap();
        assert_eq!(dequantized(&t, q), Some(vec![0.0, 1.0, -65.0]));
        let mut g = Graph::new("g");
        g.add_input("x", TensorType::new(DType::I8, vec![3]));
        let x = Tensor::from_f32(vec![3], vec![1.0, -0.25, 1000.0]).unwrap();
        let got = quantize_inputs(&g, std::slice::from_ref(&x), &[Some(q)]).unwrap();
        assert_eq!(got[0].data(), &TensorData::I8(vec![4, 2, 127]));
        let same = quantize_inputs(&g, std::slice::from_ref(&x), &[None]).unwrap();
        assert_eq!(same[0], x);
    }

    /// A float graph `x → relu → y` and its "quantized" version
    /// `x → quantize → dequantize → y`, with the quantize node named like
    /// the relu: the layer's measured SQNR is that of 8-bit rounding.
    #[test]
    fn measures_a_layer_and_an_output() {
        let q = QParams {
            scale: 0.01,
            zero_point: 0,
        };
        let mut f = Graph::new("f");
        let x = ValueId::of(f.add_input("x", TensorType::new(DType::F32, vec![4])));
        let r = f
            .add_node(Op::Unary(qcc_ir::UnaryOp::Relu), "layer", vec![x])
            .unwrap();
        f.add_output("y", ValueId::of(r));
        let mut g = Graph::new("g");
        let x = ValueId::of(g.add_input("x", TensorType::new(DType::F32, vec![4])));
        let qn = g
            .add_node(Op::Quantize { q, to: DType::I8 }, "layer", vec![x])
            .unwrap();
        let d = g
            .add_node(Op::Dequantize { q }, "dq", vec![ValueId::of(qn)])
            .unwrap();
        g.add_output("y", ValueId::of(d));
        let fv = float_value(&f, &PassContext::default(), "layer").unwrap();
        assert_eq!(fv, ValueId::of(r));
        let p = probe(&g, fv, "layer", None).unwrap();
        assert_eq!(p.quant, ValueId::of(qn));
        assert!(probe(&g, fv, "dq", None).is_none()); // float output
        let mut bare = g.clone();
        bare.set_quant(ValueId::of(qn), None);
        assert!(probe(&bare, fv, "layer", None).is_none()); // no params
        let samples = vec![vec![Tensor::from_f32(
            vec![4],
            vec![0.5, 0.123, 0.3, 0.004],
        )
        .unwrap()]];
        let (layers, outs) = measure(&f, &g, &samples, &[Some(p)], &mut |_, _| {}).unwrap();
        let (l, o) = (layers[0].unwrap(), outs[0].unwrap());
        // Errors 0, 0.003, 0, 0.004: noise 2.5e-5 over signal 0.355145.
        assert!((l.noise - 2.5e-5).abs() < 1e-9, "{l:?}");
        assert!((l.db() - 10.0 * (0.355145 / 2.5e-5f64).log10()).abs() < 0.01);
        assert!((o.db() - l.db()).abs() < 1e-9);
    }

    #[test]
    fn report_text() {
        let r = Report {
            stats: QuantStats {
                layers: vec![LayerStat {
                    name: "conv1".into(),
                    output_node: "conv1".into(),
                    kind: "qconv+relu".into(),
                    weight_bits: 8,
                    act_bits: 8,
                    ternary: false,
                    weight_scale: Some((0.01, 0.02)),
                    weight_sqnr_db: Some(40.0),
                    output: QParams {
                        scale: 0.25,
                        zero_point: -3,
                    },
                    range: None,
                    observed: None,
                    act_sqnr_db: Some(35.0),
                }],
                ..Default::default()
            },
            measured: vec![Some(31.25)],
            outputs: vec![("y".into(), Some(25.0)), ("z".into(), None)],
            samples: 4,
            notes: vec!["a note".into()],
        };
        let s = render(&r);
        for needle in [
            "conv1",
            "qconv+relu",
            "4 calibration sample(s)",
            "31.2",
            "output y     25.0",
            "output z        -",
            "note: a note",
        ] {
            assert!(s.contains(needle), "missing '{needle}' in:\n{s}");
        }
    }
}
