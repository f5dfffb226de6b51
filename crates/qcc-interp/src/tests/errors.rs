//! `eval_op` rejects bad inputs and attributes with errors instead of panicking.

use super::*;
use qcc_ir::{BinaryOp, ConvAttrs, DType, PoolAttrs, TensorData, TensorType, UnaryOp};

fn err(op: Op, ins: &[&Tensor]) -> String {
    eval_op(&op, ins, &[]).expect_err("should fail")
}

#[test]
fn wrong_arity() {
    let x = iota(&[2]);
    assert!(err(Op::Binary(BinaryOp::Add), &[&x]).contains("takes 2 inputs"));
    assert!(err(Op::Unary(UnaryOp::Relu), &[]).contains("takes 1 inputs"));
    assert!(!err(Op::Concat { axis: 0 }, &[]).is_empty());
    assert!(!err(Op::BatchNorm { epsilon: 0.0 }, &[&x, &x]).is_empty());
    assert!(!err(Op::Input { index: 0 }, &[]).is_empty());
}

#[test]
fn mismatched_shapes_and_dtypes() {
    let a = iota(&[2, 3]);
    let b = iota(&[4]);
    assert!(err(Op::Binary(BinaryOp::Add), &[&a, &b]).contains("do not broadcast"));
    assert!(!err(Op::MatMul, &[&a, &a]).is_empty());
    assert!(!err(Op::Binary(BinaryOp::Add), &[&a, &ti(&[2, 3], vec![0; 6])]).is_empty());
    let bad_w = iota(&[1, 2, 3, 3]);
    let conv = Op::Conv(ConvAttrs {
        strides: vec![1, 1],
        pads: vec![0; 4],
        dilations: vec![1, 1],
        group: 1,
        output_padding: vec![0, 0],
    });
    assert!(!err(conv.clone(), &[&iota(&[1, 1, 3, 3]), &bad_w]).is_empty());
    assert!(!err(conv, &[&iota(&[1, 2, 2, 2]), &bad_w]).is_empty());
    assert!(!err(Op::Gather { axis: 0 }, &[&a, &iota(&[1])]).is_empty());
    assert!(!err(Op::Gather { axis: 2 }, &[&a, &ti(&[1], vec![0])]).is_empty());
    assert!(!err(Op::Transpose { perm: vec![0, 0] }, &[&a]).is_empty());
    assert!(!err(Op::Reshape { shape: vec![4] }, &[&a]).is_empty());
}

#[test]
fn declared_outputs_must_match() {
    let x = iota(&[2]);
    let e = eval_op(&Op::Unary(UnaryOp::Neg), &[&x], &[TensorType::f32([3])]).unwrap_err();
    assert!(e.contains("declared outputs"), "{e}");
    let ok = eval_op(&Op::Unary(UnaryOp::Neg), &[&x], &[TensorType::f32([2])]).unwrap();
    assert_close(&ok[0], &[2], &[-0.0, -1.0], 0.0);
}

#[test]
fn absurd_attributes() {
    let x = iota(&[4]);
    let huge = usize::MAX / 2;
    assert!(!err(
        Op::Reshape {
            shape: vec![huge, huge, 4]
        },
        &[&x]
    )
    .is_empty());
    let sl = Op::Slice {
        starts: vec![1],
        steps: vec![i64::MAX],
        lens: vec![3],
    };
    assert!(!err(sl, &[&x]).is_empty());
    let sl = Op::Slice {
        starts: vec![0],
        steps: vec![0],
        lens: vec![2],
    };
    assert!(!err(sl, &[&x]).is_empty());
    assert!(!err(
        Op::Pad {
            pads: vec![huge, 1],
            value: 0.0
        },
        &[&x]
    )
    .is_empty());
    let pool = Op::MaxPool(PoolAttrs {
        kernel: vec![2],
        strides: vec![0],
        pads: vec![0, 0],
        dilations: vec![1],
        ceil_mode: false,
        count_include_pad: false,
    });
    assert!(!err(pool, &[&iota(&[1, 1, 4])]).is_empty());
    let ct = Op::ConvTranspose(ConvAttrs {
        strides: vec![1],
        pads: vec![0, 0],
        dilations: vec![1],
        group: 1,
        output_padding: vec![0],
    });
    assert!(!err(ct.clone(), &[&iota(&[1, 1, 0]), &iota(&[1, 1, 2])]).is_empty());
    assert!(!err(ct, &[&iota(&[1, 1, 2]), &iota(&[1, 1, 0])]).is_empty());
    let conv0 = Op::Conv(ConvAttrs {
        strides: vec![1],
        pads: vec![0, 0],
        dilations: vec![1],
        group: 0,
        output_padding: vec![0],
    });
    assert!(!err(conv0, &[&iota(&[1, 1, 2]), &iota(&[1, 1, 1])]).is_empty());
}

#[test]
fn unsupported_dtypes() {
    let b = Tensor::new(vec![2], TensorData::Bool(vec![true, false])).unwrap();
    assert!(!err(Op::Binary(BinaryOp::Max), &[&b, &b]).is_empty());
    assert!(!err(Op::Softmax { axis: 0 }, &[&ti(&[2], vec![1, 2])]).is_empty());
    // Cast accepts everything, including to the same type.
    let y = eval(Op::Cast { to: DType::Bool }, &[&b]);
    assert_eq!(y, b);
}

#[test]
fn empty_tensors_do_not_panic() {
    let e = iota(&[0, 3]);
    assert_eq!(eval(Op::Unary(UnaryOp::Exp), &[&e]).shape(), &[0, 3]);
    assert_eq!(eval(Op::Softmax { axis: 1 }, &[&e]).shape(), &[0, 3]);
    assert_eq!(
        eval(Op::Transpose { perm: vec![1, 0] }, &[&e]).shape(),
        &[3, 0]
    );
    assert_eq!(
        eval(Op::Concat { axis: 0 }, &[&e, &iota(&[1, 3])]).shape(),
        &[1, 3]
    );
    let s = eval(
        Op::Reduce {
            op: qcc_ir::ReduceOp::Sum,
            axes: vec![0],
            keepdims: false,
        },
        &[&e],
    );
    assert_close(&s, &[3], &[0.0; 3], 0.0);
    assert_eq!(
        eval(Op::MatMul, &[&iota(&[2, 0]), &iota(&[0, 3])]).shape(),
        &[2, 3]
    );
}
