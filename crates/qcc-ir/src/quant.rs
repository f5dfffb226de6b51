//! Integer quantization: parameters and the exact integer arithmetic that the
//! interpreter and the backend both implement.
//!
//! A quantized tensor holds integers `q` standing for reals `scale * (q - zero_point)`.
//! Activations are 8-bit asymmetric, weights 8-bit symmetric (zero point 0,
//! range `[-127, 127]`), biases and accumulators i32.
//!
//! The arithmetic here is the *definition*: every kernel must produce exactly
//! what these functions produce, bit for bit, on every target.

/// `real = scale * (q - zero_point)`. Part of an 8-bit value's type
/// ([`crate::TensorType::quant`]). Scales are finite and positive, so
/// equality and hashing go by the scale's bits.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QParams {
    pub scale: f32,
    pub zero_point: i32,
}

impl Eq for QParams {}

impl std::hash::Hash for QParams {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.scale.to_bits().hash(h);
        self.zero_point.hash(h);
    }
}

/// A scale factor applied to an i32 accumulator. One entry, or one per
/// output channel. Two forms:
///
/// - fixed point (`float: None`): `x ↦ round_shift(x * multiplier, shift)`,
///   integer-only (qcc's own quantization, `--requantize fixed-point`);
/// - float (`float: Some(s)`): `x ↦ round_half_even(f32(x) · s)` in f32
///   ([`requantize_float`]), ONNX Runtime's requantization of its integer
///   kernels, so that a model quantized by it gives its results bit for bit.
///   `multiplier`/`shift` then hold the fixed-point approximation of `s`
///   (for reports and for composing factors); kernels compute the float form.
///
/// **Invariant:** `multiplier.len() == shift.len() >= 1`, every multiplier is
/// in `1..=i32::MAX`, every shift in `0..=MAX_SHIFT`; a float form has as
/// many entries, each a normal positive f32 below 2^31.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Rescale {
    pub multiplier: Vec<i32>,
    pub shift: Vec<u32>,
    pub float: Option<FloatScales>,
}

/// The factors of a float [`Rescale`] (compared and hashed by their bits).
#[derive(Clone, Debug)]
pub struct FloatScales {
    pub scales: Vec<f32>,
    /// The zero point is added in f32 before rounding,
    /// `round_half_even(f32(acc) · s + zp)` (ONNX Runtime's QLinearMul),
    /// instead of after it ([`requantize_float`]).
    pub zero_point_first: bool,
}

impl PartialEq for FloatScales {
    fn eq(&self, o: &Self) -> bool {
        self.zero_point_first == o.zero_point_first
            && self.scales.len() == o.scales.len()
            && self
                .scales
                .iter()
                .zip(&o.scales)
                .all(|(a, b)| a.to_bits() == b.to_bits())
    }
}

impl Eq for FloatScales {}

impl std::hash::Hash for FloatScales {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.zero_point_first.hash(h);
        for s in &self.scales {
            s.to_bits().hash(h);
        }
    }
}

/// Whether `x` is a positive power of two (a scale that rescales by a shift).
pub fn is_power_of_two(x: f32) -> bool {
    x.is_normal() && x > 0.0 && x.log2().fract() == 0.0
}

/// Whether `s` may be a float rescale factor: a normal positive f32 below
/// 2^31 (kernels convert `f32(acc) · s`, clamped, back to integers).
pub fn valid_float_scale(s: f32) -> bool {
    s.is_normal() && s > 0.0 && s < 2147483648.0
}

/// The float requantization ONNX Runtime's integer kernels use
/// (`MlasRequantizeOutput`): `acc` converted to f32 (rounded to nearest
/// even), multiplied by `scale` in f32, clamped to `[min - zp, max - zp]`,
/// rounded half to even, plus `zp`. (Clamping before rounding equals
/// rounding before clamping: the bounds are integers.)
pub fn requantize_float(acc: i32, scale: f32, zp: i32, min: i32, max: i32) -> i32 {
    let v = (acc as f32 * scale).clamp((min - zp) as f32, (max - zp) as f32);
    v.round_ties_even() as i32 + zp
}

/// [`requantize_float`] with the zero point added in f32 before rounding,
/// as ONNX Runtime's QLinearMul does: `f32(acc) · scale + f32(zp)` (each
/// step rounded to f32), clamped to `[min, max]`, rounded half to even.
pub fn requantize_float_zp_first(acc: i32, scale: f32, zp: i32, min: i32, max: i32) -> i32 {
    let v = (acc as f32 * scale + zp as f32).clamp(min as f32, max as f32);
    v.round_ties_even() as i32
}

