//! Resize: nearest with every rounding mode, linear with every coordinate transform.

use super::*;
use qcc_ir::resize::resized_length;
use qcc_ir::{CoordTransform as C, NearestMode as N, ResizeAttrs, ResizeMode};

fn rz(mode: ResizeMode, coord: C, nearest: N, scales: &[f32], sizes: &[usize]) -> Op {
    Op::Resize(ResizeAttrs {
        mode,
        coord,
        nearest,
        scales: scales.to_vec(),
        sizes: sizes.to_vec(),
    })
}

fn lin(coord: C, x: &Tensor, scale: f32, size: usize) -> Tensor {
    eval(
        rz(ResizeMode::Linear, coord, N::Floor, &[scale], &[size]),
        &[x],
    )
}

#[test]
fn nearest_upsample_2x_2d() {
    let x = t(&[1, 1, 2, 2], vec![1.0, 2.0, 3.0, 4.0]);
    let want = [
        1.0, 1.0, 2.0, 2.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 4.0, 4.0, 3.0, 3.0, 4.0, 4.0,
    ];
    for (coord, mode) in [
        (C::Asymmetric, N::Floor),
        (C::HalfPixel, N::RoundPreferFloor),
    ] {
        let y = eval(
            rz(
                ResizeMode::Nearest,
                coord,
                mode,
                &[1.0, 1.0, 2.0, 2.0],
                &[1, 1, 4, 4],
            ),
            &[&x],
        );
        assert_close(&y, &[1, 1, 4, 4], &want, 0.0);
    }
}

#[test]
fn nearest_modes_on_ties() {
    // half_pixel, scale 0.5: x_orig = 2x + 0.5, exactly halfway.
    let x = t(&[4], vec![10.0, 20.0, 30.0, 40.0]);
    for (mode, want) in [
        (N::RoundPreferFloor, [10.0, 30.0]),
        (N::RoundPreferCeil, [20.0, 40.0]),
        (N::Floor, [10.0, 30.0]),
        (N::Ceil, [20.0, 40.0]),
    ] {
        let y = eval(
            rz(ResizeMode::Nearest, C::HalfPixel, mode, &[0.5], &[2]),
            &[&x],
        );
        assert_close(&y, &[2], &want, 0.0);
    }
    // asymmetric, scale 3: x_orig = x/3 → 0, .33, .67, 1, 1.33, 1.67.
    let x = t(&[2], vec![1.0, 2.0]);
    let y = eval(
        rz(
            ResizeMode::Nearest,
            C::Asymmetric,
            N::RoundPreferFloor,
            &[3.0],
            &[6],
        ),
        &[&x],
    );
    assert_close(&y, &[6], &[1.0, 1.0, 2.0, 2.0, 2.0, 2.0], 0.0);
    // Ceil past the end clamps to the last index.
    let y = eval(
        rz(ResizeMode::Nearest, C::Asymmetric, N::Ceil, &[3.0], &[6]),
        &[&x],
    );
    assert_close(&y, &[6], &[1.0, 2.0, 2.0, 2.0, 2.0, 2.0], 0.0);
}

#[test]
fn linear_coordinate_transforms() {
    let x = t(&[2], vec![0.0, 10.0]);
    let third = 10.0 / 3.0;
    for (coord, want) in [
        (C::HalfPixel, [0.0, 2.5, 7.5, 10.0]),
        (C::PytorchHalfPixel, [0.0, 2.5, 7.5, 10.0]),
        (C::HalfPixelSymmetric, [0.0, 2.5, 7.5, 10.0]),
        (C::AlignCorners, [0.0, third, 2.0 * third, 10.0]),
        (C::Asymmetric, [0.0, 5.0, 10.0, 10.0]),
    ] {
        assert_close(&lin(coord, &x, 2.0, 4), &[4], &want, 1e-6);
    }
    // A single output: pytorch_half_pixel and align_corners read index 0, half_pixel the middle.
    assert_close(&lin(C::PytorchHalfPixel, &x, 0.5, 1), &[1], &[0.0], 0.0);
    assert_close(&lin(C::AlignCorners, &x, 0.5, 1), &[1], &[0.0], 0.0);
    assert_close(&lin(C::HalfPixel, &x, 0.5, 1), &[1], &[5.0], 0.0);
}

#[test]
fn linear_half_pixel_symmetric_with_uneven_scale() {
    // in 3, scale 1.5, out 4: adjustment 4/4.5, offset 1.5 * (1 - adjustment) → coords 0, 2/3, 4/3, 2.
    let x = t(&[3], vec![0.0, 10.0, 20.0]);
    let y = lin(C::HalfPixelSymmetric, &x, 1.5, 4);
    assert_close(&y, &[4], &[0.0, 20.0 / 3.0, 40.0 / 3.0, 20.0], 1e-6);
}

#[test]
fn bilinear_align_corners_2d() {
    let x = t(&[1, 1, 2, 2], vec![1.0, 2.0, 3.0, 4.0]);
    let y = eval(
        rz(
            ResizeMode::Linear,
            C::AlignCorners,
            N::Floor,
            &[1.0, 1.0, 1.5, 1.5],
            &[1, 1, 3, 3],
        ),
        &[&x],
    );
    assert_close(
        &y,
        &[1, 1, 3, 3],
        &[1.0, 1.5, 2.0, 2.0, 2.5, 3.0, 3.0, 3.5, 4.0],
        1e-7,
    );
}

