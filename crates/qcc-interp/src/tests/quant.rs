//! Elementwise and reducing integer ops (Quantize, Dequantize, Requantize,
//! QAdd, QMul, Lut, QAvgPool, QMean, MatMulInteger) against hand-computed values, and their
//! errors.

use super::*;
use qcc_ir::{DType, Epilogue, PoolAttrs, QParams, ReduceOp, Rescale};

/// An epilogue with one rescale `m * 2^-s`.
pub fn epi(m: i32, s: u32, zp: i32, min: i32, max: i32) -> Epilogue {
    Epilogue {
        rescale: Rescale::uniform(m, s),
        zero_point: zp,
        min,
        max,
    }
}

fn err(op: Op, ins: &[&Tensor]) -> String {
    eval_op(&op, ins, &[]).expect_err("should fail")
}

#[test]
fn quantize_rounds_half_even_and_saturates() {
    let x = t(
        &[8],
        vec![-1.0, 0.0, 0.26, 0.375, 0.625, 1000.0, -1000.0, f32::NAN],
    );
    let q = QParams {
        scale: 0.25,
        zero_point: -3,
    };
    let y = eval(Op::Quantize { q, to: DType::I8 }, &[&x]);
    assert_eq!(y.dtype(), DType::I8);
    // x / 0.25 = -4, 0, 1.04, 1.5 (→2), 2.5 (→2), 4000, -4000, NaN (→ zero point)
    assert_eq!(ints(&y), [-7, -3, -2, -1, -1, 127, -128, -3]);
    let q = QParams {
        scale: 0.25,
        zero_point: 10,
    };
    let y = eval(Op::Quantize { q, to: DType::U8 }, &[&x]);
    assert_eq!(y.dtype(), DType::U8);
    assert_eq!(ints(&y), [6, 10, 11, 12, 12, 255, 0, 10]);
}

#[test]
fn dequantize_i8_u8_i32() {
    let q = QParams {
        scale: 0.5,
        zero_point: -3,
    };
    let y = eval(Op::Dequantize { q }, &[&ti8(&[3], vec![-128, 0, 127])]);
    assert_close(&y, &[3], &[-62.5, 1.5, 65.0], 0.0);
    let q = QParams {
        scale: 0.5,
        zero_point: 100,
    };
    let y = eval(Op::Dequantize { q }, &[&tu8(&[2], vec![0, 255])]);
    assert_close(&y, &[2], &[-50.0, 77.5], 0.0);
    let q = QParams {
        scale: 0.25,
        zero_point: 0,
    };
    let y = eval(Op::Dequantize { q }, &[&ti32(&[2], vec![-1000, 6])]);
    assert_close(&y, &[2], &[-250.0, 1.5], 0.0);
    // i32 input minus zero point overflowing i32 is an error, not a panic.
    let q = QParams {
        scale: 1.0,
        zero_point: 1,
    };
    assert!(err(Op::Dequantize { q }, &[&ti32(&[1], vec![i32::MIN])]).contains("overflows"));
}

#[test]
fn requantize_clamps_at_both_ends() {
    let x = ti8(&[4], vec![-128, -3, 0, 127]);
    let op = Op::Requantize {
        in_zero_point: -3,
        epi: epi(3, 1, 128, 0, 255),
        to: DType::U8,
    };
    // x + 3 = -125, 0, 3, 130; × 1.5 → -187, 0, 5 (4.5 rounds up), 195; + 128.
    assert_eq!(ints(&eval(op, &[&x])), [0, 128, 133, 255]);
}

#[test]
fn qadd_broadcasts_with_different_multipliers() {
    let a = ti8(&[2, 2], vec![10, 20, -30, 127]);
    let b = ti8(&[2], vec![4, -6]);
    let op = |e: Epilogue, to: DType| Op::QAdd {
        a_zero_point: 2,
        a_multiplier: 3,
        b_zero_point: -1,
        b_multiplier: 5,
        epi: e,
        to,
    };
    // acc = (a - 2) * 3 + (b + 1) * 5 = 49, 29, -71, 350; × 1/4 → 12, 7, -18, 88.
    let y = eval(op(epi(1, 2, -10, -128, 127), DType::I8), &[&a, &b]);
    assert_eq!(y.shape(), &[2, 2]);
    assert_eq!(ints(&y), [2, -3, -28, 78]);
    let y = eval(op(epi(1, 2, 0, 0, 255), DType::U8), &[&a, &b]);
    assert_eq!(y.dtype(), DType::U8);
    assert_eq!(ints(&y), [12, 7, 0, 88]);
    // Operands swapped: b broadcasts on the left.
    let y = eval(
        Op::QAdd {
            a_zero_point: -1,
            a_multiplier: 5,
            b_zero_point: 2,
            b_multiplier: 3,
            epi: epi(1, 2, -10, -128, 127),
            to: DType::I8,
        },
        &[&b, &a],
    );
    assert_eq!(ints(&y), [2, -3, -28, 78]);
}