/// The end of every integer kernel: rescale the i32 accumulator, add the
/// output zero point, clamp (the clamp also implements a fused Relu/Clip).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Epilogue {
    pub rescale: Rescale,
    pub zero_point: i32,
    pub min: i32,
    pub max: i32,
}

/// Largest right shift a [`Rescale`] may use (keeps `x * m + 2^(shift-1)` inside i64).
pub const MAX_SHIFT: u32 = 62;

/// `x / 2^shift` rounded to nearest, ties toward +∞: `(x + 2^(shift-1)) >> shift`
/// with an arithmetic shift. `shift == 0` returns `x`.
pub fn round_shift(x: i64, shift: u32) -> i64 {
    if shift == 0 {
        x
    } else {
        (x + (1i64 << (shift - 1))) >> shift
    }
}

impl Rescale {
    /// One multiplier and shift for every channel.
    pub fn uniform(multiplier: i32, shift: u32) -> Rescale {
        Rescale {
            multiplier: vec![multiplier],
            shift: vec![shift],
            float: None,
        }
    }

    /// The float form of the factors `scales` (one, or one per channel;
    /// collapsed to one when all are equal); `None` when one is not a
    /// [`valid_float_scale`].
    pub fn float(scales: &[f32]) -> Option<Rescale> {
        if scales.is_empty() || !scales.iter().all(|&s| valid_float_scale(s)) {
            return None;
        }
        let scales = if scales.iter().all(|s| s.to_bits() == scales[0].to_bits()) {
            &scales[..1]
        } else {
            scales
        };
        let parts: Option<Vec<Rescale>> = scales
            .iter()
            .map(|&s| Rescale::fixed_point(s as f64))
            .collect();
        let mut r = Rescale::per_channel(&parts?);
        r.float = Some(FloatScales {
            scales: scales.to_vec(),
            zero_point_first: false,
        });
        Some(r)
    }

    /// Whether this is the float form.
    pub fn is_float(&self) -> bool {
        self.float.is_some()
    }

    /// The float factor of `channel` (or the only one), if this is the float form.
    pub fn float_at(&self, channel: usize) -> Option<f32> {
        let f = &self.float.as_ref()?.scales;
        Some(if f.len() == 1 { f[0] } else { f[channel] })
    }

    /// Number of channels (1 = per tensor).
    pub fn channels(&self) -> usize {
        self.multiplier.len()
    }

    /// Whether every multiplier is 1 (a pure rounding shift: power-of-two
    /// scales; never for the float form).
    pub fn is_pow2(&self) -> bool {
        !self.is_float() && self.multiplier.iter().all(|&m| m == 1)
    }

    /// Applies the rescale of `channel` (or the only one) to `acc`.
    /// Exact for |acc| < 2^31 (the product then fits in i64). The float
    /// form rounds `f32(acc) · s` half to even (saturating to i64).
    pub fn apply(&self, acc: i64, channel: usize) -> i64 {
        if let Some(s) = self.float_at(channel) {
            let bound = 2f32.powi(62);
            return (acc as f32 * s).clamp(-bound, bound).round_ties_even() as i64;
        }
        let c = if self.multiplier.len() == 1 {
            0
        } else {
            channel
        };
        round_shift(acc * self.multiplier[c] as i64, self.shift[c])
    }

    /// The fixed-point form of a positive real factor, as a 31-bit multiplier
    /// `m` in `[2^30, 2^31)` and a shift, with `real ≈ m * 2^-shift`
    /// (relative error ≤ 2^-31). Factors too small for [`MAX_SHIFT`] give
    /// multiplier 0's closest stand-in, `Rescale::uniform(1, MAX_SHIFT)`;
    /// `None` for factors ≥ 2^31, non-positive or non-finite ones.
    pub fn fixed_point(real: f64) -> Option<Rescale> {
        if !(real.is_finite() && real > 0.0 && real < 2f64.powi(31)) {
            return None;
        }
        // real = frac * 2^exp with frac in [0.5, 1).
        let mut exp = real.log2().floor() as i32 + 1;
        let mut frac = real / 2f64.powi(exp);
        if frac >= 1.0 {
            frac /= 2.0;
            exp += 1;
        }
        let mut m = (frac * 2f64.powi(31)).round() as i64;
        if m == 1i64 << 31 {
            m /= 2;
            exp += 1;
        }
        let shift = 31 - exp;
        if shift < 0 {
            return None;
        }
        if shift as u32 > MAX_SHIFT {
            return Some(Rescale::uniform(1, MAX_SHIFT));
        }
        Some(Rescale::uniform(m as i32, shift as u32))
    }

