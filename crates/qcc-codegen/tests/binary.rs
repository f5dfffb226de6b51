//! The binary-layer kernel (`SignMatMul`: Sign(u) · w with w ∈ {-1, +1},
//! weights as bits, popcount), run natively on random shapes (K across and
//! off the 64-bit word boundary, batched rows), inputs holding zeros of both
//! signs and a NaN row, against a direct sum computed here and the
//! interpreter: exact; and QONNX's bipolar form (zeros +1, NaN -1).

mod common;
use common::*;
use qcc_ir::{Op, Tensor, ValueId};

fn sign_matmul_case(ushape: &[usize], n: usize, seed: u64, bipolar: bool) {
    let k = *ushape.last().unwrap();
    let rows: usize = ushape.iter().product::<usize>() / k;
    let mut u = rand_f32(rows * k, seed, -1.0, 1.0);
    // Zeros of both signs (Sign gives 0: neither mask), and a NaN row.
    for (i, v) in u.iter_mut().enumerate() {
        match i % 7 {
            3 => *v = 0.0,
            5 => *v = -0.0,
            _ => {}
        }
    }
    if rows > 1 {
        u[k + k / 2] = f32::NAN;
    }
    let w: Vec<f32> = rand_f32(k * n, seed + 1, -1.0, 1.0)
        .iter()
        .map(|&v| if v < 0.0 { -1.0 } else { 1.0 })
        .collect();
    let (mut g, x) = graph_with_input(ushape);
    let wc = g.add_const("w", f32_tensor(&[k, n], w.clone()));
    let y = g
        .add_node(
            Op::SignMatMul { bipolar },
            "b",
            vec![ValueId::of(x), ValueId::of(wc)],
        )
        .expect("valid");
    g.add_output("y", ValueId::of(y));
    let mut want = vec![0f32; rows * n];
    for r in 0..rows {
        let row = &u[r * k..(r + 1) * k];
        for j in 0..n {
            let s: i64 = row
                .iter()
                .enumerate()
                .map(|(kk, &v)| {
                    // Bipolar: zeros count +1, NaN -1.
                    let sg = if bipolar {
                        if v >= 0.0 {
                            1
                        } else {
                            -1
                        }
                    } else if v > 0.0 {
                        1
                    } else if v < 0.0 {
                        -1
                    } else {
                        0
                    };
                    sg * w[kk * n + j] as i64
                })
                .sum();
            want[r * n + j] = if !bipolar && row.iter().any(|v| v.is_nan()) {
                f32::NAN
            } else {
                s as f32
            };
        }
    }
    let mut oshape = ushape[..ushape.len() - 1].to_vec();
    oshape.push(n);
    let input: Tensor = f32_tensor(ushape, u);
    let want = f32_tensor(&oshape, want);
    let interp = qcc_interp::run(&g, std::slice::from_ref(&input)).expect("interpreter");
    assert_close(
        &interp[0],
        &want,
        0.0,
        &format!("interpreter {ushape:?} x {n}"),
    );
    check(&g, &[input], &[want], 0.0);
}

#[test]
fn sign_matmul_counts_exactly() {
    for (i, (shape, n)) in [
        (&[1usize, 1][..], 1usize),
        (&[3, 64], 5),
        (&[2, 130], 7),
        (&[4, 200], 33),
        (&[2, 3, 65], 4),
        (&[129], 3),
    ]
    .into_iter()
    .enumerate()
    {
        sign_matmul_case(shape, n, 11 + i as u64, false);
        sign_matmul_case(shape, n, 31 + i as u64, true);
    }
}
