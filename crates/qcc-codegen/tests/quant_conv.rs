//! QConv run natively and compared bit for bit with a naive reference built
//! on `qcc_ir::quant` (and with the interpreter): both schedules (packed dot
//! products, rows), N-d, groups/depthwise, strides, dilations, asymmetric
//! pads, long rows (chunked scratch), u8 inputs, per-tensor and per-channel
//! epilogues, pow2 and fixed-point rescales, saturation, worst-case inputs,
//! and the compile-time accumulator bound.

mod common;
mod quant_common;
use common::*;
use qcc_codegen::{compile, CodegenError};
use qcc_ir::{ConvAttrs, DType, Epilogue, Op, Rescale, Tensor};
use quant_common::*;

struct Case {
    x: Vec<usize>,
    w: Vec<usize>,
    attrs: ConvAttrs,
    xdt: DType,
    to: DType,
    zx: i32,
    /// Per-channel rescale (else per tensor).
    per_channel: bool,
    pow2: bool,
}

fn case(x: &[usize], w: &[usize], attrs: ConvAttrs) -> Case {
    Case {
        x: x.to_vec(),
        w: w.to_vec(),
        attrs,
        xdt: DType::I8,
        to: DType::I8,
        zx: -3,
        per_channel: true,
        pow2: false,
    }
}

/// Weights in [-127, 127], biases of a few thousand.
fn weights(shape: &[usize], seed: u64) -> (Tensor, Tensor) {
    let n: usize = shape.iter().product();
    let w = ints(DType::I8, shape, &rand_ints(n, seed, -127, 127));
    let b = ints(
        DType::I32,
        &[shape[0]],
        &rand_ints(shape[0], seed + 1, -5000, 5000),
    );
    (w, b)
}

/// An epilogue mapping accumulators of about `±span` onto the output range
/// (with some saturation at both ends).
fn conv_epi(c: &Case, m: usize, span: f64) -> Epilogue {
    let factor = 100.0 / span;
    let r = match (c.per_channel, c.pow2) {
        (true, true) => per_channel_pow2(m, (-factor.log2()).round().max(0.0) as u32),
        // Odd channel counts take the float form (ONNX Runtime's requantization).
        (true, false) if m % 2 == 1 => per_channel_float(m, factor),
        (true, false) => per_channel_fixed(m, factor),
        (false, true) => Rescale::pow2(factor).unwrap(),
        (false, false) => Rescale::fixed_point(factor).unwrap(),
    };
    let (lo, hi) = range(c.to);
    epi(r, (lo + hi) / 2 + 7, c.to)
}

fn run_case(c: &Case, seed: u64) {
    let x = rand_t8(c.xdt, &c.x, seed);
    let (w, b) = weights(&c.w, seed + 10);
    let k: usize = c.w[1..].iter().product();
    // Typical |acc|: sqrt(k) * 64 * 73.
    let e = conv_epi(c, c.w[0], (k as f64).sqrt() * 64.0 * 73.0);
    let op = Op::QConv {
        conv: c.attrs.clone(),
        x_zero_point: c.zx,
        epi: e,
        to: c.to,
    };
    let (g, inputs) = op_graph(
        op.clone(),
        vec![
            Arg::In(x.clone()),
            Arg::Const(w.clone()),
            Arg::Const(b.clone()),
        ],
    );
    let want = expect(&g, &ref_qconv(&op, &x, &w, &b, &out_ty(&g).shape));
    let got = check_exact(
        &g,
        &inputs,
        &want,
        &format!("qconv x{:?} w{:?} {:?}", c.x, c.w, c.attrs),
    );
    // The data must exercise the clamp at both ends and values in between.
    let v = vals(&got);
    let (lo, hi) = range(c.to);
    assert!(v.contains(&(lo as i64)), "no low saturation");
    assert!(v.contains(&(hi as i64)), "no high saturation");
    assert!(
        v.iter().any(|&q| q > lo as i64 && q < hi as i64),
        "all saturated"
    );
}

