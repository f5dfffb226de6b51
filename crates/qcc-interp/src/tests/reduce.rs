//! Softmax, Reduce and BatchNorm.

use super::*;
use qcc_ir::ReduceOp;

#[test]
fn softmax_rows_sum_to_one() {
    let x = t(&[2, 3], vec![1.0, 2.0, 3.0, 1000.0, 1001.0, 1002.0]);
    let y = eval(Op::Softmax { axis: 1 }, &[&x]);
    let p = [0.09003057, 0.24472847, 0.66524096];
    assert_close(&y, &[2, 3], &[p, p].concat(), 1e-6);
    for row in y.as_f32().unwrap().chunks(3) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
    }
}

#[test]
fn softmax_inner_axis() {
    let x = t(&[2, 2], vec![0.0, 5.0, 0.0, 5.0]);
    let y = eval(Op::Softmax { axis: 0 }, &[&x]);
    assert_close(&y, &[2, 2], &[0.5; 4], 1e-7);
}

fn red(op: ReduceOp, axes: &[usize], keepdims: bool) -> Op {
    Op::Reduce {
        op,
        axes: axes.to_vec(),
        keepdims,
    }
}

#[test]
fn reduce_ops() {
    let x = iota(&[2, 3, 2]);
    let y = eval(red(ReduceOp::Sum, &[1], true), &[&x]);
    assert_close(&y, &[2, 1, 2], &[6.0, 9.0, 24.0, 27.0], 0.0);
    let y = eval(red(ReduceOp::Mean, &[1], false), &[&x]);
    assert_close(&y, &[2, 2], &[2.0, 3.0, 8.0, 9.0], 0.0);
    let y = eval(red(ReduceOp::Max, &[0, 2], false), &[&x]);
    assert_close(&y, &[3], &[7.0, 9.0, 11.0], 0.0);
    let y = eval(red(ReduceOp::Mean, &[0, 1, 2], true), &[&x]);
    assert_close(&y, &[1, 1, 1], &[5.5], 0.0);
}

#[test]
fn global_average_pool_as_reduce_mean() {
    let x = iota(&[1, 2, 2, 2]);
    let y = eval(red(ReduceOp::Mean, &[2, 3], true), &[&x]);
    assert_close(&y, &[1, 2, 1, 1], &[1.5, 5.5], 0.0);
}

#[test]
fn batch_norm_per_channel() {
    let x = t(&[1, 2, 2], vec![1.0, 2.0, 3.0, 4.0]);
    let scale = t(&[2], vec![2.0, 1.0]);
    let bias = t(&[2], vec![0.5, -1.0]);
    let mean = t(&[2], vec![1.0, 3.0]);
    let var = t(&[2], vec![4.0, 0.25]);
    let y = eval(
        Op::BatchNorm { epsilon: 0.0 },
        &[&x, &scale, &bias, &mean, &var],
    );
    // ch0: (x-1)/2*2+0.5; ch1: (x-3)/0.5-1
    assert_close(&y, &[1, 2, 2], &[0.5, 1.5, -1.0, 1.0], 1e-7);
    let y = eval(
        Op::BatchNorm { epsilon: 1e-5 },
        &[&x, &scale, &bias, &mean, &var],
    );
    let s1 = 1.0 / (0.25f64 + 1e-5).sqrt();
    assert_close(
        &y,
        &[1, 2, 2],
        &[0.5, 1.4999988, -1.0, (s1 - 1.0) as f32],
        1e-6,
    );
}
