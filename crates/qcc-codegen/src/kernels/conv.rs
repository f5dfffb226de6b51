//! Conv and ConvTranspose (N-d, groups, strides, dilations, pads, bias,
//! output_padding) as a direct, im2col-free convolution, plus the window and
//! register-tile helpers that pooling and matmul share.
//!
//! Both ops relate a "source" position `o` that the loops walk to a
//! "destination" position `o * stride + k * dilation - pad_begin` per tap `k`
//! (`Window`): Conv walks output positions and reads the input there;
//! ConvTranspose walks input positions and adds into the output there.
//! Shapes are static, so the taps that stay inside are computed in Rust and
//! become loop bounds (constants, or small constant tables indexed by the
//! position, `Walk`): no padding test runs inside any loop.
//!
//! Conv, per output row: the interior (where every tap is inside) is
//! computed in register tiles of `OC_BLOCK` output channels × 16 positions
//! (`VecTile`, explicit `<8 x float>` accumulators) over all input
//! channels and taps; the borders accumulate in the output row (in L1), the
//! innermost loop contiguous along it, one input load feeding a block of
//! output channels. ConvTranspose initializes the output planes, computes
//! the interior of each output phase (`o mod stride` along the last dim) in
//! register tiles by gathering its taps (`TGather`), and scatters every
//! input row through every tap into the remaining outputs. A 1×1 unit-stride
//! unpadded window runs as one long row (a GEMM per group).

use super::expect_inputs;
use crate::cx::{CgResult, KernelCx, Operand};
use inkwell::module::Linkage;
use inkwell::types::VectorType;
use inkwell::values::{
    BasicValue, BasicValueEnum, FloatValue, IntValue, PointerValue, VectorValue,
};
use qcc_ir::{strides_of, ConvAttrs, DType, Node, Op};

/// Output channels updated together by the innermost loop (one input load
/// feeds this many multiply-adds).
const OC_BLOCK: usize = 4;

/// Vectors per register-tile row, and the tile width in elements.
const TILE_NV: usize = 2;
const TILE_W: i64 = (TILE_NV * VF) as i64;
/// Largest stride along the last dim that register tiles handle (strided
/// lanes are gathered by a shuffle of the span they cover).
const MAX_TILE_STRIDE: i64 = 4;

/// Kernel extents up to this size along the last spatial dim are unrolled in
/// Rust, so every innermost loop gets static bounds.
const UNROLL_LAST_TAPS: usize = 8;

/// Indices `t` in `[0, n)` with `0 <= base + t * step < limit` (`step > 0`),
/// as a half-open range (`(0, 0)` when empty).
pub(crate) fn valid_range(base: i64, step: i64, n: i64, limit: i64) -> (i64, i64) {
    let ceil_div = |a: i64, b: i64| -((-a).div_euclid(b));
    let lo = ceil_div(-base, step).max(0);
    let hi = ((limit - 1 - base).div_euclid(step) + 1).min(n);
    if hi <= lo {
        (0, 0)
    } else {
        (lo, hi)
    }
}

/// A window sliding over the spatial dims: source position `o` and tap `k`
/// meet destination position `o * strides + k * dilations - pads`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Window {
    /// Extents the loops walk.
    pub src: Vec<usize>,
    /// Extents of the side that taps land in (positions outside are skipped).
    pub dst: Vec<usize>,
    pub kernel: Vec<usize>,
    pub strides: Vec<usize>,
    pub dilations: Vec<usize>,
    /// Begin pads only (the end pads only shape the extents).
    pub pads: Vec<usize>,
}

impl Window {
    pub fn rank(&self) -> usize {
        self.src.len()
    }

    /// Checks that every per-dim list has one entry per spatial dim and that
    /// strides and dilations are positive.
    pub fn validate(&self) -> Result<(), String> {
        let r = self.src.len();
        if r == 0 {
            return Err("no spatial dims".into());
        }
        let lens = [
            self.dst.len(),
            self.kernel.len(),
            self.strides.len(),
            self.dilations.len(),
            self.pads.len(),
        ];
        if lens.iter().any(|&l| l != r) {
            return Err(format!(
                "window attributes do not match {r} spatial dims: {self:?}"
            ));
        }
        if self.strides.contains(&0) || self.dilations.contains(&0) {
            return Err("strides and dilations must be positive".into());
        }
        Ok(())
    }

    /// Taps `k` of dim `d` that land inside the destination from source position `o`.
    pub fn taps_at(&self, d: usize, o: usize) -> (i64, i64) {
        valid_range(
            o as i64 * self.strides[d] as i64 - self.pads[d] as i64,
            self.dilations[d] as i64,
            self.kernel[d] as i64,
            self.dst[d] as i64,
        )
    }

    /// Source positions of dim `d` from which tap `k` lands inside the destination.
    pub fn srcs_for(&self, d: usize, k: usize) -> (i64, i64) {
        valid_range(
            k as i64 * self.dilations[d] as i64 - self.pads[d] as i64,
            self.strides[d] as i64,
            self.src[d] as i64,
            self.dst[d] as i64,
        )
    }
}

/// Bounds of a loop, known at compile time or loaded at run time.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Bounds<'ctx> {
    Static(i64, i64),
    Dyn(IntValue<'ctx>, IntValue<'ctx>),
}

/// `for i in bounds { body(i) }`.
pub(crate) fn for_bounds<'a, 'ctx, F>(
    cx: &mut KernelCx<'a, 'ctx>,
    b: Bounds<'ctx>,
    body: F,
) -> CgResult<()>
where
    F: FnOnce(&mut KernelCx<'a, 'ctx>, IntValue<'ctx>) -> CgResult<()>,
{
    match b {
        Bounds::Static(lo, hi) => cx.for_range(lo, hi, body),
        Bounds::Dyn(lo, hi) => cx.for_range_dyn(lo, hi, body),
    }
}

/// A private, unnamed-address, 64-byte-aligned constant global initialized with `init`.
pub(crate) fn private_constant<'ctx>(
    cx: &KernelCx<'_, 'ctx>,
    name: &str,
    init: &dyn inkwell::values::BasicValue<'ctx>,
) -> PointerValue<'ctx> {
    let v = init.as_basic_value_enum();
    let gv = cx.module.add_global(v.get_type(), None, name);
    gv.set_initializer(&v);
    gv.set_constant(true);
    gv.set_linkage(Linkage::Private);
    gv.set_unnamed_addr(true);
    gv.set_alignment(64);
    gv.as_pointer_value()
}

/// A private constant global holding `bytes` (64-byte aligned). Tables of
/// wider elements are stored as their little-endian bytes (every target is
/// little-endian, like the weights in `lower.rs`): one LLVM constant data
/// array, not one constant per element, which keeps large packed weights
/// cheap to build and to compile.
pub(crate) fn const_data<'ctx>(
    cx: &KernelCx<'_, 'ctx>,
    name: &str,
    bytes: &[u8],
) -> PointerValue<'ctx> {
    private_constant(cx, name, &cx.ctx.const_string(bytes, false))
}

