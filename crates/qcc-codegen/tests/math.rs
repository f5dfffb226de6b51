//! The libm-free math functions (src/math.rs), run natively over input
//! sweeps and compared with f64 references. Stated bounds:
//! - exp: relative error ≤ 4e-7 on [-87, 88] (≈ 3 ulp); exact specials;
//! - log: relative error ≤ 3e-7 on [1e-44, 3e38] (subnormals included);
//! - tanh, sigmoid, erf: absolute error ≤ 1e-6 (tanh also relative ≤ 1e-6);
//! - Pow (run-time exponent): relative error ≤ 4e-6 where |result| is normal.

mod common;
use common::*;
use qcc_ir::{BinaryOp, Graph, Op, TensorType, UnaryOp, ValueId};

fn linspace(lo: f64, hi: f64, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (lo + (hi - lo) * i as f64 / (n - 1) as f64) as f32)
        .collect()
}

/// erf in f64: Maclaurin series below 4 (|error| < 1e-12), ±1 above.
fn erf64(x: f64) -> f64 {
    if x.abs() >= 4.0 {
        return x.signum();
    }
    let mut term = x; // x^(2n+1) (-1)^n / n!
    let mut sum = x;
    for n in 1..200 {
        term *= -x * x / n as f64;
        let t = term / (2 * n + 1) as f64;
        sum += t;
        if t.abs() < 1e-17 {
            break;
        }
    }
    sum * 2.0 / std::f64::consts::PI.sqrt()
}

struct Case {
    op: UnaryOp,
    xs: Vec<f32>,
    reference: fn(f64) -> f64,
    rel: f64,
    abs: f64,
}

fn run_cases(cases: &[Case]) {
    let mut g = Graph::new("math");
    let mut inputs = vec![];
    for (k, c) in cases.iter().enumerate() {
        let x = g.add_input(format!("x{k}"), TensorType::f32(vec![c.xs.len()]));
        let y = g
            .add_node(Op::Unary(c.op), format!("f{k}"), vec![ValueId::of(x)])
            .expect("valid");
        g.add_output(format!("y{k}"), ValueId::of(y));
        inputs.push(f32_tensor(&[c.xs.len()], c.xs.clone()));
    }
    let outs = run_native(&g, &inputs);
    for (c, out) in cases.iter().zip(&outs) {
        let got = out.as_f32().expect("f32");
        let mut worst = (0.0f64, 0.0f32);
        for (&x, &y) in c.xs.iter().zip(got) {
            let want = (c.reference)(x as f64);
            let want32 = want as f32;
            if want32.is_nan() || want32.is_infinite() || want32 == 0.0 {
                assert!(
                    y == want32 || (y.is_nan() && want32.is_nan()),
                    "{:?}({x:e}) = {y:e}, want {want32:e}",
                    c.op
                );
                continue;
            }
            let err = (y as f64 - want).abs();
            let bound = c.abs.max(c.rel * want.abs());
            assert!(
                err <= bound,
                "{:?}({x:e}) = {y:e}, want {want:e}: error {err:e} > {bound:e}",
                c.op
            );
            if err / bound > worst.0 {
                worst = (err / bound, x);
            }
        }
        eprintln!(
            "{:?}: worst error {:.3} of the bound at x = {:e}",
            c.op, worst.0, worst.1
        );
    }
}

