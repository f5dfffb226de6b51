//! Epilogue algebra for `cancel-qdq`: a `Requantize` after a kernel is
//! merged into the kernel's own epilogue.
//!
//! A requantize `R` maps an 8-bit `y` to `clamp(zp₂ + r₂(y - zp₁), lo₂, hi₂)`;
//! after an epilogue `E = clamp(zp₁ + r₁(acc), lo₁, hi₁)` the pair becomes one
//! epilogue `clamp(zp₂ + r(acc), lo, hi)` with the real factor `r = r₁·r₂`
//! (rounded once instead of twice) and the clamp `[R(lo₁), R(hi₁)]` ∩ `[lo₂, hi₂]`
//! (`R` is monotone, so mapping the bounds is exact).

use crate::context::ScaleFormat;
use crate::quantize::params::rescale;
use qcc_ir::{Epilogue, Rescale};

/// The identity rescale (multiplier 1, no shift).
pub fn identity() -> Rescale {
    Rescale::uniform(1, 0)
}

/// `R(y)` for a requantize with input zero point `in_zp` and epilogue `r`.
pub fn requantize(in_zp: i32, r: &Epilogue, y: i32) -> i32 {
    r.apply((y - in_zp) as i64, 0)
}

/// Whether a requantize is the identity on every 8-bit input in `[lo, hi]`.
pub fn is_identity(in_zp: i32, r: &Epilogue, lo: i32, hi: i32) -> bool {
    r.rescale == identity() && r.zero_point == in_zp && r.min <= lo && r.max >= hi
}

/// `rescale(a) ∘ rescale(b)` per channel of `a` (b is per tensor); exact when
/// either is the identity. A float `a` gives the float form.
fn compose_rescale(a: &Rescale, b: &Rescale, fmt: ScaleFormat) -> Option<Rescale> {
    if *b == identity() {
        return Some(a.clone());
    }
    if *a == identity() {
        return Some(b.clone());
    }
    if a.is_float() {
        // A float kernel stays float (one rounding of the product).
        let f: Vec<f32> = (0..a.channels())
            .map(|c| (a.real(c) * b.real(0)) as f32)
            .collect();
        return Rescale::float(&f);
    }
    let parts: Option<Vec<Rescale>> = (0..a.channels())
        .map(|c| rescale(a.real(c) * b.real(0), fmt))
        .collect();
    let parts = parts?;
    Some(if parts.iter().all(|p| *p == parts[0]) {
        parts[0].clone()
    } else {
        Rescale::per_channel(&parts)
    })
}

/// Merges a requantize (`in_zp`, `r`) into the epilogue `e` of the kernel
/// producing its input; `None` when `in_zp` is not `e`'s zero point or the
/// product of the factors cannot be represented.
pub fn compose(e: &Epilogue, in_zp: i32, r: &Epilogue, fmt: ScaleFormat) -> Option<Epilogue> {
    if e.zero_point != in_zp {
        return None;
    }
    Some(Epilogue {
        rescale: compose_rescale(&e.rescale, &r.rescale, fmt)?,
        zero_point: r.zero_point,
        min: requantize(in_zp, r, e.min),
        max: requantize(in_zp, r, e.max),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epi(m: i32, s: u32, zp: i32, lo: i32, hi: i32) -> Epilogue {
        Epilogue {
            rescale: Rescale::uniform(m, s),
            zero_point: zp,
            min: lo,
            max: hi,
        }
    }

    #[test]
    fn composing_with_a_clamp_only_requantize_keeps_the_factor() {
        let e = epi(1 << 30, 33, -5, -128, 127);
        let relu = epi(1, 0, -5, -5, 127);
        let c = compose(&e, -5, &relu, ScaleFormat::FixedPoint).unwrap();
        assert_eq!(c.rescale, e.rescale);
        assert_eq!((c.zero_point, c.min, c.max), (-5, -5, 127));
    }

    #[test]
    fn composed_pow2_factors_add_shifts() {
        let e = epi(1, 3, 0, -128, 127);
        let r = epi(1, 2, 10, -128, 127);
        let c = compose(&e, 0, &r, ScaleFormat::Pow2).unwrap();
        assert_eq!(c.rescale, Rescale::uniform(1, 5));
        assert_eq!(c.zero_point, 10);
        // The old bounds map through R: -128 → 10 + round(-128/4) = -22.
        assert_eq!((c.min, c.max), (-22, 42));
        assert!(
            compose(&e, 1, &r, ScaleFormat::Pow2).is_none(),
            "zero points differ"
        );
    }

    #[test]
    fn composition_is_close_to_applying_both() {
        let e = Epilogue {
            rescale: Rescale::fixed_point(0.0123).unwrap(),
            zero_point: 3,
            min: -128,
            max: 127,
        };
        let r = Epilogue {
            rescale: Rescale::fixed_point(0.7).unwrap(),
            zero_point: -20,
            min: -100,
            max: 127,
        };
        let c = compose(&e, 3, &r, ScaleFormat::FixedPoint).unwrap();
        for acc in (-20000..20000).step_by(97) {
            let two = requantize(3, &r, e.apply(acc, 0));
            let one = c.apply(acc, 0);
            assert!((two - one).abs() <= 1, "{acc}: {two} vs {one}");
        }
    }
}
