//! Elementwise ops: unary activations, Clip, binary arithmetic, variadic
//! Max/Min/Sum (chains of binary nodes) and Gelu (the IR's two GELU ops).

use super::R;
use crate::error::Problem;
use crate::node::NodeCx;
use qcc_ir::{BinaryOp, Op, Tensor, UnaryOp, ValueId};

pub(super) fn unary(cx: &mut NodeCx, op: UnaryOp) -> R {
    let x = cx.input(0)?;
    Ok(vec![cx.add(Op::Unary(op), vec![x])?])
}

pub(super) fn leaky_relu(cx: &mut NodeCx) -> R {
    let alpha = cx.attr(cx.attrs.float_or("alpha", 0.01))?;
    unary(cx, UnaryOp::LeakyRelu { alpha })
}

pub(super) fn hard_sigmoid(cx: &mut NodeCx) -> R {
    let alpha = cx.attr(cx.attrs.float_or("alpha", 0.2))?;
    let beta = cx.attr(cx.attrs.float_or("beta", 0.5))?;
    unary(cx, UnaryOp::HardSigmoid { alpha, beta })
}

/// Clip: bounds are attributes before opset 11, optional constant inputs after.
pub(super) fn clip(cx: &mut NodeCx) -> R {
    if cx.opset < 11 {
        let min = cx.attr(cx.attrs.float_or("min", f32::NEG_INFINITY))?;
        let max = cx.attr(cx.attrs.float_or("max", f32::INFINITY))?;
        return unary(cx, UnaryOp::Clip { min, max });
    }
    // Bounds computed at run time (a log-mel front end clamps to
    // `ReduceMax(x) - 80`) become Max / Min with that tensor; constant ones
    // stay Clip attributes. Either way `min(max(x, lo), hi)`, in that order.
    let x = cx.input(0)?;
    let mut steps: Vec<(Op, Option<ValueId>)> = vec![];
    let mut consts = [f32::NEG_INFINITY, f32::INFINITY];
    for (i, what, op) in [(1, "min", BinaryOp::Max), (2, "max", BinaryOp::Min)] {
        let Some(v) = cx.opt_input(i)? else {
            continue;
        };
        if let Ok(Some(_)) = cx.imp.const_value(v) {
            let c = cx.const_scalar(i, what)?.unwrap_or(consts[i - 1]);
            consts[i - 1] = c;
            let (min, max) = if i == 1 {
                (c, f32::INFINITY)
            } else {
                (f32::NEG_INFINITY, c)
            };
            steps.push((Op::Unary(UnaryOp::Clip { min, max }), None));
            continue;
        }
        let (tx, tv) = (cx.ty(x), cx.ty(v));
        if tv.numel() != 1 || tv.dtype != tx.dtype {
            return Err(cx.err(format!(
                "input '{what}' must be one {} value, got {tv}",
                tx.dtype
            )));
        }
        steps.push((Op::Binary(op), Some(v)));
    }
    if steps.iter().all(|(_, v)| v.is_none()) {
        let [min, max] = consts;
        return unary(cx, UnaryOp::Clip { min, max });
    }
    let last = steps.len() - 1;
    let mut y = x;
    for (k, (op, v)) in steps.into_iter().enumerate() {
        let ins = std::iter::once(y).chain(v).collect();
        y = if k == last {
            cx.add(op, ins)?
        } else {
            cx.add_aux(&format!("clip{k}"), op, ins)?
        };
    }
    Ok(vec![y])
}

