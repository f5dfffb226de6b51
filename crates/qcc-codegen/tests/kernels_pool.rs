//! MaxPool and AveragePool kernels, run natively and compared with a naive
//! reference written here (and with the interpreter).
//!
//! Tolerance: a max is exact; an average sums ≤ 27 f32 values (|x| < 3) and
//! divides once, a few ulp away from the f64 reference, so 1e-5 relative to
//! max(1, |want|) is ample while a wrong window or divisor is off by > 1e-2.

mod common;
use common::*;
use qcc_ir::{Graph, Op, PoolAttrs, Tensor, ValueId};

const TOL: f32 = 1e-5;

fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut v = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        v[d] = i % shape[d];
        i /= shape[d];
    }
    v
}

/// Naive pool over an explicit enumeration of window cells.
fn ref_pool(p: &PoolAttrs, max: bool, x: &Tensor, os: &[usize]) -> Tensor {
    let xs = x.shape();
    let r = xs.len() - 2;
    let xv = x.as_f32().unwrap();
    let nk: usize = p.kernel.iter().product();
    let plane: usize = xs[2..].iter().product();
    let mut out = vec![];
    for i in 0..os.iter().product::<usize>() {
        let oi = unravel(i, os);
        let base = (oi[0] * xs[1] + oi[1]) * plane;
        let (mut best, mut sum, mut count) = (f32::NEG_INFINITY, 0f64, 0usize);
        for kf in 0..nk {
            let k = unravel(kf, &p.kernel);
            let (mut off, mut inside, mut padded) = (0usize, true, true);
            for d in 0..r {
                let pos =
                    (oi[2 + d] * p.strides[d] + k[d] * p.dilations[d]) as i64 - p.pads[d] as i64;
                let n = xs[2 + d] as i64;
                inside &= (0..n).contains(&pos);
                padded &= (-(p.pads[d] as i64)..n + p.pads[d + r] as i64).contains(&pos);
                off = off * xs[2 + d] + pos.clamp(0, n - 1) as usize;
            }
            if inside {
                let v = xv[base + off];
                if v > best || v.is_nan() || best.is_nan() {
                    best = if best.is_nan() { best } else { v };
                }
                sum += v as f64;
                count += 1;
            } else if padded && p.count_include_pad {
                count += 1;
            }
        }
        out.push(if max {
            best
        } else if count == 0 {
            0.0
        } else {
            (sum / count as f64) as f32
        });
    }
    f32_tensor(os, out)
}

fn pool_graph(p: &PoolAttrs, max: bool, shape: &[usize]) -> Graph {
    let (mut g, x) = graph_with_input(shape);
    let op = if max {
        Op::MaxPool(p.clone())
    } else {
        Op::AveragePool(p.clone())
    };
    let y = g
        .add_node(op, "pool", vec![ValueId::of(x)])
        .expect("valid pool");
    g.add_output("y", ValueId::of(y));
    g
}

fn check_pool_on(p: &PoolAttrs, max: bool, x: Tensor) {
    let g = pool_graph(p, max, x.shape());
    let os = g.value_type(g.outputs[0].value).shape.clone();
    let want = ref_pool(p, max, &x, &os);
    check(&g, std::slice::from_ref(&x), &[want], TOL);
    check_interp(&g, &[x], TOL);
}

fn pa(k: &[usize], s: &[usize], pads: &[usize], dil: &[usize], ceil: bool) -> PoolAttrs {
    PoolAttrs {
        kernel: k.to_vec(),
        strides: s.to_vec(),
        pads: pads.to_vec(),
        dilations: dil.to_vec(),
        ceil_mode: ceil,
        count_include_pad: false,
    }
}

/// Every pool kind (max, avg with and without pads counted) on one config.
fn check_all(p: PoolAttrs, shape: &[usize], seed: u64) {
    let x = rand_tensor(shape, seed);
    check_pool_on(&p, true, x.clone());
    for include in [false, true] {
        let p = PoolAttrs {
            count_include_pad: include,
            ..p.clone()
        };
        check_pool_on(&p, false, x.clone());
    }
}

