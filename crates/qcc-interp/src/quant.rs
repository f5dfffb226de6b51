//! Integer (quantized) ops with the exact arithmetic of `qcc_ir::quant`:
//! Quantize, Dequantize, Requantize, QGemm, QAdd, QMul, QMean and Lut here;
//! the sliding-window ones (QConv, QAvgPool) in [`window_ops`].
//!
//! Accumulators are i64. Every accumulator must fit in i32 (the backend
//! accumulates in i32, and the compiler guarantees the bound), so one that
//! does not is reported as an error rather than rescaled. Only the final sum
//! is checked: i32 addition wraps, so partial sums that leave the range and
//! come back give the same result in either arithmetic.

mod window_ops;

pub use window_ops::{qavg_pool, qconv};

use crate::elem::{elems, f32s};
use crate::elementwise::zip_broadcast;
use crate::index::Offsets;
use qcc_ir::infer::int8_range;
use qcc_ir::quant::{dequantize as deq, quantize as q8, MAX_SHIFT};
use qcc_ir::{DType, Epilogue, QParams, Tensor, TensorData};

/// The elements of an 8-bit tensor minus `zero_point`, widened to i64.
fn centered(t: &Tensor, zero_point: i32, what: &str) -> Result<Vec<i64>, String> {
    let zp = zero_point as i64;
    match t.data() {
        TensorData::I8(v) => Ok(v.iter().map(|&x| x as i64 - zp).collect()),
        TensorData::U8(v) => Ok(v.iter().map(|&x| x as i64 - zp).collect()),
        _ => Err(format!("{what} must be i8 or u8, got {}", t.ty())),
    }
}

/// Largest `|x - zero_point|` an 8-bit value can give.
fn max_centered(zero_point: i32) -> i64 {
    255 + (zero_point as i64).abs()
}

/// Errors unless a sum of `terms` products, each at most `max_term` in
/// magnitude, plus an i32 bias, is exactly representable in i64.
fn check_i64_sum(terms: usize, max_term: i64) -> Result<(), String> {
    let bound = terms as i128 * max_term as i128 + (1i128 << 31);
    if bound > i64::MAX as i128 {
        return Err(format!(
            "{terms} terms per accumulator are too many for exact accumulation"
        ));
    }
    Ok(())
}

/// `epi.apply(acc, channel)`, after checking that `acc` fits in i32 and that
/// the epilogue is well formed (so that applying it cannot panic).
fn finish(epi: &Epilogue, acc: i64, channel: usize) -> Result<i32, String> {
    if i32::try_from(acc).is_err() {
        return Err(format!(
            "accumulator {acc} (channel {channel}) leaves the i32 range"
        ));
    }
    let r = &epi.rescale;
    let n = r.multiplier.len();
    if n == 0 || r.shift.len() != n || (n > 1 && channel >= n) {
        return Err(format!(
            "epilogue has {n} multipliers and {} shifts; channel {channel} needs one",
            r.shift.len()
        ));
    }
    // (Only the shift this channel uses: checking them all made this
    // O(channels) per element.)
    if r.shift[if n == 1 { 0 } else { channel }] > MAX_SHIFT {
        return Err(format!("epilogue shifts must be at most {MAX_SHIFT}"));
    }
    Ok(epi.apply(acc, channel))
}

/// Stores i32 results as `to` (I8 or U8); a value outside `to`'s range is an error.
fn pack(to: DType, v: Vec<i32>) -> Result<TensorData, String> {
    fn conv<T: TryFrom<i32>>(v: Vec<i32>, to: DType) -> Result<Vec<T>, String> {
        v.into_iter()
            .map(|x| T::try_from(x).map_err(|_| format!("internal: {x} does not fit {to}")))
            .collect()
    }
    match to {
        DType::I8 => Ok(TensorData::I8(conv(v, to)?)),
        DType::U8 => Ok(TensorData::U8(conv(v, to)?)),
        _ => Err(format!("output type must be i8 or u8, got {to}")),
    }
}

