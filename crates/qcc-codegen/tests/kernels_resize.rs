//! Resize kernel: nearest (every rounding mode), n-linear and cubic under
//! every coordinate transform, run natively and compared with the ONNX
//! spec's examples, naive references written here and the interpreter.
//!
//! Tolerance: nearest is an exact copy; linear computes `a + w (b - a)` per
//! dim in f32 where the reference sums `Π w · x` in f64, a few ulp of values
//! below 3, so 1e-5 relative to max(1, |want|); a wrong source index is off
//! by far more.

mod common;
use common::*;
use qcc_ir::{CoordTransform, Graph, NearestMode, Op, ResizeAttrs, ResizeMode, Tensor, ValueId};

const TOL: f32 = 1e-5;

const COORDS: [CoordTransform; 5] = [
    CoordTransform::HalfPixel,
    CoordTransform::PytorchHalfPixel,
    CoordTransform::AlignCorners,
    CoordTransform::Asymmetric,
    CoordTransform::HalfPixelSymmetric,
];
const NEAREST: [NearestMode; 4] = [
    NearestMode::RoundPreferFloor,
    NearestMode::RoundPreferCeil,
    NearestMode::Floor,
    NearestMode::Ceil,
];

fn attrs(
    mode: ResizeMode,
    coord: CoordTransform,
    nearest: NearestMode,
    xs: &[usize],
    sizes: &[usize],
) -> ResizeAttrs {
    ResizeAttrs {
        mode,
        coord,
        nearest,
        scales: xs
            .iter()
            .zip(sizes)
            .map(|(&i, &o)| o as f32 / i as f32)
            .collect(),
        sizes: sizes.to_vec(),
    }
}

fn resize_graph(r: &ResizeAttrs, xs: &[usize]) -> Graph {
    let (mut g, x) = graph_with_input(xs);
    let y = g
        .add_node(Op::Resize(r.clone()), "resize", vec![ValueId::of(x)])
        .expect("valid resize");
    g.add_output("y", ValueId::of(y));
    g
}

/// Source coordinate per the ONNX formulas, in f32 like the spec's implementations.
fn coord(ct: CoordTransform, x: usize, scale: f32, len_in: usize, len_out: usize) -> f32 {
    let (x, li, lo) = (x as f32, len_in as f32, len_out as f32);
    match ct {
        CoordTransform::HalfPixel => (x + 0.5) / scale - 0.5,
        CoordTransform::PytorchHalfPixel => {
            if len_out > 1 {
                (x + 0.5) / scale - 0.5
            } else {
                0.0
            }
        }
        CoordTransform::AlignCorners => {
            if len_out > 1 {
                x * (li - 1.0) / (lo - 1.0)
            } else {
                0.0
            }
        }
        CoordTransform::Asymmetric => x / scale,
        CoordTransform::HalfPixelSymmetric => {
            let adj = lo / (scale * li);
            li / 2.0 * (1.0 - adj) + (x + 0.5) / scale - 0.5
        }
    }
}

/// Per dim and output coordinate: the (index, weight) pairs to combine.
fn taps(r: &ResizeAttrs, d: usize, li: usize, lo: usize) -> Vec<Vec<(usize, f64)>> {
    let top = (li - 1) as f32;
    (0..lo)
        .map(|o| {
            let c = coord(r.coord, o, r.scales[d], li, lo);
            match r.mode {
                ResizeMode::Nearest => {
                    let f = c.floor();
                    let n = match r.nearest {
                        NearestMode::Floor => f,
                        NearestMode::Ceil => c.ceil(),
                        NearestMode::RoundPreferFloor => {
                            if c - f <= 0.5 {
                                f
                            } else {
                                f + 1.0
                            }
                        }
                        NearestMode::RoundPreferCeil => {
                            if c - f < 0.5 {
                                f
                            } else {
                                f + 1.0
                            }
                        }
                    };
                    vec![(n.clamp(0.0, top) as usize, 1.0)]
                }
                ResizeMode::Linear => {
                    let c = c.clamp(0.0, top);
                    let i = c.floor() as usize;
                    let w = (c - c.floor()) as f64;
                    vec![(i, 1.0 - w), ((i + 1).min(li - 1), w)]
                }
                ResizeMode::Cubic { .. } => panic!("cubic has its own reference (cubic_1d)"),
            }
        })
        .collect()
}

