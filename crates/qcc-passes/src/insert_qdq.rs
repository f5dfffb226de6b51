//! `insert-qdq`: turns every unified module and every op with an integer
//! kernel into that kernel, with `Quantize` on its float inputs and
//! `Dequantize` on its output — the naive form, which is what ONNX Runtime's
//! QDQ format has (one quantize/dequantize pair per quantized tensor). The
//! counts of this form are recorded for `--stats`; `cancel-qdq` then removes
//! what it can.
//!
//! What becomes integer (walking the graph in topological order):
//! - Conv / Gemm / MatMul / BatchNorm modules, always: `QConv` or `QGemm`
//!   (MatMul with a non-2-D A is reshaped to 2-D and back; Gemm's `trans_a`
//!   becomes an i8 `Transpose`; a BatchNorm is a depthwise 1×1 `QConv`).
//!   Weights are symmetric i8 in [-127, 127], per output channel unless
//!   `per_channel` is false; the bias is i32 at scale `s_x·s_w[m]` (rounded to
//!   nearest); the epilogue factor is `s_x·s_w[m]/s_y`.
//! - Add / Sub / Mul modules, when an operand is already integer: `QAdd`
//!   (operand multipliers `round(s_a/s_max·2^20)`, `±round(s_b/s_max·2^20)`,
//!   epilogue `s_max·2^-20/s_y`: |acc| < 2^29, error within one output step)
//!   or `QMul` (epilogue `s_a·s_b/s_y`). Constant operands become i8 constants.
//! - A module's activation: Relu/Clip → the epilogue's clamp (the output uses
//!   the range *after* the activation); LeakyRelu, HardSwish, HardSigmoid,
//!   Sigmoid, Tanh → a `Lut` from the pre-activation parameters.
//! - When their input is integer: uniform-window AveragePool → `QAvgPool`,
//!   ReduceMean → `QMean` (both with their own output range), standalone
//!   table activations → `Lut`, and MaxPool, Reshape, Transpose, Slice, Pad
//!   (value quantized) on i8 with the input's parameters; Concat on i8 with one
//!   shared scale (its own calibrated range) for all inputs.
//! - Standalone Relu/Clip stay float here (`cancel-qdq` turns them into
//!   integer clamps); with pow2 scales their output parameters are their
//!   input's, with fixed-point ones they come from their own range.
//! - Everything else stays float, as do nodes named in `keep_float`, a
//!   normalization's statistics (mean, centering, variance, the division:
//!   `quantize::norm`; LayerNormalization's scale and bias follow them), layers
//!   whose worst-case i32 accumulator (checked with the actual weights and
//!   bias) could overflow, and (with pow2 scales) pools whose cell count is
//!   not a power of two. Each such node is listed in the stats with a reason.
//!
//! Activations are asymmetric i8 (`quantize::params::activation`). With
//! `ScaleFormat::Pow2` every scale is a power of two (rounded up so ranges
//! still fit; an output scale is raised further when a rescale would
//! otherwise exceed 1), so every epilogue is `Rescale::pow2`, multiplier 1.
//! Graph inputs and outputs stay f32 unless `io_int8`, which makes every f32
//! graph input and output i8 (their parameters in their types).
//!
//! Needs: `cx.quant` (does nothing and returns `Ok(false)` without it),
//! `cx.modules` (`fuse-modules`) and `cx.ranges` (`calibrate`) for this graph.
//! Guarantees: the type of every 8-bit activation value carries its
//! parameters (`TensorType::quant`); `cx.quant_stats` has the per-layer table, the float nodes and the
//! naive counts; `cx.modules` is cleared (its nodes are gone).

use crate::context::{LayerStat, Module, QuantConfig, QuantStats, Range, ScaleFormat, ValueStats};
use crate::quantize::moments::InputMoments;
use crate::quantize::params;
use crate::quantize::stats::QdqCounts;
use crate::{Changed, PassContext, PassError};
use qcc_ir::quant::quantize;
use qcc_ir::{DType, Graph, NodeId, Op, QParams, Tensor, TensorData, UnaryOp, ValueId};
use std::collections::{HashMap, HashSet};

pub(crate) const PASS: &str = "insert-qdq";

pub(crate) fn fail(msg: String) -> PassError {
    PassError::Failed { pass: PASS, msg }
}

/// What happened to a node.
pub(crate) enum Outcome {
    /// Replaced by integer code.
    Done,
    /// Left in float for this reason (reported by `--stats`).
    Float(String),
}

/// The state of the rewrite.
pub(crate) struct Rewriter<'a> {
    pub g: &'a mut Graph,
    pub cfg: QuantConfig,
    ranges: &'a HashMap<ValueId, Range>,
    vstats: &'a HashMap<ValueId, ValueStats>,
    /// Input moments of the layers quantized below 8 bits, by anchor.
    pub layer_inputs: &'a HashMap<NodeId, InputMoments>,
    /// Dequantize outputs created here, with the parameters of their input.
    pub int_src: HashMap<ValueId, QParams>,
    /// Parameters chosen for float values of the original graph.
    memo: HashMap<ValueId, QParams>,
    /// The 8-bit form of a float value under given parameters.
    qmemo: HashMap<(ValueId, u32, i32), ValueId>,
    /// Normalization statistics, kept float (`quantize::norm`).
    norm: HashSet<NodeId>,
    pub stats: QuantStats,
}

