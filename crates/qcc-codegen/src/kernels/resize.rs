//! Resize: nearest (every rounding mode), n-linear and cubic interpolation
//! under every coordinate transform of the ONNX spec, without antialiasing.
//!
//! Shapes are static, so per dim and output coordinate the source indices
//! and interpolation weight are computed here in Rust (coordinates in f32
//! with the operation order of the ONNX formulas, like onnxruntime and the
//! reference interpreter) and emitted as small constant tables: the
//! generated code only loads, multiplies and adds (no floor/round at run
//! time). Dims that map every coordinate to itself need no table; dims whose
//! weights are all zero (nearest, or integral coordinates) need no lerp.

use super::conv::{const_f32_table, const_i64_table};
use super::expect_inputs;
use crate::cx::{CgResult, KernelCx, Operand};
use inkwell::values::{FloatValue, IntValue, PointerValue};
use qcc_ir::resize::{round_nearest, source_coord};
use qcc_ir::{DType, Node, Op, ResizeAttrs, ResizeMode};

/// `x` clamped into `[0, len - 1]` (NaN gives 0).
fn clamp_coord(x: f32, len: usize) -> f32 {
    if x.is_nan() {
        0.0
    } else {
        x.clamp(0.0, len.saturating_sub(1) as f32)
    }
}

/// Per output coordinate of one dim: the lower source index, the upper one
/// and the weight of the upper one.
#[derive(Debug, PartialEq)]
pub(crate) struct AxisMap {
    pub lo: Vec<usize>,
    pub hi: Vec<usize>,
    pub w: Vec<f32>,
}

impl AxisMap {
    pub fn new(r: &ResizeAttrs, d: usize, len_in: usize, len_out: usize) -> AxisMap {
        let scale = r.scales[d];
        let mut m = AxisMap {
            lo: Vec::with_capacity(len_out),
            hi: Vec::with_capacity(len_out),
            w: Vec::with_capacity(len_out),
        };
        for x in 0..len_out {
            let xo = source_coord(r.coord, x, scale, len_in, len_out);
            match r.mode {
                ResizeMode::Nearest => {
                    let i = clamp_coord(round_nearest(r.nearest, xo), len_in) as usize;
                    m.lo.push(i);
                    m.hi.push(i);
                    m.w.push(0.0);
                }
                // Cubic resizes take `emit_cubic`; this map is not read for them.
                ResizeMode::Linear | ResizeMode::Cubic { .. } => {
                    let xc = clamp_coord(xo, len_in);
                    let i0 = xc.floor();
                    let lo = i0 as usize;
                    m.lo.push(lo);
                    m.hi.push((lo + 1).min(len_in.saturating_sub(1)));
                    m.w.push(xc - i0);
                }
            }
        }
        m
    }

    fn is_identity(&self) -> bool {
        self.lo.iter().enumerate().all(|(i, &l)| l == i) && self.w.iter().all(|&w| w == 0.0)
    }

    fn interpolates(&self) -> bool {
        self.w.iter().any(|&w| w != 0.0)
    }
}

