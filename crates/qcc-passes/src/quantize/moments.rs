//! First and second moments of what a weighted layer multiplies its weights
//! by, gathered by `calibrate` for the layers quantized below 8 bits: for a
//! convolution the im2col vectors (one per output position, padding taps
//! read 0), for a GEMM the rows of A. Their means drive the analytic bias
//! correction and their Gram matrix (the layer's Hessian `E[x xᵀ]`) the
//! error-compensating rounding of `gptq`.

use crate::context::{Module, ModuleKind};
use qcc_interp::Im2Col;
use qcc_ir::{ConvAttrs, Graph, NodeId, Op, ValueId};
use std::collections::HashMap;

/// Largest reduction length with a Gram matrix (`K²` f64 per group).
const GRAM_MAX_K: usize = 2304;
/// Largest Gram matrix, in entries over all groups.
const GRAM_MAX_ENTRIES: usize = 1 << 23;
/// Rank-1 updates of the Gram matrix per sample and group are capped near
/// this many multiply-adds (positions are then taken at an even stride).
const GRAM_WORK: usize = 1 << 24;

/// How a layer turns its input into the vectors its weights multiply.
#[derive(Clone, Debug)]
pub enum Geometry {
    /// `Conv` with weight shape `w_shape`, input and output shapes.
    Conv {
        attrs: ConvAttrs,
        x_shape: Vec<usize>,
        w_shape: Vec<usize>,
        out_shape: Vec<usize>,
    },
    /// GEMM: rows of `K` (of A `[rows, K]`, or its columns when `trans`).
    Rows { k: usize, trans: bool },
    /// One weight per channel (BatchNorm as a depthwise 1×1): `[N, C, inner]`.
    PerChannel { channels: usize, inner: usize },
}

/// What calibration saw of one layer's input vectors, per group.
#[derive(Clone, Debug, PartialEq)]
pub struct InputMoments {
    pub groups: usize,
    /// Reduction length per group.
    pub k: usize,
    /// Vectors summed in `sum` (per group).
    pub count: u64,
    /// `[groups][k]` sums.
    pub sum: Vec<f64>,
    /// `[groups][k][k]` sums of `x xᵀ` over a strided subset of the
    /// vectors (upper triangle until `finish`); `None` when too large.
    pub gram: Option<Vec<f64>>,
}

impl InputMoments {
    fn new(groups: usize, k: usize) -> Self {
        let gram = (k > 1 && k <= GRAM_MAX_K && groups * k * k <= GRAM_MAX_ENTRIES)
            .then(|| vec![0.0; groups * k * k]);
        Self {
            groups,
            k,
            count: 0,
            sum: vec![0.0; groups * k],
            gram,
        }
    }

    /// `E[x_k]` per group, `[groups][k]`.
    pub fn means(&self) -> Vec<f64> {
        let n = self.count.max(1) as f64;
        self.sum.iter().map(|s| s / n).collect()
    }

    /// The (unnormalized, symmetric) Gram matrix of group `g`.
    pub fn gram(&self, g: usize) -> Option<&[f64]> {
        let kk = self.k * self.k;
        self.gram.as_ref().map(|m| &m[g * kk..(g + 1) * kk])
    }

    /// Adds the vectors `x[o*step .. ]` of group `g`: `x` is `[k][n]`
    /// (column-major vectors, as im2col) or `[n][k]` (rows).
    fn add(&mut self, g: usize, x: &[f32], n: usize, column_major: bool) {
        let k = self.k;
        let at = |o: usize, i: usize| {
            if column_major {
                x[i * n + o]
            } else {
                x[o * k + i]
            }
        };
        let sum = &mut self.sum[g * k..(g + 1) * k];
        for (i, s) in sum.iter_mut().enumerate() {
            *s += (0..n).map(|o| at(o, i) as f64).sum::<f64>();
        }
        if let Some(gram) = &mut self.gram {
            let gram = &mut gram[g * k * k..(g + 1) * k * k];
            let budget = (GRAM_WORK / (k * k / 2).max(1)).max(64);
            let step = n.div_ceil(budget).max(1);
            let mut v = vec![0f64; k];
            for o in (0..n).step_by(step) {
                v.iter_mut()
                    .enumerate()
                    .for_each(|(i, e)| *e = at(o, i) as f64);
                for i in 0..k {
                    let xi = v[i];
                    if xi != 0.0 {
                        let row = &mut gram[i * k + i..(i + 1) * k];
                        for (r, &xj) in row.iter_mut().zip(&v[i..]) {
                            *r += xi * xj;
                        }
                    }
                }
            }
        }
    }

