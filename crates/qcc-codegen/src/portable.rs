//! Integer division and i64 ↔ f32 conversions that never become runtime
//! library calls. On 64-bit targets they are single instructions; on 32-bit
//! ARM LLVM would call `__aeabi_ldivmod`, `__aeabi_idiv`, `__aeabi_f2lz`,
//! `__aeabi_l2f` (libgcc / compiler-rt), so there they are emitted inline:
//! a shift–subtract loop for division, bit manipulation for conversions.

use crate::cx::{CgResult, KernelCx};
use inkwell::values::{FloatValue, IntValue};
use inkwell::IntPredicate;
use qcc_ir::DType;

/// What the kernels need to know about the target.
#[derive(Clone, Copy, Debug)]
pub struct TargetFacts {
    /// Pointer width in bits (32 or 64).
    pub ptr_bits: u32,
    /// 32-bit ARM / Thumb: integer division may lack an instruction.
    pub arm32: bool,
    /// AArch64 `sdot`/`udot` (the CPU's table entry, `+dotprod`/`-dotprod`).
    pub dotprod: bool,
    /// x86 AVX512-VNNI `vpdpbusd` (the host's features, or explicit
    /// `--features +avx512vnni` with AVX512BW for a named CPU).
    pub avx512vnni: bool,
    /// Intel AMX int8 tiles (`amx-tile` + `amx-int8`, with AVX-512 VNNI
    /// for everything else) on Linux, where the generated code can ask the
    /// kernel for the tile state.
    pub amx: bool,
    /// The widest float SIMD the target has (picks the GEMM microkernels).
    pub simd: crate::mmm::Simd,
    /// No operating system (Cortex-M): RAM is scarce, so no GEMM scratch.
    pub bare_metal: bool,
    /// 3×3 stride-1 float convolutions may run as Winograd F(2×2, 3×3).
    pub winograd: bool,
    /// The node at hand has int8 weights that all lie in [-64, 64]
    /// ([`TargetFacts::for_weights`]): with u8 activations no pair of
    /// products reaches 2^15, so AVX2 `vpmaddubsw` is exact on them.
    pub small_weights: bool,
    /// Bits per weight the node at hand stores its int8 weights in
    /// ([`TargetFacts::for_weights`]): 2 when their type makes them 2-bit
    /// (within [-2, 1]), 4 when 3- or 4-bit (within [-8, 7]), else 8.
    /// Kernels that can store them four or two per byte and unpack them at
    /// run time do.
    pub stored_bits: u32,
}

impl TargetFacts {
    /// Largest |weight| for which AVX2 `vpmaddubsw` never saturates:
    /// `2 · 255 · 64 < 2^15`.
    pub const SMALL_WEIGHT: i64 = 64;

    /// These facts for a node whose int8 weights are `w` of type `ty` (what
    /// the kernel and the memory plan both ask, so they agree on the
    /// microkernel): `small_weights` from the values, `stored_bits` from the
    /// width the type gives them ([`qcc_ir::AxisQuant::bits`], checked
    /// against the values by the verifier).
    pub fn for_weights(&self, w: &[i64], ty: &qcc_ir::TensorType) -> TargetFacts {
        TargetFacts {
            small_weights: !w.is_empty() && w.iter().all(|v| v.abs() <= Self::SMALL_WEIGHT),
            stored_bits: ty.packed_bits(),
            ..*self
        }
    }

    /// These facts for a float convolution whose weights are `w`: no
    /// Winograd when every weight is a whole number (a `ConvInteger` read as
    /// a float Conv relies on exact integer sums, which Winograd's fractional
    /// transforms would round).
    pub fn for_float_weights(&self, w: &[f32]) -> TargetFacts {
        TargetFacts {
            winograd: self.winograd && !w.iter().all(|v| v.fract() == 0.0),
            ..*self
        }
    }

    pub fn native_int_div(&self) -> bool {
        !self.arm32
    }
    pub fn native_i64_float(&self) -> bool {
        self.ptr_bits == 64
    }
}

