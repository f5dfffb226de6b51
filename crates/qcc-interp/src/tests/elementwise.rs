//! Unary ops, erf, and broadcasting binary ops.

use super::*;
use crate::erf;
use qcc_ir::{BinaryOp, DType, TensorData, UnaryOp};

fn un(u: UnaryOp, v: &[f32]) -> Vec<f32> {
    eval(Op::Unary(u), &[&t(&[v.len()], v.to_vec())])
        .as_f32()
        .unwrap()
        .to_vec()
}

#[test]
fn erf_matches_reference_values() {
    // Values from tables of the error function (Abramowitz & Stegun / high-precision references).
    for (x, want) in [
        (0.0, 0.0),
        (0.01, 0.011283415555849618),
        (0.5, 0.5204998778130465),
        (1.0, 0.8427007929497149),
        (2.0, 0.9953222650189527),
        (3.0, 0.9999779095030014),
        (4.0, 0.9999999845827421),
        (-1.0, -0.8427007929497149),
        (10.0, 1.0),
    ] {
        let got = erf(x);
        assert!((got - want).abs() <= 1e-14, "erf({x}) = {got}, want {want}");
    }
    assert!(erf(f64::NAN).is_nan());
    assert_eq!(erf(-f64::INFINITY), -1.0);
}

#[test]
fn unary_ops() {
    let x = [-2.0, -0.5, 0.0, 0.5, 3.0];
    assert_eq!(un(UnaryOp::Relu, &x), [0.0, 0.0, 0.0, 0.5, 3.0]);
    assert_eq!(un(UnaryOp::Neg, &x), [2.0, 0.5, -0.0, -0.5, -3.0]);
    assert_eq!(un(UnaryOp::Abs, &x), [2.0, 0.5, 0.0, 0.5, 3.0]);
    assert_eq!(un(UnaryOp::Sign, &x), [-1.0, -1.0, 0.0, 1.0, 1.0]);
    let s = un(UnaryOp::Sign, &[-0.0, f32::NAN, f32::INFINITY, -1e-30]);
    assert!(s[0] == 0.0 && s[0].is_sign_negative() && s[1].is_nan());
    assert_eq!(s[2..], [1.0, -1.0]);
    assert_eq!(
        un(UnaryOp::LeakyRelu { alpha: 0.1 }, &x),
        [-0.2, -0.05, 0.0, 0.5, 3.0]
    );
    let hsig = un(
        UnaryOp::HardSigmoid {
            alpha: 0.2,
            beta: 0.5,
        },
        &x,
    );
    assert_close(&t(&[5], hsig), &[5], &[0.1, 0.4, 0.5, 0.6, 1.0], 1e-7);
    assert_eq!(
        un(
            UnaryOp::Clip {
                min: -1.0,
                max: 1.0
            },
            &x
        ),
        [-1.0, -0.5, 0.0, 0.5, 1.0]
    );
    let hs = un(UnaryOp::HardSwish, &[-3.0, -1.0, 0.0, 1.0, 3.0, 4.0]);
    assert_close(
        &t(&[6], hs),
        &[6],
        &[0.0, -1.0 / 3.0, 0.0, 2.0 / 3.0, 3.0, 4.0],
        1e-7,
    );
    let s = un(UnaryOp::Sigmoid, &[0.0, 2.0, -100.0]);
    assert_close(&t(&[3], s), &[3], &[0.5, 0.880_797_1, 0.0], 1e-7);
    // SiLU x·σ(x); GELU x·(1 + erf(x/√2))/2 (values from the formulas in f64).
    let si = un(UnaryOp::Silu, &[0.0, 2.0, -1.0]);
    assert_close(&t(&[3], si), &[3], &[0.0, 1.761_594_2, -0.268_941_4], 1e-7);
    let ge = un(UnaryOp::Gelu, &[0.0, 1.0, -1.0, 3.0]);
    assert_close(
        &t(&[4], ge),
        &[4],
        &[0.0, 0.841_344_7, -0.158_655_3, 2.995_950_2],
        1e-7,
    );
    // GELU, tanh form: x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))/2.
    let gt = un(UnaryOp::GeluTanh, &[0.0, 1.0, -1.0, 3.0]);
    assert_close(
        &t(&[4], gt),
        &[4],
        &[0.0, 0.841_192, -0.158_808, 2.996_362_6],
        1e-6,
    );
    let e = un(UnaryOp::Erf, &[0.5, -2.0]);
    assert_close(&t(&[2], e), &[2], &[0.520_499_9, -0.995_322_3], 1e-7);
    assert_eq!(un(UnaryOp::Sqrt, &[4.0, 0.25]), [2.0, 0.5]);
    assert_eq!(un(UnaryOp::Reciprocal, &[4.0, -0.5]), [0.25, -2.0]);
    let l = un(UnaryOp::Log, &[1.0, std::f32::consts::E, 0.0]);
    assert_close(&t(&[3], l), &[3], &[0.0, 1.0, f32::NEG_INFINITY], 1e-7);
    let th = un(UnaryOp::Tanh, &[0.0, 1.0]);
    assert_close(&t(&[2], th), &[2], &[0.0, 0.761_594_2], 1e-7);
    let ex = un(UnaryOp::Exp, &[0.0, 1.0]);
    assert_close(&t(&[2], ex), &[2], &[1.0, std::f32::consts::E], 1e-7);
}

