//! Gemm and MatMul kernels, run natively and compared with a naive f64
//! reference written here (and with the interpreter).
//!
//! Tolerance: the kernels sum K ≤ 70 f32 products in a different order than
//! the f64 reference (each rounding ≤ 2^-24 relative to the running sum of
//! magnitudes ≤ ~70·9); 1e-4 relative to max(1, |want|) covers that with
//! margin while any indexing error is off by O(1).

mod common;
use common::*;
use qcc_ir::{Graph, Op, Tensor, ValueId};

const TOL: f32 = 1e-4;

/// `[m,k] @ [k,n]` in f64 from element accessors.
fn naive(
    m: usize,
    n: usize,
    k: usize,
    a: impl Fn(usize, usize) -> f32,
    b: impl Fn(usize, usize) -> f32,
) -> Vec<f64> {
    let mut o = vec![0f64; m * n];
    for i in 0..m {
        for j in 0..n {
            o[i * n + j] = (0..k).map(|t| a(i, t) as f64 * b(t, j) as f64).sum();
        }
    }
    o
}

/// Graph inputs for every tensor, except those flagged constant.
fn graph(op: Op, ts: &[(&Tensor, bool)]) -> (Graph, Vec<Tensor>) {
    let mut g = Graph::new("mm");
    let mut feed = vec![];
    let mut ids = vec![];
    for (i, (t, konst)) in ts.iter().enumerate() {
        let id = if *konst {
            g.add_const(format!("c{i}"), (*t).clone())
        } else {
            feed.push((*t).clone());
            g.add_input(format!("x{i}"), t.ty())
        };
        ids.push(ValueId::of(id));
    }
    let y = g.add_node(op, "mm", ids).expect("valid node");
    g.add_output("y", ValueId::of(y));
    (g, feed)
}

#[allow(clippy::too_many_arguments)]
fn check_gemm(
    m: usize,
    n: usize,
    k: usize,
    ta: bool,
    tb: bool,
    c_shape: Option<&[usize]>,
    alpha: f32,
    beta: f32,
    const_b: bool,
    seed: u64,
) {
    let a = rand_tensor(&if ta { [k, m] } else { [m, k] }, seed);
    let b = rand_tensor(&if tb { [n, k] } else { [k, n] }, seed + 1);
    let c = c_shape.map(|s| rand_tensor(s, seed + 2));
    let (av, bv) = (a.as_f32().unwrap(), b.as_f32().unwrap());
    let p = naive(
        m,
        n,
        k,
        |i, t| if ta { av[t * m + i] } else { av[i * k + t] },
        |t, j| if tb { bv[j * k + t] } else { bv[t * n + j] },
    );
    let want: Vec<f32> = (0..m * n)
        .map(|e| {
            let (i, j) = (e / n, e % n);
            let cv = c.as_ref().map_or(0.0, |c| {
                let s = c.shape();
                let cv = c.as_f32().unwrap();
                // Right-aligned broadcast of C to [m, n].
                let (ci, cj) = match s.len() {
                    0 => (0, 0),
                    1 => (0, if s[0] == 1 { 0 } else { j }),
                    _ => (if s[0] == 1 { 0 } else { i }, if s[1] == 1 { 0 } else { j }),
                };
                let cols = if s.len() == 2 { s[1] } else { 1 };
                cv[ci * cols + cj] as f64
            });
            (alpha as f64 * p[e] + beta as f64 * cv) as f32
        })
        .collect();
    let op = Op::Gemm {
        alpha,
        beta,
        trans_a: ta,
        trans_b: tb,
    };
    let mut ts = vec![(&a, false), (&b, const_b)];
    if let Some(c) = &c {
        ts.push((c, false));
    }
    let (g, feed) = graph(op, &ts);
    check(&g, &feed, &[f32_tensor(&[m, n], want)], TOL);
    check_interp(&g, &feed, TOL);
}

#[test]
fn gemm_every_transpose_combination() {
    let mut seed = 1;
    for ta in [false, true] {
        for tb in [false, true] {
            for const_b in [false, true] {
                // 7 rows (a block of 4 + 3), 37 columns (2 tiles + 5), K 13.
                check_gemm(7, 37, 13, ta, tb, None, 1.0, 1.0, const_b, seed);
                seed += 3;
            }
        }
    }
}

#[test]
fn gemm_bias_shapes_alpha_beta() {
    check_gemm(5, 19, 11, false, true, Some(&[19]), 1.0, 1.0, true, 40);
    check_gemm(6, 21, 9, true, false, Some(&[6, 1]), 0.5, -2.0, false, 41);
    check_gemm(3, 17, 4, false, false, Some(&[3, 17]), 1.5, 0.25, false, 42);
    check_gemm(4, 5, 7, true, true, Some(&[1]), 1.0, 3.0, false, 43);
    check_gemm(9, 33, 70, false, true, Some(&[1, 33]), -1.0, 1.0, true, 44);
    // beta = 0 ignores C.
    check_gemm(2, 3, 5, false, false, Some(&[2, 3]), 2.0, 0.0, false, 45);
}

