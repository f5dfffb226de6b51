//! Shared machinery of the integer (int8) kernels: widening 8-bit loads and
//! exact 16-bit products, wrapping i32 arithmetic, the epilogue
//! (`qcc_ir::quant::Epilogue::apply`: rescale, zero point, clamp) emitted
//! bit-exactly, the compile-time accumulator bounds, constant tables, and
//! the row chunks that keep i32 scratch rows small.
//!
//! The epilogue follows the definition in `qcc_ir::quant` exactly:
//! `round_shift(acc * m, s) = (acc * m + 2^(s-1)) >> s` in i64 (arithmetic
//! shift), then `clamp(zp + r, min, max)`. Multipliers of 1 (power-of-two
//! scales) skip the multiply; a rounding shift of an i32 accumulator by at
//! most 31 is done in i32 as `(acc >> s) + bit(acc, s-1)`, which is the same
//! number without the i64 add. Clamping happens before adding the zero point
//! (`clamp(r, min-zp, max-zp) + zp`), so the final add never overflows.
//! Everything is plain (wrapping) integer arithmetic: i64 multiplies and
//! shifts are inline instructions on 32-bit ARM too (no runtime calls).

use super::conv::{const_data, Bounds};
use crate::cx::{CgResult, KernelCx, Operand};
use crate::math::ROUND_MAGIC;
use inkwell::values::{FloatValue, IntValue, PointerValue};
use qcc_ir::infer::int8_range;
use qcc_ir::{DType, Epilogue, Tensor};

/// The value range of an 8-bit operand, or an `Unsupported` error naming it.
pub(crate) fn need_int8(cx: &KernelCx<'_, '_>, o: &Operand, what: &str) -> CgResult<(i32, i32)> {
    int8_range(o.dtype())
        .ok_or_else(|| cx.unsupported(format!("{what} must be i8 or u8, got {}", o.ty)))
}

/// Loads element `idx` of an 8-bit tensor widened to i32 (sign-extended for
/// I8, zero-extended for U8).
pub(crate) fn load_ext<'ctx>(
    cx: &KernelCx<'_, 'ctx>,
    dt: DType,
    ptr: PointerValue<'ctx>,
    idx: IntValue<'ctx>,
) -> CgResult<IntValue<'ctx>> {
    let v = cx.load(dt, ptr, idx)?.into_int_value();
    ext_i32(cx, dt, v)
}

/// Widens an 8-bit value of `dt` to i32.
pub(crate) fn ext_i32<'ctx>(
    cx: &KernelCx<'_, 'ctx>,
    dt: DType,
    v: IntValue<'ctx>,
) -> CgResult<IntValue<'ctx>> {
    let signed = dt != DType::U8;
    Ok(cx.b.build_int_cast_sign_flag(v, cx.i32_t(), signed, "")?)
}

/// Loads element `idx` of an 8-bit tensor widened to i16.
pub(crate) fn load_i16<'ctx>(
    cx: &KernelCx<'_, 'ctx>,
    dt: DType,
    ptr: PointerValue<'ctx>,
    idx: IntValue<'ctx>,
) -> CgResult<IntValue<'ctx>> {
    let v = cx.load(dt, ptr, idx)?.into_int_value();
    let signed = dt != DType::U8;
    Ok(cx
        .b
        .build_int_cast_sign_flag(v, cx.ctx.i16_type(), signed, "")?)
}

/// `a * b` of two i16 values whose product fits i16 (the caller's bound),
/// sign-extended to i32: one 16-bit multiply instead of a 32-bit one
/// (twice the lanes per vector, `vpmullw` / `smull`).
pub(crate) fn mul_i16<'ctx>(
    cx: &KernelCx<'_, 'ctx>,
    a: IntValue<'ctx>,
    b: IntValue<'ctx>,
) -> CgResult<IntValue<'ctx>> {
    let p = cx.b.build_int_nsw_mul(a, b, "")?;
    Ok(cx.b.build_int_cast_sign_flag(p, cx.i32_t(), true, "")?)
}

/// An i32 constant with wrapping semantics (the bit pattern of `v mod 2^32`).
pub(crate) fn i32_wrapping<'ctx>(cx: &KernelCx<'_, 'ctx>, v: i64) -> IntValue<'ctx> {
    cx.i32(v as i32)
}

