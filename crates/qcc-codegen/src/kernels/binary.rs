//! Binary layers: `SignMatMul`, `Sign(u) · w` with w ∈ {-1, +1}, counted
//! with popcount.
//!
//! The weights are stored as bits, one 64-bit word per 64 rows of K and
//! output column (`wb[n][K/64]`, bit set for +1): 32× smaller than f32. Per
//! row of u the kernel builds two masks, `pos` (u > 0) and `neg` (u < 0);
//! zeros are in neither. With `P = |pos|`, `Q = |neg|` and `wp` the +1 bits
//! of a column,
//!
//! ```text
//! Σ_k sign(u_k)·w_k = (|pos ∧ wp| - |pos ∧ ¬wp|) - (|neg ∧ wp| - |neg ∧ ¬wp|)
//!                   = 2·|pos ∧ wp| - P - 2·|neg ∧ wp| + Q
//! ```
//!
//! (the XNOR-popcount identity of BNNs, extended to the zeros ONNX's Sign
//! gives). Bits past K are 0 in both masks. `llvm.ctpop` lowers to each
//! target's population count (`popcnt`, NEON `cnt`, a bit-trick sequence on
//! Cortex-M). A row holding NaN gives NaN, like the float product. The
//! bipolar form (QONNX) puts u ≥ 0 in `pos` and everything else (NaN too)
//! in `neg`.

use super::expect_inputs;
use crate::cx::{CgResult, KernelCx, Operand};
use inkwell::values::{BasicValue, PointerValue, VectorValue};
use inkwell::{FloatPredicate, IntPredicate};
use qcc_ir::{DType, Node, Op};

