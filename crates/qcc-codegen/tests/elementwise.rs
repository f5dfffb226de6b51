//! Unary and Binary kernels, run natively and compared with values
//! computed in Rust.

mod common;
use common::*;
use qcc_ir::{
    broadcast_shapes, broadcast_strides, strides_of, BinaryOp, DType, Graph, Op, Tensor,
    TensorData, UnaryOp, ValueId,
};

fn check_unary_on(op: UnaryOp, x: Tensor, f: impl Fn(f32) -> f32, tol: f32) {
    let shape = x.shape().to_vec();
    let (mut g, xi) = graph_with_input(&shape);
    let y = g
        .add_node(Op::Unary(op), "u", vec![ValueId::of(xi)])
        .expect("valid");
    g.add_output("y", ValueId::of(y));
    let want = x.as_f32().expect("f32").iter().map(|&v| f(v)).collect();
    check(&g, &[x], &[f32_tensor(&shape, want)], tol);
}

fn check_unary(op: UnaryOp, f: impl Fn(f32) -> f32, tol: f32) {
    check_unary_on(op, rand_tensor(&[2, 3, 17], 7), f, tol);
}

fn positive(shape: &[usize]) -> Tensor {
    let n = shape.iter().product();
    f32_tensor(shape, rand_f32(n, 5, 0.01, 50.0))
}

#[test]
fn unary_simple_ops_are_exact() {
    check_unary(UnaryOp::Relu, |x| x.max(0.0), 0.0);
    check_unary(UnaryOp::Neg, |x| -x, 0.0);
    check_unary(UnaryOp::Abs, f32::abs, 0.0);
    let sign = |x: f32| {
        if x > 0.0 {
            1.0
        } else if x < 0.0 {
            -1.0
        } else {
            x
        }
    };
    check_unary(UnaryOp::Sign, sign, 0.0);
    check_unary_on(
        UnaryOp::Sign,
        f32_tensor(&[5], vec![0.0, -0.0, 1e-38, -3e38, f32::INFINITY]),
        sign,
        0.0,
    );
    check_unary(UnaryOp::Reciprocal, |x| 1.0 / x, 0.0);
    check_unary_on(UnaryOp::Sqrt, positive(&[3, 50]), f32::sqrt, 0.0);
    check_unary(
        UnaryOp::LeakyRelu { alpha: 0.1 },
        |x| if x < 0.0 { 0.1 * x } else { x },
        1e-7,
    );
    check_unary(
        UnaryOp::Clip {
            min: -1.0,
            max: 2.0,
        },
        |x| x.clamp(-1.0, 2.0),
        0.0,
    );
    check_unary(
        UnaryOp::Clip {
            min: f32::NEG_INFINITY,
            max: 0.5,
        },
        |x| x.min(0.5),
        0.0,
    );
}

#[test]
fn unary_hard_activations() {
    check_unary(
        UnaryOp::HardSwish,
        |x| x * (x / 6.0 + 0.5).clamp(0.0, 1.0),
        1e-6,
    );
    check_unary(
        UnaryOp::HardSigmoid {
            alpha: 0.2,
            beta: 0.5,
        },
        |x| (0.2 * x + 0.5).clamp(0.0, 1.0),
        1e-6,
    );
}

#[test]
fn unary_transcendentals() {
    check_unary(UnaryOp::Exp, |x| (x as f64).exp() as f32, 1e-6);
    check_unary(UnaryOp::Tanh, |x| (x as f64).tanh() as f32, 1e-6);
    check_unary(
        UnaryOp::Sigmoid,
        |x| (1.0 / (1.0 + (-x as f64).exp())) as f32,
        1e-6,
    );
    check_unary(
        UnaryOp::Silu,
        |x| (x as f64 / (1.0 + (-x as f64).exp())) as f32,
        1e-6,
    );
    check_unary(
        UnaryOp::GeluTanh,
        |x| {
            let (x, k) = (x as f64, (2.0 / std::f64::consts::PI).sqrt());
            (0.5 * x * (1.0 + (k * (x + 0.044715 * x * x * x)).tanh())) as f32
        },
        1e-6,
    );
    check_unary_on(
        UnaryOp::Log,
        positive(&[4, 25]),
        |x| (x as f64).ln() as f32,
        1e-6,
    );
    // erf at a few points (reference values to 8 digits; tests/math.rs sweeps it).
    let pts = [
        (-2.0f32, -0.995_322_3f32),
        (-0.3, -0.328_626_76),
        (0.0, 0.0),
        (0.7, 0.677_801_2),
        (3.0, 0.999_977_9),
    ];
    let (mut g, xi) = graph_with_input(&[5]);
    let y = g
        .add_node(Op::Unary(UnaryOp::Erf), "u", vec![ValueId::of(xi)])
        .expect("valid");
    g.add_output("y", ValueId::of(y));
    check(
        &g,
        &[f32_tensor(&[5], pts.iter().map(|p| p.0).collect())],
        &[f32_tensor(&[5], pts.iter().map(|p| p.1).collect())],
        1e-6,
    );
    // GELU x·(1 + erf(x/√2))/2 at a few points (the formula in f64).
    let pts = [
        (-3.0f32, -0.004_049_694f32),
        (-1.0, -0.158_655_25),
        (-0.3, -0.114_626_57),
        (0.0, 0.0),
        (0.7, 0.530_625_4),
        (2.0, 1.954_499_7),
        (3.0, 2.995_950_3),
    ];
    let (mut g, xi) = graph_with_input(&[7]);
    let y = g
        .add_node(Op::Unary(UnaryOp::Gelu), "u", vec![ValueId::of(xi)])
        .expect("valid");
    g.add_output("y", ValueId::of(y));
    check(
        &g,
        &[f32_tensor(&[7], pts.iter().map(|p| p.0).collect())],
        &[f32_tensor(&[7], pts.iter().map(|p| p.1).collect())],
        1e-6,
    );
}