#[test]
fn gemm_hand_computed() {
    let a = f32_tensor(&[2, 2], vec![1.0, 2.0, 3.0, 4.0]);
    let b = f32_tensor(&[2, 2], vec![5.0, 6.0, 7.0, 8.0]);
    let c = f32_tensor(&[2], vec![100.0, 200.0]);
    let op = Op::Gemm {
        alpha: 1.0,
        beta: 1.0,
        trans_a: false,
        trans_b: true,
    };
    let (g, feed) = graph(op, &[(&a, false), (&b, true), (&c, false)]);
    // A @ B^T = [[17, 23], [39, 53]]
    let want = f32_tensor(&[2, 2], vec![117.0, 223.0, 139.0, 253.0]);
    check(&g, &feed, &[want], 0.0);
}

/// Naive numpy matmul with broadcasting, for rank ≥ 1 operands.
fn ref_matmul(a: &Tensor, b: &Tensor) -> Tensor {
    let (mut ash, mut bsh) = (a.shape().to_vec(), b.shape().to_vec());
    let (a1, b1) = (ash.len() == 1, bsh.len() == 1);
    if a1 {
        ash.insert(0, 1);
    }
    if b1 {
        bsh.push(1);
    }
    let (m, k, n) = (ash[ash.len() - 2], ash[ash.len() - 1], bsh[bsh.len() - 1]);
    let (ab, bb) = (&ash[..ash.len() - 2], &bsh[..bsh.len() - 2]);
    let r = ab.len().max(bb.len());
    let pad = |s: &[usize]| [vec![1; r - s.len()], s.to_vec()].concat();
    let (pa, pb) = (pad(ab), pad(bb));
    let batch: Vec<usize> = (0..r).map(|d| pa[d].max(pb[d])).collect();
    let nb: usize = batch.iter().product();
    let (av, bv) = (a.as_f32().unwrap(), b.as_f32().unwrap());
    let mut out = vec![];
    for bi in 0..nb {
        // Unravel the batch index and pick each operand's (possibly broadcast) matrix.
        let mut rem = bi;
        let (mut ao, mut bo) = (0, 0);
        let (mut sa, mut sb) = (1, 1);
        for d in (0..r).rev() {
            let i = rem % batch[d];
            rem /= batch[d];
            ao += if pa[d] == 1 { 0 } else { i * sa };
            bo += if pb[d] == 1 { 0 } else { i * sb };
            sa *= pa[d];
            sb *= pb[d];
        }
        let p = naive(
            m,
            n,
            k,
            |i, t| av[ao * m * k + i * k + t],
            |t, j| bv[bo * k * n + t * n + j],
        );
        out.extend(p.iter().map(|&v| v as f32));
    }
    let mut shape = batch;
    if !a1 {
        shape.push(m);
    }
    if !b1 {
        shape.push(n);
    }
    f32_tensor(&shape, out)
}

fn check_matmul(ash: &[usize], bsh: &[usize], const_b: bool, seed: u64) {
    let a = rand_tensor(ash, seed);
    let b = rand_tensor(bsh, seed + 1);
    let want = ref_matmul(&a, &b);
    let (g, feed) = graph(Op::MatMul, &[(&a, false), (&b, const_b)]);
    check(&g, &feed, &[want], TOL);
    check_interp(&g, &feed, TOL);
}

#[test]
fn matmul_batched_with_broadcasting() {
    check_matmul(&[2, 1, 5, 19], &[3, 19, 21], false, 1);
    check_matmul(&[3, 6, 10], &[1, 10, 35], false, 2);
    check_matmul(&[4, 9, 12], &[4, 12, 16], false, 3);
    // Shared 2-D B (constant): batch folded into M.
    check_matmul(&[2, 3, 7, 11], &[11, 40], true, 4);
    // Broadcast A against a batched B.
    check_matmul(&[5, 17], &[2, 17, 18], false, 5);
    // Narrow outputs (dot-product path).
    check_matmul(&[3, 13, 29], &[29, 3], true, 6);
}

#[test]
fn matmul_rank_one_operands() {
    check_matmul(&[19], &[19, 20], false, 10);
    check_matmul(&[2, 7, 19], &[19], false, 11);
    check_matmul(&[23], &[3, 23, 17], true, 12);
    check_matmul(&[31], &[31], false, 13);
}
