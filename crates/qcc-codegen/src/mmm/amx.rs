//! int8 GEMM on Intel AMX tiles (`amx-tile` + `amx-int8`, Linux x86-64):
//! QGemm, and QConv's packed blocks.
//!
//! One tile dot product multiplies a 16×64 byte tile of A by a 64×16 byte
//! tile of B (packed in k-groups of four, 16 rows of `[16 columns][4]`)
//! into a 16×16 i32 tile: 16,384 MACs per instruction, about eight times
//! what `vpdpbusd` on zmm reaches on the same core. The microkernel
//!
//! ```c
//! void qcc.mmm.i8.amx.32x32.<x|w>[.h](
//!     i64 kt, const i8 *a, i64 lda, const i8 *b, i64 ldb, i64 bk, i64 bh,
//!     i8 *c, i64 ldc, const i32 *bias, const i32 *mult, const i32 *shift,
//!     i64 mr_valid, i64 nr_valid, i32 zp, i32 lo, i32 hi, i32 *acc)
//! ```
//!
//! keeps a 32×32 block of accumulators in tiles 0–3 (A rows 0–15 and 16–31
//! in tiles 4–5, at `a + 64t` and `a + 16·lda + 64t`; B's two column
//! halves in tiles 6–7, at `b + t·bk` and `b + t·bk + bh`, rows `ldb`
//! apart) over `kt` steps of 64 k, stores them to the 4 KiB `acc` and runs
//! the requantizing epilogue of the vector microkernels
//! (`qukernel::requantize`) row by row, storing `mr_valid` rows of
//! `nr_valid` bytes `ldc` apart. The caller has loaded the tile
//! configuration ([`configure`]: every tile 16 rows of 64 bytes, one
//! configuration for every node). As in `qukernel`, `.x` has the
//! activations in A (u8, `tdpbusd`) and the parameters per column; `.w`
//! has the weights in A (s8, `tdpbsud` on u8 activations in B) and the
//! parameters per row.
//!
//! QGemm packs A once per node into scratch as `[M/32·32][K/64·64]` bytes
//! (flipped to u8 like the `vpdpbusd` kernels, [`Dot::act_shift`]) and B at
//! compile time; QConv (`qconv.rs`) packs its weights `[OC/32·32][K/64·64]`
//! at compile time and reads its packed input blocks as B. The weights are
//! zero in all padding, so rows past M and bytes past K never reach a
//! stored result. Linux hands out the tile registers only on request:
//! `P_run` asks (`arch_prctl(ARCH_REQ_XCOMP_PERM)`) when the object holds
//! this kernel, see [`request_permission`].
//!
//! [`Dot::act_shift`]: super::qukernel::Dot::act_shift

use super::div_ceil;
use super::for_blocks;
use super::pack::pack_k4;
use super::qukernel::{epi_tables, requantize};
use crate::cx::{CgResult, KernelCx, Operand};
use crate::kernels::quant::const_i8_table;
use crate::CodegenError;
use inkwell::builder::Builder;
use inkwell::context::Context;
use inkwell::module::Module;
use inkwell::types::{BasicMetadataTypeEnum, VectorType};
use inkwell::values::{BasicMetadataValueEnum, FunctionValue, IntValue, PointerValue};
use inkwell::IntPredicate;
use qcc_ir::quant::Epilogue;
use qcc_ir::DType;

/// Rows (of A and C) per tile; also k-groups of four per B tile.
const ROWS: usize = 16;
/// Bytes per tile row: 64 k values of A, 16 columns × 4 of B and C.
const COLSB: usize = 64;
/// The block one microkernel call computes: 2×2 tiles.
pub const BLOCK: usize = 2 * ROWS;
/// K per step.
pub const KT: usize = COLSB;
/// k-groups of four per step (rows of a B tile).
pub const KT4: usize = ROWS;
/// Bytes of the accumulator block the microkernel stores to scratch.
pub const ACC_BYTES: usize = BLOCK * BLOCK * 4;
/// The prefix of every AMX microkernel's name (the entry looks for it).
pub const PREFIX: &str = "qcc.mmm.i8.amx.";

