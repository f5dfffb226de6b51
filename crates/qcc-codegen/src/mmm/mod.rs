//! The matrix-multiply layer every weighted kernel is built on (in the
//! spirit of tract-linalg's `mmm`, XNNPACK's and MLAS's packed GEMMs).
//!
//! Three parts:
//!
//! * **Microkernels** (`ukernel.rs`): one LLVM function per (ISA, tile shape,
//!   A layout), emitted at most once per object and called by every node
//!   that needs it. A microkernel keeps an `MR × NR` tile of accumulators
//!   in registers over the whole K range of one call, streaming one column
//!   of A (broadcast) and one row of B (vector loads) per k, and ends with
//!   the fused epilogue (bias per row, clamp).
//! * **Packing** (`pack.rs`): weights are packed at compile time into the
//!   panel order the microkernel reads (`[M/MR][K][MR]`, zero-padded), with
//!   the bias padded beside them.
//! * **Drivers** (`conv.rs`, `gemm.rs`): the loops around the microkernel,
//!   with cache blocking (`KC × NC` blocks of B that stay in L2) chosen from
//!   the static shapes, the im2col of a convolution block written into
//!   planned workspace scratch, and edge tiles handled by masked loads and
//!   stores inside the microkernel.
//!
//! The ISA and tile come from [`Simd`], which is decided once per target
//! from its features: a microkernel never uses an instruction the CPU lacks.

pub mod amx;
pub mod conv;
pub mod dw;
pub mod gemm;
pub mod pack;
pub mod qconv;
pub mod qdw;
pub mod qgemm;
pub mod qukernel;
pub mod ukernel;
pub mod winograd;

use crate::target::{feature_on, TargetInfo};
use crate::target_table::cap;

/// The float SIMD level a target has (from its triple and features).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Simd {
    /// No vector unit known (Cortex-M, ARMv7 without NEON): vectors of four
    /// lanes that LLVM splits into scalar code.
    Scalar,
    /// x86-64 baseline SSE2 (4 lanes, no FMA).
    Sse,
    /// x86-64 AVX2 + FMA (8 lanes).
    Avx2,
    /// x86-64 AVX-512F (16 lanes, 32 registers).
    Avx512,
    /// AArch64 Advanced SIMD (4 lanes, 32 registers, `fmla`).
    Neon64,
    /// ARMv7 NEON (4 lanes, 16 quad registers).
    Neon32,
}

impl Simd {
    /// The SIMD level of a resolved target. x86 features are read from the
    /// feature string (the host's, or `--features`), like the VNNI check.
    pub fn of_target(triple: &str, info: &TargetInfo) -> Simd {
        let f = &info.features;
        if triple.starts_with("x86_64") {
            if feature_on(f, "avx512f") {
                Simd::Avx512
            } else if feature_on(f, "avx2") && feature_on(f, "fma") {
                Simd::Avx2
            } else {
                Simd::Sse
            }
        } else if triple.starts_with("aarch64") {
            Simd::Neon64
        } else if info.has(cap::NEON) || feature_on(f, "neon") {
            Simd::Neon32
        } else {
            Simd::Scalar
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Simd::Scalar => "scalar",
            Simd::Sse => "sse",
            Simd::Avx2 => "avx2",
            Simd::Avx512 => "avx512",
            Simd::Neon64 => "neon64",
            Simd::Neon32 => "neon32",
        }
    }

    /// f32 lanes per vector register.
    pub fn f32_lanes(self) -> usize {
        match self {
            Simd::Avx512 => 16,
            Simd::Avx2 => 8,
            _ => 4,
        }
    }

    /// The f32 register tile `(MR, NR)`: accumulators take `MR · NR / lanes`
    /// registers, leaving room for the B row and a broadcast A value.
    pub fn f32_tile(self) -> (usize, usize) {
        match self {
            Simd::Avx512 => (8, 32),
            Simd::Avx2 => (6, 16),
            Simd::Neon64 => (8, 12),
            Simd::Neon32 | Simd::Sse => (4, 8),
            Simd::Scalar => (4, 4),
        }
    }