/// How one dim reads the input.
enum Axis<'ctx> {
    /// Output coordinate = input coordinate: offset `o * stride`.
    Identity(i64),
    /// One source per coordinate: offset table.
    Gather(PointerValue<'ctx>),
    /// Two sources: offset table, (hi - lo) offset table, weight table.
    Lerp(PointerValue<'ctx>, PointerValue<'ctx>, PointerValue<'ctx>),
}

/// Emits the body of the node function for Resize.
pub fn emit<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    node: &Node,
    ins: &[Operand<'_, 'ctx>],
    out: &Operand<'_, 'ctx>,
) -> CgResult<()> {
    let Op::Resize(r) = &node.op else {
        return Err(cx.unsupported("not a resize"));
    };
    expect_inputs(cx, ins, 1)?;
    let x = &ins[0];
    if x.dtype() != DType::F32 || out.dtype() != DType::F32 {
        return Err(cx.unsupported("only f32 operands are supported"));
    }
    let rank = x.rank();
    if r.scales.len() != rank || out.rank() != rank {
        return Err(cx.unsupported(format!("scales/sizes do not match {}", x.ty)));
    }
    if x.numel() == 0 {
        return Err(cx.unsupported(format!("cannot resize the empty {}", x.ty)));
    }
    if let ResizeMode::Cubic { .. } = r.mode {
        return emit_cubic(cx, r, x, out);
    }
    let st = x.strides();
    let mut axes = Vec::with_capacity(rank);
    for (d, &stride) in st.iter().enumerate() {
        let m = AxisMap::new(r, d, x.shape()[d], out.shape()[d]);
        let off = |v: &[usize]| -> Vec<i64> { v.iter().map(|&i| i as i64 * stride).collect() };
        axes.push(if m.is_identity() {
            Axis::Identity(stride)
        } else if !m.interpolates() {
            Axis::Gather(const_i64_table(cx, "resize.idx", &off(&m.lo)))
        } else {
            let (lo, hi) = (off(&m.lo), off(&m.hi));
            let delta: Vec<i64> = hi.iter().zip(&lo).map(|(h, l)| h - l).collect();
            Axis::Lerp(
                const_i64_table(cx, "resize.idx", &lo),
                const_i64_table(cx, "resize.step", &delta),
                const_f32_table(cx, "resize.w", &m.w),
            )
        });
    }
    if axes.iter().filter(|a| matches!(a, Axis::Lerp(..))).count() > 8 {
        return Err(cx.unsupported("interpolation along more than 8 dims"));
    }
    let shape = out.shape().to_vec();
    let ost = out.strides();
    cx.for_nest(&shape, |cx, ivs| {
        let mut base = cx.i64(0);
        let mut lerps: Vec<(IntValue, FloatValue)> = vec![];
        for (a, &o) in axes.iter().zip(ivs) {
            let off = match a {
                Axis::Identity(s) => cx.mul_c(o, *s)?,
                Axis::Gather(t) => cx.load_index(DType::I64, *t, o)?,
                Axis::Lerp(t, dt, wt) => {
                    lerps.push((cx.load_index(DType::I64, *dt, o)?, cx.load_f32(*wt, o)?));
                    cx.load_index(DType::I64, *t, o)?
                }
            };
            base = cx.add(base, off)?;
        }
        let v = interp(cx, x.ptr, base, &lerps)?;
        cx.store_f32(out.ptr, cx.dot(ivs, &ost, 0)?, v)
    })
}

/// n-linear interpolation: `a + w * (b - a)` along each interpolated dim in turn.
fn interp<'ctx>(
    cx: &KernelCx<'_, 'ctx>,
    x: PointerValue<'ctx>,
    at: IntValue<'ctx>,
    lerps: &[(IntValue<'ctx>, FloatValue<'ctx>)],
) -> CgResult<FloatValue<'ctx>> {
    let Some(((delta, w), rest)) = lerps.split_first() else {
        return cx.load_f32(x, at);
    };
    let a = interp(cx, x, at, rest)?;
    let b = interp(cx, x, cx.add(at, *delta)?, rest)?;
    cx.fmuladd(*w, cx.fsub(b, a)?, a)
}