/// Whether an `[m,k] × [k,n]` product (QGemm rows, or a convolution's
/// output channels per group and K) is worth the tiles on a target that
/// has them. Below 8 rows the 16-row tiles are mostly padding; below one
/// 64-byte step of K, the tiles' zero padding and the accumulator round
/// trip through memory cost more than the vector kernels, which keep their
/// accumulators in registers. Measured, µs, AMX vs `vpdpbusd`:
/// `[M,512]×[512,512]` at M = 4 (3.6 with `vpdpbusd`, under what the
/// tiles need to stream B alone), 8: 5.6 vs 7.3, 12: 5.8 vs 13.8, 16: 6.5
/// vs 14.2; MobileNetV2's 1×1 convolutions with K = 16, 24, 32: 371 vs
/// 258, 147 vs 105, 52 vs 34 (per layer); K = 64: 27 vs 31; K ≥ 96: AMX
/// 1.1–2× faster.
pub fn worth(m: usize, k: usize) -> bool {
    m >= 8 && k >= KT
}

/// The padded shapes and scratch layout of one AMX QGemm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AmxPlan {
    pub m: usize,
    pub k: usize,
    pub n: usize,
}

impl AmxPlan {
    fn mp(&self) -> usize {
        div_ceil(self.m, BLOCK) * BLOCK
    }
    fn kp(&self) -> usize {
        div_ceil(self.k, KT) * KT
    }
    fn np(&self) -> usize {
        div_ceil(self.n, BLOCK) * BLOCK
    }

    /// The accumulator block, then the packed A.
    pub fn scratch_bytes(&self) -> usize {
        ACC_BYTES + self.mp() * self.kp()
    }
}

/// Calls a void intrinsic.
fn call_void<'ctx>(
    module: &Module<'ctx>,
    b: &Builder<'ctx>,
    name: &str,
    args: &[BasicMetadataValueEnum<'ctx>],
) -> CgResult<()> {
    let f = inkwell::intrinsics::Intrinsic::find(name)
        .and_then(|i| i.get_declaration(module, &[]))
        .ok_or_else(|| CodegenError::Llvm(format!("unknown intrinsic {name}")))?;
    b.build_call(f, args, "")?;
    Ok(())
}

fn tile(ctx: &Context, t: u64) -> BasicMetadataValueEnum<'_> {
    ctx.i8_type().const_int(t, false).into()
}

/// The tile configuration every call loads: palette 1, tiles 0–7 of 16
/// rows × 64 bytes.
fn config<'ctx>(cx: &KernelCx<'_, 'ctx>) -> PointerValue<'ctx> {
    let name = "qcc.amx.config";
    if let Some(g) = cx.module.get_global(name) {
        return g.as_pointer_value();
    }
    let mut bytes = [0u8; 64];
    bytes[0] = 1;
    for t in 0..8 {
        bytes[16 + 2 * t..18 + 2 * t].copy_from_slice(&(COLSB as u16).to_le_bytes());
        bytes[48 + t] = ROWS as u8;
    }
    let i8t = cx.ctx.i8_type();
    let vals: Vec<_> = bytes
        .iter()
        .map(|&v| i8t.const_int(v as u64, false))
        .collect();
    let arr = i8t.const_array(&vals);
    let g = cx.module.add_global(arr.get_type(), None, name);
    g.set_initializer(&arr);
    g.set_constant(true);
    g.set_linkage(inkwell::module::Linkage::Private);
    g.set_alignment(64);
    g.as_pointer_value()
}

