//! Binary layers, counted with popcount: `SignMatMul` (`Sign(u) · w`) and
//! `SignConv` (`Conv(Sign(x), w)`), w ∈ {-1, +1}. One kernel does both: a
//! MatMul is a 1×1 convolution over its rows.
//!
//! **Signs as bits.** Per image, the input's signs are packed into the
//! node's scratch, per position two words per 32 or 64 channels (32 when
//! they fit one, so no half-empty word): `nz` (x ≠ 0) and `neg` (x < 0),
//! eight channels a step (one vector compare, its mask shifted into the
//! word, which is built in registers and stored once). The plane has a
//! zero border of the convolution's padding, so padding counts 0 with no
//! bounds test. Beside it, one i32 per position:
//! `-|nz|`, or 2^20 when a channel is NaN.
//!
//! **Counting.** The weights are bits too (`[tap][word][output channel]`,
//! bit set for +1: 32× smaller than f32). With `wp` a weight word, the
//! channels whose sign agrees with the weight are `m = (nz ∧ wp) ⊕ neg`, and
//!
//! ```text
//! Σ sign(x)·w = |m| - (|nz| - |m|) = 2·|m| - |nz|
//! ```
//!
//! (the XNOR-popcount identity of BNNs, extended to the zeros ONNX's Sign
//! gives). So each output is `2·Σ|m|` over the window's words plus the
//! window's sum of counts: one AND, one XOR and one population count per
//! word, tap and output channel, eight output channels a vector. The
//! population counts are taken per byte (`llvm.ctpop` on the words' bytes:
//! AVX2's nibble-table `vpshufb` sequence, AVX-512 `vpopcntb` where the CPU
//! has BITALG, NEON `cnt`, a bit-trick sequence on Cortex-M; LLVM picks
//! from the target's features) and summed as bytes (at most 8 a word, so
//! 31 words fit) over the window, or over runs of up to 31 words of a tap,
//! then widened to the lane counts once (`Flush`); with fewer than 4 words
//! to sum, each word's count is taken on its lanes directly (`vpopcntq` /
//! `vpopcntd` with VPOPCNTDQ). A window whose sum of counts reaches 2^19
//! holds a NaN and gives NaN, like the float product (at most 1024 taps of
//! 2^20 and `C·KH·KW ≤ 2^16`: no overflow). The bipolar form (QONNX) puts every
//! channel of a real position in `nz` and those not ≥ 0 (NaN too) in `neg`.

use super::expect_inputs;
use crate::cx::{CgResult, KernelCx, Operand};
use crate::mmm::dw::load;
use crate::mmm::qdw::{lane_mask, store_prefix, store_unaligned};
use crate::mmm::{for_blocks, Conv2d};
use inkwell::values::{IntValue, PointerValue, VectorValue};
use inkwell::{FloatPredicate, IntPredicate};
use qcc_ir::{ConvAttrs, DType, Node, Op};

/// Output channels one counting step produces (one vector of weight words:
/// one or two ymm on AVX2, one zmm on AVX-512).
const LANES: usize = 8;
/// Input channels one packing step reads.
const GROUP: usize = 8;
/// A position's count when one of its channels is NaN, and the window sum
/// from which on an output is NaN.
const NAN_MARK: i32 = 1 << 20;
const NAN_AT: i32 = 1 << 19;

/// A binary layer as a 2-D convolution over a grid of positions.
#[derive(Clone, Debug)]
struct Layer {
    batch: usize,
    /// Input channels, and the strides (in floats) of channel, row and
    /// column in the input, and of one image.
    c: usize,
    x_strides: [i64; 4],
    h: usize,
    w: usize,
    oc: usize,
    oh: usize,
    ow: usize,
    kh: usize,
    kw: usize,
    stride: (usize, usize),
    dil: (usize, usize),
    /// Leading padding (top, left) and the padded plane's extents.
    pad: (usize, usize),
    hp: usize,
    wp: usize,
    /// Output strides (in floats) of output channel, position `oy·OW + ox`
    /// and image.
    y_strides: [i64; 3],
    /// Bits per word and words per position.
    wbits: usize,
    words: usize,
}

