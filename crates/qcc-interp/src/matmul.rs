//! Matrix products: Gemm, numpy MatMul, and the f64-accumulating kernel that
//! Conv and ConvTranspose also use.

use crate::elem::f32s;
use crate::index::Offsets;
use qcc_ir::{broadcast_shapes, Tensor, TensorData};

/// `a[m,k] @ b[k,n]`, row-major, accumulated in f64.
pub fn mm(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Result<Vec<f64>, String> {
    if a.len() != m * k || b.len() != k * n {
        return Err(format!(
            "internal: matmul of {} and {} elements as [{m},{k}] @ [{k},{n}]",
            a.len(),
            b.len()
        ));
    }
    let mut out = vec![0.0f64; m * n];
    if m == 0 || n == 0 || k == 0 {
        return Ok(out);
    }
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has the features `mm_avx2` is compiled for.
        unsafe { mm_avx2(&mut out, a, b, k, n) };
        return Ok(out);
    }
    mm_blocked(&mut out, a, b, k, n);
    Ok(out)
}

/// The body of [`mm`]: register tiles of `R × C` outputs, each summed over
/// k in ascending order from 0.0 (like a plain triple loop). Each f32 × f32
/// product is exact in f64, so neither the tiling nor the vector width nor
/// a fused multiply-add changes a single bit of the result.
#[inline(always)]
fn mm_blocked(out: &mut [f64], a: &[f32], b: &[f32], k: usize, n: usize) {
    const R: usize = 4;
    const C: usize = 8;
    let m = out.len() / n;
    for i0 in (0..m).step_by(R) {
        let r = R.min(m - i0);
        for j0 in (0..n).step_by(C) {
            let c = C.min(n - j0);
            if r == R && c == C {
                let mut acc = [[0f64; C]; R];
                for kk in 0..k {
                    let brow = &b[kk * n + j0..kk * n + j0 + C];
                    for (i, row) in acc.iter_mut().enumerate() {
                        let av = a[(i0 + i) * k + kk] as f64;
                        for (o, &bv) in row.iter_mut().zip(brow) {
                            *o += av * bv as f64;
                        }
                    }
                }
                for (i, row) in acc.iter().enumerate() {
                    out[(i0 + i) * n + j0..(i0 + i) * n + j0 + C].copy_from_slice(row);
                }
            } else {
                for i in i0..i0 + r {
                    for j in j0..j0 + c {
                        let mut s = 0f64;
                        for kk in 0..k {
                            s += a[i * k + kk] as f64 * b[kk * n + j] as f64;
                        }
                        out[i * n + j] = s;
                    }
                }
            }
        }
    }
}

/// [`mm_blocked`] compiled for AVX2 + FMA (the interpreter runs calibration,
/// so it is on the compile-time path).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn mm_avx2(out: &mut [f64], a: &[f32], b: &[f32], k: usize, n: usize) {
    mm_blocked(out, a, b, k, n)
}

/// Row-major transpose of an `[r, c]` matrix.
pub fn transpose2(v: &[f32], r: usize, c: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(r * c);
    for j in 0..c {
        for i in 0..r {
            out.push(v.get(i * c + j).copied().unwrap_or(0.0));
        }
    }
    out
}

/// ONNX Gemm: `alpha * op(a) @ op(b) + beta * c`, `c` unidirectionally broadcast to `[m, n]`.
pub fn gemm(
    alpha: f32,
    beta: f32,
    trans_a: bool,
    trans_b: bool,
    a: &Tensor,
    b: &Tensor,
    c: Option<&Tensor>,
) -> Result<TensorData, String> {
    let (av, bv) = (f32s(a, "A")?, f32s(b, "B")?);
    let (&[a0, a1], &[b0, b1]) = (a.shape(), b.shape()) else {
        return Err(format!("A {} and B {} must be 2-D", a.ty(), b.ty()));
    };
    let (m, k, at) = if trans_a {
        (a1, a0, transpose2(av, a0, a1))
    } else {
        (a0, a1, av.to_vec())
    };
    let (n, bt) = if trans_b {
        (b0, transpose2(bv, b0, b1))
    } else {
        (b1, bv.to_vec())
    };
    let prod = mm(&at, &bt, m, k, n)?;
    let out_shape = [m, n];
    let cv: Vec<f32> = match c {
        Some(c) => {
            let cd = f32s(c, "C")?;
            match broadcast_shapes(c.shape(), &out_shape) {
                Some(s) if s == out_shape => {}
                _ => return Err(format!("C {} does not broadcast to [{m},{n}]", c.ty())),
            }
            crate::index::take(cd, Offsets::broadcast(c.shape(), &out_shape))?
        }
        None => vec![0.0; m * n],
    };
    let (alpha, beta) = (alpha as f64, beta as f64);
    let has_c = c.is_some();
    Ok(TensorData::F32(
        prod.iter()
            .zip(&cv)
            .map(|(&p, &cc)| {
                if has_c {
                    (alpha * p + beta * cc as f64) as f32
                } else {
                    (alpha * p) as f32
                }
            })
            .collect(),
    ))
}

