//! Calibration methods on known distributions, and the errors of the
//! quantization passes.

mod quant_common;

use qcc_ir::{Graph, Op, ValueId};
use qcc_passes::{CalibrationMethod, PassContext, Pipeline, QuantConfig, Range};
use quant_common::*;

const N: usize = 4096;

/// `x [1, N] → reshape → y`: the input's range is what calibration reports.
fn identity_graph() -> (Graph, ValueId) {
    let mut g = Graph::new("id");
    let x = input(&mut g, "x", &[1, N]);
    let y = node(&mut g, Op::Reshape { shape: vec![N] }, "flat", vec![x]);
    g.add_output("y", y);
    (g, x)
}

fn calibrate(method: CalibrationMethod, data: &[Vec<f32>]) -> Range {
    let (cx, x) = calibrate_cx(method, data);
    cx.ranges[&x]
}

fn calibrate_cx(method: CalibrationMethod, data: &[Vec<f32>]) -> (PassContext, ValueId) {
    let (mut g, x) = identity_graph();
    let cal = data
        .iter()
        .map(|d| vec![tensor(&[1, N], d.clone())])
        .collect();
    let mut cx = PassContext {
        quant: Some(QuantConfig {
            method,
            ..Default::default()
        }),
        calibration: cal,
        ..Default::default()
    };
    Pipeline::default()
        .run(&mut g, &mut cx, Some("calibrate"))
        .unwrap();
    assert!(cx.value_stats[&x].count == (N * data.len()) as u64);
    (cx, x)
}

/// N(0, 1) with a few far outliers on both sides.
fn gaussian_with_outliers() -> Vec<Vec<f32>> {
    let mut rng = Rng::new(21);
    (0..4)
        .map(|i| {
            let mut v = rng.normals(N, 1.0);
            if i == 0 {
                v[7] = 40.0;
                v[9] = -30.0;
            }
            v
        })
        .collect()
}

/// Laplace(0, 1): a long-tailed distribution without outliers.
fn laplace() -> Vec<Vec<f32>> {
    let mut rng = Rng::new(22);
    (0..4)
        .map(|_| {
            (0..N)
                .map(|_| {
                    let u = rng.uniform() - 0.5;
                    (-u.signum() * (1.0 - 2.0 * u.abs()).ln()) as f32
                })
                .collect()
        })
        .collect()
}

/// A Gaussian scale mixture `N(0,1)·e^{N(0,1)}`: heavy tails, no isolated outliers.
fn heavy_tailed() -> Vec<Vec<f32>> {
    let mut rng = Rng::new(23);
    (0..4)
        .map(|_| (0..N).map(|_| rng.normal() * rng.normal().exp()).collect())
        .collect()
}

fn extremes(data: &[Vec<f32>]) -> (f32, f32) {
    let all = data.iter().flatten();
    let lo = all.clone().cloned().fold(f32::INFINITY, f32::min);
    let hi = all.cloned().fold(f32::NEG_INFINITY, f32::max);
    (lo, hi)
}

#[test]
fn minmax_is_the_observed_extremes() {
    let d = gaussian_with_outliers();
    let r = calibrate(CalibrationMethod::MinMax, &d);
    assert_eq!((r.min, r.max), (-30.0, 40.0));
    // A positive distribution's range still contains 0.
    let shifted: Vec<Vec<f32>> = d
        .iter()
        .map(|v| v.iter().map(|x| x.abs() + 5.0).collect())
        .collect();
    let (_, hi) = extremes(&shifted);
    let r = calibrate(CalibrationMethod::MinMax, &shifted);
    assert_eq!((r.min, r.max), (0.0, hi));
}

#[test]
fn percentile_clips_outliers() {
    let d = gaussian_with_outliers();
    let r = calibrate(CalibrationMethod::Percentile(99.9), &d);
    // N(0,1): the 99.9th percentile is 3.09; the histogram's bins are 70/2048 wide.
    assert!(r.max > 2.5 && r.max < 3.7, "{r:?}");
    assert!(r.min < -2.5 && r.min > -3.7, "{r:?}");
    let all = calibrate(CalibrationMethod::Percentile(100.0), &d);
    assert!(all.max > 39.9 && all.min < -29.9, "{all:?}");
}

#[test]
fn entropy_and_mse_clip_long_tails() {
    let d = heavy_tailed();
    let (lo, hi) = extremes(&d);
    // Entropy cuts deep into the tails.
    let r = calibrate(CalibrationMethod::Entropy, &d);
    assert!(
        r.max < 0.5 * hi && r.min > 0.5 * lo,
        "{r:?} vs [{lo}, {hi}]"
    );
    assert!(r.max > 3.0 && r.min < -3.0, "{r:?} clips too much");
    // At 8 bits rounding noise is small, so mse clips only a little (squared
    // clipping error grows fast), but it does clip.
    let r = calibrate(CalibrationMethod::Mse, &d);
    assert!(
        r.max < hi && r.min > lo && r.max > 0.5 * hi,
        "{r:?} vs [{lo}, {hi}]"
    );
    // Two far outliers among 16384 normals: entropy drops them; mse keeps them
    // (clipping 40 to 4 costs more squared error than coarser steps for all).
    let d = gaussian_with_outliers();
    let r = calibrate(CalibrationMethod::Entropy, &d);
    assert!(r.max < 10.0 && r.min > -10.0 && r.max > 2.0, "{r:?}");
    let r = calibrate(CalibrationMethod::Mse, &d);
    assert!(r.max > 30.0, "{r:?}");
}

