//! QConv and QGemm: hand-computed cases, exact agreement of the accumulators
//! with the float ops on integer-valued data, and property checks that
//! quantize → integer op → dequantize tracks the float op.

use super::quant::epi;
use super::*;
use qcc_ir::quant::{quantize, QParams};
use qcc_ir::{ConvAttrs, DType, Epilogue, Rescale};

fn attrs(strides: &[usize], pads: &[usize], dil: &[usize], group: usize) -> ConvAttrs {
    ConvAttrs {
        strides: strides.to_vec(),
        pads: pads.to_vec(),
        dilations: dil.to_vec(),
        group,
        output_padding: vec![0; strides.len()],
    }
}

fn err(op: Op, ins: &[&Tensor]) -> String {
    eval_op(&op, ins, &[]).expect_err("should fail")
}

#[test]
fn qconv_3x3_padded_per_channel() {
    // x - x_zp = 0, 2, …, 16 in a 3x3 grid.
    let x = ti8(&[1, 1, 3, 3], (0..9).map(|i| 2 * i - 3).collect());
    let mut wv = vec![1i8; 9];
    wv.extend([-1, 0, 0, 0, 2, 0, 0, 0, 0]);
    let w = ti8(&[2, 1, 3, 3], wv);
    let bias = ti32(&[2], vec![10, -4]);
    let e = Epilogue {
        rescale: Rescale {
            multiplier: vec![3, 1],
            shift: vec![2, 1],
            float: None,
        },
        zero_point: 5,
        min: 4,
        max: 60,
    };
    let op = Op::QConv {
        conv: attrs(&[1, 1], &[1, 1, 1, 1], &[1, 1], 1),
        x_zero_point: -3,
        epi: e,
        to: DType::I8,
    };
    let y = eval(op, &[&x, &w, &bias]);
    assert_eq!(y.shape(), &[1, 2, 3, 3]);
    assert_eq!(y.dtype(), DType::I8);
    // Channel 0: acc = 10 + 3x3 sums = 26 40 34 52 82 64 50 76 58; × 3/4 (ties
    // up) = 20 30 26 39 62 48 38 57 44; + 5, clamped to 60.
    // Channel 1: acc = -4 + 2 x[i,j] - x[i-1,j-1] = -4 0 4 8 12 14 20 18 20;
    // × 1/2 = -2 0 2 4 6 7 10 9 10; + 5, clamped to 4.
    let want = [
        25, 35, 31, 44, 60, 53, 43, 60, 49, //
        4, 5, 7, 9, 11, 12, 15, 14, 15,
    ];
    assert_eq!(ints(&y), want);
}

/// Pseudo-random integers in `[lo, hi]`.
fn rand_ints(n: usize, lo: i32, hi: i32, seed: u32) -> Vec<i32> {
    let f = noise(&[n], seed);
    f.as_f32()
        .unwrap()
        .iter()
        .map(|&v| lo + (((v + 1.0) / 2.0) * (hi - lo + 1) as f32) as i32)
        .map(|v| v.clamp(lo, hi))
        .collect()
}

fn as_f32(v: &[i32], shape: &[usize]) -> Tensor {
    t(shape, v.iter().map(|&a| a as f32).collect())
}

