//! Shared by the `quant_*` tests: a naive Rust reference of every integer
//! op built directly on `qcc_ir::quant` (the definition), random 8-bit data,
//! graph builders, and bit-exact comparisons against the native code and,
//! once it implements the integer ops, the interpreter.
#![allow(dead_code)]

use crate::common::{run_native, tensor};
use qcc_ir::quant::{dequantize, quantize};
use qcc_ir::{
    broadcast_shapes, broadcast_strides, strides_of, ConvAttrs, DType, Epilogue, Graph, Op,
    PoolAttrs, QParams, Rescale, Tensor, TensorData, TensorType, ValueId,
};

/// Deterministic integers in `[lo, hi]` (xorshift).
pub fn rand_ints(n: usize, seed: u64, lo: i64, hi: i64) -> Vec<i64> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let span = (hi - lo + 1) as u64;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            lo + ((s >> 11) % span) as i64
        })
        .collect()
}

/// An integer tensor of `dt` (I8, U8, I32 or I64) from values that fit.
pub fn ints(dt: DType, shape: &[usize], v: &[i64]) -> Tensor {
    let ok = |lo: i64, hi: i64| assert!(v.iter().all(|x| (lo..=hi).contains(x)), "{dt} range");
    let data = match dt {
        DType::I8 => {
            ok(-128, 127);
            TensorData::I8(v.iter().map(|&x| x as i8).collect())
        }
        DType::U8 => {
            ok(0, 255);
            TensorData::U8(v.iter().map(|&x| x as u8).collect())
        }
        DType::I32 => {
            ok(i32::MIN as i64, i32::MAX as i64);
            TensorData::I32(v.iter().map(|&x| x as i32).collect())
        }
        DType::I64 => TensorData::I64(v.to_vec()),
        _ => panic!("not an integer type: {dt}"),
    };
    tensor(shape, data)
}

/// Random values covering the whole range of an 8-bit type.
pub fn rand_t8(dt: DType, shape: &[usize], seed: u64) -> Tensor {
    let (lo, hi) = range(dt);
    let n = shape.iter().product();
    ints(dt, shape, &rand_ints(n, seed, lo as i64, hi as i64))
}

pub fn range(dt: DType) -> (i32, i32) {
    qcc_ir::infer::int8_range(dt).expect("8-bit type")
}

pub fn vals(t: &Tensor) -> Vec<i64> {
    t.to_i64_vec().expect("integer tensor")
}

/// An epilogue over the whole range of `to` (no fused activation).
pub fn epi(rescale: Rescale, zp: i32, to: DType) -> Epilogue {
    let (min, max) = range(to);
    Epilogue {
        rescale,
        zero_point: zp,
        min,
        max,
    }
}

/// Per-channel fixed-point rescales for factors spread around `base`.
pub fn per_channel_fixed(n: usize, base: f64) -> Rescale {
    let parts: Vec<Rescale> = (0..n)
        .map(|c| Rescale::fixed_point(base * (0.55 + 0.9 * c as f64 / n.max(1) as f64)).unwrap())
        .collect();
    Rescale::per_channel(&parts)
}

/// Per-channel float rescales around `base`: every other channel a power of
/// two times 1, 1.5 or 1.25 (so that `acc · s` often ends on a half: ties
/// round to even), the others arbitrary f32 factors.
pub fn per_channel_float(n: usize, base: f64) -> Rescale {
    let p2 = 2f64.powi(base.log2().round() as i32);
    let scales: Vec<f32> = (0..n)
        .map(|c| match c % 4 {
            0 => p2 as f32,
            1 => (base * (0.55 + 0.9 * c as f64 / n.max(1) as f64)) as f32,
            2 => (p2 * 1.5) as f32,
            _ => (p2 * 1.25 * (1.0 + c as f64 * 1e-3)) as f32,
        })
        .collect();
    Rescale::float(&scales).expect("valid float factors")
}

