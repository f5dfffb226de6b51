//! f32 GEMM microkernels, emitted once per object.
//!
//! ```c
//! void qcc.mmm.f32.<isa>.<MR>x<NR>.<a>(
//!     i64 k, const float *a, i64 lda, const float *b, i64 ldb,
//!     float *c, i64 ldc, const float *bias, i64 mr_valid, i64 nr_valid,
//!     i32 flags, float lo, float hi, const void *pf, const float *r,
//!     const i32 *off)
//! ```
//!
//! computes, for `i < mr_valid`, `j < nr_valid`:
//! `c[i*ldc + j] = clamp(init(i, j) + Σ_{kk<k} A(i, kk) · b[kk*ldb + j], lo, hi)`
//! where `init` is `c[i*ldc + j]` when `flags & ACCUMULATE`, else `bias[j]`
//! when `flags & BIAS_COLS`, else `bias[i]`; with `flags & RESIDUAL`,
//! `r[i*ldc + j]` (a residual laid out like C) is added before the clamp.
//! `A(i, kk)` is `a[kk*MR + i]` for packed A (`.p`) and `a[i*lda + kk]` for
//! strided A (`.s`). An offsets kernel (`.o` suffix) reads the activations
//! (B of a packed-A kernel, A of a `.c` kernel) at `off[kk]` instead of
//! `kk*ldb` (`kk*lda`): `b[off[kk] + j]`, `a[off[kk] + i]`, the rows of an
//! implicit im2col (see `conv.rs`); other kernels ignore `off`. `k ≥ 1`; `bias` holds `MR` (or `NR`) floats; rows of A past
//! `mr_valid` are read from the last valid row (never out of bounds).
//! The clamp is `x < lo ? lo : (x > hi ? hi : x)`, so `lo = -inf, hi = +inf`
//! is the identity, NaN included. `pf` is only prefetched (into L2), one
//! 64-byte line per k step from `pf` on: the driver points it at the packed
//! weights of its next call, which would otherwise arrive from memory while
//! that call waits (a prefetch never faults, whatever the address).
//!
//! A full tile (`nr_valid == NR`) runs plain vector loads and stores; an
//! edge tile the same loop with masked loads of B and masked stores of C.

use super::Simd;
use crate::cx::{CgResult, KernelCx};
use crate::CodegenError;
use inkwell::basic_block::BasicBlock;
use inkwell::types::{BasicMetadataTypeEnum, VectorType};
use inkwell::values::{
    BasicMetadataValueEnum, BasicValue, FunctionValue, IntValue, PointerValue, VectorValue,
};
use inkwell::{FloatPredicate, IntPredicate};

/// `flags` bit: start from the current contents of C instead of the bias.
pub const ACCUMULATE: u64 = 1;
/// `flags` bit: the bias is per column (`NR` floats at `bias`) instead of per row.
pub const BIAS_COLS: u64 = 2;
/// `flags` bit: add the residual `r` (laid out like C) before the clamp.
pub const RESIDUAL: u64 = 4;

/// How many k steps ahead a packed-A microkernel prefetches its B rows.
const B_AHEAD: i64 = 8;

/// How a microkernel reads A.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ALayout {
    /// Packed panel: `A(i, kk) = a[kk*MR + i]` (weights, see `pack::pack_a`).
    Packed,
    /// Row-major with row stride `lda`: `A(i, kk) = a[i*lda + kk]`.
    Strided,
    /// Column-major with column stride `lda`: `A(i, kk) = a[kk*lda + i]`
    /// (an im2col block or an NCHW plane read in place, positions as rows).
    Cols,
}

/// One f32 microkernel: ISA, tile and A layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct F32Ukr {
    pub simd: Simd,
    pub mr: usize,
    pub nr: usize,
    pub a: ALayout,
    /// The activation rows come from the `off` table (`.o`).
    pub offsets: bool,
}

