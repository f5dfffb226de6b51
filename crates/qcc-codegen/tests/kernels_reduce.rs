//! Reduce and Softmax kernels, run natively and compared with naive
//! references written here (and with the interpreter).
//!
//! Tolerance: sums of ≤ 300 values in [-3, 3) accumulate in f32 in another
//! order than the f64 reference (error ≲ 300 · 2^-24 · 900 ≈ 2e-5 absolute
//! at worst, typically far less); softmax adds the inline exp's few ulp.
//! 1e-4 relative to max(1, |want|) bounds both, while a wrong axis or
//! divisor is off by O(1).

mod common;
use common::*;
use qcc_ir::{Graph, Op, ReduceOp, Tensor, ValueId};

const TOL: f32 = 1e-4;

fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut v = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        v[d] = i % shape[d];
        i /= shape[d];
    }
    v
}

fn one_node(op: Op, shape: &[usize]) -> Graph {
    let (mut g, x) = graph_with_input(shape);
    let y = g
        .add_node(op, "op", vec![ValueId::of(x)])
        .expect("valid node");
    g.add_output("y", ValueId::of(y));
    g
}

/// Naive reduction: every input element added to the slot of its kept coordinates.
fn ref_reduce(op: ReduceOp, x: &Tensor, axes: &[usize], keepdims: bool) -> Tensor {
    let s = x.shape();
    let kept: Vec<usize> = (0..s.len())
        .map(|d| if axes.contains(&d) { 1 } else { s[d] })
        .collect();
    let n: usize = kept.iter().product();
    let mut acc = vec![
        if op == ReduceOp::Max {
            f64::NEG_INFINITY
        } else {
            0.0
        };
        n
    ];
    for (i, &v) in x.as_f32().unwrap().iter().enumerate() {
        let c = unravel(i, s);
        let o = (0..s.len()).fold(0, |a, d| {
            a * kept[d] + if axes.contains(&d) { 0 } else { c[d] }
        });
        acc[o] = match op {
            ReduceOp::Max => acc[o].max(v as f64),
            _ => acc[o] + v as f64,
        };
    }
    let count: usize = (0..s.len())
        .filter(|d| axes.contains(d))
        .map(|d| s[d])
        .product();
    let out: Vec<f32> = acc
        .iter()
        .map(|&a| if op == ReduceOp::Mean { a / count as f64 } else { a } as f32)
        .collect();
    let shape: Vec<usize> = if keepdims {
        kept
    } else {
        (0..s.len())
            .filter(|d| !axes.contains(d))
            .map(|d| s[d])
            .collect()
    };
    f32_tensor(&shape, out)
}

fn check_reduce(shape: &[usize], axes: &[usize], seed: u64) {
    let x = rand_tensor(shape, seed);
    for op in [ReduceOp::Mean, ReduceOp::Max, ReduceOp::Sum] {
        for keepdims in [true, false] {
            let g = one_node(
                Op::Reduce {
                    op,
                    axes: axes.to_vec(),
                    keepdims,
                },
                shape,
            );
            let want = ref_reduce(op, &x, axes, keepdims);
            check(&g, std::slice::from_ref(&x), &[want], TOL);
            check_interp(&g, std::slice::from_ref(&x), TOL);
        }
    }
}

#[test]
fn reduce_over_several_axes() {
    check_reduce(&[3, 5, 7, 9], &[1, 3], 1);
    check_reduce(&[3, 5, 7, 9], &[0, 2], 2);
    check_reduce(&[2, 3, 4, 5], &[0, 1, 2, 3], 3);
    check_reduce(&[4, 37], &[0], 4);
    check_reduce(&[4, 37], &[1], 5);
    check_reduce(&[2, 6, 5], &[], 6);
}

#[test]
fn reduce_as_global_pools() {
    // GlobalAveragePool / GlobalMaxPool on [N, C, H, W].
    check_reduce(&[2, 13, 7, 9], &[2, 3], 7);
    check_reduce(&[1, 3, 4, 5, 6], &[2, 3, 4], 8);
}

#[test]
fn reduce_hand_computed() {
    let x = f32_tensor(&[2, 3], vec![1.0, 2.0, 3.0, -4.0, 5.0, f32::NAN]);
    let cases = [
        (ReduceOp::Sum, vec![0], vec![-3.0, 7.0, f32::NAN]),
        (ReduceOp::Max, vec![1], vec![3.0, f32::NAN]),
        (ReduceOp::Mean, vec![0], vec![-1.5, 3.5, f32::NAN]),
    ];
    for (op, axes, want) in cases {
        let n = want.len();
        let g = one_node(
            Op::Reduce {
                op,
                axes,
                keepdims: false,
            },
            &[2, 3],
        );
        check(&g, std::slice::from_ref(&x), &[f32_tensor(&[n], want)], 0.0);
    }
}

fn ref_softmax(x: &Tensor, axis: usize) -> Tensor {
    let s = x.shape();
    let xv = x.as_f32().unwrap();
    let (outer, dim) = (s[..axis].iter().product::<usize>(), s[axis]);
    let inner: usize = s[axis + 1..].iter().product();
    let mut out = vec![0f32; xv.len()];
    for o in 0..outer {
        for i in 0..inner {
            let at = |j: usize| (o * dim + j) * inner + i;
            let m = (0..dim)
                .map(|j| xv[at(j)] as f64)
                .fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = (0..dim).map(|j| (xv[at(j)] as f64 - m).exp()).sum();
            for j in 0..dim {
                out[at(j)] = ((xv[at(j)] as f64 - m).exp() / sum) as f32;
            }
        }
    }
    f32_tensor(s, out)
}

fn check_softmax(shape: &[usize], axis: usize, seed: u64) {
    let x = rand_tensor(shape, seed);
    let g = one_node(Op::Softmax { axis }, shape);
    check(&g, std::slice::from_ref(&x), &[ref_softmax(&x, axis)], TOL);
    check_interp(&g, &[x], TOL);
}

#[test]
fn softmax_last_and_first_axis() {
    check_softmax(&[5, 37], 1, 1);
    check_softmax(&[3, 4, 19], 2, 2);
    check_softmax(&[7, 23], 0, 3);
    check_softmax(&[6, 5, 3], 0, 4);
    check_softmax(&[2, 9, 5, 3], 1, 5);
    // More inner positions than one chunk (256) plus a tail.
    check_softmax(&[2, 3, 300], 1, 6);
    check_softmax(&[1], 0, 7);
}

#[test]
fn softmax_hand_computed() {
    // Large logits: max subtraction keeps exp finite.
    let x = f32_tensor(&[2, 3], vec![1.0, 2.0, 3.0, 1000.0, 1001.0, 1002.0]);
    let p = [0.090_030_57, 0.244_728_48, 0.665_240_94];
    let g = one_node(Op::Softmax { axis: 1 }, &[2, 3]);
    check(&g, &[x], &[f32_tensor(&[2, 3], [p, p].concat())], 1e-6);
}
