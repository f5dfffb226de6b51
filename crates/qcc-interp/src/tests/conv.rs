//! Conv and ConvTranspose against hand-computed values and naive loops.

use super::*;
use qcc_ir::ConvAttrs;

fn attrs(n: usize, strides: &[usize], pads: &[usize], dil: &[usize], group: usize) -> ConvAttrs {
    let or = |v: &[usize], d: usize, len: usize| {
        if v.is_empty() {
            vec![d; len]
        } else {
            v.to_vec()
        }
    };
    ConvAttrs {
        strides: or(strides, 1, n),
        pads: or(pads, 0, 2 * n),
        dilations: or(dil, 1, n),
        group,
        output_padding: vec![0; n],
    }
}

fn x3x3() -> Tensor {
    t(&[1, 1, 3, 3], (1..=9).map(|i| i as f32).collect())
}

#[test]
fn conv_2x2_ones_valid() {
    let w = t(&[1, 1, 2, 2], vec![1.0; 4]);
    let y = eval(Op::Conv(attrs(2, &[], &[], &[], 1)), &[&x3x3(), &w]);
    assert_close(&y, &[1, 1, 2, 2], &[12.0, 16.0, 24.0, 28.0], 0.0);
}

#[test]
fn conv_3x3_padded_with_bias() {
    let w = t(&[1, 1, 3, 3], vec![1.0; 9]);
    let b = t(&[1], vec![1.0]);
    let y = eval(
        Op::Conv(attrs(2, &[], &[1, 1, 1, 1], &[], 1)),
        &[&x3x3(), &w, &b],
    );
    let want = [12.0, 21.0, 16.0, 27.0, 45.0, 33.0, 24.0, 39.0, 28.0].map(|v| v + 1.0);
    assert_close(&y, &[1, 1, 3, 3], &want, 0.0);
}

#[test]
fn conv_strided_padded() {
    let w = t(&[1, 1, 3, 3], vec![1.0; 9]);
    let y = eval(
        Op::Conv(attrs(2, &[2, 2], &[1, 1, 1, 1], &[], 1)),
        &[&x3x3(), &w],
    );
    assert_close(&y, &[1, 1, 2, 2], &[12.0, 16.0, 24.0, 28.0], 0.0);
}

#[test]
fn conv_asymmetric_pads() {
    // Pad only the top/left: [[0,0,0],[0,1,2],[0,3,4]] under a 2x2 window of ones.
    let x = t(&[1, 1, 2, 2], vec![1.0, 2.0, 3.0, 4.0]);
    let w = t(&[1, 1, 2, 2], vec![1.0; 4]);
    let y = eval(Op::Conv(attrs(2, &[], &[1, 1, 0, 0], &[], 1)), &[&x, &w]);
    assert_close(&y, &[1, 1, 2, 2], &[1.0, 3.0, 4.0, 10.0], 0.0);
}

#[test]
fn conv_dilated() {
    let x = iota(&[1, 1, 5, 5]);
    let w = t(&[1, 1, 2, 2], vec![1.0; 4]);
    let y = eval(Op::Conv(attrs(2, &[], &[], &[2, 2], 1)), &[&x, &w]);
    let want = [24.0, 28.0, 32.0, 44.0, 48.0, 52.0, 64.0, 68.0, 72.0];
    assert_close(&y, &[1, 1, 3, 3], &want, 0.0);
}

#[test]
fn conv_1d_and_3d() {
    let x = t(&[1, 1, 5], vec![1.0, 2.0, 3.0, 4.0, 5.0]);
    let w = t(&[1, 1, 3], vec![1.0, 0.0, -1.0]);
    let y = eval(Op::Conv(attrs(1, &[], &[1, 1], &[], 1)), &[&x, &w]);
    assert_close(&y, &[1, 1, 5], &[-2.0, -2.0, -2.0, -2.0, 4.0], 0.0);

    let x = t(&[1, 1, 2, 2, 2], (1..=8).map(|i| i as f32).collect());
    let w = t(&[2, 1, 2, 2, 2], [vec![1.0; 8], vec![0.5; 8]].concat());
    let y = eval(Op::Conv(attrs(3, &[], &[], &[], 1)), &[&x, &w]);
    assert_close(&y, &[1, 2, 1, 1, 1], &[36.0, 18.0], 0.0);
}