#[test]
fn qmul_u8_to_i8() {
    let a = tu8(&[3], vec![0, 100, 255]);
    let b = tu8(&[1], vec![200]);
    let op = Op::QMul {
        a_zero_point: 128,
        b_zero_point: 100,
        epi: epi(1, 7, 0, -128, 127),
        to: DType::I8,
    };
    // acc = (a - 128) * 100 = -12800, -2800, 12700; / 128 → -100, -21.875, 99.22.
    assert_eq!(ints(&eval(op, &[&a, &b])), [-100, -22, 99]);
}

#[test]
fn matmul_integer_subtracts_both_zero_points() {
    // A [2,2] u8 with zero point 10; B [2,3] i8 with one zero point per column.
    let a = tu8(&[2, 2], vec![10, 11, 255, 0]);
    let b = ti8(&[2, 3], vec![1, -128, 127, 2, 0, -1]);
    let az = tu8(&[], vec![10]);
    let bz = ti8(&[3], vec![0, -128, 1]);
    let out = eval(Op::MatMulInteger, &[&a, &b, &az, &bz]);
    // Row 0: (0, 1) · columns (1-0, 2-0), (-128+128, 0+128), (127-1, -1-1).
    // Row 1: (245, -10) · the same columns.
    assert_eq!(ints(&out), [2, 128, -2, 245 - 20, -1280, 245 * 126 + 20]);
    assert_eq!(out.dtype(), DType::I32);
}

#[test]
fn accumulators_outside_i32_are_errors() {
    let a = tu8(&[2], vec![0, 255]);
    let add = Op::QAdd {
        a_zero_point: 0,
        a_multiplier: i32::MAX,
        b_zero_point: 0,
        b_multiplier: 1,
        epi: epi(1, 31, 0, -128, 127),
        to: DType::I8,
    };
    assert!(err(add, &[&a, &a]).contains("i32 range"));
    let mul = Op::QMul {
        a_zero_point: i32::MIN,
        b_zero_point: i32::MIN,
        epi: epi(1, 31, 0, -128, 127),
        to: DType::I8,
    };
    // Zero points outside the input type are refused before any arithmetic.
    assert!(err(mul, &[&a, &a]).contains("zero point"));
}

#[test]
fn lut_on_i8_and_u8() {
    let table: Vec<i32> = (0..256).map(|i| 255 - i).collect();
    let x = ti8(&[3], vec![-128, 0, 127]);
    let y = eval(
        Op::Lut {
            table,
            to: DType::U8,
        },
        &[&x],
    );
    assert_eq!(y.dtype(), DType::U8);
    assert_eq!(ints(&y), [255, 127, 0]);
    let table: Vec<i32> = (0..256).map(|i| i / 2 - 64).collect();
    let x = tu8(&[3], vec![0, 100, 255]);
    let y = eval(
        Op::Lut {
            table,
            to: DType::I8,
        },
        &[&x],
    );
    assert_eq!(y.dtype(), DType::I8);
    assert_eq!(ints(&y), [-64, -14, 63]);
}

fn avg(pads: &[usize], include_pad: bool) -> PoolAttrs {
    PoolAttrs {
        kernel: vec![2, 2],
        strides: vec![1, 1],
        pads: pads.to_vec(),
        dilations: vec![1, 1],
        ceil_mode: false,
        count_include_pad: include_pad,
    }
}

#[test]
fn qavg_pool_count_include_pad() {
    // x - 1 = 0..8 in a 3x3 grid, padded on top and left; windows count 4 cells.
    let x = ti8(&[1, 1, 3, 3], (1..=9).collect());
    let op = Op::QAvgPool {
        pool: avg(&[1, 1, 0, 0], true),
        x_zero_point: 1,
        epi: epi(1, 2, 1, -128, 127),
    };
    let y = eval(op, &[&x]);
    assert_eq!(y.shape(), &[1, 1, 3, 3]);
    assert_eq!(y.dtype(), DType::I8);
    // Sums 0, 1, 3, 3, 8, 12, 9, 20, 24, divided by 4 (ties up), plus 1.
    assert_eq!(ints(&y), [1, 1, 2, 2, 3, 4, 3, 6, 7]);
    // The same on the float op over x - 1, rounded half up, plus 1.
    let f = eval(
        Op::AveragePool(avg(&[1, 1, 0, 0], true)),
        &[&iota(&[1, 1, 3, 3])],
    );
    let want: Vec<i64> = f
        .as_f32()
        .unwrap()
        .iter()
        .map(|v| (v + 0.5).floor() as i64 + 1)
        .collect();
    assert_eq!(ints(&y), want);
}

