//! QGemm (`[M,K] x [K,N] + bias`, then the per-column epilogue) and the
//! 8-bit dot-product core it shares with QConv.
//!
//! B is a compile-time constant: it is stored transposed (`[N,K]`), so every
//! output is a dot product of two contiguous K-long i8 rows; the node
//! function no longer reads the original B, whose global LLVM then drops.
//! A's zero point is folded into the bias at compile time:
//! `Σ (a - za) b = Σ a b - za Σ b`. Accumulation is wrapping i32, exact
//! because the worst case `max|a - za| * Σ|b| + |bias|` is checked to fit.

use super::expect_inputs;
pub(crate) use super::qdot::dot_shift;
use super::qdot::isa_chunks;
use super::quant::{
    check_i32, const_i32_table, const_i8_table, iadd, load_i16, max_centered, mul_i16, need_int8,
    Chan, EpiEmit,
};
use crate::cx::{CgResult, KernelCx, Operand};
use inkwell::values::{IntValue, PointerValue};
use qcc_ir::{DType, Node, Op};

/// Output columns (QGemm) or channels (QConv) computed together: one load
/// of the shared row feeds this many multiply-adds.
pub(crate) const DOT_BLOCK: usize = 4;

/// A contiguous row of 8-bit elements: `ptr[off..off + len]`; or, when
/// `packed`, of signed 4-bit weights two per byte (`pack::pack_bits`) from
/// byte `off` on.
#[derive(Clone, Copy)]
pub(crate) struct Row<'ctx> {
    pub ptr: PointerValue<'ctx>,
    pub off: IntValue<'ctx>,
    pub dt: DType,
    pub packed: bool,
}

/// Whether a node whose int8 weights are `w` (rows of `len`) stores them two
/// per byte on the direct loops: on bare-metal targets (where flash is what
/// 4-bit weights are for and no microkernel packs them), weights within
/// [-8, 7], rows of an even length (every byte holds two k steps) without a
/// dot-product instruction.
pub(crate) fn pack_rows(cx: &KernelCx<'_, '_>, stored_bits: u32, xdt: DType, len: i64) -> bool {
    cx.target.bare_metal && len % 2 == 0 && stored_bits <= 4 && !super::qdot::has_isa(cx, xdt, len)
}

/// Rows of `len` weights, each packed two per byte from a byte boundary
/// (`ceil(len / 2)` bytes a row).
pub(crate) fn packed_rows(w: &[i64], len: usize) -> Vec<i8> {
    w.chunks(len.max(1))
        .flat_map(|r| {
            let bytes: Vec<i8> = r.iter().map(|&v| v as i8).collect();
            crate::mmm::pack::pack_bits(&bytes, 4)
        })
        .collect()
}

/// [`dot_rows`] on packed weight rows of an even `len` ([`pack_rows`]): two
/// k steps per byte, the low nibble first, sign-extended by shifts.
fn dot_packed<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    x: Row<'ctx>,
    ws: &[Row<'ctx>],
    len: i64,
    slot: &dyn Fn(&KernelCx<'_, 'ctx>, usize) -> CgResult<PointerValue<'ctx>>,
) -> CgResult<()> {
    if len % 2 != 0 {
        return Err(cx.unsupported("internal: packed weight rows of an odd length"));
    }
    let four = cx.i8_t().const_int(4, false);
    let mac = |cx: &mut KernelCx<'_, 'ctx>, j: usize, xv: IntValue<'ctx>, w: IntValue<'ctx>| {
        let w = cx.b.build_int_s_extend(w, cx.ctx.i16_type(), "")?;
        let prod = mul_i16(cx, xv, w)?;
        let p = slot(cx, j)?;
        let a = cx.b.build_load(cx.i32_t(), p, "")?.into_int_value();
        cx.b.build_store(p, iadd(cx, a, prod)?)?;
        CgResult::Ok(())
    };
    // Byte `q` of every row against x[2q] (low nibble) and x[2q + 1] (high).
    cx.for_range(0, len / 2, |cx, q| {
        let k = cx.add(x.off, cx.mul_c(q, 2)?)?;
        let x0 = load_i16(cx, x.dt, x.ptr, k)?;
        let x1 = load_i16(cx, x.dt, x.ptr, cx.add_c(k, 1)?)?;
        for (j, w) in ws.iter().enumerate() {
            let b = cx
                .load(DType::I8, w.ptr, cx.add(w.off, q)?)?
                .into_int_value();
            let lo = cx.b.build_left_shift(b, four, "")?;
            mac(cx, j, x0, cx.b.build_right_shift(lo, four, true, "")?)?;
            mac(cx, j, x1, cx.b.build_right_shift(b, four, true, "")?)?;
        }
        Ok(())
    })
}