#[test]
fn one_sided_distributions_keep_zero_as_their_bottom() {
    let d: Vec<Vec<f32>> = laplace()
        .iter()
        .map(|v| v.iter().map(|x| x.abs()).collect())
        .collect();
    let (_, hi) = extremes(&d);
    for m in [
        CalibrationMethod::Entropy,
        CalibrationMethod::Mse,
        CalibrationMethod::Percentile(99.99),
    ] {
        let r = calibrate(m, &d);
        assert_eq!(r.min, 0.0, "{m:?}");
        assert!(r.max > 2.0 && r.max <= hi, "{m:?}: {r:?}");
    }
}

#[test]
fn mse_minimizes_the_estimated_quantization_error() {
    let d = heavy_tailed();
    let sqnr = |m| {
        let (cx, x) = calibrate_cx(m, &d);
        let r = cx.ranges[&x];
        cx.value_stats[&x].sqnr_db((r.max - r.min) / 255.0)
    };
    // mse minimizes exactly this estimate over ranges that include minmax's.
    let minmax = sqnr(CalibrationMethod::MinMax);
    let mse = sqnr(CalibrationMethod::Mse);
    assert!(mse > minmax, "mse {mse:.2} dB vs minmax {minmax:.2} dB");
    // Percentile 99 clips far too much for 8 bits: its clipping error dominates.
    let p99 = sqnr(CalibrationMethod::Percentile(99.0));
    assert!(p99 < mse, "p99 {p99:.2} dB vs mse {mse:.2} dB");
}

fn pipeline_error(cx: &mut PassContext, g: &mut Graph) -> String {
    Pipeline::default()
        .run(g, cx, None)
        .unwrap_err()
        .to_string()
}

#[test]
fn errors_are_clear() {
    let (g, _) = identity_graph();
    let quant = || Some(QuantConfig::default());
    let good = |v: f32| vec![tensor(&[1, N], vec![v; N])];

    let mut cx = PassContext {
        quant: quant(),
        ..Default::default()
    };
    let e = pipeline_error(&mut cx, &mut g.clone());
    assert!(
        e.contains("calibrate") && e.contains("calibration data"),
        "{e}"
    );

    let mut bad = good(1.0);
    let Some(v) = bad[0].as_f32().map(|v| {
        let mut v = v.to_vec();
        v[3] = f32::NAN;
        v
    }) else {
        unreachable!()
    };
    bad[0] = tensor(&[1, N], v);
    let mut cx = PassContext {
        quant: quant(),
        calibration: vec![good(0.5), bad],
        ..Default::default()
    };
    let e = pipeline_error(&mut cx, &mut g.clone());
    assert!(
        e.contains("sample #1") && e.contains("'x'") && e.contains("not finite"),
        "{e}"
    );

    let mut cx = PassContext {
        quant: quant(),
        calibration: vec![vec![]],
        ..Default::default()
    };
    let e = pipeline_error(&mut cx, &mut g.clone());
    assert!(e.contains("sample #0 has 0 tensors"), "{e}");

    let mut cx = PassContext {
        quant: quant(),
        calibration: vec![vec![tensor(&[2, 2], vec![0.0; 4])]],
        ..Default::default()
    };
    let e = pipeline_error(&mut cx, &mut g.clone());
    assert!(
        e.contains("sample #0") && e.contains("expected f32[1,4096]"),
        "{e}"
    );

    let cfg = QuantConfig {
        method: CalibrationMethod::Percentile(30.0),
        ..Default::default()
    };
    let mut cx = PassContext {
        quant: Some(cfg),
        calibration: vec![good(1.0)],
        ..Default::default()
    };
    let e = pipeline_error(&mut cx, &mut g.clone());
    assert!(e.contains("percentile 30"), "{e}");

    let cfg = QuantConfig {
        keep_float: vec!["nope".into()],
        ..Default::default()
    };
    let mut cx = PassContext {
        quant: Some(cfg),
        calibration: vec![good(1.0)],
        ..Default::default()
    };
    let e = pipeline_error(&mut cx, &mut g.clone());
    assert!(e.contains("fuse-modules") && e.contains("'nope'"), "{e}");

    let mut cx = PassContext {
        quant: quant(),
        ..Default::default()
    };
    let e = qcc_passes::insert_qdq::run(&mut g.clone(), &mut cx)
        .unwrap_err()
        .to_string();
    assert!(e.contains("run calibrate first"), "{e}");
}

#[test]
fn non_finite_intermediates_are_counted_not_fatal() {
    let mut g = Graph::new("log");
    let x = input(&mut g, "x", &[1, 4]);
    let y = unary(&mut g, qcc_ir::UnaryOp::Log, "log", x);
    g.add_output("y", y);
    let cal = vec![vec![tensor(&[1, 4], vec![0.0, 1.0, 2.0, 3.0])]];
    let mut cx = PassContext {
        quant: Some(QuantConfig::default()),
        calibration: cal,
        ..Default::default()
    };
    Pipeline::default()
        .run(&mut g, &mut cx, Some("calibrate"))
        .unwrap();
    let s = &cx.value_stats[&y];
    assert_eq!((s.non_finite, s.count), (1, 3));
    assert_eq!(
        cx.ranges[&y],
        Range {
            min: 0.0,
            max: 3f32.ln()
        }
    );
}