/// Quantize: f32 → `to` with `quant::quantize`, saturating to `to`'s range.
pub fn quantize(x: &Tensor, q: QParams, to: DType) -> Result<TensorData, String> {
    let (lo, hi) = int8_range(to).ok_or_else(|| format!("cannot quantize to {to}"))?;
    let v = f32s(x, "input")?;
    pack(to, v.iter().map(|&a| q8(a, q, lo, hi)).collect())
}

/// Dequantize: I8/U8/I32 → f32 with `quant::dequantize`.
pub fn dequantize(x: &Tensor, q: QParams) -> Result<TensorData, String> {
    let v: Vec<i32> = match x.data() {
        TensorData::I8(v) => v.iter().map(|&a| a as i32).collect(),
        TensorData::U8(v) => v.iter().map(|&a| a as i32).collect(),
        TensorData::I32(v) => v.clone(),
        _ => return Err(format!("input must be i8, u8 or i32, got {}", x.ty())),
    };
    let mut out = Vec::with_capacity(v.len());
    for a in v {
        if a.checked_sub(q.zero_point).is_none() {
            return Err(format!("{a} - zero point {} overflows i32", q.zero_point));
        }
        out.push(deq(a, q));
    }
    Ok(TensorData::F32(out))
}

/// Requantize: `epi.apply(x - in_zero_point, 0)` elementwise.
pub fn requantize(
    x: &Tensor,
    in_zero_point: i32,
    epi: &Epilogue,
    to: DType,
) -> Result<TensorData, String> {
    let out = centered(x, in_zero_point, "input")?
        .into_iter()
        .map(|a| finish(epi, a, 0))
        .collect::<Result<Vec<i32>, String>>()?;
    pack(to, out)
}

/// ONNX MatMulInteger: `Σ_k (a - a_zp)·(b - b_zp[n])` in i32 (B 2-D or
/// batched like A; `out_shape` is `[…, M, N]`).
pub fn matmul_integer(ins: &[&Tensor], out_shape: &[usize]) -> Result<TensorData, String> {
    let [a, b, az, bz] = ins else {
        return Err(format!("needs 4 inputs, got {}", ins.len()));
    };
    let (azv, bzv) = (ints(az, "a_zero_point")?, ints(bz, "b_zero_point")?);
    if azv.len() != 1 || bzv.is_empty() {
        return Err("zero points do not fit".into());
    }
    Ok(TensorData::I32(integer_matmul(
        a, b, azv[0], &bzv, out_shape,
    )?))
}

/// QMatMul: MatMulInteger's sums of two run-time i8 operands, then
/// `epi.apply(acc, 0)` as `to`.
pub fn qmatmul(
    a: &Tensor,
    b: &Tensor,
    (a_zp, b_zp): (i32, i32),
    epi: &Epilogue,
    to: DType,
    out_shape: &[usize],
) -> Result<TensorData, String> {
    let acc = integer_matmul(a, b, a_zp as i64, &[b_zp as i64], out_shape)?;
    let v = acc
        .into_iter()
        .map(|s| finish(epi, s as i64, 0))
        .collect::<Result<Vec<i32>, String>>()?;
    pack(to, v)
}

fn ints(t: &Tensor, what: &str) -> Result<Vec<i64>, String> {
    t.to_i64_vec()
        .ok_or(format!("{what} is not an integer tensor"))
}

