//! Quantization parameters from real ranges: asymmetric 8-bit activations,
//! scales as f32 (fixed-point format) or powers of two (`--scales pow2`),
//! and the real factors of requantization as [`Rescale`]s.

use crate::context::{Range, ScaleFormat};
use qcc_ir::{QParams, Rescale};

/// Ranges narrower than this are treated as a constant zero (scale 1/255).
const MIN_WIDTH: f64 = 1e-12;

/// The smallest power of two ≥ `x` (`x > 0`).
pub fn pow2_ceil(x: f64) -> f64 {
    2f64.powi(x.log2().ceil() as i32)
}

/// Zero point placing `lo` at -128 for `scale` (clamped to the i8 range).
fn zero_point(lo: f64, scale: f64) -> i32 {
    (-128.0 - lo / scale).round().clamp(-128.0, 127.0) as i32
}

/// Asymmetric i8 parameters covering `r` (widened to contain 0): the scale is
/// `(max - min) / 255`, rounded up to a power of two with `Pow2` so that the
/// range still fits; the zero point maps `min` to -128.
pub fn activation(r: Range, fmt: ScaleFormat) -> QParams {
    let lo = (r.min as f64).min(0.0);
    let hi = (r.max as f64).max(0.0);
    let width = hi - lo;
    let mut scale = if width > MIN_WIDTH {
        width / 255.0
    } else {
        1.0 / 255.0
    };
    if fmt == ScaleFormat::Pow2 {
        scale = pow2_ceil(scale);
    }
    let scale = scale as f32 as f64;
    QParams {
        scale: scale as f32,
        zero_point: zero_point(lo, scale),
    }
}

/// `q` with its scale raised to at least `min_scale` (a power of two with
/// `Pow2`), keeping the bottom of `r` at the bottom of the 8-bit range.
/// Used where a rescale factor `> 1` would need a left shift.
pub fn at_least(q: QParams, r: Range, min_scale: f64, fmt: ScaleFormat) -> QParams {
    if q.scale as f64 >= min_scale {
        return q;
    }
    let scale = match fmt {
        ScaleFormat::Pow2 => pow2_ceil(min_scale),
        ScaleFormat::FixedPoint => min_scale,
    } as f32 as f64;
    QParams {
        scale: scale as f32,
        zero_point: zero_point((r.min as f64).min(0.0), scale),
    }
}

/// The [`Rescale`] of one positive real factor in the given format; `None`
/// when it cannot be represented (pow2 factors above 1, factors ≥ 2^31).
pub fn rescale(real: f64, fmt: ScaleFormat) -> Option<Rescale> {
    match fmt {
        ScaleFormat::FixedPoint => Rescale::fixed_point(real),
        ScaleFormat::Pow2 => {
            let r = Rescale::pow2(real)?;
            // A power-of-two format must represent the factor exactly (up to the
            // smallest shift): anything else is a bug in the scale choice.
            let exact =
                (r.real(0) - real).abs() <= real * 1e-9 || r.shift[0] == qcc_ir::quant::MAX_SHIFT;
            exact.then_some(r)
        }
    }
}

/// One rescale per channel (collapsed to one entry when all are equal).
pub fn rescale_per_channel(reals: &[f64], fmt: ScaleFormat) -> Option<Rescale> {
    let parts: Option<Vec<Rescale>> = reals.iter().map(|&r| rescale(r, fmt)).collect();
    let parts = parts?;
    let first = parts.first()?;
    if parts.iter().all(|p| p == first) {
        Some(first.clone())
    } else {
        Some(Rescale::per_channel(&parts))
    }
}

/// Exponent of the operand multipliers of `QAdd` (`2^20`: |acc| < 2^29).
const ADD_BITS: i32 = 20;

/// `QAdd`'s operand multipliers for operand scales `sa` and `sb` (the
/// second negated for a subtraction) and the real factor its accumulator
/// stands for: `round(s/s_max · 2^20)` each, factor `s_max · 2^-20`.
pub fn add_operands(sa: f64, sb: f64, negate_b: bool) -> (i32, i32, f64) {
    let smax = sa.max(sb);
    let one = 2f64.powi(ADD_BITS);
    let am = (sa / smax * one).round() as i32;
    let bm = (sb / smax * one).round() as i32;
    (am, if negate_b { -bm } else { bm }, smax / one)
}

/// The real value range an 8-bit value with parameters `q` can represent.
pub fn representable(q: QParams) -> Range {
    Range {
        min: q.scale * (-128 - q.zero_point) as f32,
        max: q.scale * (127 - q.zero_point) as f32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activation_params_cover_the_range() {
        let q = activation(
            Range {
                min: -1.0,
                max: 3.0,
            },
            ScaleFormat::FixedPoint,
        );
        assert!((q.scale - 4.0 / 255.0).abs() < 1e-7);
        assert_eq!(q.zero_point, -64);
        let q = activation(Range { min: 0.0, max: 6.0 }, ScaleFormat::FixedPoint);
        assert_eq!(q.zero_point, -128);
        let q = activation(Range { min: 0.5, max: 6.0 }, ScaleFormat::FixedPoint);
        assert_eq!(q.zero_point, -128, "ranges always contain 0");
        let q = activation(
            Range {
                min: -3.0,
                max: 0.0,
            },
            ScaleFormat::FixedPoint,
        );
        assert_eq!(q.zero_point, 127);
        let q = activation(Range { min: 0.0, max: 0.0 }, ScaleFormat::FixedPoint);
        assert!(q.scale > 0.0);
    }

    #[test]
    fn pow2_params_are_powers_of_two_and_still_fit() {
        let r = Range {
            min: -1.0,
            max: 3.0,
        };
        let q = activation(r, ScaleFormat::Pow2);
        assert_eq!(q.scale, 1.0 / 32.0);
        let rep = representable(q);
        assert!(
            rep.min <= -1.0 + q.scale / 2.0 && rep.max >= 3.0 - q.scale / 2.0,
            "{rep:?}"
        );
        let q2 = at_least(q, r, 0.05, ScaleFormat::Pow2);
        assert_eq!(q2.scale, 1.0 / 16.0);
        assert!(representable(q2).min <= -1.0);
    }

    #[test]
    fn rescales_by_format() {
        assert!(
            rescale(0.3, ScaleFormat::Pow2).is_none(),
            "not a power of two"
        );
        assert_eq!(
            rescale(0.25, ScaleFormat::Pow2),
            Some(Rescale::uniform(1, 2))
        );
        assert!(rescale(2.0, ScaleFormat::Pow2).is_none());
        let r = rescale(2.0, ScaleFormat::FixedPoint).unwrap();
        assert!((r.real(0) - 2.0).abs() < 1e-9);
        let pc = rescale_per_channel(&[0.5, 0.5], ScaleFormat::Pow2).unwrap();
        assert_eq!(pc.channels(), 1);
        let pc = rescale_per_channel(&[0.5, 0.25], ScaleFormat::Pow2).unwrap();
        assert_eq!(pc.channels(), 2);
    }
}
