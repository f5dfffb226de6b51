//! Elementwise ops: every `UnaryOp` (f32), every `BinaryOp` with numpy
//! broadcasting (f32; Add/Sub/Mul/Div/Max/Min also on i64, i32, i8 and u8),
//! and an accurate `erf`.

use crate::elem::{f32s, Elem};
use crate::index::Offsets;
use qcc_ir::{BinaryOp, Tensor, TensorData, UnaryOp};

/// Applies a unary op to an f32 tensor (Neg, Abs and Sign also to signed
/// integers, wrapping like the compiled code: `-MIN = MIN`).
pub fn unary(u: UnaryOp, x: &Tensor) -> Result<TensorData, String> {
    macro_rules! int {
        ($v:expr, $variant:ident) => {
            Ok(TensorData::$variant(
                $v.iter()
                    .map(|a| match u {
                        UnaryOp::Neg => a.wrapping_neg(),
                        UnaryOp::Sign => a.signum(),
                        _ => a.wrapping_abs(),
                    })
                    .collect(),
            ))
        };
    }
    if matches!(u, UnaryOp::Neg | UnaryOp::Abs | UnaryOp::Sign) {
        match x.data() {
            TensorData::I64(v) => return int!(v, I64),
            TensorData::I32(v) => return int!(v, I32),
            TensorData::I8(v) => return int!(v, I8),
            _ => {}
        }
    }
    let v = f32s(x, "input")?;
    Ok(TensorData::F32(
        v.iter().map(|&a| unary_f32(u, a)).collect(),
    ))
}

/// One element of a unary op. Transcendentals are evaluated in f64 and rounded once.
pub fn unary_f32(u: UnaryOp, x: f32) -> f32 {
    let xd = x as f64;
    match u {
        UnaryOp::Relu => {
            if x < 0.0 {
                0.0
            } else {
                x
            }
        }
        UnaryOp::Sigmoid => (1.0 / (1.0 + (-xd).exp())) as f32,
        UnaryOp::Tanh => xd.tanh() as f32,
        UnaryOp::Exp => xd.exp() as f32,
        UnaryOp::Log => xd.ln() as f32,
        UnaryOp::Sqrt => x.sqrt(),
        UnaryOp::Neg => -x,
        UnaryOp::Abs => x.abs(),
        UnaryOp::Sign => {
            if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                x // ±0 and NaN
            }
        }
        UnaryOp::Reciprocal => 1.0 / x,
        UnaryOp::Erf => erf(xd) as f32,
        UnaryOp::Round => x.round_ties_even(),
        // ONNX HardSwish: x * max(0, min(1, x/6 + 1/2)).
        UnaryOp::HardSwish => x * clamp(x * (1.0 / 6.0) + 0.5, 0.0, 1.0),
        UnaryOp::Silu => (xd / (1.0 + (-xd).exp())) as f32,
        UnaryOp::Gelu => (0.5 * xd * (1.0 + erf(xd * std::f64::consts::FRAC_1_SQRT_2))) as f32,
        UnaryOp::GeluTanh => {
            let k = (2.0 / std::f64::consts::PI).sqrt();
            (0.5 * xd * (1.0 + (k * (xd + 0.044715 * xd * xd * xd)).tanh())) as f32
        }
        UnaryOp::LeakyRelu { alpha } => {
            if x < 0.0 {
                alpha * x
            } else {
                x
            }
        }
        UnaryOp::HardSigmoid { alpha, beta } => clamp(alpha * x + beta, 0.0, 1.0),
        UnaryOp::Clip { min, max } => clamp(x, min, max),
    }
}

/// `min(max(x, lo), hi)` as numpy's clip: NaN passes through, `hi` wins when `lo > hi`.
pub(crate) fn clamp(x: f32, lo: f32, hi: f32) -> f32 {
    let y = if x < lo { lo } else { x };
    if y > hi {
        hi
    } else {
        y
    }
}

/// The error function, accurate to a few f64 ulps.
///
/// Uses `erf(x) = 2/√π · e^{-x²} · Σ_{n≥0} 2ⁿ x^{2n+1} / (1·3·…·(2n+1))`, whose
/// terms are all positive (no cancellation); `|erf(x)|` rounds to 1 beyond 6.
pub fn erf(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    let a = x.abs();
    if a >= 6.0 {
        return x.signum();
    }
    let a2 = a * a;
    let mut term = a;
    let mut sum = a;
    let mut n = 0.0f64;
    while n < 1000.0 {
        n += 1.0;
        term *= 2.0 * a2 / (2.0 * n + 1.0);
        sum += term;
        if term <= sum * 1e-17 {
            break;
        }
    }
    let r = 2.0 / std::f64::consts::PI.sqrt() * (-a2).exp() * sum;
    r.min(1.0).copysign(x)
}