/// `a + b`, `a - b`, `a * b` without overflow flags: accumulators wrap like
/// two's-complement hardware (the final value is exact whenever it fits).
pub(crate) fn iadd<'ctx>(
    cx: &KernelCx<'_, 'ctx>,
    a: IntValue<'ctx>,
    b: IntValue<'ctx>,
) -> CgResult<IntValue<'ctx>> {
    Ok(cx.b.build_int_add(a, b, "")?)
}
pub(crate) fn isub<'ctx>(
    cx: &KernelCx<'_, 'ctx>,
    a: IntValue<'ctx>,
    b: IntValue<'ctx>,
) -> CgResult<IntValue<'ctx>> {
    Ok(cx.b.build_int_sub(a, b, "")?)
}
pub(crate) fn imul<'ctx>(
    cx: &KernelCx<'_, 'ctx>,
    a: IntValue<'ctx>,
    b: IntValue<'ctx>,
) -> CgResult<IntValue<'ctx>> {
    Ok(cx.b.build_int_mul(a, b, "")?)
}

/// The largest `|x - zp|` over the values `x` of an 8-bit type.
pub(crate) fn max_centered(range: (i32, i32), zp: i32) -> i64 {
    (range.1 as i64 - zp as i64)
        .abs()
        .max((zp as i64 - range.0 as i64).abs())
}

/// Rejects an accumulator whose worst-case magnitude exceeds i32.
pub(crate) fn check_i32(cx: &KernelCx<'_, '_>, worst: i128, what: &str) -> CgResult<()> {
    if worst > i32::MAX as i128 {
        return Err(cx.unsupported(format!(
            "the i32 accumulator may overflow: {what} can reach |acc| = {worst} > 2^31-1"
        )));
    }
    Ok(())
}

/// The elements of a constant integer operand, or an `Unsupported` error.
pub(crate) fn const_ints(cx: &KernelCx<'_, '_>, o: &Operand, what: &str) -> CgResult<Vec<i64>> {
    let v = o
        .konst
        .and_then(Tensor::to_i64_vec)
        .ok_or_else(|| cx.unsupported(format!("{what} must be a compile-time constant")))?;
    if v.len() != o.numel() {
        return Err(cx.unsupported(format!("{what} holds {} elements", v.len())));
    }
    Ok(v)
}

/// A private constant global of `i8`s.
pub(crate) fn const_i8_table<'ctx>(
    cx: &KernelCx<'_, 'ctx>,
    name: &str,
    vals: &[i8],
) -> PointerValue<'ctx> {
    let bytes: Vec<u8> = vals.iter().map(|&v| v as u8).collect();
    const_data(cx, name, &bytes)
}

/// A private constant global of `i32`s.
pub(crate) fn const_i32_table<'ctx>(
    cx: &KernelCx<'_, 'ctx>,
    name: &str,
    vals: &[i32],
) -> PointerValue<'ctx> {
    let bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
    const_data(cx, name, &bytes)
}

/// Which rescale entry an accumulator uses.
#[derive(Clone, Copy)]
pub(crate) enum Chan<'ctx> {
    /// Known at compile time.
    Static(usize),
    /// A run-time i64 channel index.
    Dyn(IntValue<'ctx>),
}

/// The multiplier and shift of one channel, as constants or loaded values.
#[derive(Clone, Copy)]
pub(crate) enum EpiParams<'ctx> {
    Static {
        m: i32,
        s: u32,
    },
    /// `m` is `None` when every multiplier is 1; `s` is an i64, `half` is
    /// `2^(s-1)` (0 when `s == 0`) as an i64.
    Dyn {
        m: Option<IntValue<'ctx>>,
        s: IntValue<'ctx>,
        half: IntValue<'ctx>,
    },
    /// The float form's factor (a constant or a loaded f32).
    Float(FloatValue<'ctx>),
}

/// An [`Epilogue`] ready to be emitted: validated, with per-channel tables.
pub(crate) struct EpiEmit<'ctx> {
    epi: Epilogue,
    /// `(multipliers: i32[], shifts: i64[])` when channels differ.
    tables: Option<(PointerValue<'ctx>, PointerValue<'ctx>)>,
    pow2: bool,
}