/// Reference numpy-broadcast binary op.
fn bcast<T: Copy>(
    a: &[T],
    sa: &[usize],
    b: &[T],
    sb: &[usize],
    f: impl Fn(T, T) -> T,
) -> (Vec<usize>, Vec<T>) {
    let shape = broadcast_shapes(sa, sb).expect("broadcastable");
    let (ta, tb) = (broadcast_strides(sa, &shape), broadcast_strides(sb, &shape));
    let so = strides_of(&shape);
    let n: usize = shape.iter().product();
    let out = (0..n)
        .map(|i| {
            let (mut ia, mut ib) = (0, 0);
            for d in 0..shape.len() {
                let k = i / so[d] % shape[d];
                ia += k * ta[d];
                ib += k * tb[d];
            }
            f(a[ia], b[ib])
        })
        .collect();
    (shape, out)
}

fn binary_graph(op: BinaryOp, a: &Tensor, b: &Tensor, b_const: bool) -> Graph {
    let mut g = Graph::new("bin");
    let x = g.add_input("a", a.ty());
    let y = if b_const {
        g.add_const("b", b.clone())
    } else {
        g.add_input("b", b.ty())
    };
    let z = g
        .add_node(Op::Binary(op), "op", vec![ValueId::of(x), ValueId::of(y)])
        .expect("valid");
    g.add_output("z", ValueId::of(z));
    g
}

fn check_f32_binary(op: BinaryOp, sa: &[usize], sb: &[usize], f: fn(f32, f32) -> f32, tol: f32) {
    let a = rand_tensor(sa, 21);
    let b = rand_tensor(sb, 22);
    let (shape, want) = bcast(
        a.as_f32().expect("f32"),
        sa,
        b.as_f32().expect("f32"),
        sb,
        f,
    );
    let want = f32_tensor(&shape, want);
    check(
        &binary_graph(op, &a, &b, false),
        &[a.clone(), b.clone()],
        std::slice::from_ref(&want),
        tol,
    );
    check(&binary_graph(op, &a, &b, true), &[a], &[want], tol);
}

#[test]
fn binary_f32_broadcasting() {
    let shapes: &[(&[usize], &[usize])] = &[
        (&[2, 3, 4], &[2, 3, 4]),
        (&[2, 3, 4], &[3, 1]),
        (&[2, 3, 4], &[4]),
        (&[1, 3, 1], &[2, 1, 5]),
        (&[2, 3], &[]),
        (&[], &[]),
        (&[5, 1, 7], &[1, 6, 1]),
    ];
    for (sa, sb) in shapes {
        check_f32_binary(BinaryOp::Add, sa, sb, |x, y| x + y, 0.0);
        check_f32_binary(BinaryOp::Sub, sa, sb, |x, y| x - y, 0.0);
        check_f32_binary(BinaryOp::Mul, sa, sb, |x, y| x * y, 0.0);
        check_f32_binary(BinaryOp::Div, sa, sb, |x, y| x / y, 0.0);
        check_f32_binary(BinaryOp::Max, sa, sb, f32::max, 0.0);
        check_f32_binary(BinaryOp::Min, sa, sb, f32::min, 0.0);
    }
}

#[test]
fn prelu_with_channel_slope() {
    let sa = [2, 3, 4];
    let sb = [3, 1];
    check_f32_binary(
        BinaryOp::PRelu,
        &sa,
        &sb,
        |x, s| if x < 0.0 { x * s } else { x },
        0.0,
    );
}

#[test]
fn pow_with_constant_exponents() {
    let a = rand_tensor(&[3, 7], 31);
    for e in [2.0f32, 3.0, 0.5, 1.0, 0.0, -1.0, -2.0, 2.5, -0.75] {
        let b = f32_tensor(&[1], vec![e]);
        let g = binary_graph(BinaryOp::Pow, &a, &b, true);
        let want: Vec<f32> = a
            .as_f32()
            .expect("f32")
            .iter()
            .map(|&x| (x as f64).powf(e as f64) as f32)
            .collect();
        check(
            &g,
            std::slice::from_ref(&a),
            &[f32_tensor(&[3, 7], want)],
            4e-6,
        );
    }
}