/// With small integers the accumulators fit the output type, so an identity
/// epilogue exposes them: they must equal the float conv of `x - zp`, `w`, `bias`.
#[test]
fn qconv_accumulators_match_float_conv() {
    let cases: [(&[usize], &[usize], ConvAttrs); 4] = [
        // 2-D, groups, stride, asymmetric pads
        (
            &[2, 4, 5, 6],
            &[6, 2, 3, 3],
            attrs(&[2, 1], &[1, 0, 1, 2], &[1, 1], 2),
        ),
        // depthwise, dilation
        (
            &[1, 3, 6, 6],
            &[3, 1, 3, 3],
            attrs(&[1, 1], &[2, 2, 2, 2], &[2, 2], 3),
        ),
        // 1-D
        (&[1, 2, 7], &[3, 2, 3], attrs(&[2], &[1, 1], &[1], 1)),
        // 3-D
        (
            &[1, 2, 3, 4, 4],
            &[2, 2, 2, 2, 2],
            attrs(&[1, 2, 1], &[0, 1, 1, 1, 0, 0], &[1, 1, 2], 1),
        ),
    ];
    for (i, (xs, ws, c)) in cases.into_iter().enumerate() {
        let seed = 10 * i as u32;
        let x_zp = 7;
        let xv = rand_ints(qcc_ir::numel(xs), x_zp - 3, x_zp + 3, seed);
        let wv = rand_ints(qcc_ir::numel(ws), -2, 2, seed + 1);
        let bv = rand_ints(ws[0], -5, 5, seed + 2);
        let x = ti8(xs, xv.iter().map(|&a| a as i8).collect());
        let w = ti8(ws, wv.iter().map(|&a| a as i8).collect());
        let b = ti32(&[ws[0]], bv.clone());
        let q = eval(
            Op::QConv {
                conv: c.clone(),
                x_zero_point: x_zp,
                epi: epi(1, 0, 0, -128, 127),
                to: DType::I8,
            },
            &[&x, &w, &b],
        );
        let centered: Vec<i32> = xv.iter().map(|&a| a - x_zp).collect();
        let f = eval(
            Op::Conv(c),
            &[
                &as_f32(&centered, xs),
                &as_f32(&wv, ws),
                &as_f32(&bv, &[ws[0]]),
            ],
        );
        let want: Vec<i64> = f.as_f32().unwrap().iter().map(|&v| v as i64).collect();
        assert_eq!(q.shape(), f.shape(), "case {i}");
        assert!(want.iter().all(|v| v.abs() < 128), "case {i}: {want:?}");
        assert_eq!(ints(&q), want, "case {i}");
    }
}

/// Asymmetric quantization parameters covering `[lo, hi]` (and 0) in i8.
fn qparams(lo: f32, hi: f32) -> QParams {
    let (lo, hi) = (lo.min(0.0), hi.max(0.0));
    let scale = ((hi - lo) / 255.0).max(1e-6);
    let zero_point = (-128.0 - lo / scale).round().clamp(-128.0, 127.0) as i32;
    QParams { scale, zero_point }
}

fn range(v: &[f32]) -> (f32, f32) {
    v.iter()
        .fold((f32::MAX, f32::MIN), |(a, b), &x| (a.min(x), b.max(x)))
}

/// Quantizes weights symmetrically per output channel (rows of `per` elements).
fn quantize_weights(w: &[f32], per: usize) -> (Vec<i8>, Vec<f32>) {
    let mut q = Vec::with_capacity(w.len());
    let mut scales = vec![];
    for row in w.chunks(per) {
        let s = row.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-6) / 127.0;
        let p = QParams {
            scale: s,
            zero_point: 0,
        };
        q.extend(row.iter().map(|&v| quantize(v, p, -127, 127) as i8));
        scales.push(s);
    }
    (q, scales)
}

/// The quantized form of a float op with weight scales `ws` (one per output
/// channel), input parameters `xq` and output parameters `yq`: the bias in i32
/// and the per-channel epilogue.
fn quantize_bias_and_epilogue(
    b: &[f32],
    ws: &[f32],
    xq: QParams,
    yq: QParams,
) -> (Vec<i32>, Epilogue) {
    let bias = b
        .iter()
        .zip(ws)
        .map(|(&v, &s)| (v as f64 / (xq.scale as f64 * s as f64)).round() as i32)
        .collect();
    let parts: Vec<Rescale> = ws
        .iter()
        .map(|&s| Rescale::fixed_point(xq.scale as f64 * s as f64 / yq.scale as f64).unwrap())
        .collect();
    let e = Epilogue {
        rescale: Rescale::per_channel(&parts),
        zero_point: yq.zero_point,
        min: -128,
        max: 127,
    };
    (bias, e)
}

/// Quantizes `x` with the interpreter's Quantize op.
fn quantize_input(x: &Tensor, q: QParams) -> Tensor {
    eval(Op::Quantize { q, to: DType::I8 }, &[x])
}

/// Dequantizes an i8 result with the interpreter's Dequantize op.
fn dequantize_output(y: &Tensor, q: QParams) -> Vec<f32> {
    eval(Op::Dequantize { q }, &[y]).as_f32().unwrap().to_vec()
}