/// `Σ_k (a - a_zp)·(b - b_zp[n])` in i32 for A `[…, M, K]` and B `[K, N]`
/// or `[…, K, N]` (b_zp: one, or one per column); an overflow is an error.
fn integer_matmul(
    a: &Tensor,
    b: &Tensor,
    azp: i64,
    bzv: &[i64],
    out_shape: &[usize],
) -> Result<Vec<i32>, String> {
    let (av, bv) = (ints(a, "A")?, ints(b, "B")?);
    let r = out_shape.len();
    if r < 2 || a.shape().len() != r || b.shape().len() < 2 || bzv.is_empty() {
        return Err("operand shapes do not fit".into());
    }
    let (m, n) = (out_shape[r - 2], out_shape[r - 1]);
    let k = a.shape()[r - 1];
    let batches: usize = out_shape[..r - 2].iter().product();
    let b_batched = b.shape().len() > 2;
    let mut out = vec![0i32; batches * m * n];
    for t in 0..batches {
        let ab = &av[t * m * k..(t + 1) * m * k];
        let bb = if b_batched {
            &bv[t * k * n..(t + 1) * k * n]
        } else {
            &bv[..k * n]
        };
        for i in 0..m {
            for j in 0..n {
                let zb = bzv[j.min(bzv.len() - 1)];
                let acc: i64 = (0..k)
                    .map(|kk| (ab[i * k + kk] - azp) * (bb[kk * n + j] - zb))
                    .sum();
                out[(t * m + i) * n + j] =
                    i32::try_from(acc).map_err(|_| format!("accumulator {acc} overflows i32"))?;
            }
        }
    }
    Ok(out)
}

/// QSoftmax: `qcc_ir::quant::softmax_row` on each row of the last axis.
pub fn qsoftmax(
    x: &Tensor,
    table: &[i32],
    scale_inv: i32,
    zero_point: i32,
    to: DType,
) -> Result<TensorData, String> {
    let (lo, hi) =
        int8_range(to).ok_or_else(|| format!("output type must be i8 or u8, got {to}"))?;
    let v = ints(x, "input")?;
    let n = *x.shape().last().ok_or("input has rank 0")?;
    if table.len() != 256 || table[0] <= 0 || v.iter().any(|&q| !(-128..=127).contains(&q)) {
        return Err("input must be i8 and the table 256 entries with a positive first".into());
    }
    let v: Vec<i32> = v.iter().map(|&q| q as i32).collect();
    let out = v
        .chunks(n.max(1))
        .flat_map(|row| qcc_ir::quant::softmax_row(row, table, scale_inv, zero_point, lo, hi))
        .collect();
    pack(to, out)
}

/// Lut: `table[x - min(input dtype)]` elementwise.
pub fn lut(x: &Tensor, table: &[i32], to: DType) -> Result<TensorData, String> {
    let (lo, _) =
        int8_range(x.dtype()).ok_or_else(|| format!("input must be i8 or u8, got {}", x.ty()))?;
    let idx = centered(x, lo, "input")?;
    let out = idx
        .into_iter()
        .map(|i| {
            usize::try_from(i)
                .ok()
                .and_then(|i| table.get(i).copied())
                .ok_or_else(|| format!("table of {} entries has no entry {i}", table.len()))
        })
        .collect::<Result<Vec<i32>, String>>()?;
    pack(to, out)
}

/// Zero point and multiplier of one QAdd operand.
#[derive(Clone, Copy)]
pub struct Operand {
    pub zero_point: i32,
    pub multiplier: i32,
}

/// QAdd: `acc = (a - a_zp) * a_mul + (b - b_zp) * b_mul` with broadcasting.
pub fn qadd(
    a: &Tensor,
    pa: Operand,
    b: &Tensor,
    pb: Operand,
    epi: &Epilogue,
    to: DType,
    out_shape: &[usize],
) -> Result<TensorData, String> {
    let av = centered(a, pa.zero_point, "A")?;
    let bv = centered(b, pb.zero_point, "B")?;
    let (ma, mb) = (pa.multiplier as i64, pb.multiplier as i64);
    let out = zip_broadcast(&av, a.shape(), &bv, b.shape(), out_shape, |p, q| {
        let acc = p
            .checked_mul(ma)
            .zip(q.checked_mul(mb))
            .and_then(|(x, y)| x.checked_add(y))
            .ok_or_else(|| format!("accumulator {p}*{ma} + {q}*{mb} leaves the i32 range"))?;
        finish(epi, acc, 0)
    })?;
    pack(to, out)
}

