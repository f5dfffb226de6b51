//! Error-compensating rounding of sub-8-bit weights (GPTQ, Frantar et al.
//! 2023, itself Optimal Brain Quantization applied column by column): each
//! output channel's weights are rounded one input at a time, and the error
//! each rounding makes is pushed onto the inputs not yet rounded along the
//! inverse Hessian `E[x xᵀ]⁻¹` of the layer's inputs, so the layer's output
//! error `Δwᵀ H Δw` — not the weights' own error — is what gets small.
//! Inputs go in order of decreasing `H_ii` ("act order"). Scales are kept.

use super::moments::InputMoments;
use super::weights::{Layout, QuantWeights};

/// Dampening added to the Hessian's diagonal, relative to its mean.
const DAMP: f64 = 0.01;

/// `U` upper triangular with `Uᵀ U = H⁻¹` (row-major `k × k`), or `None`
/// when `H` is not positive definite.
fn inverse_upper_cholesky(h: &[f64], k: usize) -> Option<Vec<f64>> {
    // Lower Cholesky of the reversed matrix, reversed again, is an upper
    // `R` with `H = R Rᵀ`; then `H⁻¹ = R⁻ᵀ R⁻¹` and `U = R⁻¹`.
    let rev = |i: usize| k - 1 - i;
    let mut l = vec![0f64; k * k];
    for i in 0..k {
        for j in 0..=i {
            let mut s = h[rev(i) * k + rev(j)];
            for p in 0..j {
                s -= l[i * k + p] * l[j * k + p];
            }
            if i == j {
                if s <= 0.0 || !s.is_finite() {
                    return None;
                }
                l[i * k + i] = s.sqrt();
            } else {
                l[i * k + j] = s / l[j * k + j];
            }
        }
    }
    let mut r = vec![0f64; k * k];
    for i in 0..k {
        for j in i..k {
            r[i * k + j] = l[rev(i) * k + rev(j)];
        }
    }
    // U = R⁻¹, upper, by back substitution one column at a time.
    let mut u = vec![0f64; k * k];
    for j in (0..k).rev() {
        u[j * k + j] = 1.0 / r[j * k + j];
        for i in (0..j).rev() {
            let mut s = 0.0;
            for p in i + 1..=j {
                s += r[i * k + p] * u[p * k + j];
            }
            u[i * k + j] = -s / r[i * k + i];
        }
    }
    Some(u)
}