impl<'ctx> EpiEmit<'ctx> {
    /// Checks `epi` for an output of `to` with `channels` channels (the
    /// rescale has 1 or `channels` entries).
    pub fn new(
        cx: &KernelCx<'_, 'ctx>,
        epi: &Epilogue,
        to: DType,
        channels: usize,
    ) -> CgResult<Self> {
        let (lo, hi) = int8_range(to)
            .ok_or_else(|| cx.unsupported(format!("output type must be i8 or u8, got {to}")))?;
        let r = &epi.rescale;
        let n = r.multiplier.len();
        if n == 0 || n != r.shift.len() || (n != 1 && n != channels) {
            return Err(cx.unsupported(format!(
                "epilogue has {n} multipliers and {} shifts for {channels} channels",
                r.shift.len()
            )));
        }
        if r.multiplier.iter().any(|&m| m < 1)
            || r.shift.iter().any(|&s| s > qcc_ir::quant::MAX_SHIFT)
        {
            return Err(
                cx.unsupported("epilogue multipliers must be positive and shifts at most 62")
            );
        }
        if !(lo..=hi).contains(&epi.zero_point) || epi.min > epi.max || epi.min < lo || epi.max > hi
        {
            return Err(cx.unsupported(format!(
                "epilogue zero point {} / clamp [{}, {}] outside {to}'s range",
                epi.zero_point, epi.min, epi.max
            )));
        }
        let uniform = r.multiplier.iter().all(|&m| m == r.multiplier[0])
            && r.shift.iter().all(|&s| s == r.shift[0]);
        let tables = match &r.float {
            Some(f) if f.scales.len() > 1 => {
                let bits: Vec<i32> = f.scales.iter().map(|s| s.to_bits() as i32).collect();
                let t = const_i32_table(cx, "epi.fscale", &bits);
                Some((t, t))
            }
            Some(_) => None,
            None if uniform => None,
            None => {
                let shifts: Vec<i64> = r.shift.iter().map(|&s| s as i64).collect();
                Some((
                    const_i32_table(cx, "epi.mul", &r.multiplier),
                    super::conv::const_i64_table(cx, "epi.shift", &shifts),
                ))
            }
        };
        Ok(EpiEmit {
            epi: epi.clone(),
            tables,
            pow2: r.is_pow2(),
        })
    }

