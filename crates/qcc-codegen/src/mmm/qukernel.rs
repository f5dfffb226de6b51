//! int8 GEMM microkernels with the requantizing epilogue, emitted once per
//! object.
//!
//! ```c
//! void qcc.mmm.i8.<dot>.<MR>x<NR>.<w|x>(
//!     i64 k4, const i8 *a, const i8 *b, i64 ldb,
//!     i8 *c, i64 ldc, const i32 *bias, const i32 *mult, const i32 *shift,
//!     i64 mr_valid, i64 nr_valid, i32 zp, i32 lo, i32 hi)
//! ```
//!
//! The unit of K is a group of four consecutive values (what `vpdpbusd` and
//! `sdot` reduce into one 32-bit lane). For `i < mr_valid`, `j < nr_valid`:
//!
//! ```text
//! acc = bias[ch] + Σ_{q<k4} Σ_{t<4} A(i, 4q+t) · b[q*ldb + 4j + t]   (wrapping i32)
//! c[i*ldc + j] = clamp(zp + round_shift(acc · mult[ch], shift[ch]), lo, hi)
//! ```
//!
//! `round_shift` exactly as `qcc_ir::quant` defines it. A is a packed panel,
//! `A(i, 4q+t) = a[(q*MR + i)*4 + t]` (`pack::pack_k4`), zero past the
//! matrix. Either A holds the weights and B the activations (`.w`:
//! convolutions, output channels are rows, `ch = i`) or A holds the
//! activations and B the weights (`.x`: QGemm, output channels are columns,
//! `ch = j`). B always holds `NR` readable columns of four bytes per group
//! (drivers pad panels and scratch blocks), so only the stores of an edge
//! tile are masked.
//!
//! For `vpdpbusd` the activations must be u8 and the weights s8; every other
//! [`Dot`] reads both as s8. The drivers flip activations of the other
//! signedness while packing them (`x ^ 0x80`, which adds
//! [`Dot::act_shift`]) and fold `-shift · Σw` into the bias. Where
//! [`I8Ukr::a_bytes`] is 2, A is packed as i16 (the same layout with two
//! bytes an element).

use super::Simd;
use crate::cx::{CgResult, KernelCx};
use crate::kernels::qdot::call_cast;
use crate::portable::TargetFacts;
use crate::CodegenError;
use inkwell::types::{BasicMetadataTypeEnum, BasicTypeEnum, VectorType};
use inkwell::values::{
    BasicMetadataValueEnum, BasicValue, BasicValueEnum, FunctionValue, IntValue, PointerValue,
    VectorValue,
};
use inkwell::IntPredicate;
use qcc_ir::DType;

/// The instruction one k-group step of the microkernel is built on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dot {
    /// AVX-512 VNNI `vpdpbusd` on zmm: u8 × s8, 16 columns per register.
    Vnni512,
    /// AVX2 `vpmaddubsw` (u8 × s8, adjacent products summed in i16) then
    /// `vpmaddwd` by ones (pairs of those into i32): `vpdpbusd`'s result on
    /// ymm, 8 columns per register. Only for weights within ±64
    /// ([`TargetFacts::small_weights`]), where the i16 sums cannot saturate.
    Maddubs,
    /// AVX2 `vpmaddwd` on bytes widened to i16: never saturates (the i16
    /// products of two bytes, and the sum of two, fit with room to spare);
    /// each column keeps two partial sums, added in the epilogue. A arrives
    /// already widened ([`I8Ukr::a_bytes`]).
    MaddWd,
    /// AArch64 `sdot` (+dotprod): s8 × s8, 4 columns per register.
    Sdot,
    /// AArch64 without dotprod: `smull`/`smull2` (exact i16 products of two
    /// bytes) and `sadalp` (pairwise add into i32); each column keeps two
    /// partial sums, like `MaddWd`.
    Sadalp,
    /// Portable: bytes widened and multiplied in i32 lanes (AArch64 and
    /// ARMv7 NEON `smull`/`smlal` after LLVM's matching, SSE), four
    /// partial sums per column.
    Widen,
}

impl Dot {
    /// The best dot instruction of a target.
    pub fn of(f: &TargetFacts) -> Dot {
        if f.avx512vnni {
            Dot::Vnni512
        } else if f.small_weights && matches!(f.simd, Simd::Avx2 | Simd::Avx512) {
            Dot::Maddubs
        } else if f.dotprod {
            Dot::Sdot
        } else if f.simd == Simd::Neon64 {
            Dot::Sadalp
        } else if matches!(f.simd, Simd::Avx2 | Simd::Avx512) {
            Dot::MaddWd
        } else {
            Dot::Widen
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Dot::Vnni512 => "vnni512",
            Dot::Maddubs => "maddubs",
            Dot::MaddWd => "maddwd",
            Dot::Sdot => "sdot",
            Dot::Sadalp => "sadalp",
            Dot::Widen => "widen",
        }
    }

    /// What packing adds to every activation of type `xdt` (`x ^ 0x80`
    /// turns i8 into u8 and back): +128 for i8 on `vpdpbusd`, -128 for u8
    /// on the signed instructions, else 0.
    pub fn act_shift(self, xdt: DType) -> i32 {
        match (matches!(self, Dot::Vnni512 | Dot::Maddubs), xdt) {
            (true, DType::I8) => 128,
            (false, DType::U8) => -128,
            _ => 0,
        }
    }

    /// Columns one accumulator register covers.
    pub(crate) fn cols_per_acc(self) -> usize {
        match self {
            Dot::Vnni512 => 16,
            Dot::Maddubs => 8,
            _ => 4,
        }
    }