#[test]
fn bilinear_half_pixel_upsample() {
    // Rows and columns each follow the 1-D pattern [a, a+.25d, a+.75d, b].
    let x = t(&[1, 1, 2, 2], vec![0.0, 4.0, 8.0, 12.0]);
    let y = eval(
        rz(
            ResizeMode::Linear,
            C::HalfPixel,
            N::Floor,
            &[1.0, 1.0, 2.0, 2.0],
            &[1, 1, 4, 4],
        ),
        &[&x],
    );
    let row = [0.0, 1.0, 3.0, 4.0];
    let col = [0.0, 2.0, 6.0, 8.0];
    let want: Vec<f32> = col
        .iter()
        .flat_map(|c| row.iter().map(move |r| r + c))
        .collect();
    assert_close(&y, &[1, 1, 4, 4], &want, 1e-6);
}

#[test]
fn coordinates_are_computed_in_f32() {
    // 1 / f32(2/3) rounds to exactly 1.5 in f32 (1.49999996 in f64): round_prefer_ceil picks 2,
    // as onnxruntime and the ONNX reference do.
    let x = t(&[3], vec![10.0, 20.0, 30.0]);
    let op = rz(
        ResizeMode::Nearest,
        C::Asymmetric,
        N::RoundPreferCeil,
        &[2.0 / 3.0],
        &[2],
    );
    assert_close(&eval(op, &[&x]), &[2], &[10.0, 30.0], 0.0);
}

#[test]
fn onnx_downsample_scales_linear_align_corners() {
    // ONNX test_resize_downsample_scales_linear_align_corners: lengths 2 * 0.6 = 1.2 and
    // 4 * 0.6 = 2.4 (fractional) give x_orig = x * 3 / 1.4 along the width.
    let x = t(&[1, 1, 2, 4], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
    let op = rz(
        ResizeMode::Linear,
        C::AlignCorners,
        N::RoundPreferFloor,
        &[1.0, 1.0, 0.6, 0.6],
        &[1, 1, 1, 2],
    );
    assert_close(&eval(op, &[&x]), &[1, 1, 1, 2], &[1.0, 3.142_857_2], 1e-6);
}

#[test]
fn onnx_upsample_scales_linear_align_corners() {
    // ONNX test_resize_upsample_scales_linear_align_corners.
    let x = t(&[1, 1, 2, 2], vec![1.0, 2.0, 3.0, 4.0]);
    let op = rz(
        ResizeMode::Linear,
        C::AlignCorners,
        N::RoundPreferFloor,
        &[1.0, 1.0, 2.0, 2.0],
        &[1, 1, 4, 4],
    );
    let (a, b) = (4.0 / 3.0, 5.0 / 3.0);
    let want = [
        1.0,
        a,
        b,
        2.0,
        b,
        2.0,
        a + 1.0,
        b + 1.0,
        a + 1.0,
        b + 1.0,
        3.0,
        a + 2.0,
        3.0,
        a + 2.0,
        b + 2.0,
        4.0,
    ];
    assert_close(&eval(op, &[&x]), &[1, 1, 4, 4], &want, 1e-6);
}

#[test]
fn onnx_downsample_sizes_linear_pytorch_half_pixel() {
    // ONNX test_resize_downsample_sizes_linear_pytorch_half_pixel: sizes [1, 1, 3, 1]
    // (scales as the importer derives them); the width has length 1 and reads index 0.
    let x = iota(&[1, 1, 4, 4]);
    let op = rz(
        ResizeMode::Linear,
        C::PytorchHalfPixel,
        N::RoundPreferFloor,
        &[1.0, 1.0, 0.75, 0.25],
        &[1, 1, 3, 1],
    );
    let want = [1.666_666_7, 7.0, 12.333_333];
    let want: Vec<f32> = want.iter().map(|v| v - 1.0).collect(); // iota starts at 0
    assert_close(&eval(op, &[&x]), &[1, 1, 3, 1], &want, 1e-6);
}

#[test]
fn pytorch_half_pixel_uses_the_fractional_length() {
    // 4 * 0.3 = 1.2 > 1, so the single output is not pinned to index 0:
    // x_orig = 0.5 / 0.3 - 0.5 = 1.1667.
    let x = t(&[4], vec![0.0, 10.0, 20.0, 30.0]);
    let y = lin(C::PytorchHalfPixel, &x, 0.3, 1);
    assert_close(&y, &[1], &[10.0 + 10.0 / 6.0], 1e-5);
}

#[test]
fn resized_length_is_fractional_only_for_uneven_scales() {
    assert_eq!(resized_length(4, 0.6, 2), 4.0 * 0.6f32);
    assert_eq!(resized_length(2, 0.6, 1), 2.0 * 0.6f32);
    assert_eq!(resized_length(4, 2.0, 8), 8.0);
    // 11 * f32(13/11) is 12.999999 in f32: sizes-derived scales snap to the integer.
    assert_ne!(11.0 * (13.0f32 / 11.0), 13.0);
    assert_eq!(resized_length(11, 13.0 / 11.0, 13), 13.0);
}

#[test]
fn align_corners_from_sizes_keeps_exact_ties() {
    // in 11 → size 13: x_orig = x * 10 / 12 is exactly 2.5 at x = 3 and 7.5 at x = 9, which
    // round_prefer_floor sends down; 11 * f32(13/11) = 12.999999 would push them up.
    let x = iota(&[11]);
    let op = rz(
        ResizeMode::Nearest,
        C::AlignCorners,
        N::RoundPreferFloor,
        &[13.0 / 11.0],
        &[13],
    );
    let want = [
        0.0, 1.0, 2.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 7.0, 8.0, 9.0, 10.0,
    ];
    assert_close(&eval(op, &[&x]), &[13], &want, 0.0);
}
