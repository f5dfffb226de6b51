//! MaxPool, AveragePool and the global pools (which are IR reductions over
//! the spatial axes).

use super::conv::{window, MAX_WINDOW};
use super::R;
use crate::node::NodeCx;
use qcc_ir::{Op, PoolAttrs, ReduceOp};

fn pool_attrs(cx: &NodeCx) -> Result<PoolAttrs, crate::error::Problem> {
    let x = cx.ty(cx.input(0)?);
    if x.rank() < 3 {
        return Err(cx.err(format!("input {x} must be [N,C,spatial…]")));
    }
    let input = &x.shape[2..];
    let kernel = match cx.attr(cx.attrs.ints("kernel_shape"))? {
        None => return Err(cx.err("attribute 'kernel_shape' is missing")),
        Some(k) if k.len() == input.len() && k.iter().all(|&v| (1..=MAX_WINDOW).contains(&v)) => {
            k.iter().map(|&v| v as usize).collect::<Vec<_>>()
        }
        Some(k) => {
            return Err(cx.err(format!(
                "attribute 'kernel_shape' {k:?} must have {} positive entries",
                input.len()
            )))
        }
    };
    let w = window(cx, input, &kernel)?;
    Ok(PoolAttrs {
        kernel,
        strides: w.strides,
        pads: w.pads,
        dilations: w.dilations,
        ceil_mode: cx.attr(cx.attrs.flag("ceil_mode", false))?,
        count_include_pad: cx.attr(cx.attrs.flag("count_include_pad", false))?,
    })
}

pub(super) fn max_pool(cx: &mut NodeCx) -> R {
    let attrs = pool_attrs(cx)?;
    let x = cx.input(0)?;
    // storage_order only affects the Indices output, which validation refuses.
    Ok(vec![cx.add(Op::MaxPool(attrs), vec![x])?])
}

pub(super) fn average_pool(cx: &mut NodeCx) -> R {
    let attrs = pool_attrs(cx)?;
    let x = cx.input(0)?;
    Ok(vec![cx.add(Op::AveragePool(attrs), vec![x])?])
}

/// GlobalAveragePool / GlobalMaxPool: a keepdims reduction over axes `2..rank`.
pub(super) fn global(cx: &mut NodeCx, op: ReduceOp) -> R {
    let x = cx.input(0)?;
    let rank = cx.ty(x).rank();
    if rank < 3 {
        return Err(cx.err(format!("input {} must be [N,C,spatial…]", cx.ty(x))));
    }
    let op = Op::Reduce {
        op,
        axes: (2..rank).collect(),
        keepdims: true,
    };
    Ok(vec![cx.add(op, vec![x])?])
}