impl<'a> Rewriter<'a> {
    pub fn fmt(&self) -> ScaleFormat {
        self.cfg.scales
    }

    pub fn keep_float(&self, id: NodeId) -> bool {
        self.cfg.keep_float.contains(&self.g.node(id).name)
    }

    /// Adds a node, mapping shape errors to this pass's errors.
    pub fn add(
        &mut self,
        op: Op,
        name: String,
        inputs: Vec<ValueId>,
    ) -> Result<ValueId, PassError> {
        self.g
            .add_node(op, name, inputs)
            .map(ValueId::of)
            .map_err(|e| fail(format!("internal: {e}")))
    }

    /// Adds an 8-bit value's node with its parameters in its type.
    pub fn add_q(
        &mut self,
        op: Op,
        name: String,
        inputs: Vec<ValueId>,
        q: QParams,
    ) -> Result<ValueId, PassError> {
        let v = self.add(op, name, inputs)?;
        self.g.set_quant(v, Some(q));
        Ok(v)
    }

    /// Whether `v` is the dequantized output of integer code.
    pub fn is_int(&self, v: ValueId) -> bool {
        self.int_src.contains_key(&v)
    }

    pub fn any_int(&self, vs: &[ValueId]) -> bool {
        vs.iter().any(|v| self.is_int(*v))
    }

    /// The calibrated range of a float value (constants: their own extremes).
    pub fn range_of(&self, v: ValueId) -> Result<Range, PassError> {
        if let Some(t) = self.g.const_value(v) {
            let x = t.to_f32_vec();
            let lo = x
                .iter()
                .cloned()
                .filter(|x| x.is_finite())
                .fold(0.0, f32::min);
            let hi = x
                .iter()
                .cloned()
                .filter(|x| x.is_finite())
                .fold(0.0, f32::max);
            return Ok(Range { min: lo, max: hi });
        }
        self.ranges.get(&v).copied().ok_or_else(|| {
            fail(format!(
                "no calibrated range for the output of node '{}' (run calibrate first)",
                self.g.node(v.node).name
            ))
        })
    }

    /// Parameters for the float value `v` as an integer input.
    pub fn params(&mut self, v: ValueId) -> Result<QParams, PassError> {
        if let Some(q) = self.int_src.get(&v) {
            return Ok(*q);
        }
        if let Some(q) = self.memo.get(&v) {
            return Ok(*q);
        }
        // Relu-as-clamp: with pow2 scales a standalone Relu/Clip after integer
        // code keeps its input's parameters (a narrower range would need a
        // factor above 1); with fixed-point ones it gets its own range.
        let n = self.g.node(v.node);
        let q = match (&n.op, n.inputs().first()) {
            (Op::Unary(UnaryOp::Relu | UnaryOp::Clip { .. }), Some(x))
                if self.is_int(*x)
                    && !self.keep_float(v.node)
                    && self.fmt() == ScaleFormat::Pow2 =>
            {
                self.int_src[x]
            }
            _ => params::activation(self.range_of(v)?, self.fmt()),
        };
        self.memo.insert(v, q);
        Ok(q)
    }

    /// The 8-bit form of float value `v` under `q`: an i8 constant for
    /// constants, else a (shared) `Quantize` node.
    pub fn quantized(&mut self, v: ValueId, q: QParams) -> Result<ValueId, PassError> {
        let key = (v, q.scale.to_bits(), q.zero_point);
        if let Some(i) = self.qmemo.get(&key) {
            return Ok(*i);
        }
        let name = format!("{}/quantize", self.g.node(v.node).name);
        let i = if let Some(t) = self.g.const_value(v) {
            let data: Vec<i8> = t
                .to_f32_vec()
                .iter()
                .map(|&x| quantize(x, q, -128, 127) as i8)
                .collect();
            let t = Tensor::new(t.shape().to_vec(), TensorData::I8(data))
                .ok_or_else(|| fail("internal: constant shape".into()))?;
            let c = ValueId::of(self.g.add_const(name, t));
            self.g.set_quant(c, Some(q));
            c
        } else {
            self.add_q(Op::Quantize { q, to: DType::I8 }, name, vec![v], q)?
        };
        self.qmemo.insert(key, i);
        Ok(i)
    }

    /// Makes the 8-bit `int` (parameters `q`) stand for the float value
    /// `orig`: a `Dequantize` replaces every use of `orig`.
    pub fn emit(&mut self, orig: ValueId, int: ValueId, q: QParams) -> Result<(), PassError> {
        let name = format!("{}/dequantize", self.g.node(orig.node).name);
        self.g.set_quant(int, Some(q));
        let dq = self.add(Op::Dequantize { q }, name, vec![int])?;
        self.g.replace_all_uses(orig, dq);
        self.int_src.insert(dq, q);
        Ok(())
    }