impl Layer {
    fn new(g: Conv2d, (hp, wp): (usize, usize), x_strides: [i64; 4], y_strides: [i64; 3]) -> Layer {
        let wbits = if g.c <= 32 { 32 } else { 64 };
        Layer {
            batch: g.batch,
            c: g.c,
            x_strides,
            h: g.h,
            w: g.w,
            oc: g.oc,
            oh: g.oh,
            ow: g.ow,
            kh: g.kh,
            kw: g.kw,
            stride: g.stride,
            dil: g.dil,
            pad: g.pad,
            hp,
            wp,
            y_strides,
            wbits,
            words: g.c.div_ceil(wbits),
        }
    }

    /// A `SignConv` (2-D NCHW, one group).
    fn conv(a: &ConvAttrs, x: &[usize], wsh: &[usize], out: &[usize]) -> Option<Layer> {
        let g = Conv2d::of(a, x, wsh, out)?;
        if x.len() != 4 || a.group != 1 {
            return None;
        }
        let hp =
            (g.h + a.pads[0] + a.pads[2]).max((g.oh - 1) * g.stride.0 + (g.kh - 1) * g.dil.0 + 1);
        let wp =
            (g.w + a.pads[1] + a.pads[3]).max((g.ow - 1) * g.stride.1 + (g.kw - 1) * g.dil.1 + 1);
        let (hw, ohw) = ((g.h * g.w) as i64, (g.oh * g.ow) as i64);
        Some(Layer::new(
            g,
            (hp, wp),
            [hw, g.w as i64, 1, g.c as i64 * hw],
            [ohw, 1, g.oc as i64 * ohw],
        ))
    }

    /// A `SignMatMul` of u `[…, K]` by `[K, N]`: its rows as positions.
    fn matmul(u: &[usize], n: usize) -> Option<Layer> {
        let k = *u.last()?;
        let rows = u.iter().product::<usize>().checked_div(k)?;
        let g = Conv2d {
            batch: 1,
            c: k,
            oc: n,
            h: rows,
            w: 1,
            oh: rows,
            ow: 1,
            kh: 1,
            kw: 1,
            stride: (1, 1),
            dil: (1, 1),
            pad: (0, 0),
        };
        (rows > 0).then(|| Layer::new(g, (rows, 1), [1, k as i64, 0, 0], [1, n as i64, 0]))
    }

    fn wbytes(&self) -> usize {
        self.wbits / 8
    }

    /// Scratch bytes: the sign plane (two words per position) and the counts.
    fn scratch_bytes(&self) -> usize {
        self.hp * self.wp * (2 * self.words * self.wbytes() + 4)
    }
}

/// Workspace scratch a binary layer needs (bytes), for the memory plan.
pub fn scratch_bytes(op: &Op, x: &[usize], w: &[usize], out: &[usize]) -> usize {
    let layer = match op {
        Op::SignConv { conv, .. } => Layer::conv(conv, x, w, out),
        Op::SignMatMul { .. } => w.get(1).and_then(|&n| Layer::matmul(x, n)),
        _ => None,
    };
    layer.map_or(0, |l| l.scratch_bytes())
}