/// Cubic Resize: per resized dim, tables of four source offsets and four
/// weights per output coordinate (`qcc_ir::resize::cubic_taps`); each output
/// is the weighted sum over every combination of taps (16 for a 2-D resize),
/// unrolled. At most three dims may be resized.
fn emit_cubic<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    r: &ResizeAttrs,
    x: &Operand<'_, 'ctx>,
    out: &Operand<'_, 'ctx>,
) -> CgResult<()> {
    use qcc_ir::resize::{cubic_is_identity, cubic_taps};
    let st = x.strides();
    // Per dim: `None` for a dim read at its own coordinate, else the tables.
    let mut dims: Vec<Option<(PointerValue<'ctx>, PointerValue<'ctx>)>> = vec![];
    for (d, &stride) in st.iter().enumerate() {
        let (len_in, len_out) = (x.shape()[d], out.shape()[d]);
        let taps = cubic_taps(r, d, len_in, len_out)
            .ok_or_else(|| cx.unsupported("internal: cubic taps"))?;
        if cubic_is_identity(&taps, len_in) {
            dims.push(None);
            continue;
        }
        let offs: Vec<i64> = taps
            .iter()
            .flat_map(|(i, _)| i.map(|i| i as i64 * stride))
            .collect();
        let ws: Vec<f32> = taps.iter().flat_map(|(_, w)| *w).collect();
        dims.push(Some((
            const_i64_table(cx, "resize.cubic.idx", &offs),
            const_f32_table(cx, "resize.cubic.w", &ws),
        )));
    }
    if dims.iter().flatten().count() > 3 {
        return Err(cx.unsupported("cubic interpolation along more than 3 dims"));
    }
    let shape = out.shape().to_vec();
    let ost = out.strides();
    cx.for_nest(&shape, |cx, ivs| {
        let mut base = cx.i64(0);
        let mut taps = vec![];
        for ((t, &o), &stride) in dims.iter().zip(ivs).zip(&st) {
            match t {
                None => base = cx.add(base, cx.mul_c(o, stride)?)?,
                Some((offs, ws)) => taps.push((*offs, *ws, cx.mul_c(o, 4)?)),
            }
        }
        let v = cubic_sum(cx, x.ptr, base, &taps)?;
        cx.store_f32(out.ptr, cx.dot(ivs, &ost, 0)?, v)
    })
}

/// `Σ_k w[k] · (the rest of the dims' sum at offset + off[k])` over the four
/// taps of the first dim in `taps` (`(offsets, weights, 4 · coordinate)`).
fn cubic_sum<'ctx>(
    cx: &KernelCx<'_, 'ctx>,
    x: PointerValue<'ctx>,
    at: IntValue<'ctx>,
    taps: &[(PointerValue<'ctx>, PointerValue<'ctx>, IntValue<'ctx>)],
) -> CgResult<FloatValue<'ctx>> {
    let Some(((offs, ws, row), rest)) = taps.split_first() else {
        return cx.load_f32(x, at);
    };
    let mut acc = cx.f32(0.0);
    for k in 0..4 {
        let i = cx.add_c(*row, k)?;
        let off = cx.load_index(DType::I64, *offs, i)?;
        let v = cubic_sum(cx, x, cx.add(at, off)?, rest)?;
        acc = cx.fmuladd(cx.load_f32(*ws, i)?, v, acc)?;
    }
    Ok(acc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use qcc_ir::{CoordTransform, NearestMode};

    fn attrs(
        mode: ResizeMode,
        coord: CoordTransform,
        nearest: NearestMode,
        scale: f32,
    ) -> ResizeAttrs {
        ResizeAttrs {
            mode,
            coord,
            nearest,
            scales: vec![scale],
            sizes: vec![],
        }
    }

    #[test]
    fn axis_maps_clamp_at_the_edges() {
        let r = attrs(
            ResizeMode::Linear,
            CoordTransform::HalfPixel,
            NearestMode::Floor,
            2.0,
        );
        let m = AxisMap::new(&r, 0, 2, 4);
        // Coordinates -0.25, 0.25, 0.75, 1.25 → clamped to [0, 1].
        assert_eq!(m.lo, vec![0, 0, 0, 1]);
        assert_eq!(m.hi, vec![1, 1, 1, 1]);
        assert_eq!(m.w, vec![0.0, 0.25, 0.75, 0.0]);
        let r = attrs(
            ResizeMode::Nearest,
            CoordTransform::Asymmetric,
            NearestMode::Ceil,
            0.5,
        );
        let m = AxisMap::new(&r, 0, 5, 2);
        assert_eq!(m.lo, vec![0, 2]);
        assert!(!m.interpolates());
    }
}
