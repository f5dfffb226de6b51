//! Ops that only change a shape: Reshape, Flatten, Squeeze, Unsqueeze (all
//! IR Reshapes), Transpose, and Expand (broadcasting add of zeros).

use super::{MAX_CONST_ELEMS, R};
use crate::node::NodeCx;
use qcc_ir::{broadcast_shapes, numel, BinaryOp, DType, Op, Tensor, TensorType};

/// Resolves an ONNX Reshape target: `0` copies the input dim (unless
/// `allow_zero`), one `-1` is inferred from the element count.
pub(crate) fn reshape_target(
    input: &[usize],
    spec: &[i64],
    allow_zero: bool,
) -> Result<Vec<usize>, String> {
    let mut out = Vec::with_capacity(spec.len());
    let mut infer_at = None;
    for (i, &d) in spec.iter().enumerate() {
        match d {
            -1 if infer_at.is_some() => return Err(format!("shape {spec:?} has more than one -1")),
            -1 => {
                infer_at = Some(i);
                out.push(1);
            }
            0 if !allow_zero => match input.get(i) {
                Some(&v) => out.push(v),
                None => {
                    return Err(format!(
                        "shape {spec:?} copies dim {i} with 0, but the input has rank {}",
                        input.len()
                    ))
                }
            },
            d if d >= 0 => out.push(d as usize),
            d => return Err(format!("shape {spec:?} has invalid entry {d}")),
        }
    }
    let total = numel(input);
    if let Some(i) = infer_at {
        let known = out
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != i)
            .try_fold(1usize, |acc, (_, &d)| acc.checked_mul(d));
        match known {
            Some(k) if k != 0 && total.is_multiple_of(k) => out[i] = total / k,
            _ => {
                return Err(format!(
                    "cannot infer the -1 in shape {spec:?} for {total} elements"
                ))
            }
        }
    }
    let count = out.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    if count != Some(total) {
        return Err(format!(
            "cannot reshape {input:?} ({total} elements) to {spec:?}"
        ));
    }
    Ok(out)
}

pub(super) fn reshape(cx: &mut NodeCx) -> R {
    let x = cx.input(0)?;
    // Before opset 5 the shape is an attribute.
    let spec = if cx.opset < 5 {
        cx.attr(cx.attrs.ints("shape"))?
            .ok_or_else(|| cx.err("attribute 'shape' is missing"))?
    } else {
        cx.const_ints(1, "shape")?
            .ok_or_else(|| cx.err("input 'shape' is missing"))?
    };
    let allow_zero = cx.opset >= 14 && cx.attr(cx.attrs.flag("allowzero", false))?;
    let shape = reshape_target(&cx.ty(x).shape, &spec, allow_zero).map_err(|m| cx.err(m))?;
    Ok(vec![cx.add(Op::Reshape { shape }, vec![x])?])
}

pub(super) fn flatten(cx: &mut NodeCx) -> R {
    let x = cx.input(0)?;
    let shape = cx.ty(x).shape;
    let r = shape.len() as i64;
    let axis = cx.attr(cx.attrs.int_or("axis", 1))?;
    let a = if axis < 0 { axis + r } else { axis };
    if !(0..=r).contains(&a) {
        return Err(cx.err(format!(
            "attribute 'axis' {axis} is out of range for rank {r}"
        )));
    }
    let a = a as usize;
    let target = vec![numel(&shape[..a]), numel(&shape[a..])];
    Ok(vec![cx.add(Op::Reshape { shape: target }, vec![x])?])
}

/// Axes of Squeeze/Unsqueeze: an attribute before opset 13, an input after.
fn squeeze_axes(cx: &mut NodeCx) -> Result<Option<Vec<i64>>, crate::error::Problem> {
    if cx.opset >= 13 {
        cx.const_ints(1, "axes")
    } else {
        cx.attr(cx.attrs.ints("axes"))
    }
}