    /// i32 lanes (partial sums) per column.
    fn lanes_per_col(self) -> usize {
        match self {
            Dot::Vnni512 | Dot::Maddubs | Dot::Sdot => 1,
            Dot::MaddWd | Dot::Sadalp => 2,
            Dot::Widen => 4,
        }
    }

    /// The register tile `(MR, NR)`.
    pub fn tile(self, simd: Simd) -> (usize, usize) {
        match (self, simd) {
            (Dot::Vnni512, _) => (8, 32),
            (Dot::Maddubs, _) => (4, 16),
            (Dot::MaddWd, _) => (6, 8),
            (Dot::Sdot, _) => (8, 12),
            (Dot::Sadalp, _) => (4, 8),
            (Dot::Widen, Simd::Neon64) => (4, 4),
            (Dot::Widen, _) => (2, 4),
        }
    }
}

/// How many k steps ahead a `.w` microkernel prefetches its activations.
const B_AHEAD: i64 = 4;

/// One int8 microkernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct I8Ukr {
    pub dot: Dot,
    pub simd: Simd,
    pub mr: usize,
    pub nr: usize,
    /// A holds the activations (and the epilogue parameters are per column).
    pub acts_in_a: bool,
    /// How the kernel requantizes ([`requantize`]).
    pub requant: Requant,
}

impl I8Ukr {
    /// The target's tile when only `m_cap` rows exist: fewer rows and, to
    /// keep as many accumulators, wider columns (up to 4×).
    pub fn for_target(facts: &TargetFacts, acts_in_a: bool, m_cap: usize) -> I8Ukr {
        let dot = Dot::of(facts);
        let (mr, nr) = dot.tile(facts.simd);
        let m = m_cap.clamp(1, mr);
        let widen = (mr / m).clamp(1, 4);
        I8Ukr {
            dot,
            simd: facts.simd,
            mr: m,
            nr: nr * widen,
            acts_in_a,
            requant: Requant::Wide,
        }
    }

    /// Bytes per element of the packed A operand (the one broadcast per
    /// row): 2 for `MaddWd`, whose A arrives widened to i16 (QGemm's
    /// activations while packing them, QConv's weights at compile time), so
    /// the loop spends no shuffle on it; else 1. (B stays bytes: QConv's
    /// activation block as i16, read with twice the row stride, measured
    /// 1.85× slower on Zen 3.)
    pub fn a_bytes(&self) -> usize {
        if self.dot == Dot::MaddWd {
            2
        } else {
            1
        }
    }

    pub fn name(&self) -> String {
        let a = if self.acts_in_a { "x" } else { "w" };
        let h = self.requant.suffix();
        format!(
            "qcc.mmm.i8.{}.{}x{}.{a}{h}",
            self.dot.name(),
            self.mr,
            self.nr
        )
    }

    /// The microkernel function, emitted into the module on first use.
    pub fn function<'ctx>(&self, cx: &KernelCx<'_, 'ctx>) -> CgResult<FunctionValue<'ctx>> {
        let name = self.name();
        if let Some(f) = cx.module.get_function(&name) {
            return Ok(f);
        }
        emit(cx, self, &name)
    }
}

/// The arguments of one microkernel call (see the module docs).
pub struct QCall<'ctx> {
    pub k4: i64,
    pub a: PointerValue<'ctx>,
    pub b: PointerValue<'ctx>,
    pub ldb: i64,
    pub c: PointerValue<'ctx>,
    pub ldc: i64,
    /// `bias`, `mult`, `shift`: i32 tables at this tile's first channel.
    pub params: [PointerValue<'ctx>; 3],
    pub mr_valid: usize,
    pub nr_valid: usize,
    /// Output zero point and clamp.
    pub out: (i32, i32, i32),
}

impl<'ctx> QCall<'ctx> {
    pub fn emit(&self, cx: &KernelCx<'_, 'ctx>, f: FunctionValue<'ctx>) -> CgResult<()> {
        let args: Vec<BasicMetadataValueEnum> = vec![
            cx.i64(self.k4).into(),
            self.a.into(),
            self.b.into(),
            cx.i64(self.ldb).into(),
            self.c.into(),
            cx.i64(self.ldc).into(),
            self.params[0].into(),
            self.params[1].into(),
            self.params[2].into(),
            cx.i64(self.mr_valid as i64).into(),
            cx.i64(self.nr_valid as i64).into(),
            cx.i32(self.out.0).into(),
            cx.i32(self.out.1).into(),
            cx.i32(self.out.2).into(),
        ];
        cx.b.build_call(f, &args, "")?;
        Ok(())
    }
}