/// Checks `got` against the float result: within `steps` output steps.
fn assert_within_steps(got: &[f32], want: &[f32], scale: f32, steps: f32, what: &str) {
    assert_eq!(got.len(), want.len());
    let worst = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs() / scale)
        .fold(0.0f32, f32::max);
    assert!(worst <= steps, "{what}: off by {worst} steps (> {steps})");
}

#[test]
fn qconv_tracks_float_conv() {
    for seed in 0..4u32 {
        let c = attrs(&[2, 2], &[1, 1, 1, 1], &[1, 1], 2);
        let x = noise(&[1, 4, 7, 7], 100 + seed);
        let w = noise(&[6, 2, 3, 3], 200 + seed);
        let b = noise(&[6], 300 + seed);
        let yf = eval(Op::Conv(c.clone()), &[&x, &w, &b]);
        let (lo, hi) = range(x.as_f32().unwrap());
        let xq = qparams(lo, hi);
        let (ylo, yhi) = range(yf.as_f32().unwrap());
        let yq = qparams(1.1 * ylo, 1.1 * yhi); // margin: no clamping
        let (wq, ws) = quantize_weights(w.as_f32().unwrap(), 2 * 9);
        let (bias, e) = quantize_bias_and_epilogue(b.as_f32().unwrap(), &ws, xq, yq);
        let op = Op::QConv {
            conv: c.clone(),
            x_zero_point: xq.zero_point,
            epi: e,
            to: DType::I8,
        };
        let x8 = quantize_input(&x, xq);
        let yi = eval(
            op,
            &[&x8, &ti8(&[6, 2, 3, 3], wq.clone()), &ti32(&[6], bias)],
        );
        let got = dequantize_output(&yi, yq);
        // Against the float conv of the dequantized operands, only the bias
        // rounding and the final rounding differ: within half a step (plus
        // the bias's share).
        let xd = eval(Op::Dequantize { q: xq }, &[&x8]);
        let wd: Vec<f32> = wq
            .iter()
            .enumerate()
            .map(|(i, &q)| q as f32 * ws[i / 18])
            .collect();
        let yd = eval(Op::Conv(c), &[&xd, &t(&[6, 2, 3, 3], wd), &b]);
        assert_within_steps(&got, yd.as_f32().unwrap(), yq.scale, 0.6, "vs dequantized");
        // Against the float conv itself: a few steps.
        assert_within_steps(&got, yf.as_f32().unwrap(), yq.scale, 3.0, "vs float");
    }
}

#[test]
fn qgemm_hand_computed_per_channel() {
    let a = tu8(&[2, 3], vec![130, 128, 120, 0, 255, 128]);
    let b = ti8(&[3, 2], vec![1, -1, 2, 3, -1, 127]);
    let bias = ti32(&[2], vec![100, -50]);
    let e = Epilogue {
        rescale: Rescale {
            multiplier: vec![1, 1],
            shift: vec![1, 3],
            float: None,
        },
        zero_point: 0,
        min: -128,
        max: 127,
    };
    let op = Op::QGemm {
        a_zero_point: 128,
        epi: e,
        to: DType::I8,
    };
    // acc = [[110, -1068], [226, 459]]; column 0 / 2, column 1 / 8 (→ -133.5
    // rounds up to -133, then clamps to -128).
    let y = eval(op, &[&a, &b, &bias]);
    assert_eq!(y.shape(), &[2, 2]);
    assert_eq!(ints(&y), [55, -128, 113, 57]);
}