    /// The power-of-two form: multiplier 1 and `shift = round(-log2(real))`, so
    /// the rescale is a pure rounding shift. `None` when `real > 1` would need a
    /// left shift, or for non-positive or non-finite factors.
    pub fn pow2(real: f64) -> Option<Rescale> {
        if !(real.is_finite() && real > 0.0) {
            return None;
        }
        let shift = (-real.log2()).round();
        if shift < 0.0 {
            return None;
        }
        Some(Rescale::uniform(1, (shift as u32).min(MAX_SHIFT)))
    }

    /// Concatenates per-channel rescales (each of one entry) into one; the
    /// float form when every part is (a mix keeps the fixed-point form).
    pub fn per_channel(parts: &[Rescale]) -> Rescale {
        let float = parts
            .iter()
            .map(|r| r.float.clone())
            .collect::<Option<Vec<_>>>()
            .map(|f| FloatScales {
                scales: f.iter().flat_map(|f| f.scales.clone()).collect(),
                zero_point_first: f.iter().any(|f| f.zero_point_first),
            });
        Rescale {
            multiplier: parts.iter().flat_map(|r| r.multiplier.clone()).collect(),
            shift: parts.iter().flat_map(|r| r.shift.clone()).collect(),
            float,
        }
    }

    /// The real factor this rescale stands for (the float factor itself
    /// for the float form).
    pub fn real(&self, channel: usize) -> f64 {
        if let Some(s) = self.float_at(channel) {
            return s as f64;
        }
        let c = if self.multiplier.len() == 1 {
            0
        } else {
            channel
        };
        self.multiplier[c] as f64 * 2f64.powi(-(self.shift[c] as i32))
    }
}

impl Epilogue {
    /// `clamp(zero_point + rescale(acc), min, max)` (for the float form
    /// [`requantize_float`], `acc` within i32).
    pub fn apply(&self, acc: i64, channel: usize) -> i32 {
        if let (Some(s), Some(f)) = (self.rescale.float_at(channel), &self.rescale.float) {
            let (zp, lo, hi) = (self.zero_point, self.min, self.max);
            return match f.zero_point_first {
                true => requantize_float_zp_first(acc as i32, s, zp, lo, hi),
                false => requantize_float(acc as i32, s, zp, lo, hi),
            };
        }
        let v = self.zero_point as i64 + self.rescale.apply(acc, channel);
        v.clamp(self.min as i64, self.max as i64) as i32
    }
}

/// `QSoftmax`'s table value for a difference of 0 (the table is
/// `round(SOFTMAX_ONE · exp(-d · s_x))`). With rows of at most
/// [`SOFTMAX_MAX_ROW`] every sum `S` of [`softmax_row`] stays below 2^30.
pub const SOFTMAX_ONE: i32 = 1 << 14;

/// The longest `QSoftmax` row.
pub const SOFTMAX_MAX_ROW: usize = 1 << 16;

/// `QSoftmax` on one row of i8 values `x`: `e_i = table[max(x) - x_i]`, `S =
/// Σ e_i` (an integer below 2^30), `r = f32(N) / f32(S)` (once per row, in
/// f32), `out_i = clamp(zp + round_half_even(f32(e_i) · r), lo, hi)`: the
/// probability `e_i / S` in steps of `1/N`. One f32 division per row and no
/// integer division (ARMv7-A cores have no divide instruction); `table[0] >
/// 0`, so `S > 0`.
pub fn softmax_row(
    x: &[i32],
    table: &[i32],
    scale_inv: i32,
    zp: i32,
    lo: i32,
    hi: i32,
) -> Vec<i32> {
    let m = x.iter().copied().max().unwrap_or(0);
    let e: Vec<i32> = x.iter().map(|&v| table[(m - v) as usize]).collect();
    let s: i32 = e.iter().sum();
    let r = scale_inv as f32 / s as f32;
    e.iter()
        .map(|&e| ((e as f32 * r).round_ties_even() as i32 + zp).clamp(lo, hi))
        .collect()
}

/// The `QSoftmax` table for inputs of scale `s_x`: `round(SOFTMAX_ONE ·
/// exp(-d · s_x))` for d = 0..=255.
pub fn softmax_table(s_x: f32) -> Vec<i32> {
    (0..256)
        .map(|d| (SOFTMAX_ONE as f64 * (-(d as f64) * s_x as f64).exp()).round() as i32)
        .collect()
}

