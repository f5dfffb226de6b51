//! QGemm run natively and compared bit for bit with a naive reference built
//! on `qcc_ir::quant` (and with the interpreter): odd sizes (column tails),
//! i8 and u8 A, per-tensor and per-channel epilogues, rounding ties in every
//! rescale path, fused-Relu clamps, worst-case inputs at the exact i32
//! limit, and the rejection one step beyond it.

mod common;
mod quant_common;
use common::*;
use qcc_codegen::{compile, CodegenError};
use qcc_ir::{DType, Epilogue, Op, Rescale, Tensor};
use quant_common::*;

fn gemm_graph(op: &Op, a: &Tensor, b: &Tensor, bias: &Tensor) -> (qcc_ir::Graph, Vec<Tensor>) {
    op_graph(
        op.clone(),
        vec![
            Arg::In(a.clone()),
            Arg::Const(b.clone()),
            Arg::Const(bias.clone()),
        ],
    )
}

fn run(op: Op, a: &Tensor, b: &Tensor, bias: &Tensor, what: &str) -> Tensor {
    let want = ref_qgemm(&op, a, b, bias);
    let (g, inputs) = gemm_graph(&op, a, b, bias);
    let want = expect(&g, &want);
    check_exact(&g, &inputs, &want, what)
}

#[test]
fn qgemm_random_sizes_and_epilogues() {
    for (i, &(m, k, n)) in [(5, 37, 11), (1, 3, 1), (7, 64, 4), (3, 129, 9)]
        .iter()
        .enumerate()
    {
        for (adt, za, to) in [
            (DType::I8, -7, DType::I8),
            (DType::U8, 128, DType::U8),
            (DType::U8, 3, DType::I8),
        ] {
            let a = rand_t8(adt, &[m, k], i as u64 * 7 + 1);
            let b = ints(
                DType::I8,
                &[k, n],
                &rand_ints(k * n, i as u64 + 50, -127, 127),
            );
            let bias = ints(
                DType::I32,
                &[n],
                &rand_ints(n, i as u64 + 90, -20000, 20000),
            );
            let span = (k as f64).sqrt() * 73.0 * 73.0;
            let (lo, hi) = range(to);
            for r in [
                Rescale::fixed_point(120.0 / span).unwrap(),
                per_channel_fixed(n, 120.0 / span),
                per_channel_pow2(n, (span / 120.0).log2().round() as u32),
                Rescale::pow2(120.0 / span).unwrap(),
            ] {
                let op = Op::QGemm {
                    a_zero_point: za,
                    epi: epi(r, (lo + hi) / 2, to),
                    to,
                };
                run(op, &a, &b, &bias, &format!("qgemm {m}x{k}x{n} {adt}->{to}"));
            }
        }
    }
}

/// Multipliers and shifts where `acc * m` often ends exactly on a half:
/// ties must round toward +inf in the static, the per-channel and the
/// pow2 paths.
#[test]
fn rescale_ties_round_up_in_every_path() {
    let (m, k, n) = (6, 5, 7);
    let a = rand_t8(DType::I8, &[m, k], 3);
    let b = ints(DType::I8, &[k, n], &rand_ints(k * n, 4, -3, 3));
    let bias = ints(DType::I32, &[n], &rand_ints(n, 5, -9, 9));
    let per_channel = Rescale {
        multiplier: vec![3 << 29, 3, 1, 1, 5, 1, 3 << 28],
        shift: vec![31, 2, 1, 4, 3, 0, 33],
        float: None,
    };
    let pow2 = Rescale {
        multiplier: vec![1; n],
        shift: vec![1, 2, 3, 1, 2, 35, 0],
        float: None,
    };
    for r in [
        per_channel,
        pow2,
        Rescale::uniform(3 << 29, 31),
        Rescale::uniform(3, 2),
        Rescale::uniform(1, 2),
        Rescale::uniform(1, 33),
    ] {
        let op = Op::QGemm {
            a_zero_point: 0,
            epi: epi(r.clone(), 0, DType::I8),
            to: DType::I8,
        };
        // The test data must contain ties (else it could not fail).
        let ties = (0..m * n).any(|i| {
            let j = i % n;
            let acc: i64 = vals(&bias)[j]
                + (0..k)
                    .map(|kk| vals(&a)[i / n * k + kk] * vals(&b)[kk * n + j])
                    .sum::<i64>();
            let c = if r.channels() == 1 { 0 } else { j };
            let s = r.shift[c];
            s > 0 && (acc * r.multiplier[c] as i64).rem_euclid(1 << s) == 1 << (s - 1)
        });
        assert!(ties || r.shift.iter().all(|&s| s > 31), "no ties for {r:?}");
        run(op, &a, &b, &bias, &format!("ties {r:?}"));
    }
}