impl F32Ukr {
    /// The target's tile for `a` when only `m_cap` rows exist: fewer rows
    /// (a 2-row GEMM gets a 2-row kernel, not 6 wasted of 8) and, to keep
    /// as many independent accumulators, wider columns (up to 4×).
    pub fn for_target(simd: Simd, a: ALayout, m_cap: usize) -> F32Ukr {
        let (mr, nr) = simd.f32_tile();
        let m = m_cap.clamp(1, mr);
        let widen = (mr / m).clamp(1, 4);
        F32Ukr {
            simd,
            mr: m,
            nr: nr * widen,
            a,
            offsets: false,
        }
    }

    pub fn lanes(&self) -> usize {
        self.simd.f32_lanes()
    }

    pub fn name(&self) -> String {
        let a = match self.a {
            ALayout::Packed => "p",
            ALayout::Strided => "s",
            ALayout::Cols => "c",
        };
        let o = if self.offsets { ".o" } else { "" };
        format!(
            "qcc.mmm.f32.{}.{}x{}.{a}{o}",
            self.simd.name(),
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
pub struct Call<'ctx> {
    pub k: i64,
    pub a: PointerValue<'ctx>,
    pub lda: i64,
    pub b: PointerValue<'ctx>,
    pub ldb: i64,
    pub c: PointerValue<'ctx>,
    pub ldc: i64,
    pub bias: PointerValue<'ctx>,
    pub mr_valid: usize,
    pub nr_valid: usize,
    pub flags: IntValue<'ctx>,
    /// The clamp bounds (f32 values; `±inf` for none).
    pub lo: inkwell::values::FloatValue<'ctx>,
    pub hi: inkwell::values::FloatValue<'ctx>,
    /// What to prefetch (see the module docs).
    pub pf: PointerValue<'ctx>,
    /// The residual tile, read with `flags & RESIDUAL` (any pointer otherwise).
    pub r: PointerValue<'ctx>,
    /// The row offsets of an offsets kernel (any pointer otherwise).
    pub off: PointerValue<'ctx>,
}

impl<'ctx> Call<'ctx> {
    /// Emits the call of `f` (from [`F32Ukr::function`]).
    pub fn emit(&self, cx: &KernelCx<'_, 'ctx>, f: FunctionValue<'ctx>) -> CgResult<()> {
        let args: Vec<BasicMetadataValueEnum> = vec![
            cx.i64(self.k).into(),
            self.a.into(),
            cx.i64(self.lda).into(),
            self.b.into(),
            cx.i64(self.ldb).into(),
            self.c.into(),
            cx.i64(self.ldc).into(),
            self.bias.into(),
            cx.i64(self.mr_valid as i64).into(),
            cx.i64(self.nr_valid as i64).into(),
            self.flags.into(),
            self.lo.into(),
            self.hi.into(),
            self.pf.into(),
            self.r.into(),
            self.off.into(),
        ];
        cx.b.build_call(f, &args, "")?;
        Ok(())
    }
}

fn emit<'ctx>(outer: &KernelCx<'_, 'ctx>, u: &F32Ukr, name: &str) -> CgResult<FunctionValue<'ctx>> {
    let ctx = outer.ctx;
    let (i64t, i32t, f32t) = (ctx.i64_type(), ctx.i32_type(), ctx.f32_type());
    let ptr = ctx.ptr_type(inkwell::AddressSpace::default());
    let params: Vec<BasicMetadataTypeEnum> = vec![
        i64t.into(), // k
        ptr.into(),  // a
        i64t.into(), // lda
        ptr.into(),  // b
        i64t.into(), // ldb
        ptr.into(),  // c
        i64t.into(), // ldc
        ptr.into(),  // bias
        i64t.into(), // mr_valid
        i64t.into(), // nr_valid
        i32t.into(), // flags
        f32t.into(), // lo
        f32t.into(), // hi
        ptr.into(),  // pf
        ptr.into(),  // r
        ptr.into(),  // off
    ];
    let wide = u.simd == Simd::Avx512;
    let f = super::declare_microkernel(
        outer,
        name,
        &params,
        (&[1, 3, 5, 7, 14, 15], &[1, 3, 7, 14, 15]),
        wide,
    );
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
    let args = Args {
        k: p(0)?.into_int_value(),
        a: p(1)?.into_pointer_value(),
        lda: p(2)?.into_int_value(),
        b: p(3)?.into_pointer_value(),
        ldb: p(4)?.into_int_value(),
        c: p(5)?.into_pointer_value(),
        ldc: p(6)?.into_int_value(),
        bias: p(7)?.into_pointer_value(),
        mr_valid: p(8)?.into_int_value(),
        nr_valid: p(9)?.into_int_value(),
        flags: p(10)?.into_int_value(),
        lo: p(11)?.into_float_value(),
        hi: p(12)?.into_float_value(),
        pf: p(13)?.into_pointer_value(),
        r: p(14)?.into_pointer_value(),
        off: p(15)?.into_pointer_value(),
    };
    Body::new(&cx, u, args)?.emit()?;
    Ok(f)
}

struct Args<'ctx> {
    k: IntValue<'ctx>,
    a: PointerValue<'ctx>,
    lda: IntValue<'ctx>,
    b: PointerValue<'ctx>,
    ldb: IntValue<'ctx>,
    c: PointerValue<'ctx>,
    ldc: IntValue<'ctx>,
    bias: PointerValue<'ctx>,
    mr_valid: IntValue<'ctx>,
    nr_valid: IntValue<'ctx>,
    flags: IntValue<'ctx>,
    lo: inkwell::values::FloatValue<'ctx>,
    hi: inkwell::values::FloatValue<'ctx>,
    pf: PointerValue<'ctx>,
    r: PointerValue<'ctx>,
    off: PointerValue<'ctx>,
}

struct Body<'c, 'a, 'ctx> {
    cx: &'c KernelCx<'a, 'ctx>,
    u: F32Ukr,
    args: Args<'ctx>,
    vt: VectorType<'ctx>,
    /// Vectors per tile row.
    nv: usize,
    /// Row pointers of A (strided and column layouts) and of C, clamped to
    /// valid rows.
    a_rows: Vec<PointerValue<'ctx>>,
    c_rows: Vec<PointerValue<'ctx>>,
    /// Row pointers of the residual, like `c_rows`.
    r_rows: Vec<PointerValue<'ctx>>,
    /// Lane masks of an edge tile, one per vector of a row.
    masks: Vec<VectorValue<'ctx>>,
}

