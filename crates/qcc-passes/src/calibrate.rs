//! `calibrate`: runs the float graph on the calibration samples with the
//! reference interpreter and chooses a real range for every value that may
//! need quantization parameters.
//!
//! Recorded values: every f32 value computed by a non-`Const` node (graph
//! inputs included), except the pre-activation value of a module whose
//! activation is Relu or Clip (its activation is a clamp, so only the range
//! *after* the activation matters; modules with a table activation need both).
//!
//! Methods (`cx.quant.method`):
//! - `minmax`: the observed extremes;
//! - `percentile(p)`: both tails clipped, `[P(100 - p), P(p)]` of the
//!   observed values, from a 2048-bin histogram over `[min, max]`;
//! - `entropy`: TensorRT-style; a 2048-bin histogram of |x| over
//!   `[0, max |x|]`, the threshold `t` minimizing KL(P‖Q) against the
//!   histogram quantized to 128 levels (255 when the value has one sign),
//!   among thresholds clipping at most 1% of the values (KL alone cannot see
//!   how much is clipped), and the range `[max(min, -t), min(max, t)]`;
//! - `mse`: the range `[α·min, α·max]`, α ∈ {1, 0.99, …, 0.05}, minimizing
//!   the estimated squared quantize-dequantize error over a 2048-bin histogram.
//!
//! Memory stays bounded: one pass for extremes and sums, a second (only for
//! histogram methods) for one histogram per value. Non-finite elements of
//! intermediate values are counted and ignored.
//!
//! Needs: `cx.quant` (does nothing and returns `Ok(false)` without it),
//! `cx.modules` from `fuse-modules`, and at least one sample in
//! `cx.calibration`, each one finite f32 tensor per graph input (errors
//! otherwise). Guarantees: `cx.ranges` and `cx.value_stats` have an entry
//! for every recorded value; every range contains 0; `cx.layer_inputs` has
//! the input moments (`quantize::moments`) of every module whose weights go
//! below 8 bits, gathered in the first sweep. The graph is unchanged.

use crate::context::{CalibrationMethod, Range, ValueStats};
use crate::quantize::moments::{self, Gatherer};
use crate::quantize::ranges::{self, Histogram, Running};
use crate::{Changed, PassContext, PassError};
use qcc_ir::{Graph, Op, Tensor, UnaryOp, ValueId};
use std::collections::{HashMap, HashSet};

const PASS: &str = "calibrate";

fn fail(msg: String) -> PassError {
    PassError::Failed { pass: PASS, msg }
}

/// The values whose ranges are recorded.
fn wanted(g: &Graph, cx: &PassContext) -> HashSet<ValueId> {
    let clamp_only: HashSet<ValueId> = cx
        .modules
        .iter()
        .filter(|m| {
            m.act.is_some_and(|a| {
                matches!(
                    g.node(a).op,
                    Op::Unary(UnaryOp::Relu | UnaryOp::Clip { .. })
                )
            })
        })
        .map(|m| m.pre_act())
        .collect();
    let mut set = HashSet::new();
    for id in g.node_ids() {
        let n = g.node(id);
        if matches!(n.op, Op::Const { .. }) {
            continue;
        }
        for (slot, t) in n.outputs.iter().enumerate() {
            let v = ValueId { node: id, slot };
            if t.dtype.is_float() && !clamp_only.contains(&v) {
                set.insert(v);
            }
        }
    }
    set
}

/// Checks the samples' count and values (types and shapes are checked by the interpreter).
fn check_samples(g: &Graph, samples: &[Vec<Tensor>]) -> Result<(), PassError> {
    if samples.is_empty() {
        return Err(fail(
            "quantization needs calibration data (--calibration-data), but there are no samples"
                .into(),
        ));
    }
    for (i, s) in samples.iter().enumerate() {
        if s.len() != g.inputs().len() {
            return Err(fail(format!(
                "calibration sample #{i} has {} tensors, but graph '{}' has {} inputs",
                s.len(),
                g.name,
                g.inputs().len()
            )));
        }
        for (t, id) in s.iter().zip(g.inputs()) {
            if let Some(k) = t
                .as_f32()
                .and_then(|v| v.iter().position(|x| !x.is_finite()))
            {
                return Err(fail(format!(
                    "calibration sample #{i}, input '{}': element {k} is not finite (NaN or infinity)",
                    g.node(*id).name
                )));
            }
        }
    }
    Ok(())
}