/// A divisor's reciprocal as two floats `(hi, lo)` such that
/// [`quantize_fused`] equals [`quantize`] for every f32 `x`, or `None` when
/// no such pair was found for `d`; kernels then keep the division. The
/// quotient is `x.mul_add(hi, x * lo)`, one multiplication and one fused
/// multiply-add (the two-float reciprocal method of Brisebarre, Muller and
/// Raina; exact for most divisors, not all).
///
/// Checked, not assumed: every significand of `x` in `[1, 2)` is tried. With
/// `d` in `[2^-40, 2^40]` and `|x| <= 2^58`, every `x` whose quotient lies in
/// `[2^-2, 2^17]` keeps `x`, `x · lo` and the quotient normal, so that range
/// scales exactly to `[1, 2)`; below it both quotients round to 0, above it
/// both clamp (`quantize` clamps at ±65536). Results are cached per divisor
/// (the check takes 2^23 steps).
pub fn exact_reciprocal(d: f32) -> Option<(f32, f32)> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    type Cache = Mutex<HashMap<u32, Option<(f32, f32)>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(r) = cache.lock().ok().and_then(|c| c.get(&d.to_bits()).copied()) {
        return r;
    }
    let r = search_reciprocal(d);
    if let Ok(mut c) = cache.lock() {
        c.insert(d.to_bits(), r);
    }
    r
}

/// Inputs beyond `±FUSED_X_MAX` are clamped to it before [`quantize_fused`]
/// multiplies: `2^58 / d >= 2^18` saturates like the input did, and no
/// product overflows (an infinite `x` would meet `x · lo = ∓inf` or `0`).
pub const FUSED_X_MAX: f32 = 288_230_376_151_711_744.0; // 2^58

fn search_reciprocal(d: f32) -> Option<(f32, f32)> {
    let range = 2f32.powi(-40)..=2f32.powi(40);
    if !range.contains(&d) {
        return None;
    }
    let inv = 1.0 / d as f64;
    let hi = inv as f32;
    let lo = (inv - hi as f64) as f32;
    let one = 1f32.to_bits();
    let exact = (0..1u32 << 23).all(|m| {
        let x = f32::from_bits(one | m);
        x.mul_add(hi, x * lo) == x / d
    });
    exact.then_some((hi, lo))
}

/// [`quantize`] with the division replaced by the exact reciprocal pair
/// `(hi, lo)` of `q.scale` ([`exact_reciprocal`]): NaN from `x` itself,
/// `x` clamped to `±FUSED_X_MAX`, then `fma(x, hi, x · lo)`. The same
/// result as `quantize` for every `x`; what kernels with a hardware FMA run.
pub fn quantize_fused(x: f32, (hi, lo): (f32, f32), q: QParams, lo_q: i32, hi_q: i32) -> i32 {
    if x.is_nan() {
        return q.zero_point.clamp(lo_q, hi_q);
    }
    let x = x.clamp(-FUSED_X_MAX, FUSED_X_MAX);
    round_quotient(x.mul_add(hi, x * lo), q, lo_q, hi_q)
}

/// Float → 8-bit: `clamp(round_half_even(x / scale) + zero_point, lo, hi)`,
/// where `x / scale` is one f32 division. NaN maps to the zero point.
pub fn quantize(x: f32, q: QParams, lo: i32, hi: i32) -> i32 {
    round_quotient(x / q.scale, q, lo, hi)
}

/// The end of [`quantize`] from the quotient `v = x / scale`.
fn round_quotient(v: f32, q: QParams, lo: i32, hi: i32) -> i32 {
    if v.is_nan() {
        return q.zero_point.clamp(lo, hi);
    }
    // Clamping first keeps the value where f32 rounding to integers is exact.
    let v = v.clamp(-65536.0, 65536.0).round_ties_even() as i32;
    (v + q.zero_point).clamp(lo, hi)
}