impl<'c, 'a, 'ctx> Body<'c, 'a, 'ctx> {
    fn new(cx: &'c KernelCx<'a, 'ctx>, u: &F32Ukr, args: Args<'ctx>) -> CgResult<Self> {
        let lanes = u.lanes();
        if !u.nr.is_multiple_of(lanes) || u.mr == 0 {
            return Err(CodegenError::Llvm(format!(
                "microkernel tile {}x{} does not fit {lanes}-lane vectors",
                u.mr, u.nr
            )));
        }
        let vt = cx.f32_t().vec_type(lanes as u32);
        let nv = u.nr / lanes;
        let b = cx.b;
        let last = cx.add_c(args.mr_valid, -1)?;
        let mut a_rows = vec![];
        let mut c_rows = vec![];
        let mut r_rows = vec![];
        for i in 0..u.mr {
            let r = cx.smin(cx.i64(i as i64), last)?;
            c_rows.push(cx.gep_f32(args.c, cx.mul(r, args.ldc)?)?);
            r_rows.push(cx.gep_f32(args.r, cx.mul(r, args.ldc)?)?);
            match u.a {
                ALayout::Strided => a_rows.push(cx.gep_f32(args.a, cx.mul(r, args.lda)?)?),
                ALayout::Cols => a_rows.push(cx.gep_f32(args.a, r)?),
                ALayout::Packed => {}
            }
        }
        let i64t = cx.i64_t();
        let lane_t = i64t.vec_type(lanes as u32);
        let nrv = b.build_insert_element(lane_t.get_undef(), args.nr_valid, cx.i64(0), "")?;
        let nrv = b.build_shuffle_vector(nrv, lane_t.get_undef(), lane_t.const_zero(), "")?;
        let mut masks = vec![];
        for j in 0..nv {
            let idx: Vec<IntValue> = (0..lanes)
                .map(|l| i64t.const_int((j * lanes + l) as u64, false))
                .collect();
            let idx = VectorType::const_vector(&idx);
            masks.push(b.build_int_compare(IntPredicate::SLT, idx, nrv, "mask")?);
        }
        Ok(Body {
            cx,
            u: *u,
            args,
            vt,
            nv,
            a_rows,
            c_rows,
            r_rows,
            masks,
        })
    }