/// Emits the product (see [`super::qgemm::emit`], whose arguments these
/// are): `bt` is B transposed, `bias` folded for u8 activations.
#[allow(clippy::too_many_arguments)]
pub fn emit<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    p: &AmxPlan,
    a: &Operand<'_, 'ctx>,
    flip: bool,
    bt: &[i64],
    bias: &[i32],
    epi: &Epilogue,
    out: &Operand<'_, 'ctx>,
) -> CgResult<()> {
    let (m, k, n) = (p.m, p.k, p.n);
    let (kp, np) = (p.kp(), p.np());
    // B padded with zeros to [np][kp], packed as 16-column panels.
    let mut padded = vec![0i64; np * kp];
    for j in 0..n {
        padded[j * kp..j * kp + k].copy_from_slice(&bt[j * k..(j + 1) * k]);
    }
    let wt = const_i8_table(cx, "mmm.amx.b", &pack_k4(&padded, np, kp, kp, 1, ROWS));
    let panel = (kp / 4 * ROWS * 4) as i64;
    let tables = epi_tables(cx, bias, &epi.rescale, (1, n, BLOCK));
    let high = super::qukernel::requant_mode(&cx.target, &epi.rescale);
    let f = function(cx, true, high)?;
    let s = cx
        .scratch
        .ok_or_else(|| cx.unsupported("no scratch for the packed activations"))?;
    let acc = s;
    let ap = cx.gep(DType::I8, s, cx.i64(ACC_BYTES as i64))?;
    pack_rows(cx, a, m, k, kp, flip, ap)?;
    configure(cx)?;
    for_blocks(cx, m, BLOCK, |cx, mb, mrv| {
        let arow = cx.gep(DType::I8, ap, cx.mul_c(mb, (BLOCK * kp) as i64)?)?;
        let crow = cx.gep(DType::I8, out.ptr, cx.mul_c(mb, (BLOCK * n) as i64)?)?;
        for_blocks(cx, n, BLOCK, |cx, nb, nrv| {
            let col = cx.mul_c(nb, BLOCK as i64)?;
            let params = super::qukernel::tables_at(cx, &tables, col)?;
            AmxCall {
                kt: (kp / KT) as i64,
                a: arow,
                lda: kp as i64,
                b: cx.gep(DType::I8, wt, cx.mul_c(nb, 2 * panel)?)?,
                ldb: COLSB as i64,
                bk: (KT4 * COLSB) as i64,
                bh: panel,
                c: cx.gep(DType::I8, crow, col)?,
                ldc: n as i64,
                params,
                mr_valid: mrv,
                nr_valid: nrv,
                out: (epi.zero_point, epi.min, epi.max),
                acc,
            }
            .emit(cx, f)
        })
    })?;
    release(cx)
}

/// Loads the tile configuration, once per node before its microkernel
/// calls (`ldtilecfg` is slow, and the calls leave it as it is).
pub fn configure(cx: &KernelCx<'_, '_>) -> CgResult<()> {
    let cfg = config(cx);
    call_void(cx.module, cx.b, "llvm.x86.ldtilecfg", &[cfg.into()])
}

/// Hands the tile state back after a node: a thread that keeps it pays
/// for saving 8 KiB at every context switch.
pub fn release(cx: &KernelCx<'_, '_>) -> CgResult<()> {
    call_void(cx.module, cx.b, "llvm.x86.tilerelease", &[])
}

/// The arguments of one microkernel call (see the module docs).
pub struct AmxCall<'ctx> {
    pub kt: i64,
    pub a: PointerValue<'ctx>,
    pub lda: i64,
    pub b: PointerValue<'ctx>,
    pub ldb: i64,
    pub bk: i64,
    pub bh: i64,
    pub c: PointerValue<'ctx>,
    pub ldc: i64,
    /// `bias`, `mult`, `shift`: i32 tables at this block's first channel.
    pub params: [PointerValue<'ctx>; 3],
    pub mr_valid: usize,
    pub nr_valid: usize,
    /// Output zero point and clamp.
    pub out: (i32, i32, i32),
    /// The 4 KiB accumulator block in scratch.
    pub acc: PointerValue<'ctx>,
}

impl<'ctx> AmxCall<'ctx> {
    pub fn emit(&self, cx: &KernelCx<'_, 'ctx>, f: FunctionValue<'ctx>) -> CgResult<()> {
        let args: Vec<BasicMetadataValueEnum> = vec![
            cx.i64(self.kt).into(),
            self.a.into(),
            cx.i64(self.lda).into(),
            self.b.into(),
            cx.i64(self.ldb).into(),
            cx.i64(self.bk).into(),
            cx.i64(self.bh).into(),
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
            self.acc.into(),
        ];
        cx.b.build_call(f, &args, "")?;
        Ok(())
    }
}

