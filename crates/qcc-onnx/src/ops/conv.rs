//! Conv and ConvTranspose, plus the window attributes (strides, dilations,
//! pads, auto_pad) they share with pooling.

use super::R;
use crate::node::NodeCx;
use qcc_ir::{same_pads, ConvAttrs, Op};

/// Largest stride, dilation, pad or kernel size accepted, so that output
/// size arithmetic cannot overflow.
pub(super) const MAX_WINDOW: i64 = 1 << 24;

/// Checks a list of window values is non-negative and at most [`MAX_WINDOW`].
pub(super) fn bounded(
    cx: &NodeCx,
    v: &[i64],
    what: &str,
) -> Result<Vec<usize>, crate::error::Problem> {
    if let Some(x) = v.iter().find(|&&x| !(0..=MAX_WINDOW).contains(&x)) {
        return Err(cx.err(format!(
            "{what} {v:?}: entry {x} is outside 0..={MAX_WINDOW}"
        )));
    }
    Ok(v.iter().map(|&x| x as usize).collect())
}

/// Strides, dilations and explicit pads of a sliding-window op.
pub(super) struct Window {
    pub strides: Vec<usize>,
    pub dilations: Vec<usize>,
    pub pads: Vec<usize>,
}

/// A list attribute of `n` positive entries, `1`s when absent.
fn positive(cx: &NodeCx, name: &str, n: usize) -> Result<Vec<usize>, crate::error::Problem> {
    let Some(v) = cx.attr(cx.attrs.ints(name))? else {
        return Ok(vec![1; n]);
    };
    if v.len() != n || v.iter().any(|&x| !(1..=MAX_WINDOW).contains(&x)) {
        return Err(cx.err(format!(
            "attribute '{name}' {v:?} must have {n} entries in 1..={MAX_WINDOW}"
        )));
    }
    Ok(v.iter().map(|&x| x as usize).collect())
}

/// Reads the window attributes for spatial input dims `input` and kernel
/// `kernel`, resolving `auto_pad` into explicit pads.
pub(super) fn window(
    cx: &NodeCx,
    input: &[usize],
    kernel: &[usize],
) -> Result<Window, crate::error::Problem> {
    let n = input.len();
    let strides = positive(cx, "strides", n)?;
    let dilations = positive(cx, "dilations", n)?;
    let auto_pad = cx.attr(cx.attrs.string_or("auto_pad", "NOTSET"))?;
    let pads = match auto_pad.as_str() {
        "VALID" => vec![0; 2 * n],
        "SAME_UPPER" | "SAME_LOWER" => {
            if kernel.contains(&0) || input.contains(&0) {
                return Err(cx.err(format!(
                    "auto_pad {auto_pad} needs non-empty input {input:?} and kernel {kernel:?}"
                )));
            }
            same_pads(
                input,
                kernel,
                &strides,
                &dilations,
                auto_pad == "SAME_UPPER",
            )
        }
        _ => explicit_pads(cx, n)?,
    };
    Ok(Window {
        strides,
        dilations,
        pads,
    })
}

/// The `pads` attribute (`2n` non-negative entries), zeros when absent.
fn explicit_pads(cx: &NodeCx, n: usize) -> Result<Vec<usize>, crate::error::Problem> {
    match cx.attr(cx.attrs.ints("pads"))? {
        None => Ok(vec![0; 2 * n]),
        Some(p) if p.len() == 2 * n => bounded(cx, &p, "attribute 'pads'"),
        Some(p) => Err(cx.err(format!(
            "attribute 'pads' {p:?} must have {} entries",
            2 * n
        ))),
    }
}

/// Checks the optional `kernel_shape` attribute against the weight's kernel.
fn check_kernel(cx: &NodeCx, kernel: &[usize]) -> Result<(), crate::error::Problem> {
    if let Some(k) = cx.attr(cx.attrs.ints("kernel_shape"))? {
        if k.len() != kernel.len() || k.iter().zip(kernel).any(|(&a, &b)| a != b as i64) {
            return Err(cx.err(format!(
                "attribute 'kernel_shape' {k:?} does not match the weight's kernel {kernel:?}"
            )));
        }
    }
    Ok(())
}

fn group(cx: &NodeCx) -> Result<usize, crate::error::Problem> {
    let g = cx.attr(cx.attrs.int_or("group", 1))?;
    usize::try_from(g)
        .ok()
        .filter(|&g| g >= 1)
        .ok_or_else(|| cx.err(format!("attribute 'group' must be positive, got {g}")))
}

