//! f32 transcendental functions emitted as inline LLVM IR, so generated
//! objects never need libm: exp, log, tanh, sigmoid, erf, pow, plus
//! trunc/floor/ceil. Everything is branch-free (selects), so loops calling
//! these still vectorize.
//!
//! Accuracy (checked by `tests/math.rs` against Rust's f32 functions):
//! exp/log a few ulp; tanh, sigmoid, erf absolute error below 1e-6.
//!
//! Never use `llvm.exp`, `llvm.log`, `llvm.pow`, `llvm.floor`, `llvm.round`,
//! `llvm.trunc`, `llvm.fma`, `llvm.maxnum`: on some targets they become
//! calls to libm.

use crate::cx::{CgResult, KernelCx};
use inkwell::values::{FloatValue, IntValue};
use inkwell::{FloatPredicate, IntPredicate};

/// 1.5 * 2^23: adding it rounds an f32 of magnitude < 2^22 to an integer.
pub(crate) const ROUND_MAGIC: f32 = 12_582_912.0;
const LOG2E: f32 = std::f32::consts::LOG2_E;
/// ln 2 split in a high part with trailing zero bits and a low correction.
const LN2_HI: f32 = 0.693_145_75;
const LN2_LO: f32 = 1.428_606_8e-6;
/// Maclaurin coefficients of erf: 2/sqrt(pi) * (-1)^n / (n! (2n+1)).
const ERF_C: [f32; 8] = {
    const K: f64 = std::f64::consts::FRAC_2_SQRT_PI;
    [
        K as f32,
        (-K / 3.0) as f32,
        (K / 10.0) as f32,
        (-K / 42.0) as f32,
        (K / 216.0) as f32,
        (-K / 1320.0) as f32,
        (K / 9360.0) as f32,
        (-K / 75600.0) as f32,
    ]
};
/// 2^23: every f32 of at least this magnitude is an integer.
const TWO_23: f32 = 8_388_608.0;