/// Copies the `m` rows of `k` bytes of `a` into `dst` with row stride
/// `kp`, flipping each byte when `flip`. The padding is not written: B is
/// zero there.
fn pack_rows<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    a: &Operand<'_, 'ctx>,
    m: usize,
    k: usize,
    kp: usize,
    flip: bool,
    dst: PointerValue<'ctx>,
) -> CgResult<()> {
    let v64 = cx.i8_t().vec_type(64);
    let sign = VectorType::const_vector(&vec![cx.i8_t().const_int(0x80, false); 64]);
    cx.for_range(0, m as i64, |cx, i| {
        let src = cx.gep(DType::I8, a.ptr, cx.mul_c(i, k as i64)?)?;
        let to = cx.gep(DType::I8, dst, cx.mul_c(i, kp as i64)?)?;
        cx.for_range(0, (k / 64) as i64, |cx, q| {
            let off = cx.mul_c(q, 64)?;
            let at = cx.gep(DType::I8, src, off)?;
            let mut v = super::qdw::tap(cx, at, v64, 64, 1)?;
            if flip {
                v = cx.b.build_xor(v, sign, "")?;
            }
            let st = cx.b.build_store(cx.gep(DType::I8, to, off)?, v)?;
            st.set_alignment(1)
                .map_err(|e| CodegenError::Llvm(e.to_string()))?;
            Ok(())
        })?;
        let tail = k / 64 * 64;
        cx.for_range(tail as i64, k as i64, |cx, t| {
            let mut b = cx.load(DType::I8, src, t)?.into_int_value();
            if flip {
                b = cx.b.build_xor(b, cx.i8_t().const_int(0x80, false), "")?;
            }
            cx.store(DType::I8, to, t, b.into())
        })
    })
}

/// The microkernel (activations in A or in B, see the module docs),
/// emitted into the module on first use.
pub fn function<'ctx>(
    outer: &KernelCx<'_, 'ctx>,
    acts_in_a: bool,
    high: super::qukernel::Requant,
) -> CgResult<FunctionValue<'ctx>> {
    let name = format!(
        "{PREFIX}{BLOCK}x{BLOCK}.{}{}",
        if acts_in_a { "x" } else { "w" },
        high.suffix()
    );
    if let Some(f) = outer.module.get_function(&name) {
        return Ok(f);
    }
    let ctx = outer.ctx;
    let (i64t, i32t) = (ctx.i64_type(), ctx.i32_type());
    let ptr = ctx.ptr_type(inkwell::AddressSpace::default());
    let params: Vec<BasicMetadataTypeEnum> = vec![
        i64t.into(), // kt
        ptr.into(),  // a
        i64t.into(), // lda
        ptr.into(),  // b
        i64t.into(), // ldb
        i64t.into(), // bk
        i64t.into(), // bh
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
        ptr.into(),  // acc
    ];
    let f = super::declare_microkernel(
        outer,
        &name,
        &params,
        (&[1, 3, 7, 17], &[1, 3, 9, 10, 11]),
        true,
    );
    let b = ctx.create_builder();
    b.position_at_end(ctx.append_basic_block(f, "entry"));
    let mut cx = KernelCx {
        ctx,
        module: outer.module,
        b: &b,
        func: f,
        node_name: name.clone(),
        op_name: "microkernel",
        target: outer.target,
        scratch: None,
    };
    body(&mut cx, f, acts_in_a, high)?;
    Ok(f)
}