/// Numpy matmul: rank-1 operands promoted, batch dims broadcast.
pub fn matmul(a: &Tensor, b: &Tensor) -> Result<TensorData, String> {
    let (av, bv) = (f32s(a, "A")?, f32s(b, "B")?);
    if a.shape().is_empty() || b.shape().is_empty() {
        return Err("operands must have rank ≥ 1".into());
    }
    let ash: Vec<usize> = if a.shape().len() == 1 {
        vec![1, a.shape()[0]]
    } else {
        a.shape().to_vec()
    };
    let bsh: Vec<usize> = if b.shape().len() == 1 {
        vec![b.shape()[0], 1]
    } else {
        b.shape().to_vec()
    };
    let (m, k) = (ash[ash.len() - 2], ash[ash.len() - 1]);
    let (k2, n) = (bsh[bsh.len() - 2], bsh[bsh.len() - 1]);
    if k != k2 {
        return Err(format!("inner dims differ: A {} vs B {}", a.ty(), b.ty()));
    }
    let (abatch, bbatch) = (&ash[..ash.len() - 2], &bsh[..bsh.len() - 2]);
    let batch = broadcast_shapes(abatch, bbatch).ok_or_else(|| {
        format!(
            "batch dims of A {} and B {} do not broadcast",
            a.ty(),
            b.ty()
        )
    })?;
    let mut out = Vec::with_capacity(qcc_ir::numel(&batch) * m * n);
    let oa = Offsets::broadcast(abatch, &batch);
    let ob = Offsets::broadcast(bbatch, &batch);
    for (i, j) in oa.zip(ob) {
        let (i, j) = (i as usize, j as usize);
        let am = av
            .get(i * m * k..(i + 1) * m * k)
            .ok_or("internal: A batch out of range")?;
        let bm = bv
            .get(j * k * n..(j + 1) * k * n)
            .ok_or("internal: B batch out of range")?;
        out.extend(mm(am, bm, m, k, n)?.into_iter().map(|x| x as f32));
    }
    Ok(TensorData::F32(out))
}

/// The signs a binary layer reads (`Op::SignConv`): ONNX's Sign (NaN stays
/// NaN), or with `bipolar` `u ≥ 0 ? 1 : -1` (a NaN counts -1).
pub fn signs(u: &Tensor, bipolar: bool) -> Result<Tensor, String> {
    let v = f32s(u, "X")?
        .iter()
        .map(|&x| match (bipolar, x >= 0.0) {
            (true, true) => 1.0,
            (true, false) => -1.0,
            (false, _) if x > 0.0 => 1.0,
            (false, _) if x < 0.0 => -1.0,
            (false, _) => x * 0.0, // ±0 → 0, NaN stays NaN
        })
        .collect();
    Tensor::from_f32(u.shape().to_vec(), v).ok_or_else(|| "X: bad shape".to_string())
}

/// The counts `y` (of `shape`) of binary layer `op` through its thresholds
/// (`qcc_ir::SignStep`, along `SignStep::axis`), when it has them: NaN
/// stays NaN.
pub fn sign_step(
    y: TensorData,
    step: Option<&qcc_ir::SignStep>,
    shape: &[usize],
    op: &qcc_ir::Op,
) -> Result<TensorData, String> {
    let Some(s) = step else {
        return Ok(y);
    };
    let axis = qcc_ir::SignStep::axis(op, shape.len()).ok_or("not a binary layer")?;
    let TensorData::F32(mut v) = y else {
        return Err("binary layer counts are not f32".into());
    };
    let ch = shape.get(axis).copied().unwrap_or(1);
    let inner: usize = shape.get(axis + 1..).map_or(1, |d| d.iter().product());
    s.check(ch)?;
    for (i, x) in v.iter_mut().enumerate() {
        if !x.is_nan() {
            *x = s.apply((i / inner.max(1)) % ch.max(1), *x as i64);
        }
    }
    Ok(TensorData::F32(v))
}

/// `Sign(u) · w` for u `[…, K]` and w `[K, N]` of ±1 (`Op::SignMatMul`):
/// integer sums, exact; a NaN in a row of u makes that row NaN. With
/// `bipolar` the sign is `u ≥ 0 ? 1 : -1` (a NaN counts -1).
pub fn sign_matmul(u: &Tensor, w: &Tensor, bipolar: bool) -> Result<TensorData, String> {
    let (uv, wv) = (f32s(u, "U")?, f32s(w, "W")?);
    let (us, ws) = (u.shape(), w.shape());
    let (Some(&k), &[kw, n]) = (us.last(), ws) else {
        return Err(format!(
            "U {} and W {} must be [..., K] and [K, N]",
            u.ty(),
            w.ty()
        ));
    };
    if k != kw {
        return Err(format!("U {} and W {} differ in K", u.ty(), w.ty()));
    }
    if let Some(v) = wv.iter().find(|&&v| v != 1.0 && v != -1.0) {
        return Err(format!("W holds {v}, not only -1 and +1"));
    }
    let rows = uv.len().checked_div(k).unwrap_or(0);
    let mut out = vec![0f32; rows * n];
    for r in 0..rows {
        let row = &uv[r * k..(r + 1) * k];
        let nan = !bipolar && row.iter().any(|v| v.is_nan());
        for j in 0..n {
            let mut s = 0i64;
            for (kk, &x) in row.iter().enumerate() {
                let sg = if bipolar {
                    if x >= 0.0 {
                        1
                    } else {
                        -1
                    }
                } else if x > 0.0 {
                    1
                } else if x < 0.0 {
                    -1
                } else {
                    0
                };
                s += sg * wv[kk * n + j] as i64;
            }
            out[r * n + j] = if nan { f32::NAN } else { s as f32 };
        }
    }
    Ok(TensorData::F32(out))
}
