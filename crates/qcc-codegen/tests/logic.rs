//! Comparisons, logic and Where (and integer Neg/Abs), run natively and compared bit for bit with
//! references computed here (and with the interpreter): float comparisons
//! with NaN, ±0 and infinities, unsigned u8 and signed i8/i64 orders, bool
//! operands, and broadcasting of two and three operands.

mod common;
mod quant_common;
use common::rand_f32;
use qcc_ir::{broadcast_shapes, CompareOp, DType, LogicOp, Op, Tensor, TensorData};
use quant_common::*;

fn t(shape: &[usize], data: TensorData) -> Tensor {
    Tensor::new(shape.to_vec(), data).expect("consistent tensor")
}

fn bools(shape: &[usize], v: Vec<bool>) -> Tensor {
    t(shape, TensorData::Bool(v))
}

/// Row-major index of `out` position `i` in an operand of shape `s`
/// broadcast to `out`.
fn src_index(i: usize, s: &[usize], out: &[usize]) -> usize {
    let mut rem = i;
    let mut coords = vec![0; out.len()];
    for d in (0..out.len()).rev() {
        coords[d] = rem % out[d];
        rem /= out[d];
    }
    let lead = out.len() - s.len();
    let mut idx = 0;
    for (d, &n) in s.iter().enumerate() {
        let c = if n == 1 { 0 } else { coords[lead + d] };
        idx = idx * n + c;
    }
    idx
}

fn cmp_ref<T: PartialOrd + Copy>(
    op: CompareOp,
    a: &[T],
    sa: &[usize],
    b: &[T],
    sb: &[usize],
) -> Tensor {
    let out = broadcast_shapes(sa, sb).expect("broadcast");
    let n = out.iter().product();
    let v = (0..n)
        .map(|i| {
            let (x, y) = (a[src_index(i, sa, &out)], b[src_index(i, sb, &out)]);
            match op {
                CompareOp::Equal => x == y,
                CompareOp::Greater => x > y,
                CompareOp::GreaterOrEqual => x >= y,
                CompareOp::Less => x < y,
                CompareOp::LessOrEqual => x <= y,
            }
        })
        .collect();
    bools(&out, v)
}

const CMPS: [CompareOp; 5] = [
    CompareOp::Equal,
    CompareOp::Greater,
    CompareOp::GreaterOrEqual,
    CompareOp::Less,
    CompareOp::LessOrEqual,
];

#[test]
fn float_comparisons_are_false_with_nan() {
    let specials = [
        f32::NAN,
        0.0,
        -0.0,
        1.5,
        -2.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
    ];
    let (sa, sb) = ([7, 7], [7, 7]);
    let a: Vec<f32> = (0..49).map(|i| specials[i / 7]).collect();
    let b: Vec<f32> = (0..49).map(|i| specials[i % 7]).collect();
    // And broadcast: [2, 3, 4] against [3, 1].
    let c = rand_f32(24, 3, -2.0, 2.0);
    let d = vec![0.5, f32::NAN, -1.0];
    for op in CMPS {
        for (x, s, y, r) in [
            (&a, &sa[..], &b, &sb[..]),
            (&c, &[2, 3, 4][..], &d, &[3, 1][..]),
        ] {
            let (g, inputs) = op_graph(
                Op::Compare(op),
                vec![
                    Arg::In(t(s, TensorData::F32(x.clone()))),
                    Arg::In(t(r, TensorData::F32(y.clone()))),
                ],
            );
            check_exact(
                &g,
                &inputs,
                &cmp_ref(op, x, s, y, r),
                &format!("{op:?} f32"),
            );
        }
    }
}

#[test]
fn integer_comparisons_use_the_type_order() {
    let u: Vec<i64> = vec![0, 1, 127, 128, 200, 255];
    let s: Vec<i64> = vec![-128, -1, 0, 1, 100, 127];
    for op in CMPS {
        for (dt, v) in [
            (DType::U8, &u),
            (DType::I8, &s),
            (DType::I64, &s),
            (DType::I32, &s),
        ] {
            let a: Vec<i64> = (0..36).map(|i| v[i / 6]).collect();
            let b: Vec<i64> = (0..36).map(|i| v[i % 6]).collect();
            let (g, inputs) = op_graph(
                Op::Compare(op),
                vec![Arg::In(ints(dt, &[36], &a)), Arg::In(ints(dt, &[36], &b))],
            );
            let want = match dt {
                DType::U8 => {
                    let (p, q): (Vec<u8>, Vec<u8>) = (
                        a.iter().map(|&x| x as u8).collect(),
                        b.iter().map(|&x| x as u8).collect(),
                    );
                    cmp_ref(op, &p, &[36], &q, &[36])
                }
                _ => cmp_ref(op, &a, &[36], &b, &[36]),
            };
            check_exact(&g, &inputs, &want, &format!("{op:?} {dt}"));
        }
        let p = vec![false, false, true, true];
        let q = vec![false, true, false, true];
        let (g, inputs) = op_graph(
            Op::Compare(op),
            vec![
                Arg::In(bools(&[4], p.clone())),
                Arg::In(bools(&[4], q.clone())),
            ],
        );
        check_exact(
            &g,
            &inputs,
            &cmp_ref(op, &p, &[4], &q, &[4]),
            &format!("{op:?} bool"),
        );
    }
}