    /// Mirrors the upper triangles into full symmetric matrices.
    fn finish(&mut self) {
        let k = self.k;
        if let Some(gram) = &mut self.gram {
            for m in gram.chunks_mut(k * k) {
                for i in 0..k {
                    for j in 0..i {
                        m[i * k + j] = m[j * k + i];
                    }
                }
            }
        }
    }
}

/// The input value, anchor and geometry of every module quantized below 8
/// bits (by `bits_of`), skipping layers whose shape it cannot read.
pub fn plan(
    g: &Graph,
    modules: &[Module],
    bits_of: impl Fn(&str) -> u32,
) -> Vec<(ValueId, NodeId, Geometry)> {
    let mut out = vec![];
    for m in modules {
        let n = g.node(m.anchor);
        if bits_of(&n.name) >= 8 {
            continue;
        }
        let ins = n.inputs();
        let x = ins[0];
        let x_shape = g.value_type(x).shape.clone();
        let geo = match (&m.kind, &n.op) {
            (ModuleKind::Conv, Op::Conv(attrs)) => Geometry::Conv {
                attrs: attrs.clone(),
                x_shape,
                w_shape: g.value_type(ins[1]).shape.clone(),
                out_shape: n.outputs[0].shape.clone(),
            },
            (ModuleKind::Gemm, Op::Gemm { trans_a, .. }) if x_shape.len() == 2 => Geometry::Rows {
                k: x_shape[if *trans_a { 0 } else { 1 }],
                trans: *trans_a,
            },
            (ModuleKind::MatMul, Op::MatMul) if !x_shape.is_empty() => Geometry::Rows {
                k: *x_shape.last().unwrap(),
                trans: false,
            },
            (ModuleKind::BatchNorm, Op::BatchNorm { .. }) if x_shape.len() >= 3 => {
                Geometry::PerChannel {
                    channels: x_shape[1],
                    inner: x_shape[2..].iter().product(),
                }
            }
            _ => continue,
        };
        out.push((x, m.anchor, geo));
    }
    out
}

/// Accumulates the moments of every planned layer from observed values.
pub struct Gatherer {
    by_value: HashMap<ValueId, Vec<(NodeId, Geometry, Option<Im2Col>)>>,
    moments: HashMap<NodeId, InputMoments>,
}

impl Gatherer {
    pub fn new(plan: Vec<(ValueId, NodeId, Geometry)>) -> Self {
        let mut by_value: HashMap<ValueId, Vec<_>> = HashMap::new();
        let mut moments = HashMap::new();
        for (v, node, geo) in plan {
            let (groups, k, cols) = match &geo {
                Geometry::Conv {
                    attrs,
                    x_shape,
                    w_shape,
                    out_shape,
                } => match Im2Col::new(attrs, x_shape, w_shape, out_shape) {
                    Ok(c) => (attrs.group.max(1), c.rows(), Some(c)),
                    Err(_) => continue,
                },
                Geometry::Rows { k, .. } => (1, *k, None),
                Geometry::PerChannel { channels, .. } => (*channels, 1, None),
            };
            if k == 0 {
                continue;
            }
            moments.insert(node, InputMoments::new(groups, k));
            by_value.entry(v).or_default().push((node, geo, cols));
        }
        Self { by_value, moments }
    }

    /// Whether `v` feeds a planned layer.
    pub fn wants(&self, v: ValueId) -> bool {
        self.by_value.contains_key(&v)
    }

