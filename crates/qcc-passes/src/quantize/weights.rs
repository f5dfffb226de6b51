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

/// The clipping ratios tried below 8 bits, from min-max (1) down to half
/// the largest |w|.
const CLIP_RATIOS: &[f64] = &[1.0, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55, 0.5];

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
/// 8 bits). 8-bit scales cover each channel's largest |w| (min-max); below
/// 8 bits each channel's range is clipped where that lowers the squared
/// error ([`CLIP_RATIOS`] of the largest |w|: at 4 bits and fewer, min-max
/// spends most levels on a few outliers). Errors (a reason to keep the
/// layer in float) on non-finite weights.
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
    let scale_at = |ratio: f64| -> Vec<f32> {
        amax.iter()
            .map(|&a| {
                if a == 0.0 {
                    return 1.0;
                }
                let s = ratio * a / qmax;
                (match fmt {
                    ScaleFormat::FixedPoint => s,
                    ScaleFormat::Pow2 => pow2_ceil(s),
                }) as f32
            })
            .collect()
    };
    let mut scales = scale_at(1.0);
    if bits < 8 {
        // Per channel (or for the whole tensor) the ratio of least error.
        let group = |c: usize| if per_channel { c } else { 0 };
        let mut best = vec![f64::INFINITY; channels];
        let mut chosen = scales.clone();
        for &ratio in CLIP_RATIOS {
            let s = scale_at(ratio);
            let mut err = vec![0f64; channels];
            for (i, &x) in w.iter().enumerate() {
                let c = channel_of(i, w.len(), channels, layout);
                let sc = s[c] as f64;
                let q = (x as f64 / sc).round().clamp(-qmax, qmax);
                err[group(c)] += (x as f64 - q * sc).powi(2);
            }
            for c in 0..channels {
                let g = group(c);
                if err[g] < best[g] {
                    chosen[c] = s[c];
                }
            }
            for (b, e) in best.iter_mut().zip(&err) {
                *b = b.min(*e);
            }
        }
        scales = chosen;
    }
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

/// Ternary weights by TNT's cosine-similarity search (Zhang et al., 2020):
/// per output channel (or for the whole tensor), the `k` largest |w| become
/// `sign(w)` and the rest 0, with `k` maximizing the cosine similarity
/// `Σ_{top k} |w| / (√k · ‖w‖)` between `w` and the ternary vector (one
/// sort, O(N log N)); the scale `α` is their mean |w|, the least-squares
/// fit. Data in {-1, 0, 1}. Errors on non-finite weights.
pub fn ternarize(
    w: &[f32],
    channels: usize,
    layout: Layout,
    per_channel: bool,
    fmt: ScaleFormat,
) -> Result<QuantWeights, String> {
    if w.iter().any(|x| !x.is_finite()) {
        return Err("non-finite weight".into());
    }
    let groups = if per_channel { channels } else { 1 };
    let group_of = |i: usize| {
        if per_channel {
            channel_of(i, w.len(), channels, layout)
        } else {
            0
        }
    };
    let mut members: Vec<Vec<usize>> = vec![vec![]; groups];
    for i in 0..w.len() {
        members[group_of(i)].push(i);
    }
    let mut data = vec![0i8; w.len()];
    let mut alpha = vec![1.0f32; groups];
    for (g, idx) in members.iter_mut().enumerate() {
        idx.sort_by(|&a, &b| w[b].abs().total_cmp(&w[a].abs()));
        let (mut sum, mut best, mut k_best) = (0f64, 0f64, 0usize);
        for (k, &i) in idx.iter().enumerate() {
            sum += w[i].abs() as f64;
            let cos = sum / ((k + 1) as f64).sqrt();
            if cos > best {
                (best, k_best) = (cos, k + 1);
            }
        }
        if k_best == 0 {
            continue;
        }
        let a = idx[..k_best]
            .iter()
            .map(|&i| w[i].abs() as f64)
            .sum::<f64>()
            / k_best as f64;
        alpha[g] = match fmt {
            ScaleFormat::FixedPoint => a,
            ScaleFormat::Pow2 => super::params::pow2_ceil(a),
        } as f32;
        for &i in &idx[..k_best] {
            data[i] = if w[i] < 0.0 { -1 } else { 1 };
        }
    }
    let scales: Vec<f32> = (0..channels)
        .map(|c| alpha[if per_channel { c } else { 0 }])
        .collect();
    let (mut signal, mut noise) = (0f64, 0f64);
    for (i, &x) in w.iter().enumerate() {
        let s = scales[channel_of(i, w.len(), channels, layout)] as f64;
        signal += (x as f64).powi(2);
        noise += (x as f64 - data[i] as f64 * s).powi(2);
    }
    Ok(QuantWeights {
        data,
        scales,
        sqnr_db: if noise == 0.0 {
            f64::INFINITY
        } else {
            10.0 * (signal / noise).log10()
        },
    })
}