    /// A row of the `--stats` table for a layer whose result is `orig` (float graph).
    /// `output_node` names the node producing its 8-bit result.
    pub fn layer(
        &self,
        name: &str,
        kind: String,
        orig: ValueId,
        out: QParams,
        output_node: &str,
    ) -> LayerStat {
        let st = self.vstats.get(&orig);
        LayerStat {
            name: name.to_string(),
            kind,
            output_node: output_node.to_string(),
            weight_bits: 0,
            act_bits: 8,
            ternary: false,
            weight_scale: None,
            weight_sqnr_db: None,
            output: out,
            range: self.ranges.get(&orig).copied(),
            observed: st.map(|s| Range {
                min: s.min,
                max: s.max,
            }),
            act_sqnr_db: st.map(|s| s.sqnr_db(out.scale)),
        }
    }

    /// Makes the f32 graph inputs 8-bit (`io_int8`), dequantized for their users.
    fn quantize_inputs(&mut self) -> Result<(), PassError> {
        for id in self.g.inputs().to_vec() {
            let v = ValueId::of(id);
            if !self.g.value_type(v).dtype.is_float() {
                continue;
            }
            let q = params::activation(self.range_of(v)?, self.fmt());
            let users = self.g.users(v);
            self.g.node_mut(id).outputs[0].dtype = DType::I8;
            self.g.set_quant(v, Some(q));
            let name = format!("{}/dequantize", self.g.node(id).name);
            let dq = self.add(Op::Dequantize { q }, name, vec![v])?;
            for (u, i) in users {
                self.g.set_input(u, i, dq);
            }
            for o in &mut self.g.outputs {
                if o.value == v {
                    o.value = dq;
                }
            }
            self.int_src.insert(dq, q);
        }
        Ok(())
    }

    /// Makes the f32 graph outputs 8-bit (`io_int8`).
    fn quantize_outputs(&mut self) -> Result<(), PassError> {
        for i in 0..self.g.outputs.len() {
            let v = self.g.outputs[i].value;
            if !self.g.value_type(v).dtype.is_float() {
                continue;
            }
            let q = self.params(v)?;
            self.g.outputs[i].value = self.quantized(v, q)?;
        }
        Ok(())
    }

    /// Converts one node (and its module's activation); `handled` collects
    /// nodes the walk must skip.
    fn visit(
        &mut self,
        id: NodeId,
        modules: &HashMap<NodeId, Module>,
        handled: &mut HashSet<NodeId>,
    ) -> Result<Option<Outcome>, PassError> {
        let op = self.g.node(id).op.clone();
        if matches!(op, Op::Input { .. } | Op::Const { .. }) {
            return Ok(None);
        }
        if self.keep_float(id) {
            return Ok(Some(Outcome::Float("--keep-float".into())));
        }
        if self.norm.contains(&id) {
            return Ok(Some(Outcome::Float("normalization statistics".into())));
        }
        if let Some(m) = modules.get(&id) {
            if let Some(a) = m.act {
                handled.insert(a);
            }
            if let Some(b) = m.bias {
                handled.insert(b);
            }
            return self.module(m).map(Some);
        }
        self.single(id, &op)
    }
}

pub fn run(g: &mut Graph, cx: &mut PassContext) -> Result<Changed, PassError> {
    let Some(cfg) = cx.quant.clone() else {
        return Ok(false);
    };
    let has_float = g.node_ids().into_iter().any(|id| {
        let n = g.node(id);
        !matches!(n.op, Op::Const { .. }) && n.outputs.iter().any(|t| t.dtype.is_float())
    });
    if cx.ranges.is_empty() && has_float {
        return Err(fail("no activation ranges: run calibrate first".into()));
    }
    let modules: HashMap<NodeId, Module> =
        cx.modules.iter().map(|m| (m.anchor, m.clone())).collect();
    let order = g.topo_order().map_err(|e| fail(e.to_string()))?;
    let norm = crate::quantize::norm::statistics(g);
    let mut rw = Rewriter {
        g,
        cfg,
        ranges: &cx.ranges,
        vstats: &cx.value_stats,
        layer_inputs: &cx.layer_inputs,
        int_src: HashMap::new(),
        memo: HashMap::new(),
        qmemo: HashMap::new(),
        norm,
        stats: QuantStats::default(),
    };
    if rw.cfg.io_int8 {
        rw.quantize_inputs()?;
    }
    let mut handled = HashSet::new();
    for id in order {
        if handled.contains(&id) || !rw.g.contains(id) {
            continue;
        }
        if let Some(Outcome::Float(why)) = rw.visit(id, &modules, &mut handled)? {
            let name = rw.g.node(id).name.clone();
            rw.stats.float_nodes.push((name, why));
        }
    }
    if rw.cfg.io_int8 {
        rw.quantize_outputs()?;
    }
    let mut stats = rw.stats;
    g.remove_dead_nodes();
    g.prune_weights();
    stats.naive = QdqCounts::of(g);
    stats.final_counts = stats.naive;
    cx.quant_stats = stats;
    cx.modules.clear();
    Ok(true)
}