impl<'ctx> KernelCx<'_, 'ctx> {
    /// Evaluates `c[0] + x*(c[1] + x*(c[2] + …))` with fmuladd.
    pub fn poly(&self, x: FloatValue<'ctx>, c: &[f32]) -> CgResult<FloatValue<'ctx>> {
        let Some((&last, rest)) = c.split_last() else {
            return Ok(self.f32(0.0));
        };
        let mut acc = self.f32(last);
        for &k in rest.iter().rev() {
            acc = self.fmuladd(acc, x, self.f32(k))?;
        }
        Ok(acc)
    }

    /// 2^n for an i32 `n` in [-126, 127], built from the exponent bits.
    fn pow2i(&self, n: IntValue<'ctx>) -> CgResult<FloatValue<'ctx>> {
        let e = self.b.build_int_add(n, self.i32(127), "")?;
        let bits = self.b.build_left_shift(e, self.i32(23), "")?;
        self.f32_from_bits(bits)
    }

    /// e^x. Relative error ≈ 2 ulp; overflows to +inf above ~88.72, underflows
    /// through subnormals to 0; NaN in, NaN out.
    pub fn exp(&self, x: FloatValue<'ctx>) -> CgResult<FloatValue<'ctx>> {
        let xc = self.fclamp(x, -104.0, 89.0)?;
        // n = round(x / ln2), by adding a magic number.
        let t = self.fmuladd(xc, self.f32(LOG2E), self.f32(ROUND_MAGIC))?;
        let nf = self.fsub(t, self.f32(ROUND_MAGIC))?;
        let ni = self.b.build_int_sub(
            self.f32_bits(t)?,
            self.i32(ROUND_MAGIC.to_bits() as i32),
            "",
        )?;
        // r = x - n ln2 in two steps (Cody–Waite); |r| <= ln2/2.
        let r = self.fmuladd(nf, self.f32(-LN2_HI), xc)?;
        let r = self.fmuladd(nf, self.f32(-LN2_LO), r)?;
        // e^r by its Taylor series to degree 7 (truncation error < 6e-9).
        let p = self.poly(
            r,
            &[
                1.0,
                1.0,
                0.5,
                1.0 / 6.0,
                1.0 / 24.0,
                1.0 / 120.0,
                1.0 / 720.0,
                1.0 / 5040.0,
            ],
        )?;
        // Scale by 2^n as 2^(n/2) * 2^(n - n/2) so that n in [-150, 128]
        // stays within normal exponents and gives subnormals / inf correctly.
        let n1 = self.b.build_right_shift(ni, self.i32(1), true, "")?;
        let n2 = self.b.build_int_sub(ni, n1, "")?;
        let y = self.fmul(self.fmul(p, self.pow2i(n1)?)?, self.pow2i(n2)?)?;
        let nan = self.fcmp(FloatPredicate::UNO, x, x)?;
        self.select_f(nan, x, y)
    }

    /// Natural logarithm. Relative error ≈ 1 ulp; log(0) = -inf, log(x<0) = NaN,
    /// log(+inf) = +inf, subnormals handled.
    pub fn log(&self, x: FloatValue<'ctx>) -> CgResult<FloatValue<'ctx>> {
        let i32t = self.i32_t();
        // Bring subnormals into the normal range.
        let sub = self.fcmp(FloatPredicate::OLT, x, self.f32(f32::MIN_POSITIVE))?;
        let xs = self.select_f(sub, self.fmul(x, self.f32(TWO_23))?, x)?;
        let bits = self.f32_bits(xs)?;
        let e = self.b.build_right_shift(bits, self.i32(23), false, "")?;
        let e = self.b.build_int_sub(e, self.i32(127), "")?;
        let adj = self.select_i(sub, self.i32(-23), self.i32(0))?;
        let e = self.b.build_int_add(e, adj, "")?;
        // Mantissa in [1, 2), then in [sqrt(1/2), sqrt(2)).
        let mbits = self.b.build_and(bits, self.i32(0x007f_ffff), "")?;
        let mbits = self.b.build_or(mbits, self.i32(0x3f80_0000), "")?;
        let m = self.f32_from_bits(mbits)?;
        let big = self.fcmp(FloatPredicate::OGT, m, self.f32(std::f32::consts::SQRT_2))?;
        let m = self.select_f(big, self.fmul(m, self.f32(0.5))?, m)?;
        let e = self
            .b
            .build_int_add(e, self.b.build_int_z_extend(big, i32t, "")?, "")?;
        let ef = self.b.build_signed_int_to_float(e, self.f32_t(), "")?;
        // log(1+f) = f - (hfsq - s*(hfsq + R)), s = f/(2+f), R = Σ 2 z^k/(2k+1).
        let f = self.fsub(m, self.f32(1.0))?;
        let s = self.fdiv(f, self.fadd(self.f32(2.0), f)?)?;
        let z = self.fmul(s, s)?;
        let rz = self.poly(
            z,
            &[
                2.0 / 3.0,
                2.0 / 5.0,
                2.0 / 7.0,
                2.0 / 9.0,
                2.0 / 11.0,
                2.0 / 13.0,
            ],
        )?;
        let r = self.fmul(z, rz)?;
        let hfsq = self.fmul(self.f32(0.5), self.fmul(f, f)?)?;
        let inner = self.fmuladd(s, self.fadd(hfsq, r)?, self.fmul(ef, self.f32(LN2_LO))?)?;
        let lo = self.fsub(self.fsub(hfsq, inner)?, f)?;
        let y = self.fsub(self.fmul(ef, self.f32(LN2_HI))?, lo)?;
        // Special values.
        let inf = self.fcmp(FloatPredicate::OEQ, x, self.f32(f32::INFINITY))?;
        let y = self.select_f(inf, x, y)?;
        let zero = self.fcmp(FloatPredicate::OEQ, x, self.f32(0.0))?;
        let y = self.select_f(zero, self.f32(f32::NEG_INFINITY), y)?;
        let bad = self.fcmp(FloatPredicate::ULT, x, self.f32(0.0))?; // x < 0 or NaN
        self.select_f(bad, self.f32(f32::NAN), y)
    }

    /// Hyperbolic tangent: odd Taylor series below 0.55, `1 - 2/(e^{2|x|}+1)` above.
    pub fn tanh(&self, x: FloatValue<'ctx>) -> CgResult<FloatValue<'ctx>> {
        let a = self.fabs(x)?;
        let z = self.fmul(x, x)?;
        let p = self.poly(
            z,
            &[
                1.0,
                -1.0 / 3.0,
                2.0 / 15.0,
                -17.0 / 315.0,
                62.0 / 2835.0,
                -1382.0 / 155_925.0,
                21844.0 / 6_081_075.0,
                -929_569.0 / 638_512_875.0,
            ],
        )?;
        let small = self.fmul(x, p)?;
        let e = self.exp(self.fadd(a, a)?)?;
        let q = self.fdiv(self.f32(2.0), self.fadd(e, self.f32(1.0))?)?;
        let large = self.copysign(self.fsub(self.f32(1.0), q)?, x)?;
        let is_small = self.fcmp(FloatPredicate::OLT, a, self.f32(0.55))?;
        self.select_f(is_small, small, large)
    }

    /// Logistic function `1 / (1 + e^-x)`.
    pub fn sigmoid(&self, x: FloatValue<'ctx>) -> CgResult<FloatValue<'ctx>> {
        let e = self.exp(self.fneg(x)?)?;
        self.fdiv(self.f32(1.0), self.fadd(self.f32(1.0), e)?)
    }

    /// Error function: Maclaurin series below 0.5, Abramowitz–Stegun 7.1.26
    /// above (absolute error < 3e-7).
    pub fn erf(&self, x: FloatValue<'ctx>) -> CgResult<FloatValue<'ctx>> {
        let a = self.fabs(x)?;
        let z = self.fmul(x, x)?;
        // 2/sqrt(pi) * Σ (-1)^n x^(2n+1) / (n! (2n+1))
        let p = self.poly(z, &ERF_C)?;
        let small = self.fmul(x, p)?;
        let t = self.fdiv(
            self.f32(1.0),
            self.fmuladd(self.f32(0.327_591_1), a, self.f32(1.0))?,
        )?;
        let q = self.poly(
            t,
            &[
                0.0,
                0.254_829_6,
                -0.284_496_74,
                1.421_413_7,
                -1.453_152_1,
                1.061_405_4,
            ],
        )?;
        let g = self.exp(self.fneg(z)?)?;
        let large = self.copysign(self.fsub(self.f32(1.0), self.fmul(q, g)?)?, x)?;
        let is_small = self.fcmp(FloatPredicate::OLT, a, self.f32(0.5))?;
        self.select_f(is_small, small, large)
    }

    /// Rounds toward zero (no libm): exact for every f32, keeps the sign of zero.
    pub fn ftrunc(&self, x: FloatValue<'ctx>) -> CgResult<FloatValue<'ctx>> {
        let a = self.fabs(x)?;
        let frac = self.fcmp(FloatPredicate::OLT, a, self.f32(TWO_23))?; // false for NaN
                                                                         // Only selected when |x| < 2^23, where the conversion is exact and in range.
        let i = self.b.build_float_to_signed_int(x, self.i32_t(), "")?;
        let t = self.b.build_signed_int_to_float(i, self.f32_t(), "")?;
        let t = self.copysign(t, x)?;
        self.select_f(frac, t, x)
    }

    /// Largest integer not above `x`.
    pub fn ffloor(&self, x: FloatValue<'ctx>) -> CgResult<FloatValue<'ctx>> {
        let t = self.ftrunc(x)?;
        let above = self.fcmp(FloatPredicate::OGT, t, x)?;
        self.select_f(above, self.fsub(t, self.f32(1.0))?, t)
    }

    /// Smallest integer not below `x`.
    pub fn fceil(&self, x: FloatValue<'ctx>) -> CgResult<FloatValue<'ctx>> {
        let t = self.ftrunc(x)?;
        let below = self.fcmp(FloatPredicate::OLT, t, x)?;
        self.select_f(below, self.fadd(t, self.f32(1.0))?, t)
    }

    /// `a^b` for run-time `a` and `b` (ONNX/C `pow` semantics): `exp(b log|a|)`,
    /// negated for a negative base with an odd integer exponent, NaN for a
    /// negative base with a non-integer exponent, 1 when `b == 0` or `a == 1`.
    pub fn powf(&self, a: FloatValue<'ctx>, b: FloatValue<'ctx>) -> CgResult<FloatValue<'ctx>> {
        let la = self.log(self.fabs(a)?)?;
        let r = self.exp(self.fmul(b, la)?)?;
        // Is b an integer, and is it odd?
        let babs = self.fabs(b)?;
        let huge = self.fcmp(FloatPredicate::OGE, babs, self.f32(TWO_23))?; // even integers
        let safe = self.select_f(huge, self.f32(0.0), b)?;
        let bi = self.b.build_float_to_signed_int(safe, self.i32_t(), "")?;
        let back = self.b.build_signed_int_to_float(bi, self.f32_t(), "")?;
        let is_int_small = self.fcmp(FloatPredicate::OEQ, back, safe)?;
        let is_int = self.b.build_or(huge, is_int_small, "")?;
        let low_bit = self.b.build_and(bi, self.i32(1), "")?;
        let odd_small = self.icmp(IntPredicate::NE, low_bit, self.i32(0))?;
        let not_huge = self.b.build_not(huge, "")?;
        let odd = self.b.build_and(odd_small, not_huge, "")?;
        let odd = self.b.build_and(odd, is_int_small, "")?;
        let neg = self.fcmp(FloatPredicate::OLT, a, self.f32(0.0))?;
        let flip = self.b.build_and(neg, odd, "")?;
        let r = self.select_f(flip, self.fneg(r)?, r)?;
        let bad = self.b.build_and(neg, self.b.build_not(is_int, "")?, "")?;
        let r = self.select_f(bad, self.f32(f32::NAN), r)?;
        let one = self.b.build_or(
            self.fcmp(FloatPredicate::OEQ, b, self.f32(0.0))?,
            self.fcmp(FloatPredicate::OEQ, a, self.f32(1.0))?,
            "",
        )?;
        self.select_f(one, self.f32(1.0), r)
    }

    /// `x^n` for a compile-time integer `n`, by repeated squaring (exact for
    /// small results, like `powi`).
    pub fn powi(&self, x: FloatValue<'ctx>, n: i32) -> CgResult<FloatValue<'ctx>> {
        let mut e = n.unsigned_abs();
        let mut acc: Option<FloatValue<'ctx>> = None;
        let mut sq = x;
        while e > 0 {
            if e & 1 == 1 {
                acc = Some(match acc {
                    None => sq,
                    Some(a) => self.fmul(a, sq)?,
                });
            }
            e >>= 1;
            if e > 0 {
                sq = self.fmul(sq, sq)?;
            }
        }
        let p = acc.unwrap_or_else(|| self.f32(1.0));
        if n < 0 {
            self.fdiv(self.f32(1.0), p)
        } else {
            Ok(p)
        }
    }
}