    /// The parameters of `ch`: constants when uniform or static, else loads
    /// from the tables (emit this outside the loops that share the channel).
    pub fn params(&self, cx: &KernelCx<'_, 'ctx>, ch: Chan<'ctx>) -> CgResult<EpiParams<'ctx>> {
        let r = &self.epi.rescale;
        if r.is_float() {
            let s = match (self.tables, ch) {
                (Some((t, _)), Chan::Dyn(c)) => cx.load(DType::F32, t, c)?.into_float_value(),
                (_, Chan::Static(c)) => cx.f32(r.float_at(c.min(r.channels() - 1)).unwrap_or(1.0)),
                (None, Chan::Dyn(_)) => cx.f32(r.float_at(0).unwrap_or(1.0)),
            };
            return Ok(EpiParams::Float(s));
        }
        let (mt, st) = match (self.tables, ch) {
            (None, _) => {
                return Ok(EpiParams::Static {
                    m: r.multiplier[0],
                    s: r.shift[0],
                })
            }
            (Some(_), Chan::Static(c)) => {
                let c = c.min(r.multiplier.len() - 1);
                return Ok(EpiParams::Static {
                    m: r.multiplier[c],
                    s: r.shift[c],
                });
            }
            (Some(t), Chan::Dyn(_)) => t,
        };
        let Chan::Dyn(c) = ch else {
            return Err(cx.unsupported("internal: channel kind"));
        };
        let s = cx.load_index(DType::I64, st, c)?;
        let one = cx.i64(1);
        let half =
            cx.b.build_right_shift(cx.b.build_left_shift(one, s, "")?, one, false, "")?;
        let m = if self.pow2 {
            None
        } else {
            Some(cx.load_index(DType::I32, mt, c)?)
        };
        Ok(EpiParams::Dyn { m, s, half })
    }

    /// `clamp(zp + round_shift(acc * m, s), min, max)` as an `i8`, for an
    /// i32 accumulator (any value: `|acc * m| < 2^62`).
    pub fn apply(
        &self,
        cx: &KernelCx<'_, 'ctx>,
        acc: IntValue<'ctx>,
        p: &EpiParams<'ctx>,
    ) -> CgResult<IntValue<'ctx>> {
        let zp = self.epi.zero_point as i64;
        let (lo, hi) = (self.epi.min as i64 - zp, self.epi.max as i64 - zp);
        let is_i32 = acc.get_type().get_bit_width() == 32;
        let r = match *p {
            EpiParams::Static { m: 1, s } if is_i32 && s <= 31 => {
                // Pure rounding shift in i32: (acc >> s) + bit s-1 of acc.
                let r = if s == 0 {
                    acc
                } else {
                    let q = cx.b.build_right_shift(acc, cx.i32(s as i32), true, "")?;
                    let bit =
                        cx.b.build_right_shift(acc, cx.i32(s as i32 - 1), true, "")?;
                    let bit = cx.b.build_and(bit, cx.i32(1), "")?;
                    iadd(cx, q, bit)?
                };
                return self.finish(cx, r, lo, hi);
            }
            EpiParams::Static { m, s } => {
                let a = cx.to_i64(acc)?;
                let p = if m == 1 {
                    a
                } else {
                    imul(cx, a, cx.i64(m as i64))?
                };
                if s == 0 {
                    p
                } else {
                    let p = iadd(cx, p, cx.i64(1i64 << (s - 1)))?;
                    cx.b.build_right_shift(p, cx.i64(s as i64), true, "")?
                }
            }
            EpiParams::Dyn { m, s, half } => {
                let a = cx.to_i64(acc)?;
                let p = match m {
                    Some(m) => imul(cx, a, m)?,
                    None => a,
                };
                let p = iadd(cx, p, half)?;
                cx.b.build_right_shift(p, s, true, "")?
            }
            EpiParams::Float(s) => {
                let a = cx.b.build_signed_int_to_float(acc, cx.f32_t(), "")?;
                let first = self
                    .epi
                    .rescale
                    .float
                    .as_ref()
                    .is_some_and(|f| f.zero_point_first);
                // ONNX Runtime's QLinearMul adds the zero point in f32
                // before rounding (taken back off in i32 for `finish`).
                let (v, back) = if first {
                    let v = cx.fadd(cx.fmul(a, s)?, cx.f32(zp as f32))?;
                    let (min, max) = (self.epi.min as f32, self.epi.max as f32);
                    (cx.fclamp(v, min, max)?, zp as i32)
                } else {
                    (cx.fclamp(cx.fmul(a, s)?, lo as f32, hi as f32)?, 0)
                };
                // Rounds half to even: below 2^22 in magnitude, adding
                // 1.5·2^23 leaves the rounded integer in the low bits.
                let v = cx.fadd(v, cx.f32(ROUND_MAGIC))?;
                let bias = ROUND_MAGIC.to_bits() as i32 + back;
                let r = cx.b.build_int_sub(cx.f32_bits(v)?, cx.i32(bias), "")?;
                return self.finish(cx, r, lo, hi);
            }
        };
        self.finish(cx, r, lo, hi)
    }

    /// Clamps the rescaled value `r` to `[lo, hi]` (bounds relative to the
    /// zero point), truncates to 8 bits and adds the zero point.
    fn finish(
        &self,
        cx: &KernelCx<'_, 'ctx>,
        r: IntValue<'ctx>,
        lo: i64,
        hi: i64,
    ) -> CgResult<IntValue<'ctx>> {
        let t = r.get_type();
        let (lo_v, hi_v) = (t.const_int(lo as u64, true), t.const_int(hi as u64, true));
        let r = cx.smax(r, lo_v)?;
        let r = cx.smin(r, hi_v)?;
        let r = cx.b.build_int_truncate(r, cx.i8_t(), "")?;
        let zp = cx.i8_t().const_int(self.epi.zero_point as u8 as u64, false);
        Ok(cx.b.build_int_add(r, zp, "")?)
    }
}