/// `acc[j] = init[j] + Σ_{k < len} x[k] * w[j][k]` for every row `w[j]`
/// (wrapping i32). `slots` is an i32 stack array of at least `ws.len()`
/// elements. The loop is contiguous in every operand, so LLVM vectorizes
/// it: 8-bit loads widened to i16 (by their type's signedness), one i16
/// multiply (exact: `|255 * -128| < 2^15`), the product sign-extended and
/// added to one i32 reduction per row.
///
/// Where the target has a dot-product instruction (`qdot`: AArch64 `sdot`,
/// AVX512-VNNI `vpdpbusd`) it covers the row's whole chunks and this loop
/// only the remainder. Either way every `x` gets `qdot::dot_shift` added, so
/// callers must fold the bias with zero point `zx + dot_shift(..)`.
pub(crate) fn dot_rows<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    x: Row<'ctx>,
    ws: &[Row<'ctx>],
    len: i64,
    init: &[IntValue<'ctx>],
    slots: PointerValue<'ctx>,
) -> CgResult<Vec<IntValue<'ctx>>> {
    let slot = |cx: &KernelCx<'_, 'ctx>, j: usize| cx.gep(DType::I32, slots, cx.i64(j as i64));
    if ws.iter().any(|w| w.packed) {
        if !ws.iter().all(|w| w.packed) || super::qdot::has_isa(cx, x.dt, len) {
            return Err(cx.unsupported("internal: packed weight rows mixed with others"));
        }
        for (j, v) in init.iter().enumerate().take(ws.len()) {
            cx.b.build_store(slot(cx, j)?, *v)?;
        }
        dot_packed(cx, x, ws, len, &slot)?;
        return (0..ws.len())
            .map(|j| {
                let p = slot(cx, j)?;
                Ok(cx.b.build_load(cx.i32_t(), p, "")?.into_int_value())
            })
            .collect();
    }
    let shift = dot_shift(cx, x.dt, len);
    let (init, start) = isa_chunks(cx, x, ws, len, init)?;
    for (j, v) in init.iter().enumerate().take(ws.len()) {
        cx.b.build_store(slot(cx, j)?, *v)?;
    }
    cx.for_range(start, len, |cx, k| {
        let mut xv = load_i16(cx, x.dt, x.ptr, cx.add(x.off, k)?)?;
        if shift != 0 {
            let s = cx.ctx.i16_type().const_int(shift as i64 as u64, true);
            xv = cx.b.build_int_add(xv, s, "")?;
        }
        for (j, w) in ws.iter().enumerate() {
            let wv = load_i16(cx, w.dt, w.ptr, cx.add(w.off, k)?)?;
            let prod = mul_i16(cx, xv, wv)?;
            let p = slot(cx, j)?;
            let a = cx.b.build_load(cx.i32_t(), p, "")?.into_int_value();
            cx.b.build_store(p, iadd(cx, a, prod)?)?;
        }
        Ok(())
    })?;
    (0..ws.len())
        .map(|j| {
            let p = slot(cx, j)?;
            Ok(cx.b.build_load(cx.i32_t(), p, "")?.into_int_value())
        })
        .collect()
}

/// Per output channel: the folded bias `bias - zx * Σw` (wrapping i32) of
/// `channels` weight rows of `k` elements each (`w[c * k..(c + 1) * k]`),
/// after checking the worst-case accumulator against i32. `shift` is what
/// `dot_rows` adds to every `x` ([`dot_shift`]): the fold is then
/// `bias - (zx + shift) * Σw`.
pub(crate) fn fold_bias(
    cx: &KernelCx<'_, '_>,
    w: &[i64],
    bias: &[i64],
    k: usize,
    x_range: (i32, i32),
    zx: i32,
    shift: i32,
) -> CgResult<Vec<i32>> {
    let reach = max_centered(x_range, zx) as i128;
    let mut out = Vec::with_capacity(bias.len());
    for (c, &b) in bias.iter().enumerate() {
        let row = w.get(c * k..(c + 1) * k).ok_or_else(|| {
            cx.unsupported(format!("weights too short for {} channels", bias.len()))
        })?;
        let abs: i128 = row.iter().map(|&v| (v as i128).abs()).sum();
        let sum: i128 = row.iter().map(|&v| v as i128).sum();
        check_i32(
            cx,
            reach * abs + (b as i128).abs(),
            &format!("output channel {c}"),
        )?;
        out.push((b as i128 - (zx as i128 + shift as i128) * sum) as i64 as i32);
    }
    Ok(out)
}

/// Checks that `o` is a constant `dt` tensor and returns its elements.
pub(crate) fn const_of(
    cx: &KernelCx<'_, '_>,
    o: &Operand,
    dt: DType,
    what: &str,
) -> CgResult<Vec<i64>> {
    if o.dtype() != dt {
        return Err(cx.unsupported(format!("{what} {} must be {dt}", o.ty)));
    }
    super::quant::const_ints(cx, o, what)
}

