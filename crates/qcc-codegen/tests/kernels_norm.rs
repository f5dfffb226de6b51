//! BatchNorm kernel, with constant (folded) and run-time parameters, run
//! natively and compared with the formula evaluated here in f64 (and with
//! the interpreter).
//!
//! Tolerance: `x * a + b` with `a`, `b` rounded to f32 differs from the f64
//! formula by a few ulp of the larger of |x·a| and |b| (≤ ~50 here); 1e-5
//! relative to max(1, |want|) allows that, a wrong channel is off by O(1).

mod common;
use common::*;
use qcc_ir::{Op, Tensor, ValueId};

const TOL: f32 = 1e-5;

fn ref_bn(x: &Tensor, p: &[Tensor], eps: f32) -> Tensor {
    let s = x.shape();
    let c = s[1];
    let inner: usize = s[2..].iter().product();
    let v: Vec<&[f32]> = p.iter().map(|t| t.as_f32().unwrap()).collect();
    let out = x
        .as_f32()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, &a)| {
            let ch = (i / inner) % c;
            ((a as f64 - v[2][ch] as f64) / (v[3][ch] as f64 + eps as f64).sqrt() * v[0][ch] as f64
                + v[1][ch] as f64) as f32
        })
        .collect();
    f32_tensor(s, out)
}

fn check_bn(shape: &[usize], eps: f32, konst: bool, seed: u64) {
    let c = shape[1];
    let x = rand_tensor(shape, seed);
    let params = vec![
        rand_tensor(&[c], seed + 1),
        rand_tensor(&[c], seed + 2),
        rand_tensor(&[c], seed + 3),
        f32_tensor(&[c], rand_f32(c, seed + 4, 0.1, 4.0)),
    ];
    let (mut g, xi) = graph_with_input(shape);
    let mut feed = vec![x.clone()];
    let mut ids = vec![ValueId::of(xi)];
    for (k, t) in params.iter().enumerate() {
        let id = if konst {
            g.add_const(format!("p{k}"), t.clone())
        } else {
            feed.push(t.clone());
            g.add_input(format!("p{k}"), t.ty())
        };
        ids.push(ValueId::of(id));
    }
    let y = g
        .add_node(Op::BatchNorm { epsilon: eps }, "bn", ids)
        .expect("valid");
    g.add_output("y", ValueId::of(y));
    check(&g, &feed, &[ref_bn(&x, &params, eps)], TOL);
    check_interp(&g, &feed, TOL);
}

#[test]
fn batchnorm_constant_and_runtime_parameters() {
    for konst in [true, false] {
        check_bn(&[2, 5, 7, 9], 1e-5, konst, 1);
        check_bn(&[3, 11], 1e-3, konst, 2);
        check_bn(&[1, 3, 4, 5, 6], 0.1, konst, 3);
    }
}

#[test]
fn batchnorm_hand_computed() {
    // Channel 0: (x - 1) / 2 * 3 + 4; channel 1: (x + 2) / 1 * -1 + 0.
    let x = f32_tensor(&[1, 2, 2], vec![1.0, 5.0, -2.0, 0.0]);
    let (mut g, xi) = graph_with_input(&[1, 2, 2]);
    let mut ids = vec![ValueId::of(xi)];
    for (k, v) in [[3.0, -1.0], [4.0, 0.0], [1.0, -2.0], [4.0, 1.0]]
        .into_iter()
        .enumerate()
    {
        ids.push(ValueId::of(
            g.add_const(format!("p{k}"), f32_tensor(&[2], v.to_vec())),
        ));
    }
    let y = g
        .add_node(Op::BatchNorm { epsilon: 0.0 }, "bn", ids)
        .expect("valid");
    g.add_output("y", ValueId::of(y));
    check(
        &g,
        &[x],
        &[f32_tensor(&[1, 2, 2], vec![4.0, 10.0, 0.0, -2.0])],
        0.0,
    );
}