    /// The most rows a `Cols` microkernel (positions as rows, output
    /// channels as the `f32_tile` columns) may have with its accumulators,
    /// the B row and the broadcast in registers; 0 when the target has no
    /// vector unit to win anything with.
    pub fn f32_cols_mr_max(self) -> usize {
        match self {
            Simd::Avx512 => 14,
            Simd::Neon64 => 8,
            Simd::Avx2 | Simd::Sse | Simd::Neon32 => 6,
            Simd::Scalar => 0,
        }
    }

    /// Bytes of the B block (`KC × NC` floats) the drivers keep in cache.
    pub fn l2_budget(self) -> usize {
        match self {
            Simd::Scalar => 16 << 10,
            Simd::Neon32 => 64 << 10,
            Simd::Neon64 | Simd::Sse => 256 << 10,
            _ => 512 << 10,
        }
    }
}

/// A 1-D or 2-D NCHW convolution seen as 2-D (a 1-D one has H = 1): the
/// geometry every convolution driver here starts from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2d {
    pub batch: usize,
    /// Input and output channels (all groups).
    pub c: usize,
    pub oc: usize,
    pub h: usize,
    pub w: usize,
    pub oh: usize,
    pub ow: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: (usize, usize),
    pub dil: (usize, usize),
    /// Leading padding (top, left).
    pub pad: (usize, usize),
}

impl Conv2d {
    /// The geometry of a convolution with input `x`, weight `wsh` and output
    /// `out` shapes, or `None` for other ranks, inconsistent attribute
    /// lengths or an empty output.
    pub fn of(a: &qcc_ir::ConvAttrs, x: &[usize], wsh: &[usize], out: &[usize]) -> Option<Conv2d> {
        let r = x.len().checked_sub(2)?;
        if !(1..=2).contains(&r) || wsh.len() != x.len() || out.len() != x.len() {
            return None;
        }
        if a.strides.len() != r || a.dilations.len() != r || a.pads.len() != 2 * r {
            return None;
        }
        let two = |v: &[usize], d: usize| if r == 1 { (d, v[0]) } else { (v[0], v[1]) };
        let (h, w) = two(&x[2..], 1);
        let (oh, ow) = two(&out[2..], 1);
        let (kh, kw) = two(&wsh[2..], 1);
        let g = Conv2d {
            batch: x[0],
            c: x[1],
            oc: out[1],
            h,
            w,
            oh,
            ow,
            kh,
            kw,
            stride: two(&a.strides, 1),
            dil: two(&a.dilations, 1),
            pad: two(&a.pads[..r], 0),
        };
        (oh > 0 && ow > 0).then_some(g)
    }
}

/// Declares microkernel `name`: internal, never inlined, no unwinding, with
/// `noalias` and `readonly` on the given parameters, and 512-bit vectors kept
/// whole (`wide`) on cores whose tuning prefers 256 bits.
pub(crate) fn declare_microkernel<'ctx>(
    outer: &crate::cx::KernelCx<'_, 'ctx>,
    name: &str,
    params: &[inkwell::types::BasicMetadataTypeEnum<'ctx>],
    (noalias, readonly): (&[u32], &[u32]),
    wide: bool,
) -> inkwell::values::FunctionValue<'ctx> {
    use inkwell::attributes::{Attribute, AttributeLoc};
    let ctx = outer.ctx;
    let attr = |n: &str| ctx.create_enum_attribute(Attribute::get_named_enum_kind_id(n), 0);
    let fty = ctx.void_type().fn_type(params, false);
    let f = outer
        .module
        .add_function(name, fty, Some(inkwell::module::Linkage::Internal));
    for a in ["nounwind", "noinline", "nosync", "nofree", "willreturn"] {
        f.add_attribute(AttributeLoc::Function, attr(a));
    }
    if wide {
        prefer_512(ctx, f);
        f.add_attribute(
            AttributeLoc::Function,
            ctx.create_string_attribute("min-legal-vector-width", "512"),
        );
    }
    for &p in noalias {
        f.add_attribute(AttributeLoc::Param(p), attr("noalias"));
    }
    for &p in readonly {
        f.add_attribute(AttributeLoc::Param(p), attr("readonly"));
    }
    f
}

