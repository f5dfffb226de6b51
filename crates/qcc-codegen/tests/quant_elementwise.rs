//! Elementwise integer kernels (Quantize, Dequantize, Requantize, Lut, QAdd,
//! QMul) run natively and compared bit for bit with a reference built on
//! `qcc_ir::quant` (and with the interpreter once it has the integer ops).

mod common;
mod quant_common;
use common::*;
use qcc_codegen::{compile, CodegenError};
use qcc_ir::{DType, Op, QParams, Rescale};
use quant_common::*;

/// Floats hitting the rounding ties, ±0, infinities, NaN and saturation.
fn tricky_floats(scale: f32) -> Vec<f32> {
    let mut v = vec![
        0.0,
        -0.0,
        f32::NAN,
        -f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        1e30,
        -1e30,
        f32::MIN_POSITIVE,
        -1e-42,
    ];
    for k in -6..6 {
        // Exact ties k + 0.5 (the division by `scale` is exact for pow2 scales).
        v.push((k as f32 + 0.5) * scale);
        v.push((k as f32 + 0.499_999_97) * scale);
        v.push((k as f32 - 0.5) * scale);
    }
    for k in [
        127.0, 127.5, 128.0, 128.5, 255.5, 256.0, -128.5, -129.0, 65535.5, 70000.0,
    ] {
        v.push(k * scale);
        v.push(-k * scale);
    }
    // The floats around the products (k + 0.5) · scale, whose quotients lie
    // within a few ulps of a tie: where a reciprocal that is not exact
    // (`fma(x, hi, x · lo)` in place of the division) would round the
    // other way.
    for k in -300..300 {
        let t = (k as f32 + 0.5) * scale;
        for d in -3i32..=3 {
            v.push(f32::from_bits(t.to_bits().wrapping_add_signed(d)));
        }
    }
    v
}

#[test]
fn quantize_rounds_half_even_saturates_and_maps_nan_to_the_zero_point() {
    let cases = [
        (0.25f32, 3, DType::I8),
        (0.25, 130, DType::U8),
        (0.0731, -17, DType::I8),
        (3.3, 0, DType::U8),
        (1e-3, 127, DType::I8),
    ];
    for (i, &(scale, zp, to)) in cases.iter().enumerate() {
        let mut x = tricky_floats(scale);
        x.extend(rand_f32(97, i as u64 + 1, -200.0 * scale, 200.0 * scale));
        let n = x.len();
        let q = QParams {
            scale,
            zero_point: zp,
        };
        let (g, inputs) = op_graph(
            Op::Quantize { q, to },
            vec![Arg::In(f32_tensor(&[n], x.clone()))],
        );
        let want = expect(&g, &ref_quantize(&x, q, to));
        check_exact(&g, &inputs, &want, &format!("quantize {q:?} to {to}"));
    }
}

#[test]
fn quantize_uses_no_rounding_intrinsics() {
    let q = QParams {
        scale: 0.1,
        zero_point: 0,
    };
    let (g, _) = op_graph(
        Op::Quantize { q, to: DType::I8 },
        vec![Arg::In(f32_tensor(&[37], vec![0.0; 37]))],
    );
    let mut opts = host("m");
    opts.emit_llvm_ir = true;
    let ir = compile(&g, &opts).expect("compile").llvm_ir.expect("ir");
    for bad in [
        "roundeven",
        "llvm.rint",
        "nearbyint",
        "llvm.round.",
        "lroundf",
    ] {
        assert!(!ir.contains(bad), "quantize uses {bad}");
    }
    // A scale with an exact two-float reciprocal multiplies (x86 with
    // FMA, AArch64); one without divides.
    let fused = qcc_ir::quant::exact_reciprocal(0.1).is_some();
    let hw_fma = cfg!(target_arch = "aarch64") || host_has("fma");
    if fused && hw_fma {
        assert!(ir.contains("llvm.fma") && !ir.contains("fdiv"), "{ir}");
    } else {
        assert!(ir.contains("fdiv"), "quantize must divide by the scale");
    }
    // The rounding constant 1.5 * 2^23 survives optimization (no fast-math folding).
    assert!(
        ir.contains("0x4168000000000000"),
        "the magic-number rounding was folded"
    );
}