/// The float form (ONNX Runtime's requantization): factors where
/// `f32(acc) · s` often lands exactly on a half must round half to even in
/// the static, the per-channel and the vector paths; a factor like 0.1
/// checks the f32 product's own rounding. The expected values are computed
/// here from the formula, not from `Epilogue::apply`.
#[test]
fn float_rescale_rounds_half_to_even_in_every_path() {
    let (m, k, n) = (6, 5, 7);
    let a = rand_t8(DType::I8, &[m, k], 3);
    let b = ints(DType::I8, &[k, n], &rand_ints(k * n, 4, -3, 3));
    let bias = ints(DType::I32, &[n], &rand_ints(n, 5, -9, 9));
    for (scales, zp, (lo, hi)) in [
        (vec![0.5, 0.25, 1.5, 0.125, 0.75, 2.5, 0.1], 3, (-128, 127)),
        (vec![0.5], -2, (-2, 127)),
        (vec![0.1f32], 0, (-128, 127)),
        (vec![3.5; 7], 1, (-20, 40)),
    ] {
        let r = Rescale::float(&scales).expect("valid factors");
        let e = Epilogue {
            rescale: r.clone(),
            zero_point: zp,
            min: lo,
            max: hi,
        };
        let op = Op::QGemm {
            a_zero_point: 0,
            epi: e,
            to: DType::I8,
        };
        let mut ties = 0;
        let mut want = vec![];
        for i in 0..m * n {
            let j = i % n;
            let acc: i64 = vals(&bias)[j]
                + (0..k)
                    .map(|kk| vals(&a)[i / n * k + kk] * vals(&b)[kk * n + j])
                    .sum::<i64>();
            let p = acc as f32 * scales[j.min(scales.len() - 1)];
            ties += (p.fract().abs() == 0.5) as usize;
            let q = p.round_ties_even() as i64 + zp as i64;
            want.push(q.clamp(lo as i64, hi as i64));
        }
        let got = run(op, &a, &b, &bias, &format!("float {scales:?}"));
        assert_eq!(vals(&got), want, "float {scales:?}");
        if scales[0] != 0.1 {
            assert!(ties > 0, "no ties for {scales:?}");
        }
    }
}

#[test]
fn fused_relu_clamps() {
    let a = rand_t8(DType::I8, &[4, 19], 8);
    let b = ints(DType::I8, &[19, 6], &rand_ints(19 * 6, 9, -127, 127));
    let bias = ints(DType::I32, &[6], &[0, 100, -100, 5000, -5000, 1]);
    let e = Epilogue {
        rescale: Rescale::fixed_point(0.004).unwrap(),
        zero_point: -20,
        min: -20,
        max: 90,
    };
    let got = run(
        Op::QGemm {
            a_zero_point: 1,
            epi: e,
            to: DType::I8,
        },
        &a,
        &b,
        &bias,
        "relu",
    );
    let v = vals(&got);
    assert!(v.contains(&-20) && v.contains(&90), "{v:?}");
}