/// Spatial dims of input and weight, checking both are `[N, C, spatial…]` of equal rank.
fn spatial(cx: &NodeCx) -> Result<(Vec<usize>, Vec<usize>), crate::error::Problem> {
    let x = cx.ty(cx.input(0)?);
    let w = cx.ty(cx.input(1)?);
    if x.rank() < 3 || w.rank() != x.rank() {
        return Err(cx.err(format!(
            "input {x} and weight {w} must both be [N,C,spatial…] of the same rank"
        )));
    }
    Ok((x.shape[2..].to_vec(), w.shape[2..].to_vec()))
}

fn inputs(cx: &NodeCx) -> Result<Vec<qcc_ir::ValueId>, crate::error::Problem> {
    let mut ins = vec![cx.input(0)?, cx.input(1)?];
    if let Some(b) = cx.opt_input(2)? {
        ins.push(b);
    }
    Ok(ins)
}

pub(super) fn conv(cx: &mut NodeCx) -> R {
    let (input, kernel) = spatial(cx)?;
    check_kernel(cx, &kernel)?;
    let w = window(cx, &input, &kernel)?;
    let attrs = ConvAttrs {
        strides: w.strides,
        pads: w.pads,
        dilations: w.dilations,
        group: group(cx)?,
        output_padding: vec![0; input.len()],
    };
    let ins = inputs(cx)?;
    Ok(vec![cx.add(Op::Conv(attrs), ins)?])
}

pub(super) fn conv_transpose(cx: &mut NodeCx) -> R {
    let (input, kernel) = spatial(cx)?;
    check_kernel(cx, &kernel)?;
    if input.contains(&0) || kernel.contains(&0) {
        return Err(cx.err(format!(
            "input {input:?} and kernel {kernel:?} must be non-empty"
        )));
    }
    let n = input.len();
    let strides = positive(cx, "strides", n)?;
    let dilations = positive(cx, "dilations", n)?;
    let mut output_padding = match cx.attr(cx.attrs.ints("output_padding"))? {
        None => vec![0; n],
        Some(p) if p.len() == n => bounded(cx, &p, "attribute 'output_padding'")?,
        Some(p) => {
            return Err(cx.err(format!(
                "attribute 'output_padding' {p:?} must have {n} entries"
            )))
        }
    };
    let auto_pad = cx.attr(cx.attrs.string_or("auto_pad", "NOTSET"))?;
    let output_shape = cx.attr(cx.attrs.ints("output_shape"))?;
    // The requested output size per spatial dim, if any: pads are derived from it.
    let target: Option<Vec<i64>> = match (&output_shape, auto_pad.as_str()) {
        (Some(s), _) if s.len() == n || s.len() == n + 2 => Some(s[s.len() - n..].to_vec()),
        (Some(s), _) => {
            return Err(cx.err(format!(
                "attribute 'output_shape' {s:?} must have {n} entries"
            )))
        }
        (None, "SAME_UPPER" | "SAME_LOWER") => Some(
            input
                .iter()
                .zip(&strides)
                .map(|(&i, &s)| i.saturating_mul(s).min(i64::MAX as usize) as i64)
                .collect(),
        ),
        _ => None,
    };
    let pads = match target {
        None if auto_pad == "VALID" => vec![0; 2 * n],
        None => explicit_pads(cx, n)?,
        Some(target) => {
            let mut pads = vec![0; 2 * n];
            for i in 0..n {
                let w = |v: usize| v as i128;
                let full = w(strides[i]) * (w(input[i]) - 1)
                    + w(output_padding[i])
                    + (w(kernel[i]) - 1) * w(dilations[i])
                    + 1;
                let total = full - target[i] as i128;
                let big_err = || cx.err("attribute values overflow the output size");
                if total < 0 {
                    // The requested size is past the full output: extend at the end.
                    let extra = usize::try_from(-total).map_err(|_| big_err())?;
                    output_padding[i] = output_padding[i].checked_add(extra).ok_or_else(big_err)?;
                    continue;
                }
                let total = usize::try_from(total).map_err(|_| big_err())?;
                let (small, big) = (total / 2, total - total / 2);
                if auto_pad == "SAME_UPPER" {
                    pads[i] = small;
                    pads[i + n] = big;
                } else {
                    pads[i] = big;
                    pads[i + n] = small;
                }
            }
            pads
        }
    };
    let attrs = ConvAttrs {
        strides,
        pads,
        dilations,
        group: group(cx)?,
        output_padding,
    };
    let ins = inputs(cx)?;
    Ok(vec![cx.add(Op::ConvTranspose(attrs), ins)?])
}