#[test]
fn qgemm_tracks_float_gemm() {
    for seed in 0..4u32 {
        let (m, k, n) = (3, 16, 5);
        let a = noise(&[m, k], 400 + seed);
        let b = noise(&[k, n], 500 + seed);
        let bias = noise(&[n], 600 + seed);
        let gemm = Op::Gemm {
            alpha: 1.0,
            beta: 1.0,
            trans_a: false,
            trans_b: false,
        };
        let yf = eval(gemm.clone(), &[&a, &b, &bias]);
        let (lo, hi) = range(a.as_f32().unwrap());
        let aq = qparams(lo, hi);
        let (ylo, yhi) = range(yf.as_f32().unwrap());
        let yq = qparams(1.1 * ylo, 1.1 * yhi); // margin: no clamping
                                                // Per-column weight scales: quantize the rows of bᵀ.
        let bt = eval(Op::Transpose { perm: vec![1, 0] }, &[&b]);
        let (btq, ws) = quantize_weights(bt.as_f32().unwrap(), k);
        let bq = eval(Op::Transpose { perm: vec![1, 0] }, &[&ti8(&[n, k], btq)]);
        let (biasq, e) = quantize_bias_and_epilogue(bias.as_f32().unwrap(), &ws, aq, yq);
        let op = Op::QGemm {
            a_zero_point: aq.zero_point,
            epi: e,
            to: DType::I8,
        };
        let a8 = quantize_input(&a, aq);
        let yi = eval(op, &[&a8, &bq, &ti32(&[n], biasq)]);
        let got = dequantize_output(&yi, yq);
        let ad = eval(Op::Dequantize { q: aq }, &[&a8]);
        let bd: Vec<f32> = ints(&bq)
            .iter()
            .enumerate()
            .map(|(i, &q)| q as f32 * ws[i % n])
            .collect();
        let yd = eval(gemm, &[&ad, &t(&[k, n], bd), &bias]);
        assert_within_steps(&got, yd.as_f32().unwrap(), yq.scale, 0.6, "vs dequantized");
        assert_within_steps(&got, yf.as_f32().unwrap(), yq.scale, 3.0, "qgemm");
    }
}

#[test]
fn overflowing_accumulators_are_errors() {
    let x = ti8(&[1, 1, 1, 2], vec![127, 127]);
    let w = ti8(&[1, 1, 1, 2], vec![127, 127]);
    let conv = Op::QConv {
        conv: attrs(&[1, 1], &[0; 4], &[1, 1], 1),
        x_zero_point: -128,
        epi: epi(1, 30, 0, -128, 127),
        to: DType::I8,
    };
    // 2 * 255 * 127 = 64770 on top of the bias.
    let ok = ti32(&[1], vec![i32::MAX - 64770]);
    assert_eq!(ints(&eval(conv.clone(), &[&x, &w, &ok])), [2]);
    let high = ti32(&[1], vec![i32::MAX - 64769]);
    assert!(err(conv.clone(), &[&x, &w, &high]).contains("i32 range"));
    let wn = ti8(&[1, 1, 1, 2], vec![-127, -127]);
    let low = ti32(&[1], vec![i32::MIN + 64769]);
    assert!(err(conv, &[&x, &wn, &low]).contains("i32 range"));

    let a = ti8(&[1, 2], vec![127, 127]);
    let b = ti8(&[2, 1], vec![127, 127]);
    let gemm = Op::QGemm {
        a_zero_point: -128,
        epi: epi(1, 0, 0, -128, 127),
        to: DType::I8,
    };
    assert!(err(gemm, &[&a, &b, &high]).contains("i32 range"));
}

#[test]
fn wrong_dtypes_and_shapes_are_errors() {
    let conv = Op::QConv {
        conv: attrs(&[1, 1], &[0; 4], &[1, 1], 1),
        x_zero_point: 0,
        epi: epi(1, 0, 0, -128, 127),
        to: DType::I8,
    };
    let x = ti8(&[1, 1, 2, 2], vec![0; 4]);
    let w = ti8(&[1, 1, 1, 1], vec![1]);
    let b = ti32(&[1], vec![0]);
    assert_eq!(eval(conv.clone(), &[&x, &w, &b]).shape(), &[1, 1, 2, 2]);
    assert!(!err(conv.clone(), &[&iota(&[1, 1, 2, 2]), &w, &b]).is_empty());
    assert!(!err(conv.clone(), &[&x, &tu8(&[1, 1, 1, 1], vec![1]), &b]).is_empty());
    assert!(!err(conv.clone(), &[&x, &w, &ti8(&[1], vec![0])]).is_empty());
    assert!(!err(conv.clone(), &[&x, &w, &ti32(&[2], vec![0, 0])]).is_empty());
    assert!(!err(conv.clone(), &[&x, &w]).is_empty());
    // A per-channel epilogue with the wrong channel count.
    let mut bad = epi(1, 0, 0, -128, 127);
    bad.rescale = Rescale {
        multiplier: vec![1, 1],
        shift: vec![0, 0],
        float: None,
    };
    let op = Op::QConv {
        conv: attrs(&[1, 1], &[0; 4], &[1, 1], 1),
        x_zero_point: 0,
        epi: bad,
        to: DType::I8,
    };
    assert!(!err(op, &[&x, &w, &b]).is_empty());
    // Absurd attributes are rejected before any index arithmetic.
    let huge = usize::MAX / 2;
    let op = Op::QConv {
        conv: attrs(&[1, 1], &[huge, 0, huge, 0], &[1, 1], 1),
        x_zero_point: 0,
        epi: epi(1, 0, 0, -128, 127),
        to: DType::I8,
    };
    assert!(err(op, &[&x, &w, &b]).contains("too large"));

    let gemm = Op::QGemm {
        a_zero_point: 0,
        epi: epi(1, 0, 0, -128, 127),
        to: DType::I8,
    };
    let a = ti8(&[1, 2], vec![0, 0]);
    let bm = ti8(&[2, 1], vec![0, 0]);
    assert!(!err(gemm.clone(), &[&a, &tu8(&[2, 1], vec![0, 0]), &b]).is_empty());
    assert!(!err(gemm.clone(), &[&iota(&[1, 2]), &bm, &b]).is_empty());
    assert!(!err(gemm.clone(), &[&a, &bm, &ti32(&[2], vec![0, 0])]).is_empty());
    assert!(!err(gemm, &[&a, &ti8(&[1, 2], vec![0, 0]), &b]).is_empty());
}