fn body<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    f: FunctionValue<'ctx>,
    acts_in_a: bool,
    high: super::qukernel::Requant,
) -> CgResult<()> {
    let p = |i: u32| {
        f.get_nth_param(i)
            .ok_or_else(|| CodegenError::Llvm("missing microkernel parameter".into()))
    };
    let int = |i: u32| -> CgResult<IntValue<'ctx>> { Ok(p(i)?.into_int_value()) };
    let pt = |i: u32| -> CgResult<PointerValue<'ctx>> { Ok(p(i)?.into_pointer_value()) };
    let (kt, a, lda, bp) = (int(0)?, pt(1)?, int(2)?, pt(3)?);
    let (ldb, bk, bh) = (int(4)?, int(5)?, int(6)?);
    let (c, ldc) = (pt(7)?, int(8)?);
    let (bias, mult, shift) = (pt(9)?, pt(10)?, pt(11)?);
    let (mr_valid, nr_valid) = (int(12)?, int(13)?);
    let (zp, lo, hi, acc) = (int(14)?, int(15)?, int(16)?, pt(17)?);
    let (ctx, m) = (cx.ctx, cx.module);
    let b = cx.b;
    for t in 0..4 {
        call_void(m, b, "llvm.x86.tilezero", &[tile(ctx, t)])?;
    }
    // The k loop (kt >= 1): A rows 0–15 and 16–31, B panels 0 and 1.
    let pre = cx.current_block()?;
    let lp = ctx.append_basic_block(f, "k.loop");
    let done = ctx.append_basic_block(f, "k.end");
    b.build_unconditional_branch(lp)?;
    b.position_at_end(lp);
    let qphi = b.build_phi(cx.i64_t(), "q")?;
    let q = qphi.as_basic_value().into_int_value();
    let a0 = cx.gep(DType::I8, a, cx.mul_c(q, KT as i64)?)?;
    let a1 = cx.gep(DType::I8, a0, cx.mul_c(lda, ROWS as i64)?)?;
    let b0 = cx.gep(DType::I8, bp, cx.mul(q, bk)?)?;
    let b1 = cx.gep(DType::I8, b0, bh)?;
    for (t, at, ld) in [(4, a0, lda), (5, a1, lda), (6, b0, ldb), (7, b1, ldb)] {
        call_void(
            m,
            b,
            "llvm.x86.tileloadd64",
            &[tile(ctx, t), at.into(), ld.into()],
        )?;
    }
    for (dst, ta, tb) in [(0, 4, 6), (1, 4, 7), (2, 5, 6), (3, 5, 7)] {
        // A u8 × B s8 (activations in A), or A s8 × B u8.
        call_void(
            m,
            b,
            if acts_in_a {
                "llvm.x86.tdpbusd"
            } else {
                "llvm.x86.tdpbsud"
            },
            &[tile(ctx, dst), tile(ctx, ta), tile(ctx, tb)],
        )?;
    }
    let qn = b.build_int_nsw_add(q, cx.i64(1), "q.next")?;
    let more = cx.icmp(IntPredicate::SLT, qn, kt)?;
    let latch = cx.current_block()?;
    b.build_conditional_branch(more, lp, done)?;
    qphi.add_incoming(&[(&cx.i64(0), pre), (&qn, latch)]);

    // Tiles to the accumulator block: row r, column j at acc[r*32 + j].
    b.position_at_end(done);
    let ld_acc = cx.i64((BLOCK * 4) as i64);
    for (t, r, j) in [(0, 0, 0), (1, 0, ROWS), (2, ROWS, 0), (3, ROWS, ROWS)] {
        let at = cx.gep(DType::I32, acc, cx.i64((r * BLOCK + j) as i64))?;
        call_void(
            m,
            b,
            "llvm.x86.tilestored64",
            &[tile(ctx, t), at.into(), ld_acc.into()],
        )?;
    }

    // Epilogue, row by row: per-column parameters, masked stores.
    let n = BLOCK as u32;
    let v32 = cx.i32_t().vec_type(n);
    let load_v = |cx: &KernelCx<'_, 'ctx>, at: PointerValue<'ctx>| -> CgResult<_> {
        let v = cx.b.build_load(v32, at, "")?;
        if let Some(i) = inkwell::values::BasicValue::as_instruction_value(&v) {
            i.set_alignment(4)
                .map_err(|e| CodegenError::Llvm(e.to_string()))?;
        }
        Ok(v.into_vector_value())
    };
    let outs = [
        cx.splat(zp.into(), n)?,
        cx.splat(lo.into(), n)?,
        cx.splat(hi.into(), n)?,
    ];
    let cols = if acts_in_a {
        Some([load_v(cx, bias)?, load_v(cx, mult)?, load_v(cx, shift)?])
    } else {
        None
    };
    let lane: Vec<IntValue> = (0..n).map(|l| cx.i32(l as i32)).collect();
    let nv = b.build_int_truncate(nr_valid, cx.i32_t(), "")?;
    let mask = b.build_int_compare(
        IntPredicate::SLT,
        VectorType::const_vector(&lane),
        cx.splat(nv.into(), n)?,
        "mask",
    )?;
    let store = inkwell::intrinsics::Intrinsic::find("llvm.masked.store")
        .and_then(|x| x.get_declaration(m, &[cx.i8_t().vec_type(n).into(), cx.ptr_t().into()]))
        .ok_or_else(|| CodegenError::Llvm("no llvm.masked.store".into()))?;
    let rows = ctx.append_basic_block(f, "rows");
    let exit = ctx.append_basic_block(f, "exit");
    let entry = cx.current_block()?;
    b.build_unconditional_branch(rows)?;
    b.position_at_end(rows);
    let rphi = b.build_phi(cx.i64_t(), "r")?;
    let r = rphi.as_basic_value().into_int_value();
    let v = load_v(cx, cx.gep(DType::I32, acc, cx.mul_c(r, BLOCK as i64)?)?)?;
    let [pb, pm, ps] = match cols {
        Some(c) => c,
        None => {
            let row = |t: PointerValue<'ctx>| -> CgResult<_> {
                let x = cx.load(DType::I32, t, r)?;
                cx.splat(x, n)
            };
            [row(bias)?, row(mult)?, row(shift)?]
        }
    };
    let q8 = requantize(cx, v, [pb, pm, ps, outs[0], outs[1], outs[2]], high)?;
    let dst = cx.gep(DType::I8, c, cx.mul(r, ldc)?)?;
    b.build_call(store, &[q8.into(), dst.into(), mask.into()], "")?;
    let rn = b.build_int_nsw_add(r, cx.i64(1), "r.next")?;
    let more = cx.icmp(IntPredicate::SLT, rn, mr_valid)?;
    let latch = cx.current_block()?;
    b.build_conditional_branch(more, rows, exit)?;
    rphi.add_incoming(&[(&cx.i64(0), entry), (&rn, latch)]);
    b.position_at_end(exit);
    b.build_return(None)?;
    Ok(())
}

