//! `float-matmul-integer`: a `MatMulInteger` whose reduction is short enough
//! runs on the float GEMM instead (its packed-weight microkernels), with the
//! same exact integers. With K ≤ [`MAX_EXACT_K`] every product
//! `(a - a_zp)·(b - b_zp)` (|p| ≤ 255²) and every partial sum, in any order,
//! is an integer below 2^24 in magnitude, so f32 represents each exactly and
//! the float result converts back to the same i32.
//!
//! `MatMulInteger(a, b, a_zp, b_zp)` becomes `Cast<i32>(MatMul(Cast<f32>(a) -
//! Cast<f32>(a_zp), B'))` where `B'` is `b - b_zp` as a float constant when
//! both are constants (a weight: packed at compile time), else the same
//! casts and subtraction at run time.
//!
//! Needs: a verified graph. Guarantees: no `MatMulInteger` with K ≤
//! `MAX_EXACT_K` is left; the graph computes the same values.

use crate::{Changed, PassContext, PassError};
use qcc_ir::{BinaryOp, DType, Graph, NodeId, Op, Tensor, ValueId};

const PASS: &str = "float-matmul-integer";

/// Largest K for which f32 sums of K products of two centered 8-bit values
/// are exact: `K · 255² < 2^24`.
pub const MAX_EXACT_K: usize = ((1 << 24) - 1) / (255 * 255);

fn fail(e: impl std::fmt::Display) -> PassError {
    PassError::internal(PASS, e)
}

pub fn run(g: &mut Graph, _cx: &mut PassContext) -> Result<Changed, PassError> {
    let mut changed = false;
    for id in g.topo_order().map_err(fail)? {
        if g.node(id).op != Op::MatMulInteger {
            continue;
        }
        let a = g.value_type(g.node(id).inputs()[0]);
        if a.shape.last().is_some_and(|&k| k <= MAX_EXACT_K) {
            rewrite(g, id)?;
            changed = true;
        }
    }
    if changed {
        g.remove_dead_nodes();
        g.prune_weights();
    }
    Ok(changed)
}

fn add(g: &mut Graph, op: Op, name: String, inputs: Vec<ValueId>) -> Result<ValueId, PassError> {
    Ok(ValueId::of(g.add_node(op, name, inputs).map_err(fail)?))
}

/// `x - zp` in f32 (zp one value or one per last-dim index).
fn centered(g: &mut Graph, name: &str, x: ValueId, zp: ValueId) -> Result<ValueId, PassError> {
    if let (Some(xc), Some(zc)) = (g.const_value(x), g.const_value(zp)) {
        let (xs, zs) = (
            xc.to_i64_vec().ok_or_else(|| fail("integer constant"))?,
            zc.to_i64_vec().ok_or_else(|| fail("integer constant"))?,
        );
        let last = *xc.shape().last().unwrap_or(&1);
        let v: Vec<f32> = xs
            .iter()
            .enumerate()
            .map(|(i, &q)| (q - zs[if zs.len() == 1 { 0 } else { i % last }]) as f32)
            .collect();
        let t = Tensor::from_f32(xc.shape().to_vec(), v).ok_or_else(|| fail("constant shape"))?;
        return Ok(ValueId::of(g.add_const(format!("{name}/float"), t)));
    }
    let to_f32 = Op::Cast { to: DType::F32 };
    let xf = add(g, to_f32.clone(), format!("{name}/float"), vec![x])?;
    let zf = add(g, to_f32, format!("{name}/zero_point"), vec![zp])?;
    add(
        g,
        Op::Binary(BinaryOp::Sub),
        format!("{name}/centered"),
        vec![xf, zf],
    )
}

fn rewrite(g: &mut Graph, id: NodeId) -> Result<(), PassError> {
    let n = g.node(id).clone();
    let ins = n.inputs();
    let name = n.name.clone();
    let a = centered(g, &format!("{name}/a"), ins[0], ins[2])?;
    let b = centered(g, &format!("{name}/b"), ins[1], ins[3])?;
    let y = add(g, Op::MatMul, format!("{name}/float"), vec![a, b])?;
    let y = add(g, Op::Cast { to: DType::I32 }, name, vec![y])?;
    g.replace_all_uses(ValueId::of(id), y);
    Ok(())
}