/// Per-channel power-of-two rescales (shifts `base`, `base+1`, …).
pub fn per_channel_pow2(n: usize, base: u32) -> Rescale {
    Rescale {
        multiplier: vec![1; n],
        shift: (0..n).map(|c| base + (c % 3) as u32).collect(),
        float: None,
    }
}

fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut v = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        v[d] = i % shape[d];
        i /= shape[d];
    }
    v
}

/// An accumulator the reference accepts (`Rescale::apply` is exact below 2^31).
fn acc_ok(acc: i64) -> i64 {
    assert!(
        acc.abs() < 1 << 31,
        "reference accumulator {acc} leaves i32"
    );
    acc
}

// ---------------------------------------------------------------- reference

pub fn ref_quantize(x: &[f32], q: QParams, to: DType) -> Vec<i64> {
    let (lo, hi) = range(to);
    x.iter().map(|&v| quantize(v, q, lo, hi) as i64).collect()
}

pub fn ref_dequantize(x: &[i64], q: QParams) -> Vec<f32> {
    x.iter().map(|&v| dequantize(v as i32, q)).collect()
}

pub fn ref_requantize(x: &[i64], zp: i32, e: &Epilogue) -> Vec<i64> {
    x.iter()
        .map(|&v| e.apply(v - zp as i64, 0) as i64)
        .collect()
}

/// Elementwise `f(a, b)` with numpy broadcasting.
pub fn ref_broadcast(
    a: &[i64],
    sa: &[usize],
    b: &[i64],
    sb: &[usize],
    f: impl Fn(i64, i64) -> i64,
) -> Vec<i64> {
    let shape = broadcast_shapes(sa, sb).expect("broadcast");
    let (ta, tb) = (broadcast_strides(sa, &shape), broadcast_strides(sb, &shape));
    (0..shape.iter().product::<usize>())
        .map(|i| {
            let ix = unravel(i, &shape);
            let ia: usize = ix.iter().zip(&ta).map(|(a, b)| a * b).sum();
            let ib: usize = ix.iter().zip(&tb).map(|(a, b)| a * b).sum();
            f(a[ia], b[ib])
        })
        .collect()
}

/// The integer convolution of `op` (a QConv), written from its definition.
pub fn ref_qconv(op: &Op, x: &Tensor, w: &Tensor, bias: &Tensor, os: &[usize]) -> Vec<i64> {
    let Op::QConv {
        conv,
        x_zero_point,
        epi,
        ..
    } = op
    else {
        panic!("not a qconv")
    };
    let (xs, ws) = (x.shape(), w.shape());
    let (xv, wv, bv) = (vals(x), vals(w), vals(bias));
    let r = xs.len() - 2;
    let (cg, mg) = (xs[1] / conv.group, os[1] / conv.group);
    let kn: usize = ws[2..].iter().product();
    let (xst, wst) = (strides_of(xs), strides_of(ws));
    (0..os.iter().product::<usize>())
        .map(|i| {
            let o = unravel(i, os);
            let (n, m) = (o[0], o[1]);
            let g = m / mg;
            let mut acc = bv[m];
            for c in 0..cg {
                for kf in 0..kn {
                    let k = unravel(kf, &ws[2..]);
                    let mut xi = n * xst[0] + (g * cg + c) * xst[1];
                    let mut inside = true;
                    for d in 0..r {
                        let pos = (o[2 + d] * conv.strides[d] + k[d] * conv.dilations[d]) as i64
                            - conv.pads[d] as i64;
                        inside &= (0..xs[2 + d] as i64).contains(&pos);
                        xi += pos.max(0) as usize * xst[2 + d];
                    }
                    if inside {
                        let wi = m * wst[0] + c * wst[1] + kf;
                        acc += (xv[xi] - *x_zero_point as i64) * wv[wi];
                    }
                }
            }
            epi.apply(acc_ok(acc), m) as i64
        })
        .collect()
}