pub fn emit<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    node: &Node,
    ins: &[Operand<'_, 'ctx>],
    out: &Operand<'_, 'ctx>,
) -> CgResult<()> {
    expect_inputs(cx, ins, 2)?;
    let (x, w) = (&ins[0], &ins[1]);
    if x.dtype() != DType::F32 || out.dtype() != DType::F32 {
        return Err(cx.unsupported("binary layer on non-f32 values"));
    }
    let wv = w
        .konst
        .and_then(|t| t.as_f32())
        .filter(|v| v.iter().all(|&v| v == 1.0 || v == -1.0))
        .ok_or_else(|| cx.unsupported("weights must be constants of -1 and +1"))?;
    let (layer, bipolar, step) = match &node.op {
        Op::SignConv {
            conv,
            bipolar,
            step,
        } => (
            Layer::conv(conv, x.shape(), w.shape(), out.shape())
                .ok_or_else(|| cx.unsupported("a binary convolution must be 2-D, one group"))?,
            *bipolar,
            step,
        ),
        Op::SignMatMul { bipolar, step } => {
            let (k, n) = match (x.shape().last(), w.shape()) {
                (Some(&k), &[kw, n]) if k == kw => (k, n),
                _ => return Err(cx.unsupported("operands must be [..., K] and [K, N]")),
            };
            if k == 0 || k > qcc_ir::SIGN_MATMUL_MAX_K {
                return Err(cx.unsupported(format!("K = {k} past the verifier's bound")));
            }
            let l = Layer::matmul(x.shape(), n).ok_or_else(|| cx.unsupported("empty operand"))?;
            (l, *bipolar, step)
        }
        _ => return Err(cx.unsupported("not a binary layer")),
    };
    if layer.c * layer.kh * layer.kw > qcc_ir::SIGN_MATMUL_MAX_K
        || layer.kh * layer.kw > qcc_ir::SIGN_CONV_MAX_TAPS
    {
        return Err(cx.unsupported("window past the verifier's bounds"));
    }
    // +1 weights as bits, `[tap][word][output channel]`.
    let (c, taps, ocp) = (layer.c, layer.kh * layer.kw, layer.oc);
    let mut bits = vec![0u64; taps * layer.words * ocp];
    let conv = matches!(node.op, Op::SignConv { .. });
    for o in 0..layer.oc {
        for ci in 0..c {
            for t in 0..taps {
                let plus = if conv {
                    wv[(o * c + ci) * taps + t] > 0.0
                } else {
                    wv[ci * layer.oc + o] > 0.0
                };
                if plus {
                    bits[(t * layer.words + ci / layer.wbits) * ocp + o] |= 1 << (ci % layer.wbits);
                }
            }
        }
    }
    let bytes: Vec<u8> = if layer.wbits == 64 {
        bits.iter().flat_map(|v| v.to_le_bytes()).collect()
    } else {
        bits.iter()
            .flat_map(|&v| (v as u32).to_le_bytes())
            .collect()
    };
    let wt = super::conv::const_data(cx, "binary.w", &bytes);
    // Thresholds (BN + Sign folded): ±1 per channel and the two bounds,
    // padded to whole vectors of output channels.
    let step = match step {
        Some(st) => {
            st.check(layer.oc).map_err(|m| cx.unsupported(m))?;
            let pad = |mut v: Vec<i32>| {
                v.resize(layer.oc.next_multiple_of(LANES), 0);
                v
            };
            let table = |name: &str, v: Vec<i32>| super::quant::const_i32_table(cx, name, &pad(v));
            let flip = st.flip.iter().map(|&f| if f { -1 } else { 1 }).collect();
            Some([
                table("binary.flip", flip),
                table("binary.zero", st.zero.clone()),
                table("binary.pos", st.pos.clone()),
            ])
        }
        None => None,
    };
    Emit {
        l: &layer,
        bipolar,
        wt,
        ocp,
        step,
    }
    .run(cx, x.ptr, out.ptr)
}

/// How a block's counts are summed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flush {
    /// Bytes over the whole window, widened once (`4 ≤ KH·KW·words ≤ 31`).
    Window,
    /// Bytes over each run of up to 31 words of a tap (`words ≥ 4`).
    Chunk,
    /// Each word's count widened on its own (fewer words than pay for the
    /// widening).
    Direct,
}

