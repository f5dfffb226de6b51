//! Resize (ONNX opset ≥ 11 semantics, no antialiasing): nearest with every
//! rounding mode, n-linear or cubic interpolation, under every coordinate
//! transform.
//! Coordinates are computed in f32 as the ONNX formulas read; interpolation sums in f64.

use crate::elem::f32s;
use crate::index::unravel;
use qcc_ir::resize::{cubic_is_identity, cubic_taps, round_nearest, source_coord, CubicTaps};
use qcc_ir::{numel, strides_of, ResizeAttrs, ResizeMode, Tensor, TensorData};

/// Clamps a coordinate into `[0, len-1]` and converts it to an index (NaN gives 0).
fn clamp_index(x: f32, len: usize) -> usize {
    let top = len.saturating_sub(1) as f32;
    if x.is_nan() {
        0
    } else {
        x.clamp(0.0, top) as usize
    }
}

/// One dim's interpolation: per output coordinate, the two input indices and their weights.
struct Axis {
    lo: Vec<usize>,
    hi: Vec<usize>,
    w_hi: Vec<f64>,
}

fn axis_table(r: &ResizeAttrs, d: usize, len_in: usize, len_out: usize) -> Axis {
    let scale = r.scales[d];
    let mut a = Axis {
        lo: Vec::with_capacity(len_out),
        hi: Vec::with_capacity(len_out),
        w_hi: Vec::with_capacity(len_out),
    };
    for x in 0..len_out {
        let xo = source_coord(r.coord, x, scale, len_in, len_out);
        match r.mode {
            ResizeMode::Nearest => {
                let i = clamp_index(round_nearest(r.nearest, xo), len_in);
                a.lo.push(i);
                a.hi.push(i);
                a.w_hi.push(0.0);
            }
            // Cubic dims take `cubic` below; this table is not read for them.
            ResizeMode::Linear | ResizeMode::Cubic { .. } => {
                let top = len_in.saturating_sub(1) as f32;
                let xc = if xo.is_nan() { 0.0 } else { xo.clamp(0.0, top) };
                let i0 = xc.floor();
                let lo = i0 as usize;
                a.lo.push(lo);
                a.hi.push((lo + 1).min(len_in.saturating_sub(1)));
                a.w_hi.push((xc - i0) as f64);
            }
        }
    }
    a
}

/// Resize of an f32 tensor to `r.sizes` (which `out_shape` equals).
pub fn resize(r: &ResizeAttrs, x: &Tensor, out_shape: &[usize]) -> Result<TensorData, String> {
    let v = f32s(x, "input")?;
    let xs = x.shape();
    let rank = xs.len();
    if r.scales.len() != rank || out_shape.len() != rank {
        return Err(format!(
            "sizes/scales must have one entry per dim of {}",
            x.ty()
        ));
    }
    if let Some(d) = (0..rank).find(|&d| xs[d] == 0 && out_shape[d] > 0) {
        return Err(format!(
            "cannot resize empty dim {d} of {} to {}",
            x.ty(),
            out_shape[d]
        ));
    }
    if let ResizeMode::Cubic { .. } = r.mode {
        return cubic(r, v, xs, out_shape);
    }
    let axes: Vec<Axis> = (0..rank)
        .map(|d| axis_table(r, d, xs[d], out_shape[d]))
        .collect();
    let st = strides_of(xs);
    // Dims that actually interpolate: the others read a single index.
    let lin: Vec<usize> = (0..rank)
        .filter(|&d| axes[d].w_hi.iter().any(|&w| w != 0.0))
        .collect();
    let n = numel(out_shape);
    let mut out = Vec::with_capacity(n);
    let mut oc = vec![0usize; rank];
    for flat in 0..n {
        unravel(flat, out_shape, &mut oc);
        let base: usize = (0..rank).map(|d| axes[d].lo[oc[d]] * st[d]).sum();
        let mut acc = 0.0f64;
        for mask in 0..(1usize << lin.len()) {
            let mut off = base;
            let mut w = 1.0f64;
            for (bit, &d) in lin.iter().enumerate() {
                let a = &axes[d];
                let wh = a.w_hi[oc[d]];
                if mask >> bit & 1 == 1 {
                    off = off - a.lo[oc[d]] * st[d] + a.hi[oc[d]] * st[d];
                    w *= wh;
                } else {
                    w *= 1.0 - wh;
                }
            }
            if w != 0.0 {
                acc += w * *v.get(off).ok_or("internal: resize offset out of range")? as f64;
            }
        }
        out.push(acc as f32);
    }
    Ok(TensorData::F32(out))
}

/// Cubic Resize: per output element, the sum over the four taps of every
/// resized dim (`qcc_ir::resize::cubic_taps`) of the product of their
/// weights times the input there, in f64.
fn cubic(
    r: &ResizeAttrs,
    v: &[f32],
    xs: &[usize],
    out_shape: &[usize],
) -> Result<TensorData, String> {
    let rank = xs.len();
    let st = strides_of(xs);
    let mut dims: Vec<(usize, Vec<CubicTaps>)> = vec![];
    for d in 0..rank {
        let taps = cubic_taps(r, d, xs[d], out_shape[d]).ok_or("internal: cubic taps")?;
        if !cubic_is_identity(&taps, xs[d]) {
            dims.push((d, taps));
        }
    }
    let n = numel(out_shape);
    let mut out = Vec::with_capacity(n);
    let mut oc = vec![0usize; rank];
    for flat in 0..n {
        unravel(flat, out_shape, &mut oc);
        // Identity dims read their own coordinate.
        let base: usize = (0..rank)
            .filter(|d| !dims.iter().any(|(k, _)| k == d))
            .map(|d| oc[d] * st[d])
            .sum();
        let mut acc = 0.0f64;
        for combo in 0..4usize.pow(dims.len() as u32) {
            let (mut off, mut w, mut c) = (base, 1.0f64, combo);
            for (d, taps) in &dims {
                let (idx, wt) = &taps[oc[*d]];
                off += idx[c % 4] * st[*d];
                w *= wt[c % 4] as f64;
                c /= 4;
            }
            if w != 0.0 {
                acc += w * *v.get(off).ok_or("internal: resize offset out of range")? as f64;
            }
        }
        out.push(acc as f32);
    }
    Ok(TensorData::F32(out))
}
