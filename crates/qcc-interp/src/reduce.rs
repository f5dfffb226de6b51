//! Ops that combine elements along axes or per channel: Softmax, Reduce
//! (Mean/Max/Sum with keepdims) and inference BatchNorm. Sums are in f64.

use crate::elem::f32s;
use crate::index::{split_at_axis, Offsets};
use qcc_ir::{ReduceOp, Tensor, TensorData};

/// Softmax along `axis`: `exp(x - max) / Σ exp(x - max)`.
pub fn softmax(x: &Tensor, axis: usize) -> Result<TensorData, String> {
    let v = f32s(x, "input")?;
    if axis >= x.shape().len() {
        return Err(format!("axis {axis} out of range for {}", x.ty()));
    }
    let (outer, dim, inner) = split_at_axis(x.shape(), axis);
    let mut out = vec![0.0f32; v.len()];
    let mut e = vec![0.0f64; dim];
    for o in 0..outer {
        for i in 0..inner {
            let at = |j: usize| (o * dim + j) * inner + i;
            let max = (0..dim).map(|j| v[at(j)]).fold(f32::NEG_INFINITY, |m, a| {
                if a > m || a.is_nan() {
                    a
                } else {
                    m
                }
            });
            let mut sum = 0.0f64;
            for (j, ej) in e.iter_mut().enumerate() {
                *ej = (v[at(j)] as f64 - max as f64).exp();
                sum += *ej;
            }
            for (j, &ej) in e.iter().enumerate() {
                out[at(j)] = (ej / sum) as f32;
            }
        }
    }
    Ok(TensorData::F32(out))
}

/// Reduces over `axes`. Mean of nothing is NaN, Max of nothing is -inf, Sum of nothing is 0.
/// The result's layout is the same with or without keepdims.
pub fn reduce(op: ReduceOp, x: &Tensor, axes: &[usize]) -> Result<TensorData, String> {
    let v = f32s(x, "input")?;
    let xs = x.shape();
    if let Some(a) = axes.iter().find(|&&a| a >= xs.len()) {
        return Err(format!("axis {a} out of range for {}", x.ty()));
    }
    let kept: Vec<usize> = xs
        .iter()
        .enumerate()
        .map(|(d, &n)| if axes.contains(&d) { 1 } else { n })
        .collect();
    let n_out = qcc_ir::numel(&kept);
    let count: usize = axes
        .iter()
        .enumerate()
        .filter(|(i, a)| !axes[..*i].contains(a))
        .map(|(_, &a)| xs[a])
        .product();
    let init = match op {
        ReduceOp::Max => f64::NEG_INFINITY,
        ReduceOp::Mean | ReduceOp::Sum => 0.0,
    };
    let mut acc = vec![init; n_out];
    for (&a, o) in v.iter().zip(Offsets::broadcast(&kept, xs)) {
        let slot = &mut acc[o as usize];
        let a = a as f64;
        match op {
            ReduceOp::Max => {
                if a > *slot || a.is_nan() {
                    *slot = a;
                }
            }
            ReduceOp::Mean | ReduceOp::Sum => *slot += a,
        }
    }
    if op == ReduceOp::Mean {
        for s in &mut acc {
            *s /= count as f64;
        }
    }
    Ok(TensorData::F32(acc.into_iter().map(|s| s as f32).collect()))
}

/// Inference BatchNorm: `(x - mean) / sqrt(var + eps) * scale + bias`, per channel (dim 1).
pub fn batch_norm(eps: f32, ins: &[&Tensor]) -> Result<TensorData, String> {
    let [x, scale, bias, mean, var] = ins else {
        return Err(format!("takes 5 inputs, got {}", ins.len()));
    };
    let v = f32s(x, "input")?;
    let xs = x.shape();
    if xs.len() < 2 {
        return Err(format!("input {} must be [N,C,…]", x.ty()));
    }
    let c = xs[1];
    let mut params = Vec::with_capacity(4);
    for (t, what) in [scale, bias, mean, var]
        .into_iter()
        .zip(["scale", "bias", "mean", "var"])
    {
        let p = f32s(t, what)?;
        if p.len() != c || t.shape().len() != 1 {
            return Err(format!("{what} {} must be f32[{c}]", t.ty()));
        }
        params.push(p);
    }
    let (sc, bi, me, va) = (params[0], params[1], params[2], params[3]);
    let inner = qcc_ir::numel(&xs[2..]);
    let mut out = Vec::with_capacity(v.len());
    for (i, &a) in v.iter().enumerate() {
        let ch = (i / inner.max(1)) % c.max(1);
        let y = (a as f64 - me[ch] as f64) / (va[ch] as f64 + eps as f64).sqrt() * sc[ch] as f64
            + bi[ch] as f64;
        out.push(y as f32);
    }
    Ok(TensorData::F32(out))
}