/// A private constant global holding `vals` as `i64`s.
pub(crate) fn const_i64_table<'ctx>(
    cx: &KernelCx<'_, 'ctx>,
    name: &str,
    vals: &[i64],
) -> PointerValue<'ctx> {
    let bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
    const_data(cx, name, &bytes)
}

/// A private constant global holding `vals` as `f32`s.
pub(crate) fn const_f32_table<'ctx>(
    cx: &KernelCx<'_, 'ctx>,
    name: &str,
    vals: &[f32],
) -> PointerValue<'ctx> {
    let bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
    const_data(cx, name, &bytes)
}

/// Tap range of one leading dim per source position.
enum LeadTaps<'ctx> {
    /// Every position sees every tap.
    Full(i64),
    /// `lo[o]`, `hi[o]` tables.
    Tables(PointerValue<'ctx>, PointerValue<'ctx>),
}

/// Source range of the last dim per tap.
enum LastTaps<'ctx> {
    /// Unrolled in Rust: `(lo, hi)` per tap.
    Unrolled(Vec<(i64, i64)>),
    /// A loop over taps reading `lo[k]`, `hi[k]` tables.
    Tables(PointerValue<'ctx>, PointerValue<'ctx>),
}

/// One tap of the walk, as handed to the body: the innermost loop runs over
/// `bounds` (source positions along the last dim) and lands at destination
/// `dst_lead + src * strides[last] + shift`.
pub(crate) struct Tap<'ctx> {
    /// `Σ dst_d * dst_strides[d]` over the leading dims.
    pub dst_lead: IntValue<'ctx>,
    /// Flat index of the tap in the kernel (`Σ k_d * kernel_strides[d]`, last dim included).
    pub k_flat: IntValue<'ctx>,
    /// `k_last * dilation - pad` along the last dim.
    pub shift: IntValue<'ctx>,
    pub bounds: Bounds<'ctx>,
    /// The last dim's tap when known at compile time (unrolled taps).
    pub k_last: Option<i64>,
}

/// Emission plan of a [`Window`]: the constant tables its loops read.
pub(crate) struct Walk<'ctx> {
    pub win: Window,
    lead: Vec<LeadTaps<'ctx>>,
    last: LastTaps<'ctx>,
    kstrides: Vec<i64>,
}

impl<'ctx> Walk<'ctx> {
    pub fn new(cx: &KernelCx<'_, 'ctx>, win: Window) -> Self {
        let r = win.rank();
        let lead = (0..r - 1)
            .map(|d| {
                let k = win.kernel[d] as i64;
                let ranges: Vec<(i64, i64)> = (0..win.src[d]).map(|o| win.taps_at(d, o)).collect();
                if ranges.iter().all(|&rg| rg == (0, k)) {
                    LeadTaps::Full(k)
                } else {
                    let lo: Vec<i64> = ranges.iter().map(|r| r.0).collect();
                    let hi: Vec<i64> = ranges.iter().map(|r| r.1).collect();
                    LeadTaps::Tables(
                        const_i64_table(cx, "win.lo", &lo),
                        const_i64_table(cx, "win.hi", &hi),
                    )
                }
            })
            .collect();
        let d = r - 1;
        let ranges: Vec<(i64, i64)> = (0..win.kernel[d]).map(|k| win.srcs_for(d, k)).collect();
        let last = if ranges.len() <= UNROLL_LAST_TAPS {
            LastTaps::Unrolled(ranges)
        } else {
            let lo: Vec<i64> = ranges.iter().map(|r| r.0).collect();
            let hi: Vec<i64> = ranges.iter().map(|r| r.1).collect();
            LastTaps::Tables(
                const_i64_table(cx, "win.klo", &lo),
                const_i64_table(cx, "win.khi", &hi),
            )
        };
        let kstrides = strides_of(&win.kernel)
            .into_iter()
            .map(|s| s as i64)
            .collect();
        Walk {
            win,
            lead,
            last,
            kstrides,
        }
    }