/// Re-rounds `q` (scales kept, `[-qmax, qmax]`) against the Hessians in
/// `mom`. Weights are `[M][k]` per group (`Rows`, `groups` groups of `M /
/// groups` channels) or `[k][M]` (`Cols`, one group). Leaves `q` as it is
/// where the moments do not fit or a Hessian is missing or singular; returns
/// whether it changed anything.
pub fn refine(
    w: &[f32],
    q: &mut QuantWeights,
    (channels, layout, groups): (usize, Layout, usize),
    qmax: f64,
    mom: &InputMoments,
) -> bool {
    let k = mom.k;
    if channels == 0
        || groups == 0
        || mom.groups != groups
        || w.len() != channels * k
        || !channels.is_multiple_of(groups)
        || (layout == Layout::Cols && groups != 1)
    {
        return false;
    }
    let idx = |m: usize, j: usize| match layout {
        Layout::Rows => m * k + j,
        Layout::Cols => j * channels + m,
    };
    let per_group = channels / groups;
    let mut changed = false;
    for g in 0..groups {
        let Some(gram) = mom.gram(g) else {
            return changed;
        };
        let mut h = gram.to_vec();
        let mean_diag = (0..k).map(|i| h[i * k + i]).sum::<f64>() / k as f64;
        if !(mean_diag > 0.0 && mean_diag.is_finite()) {
            continue;
        }
        for i in 0..k {
            if h[i * k + i] == 0.0 {
                // An input that is always 0: its weight's rounding is free.
                h[i * k + i] = 1.0;
            }
            h[i * k + i] += DAMP * mean_diag;
        }
        let mut perm: Vec<usize> = (0..k).collect();
        perm.sort_by(|&a, &b| h[b * k + b].total_cmp(&h[a * k + a]));
        let hp: Vec<f64> = (0..k * k)
            .map(|e| h[perm[e / k] * k + perm[e % k]])
            .collect();
        let Some(u) = inverse_upper_cholesky(&hp, k) else {
            continue;
        };
        let mut row = vec![0f64; k];
        for m in g * per_group..(g + 1) * per_group {
            let s = q.scales[m] as f64;
            if s <= 0.0 {
                continue;
            }
            for (i, r) in row.iter_mut().enumerate() {
                *r = w[idx(m, perm[i])] as f64;
            }
            for i in 0..k {
                let qi = (row[i] / s).round().clamp(-qmax, qmax);
                let err = (row[i] - qi * s) / u[i * k + i];
                for j in i + 1..k {
                    row[j] -= err * u[i * k + j];
                }
                q.data[idx(m, perm[i])] = qi as i8;
            }
        }
        changed = true;
    }
    if changed {
        let (mut signal, mut noise) = (0f64, 0f64);
        for m in 0..channels {
            for j in 0..k {
                let x = w[idx(m, j)] as f64;
                signal += x * x;
                noise += (x - q.scales[m] as f64 * q.data[idx(m, j)] as f64).powi(2);
            }
        }
        q.sqnr_db = if noise == 0.0 {
            f64::INFINITY
        } else {
            10.0 * (signal / noise).log10()
        };
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::ScaleFormat;
    use crate::quantize::weights::quantize;

    fn lcg(state: &mut u64) -> f64 {
        *state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*state >> 11) as f64 + 0.5) / (1u64 << 53) as f64 - 0.5
    }

    #[test]
    fn inverse_upper_cholesky_inverts() {
        let h = [4.0, 1.0, 0.5, 1.0, 3.0, 0.25, 0.5, 0.25, 2.0];
        let u = inverse_upper_cholesky(&h, 3).unwrap();
        // (Uᵀ U) H = I, and U is upper triangular.
        for i in 0..3 {
            for j in 0..i {
                assert_eq!(u[i * 3 + j], 0.0);
            }
            for j in 0..3 {
                let mut e = 0.0;
                for p in 0..3 {
                    let hinv_ip: f64 = (0..3).map(|r| u[r * 3 + i] * u[r * 3 + p]).sum();
                    e += hinv_ip * h[p * 3 + j];
                }
                assert!((e - (i == j) as u8 as f64).abs() < 1e-12, "{i},{j}: {e}");
            }
        }
        assert!(inverse_upper_cholesky(&[1.0, 2.0, 2.0, 1.0], 2).is_none());
    }

    /// On correlated inputs, the re-rounded 4-bit weights make a smaller
    /// output error `Δwᵀ H Δw` than rounding to nearest, in every channel
    /// taken together, with the same scales; both layouts agree.
    #[test]
    fn refine_lowers_the_output_error() {
        let (k, m, n) = (24, 6, 400);
        let mut st = 7u64;
        // x = mix of 4 latent factors + a little noise: strongly correlated.
        let mix: Vec<f64> = (0..4 * k).map(|_| lcg(&mut st) * 2.0).collect();
        let mut gram = vec![0f64; k * k];
        for _ in 0..n {
            let z: Vec<f64> = (0..4).map(|_| lcg(&mut st)).collect();
            let x: Vec<f64> = (0..k)
                .map(|i| (0..4).map(|f| z[f] * mix[f * k + i]).sum::<f64>() + 0.05 * lcg(&mut st))
                .collect();
            for i in 0..k {
                for j in 0..k {
                    gram[i * k + j] += x[i] * x[j];
                }
            }
        }
        let mom = InputMoments {
            groups: 1,
            k,
            count: n as u64,
            sum: vec![0.0; k],
            gram: Some(gram.clone()),
        };
        let w: Vec<f32> = (0..m * k).map(|_| lcg(&mut st) as f32).collect();
        let out_err = |q: &QuantWeights, idx: &dyn Fn(usize, usize) -> usize| {
            let mut e = 0f64;
            for c in 0..m {
                let d: Vec<f64> = (0..k)
                    .map(|j| w[idx(c, j)] as f64 - q.scales[c] as f64 * q.data[idx(c, j)] as f64)
                    .collect();
                for i in 0..k {
                    for j in 0..k {
                        e += d[i] * gram[i * k + j] * d[j];
                    }
                }
            }
            e
        };
        let rows = |c: usize, j: usize| c * k + j;
        let mut q = quantize(&w, m, Layout::Rows, true, ScaleFormat::FixedPoint, 4).unwrap();
        let before = out_err(&q, &rows);
        assert!(refine(&w, &mut q, (m, Layout::Rows, 1), 7.0, &mom));
        let after = out_err(&q, &rows);
        assert!(after < 0.7 * before, "{after} vs {before}");
        assert!(q.data.iter().all(|&d| (-7..=7).contains(&d)));
        // The same weights stored [k][m] give the same codes.
        let wt: Vec<f32> = (0..m * k).map(|e| w[(e % m) * k + e / m]).collect();
        let mut qt = quantize(&wt, m, Layout::Cols, true, ScaleFormat::FixedPoint, 4).unwrap();
        assert!(refine(&wt, &mut qt, (m, Layout::Cols, 1), 7.0, &mom));
        for c in 0..m {
            for j in 0..k {
                assert_eq!(qt.data[j * m + c], q.data[c * k + j]);
            }
        }
        // Moments of another length change nothing.
        let short = InputMoments { k: k - 1, ..mom };
        assert!(!refine(
            &w,
            &mut q.clone(),
            (m, Layout::Rows, 1),
            7.0,
            &short
        ));
    }
}