/// Tells LLVM that `f` may use 512-bit vectors (it keeps its loops on 256
/// bits on AVX-512 cores unless told).
pub(crate) fn prefer_512<'ctx>(
    ctx: &'ctx inkwell::context::Context,
    f: inkwell::values::FunctionValue<'ctx>,
) {
    f.add_attribute(
        inkwell::attributes::AttributeLoc::Function,
        ctx.create_string_attribute("prefer-vector-width", "512"),
    );
}

/// Prefetches (for reading, into L2) the 64-byte line `line` of `base`.
pub(crate) fn prefetch_line<'ctx>(
    cx: &crate::cx::KernelCx<'_, 'ctx>,
    base: inkwell::values::PointerValue<'ctx>,
    line: inkwell::values::IntValue<'ctx>,
) -> crate::cx::CgResult<()> {
    prefetch_into(cx, cx.gep_f32(base, cx.mul_c(line, 16)?)?, 2)
}

/// Prefetches (for reading) the line at `at`, with `locality` 3 (into L1)
/// down to 0 (`llvm.prefetch`'s scale).
pub(crate) fn prefetch_into<'ctx>(
    cx: &crate::cx::KernelCx<'_, 'ctx>,
    at: inkwell::values::PointerValue<'ctx>,
    locality: i32,
) -> crate::cx::CgResult<()> {
    let f = inkwell::intrinsics::Intrinsic::find("llvm.prefetch")
        .and_then(|i| i.get_declaration(cx.module, &[at.get_type().into()]))
        .ok_or_else(|| crate::CodegenError::Llvm("no llvm.prefetch".into()))?;
    let args = [
        at.into(),
        cx.i32(0).into(),
        cx.i32(locality).into(),
        cx.i32(1).into(),
    ];
    cx.b.build_call(f, &args, "")?;
    Ok(())
}

/// What a microkernel call should prefetch while it runs: the packed panel
/// after `cur` (`panel` floats on), which its driver reads next. A call
/// prefetches one 64-byte line per k step, `k` in all: the first call of
/// the driver's inner loop over `cur` (`inner == 0`) takes the next panel's
/// first `k` lines, the second the rest (a panel of `NR` floats per k step
/// has `2k` lines at 32 lanes), and later calls `cur` itself, which is
/// cached by then. (Spreading the prefetches over all the calls measured
/// slower: most of them then hit lines already on their way.)
pub(crate) fn next_panel<'ctx>(
    cx: &crate::cx::KernelCx<'_, 'ctx>,
    cur: inkwell::values::PointerValue<'ctx>,
    panel: usize,
    k: usize,
    inner: inkwell::values::IntValue<'ctx>,
) -> crate::cx::CgResult<inkwell::values::PointerValue<'ctx>> {
    use inkwell::IntPredicate::EQ;
    let first = cx.gep_f32(cur, cx.i64(panel as i64))?;
    let second = cx.gep_f32(first, cx.i64(16 * k as i64))?;
    let is0 = cx.icmp(EQ, inner, cx.i64(0))?;
    let is1 = cx.icmp(EQ, inner, cx.i64(1))?;
    let p =
        cx.b.build_select(is1, second, cur, "")?
            .into_pointer_value();
    Ok(cx.b.build_select(is0, first, p, "")?.into_pointer_value())
}

/// `ceil(a / b)`.
pub(crate) fn div_ceil(a: usize, b: usize) -> usize {
    a.div_ceil(b.max(1))
}

/// The attributes of a float convolution (Conv, ConvClamp, ConvAdd) on
/// f32 tensors with constant weights and bias: what both float plans need.
fn float_conv_parts<'n>(
    node: &'n qcc_ir::Node,
    tys: [&qcc_ir::TensorType; 3],
    consts: (bool, bool),
) -> Option<&'n qcc_ir::ConvAttrs> {
    let a = match &node.op {
        qcc_ir::Op::Conv(a)
        | qcc_ir::Op::ConvClamp { conv: a, .. }
        | qcc_ir::Op::ConvAdd { conv: a, .. } => a,
        _ => return None,
    };
    let f32s = tys.iter().all(|t| t.dtype == qcc_ir::DType::F32);
    (f32s && consts.0 && consts.1).then_some(a)
}

/// How a float convolution runs on the microkernels.
pub enum FloatConv {
    /// Winograd F(2×2, 3×3) (`winograd.rs`): 3×3 stride-1 with enough
    /// channels and tiles to pay for the transforms.
    Winograd(winograd::Wino),
    /// Direct GEMM over an implicit im2col (`conv.rs`).
    Gemm(conv::ConvGemm),
}