fn ref_resize(r: &ResizeAttrs, x: &Tensor) -> Tensor {
    let xs = x.shape();
    let rank = xs.len();
    let t: Vec<_> = (0..rank).map(|d| taps(r, d, xs[d], r.sizes[d])).collect();
    let xv = x.as_f32().unwrap();
    let n: usize = r.sizes.iter().product();
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        // Output coordinates, then the weighted sum over the product of taps.
        let mut c = vec![0; rank];
        let mut rem = i;
        for d in (0..rank).rev() {
            c[d] = rem % r.sizes[d];
            rem /= r.sizes[d];
        }
        let mut terms = vec![(0usize, 1f64)];
        for d in 0..rank {
            terms = terms
                .iter()
                .flat_map(|&(off, w)| {
                    t[d][c[d]]
                        .iter()
                        .map(move |&(j, wj)| (off * xs[d] + j, w * wj))
                })
                .collect();
        }
        out.push(
            terms
                .iter()
                .map(|&(off, w)| w * xv[off] as f64)
                .sum::<f64>() as f32,
        );
    }
    f32_tensor(&r.sizes, out)
}

fn check_resize(r: &ResizeAttrs, xs: &[usize], seed: u64) {
    let x = rand_tensor(xs, seed);
    let g = resize_graph(r, xs);
    check(&g, std::slice::from_ref(&x), &[ref_resize(r, &x)], TOL);
    check_interp(&g, &[x], TOL);
}

#[test]
fn resize_nearest_every_mode_and_transform() {
    let mut seed = 1;
    for coord in COORDS {
        for nearest in NEAREST {
            for (xs, sizes) in [
                (&[1, 2, 5, 7][..], &[1, 2, 8, 19][..]),
                (&[1, 1, 9, 11], &[1, 1, 4, 5]),
                (&[2, 3, 6], &[2, 3, 1]),
            ] {
                let r = attrs(ResizeMode::Nearest, coord, nearest, xs, sizes);
                check_resize(&r, xs, seed);
                seed += 1;
            }
        }
    }
}

#[test]
fn resize_linear_every_transform() {
    let mut seed = 100;
    for coord in COORDS {
        for (xs, sizes) in [
            (&[1, 2, 5, 7][..], &[1, 2, 8, 19][..]),
            (&[1, 1, 9, 11], &[1, 1, 4, 5]),
            (&[2, 3, 4, 5], &[2, 5, 7, 3]),
            (&[3, 17], &[3, 1]),
        ] {
            let r = attrs(ResizeMode::Linear, coord, NearestMode::Floor, xs, sizes);
            check_resize(&r, xs, seed);
            seed += 1;
        }
    }
}

#[test]
fn resize_examples_from_the_onnx_spec() {
    let x = f32_tensor(&[1, 1, 2, 2], vec![1.0, 2.0, 3.0, 4.0]);
    // resize_upsample_scales_nearest (half_pixel, round_prefer_floor), scales [1,1,2,3].
    let r = ResizeAttrs {
        mode: ResizeMode::Nearest,
        coord: CoordTransform::HalfPixel,
        nearest: NearestMode::RoundPreferFloor,
        scales: vec![1.0, 1.0, 2.0, 3.0],
        sizes: vec![1, 1, 4, 6],
    };
    let row = |a: f32, b: f32| vec![a, a, a, b, b, b];
    let want = [row(1.0, 2.0), row(1.0, 2.0), row(3.0, 4.0), row(3.0, 4.0)].concat();
    check(
        &resize_graph(&r, &[1, 1, 2, 2]),
        std::slice::from_ref(&x),
        &[f32_tensor(&[1, 1, 4, 6], want)],
        0.0,
    );
    // resize_upsample_scales_linear (half_pixel), scales [1,1,2,2].
    let r = ResizeAttrs {
        mode: ResizeMode::Linear,
        scales: vec![1.0, 1.0, 2.0, 2.0],
        sizes: vec![1, 1, 4, 4],
        ..r
    };
    let want = vec![
        1.0, 1.25, 1.75, 2.0, 1.5, 1.75, 2.25, 2.5, 2.5, 2.75, 3.25, 3.5, 3.0, 3.25, 3.75, 4.0,
    ];
    check(
        &resize_graph(&r, &[1, 1, 2, 2]),
        std::slice::from_ref(&x),
        &[f32_tensor(&[1, 1, 4, 4], want)],
        1e-6,
    );
    // resize_upsample_scales_linear_align_corners.
    let r = ResizeAttrs {
        coord: CoordTransform::AlignCorners,
        ..r
    };
    let t = 1.0 / 3.0;
    let want: Vec<f32> = (0..16)
        .map(|i| 1.0 + 2.0 * t * (i / 4) as f32 + t * (i % 4) as f32)
        .collect();
    check(
        &resize_graph(&r, &[1, 1, 2, 2]),
        std::slice::from_ref(&x),
        &[f32_tensor(&[1, 1, 4, 4], want)],
        1e-6,
    );
    // resize_downsample_scales_nearest, scales [1,1,0.6,0.6].
    let x = f32_tensor(&[1, 1, 2, 4], (1..=8).map(|v| v as f32).collect());
    let r = ResizeAttrs {
        mode: ResizeMode::Nearest,
        coord: CoordTransform::HalfPixel,
        nearest: NearestMode::RoundPreferFloor,
        scales: vec![1.0, 1.0, 0.6, 0.6],
        sizes: vec![1, 1, 1, 2],
    };
    check(
        &resize_graph(&r, &[1, 1, 2, 4]),
        &[x],
        &[f32_tensor(&[1, 1, 1, 2], vec![1.0, 3.0])],
        0.0,
    );
}