/// Scales without an exact two-float reciprocal keep the division, and
/// both kinds match the reference on the floats around every tie.
#[test]
fn quantize_divides_where_no_reciprocal_is_exact() {
    let inexact = (0..400)
        .map(|i| 0.001 + i as f32 * 0.000_731)
        .find(|&d| qcc_ir::quant::exact_reciprocal(d).is_none())
        .expect("a divisor without an exact reciprocal pair");
    let exact = (0..400)
        .map(|i| 0.001 + i as f32 * 0.000_731)
        .find(|&d| qcc_ir::quant::exact_reciprocal(d).is_some())
        .expect("a divisor with an exact reciprocal pair");
    for (scale, div) in [(inexact, true), (exact, false)] {
        let q = QParams {
            scale,
            zero_point: -3,
        };
        let x = tricky_floats(scale);
        let n = x.len();
        let (g, inputs) = op_graph(
            Op::Quantize { q, to: DType::I8 },
            vec![Arg::In(f32_tensor(&[n], x.clone()))],
        );
        let mut opts = host("m");
        opts.emit_llvm_ir = true;
        let ir = compile(&g, &opts).expect("compile").llvm_ir.expect("ir");
        if host_has("fma") {
            assert_eq!(ir.contains("fdiv"), div, "scale {scale}");
        }
        let want = expect(&g, &ref_quantize(&x, q, DType::I8));
        check_exact(&g, &inputs, &want, &format!("quantize by {scale}"));
    }
}

fn host_has(flag: &str) -> bool {
    std::fs::read_to_string("/proc/cpuinfo")
        .map(|s| s.split_whitespace().any(|w| w == flag))
        .unwrap_or(false)
}

#[test]
fn dequantize_is_one_multiply() {
    for (dt, zp, scale) in [
        (DType::I8, -5, 0.0371f32),
        (DType::U8, 128, 0.5),
        (DType::I32, 7, 1.3e-4),
    ] {
        let x = match dt {
            DType::I32 => ints(dt, &[3, 13], &rand_ints(39, 7, -(1 << 30), 1 << 30)),
            _ => rand_t8(dt, &[3, 13], 11),
        };
        let q = QParams {
            scale,
            zero_point: zp,
        };
        let want = f32_tensor(&[3, 13], ref_dequantize(&vals(&x), q));
        let (g, inputs) = op_graph(Op::Dequantize { q }, vec![Arg::In(x)]);
        check_exact(&g, &inputs, &want, &format!("dequantize {dt}"));
    }
}

#[test]
fn requantize_per_tensor_pow2_and_fixed_point_with_saturation() {
    let cases = [
        (DType::I8, 3, DType::U8, Rescale::uniform(1, 0), 128),
        (DType::I8, -128, DType::I8, Rescale::uniform(1, 1), -100),
        (
            DType::U8,
            0,
            DType::I8,
            Rescale::fixed_point(0.37).unwrap(),
            5,
        ),
        (
            DType::U8,
            200,
            DType::U8,
            Rescale::fixed_point(1.7).unwrap(),
            30,
        ),
        (
            DType::I8,
            0,
            DType::I8,
            Rescale::fixed_point(1e-9).unwrap(),
            -1,
        ),
        (DType::I8, 7, DType::I8, Rescale::uniform(1, 40), 0),
        // Frequent exact ties (acc * m ends on a half): they round up.
        (DType::I8, 0, DType::I8, Rescale::uniform(3 << 29, 31), 0),
        (DType::U8, 1, DType::I8, Rescale::uniform(3, 2), -3),
        (DType::I8, -1, DType::U8, Rescale::uniform(1, 2), 128),
    ];
    for (i, (from, zx, to, r, zo)) in cases.into_iter().enumerate() {
        let x = rand_t8(from, &[5, 11], i as u64 + 3);
        let e = epi(r, zo, to);
        let want = ref_requantize(&vals(&x), zx, &e);
        let op = Op::Requantize {
            in_zero_point: zx,
            epi: e,
            to,
        };
        let (g, inputs) = op_graph(op, vec![Arg::In(x)]);
        let want = expect(&g, &want);
        check_exact(&g, &inputs, &want, &format!("requantize case {i}"));
    }
}