pub fn ref_qgemm(op: &Op, a: &Tensor, b: &Tensor, bias: &Tensor) -> Vec<i64> {
    let Op::QGemm {
        a_zero_point, epi, ..
    } = op
    else {
        panic!("not a qgemm")
    };
    let (m, k, n) = (a.shape()[0], a.shape()[1], b.shape()[1]);
    let (av, bv, cv) = (vals(a), vals(b), vals(bias));
    let mut out = vec![];
    for i in 0..m {
        for j in 0..n {
            let mut acc = cv[j];
            for kk in 0..k {
                acc += (av[i * k + kk] - *a_zero_point as i64) * bv[kk * n + j];
            }
            out.push(epi.apply(acc_ok(acc), j) as i64);
        }
    }
    out
}

pub fn ref_qbinary(op: &Op, a: &Tensor, b: &Tensor) -> Vec<i64> {
    let (av, bv) = (vals(a), vals(b));
    match op {
        Op::QAdd {
            a_zero_point: za,
            a_multiplier: ma,
            b_zero_point: zb,
            b_multiplier: mb,
            epi,
            ..
        } => ref_broadcast(&av, a.shape(), &bv, b.shape(), |x, y| {
            let acc = (x - *za as i64) * *ma as i64 + (y - *zb as i64) * *mb as i64;
            epi.apply(acc, 0) as i64
        }),
        Op::QMul {
            a_zero_point: za,
            b_zero_point: zb,
            epi,
            ..
        } => ref_broadcast(&av, a.shape(), &bv, b.shape(), |x, y| {
            epi.apply((x - *za as i64) * (y - *zb as i64), 0) as i64
        }),
        _ => panic!("not a quantized binary op"),
    }
}

/// MaxPool (`max`) or QAvgPool over the window cells inside the input.
pub fn ref_pool(
    p: &PoolAttrs,
    x: &Tensor,
    os: &[usize],
    avg: Option<(i32, &Epilogue)>,
) -> Vec<i64> {
    let xs = x.shape();
    let xv = vals(x);
    let r = xs.len() - 2;
    let nk: usize = p.kernel.iter().product();
    let plane: usize = xs[2..].iter().product();
    (0..os.iter().product::<usize>())
        .map(|i| {
            let o = unravel(i, os);
            let base = (o[0] * xs[1] + o[1]) * plane;
            let (mut best, mut sum) = (range(x.dtype()).0 as i64, 0i64);
            for kf in 0..nk {
                let k = unravel(kf, &p.kernel);
                let (mut off, mut inside) = (0usize, true);
                for d in 0..r {
                    let pos =
                        (o[2 + d] * p.strides[d] + k[d] * p.dilations[d]) as i64 - p.pads[d] as i64;
                    let n = xs[2 + d] as i64;
                    inside &= (0..n).contains(&pos);
                    off = off * xs[2 + d] + pos.clamp(0, n - 1) as usize;
                }
                if inside {
                    let v = xv[base + off];
                    best = best.max(v);
                    if let Some((zp, _)) = avg {
                        sum += v - zp as i64;
                    }
                }
            }
            match avg {
                Some((_, e)) => e.apply(acc_ok(sum), 0) as i64,
                None => best,
            }
        })
        .collect()
}

pub fn ref_qmean(x: &Tensor, axes: &[usize], zp: i32, e: &Epilogue) -> Vec<i64> {
    let xs = x.shape();
    let xv = vals(x);
    let kept: Vec<usize> = (0..xs.len()).filter(|d| !axes.contains(d)).collect();
    let kshape: Vec<usize> = kept.iter().map(|&d| xs[d]).collect();
    let mut sums = vec![0i64; kshape.iter().product()];
    for (i, &v) in xv.iter().enumerate() {
        let ix = unravel(i, xs);
        let k: Vec<usize> = kept.iter().map(|&d| ix[d]).collect();
        let o: usize = k.iter().zip(strides_of(&kshape)).map(|(a, b)| a * b).sum();
        sums[o] += v - zp as i64;
    }
    sums.iter().map(|&s| e.apply(acc_ok(s), 0) as i64).collect()
}