fn int_tensor(dt: DType, shape: &[usize], v: &[i64]) -> Tensor {
    let data = match dt {
        DType::I64 => TensorData::I64(v.to_vec()),
        DType::I32 => TensorData::I32(v.iter().map(|&x| x as i32).collect()),
        DType::I8 => TensorData::I8(v.iter().map(|&x| x as i8).collect()),
        DType::U8 => TensorData::U8(v.iter().map(|&x| x as u8).collect()),
        _ => unreachable!("integer types only"),
    };
    tensor(shape, data)
}

#[test]
fn binary_integers() {
    let sa = [2, 3];
    let sb = [3];
    let a: Vec<i64> = vec![7, -7, 100, 0, 5, -128];
    let b: Vec<i64> = vec![2, 0, -3];
    type IntOp = (BinaryOp, fn(i64, i64) -> i64);
    let ops: [IntOp; 6] = [
        (BinaryOp::Add, |x, y| x.wrapping_add(y)),
        (BinaryOp::Sub, |x, y| x.wrapping_sub(y)),
        (BinaryOp::Mul, |x, y| x.wrapping_mul(y)),
        (
            BinaryOp::Div,
            |x, y| if y == 0 { 0 } else { x.wrapping_div(y) },
        ),
        (BinaryOp::Max, |x, y| x.max(y)),
        (BinaryOp::Min, |x, y| x.min(y)),
    ];
    for dt in [DType::I64, DType::I32, DType::I8] {
        for (op, f) in ops {
            let ta = int_tensor(dt, &sa, &a);
            let tb = int_tensor(dt, &sb, &b);
            // Wrap the reference into the element type.
            let narrow = |v: i64| match dt {
                DType::I32 => v as i32 as i64,
                DType::I8 => v as i8 as i64,
                _ => v,
            };
            let an: Vec<i64> = a.iter().map(|&v| narrow(v)).collect();
            let bn: Vec<i64> = b.iter().map(|&v| narrow(v)).collect();
            let (shape, want) = bcast(&an, &sa, &bn, &sb, |x, y| narrow(f(x, y)));
            let g = binary_graph(op, &ta, &tb, false);
            check(&g, &[ta, tb], &[int_tensor(dt, &shape, &want)], 0.0);
        }
    }
    // u8: unsigned division and comparisons.
    let ta = int_tensor(DType::U8, &[4], &[200, 7, 255, 0]);
    let tb = int_tensor(DType::U8, &[4], &[3, 0, 1, 9]);
    let g = binary_graph(BinaryOp::Div, &ta, &tb, false);
    check(
        &g,
        &[ta.clone(), tb.clone()],
        &[int_tensor(DType::U8, &[4], &[66, 0, 255, 0])],
        0.0,
    );
    let g = binary_graph(BinaryOp::Max, &ta, &tb, false);
    check(
        &g,
        &[ta, tb],
        &[int_tensor(DType::U8, &[4], &[200, 7, 255, 9])],
        0.0,
    );
}

/// ONNX Max and Min propagate NaN (as ONNX Runtime and numpy do), in
/// either operand position, natively and in the interpreter alike.
#[test]
fn max_and_min_propagate_nan() {
    let nan = f32::NAN;
    let ta = f32_tensor(&[6], vec![nan, 0.0, nan, -1.0, 2.0, f32::INFINITY]);
    let tb = f32_tensor(&[6], vec![0.0, nan, nan, 3.0, -5.0, nan]);
    for (op, rest) in [(BinaryOp::Max, [3.0, 2.0]), (BinaryOp::Min, [-1.0, -5.0])] {
        let want = f32_tensor(&[6], vec![nan, nan, nan, rest[0], rest[1], nan]);
        let g = binary_graph(op, &ta, &tb, false);
        let interp = qcc_interp::run(&g, &[ta.clone(), tb.clone()]).expect("interpreter");
        assert_close(&interp[0], &want, 0.0, &format!("interpreter {op:?}"));
        check(&g, &[ta.clone(), tb.clone()], &[want], 0.0);
    }
}

#[test]
fn integer_min_divided_by_minus_one_does_not_trap() {
    let ta = int_tensor(DType::I64, &[2], &[i64::MIN, 9]);
    let tb = int_tensor(DType::I64, &[2], &[-1, -1]);
    let g = binary_graph(BinaryOp::Div, &ta, &tb, false);
    check(
        &g,
        &[ta, tb],
        &[int_tensor(DType::I64, &[2], &[i64::MIN, -9])],
        0.0,
    );
}

#[test]
fn bool_arithmetic_is_unsupported() {
    let t = tensor(&[2], TensorData::Bool(vec![true, false]));
    let g = binary_graph(BinaryOp::Add, &t, &t, false);
    let err = qcc_codegen::compile(&g, &host("m")).expect_err("bool add has no kernel");
    assert!(err.to_string().contains("node 'op' (add)"), "{err}");
}
