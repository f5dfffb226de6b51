//! Gemm and MatMul.

use super::*;
use qcc_ir::BinaryOp;

fn gemm(alpha: f32, beta: f32, trans_a: bool, trans_b: bool) -> Op {
    Op::Gemm {
        alpha,
        beta,
        trans_a,
        trans_b,
    }
}

#[test]
fn gemm_with_broadcast_c() {
    let a = t(&[2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let b = t(&[3, 2], vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
    let c = t(&[2], vec![10.0, 20.0]);
    // a@b = [[4, 5], [10, 11]]
    let y = eval(gemm(2.0, 0.5, false, false), &[&a, &b, &c]);
    assert_close(&y, &[2, 2], &[13.0, 20.0, 25.0, 32.0], 0.0);
    let y = eval(gemm(1.0, 1.0, false, false), &[&a, &b]);
    assert_close(&y, &[2, 2], &[4.0, 5.0, 10.0, 11.0], 0.0);
    let c_col = t(&[2, 1], vec![1.0, -1.0]);
    let y = eval(gemm(1.0, 1.0, false, false), &[&a, &b, &c_col]);
    assert_close(&y, &[2, 2], &[5.0, 6.0, 9.0, 10.0], 0.0);
}

#[test]
fn gemm_transposes_match_explicit_transpose() {
    let a = noise(&[3, 4], 1);
    let b = noise(&[4, 5], 2);
    let c = noise(&[1, 5], 3);
    let want = eval(gemm(0.5, 2.0, false, false), &[&a, &b, &c]);
    let tr = |x: &Tensor| eval(Op::Transpose { perm: vec![1, 0] }, &[x]);
    let (at, bt) = (tr(&a), tr(&b));
    assert_same(
        &eval(gemm(0.5, 2.0, true, false), &[&at, &b, &c]),
        &want,
        1e-6,
    );
    assert_same(
        &eval(gemm(0.5, 2.0, false, true), &[&a, &bt, &c]),
        &want,
        1e-6,
    );
    assert_same(
        &eval(gemm(0.5, 2.0, true, true), &[&at, &bt, &c]),
        &want,
        1e-6,
    );
}

#[test]
fn matmul_rank1_promotion() {
    let a = t(&[2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let v = t(&[3], vec![1.0, 0.0, -1.0]);
    assert_close(&eval(Op::MatMul, &[&a, &v]), &[2], &[-2.0, -2.0], 0.0);
    let u = t(&[2], vec![1.0, 1.0]);
    assert_close(&eval(Op::MatMul, &[&u, &a]), &[3], &[5.0, 7.0, 9.0], 0.0);
    assert_close(&eval(Op::MatMul, &[&v, &v]), &[], &[2.0], 0.0);
}

#[test]
fn matmul_batch_broadcast() {
    // a: [2,1,2,2], b: [3,2,2] → [2,3,2,2]; b[j] = (j+1) * I, a[i] = iota + 4i.
    let a = iota(&[2, 1, 2, 2]);
    let mut bv = vec![];
    for j in 0..3 {
        let s = (j + 1) as f32;
        bv.extend([s, 0.0, 0.0, s]);
    }
    let b = t(&[3, 2, 2], bv);
    let y = eval(Op::MatMul, &[&a, &b]);
    let mut want = vec![];
    for i in 0..2 {
        for j in 0..3 {
            for e in 0..4 {
                want.push((4 * i + e) as f32 * (j + 1) as f32);
            }
        }
    }
    assert_close(&y, &[2, 3, 2, 2], &want, 0.0);
}

#[test]
fn matmul_equals_gemm_then_bias() {
    let a = noise(&[4, 6], 8);
    let b = noise(&[6, 3], 9);
    let c = noise(&[3], 10);
    let mm = eval(Op::MatMul, &[&a, &b]);
    let y = eval(Op::Binary(BinaryOp::Add), &[&mm, &c]);
    assert_same(&eval(gemm(1.0, 1.0, false, false), &[&a, &b, &c]), &y, 1e-6);
}