/// Direct 2-D convolution, written independently of the im2col path.
fn naive_conv2d(x: &Tensor, w: &Tensor, c: &ConvAttrs, oh: usize, ow: usize) -> Vec<f32> {
    let (xs, ws) = (x.shape(), w.shape());
    let (xv, wv) = (x.as_f32().unwrap(), w.as_f32().unwrap());
    let (n, ci, h, wd) = (xs[0], xs[1], xs[2], xs[3]);
    let (m, cg, kh, kw) = (ws[0], ws[1], ws[2], ws[3]);
    let mg = m / c.group;
    let mut out = vec![0.0f32; n * m * oh * ow];
    for b in 0..n {
        for oc in 0..m {
            let g = oc / mg;
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut s = 0.0f64;
                    for ic in 0..cg {
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let iy = (oy * c.strides[0] + ky * c.dilations[0]) as i64
                                    - c.pads[0] as i64;
                                let ix = (ox * c.strides[1] + kx * c.dilations[1]) as i64
                                    - c.pads[1] as i64;
                                if iy < 0 || ix < 0 || iy >= h as i64 || ix >= wd as i64 {
                                    continue;
                                }
                                let xi =
                                    ((b * ci + g * cg + ic) * h + iy as usize) * wd + ix as usize;
                                let wi = ((oc * cg + ic) * kh + ky) * kw + kx;
                                s += xv[xi] as f64 * wv[wi] as f64;
                            }
                        }
                    }
                    out[((b * m + oc) * oh + oy) * ow + ox] = s as f32;
                }
            }
        }
    }
    out
}

#[test]
fn conv_matches_naive_loops() {
    for (group, strides, pads, dil) in [
        (1, [1, 1], [0, 0, 0, 0], [1, 1]),
        (1, [2, 1], [1, 2, 0, 1], [1, 2]),
        (2, [1, 2], [1, 1, 1, 1], [2, 1]),
        (4, [2, 2], [2, 0, 1, 1], [1, 1]),
    ] {
        let c = ConvAttrs {
            strides: strides.to_vec(),
            pads: pads.to_vec(),
            dilations: dil.to_vec(),
            group,
            output_padding: vec![0, 0],
        };
        let x = noise(&[2, 4, 7, 6], 1);
        let w = noise(&[8, 4 / group, 3, 2], 2);
        let y = eval(Op::Conv(c.clone()), &[&x, &w]);
        let (oh, ow) = (y.shape()[2], y.shape()[3]);
        let want = naive_conv2d(&x, &w, &c, oh, ow);
        assert_close(&y, &[2, 8, oh, ow], &want, 1e-5);
    }
}

#[test]
fn grouped_conv_equals_split_then_concat() {
    let x = noise(&[1, 4, 5, 5], 3);
    let w = noise(&[6, 2, 3, 3], 4);
    let b = noise(&[6], 5);
    let c = attrs(2, &[1, 1], &[1, 1, 1, 1], &[], 2);
    let y = eval(Op::Conv(c.clone()), &[&x, &w, &b]);
    let sl = |t: &Tensor, d1: usize, start: i64, len: usize| {
        let mut lens = t.shape().to_vec();
        lens[d1] = len;
        let mut starts = vec![0; lens.len()];
        starts[d1] = start;
        eval(
            Op::Slice {
                starts,
                steps: vec![1; lens.len()],
                lens,
            },
            &[t],
        )
    };
    let c1 = ConvAttrs { group: 1, ..c };
    let halves: Vec<Tensor> = (0..2)
        .map(|g| {
            let (xg, wg, bg) = (
                sl(&x, 1, 2 * g, 2),
                sl(&w, 0, 3 * g, 3),
                sl(&b, 0, 3 * g, 3),
            );
            eval(Op::Conv(c1.clone()), &[&xg, &wg, &bg])
        })
        .collect();
    let cat = eval(Op::Concat { axis: 1 }, &[&halves[0], &halves[1]]);
    assert_same(&y, &cat, 1e-6);
}

#[test]
fn depthwise_conv_is_per_channel() {
    let x = t(
        &[1, 2, 2, 2],
        vec![1.0, 2.0, 3.0, 4.0, 10.0, 20.0, 30.0, 40.0],
    );
    let w = t(&[2, 1, 1, 1], vec![2.0, -1.0]);
    let y = eval(Op::Conv(attrs(2, &[], &[], &[], 2)), &[&x, &w]);
    assert_close(
        &y,
        &[1, 2, 2, 2],
        &[2.0, 4.0, 6.0, 8.0, -10.0, -20.0, -30.0, -40.0],
        0.0,
    );
}