#[test]
fn dot_schedule_2d_padded() {
    // K = 8*9 = 72, 10 channels per group: packed dot products.
    run_case(
        &case(&[2, 8, 7, 9], &[10, 8, 3, 3], conv_attrs(2, 1, 1, 1, 1)),
        1,
    );
    let mut c = case(&[1, 6, 9, 6], &[11, 6, 3, 2], conv_attrs(2, 2, 1, 1, 1));
    c.attrs.pads = vec![2, 0, 1, 1];
    c.pow2 = true;
    run_case(&c, 2);
}

#[test]
fn dot_schedule_grouped_u8_dilated() {
    let mut c = case(&[1, 12, 8, 8], &[18, 6, 3, 3], conv_attrs(2, 1, 2, 2, 2));
    (c.xdt, c.zx, c.to) = (DType::U8, 131, DType::U8);
    run_case(&c, 3);
    c.per_channel = false;
    run_case(&c, 4);
}

#[test]
fn dot_schedule_pointwise() {
    // 1x1, flattened to one row; K = 40.
    let mut c = case(&[2, 40, 5, 7], &[12, 40, 1, 1], conv_attrs(2, 1, 0, 1, 1));
    c.per_channel = false;
    c.pow2 = true;
    run_case(&c, 5);
}

#[test]
fn rows_schedule_depthwise_strided() {
    // Depthwise 3x3, stride 2, asymmetric pads.
    let mut c = case(&[1, 7, 11, 10], &[7, 1, 3, 3], conv_attrs(2, 2, 1, 1, 7));
    c.attrs.pads = vec![1, 0, 2, 1];
    run_case(&c, 6);
    // Channel multiplier 2, dilation 2, u8.
    let mut c = case(&[2, 3, 9, 9], &[6, 1, 3, 3], conv_attrs(2, 1, 2, 2, 3));
    (c.xdt, c.zx, c.pow2) = (DType::U8, 0, true);
    run_case(&c, 7);
}

#[test]
fn rows_schedule_few_channels_1d_and_3d() {
    // K = 3*3*3 = 27 < 32: rows; 5 output channels (one block of 4 + 1).
    run_case(
        &case(&[1, 3, 10, 9], &[5, 3, 3, 3], conv_attrs(2, 1, 1, 1, 1)),
        8,
    );
    // 1-D, dilation 3, stride 2.
    let mut c = case(&[2, 4, 29], &[6, 4, 4], conv_attrs(1, 2, 2, 3, 1));
    c.attrs.pads = vec![3, 1];
    run_case(&c, 9);
    // 3-D.
    let mut c = case(
        &[1, 2, 5, 6, 7],
        &[3, 2, 2, 3, 3],
        conv_attrs(3, 1, 1, 1, 1),
    );
    c.to = DType::U8;
    run_case(&c, 10);
}

#[test]
fn rows_schedule_long_rows_are_chunked() {
    // A 1-D row of 700 outputs (3 chunks) with padding at both ends.
    let mut c = case(&[1, 2, 700], &[3, 2, 5], conv_attrs(1, 1, 2, 1, 1));
    c.pow2 = true;
    run_case(&c, 11);
    // Pointwise over 20x20 = 400 positions with 3 input channels.
    run_case(
        &case(&[1, 3, 20, 20], &[4, 3, 1, 1], conv_attrs(2, 1, 0, 1, 1)),
        12,
    );
    // Strided long row: 601 -> 300 outputs.
    let c = case(&[1, 1, 601], &[2, 1, 3], conv_attrs(1, 2, 0, 1, 1));
    run_case(&c, 13);
}

#[test]
fn rows_schedule_out_of_range_zero_point_and_large_patch() {
    // A zero point outside i8 (the padding value is not an i8): rows.
    let mut c = case(&[1, 4, 6, 6], &[16, 4, 3, 3], conv_attrs(2, 1, 1, 1, 1));
    c.zx = 300;
    run_case(&c, 14);
    // K = 520 * 9 = 4680 > 4096 bytes of patch: rows.
    let c = case(&[1, 520, 3, 4], &[8, 520, 3, 3], conv_attrs(2, 1, 1, 1, 1));
    run_case(&c, 15);
}