pub fn emit<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    node: &Node,
    ins: &[Operand<'_, 'ctx>],
    out: &Operand<'_, 'ctx>,
) -> CgResult<()> {
    expect_inputs(cx, ins, 2)?;
    let Op::SignMatMul { bipolar } = node.op else {
        return Err(cx.unsupported("not a sign_matmul"));
    };
    // Bipolar: u ≥ 0 counts +1, anything else (NaN too) -1.
    let (ppos, pneg) = if bipolar {
        (FloatPredicate::OGE, FloatPredicate::ULT)
    } else {
        (FloatPredicate::OGT, FloatPredicate::OLT)
    };
    let (u, w) = (&ins[0], &ins[1]);
    let (k, n) = match (u.shape().last(), w.shape()) {
        (Some(&k), &[kw, n]) if k == kw => (k, n),
        _ => return Err(cx.unsupported("operands must be [..., K] and [K, N]")),
    };
    if u.dtype() != DType::F32 || out.dtype() != DType::F32 {
        return Err(cx.unsupported("binary layer on non-f32 values"));
    }
    if k == 0 || k > qcc_ir::SIGN_MATMUL_MAX_K {
        return Err(cx.unsupported(format!("K = {k} past the verifier's bound")));
    }
    let wv = w
        .konst
        .and_then(|t| t.as_f32())
        .ok_or_else(|| cx.unsupported("weights computed at run time"))?;
    if wv.iter().any(|&v| v != 1.0 && v != -1.0) {
        return Err(cx.unsupported("weights other than -1 and +1"));
    }
    let words = k.div_ceil(64);
    let mut bits = vec![0u64; n * words];
    for kk in 0..k {
        for j in 0..n {
            if wv[kk * n + j] > 0.0 {
                bits[j * words + kk / 64] |= 1 << (kk % 64);
            }
        }
    }
    let bytes: Vec<u8> = bits.iter().flat_map(|v| v.to_le_bytes()).collect();
    let wb = super::conv::const_data(cx, "binary.w", &bytes);
    let rows = u.ty.numel() / k;
    let pos = cx.stack_array(DType::I64, words as u64)?;
    let neg = cx.stack_array(DType::I64, words as u64)?;
    // [P, Q, any NaN, |pos ∧ wp|, |neg ∧ wp|], i32: every count is at most
    // K, so the sum converts to f32 inline everywhere (an i64 conversion is
    // a libcall on 32-bit ARM).
    let acc = cx.stack_array(DType::I32, 5)?;
    let i32t = cx.i32_t();
    let zero32 = i32t.const_zero();
    let i64t = cx.i64_t();
    let zero = cx.i64(0);
    let popcount = |cx: &KernelCx<'_, 'ctx>, v: inkwell::values::IntValue<'ctx>| {
        let c = cx
            .call_intrinsic("llvm.ctpop", &[i64t.into()], &[v.into()])?
            .into_int_value();
        Ok::<_, crate::CodegenError>(cx.b.build_int_truncate(c, i32t, "")?)
    };
    cx.for_range(0, rows as i64, |cx, r| {
        cx.for_range(0, words as i64, |cx, wd| {
            cx.store(DType::I64, pos, wd, zero.into())?;
            cx.store(DType::I64, neg, wd, zero.into())
        })?;
        cx.store(DType::I32, acc, cx.i64(2), zero32.into())?;
        let base = cx.mul_c(r, k as i64)?;
        cx.for_range(0, k as i64, |cx, kk| {
            let x = cx.load_f32(u.ptr, cx.add(base, kk)?)?;
            let zf = cx.f32(0.0);
            let wd = cx.b.build_right_shift(kk, cx.i64(6), false, "")?;
            let bit =
                cx.b.build_left_shift(cx.i64(1), cx.b.build_and(kk, cx.i64(63), "")?, "")?;
            for (mask, pred) in [(pos, ppos), (neg, pneg)] {
                let on = cx.fcmp(pred, x, zf)?;
                let b = cx.b.build_select(on, bit, zero, "")?.into_int_value();
                let m = cx.load(DType::I64, mask, wd)?.into_int_value();
                cx.store(DType::I64, mask, wd, cx.b.build_or(m, b, "")?.into())?;
            }
            let nan = cx.fcmp(FloatPredicate::UNO, x, x)?;
            let nan = cx.b.build_int_z_extend(nan, i32t, "")?;
            let f = cx.load(DType::I32, acc, cx.i64(2))?.into_int_value();
            let f = cx.b.build_or(f, nan, "")?;
            cx.store(DType::I32, acc, cx.i64(2), f.into())
        })?;
        cx.store(DType::I32, acc, cx.i64(0), zero32.into())?;
        cx.store(DType::I32, acc, cx.i64(1), zero32.into())?;
        cx.for_range(0, words as i64, |cx, wd| {
            for (slot, mask) in [(0, pos), (1, neg)] {
                let m = cx.load(DType::I64, mask, wd)?.into_int_value();
                let c = cx.load(DType::I32, acc, cx.i64(slot))?.into_int_value();
                let c = cx.add(c, popcount(cx, m)?)?;
                cx.store(DType::I32, acc, cx.i64(slot), c.into())?;
            }
            Ok(())
        })?;
        let orow = cx.mul_c(r, n as i64)?;
        cx.for_range(0, n as i64, |cx, j| {
            cx.store(DType::I32, acc, cx.i64(3), zero32.into())?;
            cx.store(DType::I32, acc, cx.i64(4), zero32.into())?;
            let col = cx.mul_c(j, words as i64)?;
            cx.for_range(0, words as i64, |cx, wd| {
                let wp = cx.load(DType::I64, wb, cx.add(col, wd)?)?.into_int_value();
                for (slot, mask) in [(3, pos), (4, neg)] {
                    let m = cx.load(DType::I64, mask, wd)?.into_int_value();
                    let hit = popcount(cx, cx.b.build_and(m, wp, "")?)?;
                    let c = cx.load(DType::I32, acc, cx.i64(slot))?.into_int_value();
                    cx.store(DType::I32, acc, cx.i64(slot), cx.add(c, hit)?.into())?;
                }
                Ok(())
            })?;
            let get = |cx: &KernelCx<'_, 'ctx>, s: i64| {
                Ok::<_, crate::CodegenError>(cx.load(DType::I32, acc, cx.i64(s))?.into_int_value())
            };
            let (p, q, a, b) = (get(cx, 0)?, get(cx, 1)?, get(cx, 3)?, get(cx, 4)?);
            let sum = cx.sub(cx.add(cx.sub(cx.mul_c(a, 2)?, p)?, q)?, cx.mul_c(b, 2)?)?;
            let y = cx.b.build_signed_int_to_float(sum, cx.f32_t(), "")?;
            let y = if bipolar {
                y
            } else {
                let nan = cx.icmp(IntPredicate::NE, get(cx, 2)?, zero32)?;
                cx.select_f(nan, cx.f32(f32::NAN), y)?
            };
            cx.store_f32(out.ptr, cx.add(orow, j)?, y)
        })
    })
}

/// Output channels one step of the binary convolution counts at once (one
/// vector of 64-bit weight words: two ymm on AVX2, one zmm on AVX-512).
const CONV_LANES: usize = 8;