/// Analytic bias correction: adds to `bias[m]` the expected error the
/// quantized weights `q` make, `Σ_k (w[m,k] - s_w[m]·q[m,k]) · E[x_k]`, with
/// `means` the `[groups][k]` means of the vectors the weights multiply
/// (`InputMoments::means`: a convolution's im2col rows, a GEMM's A rows).
/// Weights are `[M][k]` (`Rows`, `M / groups` channels per group) or
/// `[k][M]` (`Cols`, one group). Nothing changes when the means do not fit.
pub fn correct_bias(
    bias: &mut [f32],
    (w, q): (&[f32], &QuantWeights),
    (channels, layout, groups): (usize, Layout, usize),
    means: &[f64],
) {
    if channels == 0
        || groups == 0
        || bias.len() != channels
        || !channels.is_multiple_of(groups)
        || (layout == Layout::Cols && groups != 1)
    {
        return;
    }
    let k = w.len() / channels;
    if means.len() != groups * k || w.len() != channels * k {
        return;
    }
    let per_group = channels / groups;
    for (m, b) in bias.iter_mut().enumerate() {
        let mean = &means[m / per_group * k..][..k];
        let delta: f64 = (0..k)
            .map(|j| {
                let i = match layout {
                    Layout::Rows => m * k + j,
                    Layout::Cols => j * channels + m,
                };
                (w[i] as f64 - q.scales[m] as f64 * q.data[i] as f64) * mean[j]
            })
            .sum();
        *b += delta as f32;
    }
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

    /// Below 8 bits the range is clipped where that lowers the error: on
    /// heavy-tailed (Laplace) weights, 4-bit min-max spends most levels on
    /// the few largest; the clipped scale keeps more signal.
    #[test]
    fn sub_8_bit_scales_clip_outliers() {
        let mut state = 12345u64;
        let w: Vec<f32> = (0..512)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let u = ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
                let (sign, u) = if u < 0.5 {
                    (-1.0, 2.0 * u)
                } else {
                    (1.0, 2.0 * u - 1.0)
                };
                (sign * -u.max(1e-12).ln() * 0.1) as f32
            })
            .collect();
        let amax = w.iter().fold(0f32, |m, x| m.max(x.abs()));
        let minmax_sqnr = |bits: u32| {
            let qmax = ((1 << (bits - 1)) - 1) as f32;
            let s = amax / qmax;
            let (mut sig, mut noise) = (0f64, 0f64);
            for &x in &w {
                let q = (x / s).round().clamp(-qmax, qmax) * s;
                sig += (x as f64).powi(2);
                noise += ((x - q) as f64).powi(2);
            }
            10.0 * (sig / noise).log10()
        };
        let q4 = quantize(&w, 1, Layout::Rows, true, ScaleFormat::FixedPoint, 4).unwrap();
        assert!(q4.scales[0] < amax / 7.0, "{:?}", q4.scales);
        assert!(
            q4.sqnr_db > minmax_sqnr(4) + 1.0,
            "{} vs {}",
            q4.sqnr_db,
            minmax_sqnr(4)
        );
        // 8 bits stay min-max.
        let q8 = quantize(&w, 1, Layout::Rows, true, ScaleFormat::FixedPoint, 8).unwrap();
        assert_eq!(q8.scales[0], amax / 127.0);
        // Per tensor: one ratio for all channels.
        let q = quantize(&w, 2, Layout::Rows, false, ScaleFormat::FixedPoint, 3).unwrap();
        assert_eq!(q.scales[0], q.scales[1]);
    }

    /// After bias correction, the quantized layer's output on an input at
    /// the means equals the float layer's: grouped rows and GEMM columns.
    #[test]
    fn bias_correction_cancels_the_error_at_the_means() {
        let w: Vec<f32> = (0..48)
            .map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.031)
            .collect();
        // Conv [M=4][k=12], 2 groups of 2 channels: means [2][12].
        let means: Vec<f64> = (0..24).map(|i| (i % 7) as f64 * 0.4 - 1.0).collect();
        let q = quantize(&w, 4, Layout::Rows, true, ScaleFormat::FixedPoint, 3).unwrap();
        let mut bias = vec![0.1f32; 4];
        correct_bias(&mut bias, (&w, &q), (4, Layout::Rows, 2), &means);
        for (m, &b) in bias.iter().enumerate() {
            let (mut fl, mut qu) = (0.1f64, b as f64);
            for j in 0..12 {
                let (i, x) = (m * 12 + j, means[m / 2 * 12 + j]);
                fl += w[i] as f64 * x;
                qu += q.scales[m] as f64 * q.data[i] as f64 * x;
            }
            assert!((fl - qu).abs() < 1e-5, "row {m}: {fl} vs {qu}");
        }
        // GEMM B [k=12][M=4].
        let means: Vec<f64> = (0..12).map(|i| (i % 5) as f64 - 2.0).collect();
        let q = quantize(&w, 4, Layout::Cols, true, ScaleFormat::FixedPoint, 4).unwrap();
        let mut bias = vec![0.0f32; 4];
        correct_bias(&mut bias, (&w, &q), (4, Layout::Cols, 1), &means);
        for (m, &b) in bias.iter().enumerate() {
            let (mut fl, mut qu) = (0f64, b as f64);
            for (k, x) in means.iter().enumerate() {
                fl += w[k * 4 + m] as f64 * x;
                qu += q.scales[m] as f64 * q.data[k * 4 + m] as f64 * x;
            }
            assert!((fl - qu).abs() < 1e-5, "column {m}: {fl} vs {qu}");
        }
        // Means that do not fit the weights change nothing.
        let mut bias = vec![0.0f32; 4];
        correct_bias(&mut bias, (&w, &q), (4, Layout::Cols, 1), &[1.0; 5]);
        assert_eq!(bias, vec![0.0; 4]);
    }

    /// TNT keeps the k largest magnitudes that maximize the cosine
    /// similarity: two large weights and many small ones keep only the two,
    /// with α their mean; equal magnitudes all stay.
    #[test]
    fn ternary_keeps_the_cosine_best_support() {
        let w = [1.0f32, -0.9, 0.1, -0.05, 0.08, 0.02, 0.0, 0.01];
        let q = ternarize(&w, 1, Layout::Rows, true, ScaleFormat::FixedPoint).unwrap();
        assert_eq!(q.data, vec![1, -1, 0, 0, 0, 0, 0, 0]);
        assert!((q.scales[0] - 0.95).abs() < 1e-6, "{:?}", q.scales);
        // Two channels as columns of [k=3][m=2]: the second is flat.
        let w = [0.5f32, -0.2, -0.01, 0.2, 0.02, -0.2];
        let q = ternarize(&w, 2, Layout::Cols, true, ScaleFormat::FixedPoint).unwrap();
        assert_eq!(q.data, vec![1, -1, 0, 1, 0, -1]);
        assert!((q.scales[1] - 0.2).abs() < 1e-6, "{:?}", q.scales);
        assert!(q.data.iter().all(|d| (-1..=1).contains(d)));
        assert!(ternarize(&[f32::NAN], 1, Layout::Rows, true, ScaleFormat::Pow2).is_err());
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