/// `if cond { then } else { els }`; the builder ends after both.
pub(crate) fn if_else<'a, 'ctx>(
    cx: &mut KernelCx<'a, 'ctx>,
    cond: IntValue<'ctx>,
    then: impl FnOnce(&mut KernelCx<'a, 'ctx>) -> CgResult<()>,
    els: impl FnOnce(&mut KernelCx<'a, 'ctx>) -> CgResult<()>,
) -> CgResult<()> {
    let t = cx.ctx.append_basic_block(cx.func, "then");
    let e = cx.ctx.append_basic_block(cx.func, "else");
    let m = cx.ctx.append_basic_block(cx.func, "endif");
    cx.b.build_conditional_branch(cond, t, e)?;
    cx.b.position_at_end(t);
    then(cx)?;
    cx.b.build_unconditional_branch(m)?;
    cx.b.position_at_end(e);
    els(cx)?;
    cx.b.build_unconditional_branch(m)?;
    cx.b.position_at_end(m);
    Ok(())
}

/// Rows longer than this are processed in chunks, so that the i32 scratch
/// row a kernel accumulates in stays small (it lives on the stack).
pub(crate) const CHUNK: i64 = 256;

/// A part of an output row: the whole row (static bounds) or one chunk of
/// a long row (run-time bounds).
pub(crate) enum Chunk<'ctx> {
    Whole(i64),
    Part {
        c0: IntValue<'ctx>,
        c1: IntValue<'ctx>,
    },
}

impl<'ctx> Chunk<'ctx> {
    /// First position of the chunk (the scratch index of position `p` is `p - start`).
    pub fn start(&self, cx: &KernelCx<'_, 'ctx>) -> IntValue<'ctx> {
        match self {
            Chunk::Whole(_) => cx.i64(0),
            Chunk::Part { c0, .. } => *c0,
        }
    }

    /// The positions of the chunk.
    pub fn range(&self) -> Bounds<'ctx> {
        match *self {
            Chunk::Whole(n) => Bounds::Static(0, n),
            Chunk::Part { c0, c1 } => Bounds::Dyn(c0, c1),
        }
    }

    /// `b` restricted to the chunk (`None` when statically empty).
    pub fn clip(&self, cx: &KernelCx<'_, 'ctx>, b: Bounds<'ctx>) -> CgResult<Option<Bounds<'ctx>>> {
        let Chunk::Part { c0, c1 } = *self else {
            return Ok(match b {
                Bounds::Static(lo, hi) if lo >= hi => None,
                _ => Some(b),
            });
        };
        let (lo, hi) = match b {
            Bounds::Static(lo, hi) if lo >= hi => return Ok(None),
            Bounds::Static(lo, hi) => (cx.i64(lo), cx.i64(hi)),
            Bounds::Dyn(lo, hi) => (lo, hi),
        };
        Ok(Some(Bounds::Dyn(cx.smax(lo, c0)?, cx.smin(hi, c1)?)))
    }
}

/// The scratch width for rows of `row_len` positions.
pub(crate) fn chunk_width(row_len: i64) -> i64 {
    row_len.clamp(1, CHUNK)
}

/// Calls `body` for the whole row, or for each chunk of a long one.
pub(crate) fn for_chunks<'a, 'ctx, F>(
    cx: &mut KernelCx<'a, 'ctx>,
    row_len: i64,
    mut body: F,
) -> CgResult<()>
where
    F: FnMut(&mut KernelCx<'a, 'ctx>, &Chunk<'ctx>) -> CgResult<()>,
{
    if row_len <= CHUNK {
        return body(cx, &Chunk::Whole(row_len));
    }
    let n = (row_len + CHUNK - 1) / CHUNK;
    cx.for_range(0, n, |cx, t| {
        let c0 = cx.mul_c(t, CHUNK)?;
        let c1 = cx.smin(cx.add_c(c0, CHUNK)?, cx.i64(row_len))?;
        body(cx, &Chunk::Part { c0, c1 })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn centered_reach() {
        assert_eq!(max_centered((-128, 127), 0), 128);
        assert_eq!(max_centered((-128, 127), -128), 255);
        assert_eq!(max_centered((-128, 127), 127), 255);
        assert_eq!(max_centered((0, 255), 0), 255);
        assert_eq!(max_centered((0, 255), 300), 300);
        assert_eq!(max_centered((0, 255), i32::MIN), 255 + (1i64 << 31));
    }

    #[test]
    fn chunks_bound_the_scratch() {
        assert_eq!(chunk_width(0), 1);
        assert_eq!(chunk_width(7), 7);
        assert_eq!(chunk_width(CHUNK), CHUNK);
        assert_eq!(chunk_width(10 * CHUNK + 1), CHUNK);
    }
}
