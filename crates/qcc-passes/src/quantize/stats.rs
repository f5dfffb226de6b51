//! The `--stats` report of a quantized compilation: one row per quantized
//! layer, the nodes left in float and why, and the counts of quantize,
//! dequantize and requantize ops against the naive QDQ insertion.

use crate::context::Range;
use qcc_ir::{Graph, Op, QParams};
use std::fmt::Write;

/// Numbers of quantization ops in a graph.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QdqCounts {
    pub quantize: usize,
    pub dequantize: usize,
    pub requantize: usize,
}

impl QdqCounts {
    /// Counts the `Quantize`, `Dequantize` and `Requantize` nodes of `g`.
    pub fn of(g: &Graph) -> QdqCounts {
        let mut c = QdqCounts::default();
        for id in g.node_ids() {
            match g.node(id).op {
                Op::Quantize { .. } => c.quantize += 1,
                Op::Dequantize { .. } => c.dequantize += 1,
                Op::Requantize { .. } => c.requantize += 1,
                _ => {}
            }
        }
        c
    }

    pub fn total(&self) -> usize {
        self.quantize + self.dequantize + self.requantize
    }
}

/// One quantized layer (a module or another integer op).
#[derive(Clone, Debug, PartialEq)]
pub struct LayerStat {
    /// Name of the node (a module's anchor).
    pub name: String,
    /// The node producing the layer's 8-bit result (the activation of a
    /// module with a table, else `name`), to follow it through `cancel-qdq`.
    pub output_node: String,
    /// What it became, e.g. `qconv+relu`, `qgemm+lut(sigmoid)`, `qadd`, `max_pool`.
    pub kind: String,
    /// Bits of weights (0 when the layer has none) and of activations.
    pub weight_bits: u32,
    pub act_bits: u32,
    /// Ternary weights (TNT, `--ternary`): shown as `t` bits.
    pub ternary: bool,
    /// Smallest and largest weight scale (over output channels).
    pub weight_scale: Option<(f32, f32)>,
    /// SQNR of the quantized weights against the float ones, in dB.
    pub weight_sqnr_db: Option<f64>,
    /// Parameters of the layer's output.
    pub output: QParams,
    /// The calibrated range of the output and what calibration observed.
    pub range: Option<Range>,
    pub observed: Option<Range>,
    /// Estimated SQNR of the output's quantization (from calibration), in dB.
    pub act_sqnr_db: Option<f64>,
}

/// Everything `--stats` prints.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QuantStats {
    pub layers: Vec<LayerStat>,
    /// Nodes that stayed float although quantizing: `(name, reason)`.
    pub float_nodes: Vec<(String, String)>,
    /// Counts right after `insert-qdq`: every integer op with quantize on its
    /// float inputs and dequantize on its output (one pair per quantized
    /// tensor, as ONNX Runtime's QDQ format has; its weight and bias
    /// dequantize nodes are not counted).
    pub naive: QdqCounts,
    /// Counts in the final graph (after `cancel-qdq`).
    pub final_counts: QdqCounts,
}

fn db(x: Option<f64>) -> String {
    match x {
        Some(v) if v.is_infinite() => "inf".into(),
        Some(v) => format!("{v:.1}"),
        None => "-".into(),
    }
}

fn range(r: Option<Range>) -> String {
    r.map_or("-".into(), |r| format!("[{:.4}, {:.4}]", r.min, r.max))
}

impl QuantStats {
    /// The report as a text table.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:<24} {:<22} {:>5} {:>21} {:>9} {:>12} {:>5} {:>21} {:>21} {:>9}",
            "layer",
            "kind",
            "bits",
            "weight scale",
            "w SQNR",
            "out scale",
            "zp",
            "calibrated range",
            "observed range",
            "SQNR est"
        );
        for l in &self.layers {
            let bits = if l.ternary {
                format!("t/{}", l.act_bits)
            } else if l.weight_bits > 0 {
                format!("{}/{}", l.weight_bits, l.act_bits)
            } else {
                format!("-/{}", l.act_bits)
            };
            let ws = l
                .weight_scale
                .map_or("-".into(), |(a, b)| format!("{a:.3e}..{b:.3e}"));
            let _ = writeln!(
                s,
                "{:<24} {:<22} {:>5} {:>21} {:>9} {:>12.4e} {:>5} {:>21} {:>21} {:>9}",
                l.name,
                l.kind,
                bits,
                ws,
                db(l.weight_sqnr_db),
                l.output.scale,
                l.output.zero_point,
                range(l.range),
                range(l.observed),
                db(l.act_sqnr_db)
            );
        }
        for (name, why) in &self.float_nodes {
            let _ = writeln!(s, "{name:<24} float: {why}");
        }
        let (n, f) = (&self.naive, &self.final_counts);
        let _ = writeln!(
            s,
            "quantization ops: {} quantize, {} dequantize, {} requantize = {} \
             (naive QDQ insertion: {} quantize + {} dequantize = {})",
            f.quantize,
            f.dequantize,
            f.requantize,
            f.total(),
            n.quantize,
            n.dequantize,
            n.total()
        );
        s
    }
}