/// Emits the body of the node function for QGemm.
pub fn emit<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    node: &Node,
    ins: &[Operand<'_, 'ctx>],
    out: &Operand<'_, 'ctx>,
) -> CgResult<()> {
    expect_inputs(cx, ins, 3)?;
    let Op::QGemm {
        a_zero_point,
        epi,
        to,
    } = &node.op
    else {
        return Err(cx.unsupported("not a quantized gemm"));
    };
    let (a, b, bias) = (&ins[0], &ins[1], &ins[2]);
    let ra = need_int8(cx, a, "A")?;
    if a.rank() != 2 || b.rank() != 2 || a.shape()[1] != b.shape()[0] {
        return Err(cx.unsupported(format!("A {} and B {} must be [M,K] and [K,N]", a.ty, b.ty)));
    }
    let (m, k, n) = (a.shape()[0], a.shape()[1], b.shape()[1]);
    if out.shape() != [m, n] || out.dtype() != *to || bias.shape() != [n] {
        return Err(cx.unsupported(format!(
            "bias {} and output {} do not match [{m},{n}] of {to}",
            bias.ty, out.ty
        )));
    }
    let bv = const_of(cx, b, DType::I8, "B")?;
    let biasv = const_of(cx, bias, DType::I32, "bias")?;
    // B transposed: column j becomes the contiguous row bt[j*k..(j+1)*k].
    let mut bt = vec![0i64; k * n];
    for kk in 0..k {
        for j in 0..n {
            bt[j * k + kk] = bv[kk * n + j];
        }
    }
    let e = EpiEmit::new(cx, epi, *to, n)?;
    let facts = cx.target.for_weights(&bv, &b.ty);
    let plan = crate::mmm::qgemm::QGemmPlan::new(&facts, m, k, n);
    if let Some(p) = plan.filter(|_| cx.scratch.is_some()) {
        let shift = p.dot().act_shift(a.dtype());
        let folded = fold_bias(cx, &bt, &biasv, k, ra, *a_zero_point, shift)?;
        return crate::mmm::qgemm::emit(cx, &p, a, &bt, &folded, epi, out);
    }
    let shift = dot_shift(cx, a.dtype(), k as i64);
    let folded = fold_bias(cx, &bt, &biasv, k, ra, *a_zero_point, shift)?;
    let packed = pack_rows(cx, facts.stored_bits, a.dtype(), k as i64);
    let (bt_ptr, row_bytes) = if packed {
        (
            const_i8_table(cx, "qgemm.bt4", &packed_rows(&bt, k)),
            k.div_ceil(2) as i64,
        )
    } else {
        let bt8: Vec<i8> = bt.iter().map(|&v| v as i8).collect();
        (const_i8_table(cx, "qgemm.bt", &bt8), k as i64)
    };
    let bias_ptr = const_i32_table(cx, "qgemm.bias", &folded);
    let slots = cx.stack_array(DType::I32, DOT_BLOCK as u64)?;
    let (ki, ni) = (k as i64, n as i64);
    let full = (n / DOT_BLOCK * DOT_BLOCK) as i64;
    let (adt, odt) = (a.dtype(), *to);
    cx.for_range(0, m as i64, |cx, i| {
        let arow = Row {
            ptr: a.ptr,
            off: cx.mul_c(i, ki)?,
            dt: adt,
            packed: false,
        };
        let orow = cx.mul_c(i, ni)?;
        let block = |cx: &mut KernelCx<'_, 'ctx>, j0: IntValue<'ctx>, cols: usize| {
            let js: Vec<IntValue> = (0..cols)
                .map(|t| cx.add_c(j0, t as i64))
                .collect::<CgResult<_>>()?;
            let ws: Vec<Row> = js
                .iter()
                .map(|&j| {
                    Ok(Row {
                        ptr: bt_ptr,
                        off: cx.mul_c(j, row_bytes)?,
                        dt: DType::I8,
                        packed,
                    })
                })
                .collect::<CgResult<_>>()?;
            let init: Vec<IntValue> = js
                .iter()
                .map(|&j| Ok(cx.load(DType::I32, bias_ptr, j)?.into_int_value()))
                .collect::<CgResult<_>>()?;
            let accs = dot_rows(cx, arow, &ws, ki, &init, slots)?;
            for (&j, acc) in js.iter().zip(accs) {
                let p = e.params(cx, Chan::Dyn(j))?;
                let q = e.apply(cx, acc, &p)?;
                cx.store(odt, out.ptr, cx.add(orow, j)?, q.into())?;
            }
            Ok(())
        };
        cx.for_range_step(0, full, DOT_BLOCK as i64, |cx, j0| block(cx, j0, DOT_BLOCK))?;
        if n % DOT_BLOCK > 0 {
            block(cx, cx.i64(full), n % DOT_BLOCK)?;
        }
        Ok(())
    })
}