/// The sum of each lane's bytes of `b` (a `<LANES·W/8 x i8>` of byte
/// counts) as a `vt` (`<LANES x iW>`): bytes to 16-bit pairs to 32-bit (to
/// 64-bit) by masks, shifts and adds, which every vector ISA has.
fn widen_bytes<'ctx>(
    cx: &KernelCx<'_, 'ctx>,
    b: VectorValue<'ctx>,
    vt: inkwell::types::VectorType<'ctx>,
) -> CgResult<VectorValue<'ctx>> {
    let et = vt.get_element_type().into_int_type();
    let bits = et.get_bit_width();
    let mut x = cx.b.build_bit_cast(b, vt, "")?.into_vector_value();
    let mut width = 8;
    while width < bits {
        let mut mask = 0u64;
        for i in (0..bits).step_by(2 * width as usize) {
            mask |= ((1u64 << width) - 1) << i;
        }
        let splat = |v: u64| cx.splat(et.const_int(v, false).into(), LANES as u32);
        let lo = cx.b.build_and(x, splat(mask)?, "")?;
        let hi = cx.b.build_right_shift(x, splat(width as u64)?, false, "")?;
        let hi = cx.b.build_and(hi, splat(mask)?, "")?;
        x = cx.b.build_int_add(lo, hi, "")?;
        width *= 2;
    }
    Ok(x)
}

struct Emit<'l, 'ctx> {
    l: &'l Layer,
    bipolar: bool,
    wt: PointerValue<'ctx>,
    ocp: usize,
    /// The threshold tables (`qcc_ir::SignStep`): ±1, zero, pos.
    step: Option<[PointerValue<'ctx>; 3]>,
}

impl<'ctx> Emit<'_, 'ctx> {
    /// The word type (i32 or i64) and its `DType`.
    fn word(&self, cx: &KernelCx<'_, 'ctx>) -> (DType, inkwell::types::IntType<'ctx>) {
        if self.l.wbits == 64 {
            (DType::I64, cx.i64_t())
        } else {
            (DType::I32, cx.i32_t())
        }
    }

    fn run(
        &self,
        cx: &mut KernelCx<'_, 'ctx>,
        x: PointerValue<'ctx>,
        y: PointerValue<'ctx>,
    ) -> CgResult<()> {
        let l = self.l;
        let s = cx
            .scratch
            .ok_or_else(|| cx.unsupported("no scratch for the sign planes"))?;
        let counts = cx.gep_bytes(s, (l.hp * l.wp * 2 * l.words * l.wbytes()) as i64)?;
        cx.for_range(0, l.batch as i64, |cx, n| {
            cx.memset(s, 8, 0, l.scratch_bytes() as u64)?;
            let xin = cx.gep(DType::F32, x, cx.mul_c(n, l.x_strides[3])?)?;
            self.pack(cx, xin, s, counts)?;
            let yimg = cx.gep(DType::F32, y, cx.mul_c(n, l.y_strides[2])?)?;
            self.count(cx, s, counts, yimg)
        })
    }

