//! `cancel-qdq`: the dataflow half of Geng et al.'s joint quantization.
//! Starting from the naive form of `insert-qdq`, it rewrites until nothing
//! applies:
//!
//! 1. `Quantize(p₂) ∘ Dequantize(p₁)`: with equal parameters both go (the
//!    consumer reads the 8-bit value); otherwise they merge into one
//!    `Requantize` with factor `s₁/s₂` (kept as is when the format cannot
//!    represent it, e.g. a pow2 factor above 1).
//! 2. Relu-as-clamp: a float `Relu`/`Clip` reading a `Dequantize` becomes an
//!    integer clamp: when all its users quantize with the same parameters, one
//!    `Requantize` to those parameters whose clamp is the activation (it
//!    replaces dequantize, activation and quantizes); otherwise, when the
//!    clamp can merge upstream (rule 3), a clamp-only `Requantize` with
//!    unchanged parameters before the dequantize.
//! 3. A `Requantize` merges into the op producing its input when that op has
//!    no other use: into the epilogue of `QConv`/`QGemm`/`QAdd`/`QMul`/
//!    `QAvgPool`/`QMean` (factors multiplied, rounded once; clamps mapped
//!    through), into another `Requantize`, into a `Lut`'s table, or into a
//!    `Quantize` (new parameters; only without a clamp).
//! 4. Propagation: a `Requantize` after MaxPool, Reshape, Transpose, Slice,
//!    Pad or Concat (on i8; single use) moves before it — exact, since a
//!    requantize is monotone and elementwise; Pad's value is mapped through it
//!    and a Concat gets one per input — when every input can absorb it by 3
//!    (so the move never adds ops). This is how a Concat's shared scale is
//!    pushed into the kernels producing its inputs.
//! 5. Identical quantize/dequantize/requantize nodes reading the same value
//!    merge; identity requantizes (factor 1, same zero point, no clamp) vanish.
//!
//! Needs: `cx.quant` (does nothing and returns `Ok(false)` without it) and
//! the parameters `insert-qdq` put in the types. Guarantees: none of the
//! patterns above is left; every 8-bit activation value still has its
//! parameters in its type (a node that replaces another inherits them);
//! nodes named in
//! `keep_float` stay float; `cx.quant_stats.final_counts` counts the final
//! quantize/dequantize/requantize nodes and the layer table shows the final
//! output parameters.

use crate::context::ScaleFormat;
use crate::quantize::epilogue::{compose, identity, is_identity, requantize};
use crate::quantize::lut::{clamp_bounds, then_requantize};
use crate::quantize::params::rescale;
use crate::quantize::stats::QdqCounts;
use crate::{Changed, PassContext, PassError};
use qcc_ir::infer::int8_range;
use qcc_ir::{DType, Epilogue, Graph, NodeId, Op, QParams, UnaryOp, ValueId};

const PASS: &str = "cancel-qdq";

/// Rewrites give up after this many sweeps (each sweep makes progress, so
/// reaching it is a bug).
const MAX_SWEEPS: usize = 10_000;

fn fail(msg: String) -> PassError {
    PassError::Failed { pass: PASS, msg }
}

fn is_kernel(op: &Op) -> bool {
    matches!(
        op,
        Op::QConv { .. }
            | Op::QGemm { .. }
            | Op::QAdd { .. }
            | Op::QMul { .. }
            | Op::QMatMul { .. }
            | Op::QAvgPool { .. }
            | Op::QMean { .. }
    )
}

fn is_passthrough(op: &Op) -> bool {
    op.keeps_quant()
}

/// `op` with a new epilogue and output type (kernels only).
fn with_epilogue(op: &Op, e: Epilogue, out: DType) -> Option<Op> {
    let mut op = op.clone();
    match &mut op {
        Op::QConv { epi, to, .. }
        | Op::QGemm { epi, to, .. }
        | Op::QAdd { epi, to, .. }
        | Op::QMul { epi, to, .. }
        | Op::QMatMul { epi, to, .. } => {
            *epi = e;
            *to = out;
        }
        Op::QAvgPool { epi, .. } | Op::QMean { epi, .. } => *epi = e,
        _ => return None,
    }
    Some(op)
}

