//! Comparisons, logic and selection: `Compare` (any one element type →
//! bool), `Logic` and `Not` (bool), `Where` (bool condition, any element
//! type), all with numpy broadcasting.

use crate::elementwise::zip_broadcast;
use crate::index::Offsets;
use qcc_ir::{CompareOp, LogicOp, Tensor, TensorData};

fn cmp<T: PartialOrd>(op: CompareOp, a: T, b: T) -> bool {
    match op {
        CompareOp::Equal => a == b,
        CompareOp::Greater => a > b,
        CompareOp::GreaterOrEqual => a >= b,
        CompareOp::Less => a < b,
        CompareOp::LessOrEqual => a <= b,
    }
}

/// `a op b` elementwise; float comparisons with NaN are false.
pub fn compare(op: CompareOp, a: &Tensor, b: &Tensor, out: &[usize]) -> Result<TensorData, String> {
    let (sa, sb) = (a.shape(), b.shape());
    macro_rules! go {
        ($x:expr, $y:expr) => {
            zip_broadcast($x, sa, $y, sb, out, |p, q| Ok(cmp(op, p, q)))?
        };
    }
    let v = match (a.data(), b.data()) {
        (TensorData::F32(x), TensorData::F32(y)) => go!(x, y),
        (TensorData::I64(x), TensorData::I64(y)) => go!(x, y),
        (TensorData::I32(x), TensorData::I32(y)) => go!(x, y),
        (TensorData::I8(x), TensorData::I8(y)) => go!(x, y),
        (TensorData::U8(x), TensorData::U8(y)) => go!(x, y),
        (TensorData::Bool(x), TensorData::Bool(y)) => go!(x, y),
        _ => return Err(format!("{op:?} of {} and {}", a.ty(), b.ty())),
    };
    Ok(TensorData::Bool(v))
}

/// `a op b` on bool tensors.
pub fn logic(op: LogicOp, a: &Tensor, b: &Tensor, out: &[usize]) -> Result<TensorData, String> {
    let (TensorData::Bool(x), TensorData::Bool(y)) = (a.data(), b.data()) else {
        return Err(format!(
            "{op:?} needs bool operands, got {} and {}",
            a.ty(),
            b.ty()
        ));
    };
    let v = zip_broadcast(x, a.shape(), y, b.shape(), out, |p, q| {
        Ok(match op {
            LogicOp::And => p && q,
            LogicOp::Or => p || q,
            LogicOp::Xor => p != q,
        })
    })?;
    Ok(TensorData::Bool(v))
}

/// Logical not.
pub fn not(x: &Tensor) -> Result<TensorData, String> {
    let TensorData::Bool(v) = x.data() else {
        return Err(format!("Not needs a bool input, got {}", x.ty()));
    };
    Ok(TensorData::Bool(v.iter().map(|b| !b).collect()))
}

/// `cond ? x : y`, the three broadcast to `out`.
pub fn select(c: &Tensor, x: &Tensor, y: &Tensor, out: &[usize]) -> Result<TensorData, String> {
    let TensorData::Bool(cv) = c.data() else {
        return Err(format!("Where needs a bool condition, got {}", c.ty()));
    };
    let n = qcc_ir::numel(out);
    let oc: Vec<i64> = Offsets::broadcast(c.shape(), out).collect();
    let ox: Vec<i64> = Offsets::broadcast(x.shape(), out).collect();
    let oy: Vec<i64> = Offsets::broadcast(y.shape(), out).collect();
    if oc.len() != n || ox.len() != n || oy.len() != n {
        return Err("internal: broadcast offsets".into());
    }
    macro_rules! go {
        ($xv:expr, $yv:expr, $variant:ident) => {{
            let mut v = Vec::with_capacity(n);
            for i in 0..n {
                let take_x = *cv.get(oc[i] as usize).ok_or("internal: condition offset")?;
                let e = if take_x {
                    $xv.get(ox[i] as usize)
                } else {
                    $yv.get(oy[i] as usize)
                };
                v.push(*e.ok_or("internal: operand offset")?);
            }
            TensorData::$variant(v)
        }};
    }
    Ok(match (x.data(), y.data()) {
        (TensorData::F32(p), TensorData::F32(q)) => go!(p, q, F32),
        (TensorData::I64(p), TensorData::I64(q)) => go!(p, q, I64),
        (TensorData::I32(p), TensorData::I32(q)) => go!(p, q, I32),
        (TensorData::I8(p), TensorData::I8(q)) => go!(p, q, I8),
        (TensorData::U8(p), TensorData::U8(q)) => go!(p, q, U8),
        (TensorData::Bool(p), TensorData::Bool(q)) => go!(p, q, Bool),
        _ => return Err(format!("Where of {} and {}", x.ty(), y.ty())),
    })
}
