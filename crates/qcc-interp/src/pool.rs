//! MaxPool and AveragePool, N-d, with strides, dilations, explicit pads and
//! ceil_mode; MaxPool also on i8 and u8. Padded cells never win a max; they
//! count in an average's divisor only with `count_include_pad` (cells past
//! the end padding, which ceil_mode can add, never count).

use crate::elem::f32s;
use crate::window::{Tap, Window};
use qcc_ir::{numel, PoolAttrs, Tensor, TensorData};

/// Runs a pool; `max` selects MaxPool, otherwise AveragePool. `out_shape` is `[N,C,o…]`.
pub fn pool(
    p: &PoolAttrs,
    max: bool,
    x: &Tensor,
    out_shape: &[usize],
) -> Result<TensorData, String> {
    match (max, x.data()) {
        (true, TensorData::I8(v)) => Ok(TensorData::I8(pool_with(p, x, v, out_shape, |pl, w| {
            int_max_of(pl, w, i8::MIN)
        })?)),
        (true, TensorData::U8(v)) => Ok(TensorData::U8(pool_with(p, x, v, out_shape, |pl, w| {
            int_max_of(pl, w, u8::MIN)
        })?)),
        _ => {
            let xv = f32s(x, "input")?;
            let include = p.count_include_pad;
            Ok(TensorData::F32(pool_with(p, x, xv, out_shape, |pl, w| {
                if max {
                    max_of(pl, w)
                } else {
                    average_of(pl, w, include)
                }
            })?))
        }
    }
}

/// Slides the window over every `[N,C]` plane of `x` (elements `xv`) and
/// reduces each window's taps with `f(plane, taps)`.
fn pool_with<T: Copy, U>(
    p: &PoolAttrs,
    x: &Tensor,
    xv: &[T],
    out_shape: &[usize],
    f: impl Fn(&[T], &[Tap]) -> U,
) -> Result<Vec<U>, String> {
    let xs = x.shape();
    if xs.len() < 3 || out_shape.len() != xs.len() || out_shape[..2] != xs[..2] {
        return Err(format!(
            "input {} must be [N,C,spatial…] matching output {out_shape:?}",
            x.ty()
        ));
    }
    let (x_sp, o_sp) = (&xs[2..], &out_shape[2..]);
    let taps = Window {
        input: x_sp,
        output: o_sp,
        kernel: &p.kernel,
        strides: &p.strides,
        dilations: &p.dilations,
        pads: &p.pads,
    }
    .taps()?;
    let (ni, nk, no) = (numel(x_sp), numel(&p.kernel), numel(o_sp));
    let planes = xs[0] * xs[1];
    let mut out = Vec::with_capacity(planes * no);
    for pl in 0..planes {
        let plane = xv
            .get(pl * ni..(pl + 1) * ni)
            .ok_or("internal: input plane out of range")?;
        for o in 0..no {
            out.push(f(plane, &taps[o * nk..(o + 1) * nk]));
        }
    }
    Ok(out)
}

/// Largest input cell of the window; `empty` (the type's minimum) when no
/// tap is inside the input.
fn int_max_of<T: Copy + Ord>(plane: &[T], window: &[Tap], empty: T) -> T {
    window
        .iter()
        .filter_map(|t| match *t {
            Tap::Input(off) => Some(plane[off]),
            Tap::Pad | Tap::Beyond => None,
        })
        .max()
        .unwrap_or(empty)
}

/// Largest input cell of the window (NaN wins); -inf when no tap is inside the input.
fn max_of(plane: &[f32], window: &[Tap]) -> f32 {
    let mut best = f32::NEG_INFINITY;
    for t in window {
        if let Tap::Input(off) = *t {
            let v = plane[off];
            if v > best || v.is_nan() {
                best = v;
                if v.is_nan() {
                    break;
                }
            }
        }
    }
    best
}

/// Mean of the window's input cells; the divisor also counts padding cells if `include_pad`.
/// A window with nothing to count yields 0.
fn average_of(plane: &[f32], window: &[Tap], include_pad: bool) -> f32 {
    let mut sum = 0.0f64;
    let mut count = 0usize;
    for t in window {
        match *t {
            Tap::Input(off) => {
                sum += plane[off] as f64;
                count += 1;
            }
            Tap::Pad if include_pad => count += 1,
            _ => {}
        }
    }
    if count == 0 {
        0.0
    } else {
        (sum / count as f64) as f32
    }
}