pub fn ref_lut(x: &[i64], xdt: DType, table: &[i32]) -> Vec<i64> {
    let lo = range(xdt).0 as i64;
    x.iter().map(|&v| table[(v - lo) as usize] as i64).collect()
}

// ---------------------------------------------------------------- graphs

/// An operand of a test graph: a run-time input or a constant.
pub enum Arg {
    In(Tensor),
    Const(Tensor),
}

/// A graph computing `op` on `args`; returns it with the run-time inputs.
pub fn op_graph(op: Op, args: Vec<Arg>) -> (Graph, Vec<Tensor>) {
    let mut g = Graph::new("q");
    let mut ids = vec![];
    let mut inputs = vec![];
    for (i, a) in args.into_iter().enumerate() {
        let id = match a {
            Arg::In(t) => {
                let id = g.add_input(format!("x{i}"), t.ty());
                inputs.push(t);
                id
            }
            Arg::Const(t) => g.add_const(format!("c{i}"), t),
        };
        ids.push(ValueId::of(id));
    }
    let n = g
        .add_node(op, "op", ids)
        .unwrap_or_else(|e| panic!("add node: {e}"));
    g.add_output("y", ValueId::of(n));
    (g, inputs)
}

/// The output type of the graph's first output.
pub fn out_ty(g: &Graph) -> TensorType {
    g.value_type(g.outputs[0].value).clone()
}

/// The interpreter's outputs, or `None` (with a note) while it does not
/// implement an op of `g` yet.
pub fn interp(g: &Graph, inputs: &[Tensor]) -> Option<Vec<Tensor>> {
    match qcc_interp::run(g, inputs) {
        Ok(v) => Some(v),
        Err(e) if e.to_string().contains("not implemented") => {
            eprintln!("interpreter comparison skipped: {e}");
            None
        }
        Err(e) => panic!("interpreter: {e}"),
    }
}

/// Asserts bit-identical tensors (floats compared by their bits).
pub fn assert_same(got: &Tensor, want: &Tensor, what: &str) {
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    assert_eq!(got.dtype(), want.dtype(), "{what}: dtype");
    match (got.data(), want.data()) {
        (TensorData::F32(a), TensorData::F32(b)) => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                assert_eq!(x.to_bits(), y.to_bits(), "{what}: element {i}: {x} vs {y}");
            }
        }
        _ => {
            let (a, b) = (vals(got), vals(want));
            for (i, (x, y)) in a.iter().zip(&b).enumerate() {
                assert_eq!(x, y, "{what}: element {i} of {}", a.len());
            }
        }
    }
}

/// Runs `g` natively and checks its single output against `want` (and the
/// interpreter's, when it runs), bit for bit. Returns the native output.
pub fn check_exact(g: &Graph, inputs: &[Tensor], want: &Tensor, what: &str) -> Tensor {
    let got = run_native(g, inputs).remove(0);
    assert_same(&got, want, &format!("{what}: native vs reference"));
    if let Some(i) = interp(g, inputs) {
        assert_same(&i[0], want, &format!("{what}: interpreter vs reference"));
    }
    got
}

/// `out_ty(g)` filled with `v`.
pub fn expect(g: &Graph, v: &[i64]) -> Tensor {
    let t = out_ty(g);
    ints(t.dtype, &t.shape, v)
}

/// A conv attribute set with the same value on every spatial dim.
pub fn conv_attrs(r: usize, stride: usize, pad: usize, dil: usize, group: usize) -> ConvAttrs {
    ConvAttrs {
        strides: vec![stride; r],
        pads: vec![pad; 2 * r],
        dilations: vec![dil; r],
        group,
        output_padding: vec![0; r],
    }
}