    fn block(&self, name: &str) -> BasicBlock<'ctx> {
        self.cx.ctx.append_basic_block(self.cx.func, name)
    }

    fn emit(&self) -> CgResult<()> {
        let cx = self.cx;
        let full = cx.icmp(
            IntPredicate::EQ,
            self.args.nr_valid,
            cx.i64(self.u.nr as i64),
        )?;
        let (bf, be) = (self.block("full"), self.block("edge"));
        cx.b.build_conditional_branch(full, bf, be)?;
        cx.b.position_at_end(bf);
        self.tile(false)?;
        cx.b.build_return(None)?;
        cx.b.position_at_end(be);
        self.tile(true)?;
        cx.b.build_return(None)?;
        Ok(())
    }

    fn splat(&self, x: inkwell::values::FloatValue<'ctx>) -> CgResult<VectorValue<'ctx>> {
        self.cx.splat(x.into(), self.vt.get_size())
    }

    /// Loads vector `j` at `p` (masked on an edge tile).
    fn load(&self, p: PointerValue<'ctx>, j: usize, edge: bool) -> CgResult<VectorValue<'ctx>> {
        let cx = self.cx;
        let p = cx.gep_f32(p, cx.i64((j * self.u.lanes()) as i64))?;
        if edge {
            let v = cx.call_intrinsic(
                "llvm.masked.load",
                &[self.vt.into(), p.get_type().into()],
                &[p.into(), self.masks[j].into(), self.vt.const_zero().into()],
            )?;
            return Ok(v.into_vector_value());
        }
        let v = cx.b.build_load(self.vt, p, "")?;
        if let Some(i) = v.as_instruction_value() {
            i.set_alignment(4)
                .map_err(|e| CodegenError::Llvm(e.to_string()))?;
        }
        Ok(v.into_vector_value())
    }

    fn store(
        &self,
        p: PointerValue<'ctx>,
        j: usize,
        v: VectorValue<'ctx>,
        edge: bool,
    ) -> CgResult<()> {
        let cx = self.cx;
        let p = cx.gep_f32(p, cx.i64((j * self.u.lanes()) as i64))?;
        if edge {
            let f = inkwell::intrinsics::Intrinsic::find("llvm.masked.store")
                .and_then(|i| i.get_declaration(cx.module, &[self.vt.into(), p.get_type().into()]))
                .ok_or_else(|| CodegenError::Llvm("no llvm.masked.store".into()))?;
            let args: [BasicMetadataValueEnum; 3] = [v.into(), p.into(), self.masks[j].into()];
            cx.b.build_call(f, &args, "")?;
            return Ok(());
        }
        let s = cx.b.build_store(p, v)?;
        s.set_alignment(4)
            .map_err(|e| CodegenError::Llvm(e.to_string()))?;
        Ok(())
    }

    /// One complete tile: init, the k loop, the epilogue and the stores.
    fn tile(&self, edge: bool) -> CgResult<()> {
        let cx = self.cx;
        let b = cx.b;
        let (mr, nv) = (self.u.mr, self.nv);
        // 1. Initial accumulators: C (accumulate), or the bias per row or per column.
        let flag = |bit: u64| -> CgResult<IntValue<'ctx>> {
            let f = b.build_and(self.args.flags, cx.i32(bit as i32), "")?;
            cx.icmp(IntPredicate::NE, f, cx.i32(0))
        };
        let (bc, bnc, br, bcol, bk) = (
            self.block("init.c"),
            self.block("init.bias"),
            self.block("init.rows"),
            self.block("init.cols"),
            self.block("k.pre"),
        );
        b.build_conditional_branch(flag(ACCUMULATE)?, bc, bnc)?;
        b.position_at_end(bnc);
        b.build_conditional_branch(flag(BIAS_COLS)?, bcol, br)?;
        let mut sources = vec![];
        b.position_at_end(bc);
        let mut vals = vec![];
        for i in 0..mr {
            for j in 0..nv {
                vals.push(self.load(self.c_rows[i], j, edge)?);
            }
        }
        sources.push((vals, cx.current_block()?));
        b.build_unconditional_branch(bk)?;
        b.position_at_end(br);
        let mut vals = vec![];
        for i in 0..mr {
            let s = cx.load_f32(self.args.bias, cx.i64(i as i64))?;
            let v = self.splat(s)?;
            vals.extend(std::iter::repeat_n(v, nv));
        }
        sources.push((vals, cx.current_block()?));
        b.build_unconditional_branch(bk)?;
        b.position_at_end(bcol);
        let row: Vec<VectorValue> = (0..nv)
            .map(|j| self.load(self.args.bias, j, edge))
            .collect::<CgResult<_>>()?;
        let vals: Vec<VectorValue> = (0..mr).flat_map(|_| row.iter().copied()).collect();
        sources.push((vals, cx.current_block()?));
        b.build_unconditional_branch(bk)?;
        b.position_at_end(bk);
        let mut init = vec![];
        for t in 0..mr * nv {
            let phi = b.build_phi(self.vt, "init")?;
            for (vals, blk) in &sources {
                phi.add_incoming(&[(&vals[t], *blk)]);
            }
            init.push(phi.as_basic_value().into_vector_value());
        }

        // 2. The k loop (k >= 1): accumulators live in phis.
        let pre = cx.current_block()?;
        let (body, exit) = (self.block("k.loop"), self.block("k.end"));
        b.build_unconditional_branch(body)?;
        b.position_at_end(body);
        let kphi = b.build_phi(cx.i64_t(), "kk")?;
        let kk = kphi.as_basic_value().into_int_value();
        let mut phis = vec![];
        for v in &init {
            let phi = b.build_phi(self.vt, "acc")?;
            phi.add_incoming(&[(v, pre)]);
            phis.push(phi);
        }
        // The row of the activations at this k step (offsets kernels).
        let off = if self.u.offsets {
            let o = cx
                .load(qcc_ir::DType::I32, self.args.off, kk)?
                .into_int_value();
            Some(b.build_int_s_extend(o, cx.i64_t(), "")?)
        } else {
            None
        };
        let brow = match (off, self.u.a) {
            (Some(o), ALayout::Packed) => cx.gep_f32(self.args.b, o)?,
            _ => cx.gep_f32(self.args.b, cx.mul(kk, self.args.ldb)?)?,
        };
        let bv: Vec<VectorValue> = (0..nv)
            .map(|j| self.load(brow, j, edge))
            .collect::<CgResult<_>>()?;
        super::prefetch_line(cx, self.args.pf, kk)?;
        // B read in place with a row stride (a 1×1 convolution's input
        // planes, Winograd's V): the rows `B_AHEAD` k steps on into L1, which
        // the hardware prefetchers do not follow across rows (measured on a
        // 1×1 256→64 layer at 56²: 0.91 → 0.78 ms).
        if off.is_none() && self.u.a == ALayout::Packed {
            let ahead = cx.gep_f32(brow, cx.mul_c(self.args.ldb, B_AHEAD)?)?;
            for line in 0..(nv * self.u.lanes()).div_ceil(16) {
                let at = cx.gep_f32(ahead, cx.i64(16 * line as i64))?;
                super::prefetch_into(cx, at, 3)?;
            }
        }
        let mut next = vec![];
        // NEON: packed A as whole vectors of four rows, each row a lane splat
        // (the by-element `fmla v.4s, b.4s, a.s[i]`), not one load per row.
        let neon = matches!(self.u.simd, Simd::Neon64 | Simd::Neon32);
        let a_vecs: Vec<VectorValue> = if neon && self.u.a == ALayout::Packed && mr % 4 == 0 {
            (0..mr / 4)
                .map(|g| {
                    let idx = cx.add_c(cx.mul_c(kk, mr as i64)?, 4 * g as i64)?;
                    let v =
                        cx.b.build_load(self.vt, cx.gep_f32(self.args.a, idx)?, "")?;
                    if let Some(ins) = v.as_instruction_value() {
                        ins.set_alignment(4)
                            .map_err(|e| CodegenError::Llvm(e.to_string()))?;
                    }
                    Ok(v.into_vector_value())
                })
                .collect::<CgResult<_>>()?
        } else {
            vec![]
        };
        for i in 0..mr {
            let av = match (a_vecs.get(i / 4), self.u.a) {
                (Some(v), _) => cx.shuffle(*v, self.vt.get_undef(), &[(i % 4) as u32; 4])?,
                (None, ALayout::Packed) => {
                    let idx = cx.add_c(cx.mul_c(kk, mr as i64)?, i as i64)?;
                    self.splat(cx.load_f32(self.args.a, idx)?)?
                }
                (None, ALayout::Strided) => self.splat(cx.load_f32(self.a_rows[i], kk)?)?,
                (None, ALayout::Cols) => {
                    let at = match off {
                        Some(o) => o,
                        None => cx.mul(kk, self.args.lda)?,
                    };
                    self.splat(cx.load_f32(self.a_rows[i], at)?)?
                }
            };
            for j in 0..nv {
                let acc = phis[i * nv + j].as_basic_value().into_vector_value();
                let r = cx.call_intrinsic(
                    "llvm.fmuladd",
                    &[self.vt.into()],
                    &[av.into(), bv[j].into(), acc.into()],
                )?;
                next.push(r.into_vector_value());
            }
        }
        let knext = b.build_int_nsw_add(kk, cx.i64(1), "kk.next")?;
        let more = cx.icmp(IntPredicate::SLT, knext, self.args.k)?;
        let latch = cx.current_block()?;
        b.build_conditional_branch(more, body, exit)?;
        kphi.add_incoming(&[(&cx.i64(0), pre), (&knext, latch)]);
        for (phi, v) in phis.iter().zip(&next) {
            phi.add_incoming(&[(v, latch)]);
        }

        // 3. Epilogue: the residual (when flagged), the clamp, then store
        // the valid rows.
        b.position_at_end(exit);
        let (radd, rjoin) = (self.block("res"), self.block("res.end"));
        b.build_conditional_branch(flag(RESIDUAL)?, radd, rjoin)?;
        b.position_at_end(radd);
        let mut added = vec![];
        for i in 0..mr {
            for j in 0..nv {
                let r = self.load(self.r_rows[i], j, edge)?;
                added.push(b.build_float_add(next[i * nv + j], r, "")?);
            }
        }
        let radd_end = cx.current_block()?;
        b.build_unconditional_branch(rjoin)?;
        b.position_at_end(rjoin);
        let mut sums = vec![];
        for (v, a) in next.iter().zip(&added) {
            let phi = b.build_phi(self.vt, "sum")?;
            phi.add_incoming(&[(v, exit), (a, radd_end)]);
            sums.push(phi.as_basic_value().into_vector_value());
        }
        let lo = self.splat(self.args.lo)?;
        let hi = self.splat(self.args.hi)?;
        let mut out = vec![];
        for v in &sums {
            let below = b.build_float_compare(FloatPredicate::OLT, *v, lo, "")?;
            let x = b.build_select(below, lo, *v, "")?.into_vector_value();
            let above = b.build_float_compare(FloatPredicate::OGT, x, hi, "")?;
            out.push(b.build_select(above, hi, x, "")?.into_vector_value());
        }
        for i in 0..mr {
            let (store, skip) = if i == 0 {
                (None, None)
            } else {
                let ok = cx.icmp(IntPredicate::SLT, cx.i64(i as i64), self.args.mr_valid)?;
                let (s, k) = (self.block("row"), self.block("row.next"));
                b.build_conditional_branch(ok, s, k)?;
                b.position_at_end(s);
                (Some(s), Some(k))
            };
            for j in 0..nv {
                self.store(self.c_rows[i], j, out[i * nv + j], edge)?;
            }
            if let (Some(_), Some(k)) = (store, skip) {
                b.build_unconditional_branch(k)?;
                b.position_at_end(k);
            }
        }
        Ok(())
    }
}