/// QConv sums a window's products in i32 when no partial sum can leave it
/// (`C·KH·KW · max|x - zp| · 128 < 2^31`) and in i64 past that bound. On
/// both sides of it, with the largest products there are running the
/// partial sums near ±2^29 and back (the second half of the channels
/// repeats the first's inputs against negated weights), every output equals
/// a plain i64 sum, exposed by an identity epilogue.
#[test]
fn qconv_sums_on_both_sides_of_the_i32_bound_match_a_direct_sum() {
    let zp = 127; // |x - zp| up to 255 + 127 = 382
    let bound = (i32::MAX as usize) / (382 * 128);
    for c in [bound - 1, bound + 1] {
        let (m, pos, half) = (2, 3, c / 2);
        let r = rand_ints(c * pos + m * c, -127, 127, 7);
        let mut xs = vec![0i8; c * pos];
        let mut ws = vec![0i8; m * c];
        for ch in 0..half {
            for p in 0..pos {
                // Mostly -128 (x - zp = -255), else anything.
                let v = r[ch * pos + p];
                let x = if v % 4 == 0 { v as i8 } else { -128 };
                xs[ch * pos + p] = x;
                xs[(ch + half) * pos + p] = x;
            }
            for oc in 0..m {
                let v = r[c * pos + oc * c + ch];
                let w = if v % 4 == 0 { v as i8 } else { -127 };
                ws[oc * c + ch] = w;
                ws[oc * c + ch + half] = -w;
            }
        }
        // An odd channel out: small terms that make the outputs differ.
        for ch in 2 * half..c {
            for p in 0..pos {
                xs[ch * pos + p] = (zp + (r[p] % 5)) as i8;
            }
            for oc in 0..m {
                ws[oc * c + ch] = (r[pos + oc] % 7) as i8;
            }
        }
        let bias = vec![17, -23];
        let e = Epilogue {
            rescale: Rescale::uniform(1, 0),
            zero_point: 0,
            min: -128,
            max: 127,
        };
        let op = Op::QConv {
            conv: attrs(&[1], &[0, 0], &[1], 1),
            x_zero_point: zp,
            epi: e,
            to: DType::I8,
        };
        let y = eval(
            op,
            &[
                &ti8(&[1, c, pos], xs.clone()),
                &ti8(&[m, c, 1], ws.clone()),
                &ti32(&[m], bias.clone()),
            ],
        );
        let mut want = vec![];
        let mut widest = 0i64;
        for oc in 0..m {
            for p in 0..pos {
                let mut acc = bias[oc] as i64;
                for ch in 0..c {
                    acc += (xs[ch * pos + p] as i64 - zp as i64) * ws[oc * c + ch] as i64;
                    widest = widest.max(acc.abs());
                }
                assert!(acc.abs() < 100, "C = {c}: {acc} is not exposed");
                want.push(acc);
            }
        }
        assert_eq!(ints(&y), want, "C = {c}");
        assert!(widest > 1 << 28, "C = {c}: the sums stay small ({widest})");
    }
}