impl<'ctx> KernelCx<'_, 'ctx> {
    /// `x / y` truncating toward zero (unsigned when `!signed`), never trapping:
    /// division by zero gives 0 and `MIN / -1` wraps to `MIN`.
    pub fn int_div(
        &mut self,
        x: IntValue<'ctx>,
        y: IntValue<'ctx>,
        signed: bool,
    ) -> CgResult<IntValue<'ctx>> {
        let t = x.get_type();
        let zero = t.const_zero();
        let one = t.const_int(1, false);
        let is_zero = self.icmp(IntPredicate::EQ, y, zero)?;
        if !self.target.native_int_div() {
            let q = self.soft_div(x, y, signed)?;
            return self.select_i(is_zero, zero, q);
        }
        if !signed {
            let d = self.select_i(is_zero, one, y)?;
            let q = self.b.build_int_unsigned_div(x, d, "")?;
            return self.select_i(is_zero, zero, q);
        }
        let is_m1 = self.icmp(IntPredicate::EQ, y, t.const_all_ones())?;
        let special = self.b.build_or(is_zero, is_m1, "")?;
        let d = self.select_i(special, one, y)?;
        let q = self.b.build_int_signed_div(x, d, "")?;
        let negx = self.b.build_int_sub(zero, x, "")?;
        let q = self.select_i(is_m1, negx, q)?;
        self.select_i(is_zero, zero, q)
    }

    /// Long division on 64-bit magnitudes; the result wraps to `x`'s width.
    /// Division by zero yields garbage (the caller selects 0).
    fn soft_div(
        &mut self,
        x: IntValue<'ctx>,
        y: IntValue<'ctx>,
        signed: bool,
    ) -> CgResult<IntValue<'ctx>> {
        let t = x.get_type();
        let i64t = self.i64_t();
        let wide = |cx: &Self, v: IntValue<'ctx>| -> CgResult<IntValue<'ctx>> {
            Ok(cx.b.build_int_cast_sign_flag(v, i64t, signed, "")?)
        };
        let (xw, yw) = (wide(self, x)?, wide(self, y)?);
        let zero = self.i64(0);
        let abs = |cx: &Self, v: IntValue<'ctx>| -> CgResult<IntValue<'ctx>> {
            if !signed {
                return Ok(v);
            }
            let neg = cx.icmp(IntPredicate::SLT, v, zero)?;
            let nv = cx.b.build_int_sub(zero, v, "")?;
            cx.select_i(neg, nv, v)
        };
        let (n, d) = (abs(self, xw)?, abs(self, yw)?);
        let slots = self.stack_array(DType::I64, 2)?;
        let (q_slot, r_slot) = (
            self.gep(DType::I64, slots, self.i64(0))?,
            self.gep(DType::I64, slots, self.i64(1))?,
        );
        self.b.build_store(q_slot, zero)?;
        self.b.build_store(r_slot, zero)?;
        self.for_range(0, 64, |cx, i| {
            let bit = cx.b.build_int_sub(cx.i64(63), i, "")?;
            let r = cx.b.build_load(i64t, r_slot, "")?.into_int_value();
            let q = cx.b.build_load(i64t, q_slot, "")?.into_int_value();
            let top = cx.b.build_right_shift(n, bit, false, "")?;
            let top = cx.b.build_and(top, cx.i64(1), "")?;
            let r = cx.b.build_left_shift(r, cx.i64(1), "")?;
            let r = cx.b.build_or(r, top, "")?;
            let ge = cx.icmp(IntPredicate::UGE, r, d)?;
            let r2 = cx.b.build_int_sub(r, d, "")?;
            let r = cx.select_i(ge, r2, r)?;
            let qbit = cx.b.build_left_shift(cx.i64(1), bit, "")?;
            let q2 = cx.b.build_or(q, qbit, "")?;
            let q = cx.select_i(ge, q2, q)?;
            cx.b.build_store(r_slot, r)?;
            cx.b.build_store(q_slot, q)?;
            Ok(())
        })?;
        let mut q = self.b.build_load(i64t, q_slot, "")?.into_int_value();
        if signed {
            let sx = self.icmp(IntPredicate::SLT, xw, zero)?;
            let sy = self.icmp(IntPredicate::SLT, yw, zero)?;
            let neg = self.b.build_xor(sx, sy, "")?;
            let nq = self.b.build_int_sub(zero, q, "")?;
            q = self.select_i(neg, nq, q)?;
        }
        Ok(self.b.build_int_truncate_or_bit_cast(q, t, "")?)
    }

    /// f32 → i64 truncating toward zero, saturating, NaN → 0 (like Rust `as`).
    pub fn f32_to_i64_sat(&self, x: FloatValue<'ctx>) -> CgResult<IntValue<'ctx>> {
        let i64t = self.i64_t();
        if self.target.native_i64_float() {
            return Ok(self
                .call_intrinsic(
                    "llvm.fptosi.sat",
                    &[i64t.into(), self.f32_t().into()],
                    &[x.into()],
                )?
                .into_int_value());
        }
        let bits = self.f32_bits(x)?;
        let bits = self.b.build_int_z_extend(bits, i64t, "")?;
        let exp = self.b.build_right_shift(bits, self.i64(23), false, "")?;
        let exp = self.b.build_and(exp, self.i64(0xff), "")?;
        let mant = self.b.build_and(bits, self.i64(0x7f_ffff), "")?;
        let mant = self.b.build_or(mant, self.i64(0x80_0000), "")?;
        // value = mant * 2^(exp - 150)
        let e = self.b.build_int_sub(exp, self.i64(150), "")?;
        let left = self.smin(self.smax(e, self.i64(0))?, self.i64(63))?;
        let right = self.smin(
            self.smax(self.b.build_int_sub(self.i64(0), e, "")?, self.i64(0))?,
            self.i64(63),
        )?;
        let up = self.b.build_left_shift(mant, left, "")?;
        let down = self.b.build_right_shift(mant, right, false, "")?;
        let e_pos = self.icmp(IntPredicate::SGE, e, self.i64(0))?;
        let mag = self.select_i(e_pos, up, down)?;
        let neg_sign = self.icmp(IntPredicate::SLT, self.f32_bits(x)?, self.i32(0))?;
        let nmag = self.b.build_int_sub(self.i64(0), mag, "")?;
        let v = self.select_i(neg_sign, nmag, mag)?;
        // |x| < 1 → 0; |x| >= 2^63 → saturate; NaN → 0.
        let tiny = self.icmp(IntPredicate::ULT, exp, self.i64(127))?;
        let v = self.select_i(tiny, self.i64(0), v)?;
        let huge = self.icmp(IntPredicate::UGE, exp, self.i64(127 + 63))?;
        let sat = self.select_i(neg_sign, self.i64(i64::MIN), self.i64(i64::MAX))?;
        let v = self.select_i(huge, sat, v)?;
        let nan = self.fcmp(inkwell::FloatPredicate::UNO, x, x)?;
        self.select_i(nan, self.i64(0), v)
    }

    /// i64 → f32, correctly rounded (to nearest, ties to even).
    pub fn i64_to_f32(&self, v: IntValue<'ctx>, signed: bool) -> CgResult<FloatValue<'ctx>> {
        if self.target.native_i64_float() {
            return Ok(if signed {
                self.b.build_signed_int_to_float(v, self.f32_t(), "")?
            } else {
                self.b.build_unsigned_int_to_float(v, self.f32_t(), "")?
            });
        }
        let i64t = self.i64_t();
        let zero = self.i64(0);
        let neg = if signed {
            self.icmp(IntPredicate::SLT, v, zero)?
        } else {
            self.bool(false)
        };
        let a = self.select_i(neg, self.b.build_int_sub(zero, v, "")?, v)?; // |v| as u64
        let lz = self
            .call_intrinsic(
                "llvm.ctlz",
                &[i64t.into()],
                &[a.into(), self.bool(false).into()],
            )?
            .into_int_value();
        let lz_safe = self.smin(lz, self.i64(63))?;
        let m = self.b.build_left_shift(a, lz_safe, "")?; // top bit set (unless a == 0)
        let mant = self.b.build_right_shift(m, self.i64(40), false, "")?; // 24 bits
        let rest = self.b.build_and(m, self.i64((1 << 40) - 1), "")?;
        let half = self.i64(1 << 39);
        let above = self.icmp(IntPredicate::UGT, rest, half)?;
        let tie = self.icmp(IntPredicate::EQ, rest, half)?;
        let odd = self.icmp(
            IntPredicate::NE,
            self.b.build_and(mant, self.i64(1), "")?,
            zero,
        )?;
        let round_up = self
            .b
            .build_or(above, self.b.build_and(tie, odd, "")?, "")?;
        let mant =
            self.b
                .build_int_add(mant, self.b.build_int_z_extend(round_up, i64t, "")?, "")?;
        // exponent field of 2^(63 - lz) is 190 - lz; the hidden bit adds one more.
        let e = self.b.build_int_sub(self.i64(189), lz_safe, "")?;
        let bits = self
            .b
            .build_int_add(self.b.build_left_shift(e, self.i64(23), "")?, mant, "")?;
        let sign = self.select_i(neg, self.i64(1 << 31), zero)?;
        let bits = self.b.build_or(bits, sign, "")?;
        let bits = self.b.build_int_truncate(bits, self.i32_t(), "")?;
        let f = self.f32_from_bits(bits)?;
        let is_zero = self.icmp(IntPredicate::EQ, a, zero)?;
        self.select_f(is_zero, self.f32(0.0), f)
    }
}