/// 8-bit → float: `(q - zero_point) as f32 * scale` (one f32 multiplication).
pub fn dequantize(q: i32, p: QParams) -> f32 {
    (q - p.zero_point) as f32 * p.scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_shift_ties_go_up() {
        assert_eq!(round_shift(5, 1), 3);
        assert_eq!(round_shift(-5, 1), -2);
        assert_eq!(round_shift(6, 2), 2);
        assert_eq!(round_shift(-6, 2), -1);
        assert_eq!(round_shift(7, 0), 7);
    }

    #[test]
    fn fixed_point_multipliers() {
        for real in [0.5, 0.75, 1.0, 0.0123, 3.7e-5, 1.999, 123.25] {
            let r = Rescale::fixed_point(real).unwrap();
            assert!(r.multiplier[0] >= 1 << 30, "{real}: {r:?}");
            assert!(
                (r.real(0) - real).abs() <= real * 2f64.powi(-30),
                "{real}: {r:?}"
            );
        }
        assert!(Rescale::fixed_point(0.0).is_none());
        assert!(Rescale::fixed_point(f64::NAN).is_none());
        assert!(Rescale::fixed_point(3e9).is_none());
        let r = Rescale::fixed_point(0.25).unwrap();
        assert_eq!(r.apply(1000, 0), 250);
        assert_eq!(r.apply(-1002, 0), -250); // -250.5 rounds up
    }

    #[test]
    fn pow2_is_a_shift() {
        let r = Rescale::pow2(0.26).unwrap();
        assert_eq!(r, Rescale::uniform(1, 2));
        assert!(r.is_pow2());
        assert_eq!(r.apply(10, 0), 3); // 2.5 → 3
        assert!(Rescale::pow2(3.0).is_none());
    }

    #[test]
    fn quantize_rounds_half_to_even_and_saturates() {
        let q = QParams {
            scale: 0.5,
            zero_point: -3,
        };
        assert_eq!(quantize(1.25, q, -128, 127), 2 - 3); // 2.5 → 2
        assert_eq!(quantize(1.75, q, -128, 127), 4 - 3); // 3.5 → 4
        assert_eq!(quantize(1e9, q, -128, 127), 127);
        assert_eq!(quantize(-1e9, q, -128, 127), -128);
        assert_eq!(quantize(f32::NAN, q, -128, 127), -3);
        assert_eq!(dequantize(5, q), 4.0);
    }

    #[test]
    fn two_float_reciprocals_divide_exactly() {
        let mut found = 0;
        let mut seed = 7u64;
        for d in [
            0.0123f32,
            0.5,
            0.25,
            3.0,
            1.0 / 255.0,
            0.007_843_138,
            1e-5,
            41.7,
        ] {
            let Some((hi, lo)) = exact_reciprocal(d) else {
                continue;
            };
            found += 1;
            // Quotients near half-integers (the ties quantize cares about),
            // and random ones over the whole range.
            for k in -300..300 {
                let t = (k as f32 + 0.5) * d;
                let mut x = t;
                for _ in 0..4 {
                    x = f32::from_bits(x.to_bits() + 1);
                    assert_eq!(x.mul_add(hi, x * lo), x / d, "{x} / {d}");
                }
                let mut x = t;
                for _ in 0..4 {
                    x = f32::from_bits(x.to_bits().wrapping_sub(1));
                    assert_eq!(x.mul_add(hi, x * lo), x / d, "{x} / {d}");
                }
            }
            let q = QParams {
                scale: d,
                zero_point: 3,
            };
            for x in [
                f32::INFINITY,
                f32::NEG_INFINITY,
                f32::NAN,
                1e38,
                -1e38,
                0.0,
                -0.0,
                1e-45,
            ] {
                assert_eq!(
                    quantize_fused(x, (hi, lo), q, -128, 127),
                    quantize(x, q, -128, 127),
                    "{x} / {d}"
                );
            }
            for _ in 0..100_000 {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                let x = f32::from_bits((seed >> 32) as u32);
                let q = x / d;
                if !x.is_finite() || !(0.25..=131072.0).contains(&q.abs()) {
                    continue;
                }
                assert_eq!(x.mul_add(hi, x * lo), q, "{x} / {d}");
            }
        }
        assert!(
            found >= 4,
            "only {found} divisors have an exact reciprocal pair"
        );
        assert_eq!(exact_reciprocal(0.0), None);
        assert_eq!(exact_reciprocal(f32::NAN), None);
        assert_eq!(exact_reciprocal(1e30), None);
    }

    #[test]
    fn epilogue_clamps() {
        let e = Epilogue {
            rescale: Rescale::uniform(1, 1),
            zero_point: 10,
            min: 10,
            max: 127,
        };
        assert_eq!(e.apply(-40, 0), 10); // a fused Relu: below the zero point clamps to it
        assert_eq!(e.apply(41, 0), 31);
        assert_eq!(e.apply(1000, 0), 127);
    }
}
