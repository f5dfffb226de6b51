//! The dtype-generic ops quantized graphs use (MaxPool, Reshape, Transpose,
//! Concat, Slice, Pad, Gather) on i8 and u8, and a small quantized graph run
//! end to end.

use super::quant::epi;
use super::*;
use crate::run;
use qcc_ir::{ConvAttrs, DType, Graph, PoolAttrs, QParams, TensorType, ValueId};

fn maxpool(kernel: usize, stride: usize, pads: [usize; 4]) -> Op {
    Op::MaxPool(PoolAttrs {
        kernel: vec![kernel; 2],
        strides: vec![stride; 2],
        pads: pads.to_vec(),
        dilations: vec![1, 1],
        ceil_mode: false,
        count_include_pad: false,
    })
}

#[test]
fn maxpool_i8_padding_never_wins() {
    // All negative: a padded cell treated as 0 would win every window.
    let x = ti8(&[1, 1, 2, 2], vec![-100, -50, -128, -7]);
    let y = eval(maxpool(2, 1, [1, 1, 1, 1]), &[&x]);
    assert_eq!(y.dtype(), DType::I8);
    assert_eq!(y.shape(), &[1, 1, 3, 3]);
    assert_eq!(ints(&y), [-100, -50, -50, -100, -7, -7, -128, -7, -7]);
}

#[test]
fn maxpool_u8_matches_float() {
    let v: Vec<u8> = (0..32).map(|i| ((i * 37) % 256) as u8).collect();
    let x = tu8(&[2, 1, 4, 4], v.clone());
    let op = maxpool(3, 2, [1, 1, 0, 0]);
    let y = eval(op.clone(), &[&x]);
    assert_eq!(y.dtype(), DType::U8);
    let f = eval(
        op,
        &[&t(&[2, 1, 4, 4], v.iter().map(|&a| a as f32).collect())],
    );
    assert_eq!(y.shape(), f.shape());
    let want: Vec<i64> = f.as_f32().unwrap().iter().map(|&a| a as i64).collect();
    assert_eq!(ints(&y), want);
}

#[test]
fn data_movement_on_i8() {
    let x = ti8(&[2, 3], vec![-128, -1, 0, 1, 2, 127]);
    let r = eval(Op::Reshape { shape: vec![3, 2] }, &[&x]);
    assert_eq!((r.dtype(), r.shape()), (DType::I8, &[3usize, 2][..]));
    assert_eq!(ints(&r), [-128, -1, 0, 1, 2, 127]);

    let tr = eval(Op::Transpose { perm: vec![1, 0] }, &[&x]);
    assert_eq!(tr.shape(), &[3, 2]);
    assert_eq!(ints(&tr), [-128, 1, -1, 2, 0, 127]);

    let c = eval(Op::Concat { axis: 1 }, &[&x, &ti8(&[2, 1], vec![5, 6])]);
    assert_eq!(c.shape(), &[2, 4]);
    assert_eq!(ints(&c), [-128, -1, 0, 5, 1, 2, 127, 6]);

    let s = eval(
        Op::Slice {
            starts: vec![1, 2],
            steps: vec![-1, -2],
            lens: vec![2, 2],
        },
        &[&x],
    );
    assert_eq!(ints(&s), [127, 1, 0, -128]);

    // The pad value is a zero point; converted to the dtype exactly.
    let p = eval(
        Op::Pad {
            pads: vec![0, 1, 0, 1],
            value: -3.0,
        },
        &[&x],
    );
    assert_eq!(p.dtype(), DType::I8);
    assert_eq!(p.shape(), &[2, 5]);
    assert_eq!(ints(&p), [-3, -128, -1, 0, -3, -3, 1, 2, 127, -3]);
    let pu = eval(
        Op::Pad {
            pads: vec![1, 0],
            value: 128.0,
        },
        &[&tu8(&[1], vec![7])],
    );
    assert_eq!(ints(&pu), [128, 7]);

    let g = eval(Op::Gather { axis: 1 }, &[&x, &ti(&[2], vec![2, -3])]);
    assert_eq!(g.dtype(), DType::I8);
    assert_eq!(g.shape(), &[2, 2]);
    assert_eq!(ints(&g), [0, -128, 127, 1]);
}

/// f32 input → Quantize → QConv (1x1, two channels) → MaxPool → Dequantize.
#[test]
fn quantized_graph_runs() {
    let mut g = Graph::new("q");
    let x = g.add_input("x", TensorType::f32([1, 1, 2, 2]));
    let xq = QParams {
        scale: 0.5,
        zero_point: -1,
    };
    let q = g
        .add_node(
            Op::Quantize {
                q: xq,
                to: DType::I8,
            },
            "q",
            vec![ValueId::of(x)],
        )
        .unwrap();
    let w = g.add_const("w", ti8(&[2, 1, 1, 1], vec![2, -1]));
    let b = g.add_const("b", ti32(&[2], vec![1, 0]));
    let conv = Op::QConv {
        conv: ConvAttrs {
            strides: vec![1, 1],
            pads: vec![0; 4],
            dilations: vec![1, 1],
            group: 1,
            output_padding: vec![0, 0],
        },
        x_zero_point: -1,
        epi: epi(1, 0, 0, -128, 127),
        to: DType::I8,
    };
    let c = g
        .add_node(
            conv,
            "conv",
            vec![ValueId::of(q), ValueId::of(w), ValueId::of(b)],
        )
        .unwrap();
    let mp = g
        .add_node(maxpool(2, 1, [0; 4]), "pool", vec![ValueId::of(c)])
        .unwrap();
    let dq = g
        .add_node(
            Op::Dequantize {
                q: QParams {
                    scale: 0.25,
                    zero_point: 0,
                },
            },
            "dq",
            vec![ValueId::of(mp)],
        )
        .unwrap();
    g.add_output("y", ValueId::of(dq));
    qcc_ir::verify(&g).unwrap();
    // x / 0.5 = 2, -4, 1, 0 → q = 1, -5, 0, -1 → centered 2, -4, 1, 0.
    // Channel 0: 1 + 2 * c = 5, -7, 3, 1 → max 5; channel 1: -c → max 4.
    let out = run(&g, &[t(&[1, 1, 2, 2], vec![1.0, -2.0, 0.5, 0.0])]).unwrap();
    assert_close(&out[0], &[1, 2, 1, 1], &[1.25, 1.0], 0.0);
}