#[test]
fn qavg_pool_u8_keeps_dtype_and_saturates() {
    let x = tu8(&[1, 1, 2, 2], vec![250, 255, 255, 255]);
    let op = Op::QAvgPool {
        pool: avg(&[0; 4], false),
        x_zero_point: 0,
        epi: epi(1, 1, 0, 0, 255), // /2 instead of /4: overflows u8
    };
    let y = eval(op, &[&x]);
    assert_eq!(y.dtype(), DType::U8);
    assert_eq!(ints(&y), [255]);
    // Uneven windows (padding without count_include_pad) are rejected.
    let op = Op::QAvgPool {
        pool: avg(&[1, 1, 0, 0], false),
        x_zero_point: 0,
        epi: epi(1, 2, 0, 0, 255),
    };
    assert!(!err(op, &[&x]).is_empty());
}

#[test]
fn qmean_over_spatial_dims() {
    let x = tu8(&[1, 2, 2, 2], vec![10, 14, 18, 22, 0, 0, 0, 1]);
    let op = |keepdims| Op::QMean {
        axes: vec![2, 3],
        keepdims,
        x_zero_point: 10,
        epi: epi(1, 2, 10, 0, 255),
    };
    // Sums 24 and -39; / 4 → 6, -9.75 (→ -10); + 10.
    let y = eval(op(true), &[&x]);
    assert_eq!(y.shape(), &[1, 2, 1, 1]);
    assert_eq!(ints(&y), [16, 0]);
    let y = eval(op(false), &[&x]);
    assert_eq!(y.shape(), &[1, 2]);
    assert_eq!(ints(&y), [16, 0]);
    // Agrees with the float mean on x - zp for values that round the same.
    let f = eval(
        Op::Reduce {
            op: ReduceOp::Mean,
            axes: vec![2, 3],
            keepdims: true,
        },
        &[&t(
            &[1, 2, 2, 2],
            vec![0.0, 4.0, 8.0, 12.0, -10.0, -10.0, -10.0, -9.0],
        )],
    );
    assert_close(&f, &[1, 2, 1, 1], &[6.0, -9.75], 0.0);
}

#[test]
fn wrong_dtypes_are_errors() {
    let f = iota(&[4]);
    let i = ti8(&[4], vec![0; 4]);
    let q = QParams {
        scale: 1.0,
        zero_point: 0,
    };
    assert!(!err(Op::Quantize { q, to: DType::I8 }, &[&i]).is_empty());
    assert!(!err(Op::Quantize { q, to: DType::I32 }, &[&f]).is_empty());
    assert!(!err(Op::Dequantize { q }, &[&f]).is_empty());
    let rq = Op::Requantize {
        in_zero_point: 0,
        epi: epi(1, 0, 0, -128, 127),
        to: DType::I8,
    };
    assert!(!err(rq, &[&f]).is_empty());
    let lut = Op::Lut {
        table: vec![0; 256],
        to: DType::I8,
    };
    assert!(!err(lut, &[&ti32(&[1], vec![0])]).is_empty());
    let short = Op::Lut {
        table: vec![0; 255],
        to: DType::I8,
    };
    assert!(!err(short, &[&i]).is_empty());
    let add = Op::QAdd {
        a_zero_point: 0,
        a_multiplier: 1,
        b_zero_point: 0,
        b_multiplier: 1,
        epi: epi(1, 0, 0, -128, 127),
        to: DType::I8,
    };
    assert!(!err(add.clone(), &[&i, &f]).is_empty());
    assert!(!err(add, &[&i, &ti32(&[4], vec![0; 4])]).is_empty());
    let mean = Op::QMean {
        axes: vec![0],
        keepdims: false,
        x_zero_point: 0,
        epi: epi(1, 0, 0, -128, 127),
    };
    assert!(!err(mean, &[&f]).is_empty());
    // An epilogue clamp outside the output type is rejected before evaluation.
    let bad = Op::Requantize {
        in_zero_point: 0,
        epi: epi(1, 0, 0, -128, 127),
        to: DType::U8,
    };
    assert!(!err(bad, &[&i]).is_empty());
}
