//! ONNX Gather along one axis, any data type, i64 or i32 indices.
//!
//! Negative indices count from the end; out-of-range indices are clamped
//! into `[0, dim)` so a bad index can never read outside the data. With
//! constant indices (few enough) the offsets are computed at compile time.

use super::expect_inputs;
use crate::cx::{CgResult, KernelCx, Operand};
use inkwell::values::IntValue;
use inkwell::IntPredicate;
use qcc_ir::{DType, Node, Op};

/// Constant index lists up to this length are unrolled with static offsets.
const MAX_STATIC_INDICES: usize = 64;

/// Normalizes and clamps one index into `[0, dim)` (`dim > 0`).
pub fn clamp_index(i: i64, dim: usize) -> usize {
    let d = dim as i64;
    let k = if i < 0 { i.saturating_add(d) } else { i };
    k.clamp(0, d - 1) as usize
}

pub fn emit<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    node: &Node,
    ins: &[Operand<'_, 'ctx>],
    out: &Operand<'_, 'ctx>,
) -> CgResult<()> {
    expect_inputs(cx, ins, 2)?;
    let Op::Gather { axis } = node.op else {
        return Err(cx.unsupported("not a gather"));
    };
    let (data, idx) = (&ins[0], &ins[1]);
    let dt = data.dtype();
    if dt != out.dtype() {
        return Err(cx.unsupported("data and output types differ"));
    }
    if !matches!(idx.dtype(), DType::I64 | DType::I32) {
        return Err(cx.unsupported(format!("{} indices (need i64 or i32)", idx.dtype())));
    }
    if axis >= data.rank() {
        return Err(cx.unsupported(format!("axis {axis} out of range for {}", data.ty)));
    }
    let outer: usize = data.shape()[..axis].iter().product();
    let dim = data.shape()[axis];
    let inner: usize = data.shape()[axis + 1..].iter().product();
    let n_idx = idx.numel();
    if outer * n_idx * inner != out.numel() {
        return Err(cx.unsupported("output size does not match data and indices"));
    }
    if out.numel() == 0 {
        return Ok(());
    }
    if dim == 0 {
        return Err(cx.unsupported("gathering from an empty axis"));
    }
    let es = dt.size() as u32;
    let bytes = (inner * dt.size()) as u64;
    let statik = idx
        .konst
        .and_then(|t| t.to_i64_vec())
        .filter(|v| v.len() == n_idx && n_idx <= MAX_STATIC_INDICES);

    cx.for_range(0, outer as i64, |cx, o| {
        let src_row = cx.mul_c(o, (dim * inner) as i64)?;
        let dst_row = cx.mul_c(o, (n_idx * inner) as i64)?;
        let copy = |cx: &mut KernelCx<'_, 'ctx>, k: IntValue<'ctx>, j: IntValue<'ctx>| {
            let si = cx.add(src_row, cx.mul_c(k, inner as i64)?)?;
            let di = cx.add(dst_row, cx.mul_c(j, inner as i64)?)?;
            let src = cx.gep(dt, data.ptr, si)?;
            let dst = cx.gep(dt, out.ptr, di)?;
            cx.memcpy(dst, es, src, es, bytes)
        };
        match &statik {
            Some(v) => {
                for (j, &i) in v.iter().enumerate() {
                    let k = cx.i64(clamp_index(i, dim) as i64);
                    copy(cx, k, cx.i64(j as i64))?;
                }
                Ok(())
            }
            None => cx.for_range(0, n_idx as i64, |cx, j| {
                let i = cx.load_index(idx.dtype(), idx.ptr, j)?;
                let neg = cx.icmp(IntPredicate::SLT, i, cx.i64(0))?;
                let wrapped = cx.b.build_int_add(i, cx.i64(dim as i64), "")?;
                let k = cx.select_i(neg, wrapped, i)?;
                let k = cx.smax(k, cx.i64(0))?;
                let k = cx.smin(k, cx.i64(dim as i64 - 1))?;
                copy(cx, k, j)
            }),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::clamp_index;

    #[test]
    fn indices_are_normalized_and_clamped() {
        assert_eq!(clamp_index(0, 5), 0);
        assert_eq!(clamp_index(4, 5), 4);
        assert_eq!(clamp_index(-1, 5), 4);
        assert_eq!(clamp_index(-5, 5), 0);
        assert_eq!(clamp_index(-6, 5), 0);
        assert_eq!(clamp_index(7, 5), 4);
        assert_eq!(clamp_index(i64::MIN, 5), 0);
    }
}