fn emit<'ctx>(outer: &KernelCx<'_, 'ctx>, u: &I8Ukr, name: &str) -> CgResult<FunctionValue<'ctx>> {
    let ctx = outer.ctx;
    let (i64t, i32t) = (ctx.i64_type(), ctx.i32_type());
    let ptr = ctx.ptr_type(inkwell::AddressSpace::default());
    let params: Vec<BasicMetadataTypeEnum> = vec![
        i64t.into(), // k4
        ptr.into(),  // a
        ptr.into(),  // b
        i64t.into(), // ldb
        ptr.into(),  // c
        i64t.into(), // ldc
        ptr.into(),  // bias
        ptr.into(),  // mult
        ptr.into(),  // shift
        i64t.into(), // mr_valid
        i64t.into(), // nr_valid
        i32t.into(), // zp
        i32t.into(), // lo
        i32t.into(), // hi
    ];
    let wide = u.dot == Dot::Vnni512;
    let f = super::declare_microkernel(outer, name, &params, (&[1, 2, 4], &[1, 2, 6, 7, 8]), wide);
    let b = ctx.create_builder();
    b.position_at_end(ctx.append_basic_block(f, "entry"));
    let cx = KernelCx {
        ctx,
        module: outer.module,
        b: &b,
        func: f,
        node_name: name.to_string(),
        op_name: "microkernel",
        target: outer.target,
        scratch: None,
    };
    let p = |i: u32| {
        f.get_nth_param(i)
            .ok_or_else(|| CodegenError::Llvm("missing microkernel parameter".into()))
    };
    let int = |i: u32| -> CgResult<IntValue<'ctx>> { Ok(p(i)?.into_int_value()) };
    let pt = |i: u32| -> CgResult<PointerValue<'ctx>> { Ok(p(i)?.into_pointer_value()) };
    let args = Args {
        k4: int(0)?,
        a: pt(1)?,
        b: pt(2)?,
        ldb: int(3)?,
        c: pt(4)?,
        ldc: int(5)?,
        bias: pt(6)?,
        mult: pt(7)?,
        shift: pt(8)?,
        mr_valid: int(9)?,
        nr_valid: int(10)?,
        zp: int(11)?,
        lo: int(12)?,
        hi: int(13)?,
    };
    Body {
        cx: &cx,
        u: *u,
        args,
    }
    .emit()?;
    Ok(f)
}

struct Args<'ctx> {
    k4: IntValue<'ctx>,
    a: PointerValue<'ctx>,
    b: PointerValue<'ctx>,
    ldb: IntValue<'ctx>,
    c: PointerValue<'ctx>,
    ldc: IntValue<'ctx>,
    bias: PointerValue<'ctx>,
    mult: PointerValue<'ctx>,
    shift: PointerValue<'ctx>,
    mr_valid: IntValue<'ctx>,
    nr_valid: IntValue<'ctx>,
    zp: IntValue<'ctx>,
    lo: IntValue<'ctx>,
    hi: IntValue<'ctx>,
}

struct Body<'c, 'a, 'ctx> {
    cx: &'c KernelCx<'a, 'ctx>,
    u: I8Ukr,
    args: Args<'ctx>,
}

impl<'ctx> Body<'_, '_, 'ctx> {
    fn vec(&self, elem: inkwell::types::IntType<'ctx>, n: usize) -> VectorType<'ctx> {
        elem.vec_type(n as u32)
    }

    /// An unaligned load of `ty` at `p`.
    fn load(
        &self,
        ty: BasicTypeEnum<'ctx>,
        p: PointerValue<'ctx>,
    ) -> CgResult<BasicValueEnum<'ctx>> {
        let v = self.cx.b.build_load(ty, p, "")?;
        if let Some(i) = v.as_instruction_value() {
            i.set_alignment(1)
                .map_err(|e| CodegenError::Llvm(e.to_string()))?;
        }
        Ok(v)
    }

    /// Whether A holds i16s (see [`I8Ukr::a_bytes`]).
    fn wide_a(&self) -> bool {
        self.u.a_bytes() == 2
    }