impl FloatConv {
    /// Workspace scratch the plan needs, in bytes.
    pub fn scratch_bytes(&self) -> usize {
        match self {
            FloatConv::Winograd(p) => p.scratch_bytes(),
            FloatConv::Gemm(p) => p.scratch_bytes(),
        }
    }
}

/// The plan of `node` when it runs on the microkernels: a float Conv with
/// constant weights and a constant bias (or none), as Winograd when it
/// applies and the target allows it, else as a GEMM. The kernel
/// (`kernels::conv`) and the memory plan both ask this one function.
pub fn conv_plan(
    node: &qcc_ir::Node,
    x: &qcc_ir::TensorType,
    w: &qcc_ir::TensorType,
    out: &qcc_ir::TensorType,
    consts: (bool, bool),
    facts: &crate::portable::TargetFacts,
) -> Option<FloatConv> {
    let a = float_conv_parts(node, [x, w, out], consts)?;
    let shapes = (&x.shape[..], &w.shape[..], &out.shape[..]);
    let (simd, bare) = (facts.simd, facts.bare_metal);
    let wino = facts
        .winograd
        .then(|| winograd::Wino::new(a, shapes.0, shapes.1, shapes.2, simd, bare))
        .flatten();
    match wino {
        Some(p) => Some(FloatConv::Winograd(p)),
        None => {
            conv::ConvGemm::new(a, shapes.0, shapes.1, shapes.2, simd, bare).map(FloatConv::Gemm)
        }
    }
}

/// A QConv `node`'s attributes when both int8 convolution plans can apply:
/// constant int8 weights and constant bias, an input zero point the input
/// type can hold (the padding holds it), and a target with an OS (scratch).
fn qconv_parts<'n>(
    node: &'n qcc_ir::Node,
    x: &qcc_ir::TensorType,
    w: &qcc_ir::TensorType,
    consts: (bool, bool),
    facts: &crate::portable::TargetFacts,
) -> Option<&'n qcc_ir::ConvAttrs> {
    let qcc_ir::Op::QConv {
        conv, x_zero_point, ..
    } = &node.op
    else {
        return None;
    };
    if facts.bare_metal || !consts.0 || !consts.1 || w.dtype != qcc_ir::DType::I8 {
        return None;
    }
    let (lo, hi) = qcc_ir::infer::int8_range(x.dtype)?;
    (lo..=hi).contains(x_zero_point).then_some(conv)
}

/// The plan of a QConv `node` when it runs on the int8 microkernels. The
/// kernel (`kernels::qconv`) and the memory plan both ask this function.
pub fn qconv_plan(
    node: &qcc_ir::Node,
    x: &qcc_ir::TensorType,
    w: &qcc_ir::TensorType,
    out: &qcc_ir::TensorType,
    consts: (bool, bool),
    facts: &crate::portable::TargetFacts,
) -> Option<qconv::QConvGemm> {
    let conv = qconv_parts(node, x, w, consts, facts)?;
    qconv::QConvGemm::new(conv, &x.shape, &w.shape, &out.shape, facts)
}

/// The plan of a depthwise QConv `node` (one input channel per group) on
/// its own kernel (`qdw.rs`); asked by the kernel and the memory plan.
pub fn qdw_plan(
    node: &qcc_ir::Node,
    x: &qcc_ir::TensorType,
    w: &qcc_ir::TensorType,
    out: &qcc_ir::TensorType,
    consts: (bool, bool),
    facts: &crate::portable::TargetFacts,
) -> Option<qdw::QDwPlan> {
    let conv = qconv_parts(node, x, w, consts, facts)?;
    qdw::QDwPlan::new(conv, &x.shape, &w.shape, &out.shape, facts, 1)
}