/// Whether this process may use the AMX tile state: Linux grants it on
/// request (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`), and
/// refuses it on kernels before 5.16 or where a sandbox filters the call.
/// Compiling for the host CPU asks, so that an object meant to run here
/// never relies on tiles this system withholds (the object asks again, and
/// returns 3 if refused, wherever it runs).
pub fn host_grants_amx() -> bool {
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    {
        let ret: i64;
        // SAFETY: arch_prctl(ARCH_REQ_XCOMP_PERM, 18) only changes which
        // register state this process may use; it reads and writes no memory.
        unsafe {
            std::arch::asm!(
                "syscall",
                inlateout("rax") 158i64 => ret,
                in("rdi") 0x1023i64,
                in("rsi") 18i64,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack)
            );
        }
        ret == 0
    }
    #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
    {
        false
    }
}

/// Whether `module` holds an AMX microkernel (nodes emit them before the
/// entry is built; they are never inlined).
pub(crate) fn used_in(module: &Module<'_>) -> bool {
    module
        .get_functions()
        .any(|f| f.get_name().to_bytes().starts_with(PREFIX.as_bytes()))
}

/// Asks Linux for the AMX tile data state (`arch_prctl(ARCH_REQ_XCOMP_PERM,
/// XFEATURE_XTILEDATA)`, syscall 158): without it the first tile load
/// faults. Returns the syscall's result (0: granted). The permission is the
/// process's and asking again is harmless, so `P_run` asks every time
/// rather than keep global state.
pub fn request_permission<'ctx>(ctx: &'ctx Context, b: &Builder<'ctx>) -> CgResult<IntValue<'ctx>> {
    let i64t = ctx.i64_type();
    let fty = i64t.fn_type(&[i64t.into(), i64t.into(), i64t.into()], false);
    let asm = ctx.create_inline_asm(
        fty,
        "syscall".to_string(),
        "={rax},{rax},{rdi},{rsi},~{rcx},~{r11},~{memory}".to_string(),
        true,
        false,
        None,
        false,
    );
    let args: [BasicMetadataValueEnum; 3] = [
        i64t.const_int(158, false).into(),
        i64t.const_int(0x1023, false).into(),
        i64t.const_int(18, false).into(),
    ];
    b.build_indirect_call(fty, asm, &args, "amx.perm")?
        .try_as_basic_value()
        .basic()
        .map(|v| v.into_int_value())
        .ok_or_else(|| CodegenError::Llvm("syscall returns nothing".into()))
}