/// Added to a position's count for each NaN channel (non-bipolar): any NaN
/// in a window lifts its sum of counts past [`CONV_NAN_AT`], real counts
/// stay at or below 0 (`C·KH·KW ≤ 2^16`, at most 1024 taps: no overflow).
const CONV_NAN: i32 = 1 << 20;
const CONV_NAN_AT: i32 = 1 << 19;

/// The binary convolution's geometry: `(conv, words per position, padded
/// extents hp × wp)`.
fn sign_conv_geometry(
    a: &qcc_ir::ConvAttrs,
    x: &[usize],
    wsh: &[usize],
    out: &[usize],
) -> Option<(crate::mmm::Conv2d, usize, usize, usize)> {
    let g = crate::mmm::Conv2d::of(a, x, wsh, out)?;
    if x.len() != 4 {
        return None;
    }
    let n = a.pads.len() / 2;
    let hp = (g.h + a.pads[0] + a.pads[n]).max((g.oh - 1) * g.stride.0 + (g.kh - 1) * g.dil.0 + 1);
    let wp =
        (g.w + a.pads[1] + a.pads[1 + n]).max((g.ow - 1) * g.stride.1 + (g.kw - 1) * g.dil.1 + 1);
    Some((g, g.c.div_ceil(64), hp, wp))
}

/// Workspace scratch a `SignConv` needs (bytes): the zero-bordered sign
/// planes of one image, two words per 64 channels and position, and one
/// i32 count per position.
pub fn sign_conv_scratch(
    a: &qcc_ir::ConvAttrs,
    x: &[usize],
    wsh: &[usize],
    out: &[usize],
) -> usize {
    sign_conv_geometry(a, x, wsh, out).map_or(0, |(_, words, hp, wp)| hp * wp * (16 * words + 4))
}