/// QMul: `acc = (a - a_zp) * (b - b_zp)` with broadcasting.
pub fn qmul(
    a: &Tensor,
    a_zero_point: i32,
    b: &Tensor,
    b_zero_point: i32,
    epi: &Epilogue,
    to: DType,
    out_shape: &[usize],
) -> Result<TensorData, String> {
    let av = centered(a, a_zero_point, "A")?;
    let bv = centered(b, b_zero_point, "B")?;
    let out = zip_broadcast(&av, a.shape(), &bv, b.shape(), out_shape, |p, q| {
        let acc = p
            .checked_mul(q)
            .ok_or_else(|| format!("accumulator {p}*{q} leaves the i32 range"))?;
        finish(epi, acc, 0)
    })?;
    pack(to, out)
}

/// QGemm: `a [M,K]` (8-bit), `b [K,N]` (i8), `bias [N]` (i32);
/// `acc[i,j] = bias[j] + Σ_k (a[i,k] - a_zp) * b[k,j]`, channel `j`.
pub fn qgemm(
    a: &Tensor,
    a_zero_point: i32,
    b: &Tensor,
    bias: &Tensor,
    epi: &Epilogue,
    to: DType,
) -> Result<TensorData, String> {
    let av = centered(a, a_zero_point, "A")?;
    let bv = elems::<i8>(b, "B")?;
    let biasv = elems::<i32>(bias, "bias")?;
    let (&[m, k], &[k2, n]) = (a.shape(), b.shape()) else {
        return Err(format!("A {} and B {} must be 2-D", a.ty(), b.ty()));
    };
    if k != k2 || biasv.len() != n || av.len() != m * k || bv.len() != k * n {
        return Err(format!(
            "A {}, B {} and bias {} must be [M,K], [K,N] and [N]",
            a.ty(),
            b.ty(),
            bias.ty()
        ));
    }
    check_i64_sum(k, max_centered(a_zero_point) * 128)?;
    let mut out = Vec::with_capacity(m * n);
    let mut acc = vec![0i64; n];
    for i in 0..m {
        for (s, &bj) in acc.iter_mut().zip(biasv) {
            *s = bj as i64;
        }
        for (kk, &x) in av[i * k..(i + 1) * k].iter().enumerate() {
            let brow = &bv[kk * n..(kk + 1) * n];
            for (s, &w) in acc.iter_mut().zip(brow) {
                *s += x * w as i64;
            }
        }
        for (j, &s) in acc.iter().enumerate() {
            out.push(finish(epi, s, j)?);
        }
    }
    pack(to, out)
}

/// QMean: `acc = Σ (x - x_zp)` over `axes`, out = `epi.apply(acc, 0)`, same dtype
/// as the input. The result's layout is the same with or without keepdims.
pub fn qmean(
    x: &Tensor,
    axes: &[usize],
    x_zero_point: i32,
    epi: &Epilogue,
) -> Result<TensorData, String> {
    let v = centered(x, x_zero_point, "input")?;
    let xs = x.shape();
    if let Some(a) = axes.iter().find(|&&a| a >= xs.len()) {
        return Err(format!("axis {a} out of range for {}", x.ty()));
    }
    let kept: Vec<usize> = xs
        .iter()
        .enumerate()
        .map(|(d, &n)| if axes.contains(&d) { 1 } else { n })
        .collect();
    let n_out = qcc_ir::numel(&kept);
    check_i64_sum(v.len() / n_out.max(1), max_centered(x_zero_point))?;
    let mut acc = vec![0i64; n_out];
    for (&a, o) in v.iter().zip(Offsets::broadcast(&kept, xs)) {
        *acc.get_mut(o as usize)
            .ok_or("internal: reduction offset out of range")? += a;
    }
    let out = acc
        .into_iter()
        .map(|s| finish(epi, s, 0))
        .collect::<Result<Vec<i32>, String>>()?;
    pack(x.dtype(), out)
}