    /// The four elements `A(i, 4q..4q+4)` as one integer: an i32 of bytes,
    /// or an i64 of i16s when A is wide.
    fn a_word(&self, q: IntValue<'ctx>, i: usize) -> CgResult<IntValue<'ctx>> {
        let cx = self.cx;
        let idx = cx.add_c(cx.mul_c(q, self.u.mr as i64)?, i as i64)?;
        let dt = if self.wide_a() {
            DType::I64
        } else {
            DType::I32
        };
        let p = cx.gep(dt, self.args.a, idx)?;
        Ok(cx.load(dt, p, cx.i64(0))?.into_int_value())
    }

    /// The A operand of one step for row word `w`, shaped for the dot.
    fn a_operand(&self, w: IntValue<'ctx>) -> CgResult<VectorValue<'ctx>> {
        let cx = self.cx;
        let b = cx.b;
        let d = self.u.dot;
        let i8t = cx.i8_t();
        match d {
            Dot::Vnni512 | Dot::Maddubs | Dot::Sdot | Dot::Sadalp => {
                let lanes = d.cols_per_acc();
                let v = cx.splat(w.into(), lanes as u32)?;
                Ok(b.build_bit_cast(v, self.vec(i8t, lanes * 4), "")?
                    .into_vector_value())
            }
            // Four i16s, repeated (one `vpbroadcastq` from memory).
            Dot::MaddWd if self.wide_a() => {
                let v = cx.splat(w.into(), 4)?;
                Ok(b.build_bit_cast(v, self.vec(cx.ctx.i16_type(), 16), "")?
                    .into_vector_value())
            }
            // (Widening four bytes, then repeating them, measured faster on
            // Zen 3 than `vpbroadcastd` + a lane-crossing `vpmovsxbw`.)
            Dot::MaddWd | Dot::Widen => {
                let bytes = b
                    .build_bit_cast(w, self.vec(i8t, 4), "")?
                    .into_vector_value();
                let wide_t = if d == Dot::MaddWd {
                    cx.ctx.i16_type()
                } else {
                    cx.i32_t()
                };
                let wide = b.build_int_s_extend(bytes, self.vec(wide_t, 4), "")?;
                let idx: Vec<u32> = (0..16).map(|l| l % 4).collect();
                self.cx.shuffle(wide, wide.get_type().get_undef(), &idx)
            }
        }
    }

    /// The B operand of one step: accumulator `j`'s bytes at `p`.
    fn b_operand(&self, p: PointerValue<'ctx>) -> CgResult<VectorValue<'ctx>> {
        let cx = self.cx;
        let d = self.u.dot;
        let n = d.cols_per_acc() * 4;
        let v = self
            .load(self.vec(cx.i8_t(), n).into(), p)?
            .into_vector_value();
        Ok(match d {
            Dot::Vnni512 | Dot::Maddubs | Dot::Sdot | Dot::Sadalp => v,
            Dot::MaddWd => {
                cx.b.build_int_s_extend(v, self.vec(cx.ctx.i16_type(), n), "")?
            }
            Dot::Widen => cx.b.build_int_s_extend(v, self.vec(cx.i32_t(), n), "")?,
        })
    }

    /// `acc + dot(a, b)` for one accumulator.
    fn step(
        &self,
        acc: VectorValue<'ctx>,
        a: VectorValue<'ctx>,
        bv: VectorValue<'ctx>,
    ) -> CgResult<VectorValue<'ctx>> {
        let cx = self.cx;
        let acc_t: BasicTypeEnum = acc.get_type().into();
        match self.u.dot {
            Dot::Vnni512 => {
                // vpdpbusd: the first source is read as u8, the second as s8.
                let (u8s, s8s) = if self.u.acts_in_a { (a, bv) } else { (bv, a) };
                Ok(call_cast(
                    cx,
                    "llvm.x86.avx512.vpdpbusd.512",
                    &[],
                    acc_t,
                    &[acc.into(), u8s.into(), s8s.into()],
                )?
                .into_vector_value())
            }
            Dot::Maddubs => {
                // vpmaddubsw: the first source is read as u8, the second as s8.
                let (u8s, s8s) = if self.u.acts_in_a { (a, bv) } else { (bv, a) };
                let i16t = self.vec(cx.ctx.i16_type(), 16);
                let pairs = call_cast(
                    cx,
                    "llvm.x86.avx2.pmadd.ub.sw",
                    &[],
                    i16t.into(),
                    &[u8s.into(), s8s.into()],
                )?;
                let ones = cx.splat(cx.ctx.i16_type().const_int(1, false).into(), 16)?;
                let p = call_cast(
                    cx,
                    "llvm.x86.avx2.pmadd.wd",
                    &[],
                    acc_t,
                    &[pairs, ones.into()],
                )?
                .into_vector_value();
                Ok(cx.b.build_int_add(acc, p, "")?)
            }
            Dot::Sdot => {
                let byte_t: BasicTypeEnum = a.get_type().into();
                Ok(call_cast(
                    cx,
                    "llvm.aarch64.neon.sdot",
                    &[acc_t, byte_t],
                    acc_t,
                    &[acc.into(), bv.into(), a.into()],
                )?
                .into_vector_value())
            }
            Dot::MaddWd => {
                let p = call_cast(
                    cx,
                    "llvm.x86.avx2.pmadd.wd",
                    &[],
                    acc_t,
                    &[bv.into(), a.into()],
                )?
                .into_vector_value();
                Ok(cx.b.build_int_add(acc, p, "")?)
            }
            Dot::Sadalp => {
                // Exact i16 products (|b · a| <= 2^14), then pairs summed
                // into i32 lanes: (col, k 0+1), (col, k 2+3) per column.
                let w16 = self.vec(cx.ctx.i16_type(), 16);
                let bw = cx.b.build_int_s_extend(bv, w16, "")?;
                let aw = cx.b.build_int_s_extend(a, w16, "")?;
                let prod = cx.b.build_int_mul(bw, aw, "")?;
                let half_t = self.vec(cx.ctx.i16_type(), 8);
                let q4 = self.vec(cx.i32_t(), 4);
                let mut sums = vec![];
                for h in 0..2u32 {
                    let idx: Vec<u32> = (0..8).map(|l| 8 * h + l).collect();
                    let part = cx.shuffle(prod, prod.get_type().get_undef(), &idx)?;
                    sums.push(
                        cx.call_intrinsic(
                            "llvm.aarch64.neon.saddlp",
                            &[q4.into(), half_t.into()],
                            &[part.into()],
                        )?
                        .into_vector_value(),
                    );
                }
                let p = cx.shuffle(sums[0], sums[1], &(0..8).collect::<Vec<_>>())?;
                Ok(cx.b.build_int_add(acc, p, "")?)
            }
            Dot::Widen => {
                let p = cx.b.build_int_mul(bv, a, "")?;
                Ok(cx.b.build_int_add(acc, p, "")?)
            }
        }
    }

    /// The `cols_per_acc` column sums of one accumulator.
    fn reduce(&self, mut v: VectorValue<'ctx>) -> CgResult<VectorValue<'ctx>> {
        let mut g = self.u.dot.lanes_per_col();
        while g > 1 {
            let n = v.get_type().get_size();
            let even: Vec<u32> = (0..n / 2).map(|l| 2 * l).collect();
            let odd: Vec<u32> = (0..n / 2).map(|l| 2 * l + 1).collect();
            let undef = v.get_type().get_undef();
            let e = self.cx.shuffle(v, undef, &even)?;
            let o = self.cx.shuffle(v, undef, &odd)?;
            v = self.cx.b.build_int_add(e, o, "")?;
            g /= 2;
        }
        Ok(v)
    }

    /// Concatenates equal-width vectors.
    fn concat(&self, vs: &[VectorValue<'ctx>]) -> CgResult<VectorValue<'ctx>> {
        let mut parts = vs.to_vec();
        while parts.len() > 1 {
            let mut next = vec![];
            for pair in parts.chunks(2) {
                if let [a, b] = pair {
                    let n = a.get_type().get_size();
                    let idx: Vec<u32> = (0..2 * n).collect();
                    next.push(self.cx.shuffle(*a, *b, &idx)?);
                } else {
                    // Odd one out: widen with undef lanes, cut after the last concat.
                    let a = pair[0];
                    let n = a.get_type().get_size();
                    let idx: Vec<u32> = (0..2 * n).map(|l| l.min(n)).collect();
                    next.push(self.cx.shuffle(a, a.get_type().get_undef(), &idx)?);
                }
            }
            parts = next;
        }
        let v = parts[0];
        let want = self.u.nr as u32;
        if v.get_type().get_size() == want {
            return Ok(v);
        }
        let idx: Vec<u32> = (0..want).collect();
        self.cx.shuffle(v, v.get_type().get_undef(), &idx)
    }

    fn emit(&self) -> CgResult<()> {
        let cx = self.cx;
        let b = cx.b;
        let u = self.u;
        let d = u.dot;
        let (mr, nr) = (u.mr, u.nr);
        let cpa = d.cols_per_acc();
        if nr % cpa != 0 || mr == 0 {
            return Err(CodegenError::Llvm(format!(
                "int8 microkernel tile {mr}x{nr} does not fit {cpa}-column registers"
            )));
        }
        let nacc = nr / cpa;
        let acc_t = self.vec(cx.i32_t(), cpa * d.lanes_per_col());
        // Row pointers, clamped to the valid rows.
        let last = cx.add_c(self.args.mr_valid, -1)?;
        let mut c_rows = vec![];
        for i in 0..mr {
            let r = cx.smin(cx.i64(i as i64), last)?;
            c_rows.push(cx.gep(DType::I8, self.args.c, cx.mul(r, self.args.ldc)?)?);
        }

        // The k loop (k4 >= 1): accumulators live in phis.
        let pre = cx.current_block()?;
        let body = cx.ctx.append_basic_block(cx.func, "k.loop");
        let exit = cx.ctx.append_basic_block(cx.func, "k.end");
        b.build_unconditional_branch(body)?;
        b.position_at_end(body);
        let qphi = b.build_phi(cx.i64_t(), "q")?;
        let q = qphi.as_basic_value().into_int_value();
        let mut phis = vec![];
        for _ in 0..mr * nacc {
            let phi = b.build_phi(acc_t, "acc")?;
            phi.add_incoming(&[(&acc_t.const_zero(), pre)]);
            phis.push(phi);
        }
        let brow = cx.gep(DType::I8, self.args.b, cx.mul(q, self.args.ldb)?)?;
        // Activations (B of a `.w` kernel) come from a strided scratch
        // block in L2: prefetch the rows `B_AHEAD` k steps on into L1
        // (measured: 0.524 → 0.507 ms on a 3×3 64→64 56² layer).
        if !u.acts_in_a {
            let ahead = cx.gep(DType::I8, brow, cx.mul_c(self.args.ldb, B_AHEAD)?)?;
            for line in 0..(nr * 4).div_ceil(64) {
                let at = cx.gep(DType::I8, ahead, cx.i64(64 * line as i64))?;
                super::prefetch_into(cx, at, 3)?;
            }
        }
        let bv: Vec<VectorValue> = (0..nacc)
            .map(|j| {
                let p = cx.gep(DType::I8, brow, cx.i64((j * cpa * 4) as i64))?;
                self.b_operand(p)
            })
            .collect::<CgResult<_>>()?;
        let mut next = vec![];
        // sdot: A as whole vectors of four rows, each row a lane splat (the
        // indexed `sdot v.4s, b.16b, a.4b[i]`), not one load per row.
        let a_vecs: Vec<VectorValue> = if d == Dot::Sdot && mr % 4 == 0 {
            let v4 = self.vec(cx.i32_t(), 4);
            (0..mr / 4)
                .map(|g| {
                    let idx = cx.add_c(cx.mul_c(q, mr as i64)?, 4 * g as i64)?;
                    let p = cx.gep(DType::I32, self.args.a, idx)?;
                    Ok(self.load(v4.into(), p)?.into_vector_value())
                })
                .collect::<CgResult<_>>()?
        } else {
            vec![]
        };
        for i in 0..mr {
            let a = match a_vecs.get(i / 4) {
                Some(v) => {
                    let lane = cx.shuffle(*v, v.get_type().get_undef(), &[(i % 4) as u32; 4])?;
                    b.build_bit_cast(lane, self.vec(cx.i8_t(), 16), "")?
                        .into_vector_value()
                }
                None => self.a_operand(self.a_word(q, i)?)?,
            };
            for (j, bj) in bv.iter().enumerate() {
                let acc = phis[i * nacc + j].as_basic_value().into_vector_value();
                next.push(self.step(acc, a, *bj)?);
            }
        }
        let qn = b.build_int_nsw_add(q, cx.i64(1), "q.next")?;
        let more = cx.icmp(IntPredicate::SLT, qn, self.args.k4)?;
        let latch = cx.current_block()?;
        b.build_conditional_branch(more, body, exit)?;
        qphi.add_incoming(&[(&cx.i64(0), pre), (&qn, latch)]);
        for (phi, v) in phis.iter().zip(&next) {
            phi.add_incoming(&[(v, latch)]);
        }

        // Epilogue: bias, rescale, zero point, clamp, narrow.
        b.position_at_end(exit);
        let i32t = cx.i32_t();
        let params_at = |p: PointerValue<'ctx>, i: usize| -> CgResult<VectorValue<'ctx>> {
            if u.acts_in_a {
                Ok(self.load(self.vec(i32t, nr).into(), p)?.into_vector_value())
            } else {
                let s = cx.load(DType::I32, p, cx.i64(i as i64))?;
                cx.splat(s, nr as u32)
            }
        };
        let col_params = if u.acts_in_a {
            Some((
                params_at(self.args.bias, 0)?,
                params_at(self.args.mult, 0)?,
                params_at(self.args.shift, 0)?,
            ))
        } else {
            None
        };
        let [zp, lo, hi] =
            [self.args.zp, self.args.lo, self.args.hi].map(|v| cx.splat(v.into(), nr as u32));
        let (zp, lo, hi) = (zp?, lo?, hi?);
        let mut rows = vec![];
        for i in 0..mr {
            let sums: Vec<VectorValue> = (0..nacc)
                .map(|j| self.reduce(next[i * nacc + j]))
                .collect::<CgResult<_>>()?;
            let acc = self.concat(&sums)?;
            let (bias, mult, shift) = match col_params {
                Some(p) => p,
                None => (
                    params_at(self.args.bias, i)?,
                    params_at(self.args.mult, i)?,
                    params_at(self.args.shift, i)?,
                ),
            };
            rows.push(requantize(
                cx,
                acc,
                [bias, mult, shift, zp, lo, hi],
                u.requant,
            )?);
        }

        // Stores: whole rows, or masked ones on an edge tile.
        let full = cx.icmp(IntPredicate::EQ, self.args.nr_valid, cx.i64(nr as i64))?;
        let (bf, be) = (
            cx.ctx.append_basic_block(cx.func, "full"),
            cx.ctx.append_basic_block(cx.func, "edge"),
        );
        b.build_conditional_branch(full, bf, be)?;
        for (blk, edge) in [(bf, false), (be, true)] {
            b.position_at_end(blk);
            let mask = if edge {
                let i32t = cx.i32_t();
                let idx: Vec<IntValue> = (0..nr).map(|l| i32t.const_int(l as u64, false)).collect();
                let nv = b.build_int_truncate(self.args.nr_valid, i32t, "")?;
                let nv = cx.splat(nv.into(), nr as u32)?;
                Some(b.build_int_compare(
                    IntPredicate::SLT,
                    VectorType::const_vector(&idx),
                    nv,
                    "mask",
                )?)
            } else {
                None
            };
            for (i, row) in rows.iter().enumerate() {
                let skip = if i == 0 {
                    None
                } else {
                    let ok = cx.icmp(IntPredicate::SLT, cx.i64(i as i64), self.args.mr_valid)?;
                    let (s, k) = (
                        cx.ctx.append_basic_block(cx.func, "row"),
                        cx.ctx.append_basic_block(cx.func, "row.next"),
                    );
                    b.build_conditional_branch(ok, s, k)?;
                    b.position_at_end(s);
                    Some(k)
                };
                match mask {
                    None => {
                        let s = b.build_store(c_rows[i], *row)?;
                        s.set_alignment(1)
                            .map_err(|e| CodegenError::Llvm(e.to_string()))?;
                    }
                    Some(m) => {
                        let f = inkwell::intrinsics::Intrinsic::find("llvm.masked.store")
                            .and_then(|x| {
                                x.get_declaration(
                                    cx.module,
                                    &[row.get_type().into(), c_rows[i].get_type().into()],
                                )
                            })
                            .ok_or_else(|| CodegenError::Llvm("no llvm.masked.store".into()))?;
                        let args: [BasicMetadataValueEnum; 3] =
                            [(*row).into(), c_rows[i].into(), m.into()];
                        b.build_call(f, &args, "")?;
                    }
                }
                if let Some(k) = skip {
                    b.build_unconditional_branch(k)?;
                    b.position_at_end(k);
                }
            }
            b.build_return(None)?;
        }
        Ok(())
    }
}

/// The per-channel tables the int8 kernels read: `[bias, multiplier,
/// shift]` (i32 each) of channels `groups × chans`, each group of `chans`
/// padded to a multiple of `pad` with a neutral channel (0, 1, 0). A
/// per-tensor rescale is repeated for every channel. For the float form the
/// multiplier table holds the factors' f32 bits (padding 1.0) and the
/// shifts are 0.
pub(crate) fn epi_tables<'ctx>(
    cx: &KernelCx<'_, 'ctx>,
    bias: &[i32],
    r: &qcc_ir::Rescale,
    (groups, chans, pad): (usize, usize, usize),
) -> [PointerValue<'ctx>; 3] {
    use super::pack::pad_to;
    let at = |v: &[i32], c: usize| if v.len() == 1 { v[0] } else { v[c] };
    let (mults, shifts, one): (Vec<i32>, Vec<i32>, i32) = match &r.float {
        Some(f) => {
            let bits = f.scales.iter().map(|s| s.to_bits() as i32).collect();
            (bits, vec![0], 1f32.to_bits() as i32)
        }
        None => (
            r.multiplier.clone(),
            r.shift.iter().map(|&s| s as i32).collect(),
            1,
        ),
    };
    let mut t: [Vec<i32>; 3] = Default::default();
    for g in 0..groups {
        let ch = g * chans..(g + 1) * chans;
        let of = |v: &[i32]| ch.clone().map(|c| at(v, c)).collect::<Vec<_>>();
        t[0].extend(pad_to(&bias[ch.clone()], pad, 0));
        t[1].extend(pad_to(&of(&mults), pad, one));
        t[2].extend(pad_to(&of(&shifts), pad, 0));
    }
    let name = ["mmm.qbias", "mmm.qmul", "mmm.qshift"];
    [0, 1, 2].map(|i| crate::kernels::quant::const_i32_table(cx, name[i], &t[i]))
}

/// [`requantize`]'s parameters `[bias, mult, shift, zp, lo, hi]` for a
/// per-tensor epilogue (bias 0) over `lanes` lanes; `mult` holds the f32
/// factor's bits for the float form.
pub(crate) fn splat_params<'ctx>(
    cx: &KernelCx<'_, 'ctx>,
    epi: &qcc_ir::Epilogue,
    lanes: u32,
) -> CgResult<[VectorValue<'ctx>; 6]> {
    let r = &epi.rescale;
    let (mult, shift) = match r.float_at(0) {
        Some(s) => (s.to_bits() as i32, 0),
        None => (r.multiplier[0], r.shift[0] as i32),
    };
    let vals = [0, mult, shift, epi.zero_point, epi.min, epi.max];
    let mut out = vec![];
    for v in vals {
        out.push(cx.splat(cx.i32(v).into(), lanes)?);
    }
    out.try_into()
        .map_err(|_| crate::CodegenError::Llvm("six parameters".into()))
}

/// The three epilogue tables (`bias`, `mult`, `shift`) at channel `at`.
pub(crate) fn tables_at<'ctx>(
    cx: &KernelCx<'_, 'ctx>,
    tables: &[PointerValue<'ctx>],
    at: IntValue<'ctx>,
) -> CgResult<[PointerValue<'ctx>; 3]> {
    Ok([
        cx.gep(DType::I32, tables[0], at)?,
        cx.gep(DType::I32, tables[1], at)?,
        cx.gep(DType::I32, tables[2], at)?,
    ])
}

/// How an int8 kernel requantizes its i32 accumulators ([`requantize`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Requant {
    /// Fixed point, every lane widened to i64 (what ARM's `smull` does well).
    Wide,
    /// Fixed point on 32-bit lanes: x86 with AVX2 or AVX-512, every shift at
    /// least [`HIGH_SHIFT_MIN`].
    High,
    /// The float form (`qcc_ir::quant::requantize_float`).
    Float,
    /// The float form with the zero point added before rounding
    /// (`qcc_ir::quant::requantize_float_zp_first`).
    FloatZpFirst,
}

impl Requant {
    /// The suffix of a kernel's name that requantizes so.
    pub fn suffix(self) -> &'static str {
        match self {
            Requant::Wide => "",
            Requant::High => ".h",
            Requant::Float => ".f",
            Requant::FloatZpFirst => ".fz",
        }
    }
}

/// How a kernel with rescale `r` requantizes on this target.
pub(crate) fn requant_mode(facts: &TargetFacts, r: &qcc_ir::Rescale) -> Requant {
    if let Some(f) = &r.float {
        match f.zero_point_first {
            true => Requant::FloatZpFirst,
            false => Requant::Float,
        }
    } else if matches!(facts.simd, Simd::Avx2 | Simd::Avx512)
        && r.shift.iter().all(|&s| s >= HIGH_SHIFT_MIN)
    {
        Requant::High
    } else {
        Requant::Wide
    }
}

/// The smallest shift of the 32-bit requantization path (see [`requantize`]).
pub(crate) const HIGH_SHIFT_MIN: u32 = 33;

/// `clamp(zp + round_shift((acc + bias) · mult, shift), lo, hi)` lane by
/// lane, narrowed to 8 bits: `qcc_ir::quant::Epilogue::apply` on i32
/// accumulators (`acc + bias` wraps in i32 like the reference accumulator).
/// `acc` and the parameters `[bias, mult, shift, zp, lo, hi]` are `<N x i32>`.
///
/// With [`Requant::Float`], `mult` holds f32 bits and `shift` is unused:
/// `f32(acc + bias) · mult`, clamped to `[lo - zp, hi - zp]`, rounded half
/// to even by the `ROUND_MAGIC` addition, plus `zp`
/// (`qcc_ir::quant::requantize_float`).
///
/// With [`Requant::High`] (x86 only, every shift `s >= 33`, see [`high_shift`]) the
/// product stays in 32-bit lanes but one step: `vpmuldq` forms the i64
/// products of the even lanes and, after a 32-bit shift, of the odd ones;
/// only their high halves `h = floor(p / 2^32)` are kept (one blend), and
/// `(h + 2^(t-1)) >> t` with `t = s - 32` is the exact `round_shift(p, s)`
/// (adding the low half `l < 2^32` cannot carry into a multiple of `2^s`).
/// `|h| < 2^30`, so zero point and clamp run on i32 lanes too. Otherwise
/// every lane is widened to i64 (what ARM's `smull` does well).
pub(crate) fn requantize<'ctx>(
    cx: &KernelCx<'_, 'ctx>,
    acc: VectorValue<'ctx>,
    [bias, mult, shift, zp, lo, hi]: [VectorValue<'ctx>; 6],
    mode: Requant,
) -> CgResult<VectorValue<'ctx>> {
    let b = cx.b;
    let n = acc.get_type().get_size();
    let acc = b.build_int_add(acc, bias, "")?;
    let out_t = cx.i8_t().vec_type(n);
    if matches!(mode, Requant::Float | Requant::FloatZpFirst) {
        let first = mode == Requant::FloatZpFirst;
        let ft = cx.f32_t().vec_type(n);
        let to_f = |v: VectorValue<'ctx>| b.build_signed_int_to_float(v, ft, "");
        let scale = b.build_bit_cast(mult, ft, "")?.into_vector_value();
        let mut v = b.build_float_mul(to_f(acc)?, scale, "")?;
        let (flo, fhi) = if first {
            v = b.build_float_add(v, to_f(zp)?, "")?;
            (to_f(lo)?, to_f(hi)?)
        } else {
            (
                to_f(b.build_int_sub(lo, zp, "")?)?,
                to_f(b.build_int_sub(hi, zp, "")?)?,
            )
        };
        let below = b.build_float_compare(inkwell::FloatPredicate::OLT, v, flo, "")?;
        let v = b.build_select(below, flo, v, "")?.into_vector_value();
        let above = b.build_float_compare(inkwell::FloatPredicate::OGT, v, fhi, "")?;
        let v = b.build_select(above, fhi, v, "")?.into_vector_value();
        let magic = crate::math::ROUND_MAGIC;
        let fm = VectorType::const_vector(&vec![cx.f32(magic); n as usize]);
        let v = b.build_float_add(v, fm, "")?;
        let bits = b.build_bit_cast(v, acc.get_type(), "")?.into_vector_value();
        let im = VectorType::const_vector(&vec![cx.i32(magic.to_bits() as i32); n as usize]);
        let mut v = b.build_int_sub(bits, im, "")?;
        if !first {
            v = b.build_int_add(v, zp, "")?;
        }
        return Ok(b.build_int_truncate(v, out_t, "")?);
    }
    if mode == Requant::High {
        let v = rescale_high(cx, acc, mult, shift)?;
        let v = b.build_int_add(v, zp, "")?;
        let v = vsmin(cx, vsmax(cx, v, lo)?, hi)?;
        return Ok(b.build_int_truncate(v, out_t, "")?);
    }
    let wide = cx.i64_t().vec_type(n);
    let sx = |v: VectorValue<'ctx>| b.build_int_s_extend(v, wide, "");
    let one = VectorType::const_vector(&vec![cx.i64(1); n as usize]);
    let shift = sx(shift)?;
    let v = b.build_int_mul(sx(acc)?, sx(mult)?, "")?;
    let half = b.build_right_shift(b.build_left_shift(one, shift, "")?, one, false, "")?;
    let v = b.build_int_add(v, half, "")?;
    let v = b.build_right_shift(v, shift, true, "")?;
    let v = b.build_int_add(v, sx(zp)?, "")?;
    let v = vsmax(cx, v, sx(lo)?)?;
    let v = vsmin(cx, v, sx(hi)?)?;
    Ok(b.build_int_truncate(v, out_t, "")?)
}