    /// Adds one observation of value `v` (data `x`, row-major).
    pub fn add(&mut self, v: ValueId, x: &[f32]) {
        let Some(layers) = self.by_value.get(&v) else {
            return;
        };
        for (node, geo, cols) in layers {
            let m = self.moments.get_mut(node).expect("planned");
            match (geo, cols) {
                (Geometry::Conv { x_shape, .. }, Some(cols)) => {
                    let per_item: usize = x_shape[1..].iter().product();
                    if per_item == 0 || !x.len().is_multiple_of(per_item) {
                        continue;
                    }
                    for bn in 0..x.len() / per_item {
                        for gi in 0..m.groups {
                            if let Ok(col) = cols.column(x, bn, gi) {
                                m.add(gi, &col, cols.positions(), true);
                            }
                        }
                        m.count += cols.positions() as u64;
                    }
                }
                (Geometry::Rows { k, trans }, _) => {
                    if !x.len().is_multiple_of(*k) {
                        continue;
                    }
                    // A [rows, K], or [K, rows] when transposed.
                    let rows = x.len() / k;
                    m.add(0, x, rows, *trans);
                    m.count += rows as u64;
                }
                (Geometry::PerChannel { channels, inner }, _) => {
                    let per_item = channels * inner;
                    if per_item == 0 || !x.len().is_multiple_of(per_item) {
                        continue;
                    }
                    for bn in 0..x.len() / per_item {
                        for c in 0..*channels {
                            let base = bn * per_item + c * inner;
                            m.add(c, &x[base..base + inner], *inner, false);
                        }
                        m.count += *inner as u64;
                    }
                }
                _ => {}
            }
        }
    }

    /// The moments by anchor node.
    pub fn finish(mut self) -> HashMap<NodeId, InputMoments> {
        self.moments.values_mut().for_each(InputMoments::finish);
        self.moments
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Four distinct node ids (inputs of a scratch graph).
    fn ids() -> Vec<NodeId> {
        let mut g = Graph::new("t");
        (0..4)
            .map(|i| g.add_input(format!("x{i}"), qcc_ir::TensorType::f32(vec![1])))
            .collect()
    }

    /// A 1×1 convolution's vectors are the pixels' channel vectors, the same
    /// as a GEMM's rows of the transposed `[C, pixels]` plane; a 3×3 one with
    /// padding 1 sees zeros at the border taps.
    #[test]
    fn conv_and_gemm_vectors_agree() {
        let (c, hw) = (3usize, 4usize);
        let x: Vec<f32> = (0..c * hw * hw).map(|i| (i % 7) as f32 - 2.5).collect();
        let conv = |k: usize, pad: usize| Geometry::Conv {
            attrs: ConvAttrs {
                strides: vec![1, 1],
                pads: vec![pad; 4],
                dilations: vec![1, 1],
                group: 1,
                output_padding: vec![0, 0],
            },
            x_shape: vec![1, c, hw, hw],
            w_shape: vec![2, c, k, k],
            out_shape: vec![1, 2, hw, hw],
        };
        let n = ids();
        let (x0, x5) = (
            ValueId::of(n[0]),
            ValueId {
                node: n[0],
                slot: 1,
            },
        );
        let plan = vec![
            (x0, n[1], conv(1, 0)),
            (x0, n[2], Geometry::Rows { k: c, trans: true }),
            (x0, n[3], conv(3, 1)),
        ];
        let mut g = Gatherer::new(plan);
        assert!(g.wants(x0) && !g.wants(x5));
        g.add(x0, &x);
        let m = g.finish();
        let (one, rows, three) = (&m[&n[1]], &m[&n[2]], &m[&n[3]]);
        assert_eq!(one.count, 16);
        assert_eq!(one, rows);
        // Channel 0's mean and the (0, 1) entry of the Gram matrix.
        let px = |ch: usize, p: usize| x[ch * hw * hw + p] as f64;
        let mean0 = (0..16).map(|p| px(0, p)).sum::<f64>() / 16.0;
        assert!((one.means()[0] - mean0).abs() < 1e-12);
        let g01: f64 = (0..16).map(|p| px(0, p) * px(1, p)).sum();
        let gram = one.gram(0).unwrap();
        assert_eq!(gram[1], g01);
        assert_eq!(gram[c], g01);
        // 3×3, pad 1: tap (0, 0) of channel 0 reads pixel (y-1, x-1), zero
        // on the first row and column.
        assert_eq!(three.k, 27);
        let tap00: f64 = (0..3)
            .flat_map(|y| (0..3).map(move |xx| y * hw + xx))
            .map(|p| px(0, p))
            .sum();
        assert!(
            (three.sum[0] - tap00).abs() < 1e-9,
            "{} vs {tap00}",
            three.sum[0]
        );
    }
}