#[test]
fn clip_with_min_above_max_gives_max_and_keeps_nan() {
    let y = un(UnaryOp::Clip { min: 2.0, max: 1.0 }, &[0.0, 5.0, f32::NAN]);
    assert_eq!(y[..2], [1.0, 1.0]);
    assert!(y[2].is_nan());
}

#[test]
fn broadcast_add_2x1x3_and_4x1() {
    let a = iota(&[2, 1, 3]);
    let b = t(&[4, 1], vec![0.0, 10.0, 20.0, 30.0]);
    let y = eval(Op::Binary(BinaryOp::Add), &[&a, &b]);
    let mut want = vec![];
    for i in 0..2 {
        for j in 0..4 {
            for k in 0..3 {
                want.push((i * 3 + k) as f32 + 10.0 * j as f32);
            }
        }
    }
    assert_close(&y, &[2, 4, 3], &want, 0.0);
}

#[test]
fn binary_ops_f32() {
    let a = t(&[4], vec![1.0, -2.0, 3.0, f32::NAN]);
    let b = t(&[1], vec![2.0]);
    let f = |op| eval(Op::Binary(op), &[&a, &b]);
    assert_close(&f(BinaryOp::Sub), &[4], &[-1.0, -4.0, 1.0, f32::NAN], 0.0);
    assert_close(&f(BinaryOp::Mul), &[4], &[2.0, -4.0, 6.0, f32::NAN], 0.0);
    assert_close(&f(BinaryOp::Div), &[4], &[0.5, -1.0, 1.5, f32::NAN], 0.0);
    assert_close(&f(BinaryOp::Max), &[4], &[2.0, 2.0, 3.0, f32::NAN], 0.0);
    assert_close(&f(BinaryOp::Min), &[4], &[1.0, -2.0, 2.0, f32::NAN], 0.0);
    assert_close(&f(BinaryOp::Pow), &[4], &[1.0, 4.0, 9.0, f32::NAN], 0.0);
    assert_close(&f(BinaryOp::PRelu), &[4], &[1.0, -4.0, 3.0, f32::NAN], 0.0);
}

#[test]
fn prelu_with_per_channel_slope() {
    let x = t(&[1, 2, 2], vec![-1.0, 1.0, -1.0, 1.0]);
    let s = t(&[2, 1], vec![0.1, 0.2]);
    let y = eval(Op::Binary(BinaryOp::PRelu), &[&x, &s]);
    assert_close(&y, &[1, 2, 2], &[-0.1, 1.0, -0.2, 1.0], 0.0);
}

#[test]
fn integer_arithmetic() {
    let a = ti(&[2, 2], vec![-7, 7, 9, i64::MAX]);
    let b = ti(&[2], vec![2, -2]);
    let f = |op| eval(Op::Binary(op), &[&a, &b]).as_i64().unwrap().to_vec();
    assert_eq!(f(BinaryOp::Div), [-3, -3, 4, -(i64::MAX / 2)]);
    assert_eq!(f(BinaryOp::Add), [-5, 5, 11, i64::MAX - 2]);
    assert_eq!(f(BinaryOp::Mul), [-14, -14, 18, 2]); // MAX * -2 wraps
    assert_eq!(f(BinaryOp::Max), [2, 7, 9, i64::MAX]);
    assert_eq!(f(BinaryOp::Min), [-7, -2, 2, -2]);
    let a32 = Tensor::new(vec![2], TensorData::I32(vec![5, -5])).unwrap();
    let b32 = Tensor::new(vec![], TensorData::I32(vec![3])).unwrap();
    let y = eval(Op::Binary(BinaryOp::Sub), &[&a32, &b32]);
    assert_eq!(y.data(), &TensorData::I32(vec![2, -8]));
}