#[test]
fn requantize_with_a_fused_relu_clamps_at_both_ends() {
    let x = ints(DType::I8, &[6], &[-128, -1, 0, 1, 100, 127]);
    let e = qcc_ir::Epilogue {
        rescale: Rescale::uniform(1, 0),
        zero_point: -10,
        min: -10,
        max: 50,
    };
    let op = Op::Requantize {
        in_zero_point: 0,
        epi: e,
        to: DType::I8,
    };
    let (g, inputs) = op_graph(op, vec![Arg::In(x)]);
    let want = ints(DType::I8, &[6], &[-10, -10, -10, -9, 50, 50]);
    check_exact(&g, &inputs, &want, "relu requantize");
}

#[test]
fn lut_indexes_from_the_type_minimum() {
    for (from, to) in [
        (DType::I8, DType::I8),
        (DType::U8, DType::I8),
        (DType::I8, DType::U8),
        (DType::U8, DType::U8),
    ] {
        let (lo, hi) = range(to);
        let table: Vec<i32> = rand_ints(256, 5, lo as i64, hi as i64)
            .into_iter()
            .map(|v| v as i32)
            .collect();
        let mut x = rand_t8(from, &[2, 3, 43], 17);
        // Both ends of the input range.
        let (xlo, xhi) = range(from);
        let mut xv = vals(&x);
        (xv[0], xv[1]) = (xlo as i64, xhi as i64);
        x = ints(from, &[2, 3, 43], &xv);
        let want = ref_lut(&xv, from, &table);
        let (g, inputs) = op_graph(Op::Lut { table, to }, vec![Arg::In(x)]);
        let want = expect(&g, &want);
        check_exact(&g, &inputs, &want, &format!("lut {from} -> {to}"));
    }
}

/// QAdd and QMul over broadcast shapes, i8/u8 mixes, pow2 and fixed-point
/// (same-shape QAdds with shifts of 33 and more take the 16-lane path on
/// x86, with a scalar tail).
#[test]
fn qadd_and_qmul_broadcast() {
    let shapes: [(&[usize], &[usize]); 6] = [
        (&[2, 3, 5, 7], &[3, 1, 7]),
        (&[37], &[37]),
        (&[4, 1, 9], &[1, 6, 1]),
        (&[2, 3, 40], &[2, 3, 40]),
        (&[3, 11], &[1]),
        (&[64], &[64]),
    ];
    for (i, (sa, sb)) in shapes.into_iter().enumerate() {
        let (da, db, to) = match i % 3 {
            0 => (DType::I8, DType::I8, DType::I8),
            1 => (DType::U8, DType::I8, DType::U8),
            _ => (DType::U8, DType::U8, DType::I8),
        };
        let a = rand_t8(da, sa, 100 + i as u64);
        let b = rand_t8(db, sb, 200 + i as u64);
        let (zo, _) = range(to);
        let ops = [
            Op::QAdd {
                a_zero_point: range(da).0 + 5,
                a_multiplier: 1 << 16,
                b_zero_point: range(db).1 - 3,
                b_multiplier: 3 << 14,
                epi: epi(
                    Rescale::fixed_point(1.0 / 65536.0 * 0.8).unwrap(),
                    zo + 100,
                    to,
                ),
                to,
            },
            Op::QAdd {
                a_zero_point: 0,
                a_multiplier: 1,
                b_zero_point: 0,
                b_multiplier: 2,
                epi: epi(Rescale::uniform(1, 1), zo + 128, to),
                to,
            },
            Op::QMul {
                a_zero_point: range(da).0 + 12,
                b_zero_point: range(db).1 - 7,
                epi: epi(Rescale::fixed_point(0.0077).unwrap(), zo + 60, to),
                to,
            },
            Op::QMul {
                a_zero_point: 0,
                b_zero_point: 0,
                epi: epi(Rescale::uniform(1, 7), zo + 127, to),
                to,
            },
        ];
        for (k, op) in ops.into_iter().enumerate() {
            let want = ref_qbinary(&op, &a, &b);
            let (g, inputs) = op_graph(op, vec![Arg::In(a.clone()), Arg::In(b.clone())]);
            let want = expect(&g, &want);
            check_exact(&g, &inputs, &want, &format!("shapes {i} op {k}"));
        }
    }
}

