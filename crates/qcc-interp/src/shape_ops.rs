//! Data-movement ops on any dtype: Reshape, Transpose, Concat, Slice, Pad
//! (constant), Gather, and Cast between all dtypes.

use crate::elem::{elems, for_dtype, Elem};
use crate::index::{signed_strides, split_at_axis, take, Offsets};
use qcc_ir::{Tensor, TensorData};

/// Gathers the elements of `x` at `offsets`, whatever its dtype.
fn take_any(x: &Tensor, offsets: impl Iterator<Item = i64>) -> Result<TensorData, String> {
    for_dtype!(x.dtype(), T => Ok(T::wrap(take(elems::<T>(x, "input")?, offsets)?)))
}

/// Transpose: output dim `i` is input dim `perm[i]`.
pub fn transpose(x: &Tensor, perm: &[usize]) -> Result<TensorData, String> {
    let xs = x.shape();
    let st = signed_strides(xs);
    if perm.len() != xs.len() {
        return Err(format!("perm {perm:?} does not fit {}", x.ty()));
    }
    let mut out_shape = Vec::with_capacity(perm.len());
    let mut out_strides = Vec::with_capacity(perm.len());
    for &p in perm {
        let (Some(&n), Some(&s)) = (xs.get(p), st.get(p)) else {
            return Err(format!("perm {perm:?} does not fit {}", x.ty()));
        };
        out_shape.push(n);
        out_strides.push(s);
    }
    take_any(x, Offsets::new(&out_shape, &out_strides, 0))
}

/// Concatenation along `axis`; all inputs share the dtype and the other dims.
pub fn concat(ins: &[&Tensor], axis: usize) -> Result<TensorData, String> {
    let first = ins.first().ok_or("takes at least 1 input, got 0")?;
    for_dtype!(first.dtype(), T => concat_t::<T>(ins, axis))
}

fn concat_t<T: Elem>(ins: &[&Tensor], axis: usize) -> Result<TensorData, String> {
    let mut parts = Vec::with_capacity(ins.len());
    let fs = ins[0].shape();
    for t in ins {
        let s = t.shape();
        let same = s.len() == fs.len()
            && axis < s.len()
            && (0..s.len()).all(|d| d == axis || s[d] == fs[d]);
        if !same {
            return Err(format!(
                "inputs {} and {} differ off axis {axis}",
                ins[0].ty(),
                t.ty()
            ));
        }
        let (_, dim, inner) = split_at_axis(s, axis);
        parts.push((elems::<T>(t, "every input")?, dim * inner));
    }
    let (outer, _, _) = split_at_axis(fs, axis);
    let mut out = Vec::with_capacity(parts.iter().map(|(v, _)| v.len()).sum());
    for o in 0..outer {
        for (v, chunk) in &parts {
            out.extend_from_slice(
                v.get(o * chunk..(o + 1) * chunk)
                    .ok_or("internal: concat chunk out of range")?,
            );
        }
    }
    Ok(T::wrap(out))
}

/// Strided slice: `out[i…] = x[starts[d] + i[d] * steps[d]…]`, `lens[d]` elements per dim.
pub fn slice(
    x: &Tensor,
    starts: &[i64],
    steps: &[i64],
    lens: &[usize],
) -> Result<TensorData, String> {
    let xs = x.shape();
    let r = xs.len();
    if starts.len() != r || steps.len() != r || lens.len() != r {
        return Err(format!(
            "starts/steps/lens must have one entry per dim of {}",
            x.ty()
        ));
    }
    let st = signed_strides(xs);
    let mut base = 0i64;
    let mut strides = Vec::with_capacity(r);
    for d in 0..r {
        let (s, step, n, dim) = (starts[d], steps[d], lens[d] as i64, xs[d] as i64);
        if n > 0 {
            let last = (n - 1).checked_mul(step).and_then(|l| l.checked_add(s));
            match last {
                Some(last) if step != 0 && (0..dim).contains(&s) && (0..dim).contains(&last) => {}
                _ => {
                    return Err(format!(
                        "dim {d}: start {s}, step {step}, {n} elements leave [0,{dim})"
                    ))
                }
            }
        }
        base += s.clamp(0, dim) * st[d];
        strides.push(step.clamp(-dim, dim) * st[d]);
    }
    take_any(x, Offsets::new(lens, &strides, base))
}

