//! Unit tests, by op family, with hand-computed expectations.

mod conv;
mod elementwise;
mod errors;
mod graph;
mod int8_ops;
mod matmul;
mod pool;
mod qconv;
mod quant;
mod reduce;
mod resize;
mod shape_ops;

use crate::eval_op;
use qcc_ir::{Op, Tensor, TensorData};

/// An f32 tensor.
pub fn t(shape: &[usize], v: Vec<f32>) -> Tensor {
    Tensor::from_f32(shape.to_vec(), v).expect("test tensor size")
}

/// An i64 tensor.
pub fn ti(shape: &[usize], v: Vec<i64>) -> Tensor {
    Tensor::from_i64(shape.to_vec(), v).expect("test tensor size")
}

/// An i8 tensor.
pub fn ti8(shape: &[usize], v: Vec<i8>) -> Tensor {
    Tensor::new(shape.to_vec(), TensorData::I8(v)).expect("test tensor size")
}

/// A u8 tensor.
pub fn tu8(shape: &[usize], v: Vec<u8>) -> Tensor {
    Tensor::new(shape.to_vec(), TensorData::U8(v)).expect("test tensor size")
}

/// An i32 tensor.
pub fn ti32(shape: &[usize], v: Vec<i32>) -> Tensor {
    Tensor::new(shape.to_vec(), TensorData::I32(v)).expect("test tensor size")
}

/// The elements of an integer tensor, widened.
pub fn ints(t: &Tensor) -> Vec<i64> {
    t.to_i64_vec().expect("integer tensor")
}

/// `0, 1, 2, …` as f32 in the given shape.
pub fn iota(shape: &[usize]) -> Tensor {
    let n = qcc_ir::numel(shape);
    t(shape, (0..n).map(|i| i as f32).collect())
}

/// Deterministic pseudo-random values in [-1, 1).
pub fn noise(shape: &[usize], seed: u32) -> Tensor {
    let mut s = seed.wrapping_mul(2654435761).wrapping_add(12345);
    let n = qcc_ir::numel(shape);
    let v = (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s % 2000) as f32 / 1000.0 - 1.0
        })
        .collect();
    t(shape, v)
}

/// Evaluates a single-output op, panicking (test failure) on error.
pub fn eval(op: Op, ins: &[&Tensor]) -> Tensor {
    let mut out = eval_op(&op, ins, &[]).unwrap_or_else(|e| panic!("{op:?}: {e}"));
    assert_eq!(out.len(), 1);
    out.remove(0)
}

/// Asserts shape and values within `tol` (absolute + relative).
pub fn assert_close(got: &Tensor, shape: &[usize], want: &[f32], tol: f32) {
    assert_eq!(got.shape(), shape, "shape");
    let g = got.as_f32().expect("f32 result");
    assert_eq!(g.len(), want.len(), "element count");
    for (i, (&a, &b)) in g.iter().zip(want).enumerate() {
        let ok = a == b || (a.is_nan() && b.is_nan()) || (a - b).abs() <= tol * (1.0 + b.abs());
        assert!(
            ok,
            "element {i}: got {a}, want {b}\n got: {g:?}\nwant: {want:?}"
        );
    }
}

/// Asserts two tensors are equal within `tol`.
pub fn assert_same(got: &Tensor, want: &Tensor, tol: f32) {
    assert_close(
        got,
        want.shape(),
        want.as_f32().expect("f32 expectation"),
        tol,
    );
}