/// The plan of a float depthwise convolution `node` (Conv, ConvClamp or
/// ConvAdd with one input channel per group, constant weights and bias)
/// when it runs on the f32 depthwise kernel (`dw.rs`; not on bare metal,
/// which has no scratch to spare). Strides 1 and 2: a column stride of 2
/// reads a two-phase copy of the padded plane (3×3 stride 2, 96 channels
/// at 112², side by side on Zen 3: 632 µs on the direct loops, 411 µs;
/// ONNX Runtime 566 µs). The kernel and the memory plan both ask this
/// function.
pub fn dw_plan(
    node: &qcc_ir::Node,
    x: &qcc_ir::TensorType,
    w: &qcc_ir::TensorType,
    out: &qcc_ir::TensorType,
    consts: (bool, bool),
    facts: &crate::portable::TargetFacts,
) -> Option<qdw::QDwPlan> {
    let a = float_conv_parts(node, [x, w, out], consts)?;
    if facts.bare_metal || facts.simd == Simd::Scalar {
        return None;
    }
    if a.strides.iter().any(|&s| s > 2) {
        return None;
    }
    qdw::QDwPlan::new(a, &x.shape, &w.shape, &out.shape, facts, 4)
}

/// Bytes of workspace scratch node `id`'s kernel needs (0 for most nodes).
pub fn node_scratch(
    g: &qcc_ir::Graph,
    id: qcc_ir::NodeId,
    facts: &crate::portable::TargetFacts,
) -> usize {
    let node = g.node(id);
    let ins = node.inputs();
    if ins.len() < 2 || node.outputs.len() != 1 {
        return 0;
    }
    let (x, w, out) = (g.value_type(ins[0]), g.value_type(ins[1]), &node.outputs[0]);
    if matches!(
        node.op,
        qcc_ir::Op::SignConv { .. } | qcc_ir::Op::SignMatMul { .. }
    ) {
        return crate::kernels::binary::scratch_bytes(&node.op, &x.shape, &w.shape, &out.shape);
    }
    let w_const = g.const_value(ins[1]).is_some();
    let b_const = ins.get(2).is_none_or(|b| g.const_value(*b).is_some());
    let consts = (w_const, b_const);
    let ffacts = match g.const_value(ins[1]).and_then(|t| t.as_f32()) {
        Some(wv) => facts.for_float_weights(wv),
        None => *facts,
    };
    if let Some(p) = conv_plan(node, x, w, out, consts, &ffacts) {
        return p.scratch_bytes();
    }
    if let Some(p) = dw_plan(node, x, w, out, consts, facts) {
        return p.scratch_bytes();
    }
    // The int8 microkernel depends on the weights' range (`for_weights`),
    // as the kernels ask it.
    let int8 = matches!(node.op, qcc_ir::Op::QConv { .. } | qcc_ir::Op::QGemm { .. });
    let wfacts = match g
        .const_value(ins[1])
        .filter(|_| int8)
        .and_then(|t| t.to_i64_vec())
    {
        Some(wv) => facts.for_weights(&wv, w),
        None => *facts,
    };
    let facts = &wfacts;
    if let Some(p) = qconv_plan(node, x, w, out, consts, facts) {
        return p.scratch_bytes();
    }
    if let qcc_ir::Op::QGemm { .. } = node.op {
        let ok = consts.0 && consts.1 && x.shape.len() == 2 && w.shape.len() == 2;
        return match ok.then(|| qgemm::QGemmPlan::new(facts, x.shape[0], x.shape[1], w.shape[1])) {
            Some(Some(p)) => p.scratch_bytes(),
            _ => 0,
        };
    }
    qdw_plan(node, x, w, out, consts, facts).map_or(0, |p| p.scratch_bytes())
}

/// Covers `0..total` with blocks of `block` items: `body(cx, b, len)` for
/// block index `b`, the full blocks in a loop (`len == block`), then the
/// tail once with its own constant `len`. Every size a driver sees is static.
pub(crate) fn for_blocks<'a, 'ctx>(
    cx: &mut crate::cx::KernelCx<'a, 'ctx>,
    total: usize,
    block: usize,
    mut body: impl FnMut(
        &mut crate::cx::KernelCx<'a, 'ctx>,
        inkwell::values::IntValue<'ctx>,
        usize,
    ) -> crate::cx::CgResult<()>,
) -> crate::cx::CgResult<()> {
    let block = block.max(1);
    let full = total / block;
    cx.for_range(0, full as i64, |cx, b| body(cx, b, block))?;
    if !total.is_multiple_of(block) {
        body(cx, cx.i64(full as i64), total % block)?;
    }
    Ok(())
}