/// Multipliers so large that the sum could leave i32: rejected at compile
/// time, naming the node; one less and it compiles and stays exact.
#[test]
fn qadd_whose_sum_could_overflow_i32_is_rejected() {
    // |a - (-128)| <= 255: 255 * m + 255 * m2 must stay below 2^31.
    let m2 = 1 << 20;
    let m_ok = ((i32::MAX as i64 - 255 * m2 as i64) / 255) as i32;
    let op = |ma: i32| Op::QAdd {
        a_zero_point: -128,
        a_multiplier: ma,
        b_zero_point: -128,
        b_multiplier: m2,
        epi: epi(
            Rescale::fixed_point(1.0 / (1u64 << 30) as f64).unwrap(),
            0,
            DType::I8,
        ),
        to: DType::I8,
    };
    let a = ints(DType::I8, &[5], &[127, -128, 0, 127, 1]);
    let b = ints(DType::I8, &[5], &[127, -128, 127, -128, 3]);
    let (g, _) = op_graph(op(m_ok + 1), vec![Arg::In(a.clone()), Arg::In(b.clone())]);
    match compile(&g, &host("m")) {
        Err(CodegenError::Unsupported { node, msg, .. }) => {
            assert_eq!(node, "op");
            assert!(msg.contains("overflow"), "{msg}");
        }
        other => panic!("expected Unsupported, got {:?}", other.map(|_| ())),
    }
    let op = op(m_ok);
    let want = ref_qbinary(&op, &a, &b);
    let (g, inputs) = op_graph(op, vec![Arg::In(a), Arg::In(b)]);
    let want = expect(&g, &want);
    check_exact(&g, &inputs, &want, "qadd at the i32 limit");
}

/// QSoftmax on rows of several lengths (1, a vector width, past it), with
/// repeated maxima, the whole i8 range and i8/u8 outputs: native code and
/// the interpreter against the definition computed here, and the result
/// within one output step (plus the table's rounding) of the float softmax.
#[test]
fn qsoftmax_rows() {
    let s_x = 0.05f32;
    let table = qcc_ir::quant::softmax_table(s_x);
    for (shape, to, zp, inv) in [
        (vec![3usize, 7], DType::I8, -128, 256),
        (vec![2, 2, 33], DType::U8, 0, 255),
        (vec![5, 1], DType::I8, -128, 256),
        (vec![1, 300], DType::I8, -100, 1000),
    ] {
        let n: usize = shape.iter().product();
        let mut x = rand_ints(n, n as u64, -128, 127);
        x[0] = 127;
        if n > 2 {
            x[1] = 127; // a repeated maximum
        }
        let xt = ints(DType::I8, &shape, &x);
        let op = Op::QSoftmax {
            table: table.clone(),
            scale_inv: inv,
            zero_point: zp,
            to,
        };
        let (g, inputs) = op_graph(op, vec![Arg::In(xt)]);
        let (lo, hi) = range(to);
        let row = *shape.last().unwrap();
        let mut want = vec![];
        for r in x.chunks(row) {
            let m = *r.iter().max().unwrap();
            let e: Vec<i64> = r.iter().map(|&v| table[(m - v) as usize] as i64).collect();
            let s: i64 = e.iter().sum();
            let rf = inv as f32 / s as f32;
            for (k, &ek) in e.iter().enumerate() {
                let q = (ek as f32 * rf).round_ties_even() as i64;
                want.push((zp as i64 + q).clamp(lo as i64, hi as i64));
                // Against the float softmax: one step and the table's error.
                let fx: Vec<f64> = r.iter().map(|&v| (v - m) as f64 * s_x as f64).collect();
                let fs: f64 = fx.iter().map(|v| v.exp()).sum();
                let p = fx[k].exp() / fs;
                let err = ((q as f64) / inv as f64 - p).abs();
                assert!(
                    err <= 0.5 / inv as f64 + 2e-4 || q + zp as i64 == hi as i64,
                    "{err}"
                );
            }
        }
        let want = expect(&g, &want);
        check_exact(&g, &inputs, &want, &format!("qsoftmax {shape:?} {to}"));
    }
}