/// 1-D cubic resize of each lane of `v` (shape `xs`) along `d`, written from
/// the ONNX reference: neighbours `⌊s⌋-1 … ⌊s⌋+2` of the source coordinate
/// on the edge-padded input, Keys' coefficients for `a`, and with
/// `exclude_outside` the outside ones zeroed and the rest renormalized; f64.
fn cubic_1d(v: &[f64], xs: &[usize], d: usize, n_out: usize, r: &ResizeAttrs) -> Vec<f64> {
    let ResizeMode::Cubic { a, exclude_outside } = r.mode else {
        panic!("not cubic")
    };
    let a = a as f64;
    let n_in = xs[d];
    let inner: usize = xs[d + 1..].iter().product();
    let outer: usize = xs[..d].iter().product();
    let mut out = vec![0.0; outer * n_out * inner];
    for x in 0..n_out {
        let s = coord(r.coord, x, r.scales[d], n_in, n_out) as f64;
        let t = s - s.floor();
        let k = |u: f64| {
            let u = u.abs();
            if u <= 1.0 {
                (a + 2.0) * u.powi(3) - (a + 3.0) * u * u + 1.0
            } else {
                a * u.powi(3) - 5.0 * a * u * u + 8.0 * a * u - 4.0 * a
            }
        };
        let mut c = [k(1.0 + t), k(t), k(1.0 - t), k(2.0 - t)];
        let idx: Vec<i64> = (0..4).map(|j| s.floor() as i64 - 1 + j).collect();
        if exclude_outside {
            for j in 0..4 {
                if idx[j] < 0 || idx[j] >= n_in as i64 {
                    c[j] = 0.0;
                }
            }
            let sum: f64 = c.iter().sum();
            c.iter_mut().for_each(|w| *w /= sum);
        }
        for o in 0..outer {
            for i in 0..inner {
                let mut acc = 0.0;
                for j in 0..4 {
                    let src = idx[j].clamp(0, n_in as i64 - 1) as usize;
                    acc += c[j] * v[(o * n_in + src) * inner + i];
                }
                out[(o * n_out + x) * inner + i] = acc;
            }
        }
    }
    out
}

/// Cubic resizes (2-D up and down, 3-D, `a` = -0.75 and -0.5, with and
/// without `exclude_outside`, every coordinate transform): native code
/// against a separable f64 reference and the interpreter. Summation orders
/// differ (the kernel sums 4^k taps in f32): 1e-5 relative.
#[test]
fn resize_cubic_against_a_separable_reference() {
    let mut seed = 900;
    for (i, coord) in COORDS.into_iter().enumerate() {
        for (xs, sizes) in [
            (&[1, 2, 5, 7][..], &[1, 2, 9, 13][..]),
            (&[1, 1, 9, 11], &[1, 1, 4, 5]),
            (&[2, 4, 5, 3], &[2, 7, 3, 6]),
        ] {
            for exclude_outside in [false, true] {
                let a = if i % 2 == 0 { -0.75 } else { -0.5 };
                let mode = ResizeMode::Cubic { a, exclude_outside };
                let r = attrs(mode, coord, NearestMode::Floor, xs, sizes);
                let x = rand_tensor(xs, seed);
                seed += 1;
                let mut v: Vec<f64> = x.to_f32_vec().iter().map(|&f| f as f64).collect();
                let mut shape = xs.to_vec();
                for d in 0..xs.len() {
                    if xs[d] != sizes[d] {
                        v = cubic_1d(&v, &shape, d, sizes[d], &r);
                        shape[d] = sizes[d];
                    }
                }
                let want = f32_tensor(sizes, v.iter().map(|&f| f as f32).collect());
                let g = resize_graph(&r, xs);
                check(&g, std::slice::from_ref(&x), &[want], TOL);
                check_interp(&g, &[x], TOL);
            }
        }
    }
}