#[test]
fn math_sweeps_within_stated_error() {
    let mut log_xs: Vec<f32> = (0..20000)
        .map(|i| 10f64.powf(-44.0 + 82.5 * i as f64 / 19999.0) as f32)
        .filter(|x| *x > 0.0 && x.is_finite())
        .collect();
    log_xs.extend(linspace(0.001, 4.0, 5000));
    let cases = [
        Case {
            op: UnaryOp::Exp,
            xs: linspace(-87.0, 88.0, 20000)
                .into_iter()
                .chain(linspace(-1.0, 1.0, 4001))
                .collect(),
            reference: f64::exp,
            rel: 4e-7,
            abs: 0.0,
        },
        Case {
            op: UnaryOp::Log,
            xs: log_xs,
            reference: f64::ln,
            rel: 3e-7,
            abs: 0.0,
        },
        Case {
            op: UnaryOp::Tanh,
            xs: linspace(-12.0, 12.0, 24001)
                .into_iter()
                .chain(linspace(-0.01, 0.01, 2001))
                .collect(),
            reference: f64::tanh,
            rel: 1e-6,
            abs: 0.0,
        },
        Case {
            op: UnaryOp::Sigmoid,
            xs: linspace(-40.0, 40.0, 24001),
            reference: |x| 1.0 / (1.0 + (-x).exp()),
            rel: 0.0,
            abs: 1e-6,
        },
        Case {
            op: UnaryOp::Erf,
            xs: linspace(-6.0, 6.0, 24001),
            reference: erf64,
            rel: 0.0,
            abs: 1e-6,
        },
    ];
    run_cases(&cases);
}

#[test]
fn math_special_values() {
    let specials = vec![
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        0.0,
        -0.0,
        100.0,
        -200.0,
        1e-40,
    ];
    let cases = [
        Case {
            op: UnaryOp::Exp,
            xs: specials.clone(),
            reference: f64::exp,
            rel: 4e-7,
            abs: 0.0,
        },
        Case {
            op: UnaryOp::Log,
            xs: vec![f32::INFINITY, 0.0, -1.0, f32::NAN, 1e-40, 1.0, f32::MAX],
            reference: f64::ln,
            rel: 3e-7,
            abs: 0.0,
        },
        Case {
            op: UnaryOp::Tanh,
            xs: specials.clone(),
            reference: f64::tanh,
            rel: 1e-6,
            abs: 0.0,
        },
        Case {
            op: UnaryOp::Sigmoid,
            xs: specials.clone(),
            reference: |x| 1.0 / (1.0 + (-x).exp()),
            rel: 0.0,
            abs: 1e-6,
        },
        Case {
            op: UnaryOp::Erf,
            xs: specials,
            reference: |x| if x.is_nan() { x } else { erf64(x) },
            rel: 0.0,
            abs: 1e-6,
        },
    ];
    run_cases(&cases);
}

#[test]
fn pow_runtime_exponent() {
    let n = 4000;
    let mut a = rand_f32(n, 11, -4.0, 4.0);
    let mut b = rand_f32(n, 12, -6.0, 6.0);
    // Integer exponents for negative bases, and some specials.
    for i in (0..n).step_by(3) {
        b[i] = b[i].round();
    }
    a.extend([0.0, 0.0, 1.0, -2.0, -2.0, 2.0]);
    b.extend([2.0, -1.0, f32::NAN, 3.0, 0.5, 0.0]);
    let len = a.len();
    let mut g = Graph::new("pow");
    let x = g.add_input("a", TensorType::f32(vec![len]));
    let y = g.add_input("b", TensorType::f32(vec![len]));
    let p = g
        .add_node(
            Op::Binary(BinaryOp::Pow),
            "p",
            vec![ValueId::of(x), ValueId::of(y)],
        )
        .expect("valid");
    g.add_output("p", ValueId::of(p));
    let outs = run_native(
        &g,
        &[f32_tensor(&[len], a.clone()), f32_tensor(&[len], b.clone())],
    );
    let got = outs[0].as_f32().expect("f32");
    for i in 0..len {
        let want = (a[i] as f64).powf(b[i] as f64);
        let (w, y) = (want as f32, got[i]);
        if w.is_nan() {
            assert!(y.is_nan(), "pow({}, {}) = {y}, want NaN", a[i], b[i]);
        } else if !w.is_normal() {
            assert_eq!(y, w, "pow({}, {})", a[i], b[i]);
        } else {
            let err = ((y as f64 - want) / want).abs();
            assert!(err <= 4e-6, "pow({}, {}) = {y}, want {want}", a[i], b[i]);
        }
    }
}
