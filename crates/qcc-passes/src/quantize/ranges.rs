//! Calibration statistics and the range-selection methods of `calibrate`.
//!
//! Memory is bounded per value: running extremes and sums in a first pass
//! over the samples, then (for percentile, entropy and mse) one 2048-bin
//! histogram filled in a second pass, over `[min, max]` (percentile, mse) or
//! over `[0, max |x|]` (entropy).

use crate::context::Range;

/// Bins of every calibration histogram.
pub const BINS: usize = 2048;

/// Running statistics of one value (first pass).
#[derive(Clone, Debug)]
pub struct Running {
    pub min: f32,
    pub max: f32,
    pub sum_sq: f64,
    pub count: u64,
    pub non_finite: u64,
}

impl Default for Running {
    fn default() -> Self {
        Running {
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
            sum_sq: 0.0,
            count: 0,
            non_finite: 0,
        }
    }
}

impl Running {
    pub fn add(&mut self, xs: &[f32]) {
        for &x in xs {
            if !x.is_finite() {
                self.non_finite += 1;
                continue;
            }
            self.min = self.min.min(x);
            self.max = self.max.max(x);
            self.sum_sq += (x as f64) * (x as f64);
            self.count += 1;
        }
    }

    /// The observed range, widened to contain 0 (`[0, 0]` when nothing was seen).
    pub fn range(&self) -> Range {
        if self.count == 0 {
            return Range { min: 0.0, max: 0.0 };
        }
        Range {
            min: self.min.min(0.0),
            max: self.max.max(0.0),
        }
    }
}

/// A fixed-range histogram of [`BINS`] bins; values outside go to the end bins.
#[derive(Clone, Debug)]
pub struct Histogram {
    pub lo: f64,
    pub hi: f64,
    pub bins: Vec<u64>,
    /// Whether it counts |x| instead of x.
    pub abs: bool,
}

impl Histogram {
    /// A histogram of x over `[lo, hi]`.
    pub fn signed(r: Range) -> Histogram {
        Histogram {
            lo: r.min as f64,
            hi: r.max as f64,
            bins: vec![0; BINS],
            abs: false,
        }
    }

    /// A histogram of |x| over `[0, amax]`.
    pub fn magnitude(amax: f32) -> Histogram {
        Histogram {
            lo: 0.0,
            hi: amax as f64,
            bins: vec![0; BINS],
            abs: true,
        }
    }

    pub fn width(&self) -> f64 {
        (self.hi - self.lo) / BINS as f64
    }

    pub fn add(&mut self, xs: &[f32]) {
        let w = self.width();
        for &x in xs {
            if !x.is_finite() {
                continue;
            }
            let v = if self.abs { x.abs() } else { x } as f64;
            let b = if w > 0.0 {
                ((v - self.lo) / w).floor().clamp(0.0, (BINS - 1) as f64) as usize
            } else {
                0
            };
            self.bins[b] += 1;
        }
    }

    fn total(&self) -> u64 {
        self.bins.iter().sum()
    }

    fn center(&self, b: usize) -> f64 {
        self.lo + (b as f64 + 0.5) * self.width()
    }

    /// The value below which a fraction `f` of the counts lies (linear inside a bin).
    fn quantile(&self, f: f64) -> f64 {
        let target = f * self.total() as f64;
        let mut cum = 0.0;
        for (b, &n) in self.bins.iter().enumerate() {
            let n = n as f64;
            if n > 0.0 && cum + n >= target {
                let inside = ((target - cum) / n).clamp(0.0, 1.0);
                return self.lo + (b as f64 + inside) * self.width();
            }
            cum += n;
        }
        self.hi
    }

    /// Mean squared clipping error of clamping to `r`, and the fraction of
    /// counts inside `r` (bin centers stand for their counts).
    pub fn clipping(&self, r: Range) -> (f64, f64) {
        let total = self.total() as f64;
        if total == 0.0 {
            return (0.0, 1.0);
        }
        let (lo, hi) = if self.abs {
            (f64::NEG_INFINITY, (-r.min as f64).max(r.max as f64))
        } else {
            (r.min as f64, r.max as f64)
        };
        let (mut err, mut inside) = (0.0, 0.0);
        for (b, &n) in self.bins.iter().enumerate() {
            let c = self.center(b);
            let d = c - c.clamp(lo, hi);
            if d == 0.0 {
                inside += n as f64;
            } else {
                err += n as f64 * d * d;
            }
        }
        (err / total, inside / total)
    }
}

fn with_zero(min: f64, max: f64) -> Range {
    Range {
        min: (min as f32).min(0.0),
        max: (max as f32).max(0.0),
    }
}

/// Clips both tails: `[P(100 - p), P(p)]` of a signed histogram.
pub fn percentile(h: &Histogram, p: f64) -> Range {
    let f = p / 100.0;
    with_zero(h.quantile(1.0 - f), h.quantile(f))
}

/// Most of the values an entropy threshold may clip.
pub const ENTROPY_MAX_CLIPPED: f64 = 0.01;

