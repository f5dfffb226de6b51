//! Data movement kernels, for every element type: non-alias Reshape (a
//! copy), Transpose, Concat, Slice (any steps, negative included) and
//! constant Pad.
//!
//! Each is a strided copy: a loop nest over the coalesced output shape with
//! per-operand strides, innermost dim contiguous in the output.

use super::expect_inputs;
use crate::cx::{CgResult, KernelCx, Operand};
use crate::loops::coalesce;
use inkwell::values::PointerValue;
use qcc_ir::{DType, Node, Op};

fn strides_i64(shape: &[usize]) -> Vec<i64> {
    qcc_ir::strides_of(shape)
        .into_iter()
        .map(|s| s as i64)
        .collect()
}

/// Copies `shape` elements of `dt`: `dst[dbase + Σ i·dst_st] = src[sbase + Σ i·src_st]`.
#[allow(clippy::too_many_arguments)]
fn strided_copy<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    dt: DType,
    shape: &[usize],
    dst: PointerValue<'ctx>,
    dst_st: Vec<i64>,
    dbase: i64,
    src: PointerValue<'ctx>,
    src_st: Vec<i64>,
    sbase: i64,
) -> CgResult<()> {
    let (cs, st) = coalesce(shape, &[dst_st, src_st]);
    cx.for_nest(&cs, |cx, ivs| {
        let di = cx.dot(ivs, &st[0], dbase)?;
        let si = cx.dot(ivs, &st[1], sbase)?;
        let v = cx.load(dt, src, si)?;
        cx.store(dt, dst, di, v)
    })
}

fn same_dtype(cx: &KernelCx<'_, '_>, a: &Operand, out: &Operand) -> CgResult<()> {
    if a.dtype() != out.dtype() {
        return Err(cx.unsupported(format!(
            "input type {} differs from output type {}",
            a.dtype(),
            out.dtype()
        )));
    }
    Ok(())
}

/// A Reshape that the memory plan could not alias (its output is a graph output): memcpy.
pub fn emit_reshape<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    _node: &Node,
    ins: &[Operand<'_, 'ctx>],
    out: &Operand<'_, 'ctx>,
) -> CgResult<()> {
    expect_inputs(cx, ins, 1)?;
    let x = &ins[0];
    same_dtype(cx, x, out)?;
    if x.numel() != out.numel() {
        return Err(cx.unsupported("element counts differ"));
    }
    cx.memcpy(
        out.ptr,
        out.align,
        x.ptr,
        x.align,
        out.ty.byte_size() as u64,
    )
}

pub fn emit_transpose<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    node: &Node,
    ins: &[Operand<'_, 'ctx>],
    out: &Operand<'_, 'ctx>,
) -> CgResult<()> {
    expect_inputs(cx, ins, 1)?;
    let Op::Transpose { perm } = &node.op else {
        return Err(cx.unsupported("not a transpose"));
    };
    let x = &ins[0];
    same_dtype(cx, x, out)?;
    if perm.len() != x.rank() || perm.iter().any(|&p| p >= x.rank()) {
        return Err(cx.unsupported(format!("perm {perm:?} does not fit {}", x.ty)));
    }
    let sx = x.strides();
    let read: Vec<i64> = perm.iter().map(|&p| sx[p]).collect();
    let shape = out.shape().to_vec();
    strided_copy(
        cx,
        out.dtype(),
        &shape,
        out.ptr,
        strides_i64(&shape),
        0,
        x.ptr,
        read,
        0,
    )
}

