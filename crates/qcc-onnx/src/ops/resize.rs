//! Resize (opset 10+) and Upsample (opsets 7–9): output sizes from
//! constant scales or sizes; nearest, linear and cubic modes, without
//! antialiasing (validation refuses the rest).

use super::R;
use crate::node::NodeCx;
use qcc_ir::{CoordTransform, NearestMode, Op, ResizeAttrs, ResizeMode, Tensor};

/// The mode (validation admits only nearest, linear and cubic); cubic reads
/// `cubic_coeff_a` and `exclude_outside`.
fn mode(cx: &NodeCx, s: &str) -> Result<ResizeMode, crate::error::Problem> {
    Ok(match s {
        "nearest" => ResizeMode::Nearest,
        "cubic" => ResizeMode::Cubic {
            a: cx.attr(cx.attrs.float_or("cubic_coeff_a", -0.75))?,
            exclude_outside: cx.attr(cx.attrs.flag("exclude_outside", false))?,
        },
        _ => ResizeMode::Linear,
    })
}

fn coord(cx: &NodeCx, s: &str) -> Result<CoordTransform, crate::error::Problem> {
    Ok(match s {
        "half_pixel" => CoordTransform::HalfPixel,
        "pytorch_half_pixel" => CoordTransform::PytorchHalfPixel,
        "align_corners" => CoordTransform::AlignCorners,
        "asymmetric" => CoordTransform::Asymmetric,
        "half_pixel_symmetric" => CoordTransform::HalfPixelSymmetric,
        other => {
            return Err(cx.err(format!(
                "unsupported attribute coordinate_transformation_mode='{other}'"
            )))
        }
    })
}

fn nearest(cx: &NodeCx, s: &str) -> Result<NearestMode, crate::error::Problem> {
    Ok(match s {
        "round_prefer_floor" => NearestMode::RoundPreferFloor,
        "round_prefer_ceil" => NearestMode::RoundPreferCeil,
        "floor" => NearestMode::Floor,
        "ceil" => NearestMode::Ceil,
        other => return Err(cx.err(format!("unsupported attribute nearest_mode='{other}'"))),
    })
}

/// Full per-dim scales and sizes from either `scales` or `sizes` over `axes`.
fn scales_and_sizes(
    cx: &NodeCx,
    shape: &[usize],
    axes: &[usize],
    scales: Option<Tensor>,
    sizes: Option<Tensor>,
    policy: Policy,
) -> Result<(Vec<f32>, Vec<usize>), crate::error::Problem> {
    let (scales, sizes) = scales_and_sizes_unchecked(cx, shape, axes, scales, sizes, policy)?;
    let n = sizes.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    if !n.is_some_and(crate::tensor::fits_in_memory) {
        return Err(cx.err(format!("output size {sizes:?} is too large")));
    }
    Ok((scales, sizes))
}

fn scales_and_sizes_unchecked(
    cx: &NodeCx,
    shape: &[usize],
    axes: &[usize],
    scales: Option<Tensor>,
    sizes: Option<Tensor>,
    policy: Policy,
) -> Result<(Vec<f32>, Vec<usize>), crate::error::Problem> {
    let mut out_scales = vec![1.0f32; shape.len()];
    let mut out_sizes = shape.to_vec();
    match (scales, sizes) {
        (Some(_), Some(_)) => Err(cx.err("give either 'scales' or 'sizes', not both")),
        (None, None) => Err(cx.err("needs 'scales' or 'sizes'")),
        (Some(s), None) => {
            let s = s.to_f32_vec();
            if s.len() != axes.len() || s.iter().any(|&v| !(v.is_finite() && v > 0.0)) {
                return Err(cx.err(format!(
                    "scales {s:?} must be {} positive numbers",
                    axes.len()
                )));
            }
            for (&a, &v) in axes.iter().zip(&s) {
                out_scales[a] = v;
                out_sizes[a] = (shape[a] as f64 * v as f64).floor() as usize;
            }
            Ok((out_scales, out_sizes))
        }
        (None, Some(z)) => {
            let z = z
                .to_i64_vec()
                .ok_or_else(|| cx.err("input 'sizes' must be an integer tensor"))?;
            let z = cx.usizes(&z, "sizes")?;
            if z.len() != axes.len() {
                return Err(cx.err(format!("sizes {z:?} must have {} entries", axes.len())));
            }
            if let Some(&a) = axes.iter().find(|&&a| shape[a] == 0) {
                return Err(cx.err(format!("cannot resize empty dim {a}")));
            }
            let ratios = axes
                .iter()
                .zip(&z)
                .map(|(&a, &v)| v as f64 / shape[a] as f64);
            // keep_aspect_ratio_policy: one scale for every axis, the smallest
            // (not_larger) or largest (not_smaller) ratio; sizes round half to even.
            let common = match policy {
                Policy::Stretch => None,
                Policy::NotLarger => ratios.reduce(f64::min),
                Policy::NotSmaller => ratios.reduce(f64::max),
            };
            for (&a, &v) in axes.iter().zip(&z) {
                match common {
                    None => {
                        out_sizes[a] = v;
                        out_scales[a] = v as f32 / shape[a] as f32;
                    }
                    Some(r) => {
                        out_sizes[a] = (r * shape[a] as f64).round_ties_even() as usize;
                        out_scales[a] = r as f32;
                    }
                }
            }
            Ok((out_scales, out_sizes))
        }
    }
}

