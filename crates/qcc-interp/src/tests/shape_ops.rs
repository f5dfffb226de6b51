//! Reshape, Transpose, Concat, Slice, Pad, Gather and Cast.

use super::*;
use qcc_ir::{DType, TensorData};

#[test]
fn reshape_keeps_data_any_dtype() {
    let x = ti(&[2, 3], vec![1, 2, 3, 4, 5, 6]);
    let y = eval(
        Op::Reshape {
            shape: vec![3, 1, 2],
        },
        &[&x],
    );
    assert_eq!(y.shape(), &[3, 1, 2]);
    assert_eq!(y.as_i64().unwrap(), &[1, 2, 3, 4, 5, 6]);
}

#[test]
fn transpose_2d_and_3d() {
    let x = iota(&[2, 3]);
    let y = eval(Op::Transpose { perm: vec![1, 0] }, &[&x]);
    assert_close(&y, &[3, 2], &[0.0, 3.0, 1.0, 4.0, 2.0, 5.0], 0.0);
    let x = iota(&[2, 3, 4]);
    let y = eval(
        Op::Transpose {
            perm: vec![2, 0, 1],
        },
        &[&x],
    );
    let mut want = vec![];
    for k in 0..4 {
        for i in 0..2 {
            for j in 0..3 {
                want.push((i * 12 + j * 4 + k) as f32);
            }
        }
    }
    assert_close(&y, &[4, 2, 3], &want, 0.0);
}

#[test]
fn concat_axis_1_i64_and_axis_0_f32() {
    let a = ti(&[2, 1], vec![1, 2]);
    let b = ti(&[2, 2], vec![3, 4, 5, 6]);
    let y = eval(Op::Concat { axis: 1 }, &[&a, &b]);
    assert_eq!(y.shape(), &[2, 3]);
    assert_eq!(y.as_i64().unwrap(), &[1, 3, 4, 2, 5, 6]);
    let y = eval(Op::Concat { axis: 0 }, &[&iota(&[1, 2]), &iota(&[2, 2])]);
    assert_close(&y, &[3, 2], &[0.0, 1.0, 0.0, 1.0, 2.0, 3.0], 0.0);
}

#[test]
fn slice_negative_step() {
    let x = iota(&[5]);
    let y = eval(
        Op::Slice {
            starts: vec![4],
            steps: vec![-2],
            lens: vec![3],
        },
        &[&x],
    );
    assert_close(&y, &[3], &[4.0, 2.0, 0.0], 0.0);
    let x = iota(&[3, 4]);
    let y = eval(
        Op::Slice {
            starts: vec![2, 1],
            steps: vec![-1, 2],
            lens: vec![2, 2],
        },
        &[&x],
    );
    assert_close(&y, &[2, 2], &[9.0, 11.0, 5.0, 7.0], 0.0);
    let y = eval(
        Op::Slice {
            starts: vec![0, 0],
            steps: vec![1, 1],
            lens: vec![0, 4],
        },
        &[&x],
    );
    assert_eq!(y.shape(), &[0, 4]);
}

#[test]
fn pad_constant_f32_and_i64() {
    let x = t(&[2, 2], vec![1.0, 2.0, 3.0, 4.0]);
    let y = eval(
        Op::Pad {
            pads: vec![1, 0, 0, 2],
            value: -1.0,
        },
        &[&x],
    );
    let want = [
        -1.0, -1.0, -1.0, -1.0, 1.0, 2.0, -1.0, -1.0, 3.0, 4.0, -1.0, -1.0,
    ];
    assert_close(&y, &[3, 4], &want, 0.0);
    let y = eval(
        Op::Pad {
            pads: vec![1, 1],
            value: 7.9,
        },
        &[&ti(&[1], vec![5])],
    );
    assert_eq!(y.as_i64().unwrap(), &[7, 5, 7]);
}

#[test]
fn gather_negative_index_and_scalar_index() {
    let x = iota(&[3, 2]);
    let y = eval(Op::Gather { axis: 0 }, &[&x, &ti(&[2], vec![-1, 0])]);
    assert_close(&y, &[2, 2], &[4.0, 5.0, 0.0, 1.0], 0.0);
    let y = eval(Op::Gather { axis: 1 }, &[&x, &ti(&[], vec![1])]);
    assert_close(&y, &[3], &[1.0, 3.0, 5.0], 0.0);
    let idx32 = Tensor::new(vec![2, 1], TensorData::I32(vec![2, -3])).unwrap();
    let shape = ti(&[3], vec![10, 20, 30]);
    let y = eval(Op::Gather { axis: 0 }, &[&shape, &idx32]);
    assert_eq!(y.shape(), &[2, 1]);
    assert_eq!(y.as_i64().unwrap(), &[30, 10]);
}

#[test]
fn gather_out_of_range_is_an_error() {
    let x = iota(&[3, 2]);
    for i in [3, -4] {
        let r = eval_op(&Op::Gather { axis: 0 }, &[&x, &ti(&[1], vec![i])], &[]);
        assert!(r.unwrap_err().contains("out of range"));
    }
}

#[test]
fn cast_between_dtypes() {
    let x = t(&[6], vec![-1.7, 1.7, 2.5, -0.5, 1e20, f32::NAN]);
    let y = eval(Op::Cast { to: DType::I64 }, &[&x]);
    assert_eq!(y.as_i64().unwrap(), &[-1, 1, 2, 0, i64::MAX, 0]);
    let y = eval(
        Op::Cast { to: DType::Bool },
        &[&t(&[4], vec![0.0, -0.0, 0.5, f32::NAN])],
    );
    assert_eq!(y.data(), &TensorData::Bool(vec![false, false, true, true]));
    let y = eval(
        Op::Cast { to: DType::U8 },
        &[&t(&[3], vec![-1.0, 300.0, 7.9])],
    );
    assert_eq!(y.data(), &TensorData::U8(vec![0, 255, 7]));
    let y = eval(Op::Cast { to: DType::I8 }, &[&ti(&[2], vec![200, -129])]);
    assert_eq!(y.data(), &TensorData::I8(vec![-56, 127]));
    let b = Tensor::new(vec![2], TensorData::Bool(vec![true, false])).unwrap();
    let y = eval(Op::Cast { to: DType::F32 }, &[&b]);
    assert_close(&y, &[2], &[1.0, 0.0], 0.0);
    let y = eval(Op::Cast { to: DType::F32 }, &[&ti(&[2], vec![-3, 1 << 40])]);
    assert_close(&y, &[2], &[-3.0, 1099511627776.0], 0.0);
    let y = eval(Op::Cast { to: DType::I32 }, &[&ti(&[1], vec![1 << 33 | 5])]);
    assert_eq!(y.data(), &TensorData::I32(vec![5]));
}