pub fn emit_concat<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    node: &Node,
    ins: &[Operand<'_, 'ctx>],
    out: &Operand<'_, 'ctx>,
) -> CgResult<()> {
    expect_inputs(cx, ins, 1)?;
    let Op::Concat { axis } = node.op else {
        return Err(cx.unsupported("not a concat"));
    };
    if axis >= out.rank() {
        return Err(cx.unsupported(format!("axis {axis} out of range")));
    }
    let dt = out.dtype();
    let es = dt.size() as u64;
    let outer: usize = out.shape()[..axis].iter().product();
    let inner_out: usize = out.shape()[axis..].iter().product();
    let mut offset = 0usize;
    for x in ins {
        same_dtype(cx, x, out)?;
        if x.rank() != out.rank() {
            return Err(cx.unsupported("input ranks differ"));
        }
        let inner: usize = x.shape()[axis..].iter().product();
        if offset + inner > inner_out {
            return Err(cx.unsupported("inputs exceed the output along the axis"));
        }
        let bytes = inner as u64 * es;
        let off = offset as i64;
        cx.for_range(0, outer as i64, |cx, o| {
            let di = cx.add_c(cx.mul_c(o, inner_out as i64)?, off)?;
            let si = cx.mul_c(o, inner as i64)?;
            let dst = cx.gep(dt, out.ptr, di)?;
            let src = cx.gep(dt, x.ptr, si)?;
            cx.memcpy(dst, es as u32, src, es as u32, bytes)
        })?;
        offset += inner;
    }
    Ok(())
}

pub fn emit_slice<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    node: &Node,
    ins: &[Operand<'_, 'ctx>],
    out: &Operand<'_, 'ctx>,
) -> CgResult<()> {
    expect_inputs(cx, ins, 1)?;
    let Op::Slice {
        starts,
        steps,
        lens,
    } = &node.op
    else {
        return Err(cx.unsupported("not a slice"));
    };
    let x = &ins[0];
    same_dtype(cx, x, out)?;
    let r = x.rank();
    if starts.len() != r || steps.len() != r || lens.len() != r || out.shape() != lens.as_slice() {
        return Err(cx.unsupported("starts/steps/lens do not match the input rank"));
    }
    for d in 0..r {
        let n = lens[d] as i64;
        let last = starts[d] + (n - 1).max(0) * steps[d];
        let dim = x.shape()[d] as i64;
        if n > 0 && (starts[d] < 0 || starts[d] >= dim || last < 0 || last >= dim) {
            return Err(cx.unsupported(format!("dim {d} slice leaves the input")));
        }
    }
    let sx = x.strides();
    let base: i64 = (0..r).map(|d| starts[d] * sx[d]).sum();
    let read: Vec<i64> = (0..r).map(|d| steps[d] * sx[d]).collect();
    strided_copy(
        cx,
        out.dtype(),
        lens,
        out.ptr,
        strides_i64(lens),
        0,
        x.ptr,
        read,
        base,
    )
}

pub fn emit_pad<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    node: &Node,
    ins: &[Operand<'_, 'ctx>],
    out: &Operand<'_, 'ctx>,
) -> CgResult<()> {
    expect_inputs(cx, ins, 1)?;
    let Op::Pad { pads, value } = &node.op else {
        return Err(cx.unsupported("not a pad"));
    };
    let x = &ins[0];
    same_dtype(cx, x, out)?;
    let r = x.rank();
    if pads.len() != 2 * r || (0..r).any(|d| x.shape()[d] + pads[d] + pads[d + r] != out.shape()[d])
    {
        return Err(cx.unsupported(format!("pads {pads:?} do not fit {}", x.ty)));
    }
    let dt = out.dtype();
    // 1. Fill with the pad value where there is any padding.
    if pads.iter().any(|&p| p != 0) {
        let fill = cx.const_of(dt, *value as f64);
        let zero_bits = match dt {
            DType::F32 => value.to_bits() == 0,
            DType::Bool => *value == 0.0,
            _ => value.trunc() == 0.0,
        };
        if zero_bits {
            cx.memset(out.ptr, out.align, 0, out.ty.byte_size() as u64)?;
        } else {
            cx.for_range(0, out.numel() as i64, |cx, i| {
                cx.store(dt, out.ptr, i, fill)
            })?;
        }
    }
    // 2. Copy the input into the interior.
    let so = out.strides();
    let base: i64 = (0..r).map(|d| pads[d] as i64 * so[d]).sum();
    let shape = x.shape().to_vec();
    strided_copy(cx, dt, &shape, out.ptr, so, base, x.ptr, x.strides(), 0)
}