/// Resize's `keep_aspect_ratio_policy` (opset 18+; applies to `sizes` only).
#[derive(Clone, Copy)]
enum Policy {
    Stretch,
    NotLarger,
    NotSmaller,
}

/// A constant input that counts as absent when it holds no elements.
fn nonempty(
    cx: &mut NodeCx,
    i: usize,
    what: &str,
) -> Result<Option<Tensor>, crate::error::Problem> {
    Ok(cx.const_input(i, what)?.filter(|t| t.numel() > 0))
}

pub(super) fn resize(cx: &mut NodeCx) -> R {
    let x = cx.input(0)?;
    let shape = cx.ty(x).shape;
    let (scales, sizes) = if cx.opset < 11 {
        (nonempty(cx, 1, "scales")?, None)
    } else {
        (nonempty(cx, 2, "scales")?, nonempty(cx, 3, "sizes")?)
    };
    let axes = match cx.attr(cx.attrs.ints("axes"))? {
        Some(a) if cx.opset >= 18 => cx.axes(&a, shape.len(), "attribute 'axes'")?,
        _ => (0..shape.len()).collect(),
    };
    let m = mode(cx, &cx.attr(cx.attrs.string_or("mode", "nearest"))?)?;
    let (c, n) = if cx.opset < 11 {
        (CoordTransform::Asymmetric, NearestMode::Floor)
    } else {
        let c = cx.attr(
            cx.attrs
                .string_or("coordinate_transformation_mode", "half_pixel"),
        )?;
        let n = cx.attr(cx.attrs.string_or("nearest_mode", "round_prefer_floor"))?;
        (coord(cx, &c)?, nearest(cx, &n)?)
    };
    let policy = match cx
        .attr(cx.attrs.string_or("keep_aspect_ratio_policy", "stretch"))?
        .as_str()
    {
        "not_larger" if cx.opset >= 18 => Policy::NotLarger,
        "not_smaller" if cx.opset >= 18 => Policy::NotSmaller,
        _ => Policy::Stretch,
    };
    let (scales, sizes) = scales_and_sizes(cx, &shape, &axes, scales, sizes, policy)?;
    let attrs = ResizeAttrs {
        mode: m,
        coord: c,
        nearest: n,
        scales,
        sizes,
    };
    Ok(vec![cx.add(Op::Resize(attrs), vec![x])?])
}

/// Upsample: scales as an attribute (opsets 7–8) or a constant input (9);
/// asymmetric coordinates, nearest rounds down.
pub(super) fn upsample(cx: &mut NodeCx) -> R {
    let x = cx.input(0)?;
    let shape = cx.ty(x).shape;
    let scales = if cx.opset < 9 {
        let s = cx
            .attr(cx.attrs.floats("scales"))?
            .ok_or_else(|| cx.err("attribute 'scales' is missing"))?;
        Tensor::from_f32(vec![s.len()], s)
    } else {
        nonempty(cx, 1, "scales")?
    };
    let axes: Vec<usize> = (0..shape.len()).collect();
    let m = mode(cx, &cx.attr(cx.attrs.string_or("mode", "nearest"))?)?;
    let (scales, sizes) = scales_and_sizes(cx, &shape, &axes, scales, None, Policy::Stretch)?;
    let attrs = ResizeAttrs {
        mode: m,
        coord: CoordTransform::Asymmetric,
        nearest: NearestMode::Floor,
        scales,
        sizes,
    };
    Ok(vec![cx.add(Op::Resize(attrs), vec![x])?])
}
