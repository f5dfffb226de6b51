//! Cross-compiled models run under qemu-user (skipped, with a message, when
//! the cross gcc or qemu is not installed): 32-bit ARM exercises the inline
//! integer division and i64 ↔ f32 conversions (src/portable.rs) that replace
//! libgcc calls, and the float kernels must agree with the host.

mod common;
use common::*;
use qcc_ir::{BinaryOp, DType, Graph, Op, Tensor, TensorData, TensorType, UnaryOp, ValueId};

const TARGETS: [&str; 2] = ["armv7-unknown-linux-gnueabihf", "aarch64-unknown-linux-gnu"];

fn ints(dt: DType, v: &[i64]) -> Tensor {
    let data = match dt {
        DType::I64 => TensorData::I64(v.to_vec()),
        DType::I32 => TensorData::I32(v.iter().map(|&x| x as i32).collect()),
        DType::I8 => TensorData::I8(v.iter().map(|&x| x as i8).collect()),
        DType::U8 => TensorData::U8(v.iter().map(|&x| x as u8).collect()),
        _ => unreachable!("integer types only"),
    };
    tensor(&[v.len()], data)
}

/// Rust reference: truncating division in the type's width, 0 for /0, wrapping.
fn div_ref(dt: DType, a: &[i64], b: &[i64]) -> Vec<i64> {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| match dt {
            DType::I64 => x
                .checked_div(y)
                .unwrap_or(if y == 0 { 0 } else { x.wrapping_neg() }),
            DType::I32 => {
                let (x, y) = (x as i32, y as i32);
                (if y == 0 { 0 } else { x.wrapping_div(y) }) as i64
            }
            DType::I8 => {
                let (x, y) = (x as i8, y as i8);
                (if y == 0 { 0 } else { x.wrapping_div(y) }) as i64
            }
            DType::U8 => {
                let (x, y) = (x as u8, y as u8);
                x.checked_div(y).unwrap_or(0) as i64
            }
            _ => unreachable!("integer types only"),
        })
        .collect()
}

#[test]
fn integer_division_on_cross_targets() {
    let a = [
        7,
        -7,
        100,
        0,
        i64::MIN,
        i64::MAX,
        -128,
        255,
        1 << 40,
        -(1 << 35) - 3,
        9,
        -1,
    ];
    let b = [2, 2, -3, 5, -1, 7, -1, 16, 3, 1000, 0, i64::MIN];
    for tc in TARGETS.into_iter().filter_map(cross) {
        for dt in [DType::I64, DType::I32, DType::I8, DType::U8] {
            let (ta, tb) = (ints(dt, &a), ints(dt, &b));
            let mut g = Graph::new("div");
            let x = g.add_input("a", ta.ty());
            let y = g.add_input("b", tb.ty());
            let q = g
                .add_node(
                    Op::Binary(BinaryOp::Div),
                    "q",
                    vec![ValueId::of(x), ValueId::of(y)],
                )
                .expect("valid");
            g.add_output("q", ValueId::of(q));
            let got = run_with(&tc, &g, &[ta.to_le_bytes(), tb.to_le_bytes()]);
            let an: Vec<i64> = ta.to_i64_vec().expect("ints");
            let bn: Vec<i64> = tb.to_i64_vec().expect("ints");
            let want = ints(dt, &div_ref(dt, &an, &bn));
            assert_close(&got[0], &want, 0.0, &format!("{:?} {dt}", tc.triple));
        }
    }
}

#[test]
fn i64_float_conversions_on_cross_targets() {
    let floats = vec![
        0.0f32,
        -0.0,
        0.99,
        -0.99,
        1.5,
        -2.5,
        16_777_216.0,
        1e10,
        -1e10,
        9.2e18,
        -9.2e18,
        1e19,
        -1e19,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        1e-40,
        123_456_789.0,
    ];
    let longs = vec![
        0i64,
        1,
        -1,
        16_777_217,
        16_777_219,
        -16_777_217,
        (1 << 40) + (1 << 16),
        (1 << 40) + (1 << 16) + 1,
        i64::MAX,
        i64::MIN,
        i64::MIN + 1,
        123_456_789_123,
        -987_654_321_987,
        (1 << 24) - 1,
    ];
    let ft = f32_tensor(&[floats.len()], floats.clone());
    let lt = i64_tensor(&[longs.len()], longs.clone());
    let mut g = Graph::new("conv");
    let x = g.add_input("f", ft.ty());
    let y = g.add_input("l", lt.ty());
    let to_i = g
        .add_node(Op::Cast { to: DType::I64 }, "to_i", vec![ValueId::of(x)])
        .expect("valid");
    let to_f = g
        .add_node(Op::Cast { to: DType::F32 }, "to_f", vec![ValueId::of(y)])
        .expect("valid");
    g.add_output("i", ValueId::of(to_i));
    g.add_output("f", ValueId::of(to_f));
    let want_i = i64_tensor(&[floats.len()], floats.iter().map(|&v| v as i64).collect());
    let want_f = f32_tensor(&[longs.len()], longs.iter().map(|&v| v as f32).collect());
    let inputs = [ft.to_le_bytes(), lt.to_le_bytes()];
    let mut chains = vec![HOST];
    chains.extend(TARGETS.into_iter().filter_map(cross));
    for tc in chains {
        let got = run_with(&tc, &g, &inputs);
        assert_close(&got[0], &want_i, 0.0, &format!("{:?} f32->i64", tc.triple));
        assert_close(&got[1], &want_f, 0.0, &format!("{:?} i64->f32", tc.triple));
    }
}

#[test]
fn float_kernels_agree_with_host_on_cross_targets() {
    let shape = vec![3, 40];
    let mut g = Graph::new("f");
    let x = g.add_input("x", TensorType::f32(shape.clone()));
    let mut outs = vec![];
    for (k, op) in [
        UnaryOp::Exp,
        UnaryOp::Tanh,
        UnaryOp::Erf,
        UnaryOp::Sigmoid,
        UnaryOp::HardSwish,
    ]
    .into_iter()
    .enumerate()
    {
        let y = g
            .add_node(Op::Unary(op), format!("u{k}"), vec![ValueId::of(x)])
            .expect("valid");
        outs.push(y);
    }
    let c = g.add_const("c", rand_tensor(&[40], 4));
    let mx = g
        .add_node(
            Op::Binary(BinaryOp::Max),
            "mx",
            vec![ValueId::of(x), ValueId::of(c)],
        )
        .expect("valid");
    let p = g
        .add_node(
            Op::Binary(BinaryOp::Pow),
            "p",
            vec![ValueId::of(mx), ValueId::of(c)],
        )
        .expect("valid");
    let ab = g
        .add_node(Op::Unary(UnaryOp::Abs), "ab", vec![ValueId::of(p)])
        .expect("valid");
    let lg = g
        .add_node(Op::Unary(UnaryOp::Log), "lg", vec![ValueId::of(ab)])
        .expect("valid");
    outs.push(lg);
    for (k, o) in outs.iter().enumerate() {
        g.add_output(format!("y{k}"), ValueId::of(*o));
    }
    let input = [rand_tensor(&shape, 5).to_le_bytes()];
    let want = run_with(&HOST, &g, &input);
    for tc in TARGETS.into_iter().filter_map(cross) {
        let got = run_with(&tc, &g, &input);
        for (k, (a, b)) in got.iter().zip(&want).enumerate() {
            assert_close(a, b, 2e-6, &format!("{:?} output {k}", tc.triple));
        }
    }
}