    /// Packs the signs of one image into the plane `s` and its counts.
    fn pack(
        &self,
        cx: &mut KernelCx<'_, 'ctx>,
        xin: PointerValue<'ctx>,
        s: PointerValue<'ctx>,
        counts: PointerValue<'ctx>,
    ) -> CgResult<()> {
        let l = self.l;
        let (wdt, wty) = self.word(cx);
        let i32t = cx.i32_t();
        let (cnt, nanf) = (
            cx.stack_array(DType::I32, 1)?,
            cx.stack_array(DType::I32, 1)?,
        );
        let zero = cx.i64(0);
        let [cs, rs, xs, _] = l.x_strides;
        cx.for_range(0, l.h as i64, |cx, iy| {
            cx.for_range(0, l.w as i64, |cx, ix| {
                let xb = cx.add(cx.mul_c(iy, rs)?, cx.mul_c(ix, xs)?)?;
                let row = cx.mul_c(cx.add_c(iy, l.pad.0 as i64)?, l.wp as i64)?;
                let p = cx.add(row, cx.add_c(ix, l.pad.1 as i64)?)?;
                let at = cx.mul_c(p, 2 * l.words as i64)?;
                cx.store(DType::I32, cnt, zero, i32t.const_zero().into())?;
                cx.store(DType::I32, nanf, zero, i32t.const_zero().into())?;
                // One word at a time, built in registers from its groups of
                // eight channels and stored once (not read, or-ed and
                // written back per group: a chain through memory).
                for_blocks(cx, l.c, l.wbits, |cx, wd, wlen| {
                    let ci0 = cx.mul_c(wd, l.wbits as i64)?;
                    let (mut nzw, mut negw) = (wty.const_zero(), wty.const_zero());
                    let mut nanw = cx.i8_t().const_zero();
                    for gi in 0..wlen.div_ceil(GROUP) {
                        let len = GROUP.min(wlen - gi * GROUP);
                        let c = cx.add_c(ci0, (gi * GROUP) as i64)?;
                        let v = self.load_group(cx, xin, cx.add(xb, cx.mul_c(c, cs)?)?, len)?;
                        let (nz, neg, nan) = self.masks(cx, v, len)?;
                        let sh = wty.const_int((gi * GROUP) as u64, false);
                        let place = |m: IntValue<'ctx>| -> CgResult<IntValue<'ctx>> {
                            let m = cx.b.build_int_z_extend(m, wty, "")?;
                            Ok(cx.b.build_left_shift(m, sh, "")?)
                        };
                        nzw = cx.b.build_or(nzw, place(nz)?, "")?;
                        negw = cx.b.build_or(negw, place(neg)?, "")?;
                        nanw = cx.b.build_or(nanw, nan, "")?;
                    }
                    for (off, m) in [(0, nzw), (l.words as i64, negw)] {
                        cx.store(wdt, s, cx.add(cx.add_c(at, off)?, wd)?, m.into())?;
                    }
                    let pc = cx
                        .call_intrinsic("llvm.ctpop", &[wty.into()], &[nzw.into()])?
                        .into_int_value();
                    let pc = cx.b.build_int_truncate_or_bit_cast(pc, i32t, "")?;
                    let old = cx.load(DType::I32, cnt, zero)?.into_int_value();
                    cx.store(
                        DType::I32,
                        cnt,
                        zero,
                        cx.b.build_int_add(old, pc, "")?.into(),
                    )?;
                    let any = cx.icmp(IntPredicate::NE, nanw, cx.i8_t().const_zero())?;
                    let any = cx.b.build_int_z_extend(any, i32t, "")?;
                    let old = cx.load(DType::I32, nanf, zero)?.into_int_value();
                    cx.store(DType::I32, nanf, zero, cx.b.build_or(old, any, "")?.into())
                })?;
                let cn = cx.load(DType::I32, cnt, zero)?.into_int_value();
                let is_nan = cx.load(DType::I32, nanf, zero)?.into_int_value();
                let is_nan = cx.icmp(IntPredicate::NE, is_nan, i32t.const_zero())?;
                let d = cx.select_i(is_nan, cx.i32(NAN_MARK), cx.b.build_int_neg(cn, "")?)?;
                cx.store(DType::I32, counts, p, d.into())
            })
        })
    }