pub(super) fn squeeze(cx: &mut NodeCx) -> R {
    let x = cx.input(0)?;
    let shape = cx.ty(x).shape;
    let axes = match squeeze_axes(cx)? {
        None => (0..shape.len()).filter(|&i| shape[i] == 1).collect(),
        Some(a) => cx.axes(&a, shape.len(), "axes")?,
    };
    if let Some(&a) = axes.iter().find(|&&a| shape[a] != 1) {
        return Err(cx.err(format!(
            "cannot squeeze axis {a} of size {} (shape {shape:?})",
            shape[a]
        )));
    }
    let target = (0..shape.len())
        .filter(|i| !axes.contains(i))
        .map(|i| shape[i])
        .collect();
    Ok(vec![cx.add(Op::Reshape { shape: target }, vec![x])?])
}

pub(super) fn unsqueeze(cx: &mut NodeCx) -> R {
    let x = cx.input(0)?;
    let shape = cx.ty(x).shape;
    let axes = squeeze_axes(cx)?.ok_or_else(|| cx.err("axes are missing"))?;
    let out_rank = shape.len() + axes.len();
    let axes = cx.axes(&axes, out_rank, "axes")?;
    let mut dims = shape.iter();
    let target = (0..out_rank)
        .map(|i| {
            if axes.contains(&i) {
                1
            } else {
                dims.next().copied().unwrap_or(1)
            }
        })
        .collect();
    Ok(vec![cx.add(Op::Reshape { shape: target }, vec![x])?])
}

pub(super) fn transpose(cx: &mut NodeCx) -> R {
    let x = cx.input(0)?;
    let rank = cx.ty(x).rank();
    let perm = match cx.attr(cx.attrs.ints("perm"))? {
        None => (0..rank).rev().collect(),
        Some(p) => cx.usizes(&p, "attribute 'perm'")?,
    };
    Ok(vec![cx.add(Op::Transpose { perm }, vec![x])?])
}

/// Expand: `x + zeros(broadcast(x.shape, shape))`, or an identity when nothing changes.
pub(super) fn expand(cx: &mut NodeCx) -> R {
    let x = cx.input(0)?;
    let ty = cx.ty(x);
    let spec = cx
        .const_ints(1, "shape")?
        .ok_or_else(|| cx.err("input 'shape' is missing"))?;
    let spec = cx.usizes(&spec, "input 'shape'")?;
    let target = broadcast_shapes(&ty.shape, &spec)
        .ok_or_else(|| cx.err(format!("{ty} cannot be expanded to {spec:?}")))?;
    if target == ty.shape {
        return Ok(vec![cx.identity(x)?]);
    }
    if ty.dtype == DType::Bool {
        return Err(cx.err("expanding a bool tensor is not supported"));
    }
    if target
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .is_none_or(|n| n > MAX_CONST_ELEMS)
    {
        return Err(cx.err(format!("expanded shape {target:?} is too large")));
    }
    let zty = TensorType::new(ty.dtype, target);
    cx.generate(&zty)?;
    let zeros = cx.add_const("zeros", Tensor::zeros(&zty));
    Ok(vec![cx.add(Op::Binary(BinaryOp::Add), vec![x, zeros])?])
}

#[cfg(test)]
mod tests {
    use super::reshape_target;

    #[test]
    fn reshape_targets() {
        assert_eq!(
            reshape_target(&[2, 3, 4], &[0, -1], false).unwrap(),
            vec![2, 12]
        );
        assert_eq!(reshape_target(&[2, 3, 4], &[-1], false).unwrap(), vec![24]);
        assert_eq!(
            reshape_target(&[2, 3, 4], &[4, 0, 2], false).unwrap(),
            vec![4, 3, 2]
        );
        assert_eq!(reshape_target(&[0, 3], &[0, 3], true).unwrap(), vec![0, 3]);
        assert!(reshape_target(&[2, 3, 4], &[-1, -1], false).is_err());
        assert!(reshape_target(&[2, 3, 4], &[5, -1], false).is_err());
        assert!(reshape_target(&[2, 3, 4], &[0, 0, 0, 0], false).is_err());
        assert!(reshape_target(&[2, 3, 4], &[-2, 12], false).is_err());
        assert!(reshape_target(&[2, 3, 4], &[7], false).is_err());
        assert!(reshape_target(&[0, 3], &[0, -1], true).is_err());
    }
}