/// All inputs at one end of the range, all weights ±127: the largest
/// accumulators the bound allows for this size, exact in i32.
#[test]
fn worst_case_inputs() {
    for (xv, wv, xdt, zx) in [
        (-128i64, 127i64, DType::I8, 127),
        (127, -127, DType::I8, -128),
        (255, 127, DType::U8, 0),
        (0, -127, DType::U8, 255),
    ] {
        for (xs, ws, attrs) in [
            (
                vec![1, 16, 5, 5],
                vec![9, 16, 3, 3],
                conv_attrs(2, 1, 1, 1, 1),
            ),
            (
                vec![1, 6, 5, 5],
                vec![6, 1, 3, 3],
                conv_attrs(2, 1, 1, 1, 6),
            ),
        ] {
            let x = ints(xdt, &xs, &vec![xv; xs.iter().product()]);
            let nw: usize = ws.iter().product();
            let w = ints(DType::I8, &ws, &vec![wv; nw]);
            let b = ints(DType::I32, &[ws[0]], &vec![-1000; ws[0]]);
            let k = (nw / ws[0]) as f64;
            let e = epi(
                Rescale::fixed_point(100.0 / (k * 255.0 * 127.0)).unwrap(),
                0,
                DType::I8,
            );
            let op = Op::QConv {
                conv: attrs,
                x_zero_point: zx,
                epi: e,
                to: DType::I8,
            };
            let (g, inputs) = op_graph(
                op.clone(),
                vec![
                    Arg::In(x.clone()),
                    Arg::Const(w.clone()),
                    Arg::Const(b.clone()),
                ],
            );
            let want = expect(&g, &ref_qconv(&op, &x, &w, &b, &out_ty(&g).shape));
            check_exact(&g, &inputs, &want, &format!("worst case x={xv} w={wv}"));
        }
    }
}

fn expect_overflow_error(op: Op, x: Tensor, w: Tensor, b: Tensor) {
    let (g, _) = op_graph(op, vec![Arg::In(x), Arg::Const(w), Arg::Const(b)]);
    match compile(&g, &host("m")) {
        Err(CodegenError::Unsupported { node, msg, .. }) => {
            assert_eq!(node, "op");
            assert!(msg.contains("overflow"), "{msg}");
        }
        other => panic!("expected Unsupported, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn accumulators_that_could_overflow_are_rejected() {
    let e = epi(Rescale::uniform(1, 20), 0, DType::I8);
    let op = Op::QConv {
        conv: conv_attrs(2, 1, 0, 1, 1),
        x_zero_point: 0,
        epi: e,
        to: DType::I8,
    };
    let x = rand_t8(DType::I8, &[1, 2, 3, 3], 1);
    // A bias near i32::MAX: 128 * 1 + bias > 2^31 - 1.
    let w = ints(DType::I8, &[2, 2, 1, 1], &[1, 0, 0, 0]);
    let b = ints(DType::I32, &[2], &[i32::MAX as i64 - 100, 0]);
    expect_overflow_error(op.clone(), x, w, b);
    // Weights: 1024 channels x 9 taps x 127 x 255 (zero point -128) > 2^31.
    let op = Op::QConv {
        conv: conv_attrs(2, 1, 0, 1, 1),
        x_zero_point: -128,
        epi: epi(Rescale::uniform(1, 24), 0, DType::I8),
        to: DType::I8,
    };
    let x = rand_t8(DType::I8, &[1, 8200, 3, 3], 2);
    let w = ints(DType::I8, &[1, 8200, 3, 3], &vec![127; 8200 * 9]);
    let b = ints(DType::I32, &[1], &[0]);
    expect_overflow_error(op, x, w, b);
}