    /// Channels `c0 .. c0 + len` (`len ≤ GROUP`, static) of one position
    /// as `<GROUP x f32>`, zeros past `len`; `at` is channel c0's index.
    fn load_group(
        &self,
        cx: &KernelCx<'_, 'ctx>,
        xin: PointerValue<'ctx>,
        at: IntValue<'ctx>,
        len: usize,
    ) -> CgResult<VectorValue<'ctx>> {
        let vt = cx.f32_t().vec_type(GROUP as u32);
        let cs = self.l.x_strides[0];
        if cs == 1 {
            let mask = (len < GROUP).then(|| lane_mask(cx, GROUP, len));
            return load(cx, vt, cx.gep(DType::F32, xin, at)?, mask);
        }
        let mut v = vt.const_zero();
        for lane in 0..len {
            let e = cx.load_f32(xin, cx.add_c(at, lane as i64 * cs)?)?;
            v = cx.b.build_insert_element(v, e, cx.i64(lane as i64), "")?;
        }
        Ok(v)
    }

    /// The `nz`, `neg` and NaN lanes of a group as bytes (lanes past `len`
    /// hold zeros: in no mask).
    fn masks(
        &self,
        cx: &KernelCx<'_, 'ctx>,
        v: VectorValue<'ctx>,
        len: usize,
    ) -> CgResult<(IntValue<'ctx>, IntValue<'ctx>, IntValue<'ctx>)> {
        let zero = cx.f32_t().vec_type(GROUP as u32).const_zero();
        let cmp = |p| cx.b.build_float_compare(p, v, zero, "");
        let byte = |m: VectorValue<'ctx>| -> CgResult<IntValue<'ctx>> {
            Ok(cx.b.build_bit_cast(m, cx.i8_t(), "")?.into_int_value())
        };
        let nan = byte(cx.b.build_float_compare(FloatPredicate::UNO, v, v, "")?)?;
        if self.bipolar {
            // Every real channel counts; those not ≥ 0 (NaN too) as -1.
            let valid = cx.i8_t().const_int((1u64 << len) - 1, false);
            let neg = byte(cmp(FloatPredicate::ULT)?)?;
            let neg = cx.b.build_and(neg, valid, "")?;
            Ok((valid, neg, cx.i8_t().const_zero()))
        } else {
            Ok((
                byte(cmp(FloatPredicate::ONE)?)?,
                byte(cmp(FloatPredicate::OLT)?)?,
                nan,
            ))
        }
    }

    /// `len` (static) weight words from `p` on as a vector, zeros past
    /// `len` (the table is not padded to whole vectors).
    fn weights(
        &self,
        cx: &KernelCx<'_, 'ctx>,
        p: PointerValue<'ctx>,
        len: usize,
    ) -> CgResult<VectorValue<'ctx>> {
        let vt = self.word(cx).1.vec_type(LANES as u32);
        let mask = (len < LANES).then(|| lane_mask(cx, LANES, len));
        load(cx, vt, p, mask)
    }

    /// Every output of one image from the plane `s` and its counts.
    fn count(
        &self,
        cx: &mut KernelCx<'_, 'ctx>,
        s: PointerValue<'ctx>,
        counts: PointerValue<'ctx>,
        yimg: PointerValue<'ctx>,
    ) -> CgResult<()> {
        let l = self.l;
        let (wdt, wty) = self.word(cx);
        let i32t = cx.i32_t();
        let vt = wty.vec_type(LANES as u32);
        let acc = cx.stack_array(wdt, LANES as u64)?;
        let dacc = cx.stack_array(DType::I32, 1)?;
        let zero = cx.i64(0);
        let load_v = |cx: &KernelCx<'_, 'ctx>, p| load(cx, vt, p, None);
        let store_v = |cx: &KernelCx<'_, 'ctx>, p, v| store_unaligned(cx, p, v);
        // Byte counts are summed as bytes (at most 8 a word, so 31 words
        // fit) and widened into `acc` once per window or run of words: one
        // reduction to 32/64-bit lanes where each word paid one before.
        let bt = cx.i8_t().vec_type((LANES * l.wbytes()) as u32);
        let bacc = cx.stack_array(DType::I8, (LANES * l.wbytes()) as u64)?;
        let taps = l.kh * l.kw;
        let flush = if (4..=31).contains(&(taps * l.words)) {
            Flush::Window
        } else if l.words >= 4 {
            Flush::Chunk
        } else {
            Flush::Direct
        };
        let load_b = |cx: &KernelCx<'_, 'ctx>, p| load(cx, bt, p, None);
        let store_b = |cx: &KernelCx<'_, 'ctx>, p, v| store_unaligned(cx, p, v);
        let flush_bytes = |cx: &mut KernelCx<'_, 'ctx>| -> CgResult<()> {
            let b = load_b(cx, bacc)?;
            let wide = widen_bytes(cx, b, vt)?;
            let a = load_v(cx, acc)?;
            store_v(cx, acc, cx.b.build_int_add(a, wide, "")?)?;
            store_b(cx, bacc, bt.const_zero())
        };
        let (tap_row, tap_col) = ((l.dil.0 * l.wp) as i64, l.dil.1 as i64);
        let [os, qs, _] = l.y_strides;
        cx.for_range(0, l.oh as i64, |cx, oy| {
            cx.for_range(0, l.ow as i64, |cx, ox| {
                let top = cx.mul_c(oy, (l.stride.0 * l.wp) as i64)?;
                let base = cx.add(top, cx.mul_c(ox, l.stride.1 as i64)?)?;
                // The window's sum of counts.
                cx.store(DType::I32, dacc, zero, i32t.const_zero().into())?;
                cx.for_range(0, l.kh as i64, |cx, ki| {
                    cx.for_range(0, l.kw as i64, |cx, kj| {
                        let at = cx.add(
                            base,
                            cx.add(cx.mul_c(ki, tap_row)?, cx.mul_c(kj, tap_col)?)?,
                        )?;
                        let d = cx.load(DType::I32, counts, at)?.into_int_value();
                        let old = cx.load(DType::I32, dacc, zero)?.into_int_value();
                        cx.store(
                            DType::I32,
                            dacc,
                            zero,
                            cx.b.build_int_add(old, d, "")?.into(),
                        )
                    })
                })?;
                let dsum = cx.load(DType::I32, dacc, zero)?.into_int_value();
                let q = cx.mul_c(cx.add(cx.mul_c(oy, l.ow as i64)?, ox)?, qs)?;
                for_blocks(cx, l.oc, LANES, |cx, blk, len| {
                    let o0 = cx.mul_c(blk, LANES as i64)?;
                    store_v(cx, acc, vt.const_zero())?;
                    store_b(cx, bacc, bt.const_zero())?;
                    cx.for_range(0, l.kh as i64, |cx, ki| {
                        cx.for_range(0, l.kw as i64, |cx, kj| {
                            let off = cx.add(cx.mul_c(ki, tap_row)?, cx.mul_c(kj, tap_col)?)?;
                            let pp = cx.mul_c(cx.add(base, off)?, 2 * l.words as i64)?;
                            let t = cx.add(cx.mul_c(ki, l.kw as i64)?, kj)?;
                            let wrow = cx.mul_c(t, (l.words * self.ocp) as i64)?;
                            let word = |cx: &mut KernelCx<'_, 'ctx>, wd: IntValue<'ctx>| {
                                let nz = cx.load(wdt, s, cx.add(pp, wd)?)?;
                                let neg =
                                    cx.load(wdt, s, cx.add(cx.add_c(pp, l.words as i64)?, wd)?)?;
                                let nz = cx.splat(nz, LANES as u32)?;
                                let neg = cx.splat(neg, LANES as u32)?;
                                let wi =
                                    cx.add(cx.add(wrow, cx.mul_c(wd, self.ocp as i64)?)?, o0)?;
                                let wv = self.weights(cx, cx.gep(wdt, self.wt, wi)?, len)?;
                                let m = cx.b.build_xor(cx.b.build_and(nz, wv, "")?, neg, "")?;
                                if flush == Flush::Direct {
                                    let pc = cx
                                        .call_intrinsic("llvm.ctpop", &[vt.into()], &[m.into()])?
                                        .into_vector_value();
                                    let a = load_v(cx, acc)?;
                                    return store_v(cx, acc, cx.b.build_int_add(a, pc, "")?);
                                }
                                // Population counts per byte, summed as bytes.
                                let mb = cx.b.build_bit_cast(m, bt, "")?.into_vector_value();
                                let pc = cx
                                    .call_intrinsic("llvm.ctpop", &[bt.into()], &[mb.into()])?
                                    .into_vector_value();
                                let a = load_b(cx, bacc)?;
                                store_b(cx, bacc, cx.b.build_int_add(a, pc, "")?)
                            };
                            if flush != Flush::Chunk {
                                return cx.for_range(0, l.words as i64, |cx, wd| word(cx, wd));
                            }
                            for_blocks(cx, l.words, 31, |cx, b, wl| {
                                let w0 = cx.mul_c(b, 31)?;
                                cx.for_range(0, wl as i64, |cx, i| {
                                    let wd = cx.add(w0, i)?;
                                    word(cx, wd)
                                })?;
                                flush_bytes(cx)
                            })
                        })
                    })?;
                    if flush == Flush::Window {
                        flush_bytes(cx)?;
                    }
                    // y = 2·Σ|m| + the counts, f32 from i32 (no i64 conversion:
                    // a libcall on 32-bit ARM).
                    let v8 = |t: inkwell::types::IntType<'ctx>| t.vec_type(LANES as u32);
                    let a = load_v(cx, acc)?;
                    let a = cx.b.build_int_truncate_or_bit_cast(a, v8(i32t), "")?;
                    let two = cx.splat(cx.i32(2).into(), LANES as u32)?;
                    let d = cx.splat(dsum.into(), LANES as u32)?;
                    let sum = cx.b.build_int_add(cx.b.build_int_mul(a, two, "")?, d, "")?;
                    let ft = cx.f32_t().vec_type(LANES as u32);
                    let mut yv = match self.step {
                        // Thresholds: m = ±count, then +1 / 0 / -1.
                        Some([fl, zt, pt]) => {
                            let vi = v8(i32t);
                            let at = |t| cx.gep(DType::I32, t, o0);
                            let m = cx.b.build_int_mul(sum, load(cx, vi, at(fl)?, None)?, "")?;
                            let ge = |t| -> CgResult<VectorValue<'ctx>> {
                                let b = load(cx, vi, at(t)?, None)?;
                                Ok(cx.b.build_int_compare(IntPredicate::SGE, m, b, "")?)
                            };
                            let c = |v: f32| cx.splat(cx.f32(v).into(), LANES as u32);
                            let low = cx.b.build_select(ge(zt)?, c(0.0)?, c(-1.0)?, "")?;
                            cx.b.build_select(ge(pt)?, c(1.0)?, low.into_vector_value(), "")?
                                .into_vector_value()
                        }
                        None => cx.b.build_signed_int_to_float(sum, ft, "")?,
                    };
                    if !self.bipolar {
                        let nan = cx.icmp(IntPredicate::SGE, dsum, cx.i32(NAN_AT))?;
                        let nans = cx.splat(cx.f32(f32::NAN).into(), LANES as u32)?;
                        yv = cx.b.build_select(nan, nans, yv, "")?.into_vector_value();
                    }
                    let first = cx.add(q, cx.mul_c(o0, os)?)?;
                    if os == 1 {
                        return store_prefix(cx, cx.gep(DType::F32, yimg, first)?, yv, len);
                    }
                    for lane in 0..len {
                        let e =
                            cx.b.build_extract_element(yv, cx.i64(lane as i64), "")?
                                .into_float_value();
                        cx.store_f32(yimg, cx.add_c(first, lane as i64 * os)?, e)?;
                    }
                    Ok(())
                })
            })
        })
    }
}