    /// Emits the loops over every tap that lands inside the destination from
    /// the source row `src_lead` (one index per leading dim), calling `body`
    /// once per (leading taps, last tap) with the row's valid source range.
    pub fn emit<'a>(
        &self,
        cx: &mut KernelCx<'a, 'ctx>,
        src_lead: &[IntValue<'ctx>],
        dst_strides: &[i64],
        body: &mut dyn FnMut(&mut KernelCx<'a, 'ctx>, &Tap<'ctx>) -> CgResult<()>,
    ) -> CgResult<()> {
        self.emit_lead(cx, src_lead, dst_strides, &mut |cx, dst_lead, k_lead| {
            self.emit_last(cx, dst_lead, k_lead, body)
        })
    }

    /// Emits the loops over the valid taps of the leading dims for the source
    /// row `src_lead`; `body` gets the destination offset of the leading dims
    /// (`Σ dst_d * dst_strides[d]`) and the flat kernel index of the leading taps.
    pub fn emit_lead<'a>(
        &self,
        cx: &mut KernelCx<'a, 'ctx>,
        src_lead: &[IntValue<'ctx>],
        dst_strides: &[i64],
        body: &mut dyn FnMut(
            &mut KernelCx<'a, 'ctx>,
            IntValue<'ctx>,
            IntValue<'ctx>,
        ) -> CgResult<()>,
    ) -> CgResult<()> {
        let mut ks = Vec::with_capacity(self.lead.len());
        self.lead_rec(cx, src_lead, dst_strides, &mut ks, body)
    }

    fn lead_rec<'a>(
        &self,
        cx: &mut KernelCx<'a, 'ctx>,
        src: &[IntValue<'ctx>],
        dst_strides: &[i64],
        ks: &mut Vec<IntValue<'ctx>>,
        body: &mut dyn FnMut(
            &mut KernelCx<'a, 'ctx>,
            IntValue<'ctx>,
            IntValue<'ctx>,
        ) -> CgResult<()>,
    ) -> CgResult<()> {
        let d = ks.len();
        if d == self.lead.len() {
            let w = &self.win;
            let mut dst_lead = cx.i64(0);
            let mut k_lead = cx.i64(0);
            for d in 0..ks.len() {
                let pos = cx.mul_c(src[d], w.strides[d] as i64)?;
                let pos = cx.add(pos, cx.mul_c(ks[d], w.dilations[d] as i64)?)?;
                let pos = cx.add_c(pos, -(w.pads[d] as i64))?;
                dst_lead = cx.add(dst_lead, cx.mul_c(pos, dst_strides[d])?)?;
                k_lead = cx.add(k_lead, cx.mul_c(ks[d], self.kstrides[d])?)?;
            }
            return body(cx, dst_lead, k_lead);
        }
        let bounds = match &self.lead[d] {
            LeadTaps::Full(k) => Bounds::Static(0, *k),
            LeadTaps::Tables(lo, hi) => Bounds::Dyn(
                cx.load_index(DType::I64, *lo, src[d])?,
                cx.load_index(DType::I64, *hi, src[d])?,
            ),
        };
        for_bounds(cx, bounds, |cx, k| {
            ks.push(k);
            let r = self.lead_rec(cx, src, dst_strides, ks, body);
            ks.pop();
            r
        })
    }

    /// Emits the taps of the last dim (after [`Walk::emit_lead`]), each with
    /// the range of source positions from which it stays inside.
    pub fn emit_last<'a>(
        &self,
        cx: &mut KernelCx<'a, 'ctx>,
        dst_lead: IntValue<'ctx>,
        k_lead: IntValue<'ctx>,
        body: &mut dyn FnMut(&mut KernelCx<'a, 'ctx>, &Tap<'ctx>) -> CgResult<()>,
    ) -> CgResult<()> {
        let w = &self.win;
        let last = w.rank() - 1;
        let (dil, pad) = (w.dilations[last] as i64, w.pads[last] as i64);
        match &self.last {
            LastTaps::Unrolled(ranges) => {
                for (k, &(lo, hi)) in ranges.iter().enumerate() {
                    if lo >= hi {
                        continue;
                    }
                    let tap = Tap {
                        dst_lead,
                        k_flat: cx.add_c(k_lead, k as i64)?,
                        shift: cx.i64(k as i64 * dil - pad),
                        bounds: Bounds::Static(lo, hi),
                        k_last: Some(k as i64),
                    };
                    body(cx, &tap)?;
                }
                Ok(())
            }
            LastTaps::Tables(lo, hi) => {
                let n = w.kernel[last] as i64;
                cx.for_range(0, n, |cx, k| {
                    let tap = Tap {
                        dst_lead,
                        k_flat: cx.add(k_lead, k)?,
                        shift: cx.add_c(cx.mul_c(k, dil)?, -pad)?,
                        bounds: Bounds::Dyn(
                            cx.load_index(DType::I64, *lo, k)?,
                            cx.load_index(DType::I64, *hi, k)?,
                        ),
                        k_last: None,
                    };
                    body(cx, &tap)
                })
            }
        }
    }

    /// Source positions of the last dim from which every tap stays inside.
    pub fn interior(&self) -> (i64, i64) {
        let w = &self.win;
        let d = w.rank() - 1;
        let (mut lo, mut hi) = (0, w.src[d] as i64);
        for k in 0..w.kernel[d] {
            let (a, b) = w.srcs_for(d, k);
            lo = lo.max(a);
            hi = hi.min(b);
        }
        if hi <= lo {
            (0, 0)
        } else {
            (lo, hi)
        }
    }

    /// Calls `body` for every tap of the last dim (all of them, without
    /// bounds: for interior positions), with its flat kernel index and shift.
    pub fn emit_last_all<'a>(
        &self,
        cx: &mut KernelCx<'a, 'ctx>,
        k_lead: IntValue<'ctx>,
        body: &mut dyn FnMut(
            &mut KernelCx<'a, 'ctx>,
            IntValue<'ctx>,
            IntValue<'ctx>,
        ) -> CgResult<()>,
    ) -> CgResult<()> {
        let w = &self.win;
        let last = w.rank() - 1;
        let (n, dil, pad) = (
            w.kernel[last] as i64,
            w.dilations[last] as i64,
            w.pads[last] as i64,
        );
        if n as usize <= UNROLL_LAST_TAPS {
            for k in 0..n {
                let kf = cx.add_c(k_lead, k)?;
                body(cx, kf, cx.i64(k * dil - pad))?;
            }
            Ok(())
        } else {
            cx.for_range(0, n, |cx, k| {
                let kf = cx.add(k_lead, k)?;
                let shift = cx.add_c(cx.mul_c(k, dil)?, -pad)?;
                body(cx, kf, shift)
            })
        }
    }
}

/// `b` restricted to `[lo, hi)`; `None` when statically empty.
pub(crate) fn clip_bounds<'ctx>(
    cx: &KernelCx<'_, 'ctx>,
    b: Bounds<'ctx>,
    lo: i64,
    hi: i64,
) -> CgResult<Option<Bounds<'ctx>>> {
    Ok(match b {
        Bounds::Static(a, c) => {
            let (a, c) = (a.max(lo), c.min(hi));
            (a < c).then_some(Bounds::Static(a, c))
        }
        Bounds::Dyn(a, c) => Some(Bounds::Dyn(
            cx.smax(a, cx.i64(lo))?,
            cx.smin(c, cx.i64(hi))?,
        )),
    })
}

/// Lanes of the explicit vectors of [`VecTile`].
pub(crate) const VF: usize = 8;

/// A register tile of `rows × nv` vectors of [`VF`] f32 accumulators, kept in
/// entry-block stack slots that LLVM promotes to registers (each slot is only
/// ever accessed as one whole vector).
pub(crate) struct VecTile<'ctx> {
    slots: Vec<PointerValue<'ctx>>,
    pub rows: usize,
    pub nv: usize,
}

impl<'ctx> VecTile<'ctx> {
    pub fn new(cx: &KernelCx<'_, 'ctx>, rows: usize, nv: usize) -> CgResult<Self> {
        let slots = (0..rows * nv)
            .map(|_| cx.stack_array(DType::F32, VF as u64))
            .collect::<CgResult<_>>()?;
        Ok(VecTile { slots, rows, nv })
    }