#[test]
fn conv_transpose_hand_computed() {
    let x = t(&[1, 1, 2, 2], vec![1.0, 2.0, 3.0, 4.0]);
    let w = t(&[1, 1, 2, 2], vec![1.0; 4]);
    let y = eval(Op::ConvTranspose(attrs(2, &[], &[], &[], 1)), &[&x, &w]);
    assert_close(
        &y,
        &[1, 1, 3, 3],
        &[1.0, 3.0, 2.0, 4.0, 10.0, 6.0, 3.0, 7.0, 4.0],
        0.0,
    );

    let y = eval(Op::ConvTranspose(attrs(2, &[2, 2], &[], &[], 1)), &[&x, &w]);
    let want = [
        1.0, 1.0, 2.0, 2.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 4.0, 4.0, 3.0, 3.0, 4.0, 4.0,
    ];
    assert_close(&y, &[1, 1, 4, 4], &want, 0.0);

    let y = eval(
        Op::ConvTranspose(attrs(2, &[], &[1, 1, 1, 1], &[], 1)),
        &[&x, &w],
    );
    assert_close(&y, &[1, 1, 1, 1], &[10.0], 0.0);
}

#[test]
fn conv_transpose_output_padding_and_bias() {
    let x = t(&[1, 1, 2], vec![1.0, 2.0]);
    let w = t(&[1, 2, 2], vec![1.0, 10.0, 100.0, 1000.0]);
    let b = t(&[2], vec![0.5, -0.5]);
    let mut c = attrs(1, &[2], &[], &[], 1);
    c.output_padding = vec![1];
    let y = eval(Op::ConvTranspose(c), &[&x, &w, &b]);
    // Channel 0: [1, 10, 2, 20] + trailing padding 0, plus bias 0.5.
    // Channel 1: [100, 1000, 200, 2000, 0] - 0.5.
    let want = [1.5, 10.5, 2.5, 20.5, 0.5, 99.5, 999.5, 199.5, 1999.5, -0.5];
    assert_close(&y, &[1, 2, 5], &want, 0.0);
}

#[test]
fn conv_transpose_dilated_1d() {
    // out[i*1 + k*2] += x[i] * w[k]; x=[1,2,3], w=[1,1] → positions 0..3 and 2..5.
    let x = t(&[1, 1, 3], vec![1.0, 2.0, 3.0]);
    let w = t(&[1, 1, 2], vec![1.0, 1.0]);
    let y = eval(Op::ConvTranspose(attrs(1, &[], &[], &[2], 1)), &[&x, &w]);
    assert_close(&y, &[1, 1, 5], &[1.0, 2.0, 4.0, 2.0, 3.0], 0.0);
}

#[test]
fn grouped_conv_transpose_equals_split_then_concat() {
    let x = noise(&[1, 4, 3, 3], 6);
    let w = noise(&[4, 3, 3, 3], 7);
    let mut c = attrs(2, &[2, 2], &[1, 0, 1, 0], &[1, 1], 2);
    c.output_padding = vec![1, 0];
    let y = eval(Op::ConvTranspose(c.clone()), &[&x, &w]);
    assert_eq!(y.shape(), &[1, 6, 6, 7]);
    let sl = |t: &Tensor, d: usize, start: i64, len: usize| {
        let mut starts = vec![0; 4];
        starts[d] = start;
        let mut lens = t.shape().to_vec();
        lens[d] = len;
        eval(
            Op::Slice {
                starts,
                steps: vec![1; 4],
                lens,
            },
            &[t],
        )
    };
    let c1 = ConvAttrs { group: 1, ..c };
    let parts: Vec<Tensor> = (0..2)
        .map(|g| {
            eval(
                Op::ConvTranspose(c1.clone()),
                &[&sl(&x, 1, 2 * g, 2), &sl(&w, 0, 2 * g, 2)],
            )
        })
        .collect();
    let cat = eval(Op::Concat { axis: 1 }, &[&parts[0], &parts[1]]);
    assert_same(&y, &cat, 1e-6);
}