/// K at the exact limit: 255 * 127 * K fits i32 for K = 66311 and not for
/// 66312. The largest accumulator is computed exactly; one more row is rejected.
#[test]
fn worst_case_accumulator_at_the_i32_limit() {
    let k_ok = (i32::MAX as i64 / (255 * 127)) as usize;
    assert_eq!(k_ok, 66311);
    let e = epi(
        Rescale::fixed_point(127.0 / i32::MAX as f64).unwrap(),
        0,
        DType::I8,
    );
    let op = Op::QGemm {
        a_zero_point: -128,
        epi: e,
        to: DType::I8,
    };
    // Column 0: all +127, column 1: all -127; A all 127 (a - za = 255).
    let b_of = |k: usize| {
        let v: Vec<i64> = (0..2 * k)
            .map(|i| if i % 2 == 0 { 127 } else { -127 })
            .collect();
        ints(DType::I8, &[k, 2], &v)
    };
    let bias = ints(DType::I32, &[2], &[0, 0]);
    let mut av = vec![127; 2 * k_ok];
    av[k_ok..].fill(-128);
    let a = ints(DType::I8, &[2, k_ok], &av);
    let got = run(op.clone(), &a, &b_of(k_ok), &bias, "i32 limit");
    assert_eq!(vals(&got), vec![127, -127, 0, 0]);

    let k_bad = k_ok + 1;
    let a = ints(DType::I8, &[1, k_bad], &vec![0; k_bad]);
    let (g, _) = gemm_graph(&op, &a, &b_of(k_bad), &bias);
    match compile(&g, &host("m")) {
        Err(CodegenError::Unsupported { node, msg, .. }) => {
            assert_eq!(node, "op");
            assert!(
                msg.contains("overflow") && msg.contains("channel 0"),
                "{msg}"
            );
        }
        other => panic!("expected Unsupported, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn non_constant_weights_are_rejected() {
    let a = rand_t8(DType::I8, &[2, 3], 1);
    let b = ints(DType::I8, &[3, 2], &[1, 2, 3, 4, 5, 6]);
    let bias = ints(DType::I32, &[2], &[0, 0]);
    let op = Op::QGemm {
        a_zero_point: 0,
        epi: epi(Rescale::uniform(1, 0), 0, DType::I8),
        to: DType::I8,
    };
    let (g, _) = op_graph(op, vec![Arg::In(a), Arg::In(b), Arg::Const(bias)]);
    match compile(&g, &host("m")) {
        Err(CodegenError::Unsupported { msg, .. }) => {
            assert!(msg.contains("compile-time constant"), "{msg}")
        }
        other => panic!("expected Unsupported, got {:?}", other.map(|_| ())),
    }
}

/// B is stored transposed for the kernel; the original B must not stay in
/// the object too (its function argument is dead, so LLVM drops it).
#[test]
fn transposed_weights_replace_the_original() {
    let (k, n) = (300, 200);
    let a = rand_t8(DType::I8, &[2, k], 1);
    let b = ints(DType::I8, &[k, n], &rand_ints(k * n, 2, -127, 127));
    let bias = ints(DType::I32, &[n], &vec![0; n]);
    let op = Op::QGemm {
        a_zero_point: 0,
        epi: epi(Rescale::fixed_point(0.001).unwrap(), 0, DType::I8),
        to: DType::I8,
    };
    let (g, _) = gemm_graph(&op, &a, &b, &bias);
    let art = compile(&g, &host("m")).expect("compile");
    let rodata = art.stats.rodata_bytes as usize;
    assert!(
        rodata >= k * n && rodata < k * n * 3 / 2,
        "rodata {rodata} bytes"
    );
}

/// QMatMul: two run-time i8 operands (B 2-D, or batched with A's batch
/// dims), zero points at both ends of the range, rows longer than one
/// 256-column chunk, register-blocked shapes, fixed-point and float
/// epilogues; native code and the interpreter against sums computed here.
#[test]
fn qmatmul_of_two_run_time_operands() {
    // The first three take the register-blocked path (K ≤ 64, N a multiple
    // of 8), the others the row-accumulator one.
    let cases: [(&[usize], &[usize]); 7] = [
        (&[2, 4, 32, 16], &[2, 4, 16, 32]),
        (&[3, 64], &[64, 24]),
        (&[5, 1], &[1, 8]),
        (&[5, 37], &[37, 11]),
        (&[2, 3, 7, 16], &[2, 3, 16, 300]),
        (&[4, 1, 9], &[9, 3]),
        (&[1, 1, 2], &[2, 1]),
    ];
    for (i, (ash, bsh)) in cases.into_iter().enumerate() {
        let a = rand_t8(DType::I8, ash, 40 + i as u64);
        let b = rand_t8(DType::I8, bsh, 50 + i as u64);
        let k = ash[ash.len() - 1];
        let span = 128.0 * 128.0 * (k as f64).sqrt();
        for (za, zb, r) in [
            (-128, 127, Rescale::fixed_point(60.0 / span).unwrap()),
            (3, -5, Rescale::float(&[(60.0 / span) as f32]).unwrap()),
            (0, 0, Rescale::float(&[0.5]).unwrap()),
        ] {
            let op = Op::QMatMul {
                a_zero_point: za,
                b_zero_point: zb,
                epi: epi(r.clone(), 4, DType::I8),
                to: DType::I8,
            };
            let (g, inputs) = op_graph(op.clone(), vec![Arg::In(a.clone()), Arg::In(b.clone())]);
            let Op::QMatMul { epi: e, .. } = &op else {
                unreachable!()
            };
            let (av, bv) = (vals(&a), vals(&b));
            let (m, n) = (ash[ash.len() - 2], bsh[bsh.len() - 1]);
            let batches = av.len() / (m * k);
            let mut want = vec![];
            for t in 0..batches {
                let bt = if bsh.len() > 2 { t * k * n } else { 0 };
                for ii in 0..m {
                    for j in 0..n {
                        let acc: i64 = (0..k)
                            .map(|kk| {
                                (av[(t * m + ii) * k + kk] - za as i64)
                                    * (bv[bt + kk * n + j] - zb as i64)
                            })
                            .sum();
                        want.push(e.apply(acc, 0) as i64);
                    }
                }
            }
            let want = expect(&g, &want);
            check_exact(
                &g,
                &inputs,
                &want,
                &format!("qmatmul {ash:?}x{bsh:?} {r:?}"),
            );
        }
    }
}