    fn vec_t(cx: &KernelCx<'_, 'ctx>) -> VectorType<'ctx> {
        cx.f32_t().vec_type(VF as u32)
    }

    /// A vector with every lane `v`.
    pub fn splat(cx: &KernelCx<'_, 'ctx>, v: FloatValue<'ctx>) -> CgResult<VectorValue<'ctx>> {
        let t = Self::vec_t(cx);
        let one =
            cx.b.build_insert_element(t.get_poison(), v, cx.i32(0), "")?;
        let mask = cx.i32_t().vec_type(VF as u32).const_zero();
        Ok(cx.b.build_shuffle_vector(one, t.get_poison(), mask, "")?)
    }

    /// Loads `VF` consecutive f32 from element `idx` (element-aligned).
    pub fn load(
        cx: &KernelCx<'_, 'ctx>,
        ptr: PointerValue<'ctx>,
        idx: IntValue<'ctx>,
    ) -> CgResult<VectorValue<'ctx>> {
        let p = cx.gep_f32(ptr, idx)?;
        let v = cx.b.build_load(Self::vec_t(cx), p, "")?;
        set_align(&v, 4)?;
        Ok(v.into_vector_value())
    }

    /// Stores `VF` consecutive f32 at element `idx` (element-aligned).
    pub fn store(
        cx: &KernelCx<'_, 'ctx>,
        ptr: PointerValue<'ctx>,
        idx: IntValue<'ctx>,
        v: VectorValue<'ctx>,
    ) -> CgResult<()> {
        let p = cx.gep_f32(ptr, idx)?;
        let st = cx.b.build_store(p, v)?;
        st.set_alignment(4)
            .map_err(|e| crate::CodegenError::Llvm(e.to_string()))?;
        Ok(())
    }

    /// Loads `VF` f32 at elements `idx + i * stride` (`stride > 0`) by
    /// loading the span they cover (never past the last one) and shuffling.
    pub fn load_strided(
        cx: &KernelCx<'_, 'ctx>,
        ptr: PointerValue<'ctx>,
        idx: IntValue<'ctx>,
        stride: usize,
    ) -> CgResult<VectorValue<'ctx>> {
        if stride <= 1 {
            return Self::load(cx, ptr, idx);
        }
        let span = (VF - 1) * stride + 1;
        let span_t = cx.f32_t().vec_type(span as u32);
        let p = cx.gep_f32(ptr, idx)?;
        let v = cx.b.build_load(span_t, p, "")?;
        set_align(&v, 4)?;
        let v = v.into_vector_value();
        let lanes: Vec<IntValue> = (0..VF).map(|i| cx.i32((i * stride) as i32)).collect();
        let mask = VectorType::const_vector(&lanes);
        Ok(cx
            .b
            .build_shuffle_vector(v, span_t.get_poison(), mask, "")?)
    }

    fn slot(&self, j: usize, v: usize) -> PointerValue<'ctx> {
        self.slots[j * self.nv + v]
    }

    /// Sets every accumulator of row `j` to `vals[j]`.
    pub fn init(&self, cx: &KernelCx<'_, 'ctx>, vals: &[FloatValue<'ctx>]) -> CgResult<()> {
        for (j, &val) in vals.iter().enumerate().take(self.rows) {
            let s = Self::splat(cx, val)?;
            for v in 0..self.nv {
                cx.b.build_store(self.slot(j, v), s)?;
            }
        }
        Ok(())
    }

    /// `acc[j][v] += a[j] * b[v]` for every row and vector.
    pub fn fma(
        &self,
        cx: &KernelCx<'_, 'ctx>,
        a: &[FloatValue<'ctx>],
        b: &[VectorValue<'ctx>],
    ) -> CgResult<()> {
        let t = Self::vec_t(cx);
        for (j, &aj) in a.iter().enumerate().take(self.rows) {
            let s = Self::splat(cx, aj)?;
            for (v, &bv) in b.iter().enumerate().take(self.nv) {
                let acc = cx.b.build_load(t, self.slot(j, v), "")?;
                let r = cx.call_intrinsic(
                    "llvm.fmuladd",
                    &[t.into()],
                    &[s.into(), bv.into(), acc.into()],
                )?;
                cx.b.build_store(self.slot(j, v), r)?;
            }
        }
        Ok(())
    }

    /// Writes row `j` to `VF * nv` consecutive elements from `at[j]`.
    pub fn write(
        &self,
        cx: &KernelCx<'_, 'ctx>,
        out: PointerValue<'ctx>,
        at: &[IntValue<'ctx>],
    ) -> CgResult<()> {
        let t = Self::vec_t(cx);
        for (j, &base) in at.iter().enumerate().take(self.rows) {
            for v in 0..self.nv {
                let acc = cx.b.build_load(t, self.slot(j, v), "")?.into_vector_value();
                Self::store(cx, out, cx.add_c(base, (v * VF) as i64)?, acc)?;
            }
        }
        Ok(())
    }
}

impl<'ctx> VecTile<'ctx> {
    /// Writes lane `l` of row `j` to element `at[j] + l * stride` (`stride`
    /// 1: vector stores).
    pub fn write_strided(
        &self,
        cx: &KernelCx<'_, 'ctx>,
        out: PointerValue<'ctx>,
        at: &[IntValue<'ctx>],
        stride: i64,
    ) -> CgResult<()> {
        if stride == 1 {
            return self.write(cx, out, at);
        }
        let t = Self::vec_t(cx);
        for (j, &base) in at.iter().enumerate().take(self.rows) {
            for v in 0..self.nv {
                let acc = cx.b.build_load(t, self.slot(j, v), "")?.into_vector_value();
                for l in 0..VF {
                    let e = cx.b.build_extract_element(acc, cx.i32(l as i32), "")?;
                    let i = cx.add_c(base, ((v * VF + l) as i64) * stride)?;
                    cx.store_f32(out, i, e.into_float_value())?;
                }
            }
        }
        Ok(())
    }
}

fn set_align(v: &BasicValueEnum<'_>, align: u32) -> CgResult<()> {
    v.as_instruction_value()
        .ok_or_else(|| crate::CodegenError::Llvm("load is not an instruction".into()))?
        .set_alignment(align)
        .map_err(|e| crate::CodegenError::Llvm(e.to_string()))
}

/// ConvTranspose seen from one output position `o` of one dim: the taps
/// `k = k0 + t * k_step` reading input `i = i0 - t * i_step`, `t < n`
/// (solutions of `o = i * s + k * d - p` form this progression).
fn transposed_taps(o: i64, s: i64, d: i64, p: i64, k_n: i64, i_n: i64) -> (i64, i64, i64) {
    let valid: Vec<(i64, i64)> = (0..k_n)
        .filter_map(|k| {
            let num = o + p - k * d;
            (num.rem_euclid(s) == 0).then(|| (k, num.div_euclid(s)))
        })
        .filter(|&(_, i)| (0..i_n).contains(&i))
        .collect();
    match valid.first() {
        Some(&(k0, i0)) => (k0, i0, valid.len() as i64),
        None => (0, 0, 0),
    }
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// One phase of the last dim of a ConvTranspose: outputs `ph + s * q`,
/// `q < count`; tap `k` reads input `q + shift` for each `(k, shift)` in
/// `taps`; every tap is inside for `q` in `[lo, lo + tiles * TILE_W)`.
#[derive(Debug)]
struct Phase {
    ph: i64,
    taps: Vec<(i64, i64)>,
    lo: i64,
    tiles: i64,
}

/// Tables for computing ConvTranspose outputs by gathering (each output sums
/// its own taps), used by the register-tile path.
struct TGather<'ctx> {
    /// Per leading dim: `k0`, `i0`, `n` tables over output positions, and the steps.
    lead: Vec<(
        PointerValue<'ctx>,
        PointerValue<'ctx>,
        PointerValue<'ctx>,
        i64,
        i64,
    )>,
    phases: Vec<Phase>,
    kstrides: Vec<i64>,
}

impl<'ctx> TGather<'ctx> {
    /// `None` when no phase has a full tile.
    fn new(cx: &KernelCx<'_, 'ctx>, p: &Plan) -> Option<Self> {
        let w = &p.win;
        let r = w.rank();
        let dim = |d: usize| {
            (
                w.strides[d] as i64,
                w.dilations[d] as i64,
                w.pads[d] as i64,
                w.kernel[d] as i64,
                p.x_sp[d] as i64,
                p.o_sp[d] as i64,
            )
        };
        let l = r - 1;
        let (s, d, pad, kn, xn, on) = dim(l);
        let phases: Vec<Phase> = (0..s.min(on))
            .map(|ph| {
                let count = (on - ph + s - 1) / s;
                let taps: Vec<(i64, i64)> = (0..kn)
                    .filter(|k| (ph + pad - k * d).rem_euclid(s) == 0)
                    .map(|k| (k, (ph + pad - k * d).div_euclid(s)))
                    .collect();
                let lo = taps.iter().map(|&(_, c)| -c).fold(0, i64::max);
                let hi = taps.iter().map(|&(_, c)| xn - c).fold(count, i64::min);
                let tiles = if hi > lo { (hi - lo) / TILE_W } else { 0 };
                Phase {
                    ph,
                    taps,
                    lo,
                    tiles,
                }
            })
            .collect();
        if phases.iter().all(|ph| ph.tiles == 0) {
            return None;
        }
        let lead = (0..l)
            .map(|dd| {
                let (s, d, pad, kn, xn, on) = dim(dd);
                let g = gcd(s, d);
                let t: Vec<(i64, i64, i64)> = (0..on)
                    .map(|o| transposed_taps(o, s, d, pad, kn, xn))
                    .collect();
                let col = |f: fn(&(i64, i64, i64)) -> i64| t.iter().map(f).collect::<Vec<i64>>();
                (
                    const_i64_table(cx, "ct.k0", &col(|e| e.0)),
                    const_i64_table(cx, "ct.i0", &col(|e| e.1)),
                    const_i64_table(cx, "ct.n", &col(|e| e.2)),
                    s / g,
                    d / g,
                )
            })
            .collect();
        let kstrides = i64s(strides_of(&w.kernel));
        Some(TGather {
            lead,
            phases,
            kstrides,
        })
    }

    /// Loops over the leading taps of output row `o_lead`; `body` gets the
    /// input offset of the leading dims and the flat kernel index of the leading taps.
    fn emit_lead<'a>(
        &self,
        cx: &mut KernelCx<'a, 'ctx>,
        o_lead: &[IntValue<'ctx>],
        x_strides: &[i64],
        body: &mut dyn FnMut(
            &mut KernelCx<'a, 'ctx>,
            IntValue<'ctx>,
            IntValue<'ctx>,
        ) -> CgResult<()>,
    ) -> CgResult<()> {
        let zero = cx.i64(0);
        self.lead_rec(cx, o_lead, x_strides, (zero, zero), 0, body)
    }

    /// Leading dim `d` and those after it; `off` = (input offset, kernel index) so far.
    fn lead_rec<'a>(
        &self,
        cx: &mut KernelCx<'a, 'ctx>,
        o_lead: &[IntValue<'ctx>],
        x_strides: &[i64],
        off: (IntValue<'ctx>, IntValue<'ctx>),
        d: usize,
        body: &mut dyn FnMut(
            &mut KernelCx<'a, 'ctx>,
            IntValue<'ctx>,
            IntValue<'ctx>,
        ) -> CgResult<()>,
    ) -> CgResult<()> {
        let Some(&(k0t, i0t, nt, ks, is)) = self.lead.get(d) else {
            return body(cx, off.0, off.1);
        };
        let o = o_lead[d];
        let k0 = cx.load_index(DType::I64, k0t, o)?;
        let i0 = cx.load_index(DType::I64, i0t, o)?;
        let n = cx.load_index(DType::I64, nt, o)?;
        cx.for_range_dyn(cx.i64(0), n, |cx, t| {
            let k = cx.add(k0, cx.mul_c(t, ks)?)?;
            let i = cx.sub(i0, cx.mul_c(t, is)?)?;
            let xo = cx.add(off.0, cx.mul_c(i, x_strides[d])?)?;
            let ko = cx.add(off.1, cx.mul_c(k, self.kstrides[d])?)?;
            self.lead_rec(cx, o_lead, x_strides, (xo, ko), d + 1, body)
        })
    }

    /// Source range `[lo, hi)` of last-dim tap `k` (scatter side) whose
    /// outputs the register tiles already compute.
    fn tiled_srcs(&self, w: &Window, k: i64) -> (i64, i64) {
        let l = w.rank() - 1;
        let (s, d, p) = (w.strides[l] as i64, w.dilations[l] as i64, w.pads[l] as i64);
        let ph = (k * d - p).rem_euclid(s);
        let e = (k * d - p - ph).div_euclid(s);
        match self.phases.iter().find(|f| f.ph == ph) {
            Some(f) if f.tiles > 0 => (f.lo - e, f.lo + f.tiles * TILE_W - e),
            _ => (0, 0),
        }
    }
}

/// Static facts of one Conv / ConvTranspose node.
#[derive(Debug)]
struct Plan {
    transpose: bool,
    batch: usize,
    groups: usize,
    /// Input channels per group.
    cg: usize,
    /// Output channels per group.
    mg: usize,
    /// Spatial extents of x and of the output.
    x_sp: Vec<usize>,
    o_sp: Vec<usize>,
    win: Window,
}

impl Plan {
    fn new(
        a: &ConvAttrs,
        transpose: bool,
        x: &[usize],
        w: &[usize],
        out: &[usize],
    ) -> Result<Plan, String> {
        if x.len() < 3 || w.len() != x.len() || out.len() != x.len() {
            return Err(format!(
                "input {x:?}, weight {w:?} and output {out:?} must be [N,C,spatial…] of one rank"
            ));
        }
        let r = x.len() - 2;
        if a.pads.len() != 2 * r {
            return Err(format!("pads {:?} must have {} entries", a.pads, 2 * r));
        }
        let g = a.group;
        let (c, m) = (x[1], out[1]);
        if g == 0 || c % g != 0 || m % g != 0 || x[0] != out[0] {
            return Err(format!(
                "group {g} does not divide {c} input and {m} output channels"
            ));
        }
        let (cg, mg) = (c / g, m / g);
        let w_ok = if transpose {
            w[0] == c && w[1] == mg
        } else {
            w[0] == m && w[1] == cg
        };
        if !w_ok {
            return Err(format!(
                "weight {w:?} does not match {c} input / {m} output channels in {g} groups"
            ));
        }
        let (x_sp, o_sp) = (x[2..].to_vec(), out[2..].to_vec());
        let (src, dst) = if transpose {
            (x_sp.clone(), o_sp.clone())
        } else {
            (o_sp.clone(), x_sp.clone())
        };
        let win = Window {
            src,
            dst,
            kernel: w[2..].to_vec(),
            strides: a.strides.clone(),
            dilations: a.dilations.clone(),
            pads: a.pads[..r].to_vec(),
        };
        win.validate()?;
        let mut p = Plan {
            transpose,
            batch: x[0],
            groups: g,
            cg,
            mg,
            x_sp,
            o_sp,
            win,
        };
        p.flatten_pointwise(&a.pads);
        Ok(p)
    }

    /// A 1×1 window with unit strides and no padding maps every position to
    /// itself: treat the spatial dims as one long row (a GEMM per group).
    fn flatten_pointwise(&mut self, pads: &[usize]) {
        let w = &self.win;
        let pointwise = w.kernel.iter().all(|&k| k == 1)
            && w.strides.iter().all(|&s| s == 1)
            && pads.iter().all(|&p| p == 0)
            && w.src == w.dst
            && w.src.len() > 1;
        if pointwise {
            let n: usize = w.src.iter().product();
            self.x_sp = vec![n];
            self.o_sp = vec![n];
            self.win = Window {
                src: vec![n],
                dst: vec![n],
                kernel: vec![1],
                strides: vec![1],
                dilations: vec![1],
                pads: vec![0],
            };
        }
    }
}

fn i64s(v: Vec<usize>) -> Vec<i64> {
    v.into_iter().map(|s| s as i64).collect()
}

/// Emits the body of the node function for Conv and ConvTranspose.
pub fn emit<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    node: &Node,
    ins: &[Operand<'_, 'ctx>],
    out: &Operand<'_, 'ctx>,
) -> CgResult<()> {
    let (a, transpose, clamp) = match &node.op {
        Op::Conv(a) => (a, false, None),
        Op::ConvClamp { conv, min, max } | Op::ConvAdd { conv, min, max } => {
            (conv, false, Some((*min, *max)))
        }
        Op::ConvTranspose(a) => (a, true, None),
        _ => return Err(cx.unsupported("not a convolution")),
    };
    expect_inputs(cx, ins, 2)?;
    let (x, w, bias) = (&ins[0], &ins[1], ins.get(2));
    // ConvAdd's residual, laid out like the output.
    let res = ins.get(3);
    if res.is_some_and(|r| r.ty != out.ty) {
        return Err(cx.unsupported("the residual does not match the output"));
    }
    let all = [Some(x), Some(w), bias, res, Some(out)];
    if all.iter().flatten().any(|o| o.dtype() != DType::F32) {
        return Err(cx.unsupported("only f32 operands are supported"));
    }
    let plan = Plan::new(a, transpose, x.shape(), w.shape(), out.shape())
        .map_err(|m| cx.unsupported(m))?;
    if let Some(b) = bias {
        if b.numel() != out.shape()[1] {
            return Err(cx.unsupported(format!("bias {} does not match the output", b.ty)));
        }
    }
    // Constant weights (and bias): the GEMM microkernels, when the plan
    // applies and the memory plan gave the scratch it needs.
    let wk = w.konst.and_then(|t| t.as_f32());
    let bk = bias.map(|b| b.konst.and_then(|t| t.as_f32()));
    if let (Some(wv), false) = (wk, matches!(bk, Some(None))) {
        let consts = (true, true);
        let facts = cx.target.for_float_weights(wv);
        if let Some(p) = crate::mmm::conv_plan(node, &x.ty, &w.ty, &out.ty, consts, &facts) {
            if p.scratch_bytes() == 0 || cx.scratch.is_some() {
                // The residual and the clamp happen in the epilogue.
                let lohi = clamp.unwrap_or((f32::NEG_INFINITY, f32::INFINITY));
                let (r, b) = (res.map(|r| r.ptr), bk.flatten());
                return match &p {
                    crate::mmm::FloatConv::Winograd(g) => {
                        crate::mmm::winograd::emit(cx, g, x, wv, b, r, lohi, out)
                    }
                    crate::mmm::FloatConv::Gemm(g) => {
                        crate::mmm::conv::emit(cx, g, x, wv, b, r, lohi, out)
                    }
                };
            }
        }
        if let Some(d) = crate::mmm::dw_plan(node, &x.ty, &w.ty, &out.ty, consts, &cx.target) {
            if cx.scratch.is_some() {
                let lohi = clamp.unwrap_or((f32::NEG_INFINITY, f32::INFINITY));
                let r = res.map(|r| r.ptr);
                return crate::mmm::dw::emit(cx, &d, x, wv, bk.flatten(), r, lohi, out);
            }
        }
    }
    // A constant all-zero bias is no bias.
    let bias = bias.filter(|b| {
        b.konst
            .and_then(|t| t.as_f32())
            .is_none_or(|v| v.iter().any(|&e| e.to_bits() != 0))
    });
    emit_plan(cx, &plan, x.ptr, w.ptr, bias.map(|b| b.ptr), out.ptr)?;
    // The direct loops add the residual and clamp in a second pass.
    if let Some((lo, hi)) = clamp {
        cx.for_range(0, out.numel() as i64, |cx, i| {
            let mut v = cx.load_f32(out.ptr, i)?;
            if let Some(r) = res {
                v = cx.b.build_float_add(v, cx.load_f32(r.ptr, i)?, "")?;
            }
            let v = cx.fclamp(v, lo, hi)?;
            cx.store_f32(out.ptr, i, v)
        })?;
    }
    Ok(())
}

fn emit_plan<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    p: &Plan,
    x: PointerValue<'ctx>,
    w: PointerValue<'ctx>,
    bias: Option<PointerValue<'ctx>>,
    out: PointerValue<'ctx>,
) -> CgResult<()> {
    let walk = Walk::new(cx, p.win.clone());
    let r = p.win.rank();
    let lead = r - 1;
    let (x_plane, o_plane): (usize, usize) = (p.x_sp.iter().product(), p.o_sp.iter().product());
    let kp: usize = p.win.kernel.iter().product();
    let (x_st, o_st) = (i64s(strides_of(&p.x_sp)), i64s(strides_of(&p.o_sp)));
    let (src_st, dst_st) = if p.transpose {
        (&x_st, &o_st)
    } else {
        (&o_st, &x_st)
    };
    let (c_all, m_all) = ((p.groups * p.cg) as i64, (p.groups * p.mg) as i64);
    let s_last = p.win.strides[lead] as i64;
    let src_lead_shape = p.win.src[..lead].to_vec();
    let row_len = p.win.src[lead] as i64;
    let mb_full = OC_BLOCK.min(p.mg).max(1);
    // Register tiles of TILE_W outputs along the last dim (unit stride only):
    // [tile_lo, tile_lo + n_tiles * TILE_W) is covered by tiles, `rest` by
    // the general path.
    let (in_lo, in_hi) = walk.interior();
    let n_tiles = if p.transpose || s_last > MAX_TILE_STRIDE {
        0
    } else {
        (in_hi - in_lo) / TILE_W
    };
    let tile_lo = in_lo;
    let rest: Vec<(i64, i64)> = if n_tiles > 0 {
        [(0, in_lo), (in_lo + n_tiles * TILE_W, row_len)]
            .into_iter()
            .filter(|(a, b)| a < b)
            .collect()
    } else {
        vec![(0, row_len)]
    };
    // ConvTranspose tiles gather per output phase; the scatter that covers
    // the rest must know each last-dim tap statically (unrolled taps).
    let tgather = if p.transpose && p.win.kernel[lead] <= UNROLL_LAST_TAPS {
        TGather::new(cx, p)
    } else {
        None
    };
    // One tile serves every block size (a block of `mb` rows uses its first `mb`).
    let tile = if n_tiles > 0 || tgather.is_some() {
        Some(VecTile::new(cx, mb_full, TILE_NV)?)
    } else {
        None
    };

    // One block of `mb` output channels starting at `m0` (within group `g`).
    let block = |cx: &mut KernelCx<'_, 'ctx>,
                 n: IntValue<'ctx>,
                 g: IntValue<'ctx>,
                 m0: IntValue<'ctx>,
                 mb: usize|
     -> CgResult<()> {
        // Output channel of block row j and its plane offset.
        let gm = cx.add(cx.mul_c(g, p.mg as i64)?, m0)?;
        let o_chan = cx.add(cx.mul_c(n, m_all)?, gm)?;
        let o_base: Vec<IntValue> = (0..mb)
            .map(|j| cx.mul_c(cx.add_c(o_chan, j as i64)?, o_plane as i64))
            .collect::<CgResult<_>>()?;
        let bias_v: Vec<FloatValue> = (0..mb)
            .map(|j| match bias {
                Some(b) => cx.load_f32(b, cx.add_c(gm, j as i64)?),
                None => Ok(cx.f32(0.0)),
            })
            .collect::<CgResult<_>>()?;
        let x_chan = |cx: &KernelCx<'_, 'ctx>, c: IntValue<'ctx>| -> CgResult<IntValue<'ctx>> {
            let gc = cx.add(cx.mul_c(g, p.cg as i64)?, c)?;
            cx.mul_c(cx.add(cx.mul_c(n, c_all)?, gc)?, x_plane as i64)
        };
        // Weight index of tap 0 for block row j and input channel c.
        let w_base = |cx: &KernelCx<'_, 'ctx>, c: IntValue<'ctx>, j: usize| {
            if p.transpose {
                let gc = cx.add(cx.mul_c(g, p.cg as i64)?, c)?;
                let row = cx.add_c(cx.add(cx.mul_c(gc, p.mg as i64)?, m0)?, j as i64)?;
                cx.mul_c(row, kp as i64)
            } else {
                let row = cx.mul_c(cx.add_c(gm, j as i64)?, p.cg as i64)?;
                cx.mul_c(cx.add(row, c)?, kp as i64)
            }
        };
        // The innermost update: out[o_idx_j] += w_j * x[x_idx] for every row j.
        let update = |cx: &mut KernelCx<'_, 'ctx>,
                      x_idx: IntValue<'ctx>,
                      o_idx: &[IntValue<'ctx>],
                      wv: &[FloatValue<'ctx>]|
         -> CgResult<()> {
            let xv = cx.load_f32(x, x_idx)?;
            for (oi, wj) in o_idx.iter().zip(wv) {
                let acc = cx.load_f32(out, *oi)?;
                cx.store_f32(out, *oi, cx.fmuladd(*wj, xv, acc)?)?;
            }
            Ok(())
        };
        if !p.transpose {
            // Conv, per output row: interior tiles (every tap inside) in
            // registers; the rest (borders, tile remainder) accumulated in
            // the output row, which stays in L1.
            cx.for_nest(&src_lead_shape, |cx, o_lead| {
                let row_off = cx.dot(o_lead, &src_st[..lead], 0)?;
                let rows: Vec<IntValue> = o_base
                    .iter()
                    .map(|b| cx.add(*b, row_off))
                    .collect::<CgResult<_>>()?;
                if let Some(tile) = &tile {
                    cx.for_range(0, n_tiles, |cx, t| {
                        let ow0 = cx.add_c(cx.mul_c(t, TILE_W)?, tile_lo)?;
                        tile.init(cx, &bias_v)?;
                        cx.for_range(0, p.cg as i64, |cx, c| {
                            let xc = cx.add(x_chan(cx, c)?, cx.mul_c(ow0, s_last)?)?;
                            let wb: Vec<IntValue> =
                                (0..mb).map(|j| w_base(cx, c, j)).collect::<CgResult<_>>()?;
                            walk.emit_lead(cx, o_lead, dst_st, &mut |cx, dst_lead, k_lead| {
                                let xrow = cx.add(xc, dst_lead)?;
                                walk.emit_last_all(cx, k_lead, &mut |cx, k_flat, shift| {
                                    let xi = cx.add(xrow, shift)?;
                                    let xv: Vec<VectorValue> = (0..TILE_NV)
                                        .map(|v| {
                                            let at = cx.add_c(xi, (v * VF) as i64 * s_last)?;
                                            VecTile::load_strided(cx, x, at, s_last as usize)
                                        })
                                        .collect::<CgResult<_>>()?;
                                    let wv: Vec<FloatValue> = wb
                                        .iter()
                                        .map(|b| cx.load_f32(w, cx.add(*b, k_flat)?))
                                        .collect::<CgResult<_>>()?;
                                    tile.fma(cx, &wv, &xv)
                                })
                            })
                        })?;
                        let at: Vec<IntValue> = rows
                            .iter()
                            .map(|r| cx.add(*r, ow0))
                            .collect::<CgResult<_>>()?;
                        tile.write(cx, out, &at)
                    })?;
                }
                if rest.is_empty() {
                    return Ok(());
                }
                for &(lo, hi) in &rest {
                    cx.for_range(lo, hi, |cx, e| {
                        for (rj, bj) in rows.iter().zip(&bias_v) {
                            cx.store_f32(out, cx.add(*rj, e)?, *bj)?;
                        }
                        Ok(())
                    })?;
                }
                cx.for_range(0, p.cg as i64, |cx, c| {
                    let xc = x_chan(cx, c)?;
                    let wb: Vec<IntValue> =
                        (0..mb).map(|j| w_base(cx, c, j)).collect::<CgResult<_>>()?;
                    walk.emit(cx, o_lead, dst_st, &mut |cx, tap| {
                        let xrow = cx.add(cx.add(xc, tap.dst_lead)?, tap.shift)?;
                        let wv: Vec<FloatValue> = wb
                            .iter()
                            .map(|b| cx.load_f32(w, cx.add(*b, tap.k_flat)?))
                            .collect::<CgResult<_>>()?;
                        for &(lo, hi) in &rest {
                            let Some(bounds) = clip_bounds(cx, tap.bounds, lo, hi)? else {
                                continue;
                            };
                            for_bounds(cx, bounds, |cx, ow| {
                                let xi = cx.add(xrow, cx.mul_c(ow, s_last)?)?;
                                let oi: Vec<IntValue> = rows
                                    .iter()
                                    .map(|rj| cx.add(*rj, ow))
                                    .collect::<CgResult<_>>()?;
                                update(cx, xi, &oi, &wv)
                            })?;
                        }
                        Ok(())
                    })
                })
            })
        } else {
            // ConvTranspose: initialize the whole output planes; compute the
            // interior of every output phase in register tiles (gathering);
            // scatter every input row through every tap into the rest.
            cx.for_range(0, o_plane as i64, |cx, e| {
                for (bj, vj) in o_base.iter().zip(&bias_v) {
                    cx.store_f32(out, cx.add(*bj, e)?, *vj)?;
                }
                Ok(())
            })?;
            if let (Some(tg), Some(tile)) = (&tgather, &tile) {
                cx.for_nest(&p.o_sp[..lead], |cx, o_lead| {
                    let row_off = cx.dot(o_lead, &o_st[..lead], 0)?;
                    let rows: Vec<IntValue> = o_base
                        .iter()
                        .map(|b| cx.add(*b, row_off))
                        .collect::<CgResult<_>>()?;
                    for ph in tg.phases.iter().filter(|f| f.tiles > 0) {
                        cx.for_range(0, ph.tiles, |cx, tq| {
                            let q0 = cx.add_c(cx.mul_c(tq, TILE_W)?, ph.lo)?;
                            tile.init(cx, &bias_v)?;
                            cx.for_range(0, p.cg as i64, |cx, c| {
                                let xc = cx.add(x_chan(cx, c)?, q0)?;
                                let wb: Vec<IntValue> =
                                    (0..mb).map(|j| w_base(cx, c, j)).collect::<CgResult<_>>()?;
                                tg.emit_lead(
                                    cx,
                                    o_lead,
                                    &x_st[..lead],
                                    &mut |cx, x_lead, k_lead| {
                                        let xrow = cx.add(xc, x_lead)?;
                                        for &(k, shift) in &ph.taps {
                                            let xi = cx.add_c(xrow, shift)?;
                                            let xv: Vec<VectorValue> = (0..TILE_NV)
                                                .map(|v| {
                                                    VecTile::load(
                                                        cx,
                                                        x,
                                                        cx.add_c(xi, (v * VF) as i64)?,
                                                    )
                                                })
                                                .collect::<CgResult<_>>()?;
                                            let wv: Vec<FloatValue> = wb
                                                .iter()
                                                .map(|b| {
                                                    cx.load_f32(
                                                        w,
                                                        cx.add_c(cx.add(*b, k_lead)?, k)?,
                                                    )
                                                })
                                                .collect::<CgResult<_>>()?;
                                            tile.fma(cx, &wv, &xv)?;
                                        }
                                        Ok(())
                                    },
                                )
                            })?;
                            let o0 = cx.add_c(cx.mul_c(q0, s_last)?, ph.ph)?;
                            let at: Vec<IntValue> = rows
                                .iter()
                                .map(|r| cx.add(*r, o0))
                                .collect::<CgResult<_>>()?;
                            tile.write_strided(cx, out, &at, s_last)
                        })?;
                    }
                    Ok(())
                })?;
            }
            cx.for_range(0, p.cg as i64, |cx, c| {
                let xc = x_chan(cx, c)?;
                let wb: Vec<IntValue> =
                    (0..mb).map(|j| w_base(cx, c, j)).collect::<CgResult<_>>()?;
                cx.for_nest(&src_lead_shape, |cx, i_lead| {
                    let xrow = cx.add(xc, cx.dot(i_lead, &src_st[..lead], 0)?)?;
                    walk.emit(cx, i_lead, dst_st, &mut |cx, tap| {
                        // Skip the sources whose outputs the tiles computed.
                        let tiled = match (&tgather, tap.k_last) {
                            (Some(tg), Some(k)) => tg.tiled_srcs(&p.win, k),
                            _ => (0, 0),
                        };
                        let parts = if tiled.0 < tiled.1 {
                            vec![
                                clip_bounds(cx, tap.bounds, i64::MIN, tiled.0)?,
                                clip_bounds(cx, tap.bounds, tiled.1, i64::MAX)?,
                            ]
                        } else {
                            vec![Some(tap.bounds)]
                        };
                        if parts.iter().all(Option::is_none) {
                            return Ok(());
                        }
                        let orow: Vec<IntValue> = o_base
                            .iter()
                            .map(|b| cx.add(cx.add(*b, tap.dst_lead)?, tap.shift))
                            .collect::<CgResult<_>>()?;
                        let wv: Vec<FloatValue> = wb
                            .iter()
                            .map(|b| cx.load_f32(w, cx.add(*b, tap.k_flat)?))
                            .collect::<CgResult<_>>()?;
                        for bounds in parts.into_iter().flatten() {
                            for_bounds(cx, bounds, |cx, iw| {
                                let xi = cx.add(xrow, iw)?;
                                let step = cx.mul_c(iw, s_last)?;
                                let oi: Vec<IntValue> = orow
                                    .iter()
                                    .map(|rj| cx.add(*rj, step))
                                    .collect::<CgResult<_>>()?;
                                update(cx, xi, &oi, &wv)
                            })?;
                        }
                        Ok(())
                    })
                })
            })
        }
    };

    let full_end = (p.mg / mb_full * mb_full) as i64;
    let tail = p.mg % mb_full;
    cx.for_range(0, p.batch as i64, |cx, n| {
        cx.for_range(0, p.groups as i64, |cx, g| {
            cx.for_range_step(0, full_end, mb_full as i64, |cx, m0| {
                block(cx, n, g, m0, mb_full)
            })?;
            if tail > 0 {
                let m0 = cx.i64(full_end);
                block(cx, n, g, m0, tail)?;
            }
            Ok(())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute(base: i64, step: i64, n: i64, limit: i64) -> (i64, i64) {
        let ok: Vec<i64> = (0..n)
            .filter(|t| (0..limit).contains(&(base + t * step)))
            .collect();
        match (ok.first(), ok.last()) {
            (Some(&a), Some(&b)) => (a, b + 1),
            _ => (0, 0),
        }
    }

    #[test]
    fn valid_range_matches_brute_force() {
        for base in -9..9 {
            for step in 1..4 {
                for n in 0..6 {
                    for limit in 0..7 {
                        assert_eq!(
                            valid_range(base, step, n, limit),
                            brute(base, step, n, limit),
                            "base {base} step {step} n {n} limit {limit}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn window_ranges_are_consistent() {
        let w = Window {
            src: vec![4],
            dst: vec![7],
            kernel: vec![3],
            strides: vec![2],
            dilations: vec![2],
            pads: vec![1],
        };
        w.validate().expect("valid");
        // Source 0: taps at -1, 1, 3 → k in [1, 3).
        assert_eq!(w.taps_at(0, 0), (1, 3));
        // Tap 0 lands at 2o - 1: o in [1, 4).
        assert_eq!(w.srcs_for(0, 0), (1, 4));
        for o in 0..4 {
            for k in 0..3 {
                let (a, b) = w.taps_at(0, o);
                let (c, d) = w.srcs_for(0, k);
                let in_taps = (a..b).contains(&(k as i64));
                let in_srcs = (c..d).contains(&(o as i64));
                assert_eq!(in_taps, in_srcs, "o {o} k {k}");
            }
        }
    }

    #[test]
    fn bad_windows_are_rejected() {
        let mut w = Window {
            src: vec![4],
            dst: vec![7],
            kernel: vec![3],
            strides: vec![0],
            dilations: vec![1],
            pads: vec![1],
        };
        assert!(w.validate().is_err());
        w.strides = vec![1, 1];
        assert!(w.validate().is_err());
    }

    #[test]
    fn pointwise_convs_flatten() {
        let a = ConvAttrs {
            strides: vec![1, 1],
            pads: vec![0; 4],
            dilations: vec![1, 1],
            group: 1,
            output_padding: vec![0, 0],
        };
        let p = Plan::new(&a, false, &[1, 3, 5, 7], &[4, 3, 1, 1], &[1, 4, 5, 7]).expect("plan");
        assert_eq!(p.win.src, vec![35]);
        let p = Plan::new(&a, false, &[1, 3, 5, 7], &[4, 3, 3, 1], &[1, 4, 3, 7]).expect("plan");
        assert_eq!(p.win.src, vec![3, 7]);
        assert!(Plan::new(&a, false, &[1, 3, 5, 7], &[4, 2, 1, 1], &[1, 4, 5, 7]).is_err());
    }
}