/// The threshold on |x| minimizing KL(P‖Q), TensorRT-style: for each
/// candidate number of bins `i ≥ levels`, P is the first `i` bins with every
/// count beyond added to the last one, Q the same bins merged into `levels`
/// groups whose counts spread evenly over their non-empty bins. Returns the
/// upper edge of the best candidate.
///
/// Candidates clipping more than [`ENTROPY_MAX_CLIPPED`] of the values are
/// skipped: P folds the clipped mass into its last bin, so KL cannot see how
/// much is clipped, and it reaches 0 by clipping everything into one bin when
/// a distribution has no mass near 0 (sigmoid outputs) or when the histogram
/// is sparse (few calibration values).
///
/// The first bin (|x| near 0) is left out of P and Q: after a Relu it holds
/// the exact zeros, often most of the values, which any range represents
/// exactly; counting them makes KL trade the rest of the distribution away
/// for them and clip far too hard.
pub fn entropy_threshold(h: &Histogram, levels: usize) -> f64 {
    let mut bins: Vec<f64> = h.bins.iter().map(|&c| c as f64).collect();
    if let Some(b) = bins.first_mut() {
        *b = 0.0;
    }
    let n = bins.len();
    let levels = levels.clamp(1, n);
    let mut suffix = vec![0.0; n + 1];
    for i in (0..n).rev() {
        suffix[i] = suffix[i + 1] + bins[i];
    }
    let mut best = (f64::INFINITY, n);
    let mut q = vec![0.0; n];
    for i in levels..=n {
        let p_total = suffix[0];
        if p_total == 0.0 {
            break;
        }
        if suffix[i] > ENTROPY_MAX_CLIPPED * p_total {
            continue;
        }
        // Q: merge bins[..i] into `levels` groups, spread over non-empty bins.
        for j in 0..levels {
            let (s, e) = (j * i / levels, (j + 1) * i / levels);
            let group = &bins[s..e];
            let total: f64 = group.iter().sum();
            let nonzero = group.iter().filter(|&&c| c > 0.0).count();
            for k in s..e {
                q[k] = if bins[k] > 0.0 {
                    total / nonzero as f64
                } else {
                    0.0
                };
            }
        }
        let q_total: f64 = q[..i].iter().sum();
        let mut kl = 0.0;
        for k in 0..i {
            let p = if k == i - 1 {
                bins[k] + suffix[i]
            } else {
                bins[k]
            };
            if p == 0.0 {
                continue;
            }
            let pn = p / p_total;
            // Smoothing: an empty Q bin under P mass costs as if it had a tiny share.
            let qn = (q[k] / q_total.max(1.0)).max(1e-12);
            kl += pn * (pn / qn).ln();
        }
        if kl < best.0 {
            best = (kl, i);
        }
    }
    best.1 as f64 * h.width()
}

/// The range `[α·min, α·max]` (α from 1 down to 0.05 in steps of 0.01)
/// minimizing the estimated mean squared 8-bit quantize-dequantize error:
/// `scale²/12` for counts inside the range, the squared clipping distance
/// outside.
pub fn mse(h: &Histogram) -> Range {
    let full = with_zero(h.lo, h.hi);
    let mut best = (f64::INFINITY, full);
    for k in 0..=95 {
        let a = 1.0 - k as f64 * 0.01;
        let r = Range {
            min: (full.min as f64 * a) as f32,
            max: (full.max as f64 * a) as f32,
        };
        let step = (r.max - r.min) as f64 / 255.0;
        let (clip, inside) = h.clipping(r);
        let err = clip + inside * step * step / 12.0;
        if err < best.0 {
            best = (err, r);
        }
    }
    best.1
}

/// The range chosen from an |x| threshold: `[max(min, -t), min(max, t)]`.
pub fn from_threshold(observed: Range, t: f64) -> Range {
    with_zero((observed.min as f64).max(-t), (observed.max as f64).min(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(xs: &[f32], abs: bool) -> Histogram {
        let mut r = Running::default();
        r.add(xs);
        let mut h = if abs {
            Histogram::magnitude(r.min.abs().max(r.max.abs()))
        } else {
            Histogram::signed(r.range())
        };
        h.add(xs);
        h
    }

    #[test]
    fn running_stats_skip_non_finite_values() {
        let mut r = Running::default();
        r.add(&[1.0, f32::NAN, 3.0, f32::INFINITY]);
        assert_eq!((r.min, r.max, r.count, r.non_finite), (1.0, 3.0, 2, 2));
        assert_eq!(r.range(), Range { min: 0.0, max: 3.0 });
    }

    #[test]
    fn percentile_of_a_uniform_ramp() {
        let xs: Vec<f32> = (0..10000).map(|i| i as f32 / 100.0).collect();
        let r = percentile(&hist(&xs, false), 99.0);
        assert!((r.max - 99.0).abs() < 0.1, "{r:?}");
        assert_eq!(r.min, 0.0);
    }

    #[test]
    fn entropy_keeps_a_uniform_distribution_whole() {
        let xs: Vec<f32> = (0..20000).map(|i| i as f32 / 20000.0).collect();
        let t = entropy_threshold(&hist(&xs, true), 255);
        assert!(t > 0.95, "{t}");
    }

    #[test]
    fn entropy_never_clips_the_bulk_of_a_distribution_away_from_zero() {
        // Like sigmoid outputs: nothing below 0.2.
        let xs: Vec<f32> = (0..5000)
            .map(|i| 0.2 + 0.75 * (i as f32 / 5000.0).powi(3))
            .collect();
        let t = entropy_threshold(&hist(&xs, true), 255);
        let clipped = xs.iter().filter(|&&x| x as f64 > t).count();
        assert!(
            clipped as f64 <= 0.01 * xs.len() as f64 + 1.0,
            "{t}: {clipped} clipped"
        );
    }

    #[test]
    fn mse_keeps_a_uniform_distribution_whole() {
        let xs: Vec<f32> = (0..20000).map(|i| i as f32 / 10000.0 - 1.0).collect();
        let r = mse(&hist(&xs, false));
        assert!(r.max > 0.97 && r.min < -0.97, "{r:?}");
    }
}