#[test]
fn integer_division_never_fails() {
    // As the compiled code does: x / 0 = 0 and MIN / -1 wraps to MIN.
    let a = ti(&[3], vec![7, -7, i64::MIN]);
    let b = ti(&[3], vec![0, 0, -1]);
    let y = eval(Op::Binary(BinaryOp::Div), &[&a, &b]);
    assert_eq!(y.as_i64().unwrap(), [0, 0, i64::MIN]);
    let a = Tensor::new(vec![2], TensorData::I32(vec![i32::MIN, 9])).unwrap();
    let b = Tensor::new(vec![2], TensorData::I32(vec![-1, 0])).unwrap();
    let y = eval(Op::Binary(BinaryOp::Div), &[&a, &b]);
    assert_eq!(y.data(), &TensorData::I32(vec![i32::MIN, 0]));
}

fn bin8(op: BinaryOp, a: &Tensor, b: &Tensor) -> TensorData {
    eval(Op::Binary(op), &[a, b]).data().clone()
}

#[test]
fn u8_arithmetic_wraps_and_compares_unsigned() {
    let a = Tensor::new(vec![4], TensorData::U8(vec![250, 3, 7, 0])).unwrap();
    let b = Tensor::new(vec![4], TensorData::U8(vec![10, 2, 0, 255])).unwrap();
    let u = TensorData::U8;
    assert_eq!(bin8(BinaryOp::Add, &a, &b), u(vec![4, 5, 7, 255]));
    assert_eq!(bin8(BinaryOp::Sub, &a, &b), u(vec![240, 1, 7, 1]));
    assert_eq!(bin8(BinaryOp::Mul, &a, &b), u(vec![196, 6, 0, 0]));
    assert_eq!(bin8(BinaryOp::Div, &a, &b), u(vec![25, 1, 0, 0]));
    assert_eq!(bin8(BinaryOp::Max, &a, &b), u(vec![250, 3, 7, 255]));
    assert_eq!(bin8(BinaryOp::Min, &a, &b), u(vec![10, 2, 0, 0]));
    // Broadcasting a scalar.
    let s = Tensor::new(vec![], TensorData::U8(vec![200])).unwrap();
    assert_eq!(bin8(BinaryOp::Add, &a, &s), u(vec![194, 203, 207, 200]));
}

#[test]
fn i8_arithmetic_wraps_and_truncates() {
    let a = Tensor::new(vec![4], TensorData::I8(vec![-128, 100, -7, 5])).unwrap();
    let b = Tensor::new(vec![4], TensorData::I8(vec![-1, 100, 2, 0])).unwrap();
    let i = TensorData::I8;
    assert_eq!(bin8(BinaryOp::Add, &a, &b), i(vec![127, -56, -5, 5]));
    assert_eq!(bin8(BinaryOp::Sub, &a, &b), i(vec![-127, 0, -9, 5]));
    assert_eq!(bin8(BinaryOp::Mul, &a, &b), i(vec![-128, 16, -14, 0]));
    assert_eq!(bin8(BinaryOp::Div, &a, &b), i(vec![-128, 1, -3, 0]));
    assert_eq!(bin8(BinaryOp::Max, &a, &b), i(vec![-1, 100, 2, 5]));
    assert_eq!(bin8(BinaryOp::Min, &a, &b), i(vec![-128, 100, -7, 0]));
}

#[test]
fn integer_errors() {
    let a = ti(&[2], vec![1, 2]);
    for op in [BinaryOp::Pow, BinaryOp::PRelu] {
        assert!(eval_op(&Op::Binary(op), &[&a, &a], &[]).is_err());
    }
    let u = Tensor::new(vec![2], TensorData::U8(vec![1, 2])).unwrap();
    assert!(eval_op(&Op::Binary(BinaryOp::Pow), &[&u, &u], &[]).is_err());
    // Mixed dtypes are refused.
    assert!(eval_op(&Op::Binary(BinaryOp::Add), &[&a, &u], &[]).is_err());
    let bools = Tensor::new(vec![2], TensorData::Bool(vec![true, false])).unwrap();
    assert!(eval_op(&Op::Binary(BinaryOp::Add), &[&bools, &bools], &[]).is_err());
    assert!(eval_op(&Op::Unary(UnaryOp::Relu), &[&a], &[]).is_err());
    assert_eq!(a.dtype(), DType::I64);
}