/// Applies a binary op with numpy broadcasting; `out_shape` is the broadcast shape.
pub fn binary(
    op: BinaryOp,
    a: &Tensor,
    b: &Tensor,
    out_shape: &[usize],
) -> Result<TensorData, String> {
    match (a.data(), b.data()) {
        (TensorData::F32(x), TensorData::F32(y)) => Ok(TensorData::F32(zip_broadcast(
            x,
            a.shape(),
            y,
            b.shape(),
            out_shape,
            |p, q| Ok(binary_f32(op, p, q)),
        )?)),
        (TensorData::I64(x), TensorData::I64(y)) => {
            int_binary(op, x, a.shape(), y, b.shape(), out_shape)
        }
        (TensorData::I32(x), TensorData::I32(y)) => {
            int_binary(op, x, a.shape(), y, b.shape(), out_shape)
        }
        (TensorData::I8(x), TensorData::I8(y)) => {
            int_binary(op, x, a.shape(), y, b.shape(), out_shape)
        }
        (TensorData::U8(x), TensorData::U8(y)) => {
            int_binary(op, x, a.shape(), y, b.shape(), out_shape)
        }
        _ => Err(format!(
            "{op:?} is supported on f32 (and i64/i32/i8/u8 for arithmetic), got {} and {}",
            a.ty(),
            b.ty()
        )),
    }
}

/// One element of a binary op on f32. Max/Min propagate NaN as numpy does.
pub fn binary_f32(op: BinaryOp, a: f32, b: f32) -> f32 {
    match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => a / b,
        BinaryOp::Max | BinaryOp::Min if a.is_nan() || b.is_nan() => f32::NAN,
        BinaryOp::Max => a.max(b),
        BinaryOp::Min => a.min(b),
        BinaryOp::Pow => a.powf(b),
        BinaryOp::PRelu => {
            if a < 0.0 {
                a * b
            } else {
                a
            }
        }
    }
}

/// Integer arithmetic as the compiled code does it (`qcc-codegen`'s
/// `int_binary`/`int_div`), so that both agree bit for bit: add/sub/mul wrap
/// modulo 2^bits, division truncates toward zero, Max/Min compare signed or
/// unsigned by type.
///
/// ONNX leaves integer division by zero and `MIN / -1` undefined; like the
/// backend, which must never trap, we define `x / 0 = 0` and let `MIN / -1`
/// wrap to `MIN` instead of reporting an error.
trait Int: Elem + Ord {
    fn wadd(self, o: Self) -> Self;
    fn wsub(self, o: Self) -> Self;
    fn wmul(self, o: Self) -> Self;
    /// Truncating division; `x / 0 = 0`, `MIN / -1 = MIN`.
    fn tdiv(self, o: Self) -> Self;
}

macro_rules! impl_int {
    ($t:ty) => {
        impl Int for $t {
            fn wadd(self, o: Self) -> Self {
                self.wrapping_add(o)
            }
            fn wsub(self, o: Self) -> Self {
                self.wrapping_sub(o)
            }
            fn wmul(self, o: Self) -> Self {
                self.wrapping_mul(o)
            }
            fn tdiv(self, o: Self) -> Self {
                if o == 0 {
                    0
                } else {
                    self.wrapping_div(o)
                }
            }
        }
    };
}
impl_int!(i64);
impl_int!(i32);
impl_int!(i8);
impl_int!(u8);

fn int_binary<T: Int>(
    op: BinaryOp,
    x: &[T],
    xs: &[usize],
    y: &[T],
    ys: &[usize],
    out_shape: &[usize],
) -> Result<TensorData, String> {
    let f = |p: T, q: T| -> Result<T, String> {
        Ok(match op {
            BinaryOp::Add => p.wadd(q),
            BinaryOp::Sub => p.wsub(q),
            BinaryOp::Mul => p.wmul(q),
            BinaryOp::Div => p.tdiv(q),
            BinaryOp::Max => p.max(q),
            BinaryOp::Min => p.min(q),
            BinaryOp::Pow | BinaryOp::PRelu => {
                return Err(format!("{op:?} is only supported on f32, got {}", T::DTYPE))
            }
        })
    };
    Ok(T::wrap(zip_broadcast(x, xs, y, ys, out_shape, f)?))
}

/// `f(a[i], b[i])` over the broadcast of the two operands to `out_shape`.
pub fn zip_broadcast<A: Copy, B: Copy, C>(
    a: &[A],
    a_shape: &[usize],
    b: &[B],
    b_shape: &[usize],
    out_shape: &[usize],
    mut f: impl FnMut(A, B) -> Result<C, String>,
) -> Result<Vec<C>, String> {
    if a_shape == out_shape && b_shape == out_shape && a.len() == b.len() {
        return a.iter().zip(b).map(|(&p, &q)| f(p, q)).collect();
    }
    let mut out = Vec::with_capacity(qcc_ir::numel(out_shape));
    let oa = Offsets::broadcast(a_shape, out_shape);
    let ob = Offsets::broadcast(b_shape, out_shape);
    for (i, j) in oa.zip(ob) {
        let (Some(&p), Some(&q)) = (a.get(i as usize), b.get(j as usize)) else {
            return Err("internal: broadcast offset out of range".into());
        };
        out.push(f(p, q)?);
    }
    Ok(out)
}
