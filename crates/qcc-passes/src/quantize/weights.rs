//! Weights and biases of integer kernels: symmetric i8 weights in
//! `[-127, 127]` with one scale per output channel (or one per tensor), i32
//! biases at scale `s_x · s_w[m]`, and the proof that the i32 accumulator
//! cannot overflow.

use crate::context::ScaleFormat;
use crate::quantize::params::pow2_ceil;

/// Where the output channel is in a weight tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// `[M, …]`: channel-major (Conv weights).
    Rows,
    /// `[K, M]`: the channel is the last axis (QGemm's B).
    Cols,
}

fn channel_of(i: usize, len: usize, channels: usize, layout: Layout) -> usize {
    match layout {
        Layout::Rows => i / (len / channels),
        Layout::Cols => i % channels,
    }
}

/// Quantized weights of one kernel.
#[derive(Clone, Debug)]
pub struct QuantWeights {
    pub data: Vec<i8>,
    /// One scale per output channel (repeated when per tensor).
    pub scales: Vec<f32>,
    /// SQNR of the dequantized weights against the float ones, in dB.
    pub sqnr_db: f64,
}

/// Quantizes `w` symmetrically to `[-q, q]`, `q = 2^(bits-1) - 1` (127 for
/// 8 bits). Errors (a reason to keep the layer in float) on non-finite
/// weights.
pub fn quantize(
    w: &[f32],
    channels: usize,
    layout: Layout,
    per_channel: bool,
    fmt: ScaleFormat,
    bits: u32,
) -> Result<QuantWeights, String> {
    if !(2..=8).contains(&bits) {
        return Err(format!("internal: {bits}-bit weights"));
    }
    let qmax = ((1i32 << (bits - 1)) - 1) as f64;
    if channels == 0 || !w.len().is_multiple_of(channels) {
        return Err(format!(
            "internal: {} weights for {channels} channels",
            w.len()
        ));
    }
    if w.iter().any(|x| !x.is_finite()) {
        return Err("weights contain NaN or infinity".into());
    }
    let mut amax = vec![0f64; channels];
    for (i, &x) in w.iter().enumerate() {
        let c = channel_of(i, w.len(), channels, layout);
        amax[c] = amax[c].max((x as f64).abs());
    }
    if !per_channel {
        let m = amax.iter().cloned().fold(0.0, f64::max);
        amax.iter_mut().for_each(|a| *a = m);
    }
    let scales: Vec<f32> = amax
        .iter()
        .map(|&a| {
            if a == 0.0 {
                return 1.0;
            }
            let s = a / qmax;
            (match fmt {
                ScaleFormat::FixedPoint => s,
                ScaleFormat::Pow2 => pow2_ceil(s),
            }) as f32
        })
        .collect();
    let (mut signal, mut noise) = (0f64, 0f64);
    let data = w
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            let s = scales[channel_of(i, w.len(), channels, layout)] as f64;
            let q = (x as f64 / s).round().clamp(-qmax, qmax);
            signal += (x as f64).powi(2);
            noise += (x as f64 - q * s).powi(2);
            q as i8
        })
        .collect();
    let sqnr_db = if noise == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (signal / noise).log10()
    };
    Ok(QuantWeights {
        data,
        scales,
        sqnr_db,
    })
}

/// The i32 bias `round(b[m] / (s_x · s_w[m]))`; errors when it does not fit.
pub fn bias(b: &[f32], s_x: f32, s_w: &[f32]) -> Result<Vec<i32>, String> {
    b.iter()
        .zip(s_w)
        .map(|(&b, &s)| {
            let q = (b as f64 / (s_x as f64 * s as f64)).round();
            if q.is_finite() && q.abs() <= i32::MAX as f64 {
                Ok(q as i32)
            } else {
                Err(format!(
                    "bias {b} does not fit in i32 at scale {}",
                    s_x as f64 * s as f64
                ))
            }
        })
        .collect()
}

/// Checks that `|bias[m]| + 255 · Σ |w[m, ·]|`, the largest accumulator an
/// output of channel `m` can reach with 8-bit inputs (`|x - zp| ≤ 255`), fits
/// in i32 for every channel.
pub fn check_accumulator(
    w: &[i8],
    bias: &[i32],
    channels: usize,
    layout: Layout,
) -> Result<(), String> {
    let mut sum = vec![0i64; channels];
    for (i, &x) in w.iter().enumerate() {
        sum[channel_of(i, w.len(), channels, layout)] += (x as i64).abs();
    }
    for (m, s) in sum.iter().enumerate() {
        let worst = bias.get(m).map_or(0, |&b| (b as i64).abs()) + 255 * s;
        if worst > i32::MAX as i64 {
            return Err(format!(
                "the i32 accumulator could overflow (worst case {worst} in output channel {m})"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_channel_scales_use_the_full_range() {
        let w = [0.5, -1.0, 0.1, 0.2];
        let q = quantize(&w, 2, Layout::Rows, true, ScaleFormat::FixedPoint, 8).unwrap();
        assert_eq!(q.data, vec![64, -127, 64, 127]);
        assert!(q.sqnr_db > 40.0);
        let q = quantize(&w, 2, Layout::Rows, true, ScaleFormat::FixedPoint, 7).unwrap();
        assert_eq!(q.data, vec![31, -63, 32, 63]);
        let q = quantize(&w, 2, Layout::Rows, true, ScaleFormat::FixedPoint, 2).unwrap();
        assert_eq!(q.data, vec![1, -1, 1, 1]);
        let q = quantize(&w, 2, Layout::Rows, false, ScaleFormat::FixedPoint, 8).unwrap();
        assert_eq!(q.data, vec![64, -127, 13, 25]);
        let q = quantize(&w, 2, Layout::Cols, true, ScaleFormat::Pow2, 8).unwrap();
        assert_eq!(q.scales, vec![1.0 / 128.0, 1.0 / 64.0]);
        assert!(quantize(&[f32::NAN], 1, Layout::Rows, true, ScaleFormat::Pow2, 8).is_err());
    }

    #[test]
    fn accumulator_bound_rejects_huge_reductions() {
        let w = vec![127i8; 70_000];
        assert!(check_accumulator(&w, &[0], 1, Layout::Rows).is_err());
        assert!(check_accumulator(&w[..60_000], &[0], 1, Layout::Rows).is_ok());
        assert!(bias(&[1e9], 1e-3, &[1e-3]).is_err());
        assert_eq!(bias(&[0.5], 0.5, &[0.25]).unwrap(), vec![4]);
    }
}