#[test]
fn pool2d_pads_strides() {
    check_all(
        pa(&[3, 3], &[2, 2], &[1, 1, 1, 1], &[1, 1], false),
        &[2, 3, 9, 11],
        1,
    );
    check_all(
        pa(&[2, 3], &[1, 2], &[0, 1, 1, 2], &[1, 1], false),
        &[1, 2, 7, 13],
        2,
    );
    // Kernel wider than the unroll limit along the row.
    check_all(
        pa(&[1, 10], &[1, 3], &[0, 4, 0, 5], &[1, 1], false),
        &[1, 2, 3, 29],
        3,
    );
}

#[test]
fn pool_ceil_mode_windows_run_past_the_input() {
    check_all(
        pa(&[3, 3], &[2, 2], &[0, 0, 0, 0], &[1, 1], true),
        &[1, 3, 8, 10],
        4,
    );
    check_all(
        pa(&[3, 2], &[2, 3], &[1, 1, 1, 0], &[1, 1], true),
        &[2, 2, 10, 17],
        5,
    );
    check_all(
        pa(&[2, 2], &[2, 2], &[1, 1, 1, 1], &[2, 1], true),
        &[1, 1, 9, 9],
        6,
    );
}

#[test]
fn pool_dilations_1d_3d() {
    check_all(pa(&[3], &[2], &[2, 1], &[2], true), &[2, 3, 19], 7);
    check_all(
        pa(
            &[2, 3, 2],
            &[1, 2, 2],
            &[1, 0, 1, 0, 1, 1],
            &[1, 1, 2],
            false,
        ),
        &[1, 2, 4, 7, 9],
        8,
    );
}

#[test]
fn pool_hand_computed() {
    // 1-D [1..6], kernel 3, stride 2, ceil: windows {1,2,3} {3,4,5} {5,6}+overhang.
    let x = f32_tensor(&[1, 1, 6], (1..=6).map(|v| v as f32).collect());
    for include in [false, true] {
        let mut p = pa(&[3], &[2], &[0, 0], &[1], true);
        p.count_include_pad = include;
        let g = pool_graph(&p, false, x.shape());
        check(
            &g,
            std::slice::from_ref(&x),
            &[f32_tensor(&[1, 1, 3], vec![2.0, 4.0, 5.5])],
            0.0,
        );
        let g = pool_graph(&p, true, x.shape());
        check(
            &g,
            std::slice::from_ref(&x),
            &[f32_tensor(&[1, 1, 3], vec![3.0, 5.0, 6.0])],
            0.0,
        );
    }
    // Pads: [1..5], kernel 3, stride 2, pads 1/1: windows {p,1,2} {2,3,4} {4,5,p}.
    let x = f32_tensor(&[1, 1, 5], (1..=5).map(|v| v as f32).collect());
    let mut p = pa(&[3], &[2], &[1, 1], &[1], false);
    let g = pool_graph(&p, false, x.shape());
    check(
        &g,
        std::slice::from_ref(&x),
        &[f32_tensor(&[1, 1, 3], vec![1.5, 3.0, 4.5])],
        0.0,
    );
    p.count_include_pad = true;
    let g = pool_graph(&p, false, x.shape());
    check(
        &g,
        std::slice::from_ref(&x),
        &[f32_tensor(&[1, 1, 3], vec![1.0, 3.0, 3.0])],
        0.0,
    );
    // Negative values: padding (zero) must not win a max.
    let x = f32_tensor(&[1, 1, 3], vec![-5.0, -2.0, -7.0]);
    let p = pa(&[2], &[1], &[1, 1], &[1], false);
    let g = pool_graph(&p, true, x.shape());
    check(
        &g,
        std::slice::from_ref(&x),
        &[f32_tensor(&[1, 1, 4], vec![-5.0, -2.0, -2.0, -7.0])],
        0.0,
    );
}

#[test]
fn maxpool_nan_wins() {
    let x = f32_tensor(&[1, 1, 5], vec![1.0, f32::NAN, 3.0, 0.0, -1.0]);
    let p = pa(&[2], &[1], &[0, 0], &[1], false);
    let g = pool_graph(&p, true, x.shape());
    let want = f32_tensor(&[1, 1, 4], vec![f32::NAN, f32::NAN, 3.0, 0.0]);
    check(&g, &[x], &[want], 0.0);
}