#[test]
fn logic_and_not_broadcast() {
    let a: Vec<bool> = (0..24).map(|i| i % 3 == 0 || i % 5 == 1).collect();
    let b = vec![true, false, true];
    let out = [2, 3, 4];
    for op in [LogicOp::And, LogicOp::Or, LogicOp::Xor] {
        let (g, inputs) = op_graph(
            Op::Logic(op),
            vec![
                Arg::In(bools(&out, a.clone())),
                Arg::In(bools(&[3, 1], b.clone())),
            ],
        );
        let want = (0..24)
            .map(|i| {
                let (x, y) = (a[i], b[src_index(i, &[3, 1], &out)]);
                match op {
                    LogicOp::And => x && y,
                    LogicOp::Or => x || y,
                    LogicOp::Xor => x != y,
                }
            })
            .collect();
        check_exact(&g, &inputs, &bools(&out, want), &format!("{op:?}"));
    }
    let (g, inputs) = op_graph(Op::Not, vec![Arg::In(bools(&out, a.clone()))]);
    let want = a.iter().map(|x| !x).collect();
    check_exact(&g, &inputs, &bools(&out, want), "Not");
}

#[test]
fn where_selects_across_three_broadcast_operands() {
    let (sc, sx, sy) = ([2, 1, 4], [3, 1], [4]);
    let out = [2, 3, 4];
    let c: Vec<bool> = (0..8).map(|i| i % 3 != 1).collect();
    let xf = vec![1.5, f32::NAN, -0.0];
    let yf = vec![10.0, 20.0, 30.0, 40.0];
    let xi = vec![i64::MIN, -1, 7];
    let yi = vec![0, i64::MAX, 2, 3];
    let pick = |i: usize| c[src_index(i, &sc, &out)];
    let (g, inputs) = op_graph(
        Op::Where,
        vec![
            Arg::In(bools(&sc, c.clone())),
            Arg::In(t(&sx, TensorData::F32(xf.clone()))),
            Arg::In(t(&sy, TensorData::F32(yf.clone()))),
        ],
    );
    let want: Vec<f32> = (0..24)
        .map(|i| {
            if pick(i) {
                xf[src_index(i, &sx, &out)]
            } else {
                yf[src_index(i, &sy, &out)]
            }
        })
        .collect();
    check_exact(&g, &inputs, &t(&out, TensorData::F32(want)), "Where f32");
    let (g, inputs) = op_graph(
        Op::Where,
        vec![
            Arg::In(bools(&sc, c.clone())),
            Arg::In(ints(DType::I64, &sx, &xi)),
            Arg::In(ints(DType::I64, &sy, &yi)),
        ],
    );
    let want: Vec<i64> = (0..24)
        .map(|i| {
            if pick(i) {
                xi[src_index(i, &sx, &out)]
            } else {
                yi[src_index(i, &sy, &out)]
            }
        })
        .collect();
    check_exact(&g, &inputs, &ints(DType::I64, &out, &want), "Where i64");
}

/// Neg and Abs on signed integers wrap like the interpreter (`-MIN = MIN`),
/// as the integer shape arithmetic of exported graphs needs.
#[test]
fn integer_neg_abs_and_sign() {
    use qcc_ir::UnaryOp;
    for (dt, v) in [
        (DType::I64, vec![i64::MIN, -7, -1, 0, 1, 9, i64::MAX]),
        (DType::I32, vec![i32::MIN as i64, -7, 0, 5, i32::MAX as i64]),
        (DType::I8, vec![-128, -1, 0, 3, 127]),
    ] {
        for op in [UnaryOp::Neg, UnaryOp::Abs, UnaryOp::Sign] {
            let n = v.len();
            let (g, inputs) = op_graph(Op::Unary(op), vec![Arg::In(ints(dt, &[n], &v))]);
            let want: Vec<i64> = v
                .iter()
                .map(|&x| {
                    let r = match op {
                        UnaryOp::Neg => x.wrapping_neg(),
                        UnaryOp::Sign => x.signum(),
                        _ => x.wrapping_abs(),
                    };
                    // Wrap to the type's width.
                    match dt {
                        DType::I32 => r as i32 as i64,
                        DType::I8 => r as i8 as i64,
                        _ => r,
                    }
                })
                .collect();
            check_exact(&g, &inputs, &ints(dt, &[n], &want), &format!("{op:?} {dt}"));
        }
    }
}
