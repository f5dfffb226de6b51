//! MaxPool and AveragePool.

use super::*;
use qcc_ir::PoolAttrs;

fn pa(
    kernel: &[usize],
    strides: &[usize],
    pads: &[usize],
    ceil: bool,
    include_pad: bool,
) -> PoolAttrs {
    PoolAttrs {
        kernel: kernel.to_vec(),
        strides: strides.to_vec(),
        pads: pads.to_vec(),
        dilations: vec![1; kernel.len()],
        ceil_mode: ceil,
        count_include_pad: include_pad,
    }
}

#[test]
fn maxpool_2x2_stride_2() {
    let x = iota(&[1, 1, 4, 4]);
    let y = eval(
        Op::MaxPool(pa(&[2, 2], &[2, 2], &[0; 4], false, false)),
        &[&x],
    );
    assert_close(&y, &[1, 1, 2, 2], &[5.0, 7.0, 13.0, 15.0], 0.0);
}

#[test]
fn maxpool_ceil_mode() {
    let x = iota(&[1, 1, 5, 5]);
    let y = eval(
        Op::MaxPool(pa(&[2, 2], &[2, 2], &[0; 4], true, false)),
        &[&x],
    );
    assert_close(
        &y,
        &[1, 1, 3, 3],
        &[6.0, 8.0, 9.0, 16.0, 18.0, 19.0, 21.0, 23.0, 24.0],
        0.0,
    );
    let y = eval(
        Op::MaxPool(pa(&[2, 2], &[2, 2], &[0; 4], false, false)),
        &[&x],
    );
    assert_close(&y, &[1, 1, 2, 2], &[6.0, 8.0, 16.0, 18.0], 0.0);
}

#[test]
fn maxpool_padding_never_wins() {
    let x = t(&[1, 1, 2, 2], vec![-4.0, -3.0, -2.0, -1.0]);
    let y = eval(
        Op::MaxPool(pa(&[2, 2], &[1, 1], &[1, 1, 1, 1], false, false)),
        &[&x],
    );
    let want = [-4.0, -3.0, -3.0, -2.0, -1.0, -1.0, -2.0, -1.0, -1.0];
    assert_close(&y, &[1, 1, 3, 3], &want, 0.0);
}

#[test]
fn maxpool_dilated_1d() {
    let x = t(&[1, 1, 5], vec![5.0, 1.0, 2.0, 7.0, 0.0]);
    let mut p = pa(&[2], &[1], &[0, 0], false, false);
    p.dilations = vec![2];
    let y = eval(Op::MaxPool(p), &[&x]);
    assert_close(&y, &[1, 1, 3], &[5.0, 7.0, 2.0], 0.0);
}

#[test]
fn averagepool_count_include_pad_both_ways() {
    let x = t(&[1, 1, 3, 3], (1..=9).map(|i| i as f32).collect());
    let with = eval(
        Op::AveragePool(pa(&[3, 3], &[1, 1], &[1; 4], false, true)),
        &[&x],
    );
    let sums = [12.0, 21.0, 16.0, 27.0, 45.0, 33.0, 24.0, 39.0, 28.0];
    let want: Vec<f32> = sums.iter().map(|s| s / 9.0).collect();
    assert_close(&with, &[1, 1, 3, 3], &want, 1e-7);
    let without = eval(
        Op::AveragePool(pa(&[3, 3], &[1, 1], &[1; 4], false, false)),
        &[&x],
    );
    let counts = [4.0, 6.0, 4.0, 6.0, 9.0, 6.0, 4.0, 6.0, 4.0];
    let want: Vec<f32> = sums.iter().zip(counts).map(|(s, c)| s / c).collect();
    assert_close(&without, &[1, 1, 3, 3], &want, 1e-7);
}

#[test]
fn averagepool_ceil_mode_does_not_count_cells_past_padding() {
    let x = t(&[1, 1, 5], vec![1.0, 2.0, 3.0, 4.0, 5.0]);
    let y = eval(Op::AveragePool(pa(&[2], &[2], &[0, 0], true, true)), &[&x]);
    assert_close(&y, &[1, 1, 3], &[1.5, 3.5, 5.0], 0.0);
    let y = eval(Op::AveragePool(pa(&[3], &[2], &[1, 1], true, true)), &[&x]);
    assert_close(&y, &[1, 1, 3], &[1.0, 3.0, 3.0], 1e-7);
    let y = eval(Op::AveragePool(pa(&[3], &[2], &[1, 1], true, false)), &[&x]);
    assert_close(&y, &[1, 1, 3], &[1.5, 3.0, 4.5], 1e-7);
}

#[test]
fn pools_3d_over_channels() {
    let x = iota(&[1, 2, 2, 2, 2]);
    let y = eval(
        Op::MaxPool(pa(&[2, 2, 2], &[1, 1, 1], &[0; 6], false, false)),
        &[&x],
    );
    assert_close(&y, &[1, 2, 1, 1, 1], &[7.0, 15.0], 0.0);
    let y = eval(
        Op::AveragePool(pa(&[2, 2, 2], &[1, 1, 1], &[0; 6], false, false)),
        &[&x],
    );
    assert_close(&y, &[1, 2, 1, 1, 1], &[3.5, 11.5], 0.0);
}

#[test]
fn averagepool_dilated_ceil_mode() {
    // Windows {0, 2} and {3, 5}; 5 lies past the input and any padding, so it never counts
    // (values checked against onnxruntime).
    let x = t(&[1, 1, 4], vec![1.0, 2.0, 3.0, 4.0]);
    for include_pad in [false, true] {
        let mut p = pa(&[2], &[3], &[0, 0], true, include_pad);
        p.dilations = vec![2];
        let y = eval(Op::AveragePool(p), &[&x]);
        assert_close(&y, &[1, 1, 2], &[2.0, 4.0], 0.0);
    }
}