/// `round_shift(acc · mult, shift)` for shifts `>= 33` on i32 lanes (the
/// `high` path of [`requantize`]; little-endian lanes).
fn rescale_high<'ctx>(
    cx: &KernelCx<'_, 'ctx>,
    acc: VectorValue<'ctx>,
    mult: VectorValue<'ctx>,
    shift: VectorValue<'ctx>,
) -> CgResult<VectorValue<'ctx>> {
    let b = cx.b;
    let n = acc.get_type().get_size();
    let i32v = acc.get_type();
    let q = cx.i64_t().vec_type(n / 2);
    let splat64 = |v: i64| VectorType::const_vector(&vec![cx.i64(v); n as usize / 2]);
    let splat32 = |v: i64| VectorType::const_vector(&vec![cx.i32(v as i32); n as usize]);
    let c32 = splat64(32);
    let as_q = |v: VectorValue<'ctx>| -> CgResult<VectorValue<'ctx>> {
        Ok(b.build_bit_cast(v, q, "")?.into_vector_value())
    };
    let (aq, mq) = (as_q(acc)?, as_q(mult)?);
    // Sign-extended low halves (even lanes) and high halves (odd lanes):
    // both products are `vpmuldq`.
    let low = |v: VectorValue<'ctx>| -> CgResult<VectorValue<'ctx>> {
        Ok(b.build_right_shift(b.build_left_shift(v, c32, "")?, c32, true, "")?)
    };
    let pe = b.build_int_mul(low(aq)?, low(mq)?, "")?;
    // The odd lanes moved to the even ones (a shuffle), so that both
    // products are the same sign-extend-in-register pattern LLVM selects
    // `vpmuldq` for (an arithmetic shift of the i64 lanes by 32 measured
    // as three `vpmuludq` and sign fixes).
    let odd: Vec<u32> = (0..n).map(|l| l | 1).collect();
    let to_even = |v: VectorValue<'ctx>| -> CgResult<VectorValue<'ctx>> {
        let v = b.build_bit_cast(v, i32v, "")?.into_vector_value();
        as_q(cx.shuffle(v, i32v.get_undef(), &odd)?)
    };
    let po = b.build_int_mul(low(to_even(aq)?)?, low(to_even(mq)?)?, "")?;
    // High halves of the even products moved to the even lanes; the odd
    // products' high halves already sit in the odd lanes.
    let he = b.build_bit_cast(b.build_right_shift(pe, c32, false, "")?, i32v, "")?;
    let ho = b.build_bit_cast(po, i32v, "")?;
    let idx: Vec<u32> = (0..n).map(|l| if l % 2 == 0 { l } else { n + l }).collect();
    let h = cx.shuffle(he.into_vector_value(), ho.into_vector_value(), &idx)?;
    let t = b.build_int_sub(shift, splat32(32), "")?;
    let half = b.build_left_shift(splat32(1), b.build_int_sub(t, splat32(1), "")?, "")?;
    Ok(b.build_right_shift(b.build_int_add(h, half, "")?, t, true, "")?)
}

fn vsmax<'ctx>(
    cx: &KernelCx<'_, 'ctx>,
    a: VectorValue<'ctx>,
    b: VectorValue<'ctx>,
) -> CgResult<VectorValue<'ctx>> {
    Ok(cx
        .call_intrinsic("llvm.smax", &[a.get_type().into()], &[a.into(), b.into()])?
        .into_vector_value())
}

fn vsmin<'ctx>(
    cx: &KernelCx<'_, 'ctx>,
    a: VectorValue<'ctx>,
    b: VectorValue<'ctx>,
) -> CgResult<VectorValue<'ctx>> {
    Ok(cx
        .call_intrinsic("llvm.smin", &[a.get_type().into()], &[a.into(), b.into()])?
        .into_vector_value())
}