/// `SignConv`: per image, the input's signs are packed into the node's
/// scratch as bits over channels, per position `nz` (x ≠ 0: x > 0 or
/// x < 0) and `neg` (x < 0), 64 channels a word, in a plane with a zero
/// border of the padding (pads then count 0, with no bounds test), and one
/// count per position, `-|nz|` (+ 2^20 per NaN channel). With `wp` the +1
/// bits of a weight, the agreeing channels are `m = (nz ∧ wp) ⊕ neg` and
///
/// ```text
/// Σ sign(x)·w = |m| - (|nz| - |m|) = 2·|m| - |nz|
/// ```
///
/// so each output is `2·Σ|m|` over the window's words plus the window's sum
/// of counts: one AND, one XOR and one population count per 64 channels,
/// tap and output channel, `CONV_LANES` output channels a vector
/// (`llvm.ctpop` on `<8 x i64>`: AVX2's nibble-table `vpshufb` sequence,
/// AVX-512 `vpopcntq` where the CPU has VPOPCNTDQ, NEON `cnt`, a bit-trick
/// sequence on Cortex-M). A sum at or past 2^19 is a window holding a NaN.
/// The bipolar form puts every real position's channels in `nz` and the
/// ones not ≥ 0 (NaN too) in `neg`.
pub fn emit_conv<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    node: &Node,
    ins: &[Operand<'_, 'ctx>],
    out: &Operand<'_, 'ctx>,
) -> CgResult<()> {
    expect_inputs(cx, ins, 2)?;
    let Op::SignConv { conv, bipolar } = &node.op else {
        return Err(cx.unsupported("not a sign_conv"));
    };
    let bipolar = *bipolar;
    let (x, w) = (&ins[0], &ins[1]);
    let (geo, words, hp, wp) = sign_conv_geometry(conv, x.shape(), w.shape(), out.shape())
        .filter(|_| conv.group == 1)
        .ok_or_else(|| cx.unsupported("a binary convolution must be 2-D with one group"))?;
    if x.dtype() != DType::F32 || out.dtype() != DType::F32 {
        return Err(cx.unsupported("binary convolution on non-f32 values"));
    }
    let wv = w
        .konst
        .and_then(|t| t.as_f32())
        .filter(|v| v.iter().all(|&v| v == 1.0 || v == -1.0))
        .ok_or_else(|| cx.unsupported("weights must be constants of -1 and +1"))?;
    let s = cx
        .scratch
        .ok_or_else(|| cx.unsupported("no scratch for the sign planes"))?;
    let (c, oc, h, wd_) = (geo.c, geo.oc, geo.h, geo.w);
    let (kw, taps) = (geo.kw, geo.kh * geo.kw);
    // Weight bits `[tap][word][oc]` (oc padded to the vector), +1 set.
    let ocp = oc.next_multiple_of(CONV_LANES);
    let mut bits = vec![0i64; taps * words * ocp];
    for o in 0..oc {
        for ci in 0..c {
            for t in 0..taps {
                if wv[(o * c + ci) * taps + t] > 0.0 {
                    bits[(t * words + ci / 64) * ocp + o] |= 1 << (ci % 64);
                }
            }
        }
    }
    let wt = super::conv::const_i64_table(cx, "binary.cw", &bits);
    let plane = hp * wp;
    let counts = cx.gep_bytes(s, (plane * 16 * words) as i64)?;
    let (i32t, i64t) = (cx.i32_t(), cx.i64_t());
    let vt = i64t.vec_type(CONV_LANES as u32);
    let acc = cx.stack_array(DType::I64, CONV_LANES as u64)?;
    let (ohw, hw) = ((geo.oh * geo.ow) as i64, (h * wd_) as i64);
    let (pt, pl) = geo.pad;
    let load_v = |cx: &KernelCx<'_, 'ctx>, p: PointerValue<'ctx>| -> CgResult<VectorValue<'ctx>> {
        let v = cx.b.build_load(vt, p, "")?;
        if let Some(i) = v.as_instruction_value() {
            i.set_alignment(8)
                .map_err(|e| crate::CodegenError::Llvm(e.to_string()))?;
        }
        Ok(v.into_vector_value())
    };
    let store_v = |cx: &KernelCx<'_, 'ctx>, p: PointerValue<'ctx>, v: VectorValue<'ctx>| {
        let st = cx.b.build_store(p, v)?;
        st.set_alignment(8)
            .map_err(|e| crate::CodegenError::Llvm(e.to_string()))
    };
    cx.for_range(0, geo.batch as i64, |cx, n| {
        cx.memset(
            s,
            8,
            0,
            sign_conv_scratch(conv, x.shape(), w.shape(), out.shape()) as u64,
        )?;
        // Pack: channel-major reads of the input, bits set in the plane.
        let xin = cx.gep(DType::F32, x.ptr, cx.mul_c(n, (c * h * wd_) as i64)?)?;
        cx.for_range(0, c as i64, |cx, ci| {
            let word = cx.b.build_right_shift(ci, cx.i64(6), false, "")?;
            let bit =
                cx.b.build_left_shift(cx.i64(1), cx.b.build_and(ci, cx.i64(63), "")?, "")?;
            let xc = cx.gep(DType::F32, xin, cx.mul_c(ci, hw)?)?;
            cx.for_range(0, h as i64, |cx, ih| {
                let prow = cx.mul_c(cx.add_c(ih, pt as i64)?, wp as i64)?;
                cx.for_range(0, wd_ as i64, |cx, iw| {
                    let v = cx.load_f32(xc, cx.add(cx.mul_c(ih, wd_ as i64)?, iw)?)?;
                    let zf = cx.f32(0.0);
                    let (nz, neg) = if bipolar {
                        (cx.bool(true), cx.fcmp(FloatPredicate::ULT, v, zf)?)
                    } else {
                        (
                            cx.fcmp(FloatPredicate::ONE, v, zf)?,
                            cx.fcmp(FloatPredicate::OLT, v, zf)?,
                        )
                    };
                    let p = cx.add(prow, cx.add_c(iw, pl as i64)?)?;
                    let at = cx.add(cx.mul_c(p, 2 * words as i64)?, word)?;
                    for (off, on) in [(0, nz), (words as i64, neg)] {
                        let i = cx.add_c(at, off)?;
                        let m = cx.load(DType::I64, s, i)?.into_int_value();
                        let b = cx.b.build_select(on, bit, cx.i64(0), "")?.into_int_value();
                        cx.store(DType::I64, s, i, cx.b.build_or(m, b, "")?.into())?;
                    }
                    // The count: -1 per nonzero channel, +2^20 per NaN.
                    let mut d = cx.b.build_int_z_extend(nz, i32t, "")?;
                    d = cx.b.build_int_neg(d, "")?;
                    if !bipolar {
                        let nan = cx.fcmp(FloatPredicate::UNO, v, v)?;
                        let nan = cx.b.build_select(nan, cx.i32(CONV_NAN), cx.i32(0), "")?;
                        d = cx.b.build_int_add(d, nan.into_int_value(), "")?;
                    }
                    let old = cx.load(DType::I32, counts, p)?.into_int_value();
                    cx.store(
                        DType::I32,
                        counts,
                        p,
                        cx.b.build_int_add(old, d, "")?.into(),
                    )
                })
            })
        })?;
        let yimg = cx.gep(DType::F32, out.ptr, cx.mul_c(n, oc as i64 * ohw)?)?;
        cx.for_range(0, geo.oh as i64, |cx, oy| {
            cx.for_range(0, geo.ow as i64, |cx, ox| {
                let top = cx.mul_c(oy, (geo.stride.0 * wp) as i64)?;
                let base = cx.add(top, cx.mul_c(ox, geo.stride.1 as i64)?)?;
                let tap_at = |cx: &KernelCx<'_, 'ctx>, t: usize| {
                    let (ki, kj) = (t / kw, t % kw);
                    cx.add_c(base, (ki * geo.dil.0 * wp + kj * geo.dil.1) as i64)
                };
                // The window's sum of counts (static taps).
                let mut dsum = cx.i32(0);
                for t in 0..taps {
                    let d = cx
                        .load(DType::I32, counts, tap_at(cx, t)?)?
                        .into_int_value();
                    dsum = cx.b.build_int_add(dsum, d, "")?;
                }
                let dsum = dsum;
                let pos = cx.add(cx.mul_c(oy, geo.ow as i64)?, ox)?;
                crate::mmm::for_blocks(cx, oc, CONV_LANES, |cx, blk, len| {
                    let o0 = cx.mul_c(blk, CONV_LANES as i64)?;
                    store_v(cx, acc, vt.const_zero())?;
                    cx.for_range(0, taps as i64, |cx, t| {
                        let (ki, kj) = (
                            cx.b.build_int_signed_div(t, cx.i64(kw as i64), "")?,
                            cx.b.build_int_signed_rem(t, cx.i64(kw as i64), "")?,
                        );
                        let off = cx.add(
                            cx.mul_c(ki, (geo.dil.0 * wp) as i64)?,
                            cx.mul_c(kj, geo.dil.1 as i64)?,
                        )?;
                        let p = cx.mul_c(cx.add(base, off)?, 2 * words as i64)?;
                        let wrow = cx.mul_c(t, (words * ocp) as i64)?;
                        cx.for_range(0, words as i64, |cx, wd| {
                            let nz = cx.load(DType::I64, s, cx.add(p, wd)?)?;
                            let neg =
                                cx.load(DType::I64, s, cx.add(cx.add_c(p, words as i64)?, wd)?)?;
                            let (nz, neg) = (
                                cx.splat(nz, CONV_LANES as u32)?,
                                cx.splat(neg, CONV_LANES as u32)?,
                            );
                            let wi = cx.add(cx.add(wrow, cx.mul_c(wd, ocp as i64)?)?, o0)?;
                            let wv = load_v(cx, cx.gep(DType::I64, wt, wi)?)?;
                            let m = cx.b.build_xor(cx.b.build_and(nz, wv, "")?, neg, "")?;
                            let pc = cx
                                .call_intrinsic("llvm.ctpop", &[vt.into()], &[m.into()])?
                                .into_vector_value();
                            let a = load_v(cx, acc)?;
                            store_v(cx, acc, cx.b.build_int_add(a, pc, "")?)
                        })
                    })?;
                    // y = 2·Σ|m| + counts, f32 (i32 sums: no i64 conversion).
                    let a = load_v(cx, acc)?;
                    let a =
                        cx.b.build_int_truncate(a, i32t.vec_type(CONV_LANES as u32), "")?;
                    let d = cx.splat(dsum.into(), CONV_LANES as u32)?;
                    let two = cx.splat(cx.i32(2).into(), CONV_LANES as u32)?;
                    let sum = cx.b.build_int_add(cx.b.build_int_mul(a, two, "")?, d, "")?;
                    let y = cx.b.build_signed_int_to_float(
                        sum,
                        cx.f32_t().vec_type(CONV_LANES as u32),
                        "",
                    )?;
                    let nan = if bipolar {
                        None
                    } else {
                        Some(cx.icmp(IntPredicate::SGE, dsum, cx.i32(CONV_NAN_AT))?)
                    };
                    for l in 0..len {
                        let v =
                            cx.b.build_extract_element(y, cx.i64(l as i64), "")?
                                .into_float_value();
                        let v = match nan {
                            Some(is) => cx.select_f(is, cx.f32(f32::NAN), v)?,
                            None => v,
                        };
                        let o = cx.add_c(o0, l as i64)?;
                        cx.store_f32(yimg, cx.add(cx.mul_c(o, ohw)?, pos)?, v)?;
                    }
                    Ok(())
                })
            })
        })
    })
}
