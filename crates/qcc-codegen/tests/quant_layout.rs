//! The dtype-generic layout kernels on i8 and u8 (Reshape copy, Transpose,
//! Concat, Slice with negative steps, Pad with the zero point as value,
//! Gather), compared bit for bit with values computed here and with the
//! interpreter.

mod common;
mod quant_common;
use common::*;
use qcc_ir::{DType, Graph, Op, Tensor};
use quant_common::*;

fn one_op(op: Op, x: &Tensor) -> (Graph, Vec<Tensor>) {
    op_graph(op, vec![Arg::In(x.clone())])
}

#[test]
fn reshape_transpose_slice_on_8_bit() {
    for dt in [DType::I8, DType::U8] {
        let x = rand_t8(dt, &[2, 3, 5], 1);
        let xv = vals(&x);
        let (g, inputs) = one_op(Op::Reshape { shape: vec![6, 5] }, &x);
        check_exact(&g, &inputs, &ints(dt, &[6, 5], &xv), "reshape");

        let (g, inputs) = one_op(
            Op::Transpose {
                perm: vec![2, 0, 1],
            },
            &x,
        );
        let mut want = vec![];
        for k in 0..5 {
            for i in 0..2 {
                for j in 0..3 {
                    want.push(xv[i * 15 + j * 5 + k]);
                }
            }
        }
        check_exact(&g, &inputs, &ints(dt, &[5, 2, 3], &want), "transpose");

        let op = Op::Slice {
            starts: vec![1, 2, 4],
            steps: vec![1, -2, -2],
            lens: vec![1, 2, 3],
        };
        let (g, inputs) = one_op(op, &x);
        let mut want = vec![];
        for j in [2, 0] {
            for k in [4, 2, 0] {
                want.push(xv[15 + j * 5 + k]);
            }
        }
        check_exact(&g, &inputs, &ints(dt, &[1, 2, 3], &want), "slice");
    }
}

#[test]
fn concat_on_8_bit() {
    let a = rand_t8(DType::I8, &[2, 3, 4], 2);
    let b = rand_t8(DType::I8, &[2, 1, 4], 3);
    let (g, inputs) = op_graph(
        Op::Concat { axis: 1 },
        vec![Arg::In(a.clone()), Arg::In(b.clone())],
    );
    let (av, bv) = (vals(&a), vals(&b));
    let mut want = vec![];
    for n in 0..2 {
        want.extend_from_slice(&av[n * 12..(n + 1) * 12]);
        want.extend_from_slice(&bv[n * 4..(n + 1) * 4]);
    }
    check_exact(&g, &inputs, &ints(DType::I8, &[2, 4, 4], &want), "concat");
}

/// Pad's f32 value converts to the element type like a C cast (the zero
/// point of a quantized tensor is an integer, so it converts exactly).
#[test]
fn pad_with_the_zero_point() {
    for (dt, value) in [
        (DType::I8, -3.0f32),
        (DType::U8, 200.0),
        (DType::I8, 0.0),
        (DType::U8, 128.0),
    ] {
        let x = rand_t8(dt, &[1, 2, 3], 4);
        let xv = vals(&x);
        let op = Op::Pad {
            pads: vec![0, 1, 2, 0, 0, 1],
            value,
        };
        let (g, inputs) = one_op(op, &x);
        let mut want = vec![];
        for i in 0..3 {
            for j in 0..6 {
                let inside = (1..3).contains(&i) && (2..5).contains(&j);
                want.push(if inside {
                    xv[(i - 1) * 3 + (j - 2)]
                } else {
                    value as i64
                });
            }
        }
        check_exact(
            &g,
            &inputs,
            &ints(dt, &[1, 3, 6], &want),
            &format!("pad {dt} {value}"),
        );
    }
}

#[test]
fn gather_on_8_bit() {
    for dt in [DType::I8, DType::U8] {
        let x = rand_t8(dt, &[4, 3], 5);
        let xv = vals(&x);
        let idx = i64_tensor(&[3], vec![3, -4, 1]);
        // Constant indices (unrolled) and run-time indices (a loop).
        for konst in [true, false] {
            let iarg = if konst {
                Arg::Const(idx.clone())
            } else {
                Arg::In(idx.clone())
            };
            let (g, inputs) = op_graph(Op::Gather { axis: 0 }, vec![Arg::In(x.clone()), iarg]);
            let mut want = vec![];
            for r in [3, 0, 1] {
                want.extend_from_slice(&xv[r * 3..r * 3 + 3]);
            }
            check_exact(&g, &inputs, &ints(dt, &[3, 3], &want), "gather");
        }
    }
}