/// Before opset 7, Add, Sub, Mul, Div, Pow, the comparisons and And/Or/Xor
/// broadcast only when asked (`broadcast=1`), and then B against A from
/// `axis` on (by default aligned to A's last dims): B becomes a reshape of
/// itself with A's rank, which numpy broadcasting then matches. Without
/// `broadcast`, the shapes must be equal.
fn legacy_broadcast(cx: &mut NodeCx, a: ValueId, b: ValueId) -> Result<ValueId, Problem> {
    if cx.opset >= 7 {
        return Ok(b);
    }
    let (sa, sb) = (cx.ty(a).shape, cx.ty(b).shape);
    if !cx.attr(cx.attrs.flag("broadcast", false))? {
        if sa != sb {
            return Err(cx.err(format!(
                "operand shapes {sa:?} and {sb:?} differ, and opset {} broadcasts only with broadcast=1",
                cx.opset
            )));
        }
        return Ok(b);
    }
    let (ra, rb) = (sa.len(), sb.len());
    let default = ra as i64 - rb as i64;
    let axis = cx.attr(cx.attrs.int_or("axis", default))?;
    let axis = if axis < 0 { axis + ra as i64 } else { axis };
    let fits = axis >= 0
        && axis as usize + rb <= ra
        && sb
            .iter()
            .enumerate()
            .all(|(i, &d)| d == 1 || d == sa[axis as usize + i]);
    if !fits {
        return Err(cx.err(format!(
            "operand {sb:?} does not broadcast to {sa:?} from axis {axis}"
        )));
    }
    let axis = axis as usize;
    if axis + rb == ra {
        return Ok(b);
    }
    let mut shape = vec![1; axis];
    shape.extend(&sb);
    shape.resize(ra, 1);
    cx.add_aux("legacy_broadcast", Op::Reshape { shape }, vec![b])
}

pub(super) fn binary(cx: &mut NodeCx, op: BinaryOp) -> R {
    let a = cx.input(0)?;
    let b = cx.input(1)?;
    let mut b = legacy_broadcast(cx, a, b)?;
    // Pow allows an exponent of another numeric type (opset 12+): cast it.
    let (ta, tb) = (cx.ty(a).dtype, cx.ty(b).dtype);
    if op == BinaryOp::Pow && ta != tb {
        b = cx.add_aux("cast_exponent", Op::Cast { to: ta }, vec![b])?;
    }
    Ok(vec![cx.add(Op::Binary(op), vec![a, b])?])
}

/// Equal, Greater, … (bool result), And/Or/Xor, Not and Where: one IR node
/// with the node's inputs.
pub(super) fn logic(cx: &mut NodeCx, op: Op, arity: usize) -> R {
    let mut ins = (0..arity)
        .map(|i| cx.input(i))
        .collect::<Result<Vec<_>, _>>()?;
    if matches!(op, Op::Compare(_) | Op::Logic(_)) {
        ins[1] = legacy_broadcast(cx, ins[0], ins[1])?;
    }
    Ok(vec![cx.add(op, ins)?])
}

/// Max/Min/Sum of any number of inputs: a left-to-right chain of binary nodes.
pub(super) fn variadic(cx: &mut NodeCx, op: BinaryOp) -> R {
    let ins = cx.present_inputs()?;
    let Some((&first, rest)) = ins.split_first() else {
        return Err(cx.err("needs at least one input"));
    };
    if rest.is_empty() {
        return Ok(vec![cx.identity(first)?]);
    }
    let mut acc = first;
    for (k, &v) in rest.iter().enumerate() {
        acc = if k + 1 == rest.len() {
            cx.add(Op::Binary(op), vec![acc, v])?
        } else {
            cx.add_aux(&k.to_string(), Op::Binary(op), vec![acc, v])?
        };
    }
    Ok(vec![acc])
}

pub(super) fn scalar(cx: &mut NodeCx, suffix: &str, v: f32) -> ValueId {
    let t = Tensor::from_f32(Vec::<usize>::new(), vec![v]).expect("a scalar has one element");
    cx.add_const(suffix, t)
}

/// Gelu (opset 20): the IR's `gelu` (`0.5·x·(1 + erf(x/√2))`), or with
/// `approximate='tanh'` its `gelu_tanh` (`0.5·x·(1 + tanh(√(2/π)·(x +
/// 0.044715·x³)))`).
pub(super) fn gelu(cx: &mut NodeCx) -> R {
    let x = cx.input(0)?;
    let tanh = cx.attr(cx.attrs.string_or("approximate", "none"))? == "tanh";
    let op = if tanh {
        UnaryOp::GeluTanh
    } else {
        UnaryOp::Gelu
    };
    Ok(vec![cx.add(Op::Unary(op), vec![x])?])
}