fn epilogue(op: &Op) -> Option<&Epilogue> {
    match op {
        Op::QConv { epi, .. }
        | Op::QGemm { epi, .. }
        | Op::QAdd { epi, .. }
        | Op::QMul { epi, .. }
        | Op::QMatMul { epi, .. }
        | Op::QAvgPool { epi, .. }
        | Op::QMean { epi, .. } => Some(epi),
        _ => None,
    }
}

struct Canceller<'a> {
    g: &'a mut Graph,
    fmt: ScaleFormat,
    keep_float: &'a [String],
}

impl Canceller<'_> {
    fn dtype(&self, v: ValueId) -> DType {
        self.g.value_type(v).dtype
    }

    fn is_8bit(&self, v: ValueId) -> bool {
        int8_range(self.dtype(v)).is_some()
    }

    fn single_use(&self, v: ValueId) -> bool {
        self.g.users(v).len() == 1 && !self.g.is_output(v)
    }

    /// Whether a requantize reading `v` (its only user) could be merged into
    /// `v`'s producer, directly or after moving through passthrough ops.
    fn absorbs(&self, v: ValueId) -> bool {
        let n = self.g.node(v.node);
        match &n.op {
            op if is_kernel(op) => true,
            Op::Lut { .. } | Op::Requantize { .. } => true,
            op if is_passthrough(op) && self.is_8bit(v) => n
                .inputs()
                .iter()
                .all(|i| self.single_use(*i) && self.absorbs(*i)),
            _ => false,
        }
    }

    /// Adds a node.
    fn add(&mut self, op: Op, name: String, inputs: Vec<ValueId>) -> Result<ValueId, PassError> {
        self.g
            .add_node(op, name, inputs)
            .map(ValueId::of)
            .map_err(|e| fail(format!("internal: {e}")))
    }

    /// The quantization parameters in `v`'s type.
    fn quant(&self, v: ValueId) -> Option<QParams> {
        self.g.value_type(v).quant
    }

    /// Replaces every use of `old` by a new node, inheriting `old`'s parameters.
    fn replace(
        &mut self,
        old: ValueId,
        op: Op,
        name: String,
        inputs: Vec<ValueId>,
    ) -> Result<ValueId, PassError> {
        let new = self.add(op, name, inputs)?;
        self.g.set_quant(new, self.quant(old));
        self.g.replace_all_uses(old, new);
        Ok(new)
    }

    /// Rule 1: `Quantize ∘ Dequantize`.
    fn quantize(&mut self, id: NodeId, p2: QParams, to: DType) -> Result<bool, PassError> {
        let out = ValueId::of(id);
        let v = self.g.node(id).inputs()[0];
        let Op::Dequantize { q: p1 } = self.g.node(v.node).op else {
            return Ok(false);
        };
        let x = self.g.node(v.node).inputs()[0];
        if !self.is_8bit(x) {
            return Ok(false);
        }
        if p1 == p2 && self.dtype(x) == to {
            self.g.replace_all_uses(out, x);
            return Ok(true);
        }
        let Some(rs) = rescale(p1.scale as f64 / p2.scale as f64, self.fmt) else {
            return Ok(false);
        };
        let Some((lo, hi)) = int8_range(to) else {
            return Ok(false);
        };
        let op = Op::Requantize {
            in_zero_point: p1.zero_point,
            epi: Epilogue {
                rescale: rs,
                zero_point: p2.zero_point,
                min: lo,
                max: hi,
            },
            to,
        };
        let name = format!("{}/requantize", self.g.node(id).name);
        self.g.set_quant(out, Some(p2));
        self.replace(out, op, name, vec![x])?;
        Ok(true)
    }

    /// Rule 2: Relu/Clip after a dequantize becomes an integer clamp: one
    /// requantize to the parameters its users quantize to, or (when the clamp
    /// can merge upstream) a clamp with unchanged parameters before the dequantize.
    fn clamp(&mut self, id: NodeId, u: UnaryOp) -> Result<bool, PassError> {
        let n = self.g.node(id);
        if self.keep_float.contains(&n.name) {
            return Ok(false);
        }
        let v = n.inputs()[0];
        let Op::Dequantize { q: p1 } = self.g.node(v.node).op else {
            return Ok(false);
        };
        let x = self.g.node(v.node).inputs()[0];
        if self.dtype(x) != DType::I8 {
            return Ok(false);
        }
        let name = n.name.clone();
        let out = ValueId::of(id);
        let users = self.g.users(out);
        let quantized_to = match users.first().map(|(u, _)| &self.g.node(*u).op) {
            Some(Op::Quantize { q, to: DType::I8 }) if !self.g.is_output(out) => Some(*q),
            _ => None,
        }
        .filter(|q| {
            users.iter().all(|(u, _)| {
                self.g.node(*u).op
                    == Op::Quantize {
                        q: *q,
                        to: DType::I8,
                    }
            })
        });
        let mergeable = self.g.users(v).len() == 1 && self.single_use(x) && self.absorbs(x);
        let p2 = match quantized_to {
            Some(q) => q,
            None if mergeable => p1,
            None => return Ok(false),
        };
        let (Some((lo, hi)), Some(rs)) = (
            clamp_bounds(&u, p2),
            rescale(p1.scale as f64 / p2.scale as f64, self.fmt),
        ) else {
            return Ok(false);
        };
        let rs = if p1.scale == p2.scale { identity() } else { rs };
        let op = Op::Requantize {
            in_zero_point: p1.zero_point,
            epi: Epilogue {
                rescale: rs,
                zero_point: p2.zero_point,
                min: lo,
                max: hi,
            },
            to: DType::I8,
        };
        let r = self.add(op, name.clone(), vec![x])?;
        self.g.set_quant(r, Some(p2));
        if quantized_to.is_some() {
            for (q, _) in users {
                self.g.replace_all_uses(ValueId::of(q), r);
            }
        } else {
            self.replace(
                out,
                Op::Dequantize { q: p2 },
                format!("{name}/dequantize"),
                vec![r],
            )?;
        }
        Ok(true)
    }

    /// Rules 3–5 for a requantize.
    fn requantize(
        &mut self,
        id: NodeId,
        in_zp: i32,
        epi: &Epilogue,
        to: DType,
    ) -> Result<bool, PassError> {
        let out = ValueId::of(id);
        let x = self.g.node(id).inputs()[0];
        let Some((lo, hi)) = int8_range(self.dtype(x)) else {
            return Ok(false);
        };
        // (An identity on the integers that relabels their scale stays.)
        if self.dtype(x) == to
            && is_identity(in_zp, epi, lo, hi)
            && self.quant(x) == self.quant(out)
        {
            self.g.replace_all_uses(out, x);
            return Ok(true);
        }
        if !self.single_use(x) {
            return Ok(false);
        }
        let p = self.g.node(x.node).clone();
        let name = p.name.clone();
        let ins = p.inputs().to_vec();
        let new_op = match &p.op {
            op if is_kernel(op) => {
                let Some(e) = epilogue(op).and_then(|e| compose(e, in_zp, epi, self.fmt)) else {
                    return Ok(false);
                };
                let Some(op) = with_epilogue(op, e, to) else {
                    return Ok(false);
                };
                op
            }
            Op::Requantize {
                in_zero_point,
                epi: e0,
                ..
            } => {
                let Some(e) = compose(e0, in_zp, epi, self.fmt) else {
                    return Ok(false);
                };
                Op::Requantize {
                    in_zero_point: *in_zero_point,
                    epi: e,
                    to,
                }
            }
            Op::Lut { table, .. } => Op::Lut {
                table: then_requantize(table, in_zp, epi),
                to,
            },
            Op::Quantize { q: p1, .. }
                if p1.zero_point == in_zp && epi.min == lo && epi.max == hi =>
            {
                let Some(q) = self.quant(out) else {
                    return Ok(false);
                };
                Op::Quantize { q, to }
            }
            op if is_passthrough(op)
                && ins.iter().all(|i| self.single_use(*i) && self.absorbs(*i)) =>
            {
                return self.move_before(id, x, &p.op, &ins);
            }
            _ => return Ok(false),
        };
        self.replace(out, new_op, name, ins)?;
        Ok(true)
    }

    /// Rule 4: moves the requantize `r` (reading `x`, the output of the
    /// passthrough `op` with inputs `ins`) before `op`.
    fn move_before(
        &mut self,
        r: NodeId,
        x: ValueId,
        op: &Op,
        ins: &[ValueId],
    ) -> Result<bool, PassError> {
        let Op::Requantize {
            in_zero_point,
            epi,
            to,
        } = self.g.node(r).op.clone()
        else {
            return Ok(false);
        };
        let out = ValueId::of(r);
        let q = self.quant(out);
        let r_name = self.g.node(r).name.clone();
        let mut new_ins = vec![];
        for (k, i) in ins.iter().enumerate() {
            let op = Op::Requantize {
                in_zero_point,
                epi: epi.clone(),
                to,
            };
            let ri = self.add(op, format!("{r_name}/{k}"), vec![*i])?;
            self.g.set_quant(ri, q);
            new_ins.push(ri);
        }
        let op = match op {
            Op::Pad { pads, value } => Op::Pad {
                pads: pads.clone(),
                value: requantize(in_zero_point, &epi, *value as i32) as f32,
            },
            op => op.clone(),
        };
        let name = self.g.node(x.node).name.clone();
        self.replace(out, op, name, new_ins)?;
        Ok(true)
    }

    /// Rule 5: merges identical quantization nodes reading `v`.
    fn dedup(&mut self, v: ValueId) -> bool {
        let users: Vec<NodeId> = self
            .g
            .users(v)
            .into_iter()
            .map(|(u, _)| u)
            .filter(|u| {
                matches!(
                    self.g.node(*u).op,
                    Op::Quantize { .. } | Op::Dequantize { .. } | Op::Requantize { .. }
                )
            })
            .collect();
        let mut changed = false;
        for (i, &a) in users.iter().enumerate() {
            for &b in &users[i + 1..] {
                let (na, nb) = (self.g.node(a), self.g.node(b));
                let b_live =
                    !self.g.users(ValueId::of(b)).is_empty() || self.g.is_output(ValueId::of(b));
                if na.op == nb.op && b_live && !self.g.users(ValueId::of(a)).is_empty() {
                    self.g.replace_all_uses(ValueId::of(b), ValueId::of(a));
                    changed = true;
                }
            }
        }
        changed
    }

    /// One sweep over the graph; whether anything changed.
    fn sweep(&mut self) -> Result<bool, PassError> {
        let order = self.g.topo_order().map_err(|e| fail(e.to_string()))?;
        let mut changed = false;
        for id in order {
            if !self.g.contains(id) {
                continue;
            }
            let out = ValueId::of(id);
            if self.g.users(out).is_empty() && !self.g.is_output(out) {
                continue; // dead, removed after the sweep
            }
            changed |= self.dedup(out);
            let op = self.g.node(id).op.clone();
            changed |= match op {
                Op::Quantize { q, to } => self.quantize(id, q, to)?,
                Op::Unary(u @ (UnaryOp::Relu | UnaryOp::Clip { .. })) => self.clamp(id, u)?,
                Op::Requantize {
                    in_zero_point,
                    epi,
                    to,
                } => self.requantize(id, in_zero_point, &epi, to)?,
                _ => false,
            };
        }
        self.g.remove_dead_nodes();
        Ok(changed)
    }
}

pub fn run(g: &mut Graph, cx: &mut PassContext) -> Result<Changed, PassError> {
    let Some(cfg) = &cx.quant else {
        return Ok(false);
    };
    let mut c = Canceller {
        g,
        fmt: cfg.scales,
        keep_float: &cfg.keep_float,
    };
    let mut changed = false;
    let mut sweeps = 0;
    while c.sweep()? {
        changed = true;
        sweeps += 1;
        if sweeps > MAX_SWEEPS {
            return Err(fail("internal: the rewrites do not converge".into()));
        }
    }
    g.remove_dead_nodes();
    g.prune_weights();
    let stats = &mut cx.quant_stats;
    stats.final_counts = QdqCounts::of(g);
    for l in &mut stats.layers {
        let found = g.node_ids().into_iter().find(|&id| {
            g.node(id).name == l.output_node && !g.node(id).outputs[0].dtype.is_float()
        });
        if let Some(q) = found.and_then(|id| g.value_type(ValueId::of(id)).quant) {
            l.output = q;
        }
    }
    Ok(changed)
}