/// Constant padding by `[begin…, end…]` with `value` converted to the tensor's dtype.
pub fn pad(
    x: &Tensor,
    pads: &[usize],
    value: f32,
    out_shape: &[usize],
) -> Result<TensorData, String> {
    for_dtype!(x.dtype(), T => pad_t::<T>(x, pads, T::from_f32(value), out_shape))
}

fn pad_t<T: Elem>(
    x: &Tensor,
    pads: &[usize],
    fill: T,
    out_shape: &[usize],
) -> Result<TensorData, String> {
    let v = elems::<T>(x, "input")?;
    let xs = x.shape();
    let r = xs.len();
    if pads.len() != 2 * r || out_shape.len() != r {
        return Err(format!(
            "pads {pads:?} must have 2 entries per dim of {}",
            x.ty()
        ));
    }
    let st = qcc_ir::strides_of(xs);
    let n = qcc_ir::numel(out_shape);
    let mut out = Vec::with_capacity(n);
    let mut idx = vec![0usize; r];
    for _ in 0..n {
        let mut off = Some(0usize);
        for d in 0..r {
            off = match (off, idx[d].checked_sub(pads[d])) {
                (Some(o), Some(i)) if i < xs[d] => Some(o + i * st[d]),
                _ => None,
            };
        }
        out.push(match off {
            Some(o) => *v.get(o).ok_or("internal: pad offset out of range")?,
            None => fill,
        });
        for d in (0..r).rev() {
            idx[d] += 1;
            if idx[d] < out_shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    Ok(T::wrap(out))
}

/// ONNX Gather along `axis`; negative indices count from the end, out-of-range ones are errors.
pub fn gather(x: &Tensor, indices: &Tensor, axis: usize) -> Result<TensorData, String> {
    let idx = match indices.data() {
        TensorData::I64(_) | TensorData::I32(_) => indices.to_i64_vec().unwrap_or_default(),
        _ => return Err(format!("indices must be i64 or i32, got {}", indices.ty())),
    };
    if axis >= x.shape().len() {
        return Err(format!("axis {axis} out of range for {}", x.ty()));
    }
    let (outer, dim, inner) = split_at_axis(x.shape(), axis);
    let mut resolved = Vec::with_capacity(idx.len());
    for &i in &idx {
        let j = if i < 0 { i + dim as i64 } else { i };
        if j < 0 || j >= dim as i64 {
            return Err(format!(
                "index {i} out of range for axis {axis} of size {dim}"
            ));
        }
        resolved.push(j);
    }
    let (dim, inner) = (dim as i64, inner as i64);
    let offsets = (0..outer as i64).flat_map(|o| {
        resolved
            .iter()
            .flat_map(move |&j| (0..inner).map(move |t| (o * dim + j) * inner + t))
    });
    take_any(x, offsets)
}

/// Cast to `T`: floats truncate toward zero (saturating, NaN → 0), integers wrap, bool is `x != 0`.
pub fn cast<T: Elem>(x: &Tensor) -> TensorData {
    T::wrap(match x.data() {
        TensorData::F32(v) => v.iter().map(|&a| T::from_f32(a)).collect(),
        TensorData::I64(v) => v.iter().map(|&a| T::from_i64(a)).collect(),
        TensorData::I32(v) => v.iter().map(|&a| T::from_i64(a as i64)).collect(),
        TensorData::I8(v) => v.iter().map(|&a| T::from_i64(a as i64)).collect(),
        TensorData::U8(v) => v.iter().map(|&a| T::from_i64(a as i64)).collect(),
        TensorData::Bool(v) => v.iter().map(|&a| T::from_i64(a as i64)).collect(),
    })
}