/// Runs every sample, calling `f` with each recorded value; reports progress
/// as sweep `sweep` of `sweeps` over the samples.
fn observe_all(
    g: &Graph,
    samples: &[Vec<Tensor>],
    (progress, sweep, sweeps): (&crate::Progress, usize, usize),
    f: &mut dyn FnMut(ValueId, &[f32]),
) -> Result<(), PassError> {
    let total = samples.len() * sweeps;
    for (i, s) in samples.iter().enumerate() {
        progress.report(sweep * samples.len() + i, total);
        qcc_interp::run_observed(g, s, &mut |v, t| {
            if let Some(x) = t.as_f32() {
                f(v, x)
            }
        })
        .map_err(|e| fail(format!("calibration sample #{i}: {e}")))?;
        progress.report(sweep * samples.len() + i + 1, total);
    }
    Ok(())
}

pub fn run(g: &mut Graph, cx: &mut PassContext) -> Result<Changed, PassError> {
    let Some(cfg) = &cx.quant else {
        return Ok(false);
    };
    let method = cfg.method;
    if let CalibrationMethod::Percentile(p) = method {
        if !(p > 50.0 && p <= 100.0) {
            return Err(fail(format!("percentile {p} must be in (50, 100]")));
        }
    }
    check_samples(g, &cx.calibration)?;
    let want = wanted(g, cx);
    let mut running: HashMap<ValueId, Running> =
        want.iter().map(|v| (*v, Running::default())).collect();
    let mut gather = Gatherer::new(moments::plan(g, &cx.modules, |n| cfg.bits_of(n)));
    let sweeps = if method == CalibrationMethod::MinMax {
        1
    } else {
        2
    };
    observe_all(
        g,
        &cx.calibration,
        (&cx.progress, 0, sweeps),
        &mut |v, x| {
            if let Some(r) = running.get_mut(&v) {
                r.add(x)
            }
            if gather.wants(v) {
                gather.add(v, x);
            }
        },
    )?;

    let mut hists: HashMap<ValueId, Histogram> = HashMap::new();
    if method != CalibrationMethod::MinMax {
        for (v, r) in &running {
            let obs = r.range();
            let h = match method {
                CalibrationMethod::Entropy => Histogram::magnitude((-obs.min).max(obs.max)),
                _ => Histogram::signed(obs),
            };
            hists.insert(*v, h);
        }
        observe_all(g, &cx.calibration, (&cx.progress, 1, 2), &mut |v, x| {
            if let Some(h) = hists.get_mut(&v) {
                h.add(x)
            }
        })?;
    }

    cx.ranges.clear();
    cx.value_stats.clear();
    for (v, r) in running {
        let observed = r.range();
        let h = hists.get(&v);
        let range = match (method, h) {
            (CalibrationMethod::Percentile(p), Some(h)) => ranges::percentile(h, p),
            (CalibrationMethod::Entropy, Some(h)) => {
                let one_sign = observed.min >= 0.0 || observed.max <= 0.0;
                let t = ranges::entropy_threshold(h, if one_sign { 255 } else { 128 });
                ranges::from_threshold(observed, t)
            }
            (CalibrationMethod::Mse, Some(h)) => ranges::mse(h),
            _ => observed,
        };
        let range = Range {
            min: range.min.clamp(observed.min, 0.0),
            max: range.max.clamp(0.0, observed.max),
        };
        let (clip_noise, in_range) = h.map_or((0.0, 1.0), |h| h.clipping(range));
        cx.ranges.insert(v, range);
        cx.value_stats.insert(
            v,
            ValueStats {
                min: if r.count > 0 { r.min } else { 0.0 },
                max: if r.count > 0 { r.max } else { 0.0 },
                mean_square: if r.count > 0 {
                    r.sum_sq / r.count as f64
                } else {
                    0.0
                },
                count: r.count,
                non_finite: r.non_finite,
                clip_noise,
                in_range,
            },
        );
    }
    cx.layer_inputs = std::sync::Arc::new(gather.finish());
    Ok(false)
}
