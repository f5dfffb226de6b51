//! Conv and ConvTranspose kernels, run natively and compared with a naive
//! reference written here (and with the interpreter).
//!
//! Tolerance: the kernel accumulates in f32 in a different order than the
//! f64 reference, so each output can differ by a few ulp per term; 1e-4
//! relative to max(1, |want|) is far above that for the ≤ 200-term sums
//! here, and far below any indexing mistake.

mod common;
use common::*;
use qcc_ir::{ConvAttrs, Graph, Op, Tensor, ValueId};

const TOL: f32 = 1e-4;

fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut v = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        v[d] = i % shape[d];
        i /= shape[d];
    }
    v
}

fn ravel(idx: &[usize], shape: &[usize]) -> usize {
    idx.iter().zip(shape).fold(0, |a, (&i, &n)| a * n + i)
}

/// Naive ONNX Conv: out[n,m,o] = b[m] + Σ_{c,k} x[n, g*cg+c, o*s+k*d-p] w[m,c,k].
fn ref_conv(a: &ConvAttrs, x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Tensor {
    let (xs, ws) = (x.shape(), w.shape());
    let r = xs.len() - 2;
    let (xv, wv) = (x.as_f32().unwrap(), w.as_f32().unwrap());
    let (m, cg) = (ws[0], ws[1]);
    let mg = m / a.group;
    let mut os = vec![xs[0], m];
    for d in 0..r {
        let eff = (ws[2 + d] - 1) * a.dilations[d] + 1;
        os.push((xs[2 + d] + a.pads[d] + a.pads[d + r] - eff) / a.strides[d] + 1);
    }
    let ks = &ws[2..];
    let nk: usize = ks.iter().product();
    let mut out = vec![0f32; os.iter().product()];
    for (i, o) in out.iter_mut().enumerate() {
        let oi = unravel(i, &os);
        let (n, mm) = (oi[0], oi[1]);
        let g = mm / mg;
        let mut acc = b.map_or(0.0, |b| b.as_f32().unwrap()[mm] as f64);
        for c in 0..cg {
            for kf in 0..nk {
                let k = unravel(kf, ks);
                let mut xi = vec![n, g * cg + c];
                let mut inside = true;
                for d in 0..r {
                    let p = (oi[2 + d] * a.strides[d] + k[d] * a.dilations[d]) as i64
                        - a.pads[d] as i64;
                    inside &= p >= 0 && p < xs[2 + d] as i64;
                    xi.push(p.max(0) as usize);
                }
                if inside {
                    let mut wi = vec![mm, c];
                    wi.extend(&k);
                    acc += xv[ravel(&xi, xs)] as f64 * wv[ravel(&wi, ws)] as f64;
                }
            }
        }
        *o = acc as f32;
    }
    f32_tensor(&os, out)
}

/// Naive ONNX ConvTranspose by scattering every input through every tap.
fn ref_conv_t(a: &ConvAttrs, x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Tensor {
    let (xs, ws) = (x.shape(), w.shape());
    let r = xs.len() - 2;
    let (xv, wv) = (x.as_f32().unwrap(), w.as_f32().unwrap());
    let (c_all, mg) = (ws[0], ws[1]);
    let cg = c_all / a.group;
    let m = mg * a.group;
    let mut os = vec![xs[0], m];
    for d in 0..r {
        let full = a.strides[d] * (xs[2 + d] - 1)
            + a.output_padding[d]
            + (ws[2 + d] - 1) * a.dilations[d]
            + 1;
        os.push(full - a.pads[d] - a.pads[d + r]);
    }
    let ks = &ws[2..];
    let nk: usize = ks.iter().product();
    let mut acc = vec![0f64; os.iter().product()];
    for (i, &xval) in xv.iter().enumerate() {
        let xi = unravel(i, xs);
        let (n, c) = (xi[0], xi[1]);
        let g = c / cg;
        for mm in 0..mg {
            for kf in 0..nk {
                let k = unravel(kf, ks);
                let mut oi = vec![n, g * mg + mm];
                let mut inside = true;
                for d in 0..r {
                    let p = (xi[2 + d] * a.strides[d] + k[d] * a.dilations[d]) as i64
                        - a.pads[d] as i64;
                    inside &= p >= 0 && p < os[2 + d] as i64;
                    oi.push(p.max(0) as usize);
                }
                if inside {
                    let mut wi = vec![c, mm];
                    wi.extend(&k);
                    acc[ravel(&oi, &os)] += xval as f64 * wv[ravel(&wi, ws)] as f64;
                }
            }
        }
    }
    let bv = b.map(|b| b.as_f32().unwrap().to_vec());
    let plane: usize = os[2..].iter().product();
    let out = acc
        .iter()
        .enumerate()
        .map(|(i, &v)| (v + bv.as_ref().map_or(0.0, |b| b[(i / plane) % m] as f64)) as f32)
        .collect();
    f32_tensor(&os, out)
}

fn attrs(r: usize, strides: &[usize], pads: &[usize], dil: &[usize], group: usize) -> ConvAttrs {
    ConvAttrs {
        strides: strides.to_vec(),
        pads: pads.to_vec(),
        dilations: dil.to_vec(),
        group,
        output_padding: vec![0; r],
    }
}

/// Builds x → conv(w, b) → y, with w and b either constants or graph inputs.
/// Returns the graph and the inputs to feed.
fn conv_graph(
    transpose: bool,
    a: &ConvAttrs,
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    const_weights: bool,
) -> (Graph, Vec<Tensor>) {
    let (mut g, xi) = graph_with_input(x.shape());
    let mut feed = vec![x.clone()];
    let mut ids = vec![ValueId::of(xi)];
    for (k, t) in std::iter::once(w).chain(b).enumerate() {
        let id = if const_weights {
            g.add_const(format!("c{k}"), t.clone())
        } else {
            feed.push(t.clone());
            g.add_input(format!("p{k}"), t.ty())
        };
        ids.push(ValueId::of(id));
    }
    let op = if transpose {
        Op::ConvTranspose(a.clone())
    } else {
        Op::Conv(a.clone())
    };
    let y = g.add_node(op, "conv", ids).expect("valid conv");
    g.add_output("y", ValueId::of(y));
    (g, feed)
}

/// Checks one configuration against the naive reference and the interpreter,
/// with constant weights and with weights as inputs.
fn check_conv(transpose: bool, a: &ConvAttrs, xs: &[usize], ws: &[usize], bias: bool, seed: u64) {
    let x = rand_tensor(xs, seed);
    let w = rand_tensor(ws, seed + 1);
    let m = if transpose { ws[1] * a.group } else { ws[0] };
    let b = bias.then(|| rand_tensor(&[m], seed + 2));
    let want = if transpose {
        ref_conv_t(a, &x, &w, b.as_ref())
    } else {
        ref_conv(a, &x, &w, b.as_ref())
    };
    for const_weights in [true, false] {
        let (g, feed) = conv_graph(transpose, a, &x, &w, b.as_ref(), const_weights);
        check(&g, &feed, std::slice::from_ref(&want), TOL);
        check_interp(&g, &feed, TOL);
    }
}

#[test]
fn conv2d_pads_strides_dilations() {
    // 3x3, pad 1, stride 1: the classic.
    check_conv(
        false,
        &attrs(2, &[1, 1], &[1, 1, 1, 1], &[1, 1], 1),
        &[2, 3, 9, 11],
        &[5, 3, 3, 3],
        true,
        1,
    );
    // Asymmetric pads, strides 2x3, dilation 2x1.
    check_conv(
        false,
        &attrs(2, &[2, 3], &[2, 0, 1, 3], &[2, 1], 1),
        &[1, 2, 13, 17],
        &[6, 2, 3, 4],
        true,
        2,
    );
    // Kernel wider than the unroll limit (table-driven tap loop), big pads.
    check_conv(
        false,
        &attrs(2, &[1, 2], &[0, 5, 1, 6], &[1, 1], 1),
        &[1, 3, 4, 19],
        &[3, 3, 2, 11],
        true,
        3,
    );
}

#[test]
fn conv_without_bias_and_pointwise() {
    check_conv(
        false,
        &attrs(2, &[1, 1], &[0, 0, 0, 0], &[1, 1], 1),
        &[2, 7, 5, 3],
        &[9, 7, 1, 1],
        false,
        4,
    );
    check_conv(
        false,
        &attrs(2, &[1, 1], &[1, 0, 1, 2], &[1, 1], 1),
        &[1, 3, 6, 7],
        &[5, 3, 2, 3],
        false,
        5,
    );
    // 1x1 with stride 2: not flattened.
    check_conv(
        false,
        &attrs(2, &[2, 2], &[0, 0, 0, 0], &[1, 1], 1),
        &[1, 4, 9, 9],
        &[3, 4, 1, 1],
        true,
        6,
    );
}

#[test]
fn grouped_and_depthwise_conv() {
    // 3 groups of 2 input and 3 output channels.
    check_conv(
        false,
        &attrs(2, &[1, 2], &[1, 1, 1, 1], &[1, 1], 3),
        &[2, 6, 7, 10],
        &[9, 2, 3, 3],
        true,
        7,
    );
    // Depthwise 3x3 stride 2 (channels 13: not a block multiple).
    check_conv(
        false,
        &attrs(2, &[2, 2], &[1, 1, 1, 1], &[1, 1], 13),
        &[1, 13, 11, 9],
        &[13, 1, 3, 3],
        true,
        8,
    );
    // Depthwise with channel multiplier 2.
    check_conv(
        false,
        &attrs(2, &[1, 1], &[2, 2, 2, 2], &[2, 2], 5),
        &[1, 5, 8, 8],
        &[10, 1, 3, 3],
        false,
        9,
    );
}

#[test]
fn conv1d_and_conv3d() {
    check_conv(
        false,
        &attrs(1, &[2], &[3, 1], &[2], 1),
        &[2, 3, 23],
        &[7, 3, 4],
        true,
        10,
    );
    check_conv(
        false,
        &attrs(1, &[1], &[0, 0], &[1], 2),
        &[1, 4, 9],
        &[6, 2, 9],
        true,
        11,
    );
    check_conv(
        false,
        &attrs(3, &[1, 2, 1], &[1, 0, 1, 1, 1, 0], &[1, 1, 2], 1),
        &[1, 2, 5, 7, 9],
        &[3, 2, 3, 2, 3],
        true,
        12,
    );
}

#[test]
fn conv_transpose_strides_pads_output_padding_groups() {
    let mut a = attrs(2, &[2, 2], &[1, 1, 1, 1], &[1, 1], 1);
    a.output_padding = vec![1, 1];
    check_conv(true, &a, &[1, 3, 5, 6], &[3, 4, 3, 3], true, 20);
    // Groups, asymmetric strides/pads, dilation.
    let mut a = attrs(2, &[3, 2], &[0, 2, 1, 1], &[1, 2], 2);
    a.output_padding = vec![2, 0];
    check_conv(true, &a, &[2, 4, 4, 5], &[4, 3, 2, 3], true, 21);
    // Depthwise, no bias, wide kernel (table-driven taps).
    let mut a = attrs(2, &[1, 3], &[0, 4, 0, 2], &[1, 1], 5);
    a.output_padding = vec![0, 1];
    check_conv(true, &a, &[1, 5, 3, 4], &[5, 1, 2, 10], false, 22);
    // 1-D and 3-D.
    let mut a = attrs(1, &[3], &[2, 1], &[1], 1);
    a.output_padding = vec![2];
    check_conv(true, &a, &[2, 3, 7], &[3, 2, 4], true, 23);
    let mut a = attrs(3, &[2, 1, 2], &[1, 0, 0, 0, 1, 1], &[1, 1, 1], 1);
    a.output_padding = vec![1, 0, 0];
    check_conv(true, &a, &[1, 2, 3, 4, 3], &[2, 3, 3, 2, 2], true, 24);
    // Pointwise transpose (flattened).
    check_conv(
        true,
        &attrs(2, &[1, 1], &[0, 0, 0, 0], &[1, 1], 1),
        &[1, 5, 3, 7],
        &[5, 6, 1, 1],
        true,
        25,
    );
}

#[test]
fn conv_hand_computed() {
    // 1x1x3x3 input 1..9, 2x2 kernel of ones, pad 1 at the top-left only.
    let x = f32_tensor(&[1, 1, 3, 3], (1..=9).map(|v| v as f32).collect());
    let w = f32_tensor(&[1, 1, 2, 2], vec![1.0; 4]);
    let a = attrs(2, &[1, 1], &[1, 1, 0, 0], &[1, 1], 1);
    let (g, feed) = conv_graph(false, &a, &x, &w, None, true);
    let want = f32_tensor(
        &[1, 1, 3, 3],
        vec![1.0, 3.0, 5.0, 5.0, 12.0, 16.0, 11.0, 24.0, 28.0],
    );
    check(&g, &feed, &[want], 0.0);
}

#[test]
fn conv_wide_rows_use_register_tiles() {
    // Rows long enough for several 16-wide interior tiles plus borders and a
    // remainder; 6 output channels = one block of 4 and a tail of 2.
    check_conv(
        false,
        &attrs(2, &[1, 1], &[1, 2, 1, 0], &[1, 2], 1),
        &[1, 3, 5, 45],
        &[6, 3, 3, 3],
        true,
        30,
    );
    // Pointwise over 7x9 = 63 positions (3 tiles + 15).
    check_conv(
        false,
        &attrs(2, &[1, 1], &[0, 0, 0, 0], &[1, 1], 1),
        &[2, 5, 7, 9],
        &[7, 5, 1, 1],
        true,
        31,
    );
    // Depthwise, wide kernel along the row (tap loop, not unrolled).
    check_conv(
        false,
        &attrs(2, &[1, 1], &[1, 5, 1, 5], &[1, 1], 3),
        &[1, 3, 4, 50],
        &[3, 1, 3, 11],
        true,
        32,
    );
    // 1-D, stride 1, grouped.
    check_conv(
        false,
        &attrs(1, &[1], &[2, 2], &[1], 2),
        &[2, 4, 70],
        &[10, 2, 5],
        false,
        33,
    );
}

#[test]
fn conv_strided_register_tiles() {
    // Stride 2 and 3 along the row with pads: strided lane loads.
    check_conv(
        false,
        &attrs(2, &[2, 2], &[1, 1, 1, 1], &[1, 1], 1),
        &[1, 3, 7, 75],
        &[5, 3, 3, 3],
        true,
        40,
    );
    check_conv(
        false,
        &attrs(2, &[1, 3], &[0, 2, 0, 2], &[1, 2], 1),
        &[1, 2, 3, 110],
        &[3, 2, 2, 3],
        true,
        41,
    );
    // Stride 5: beyond the tile limit, general path only.
    check_conv(
        false,
        &attrs(1, &[5], &[1, 1], &[1], 1),
        &[1, 2, 130],
        &[3, 2, 3],
        true,
        42,
    );
}

#[test]
fn conv_transpose_wide_rows_use_register_tiles() {
    // Stride 2, kernel 4, pad 1: the usual 2x upsampling (two phases).
    check_conv(
        true,
        &attrs(2, &[2, 2], &[1, 1, 1, 1], &[1, 1], 1),
        &[1, 5, 4, 37],
        &[5, 6, 4, 4],
        true,
        50,
    );
    // Stride 1 (vector stores), asymmetric pads, groups.
    let mut a = attrs(2, &[1, 1], &[1, 2, 0, 1], &[1, 1], 2);
    a.output_padding = vec![0, 0];
    check_conv(true, &a, &[2, 4, 3, 41], &[4, 3, 3, 3], true, 51);
    // Stride 2 with dilation 2 (taps share one phase), output_padding.
    let mut a = attrs(2, &[2, 2], &[1, 1, 0, 2], &[2, 2], 1);
    a.output_padding = vec![1, 1];
    check_conv(true, &a, &[1, 3, 3, 36], &[3, 5, 2, 3], false, 52);
    // Stride 3 along a 1-D row, dilation 2, pads.
    let mut a = attrs(1, &[3], &[4, 2], &[2], 1);
    a.output_padding = vec![2];
    check_conv(true, &a, &[2, 3, 50], &[3, 7, 5], true, 53);
    // 3-D, stride 2 on every dim.
    let mut a = attrs(3, &[2, 2, 2], &[1, 0, 1, 0, 1, 1], &[1, 1, 1], 1);
    a.output_padding = vec![0, 1, 0];
    check_conv(true, &a, &[1, 2, 3, 2, 33], &[2, 3, 3, 2, 4], true, 54);
}
