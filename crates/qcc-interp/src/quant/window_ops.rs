//! Sliding-window integer ops: QConv (N-d, groups, strides, dilations, pads)
//! and QAvgPool. Padded cells contribute 0 to the sum, as if they held the
//! input zero point.

use super::{centered, check_i64_sum, finish, max_centered, pack};
use crate::elem::elems;
use crate::window::{Tap, Window};
use qcc_ir::{numel, ConvAttrs, DType, Epilogue, PoolAttrs, Tensor, TensorData};

/// Integer convolution. `x [N,C,…]` (8-bit), `w [M,C/group,k…]` (i8),
/// `bias [M]` (i32); `acc = bias[m] + Σ (x - x_zp) * w` over the window,
/// out = `epi.apply(acc, m)` as `to`. `out_shape` is `[N,M,o…]`.
#[allow(clippy::too_many_arguments)]
pub fn qconv(
    c: &ConvAttrs,
    x_zero_point: i32,
    epi: &Epilogue,
    to: DType,
    x: &Tensor,
    w: &Tensor,
    bias: &Tensor,
    out_shape: &[usize],
) -> Result<TensorData, String> {
    let xv = centered(x, x_zero_point, "input")?;
    let wv = elems::<i8>(w, "weight")?;
    let bv = elems::<i32>(bias, "bias")?;
    let (xs, ws) = (x.shape(), w.shape());
    let r = xs.len();
    if r < 3 || ws.len() != r || out_shape.len() != r {
        return Err(format!(
            "input {} and weight {} must both be [N,C,spatial…]",
            x.ty(),
            w.ty()
        ));
    }
    let n_sp = r - 2;
    if c.strides.len() != n_sp || c.dilations.len() != n_sp || c.pads.len() != 2 * n_sp {
        return Err(format!(
            "strides/dilations/pads do not fit {n_sp} spatial dims"
        ));
    }
    let (batch, ci, mo, cg, g) = (xs[0], xs[1], ws[0], ws[1], c.group);
    if g == 0 || ci != cg * g || mo % g != 0 || out_shape[..2] != [batch, mo] || bv.len() != mo {
        return Err(format!(
            "weight {} and bias {} do not fit input {} with group {g}",
            w.ty(),
            bias.ty(),
            x.ty()
        ));
    }
    let (x_sp, k_sp, o_sp) = (&xs[2..], &ws[2..], &out_shape[2..]);
    let taps = Window {
        input: x_sp,
        output: o_sp,
        kernel: k_sp,
        strides: &c.strides,
        dilations: &c.dilations,
        pads: &c.pads,
    }
    .taps()?;
    let (ni, nk, no) = (numel(x_sp), numel(k_sp), numel(o_sp));
    let (mg, ck) = (mo / g, cg * nk);
    if xv.len() != batch * ci * ni || wv.len() != mo * ck {
        return Err("internal: conv operand sizes do not match their shapes".into());
    }
    check_i64_sum(ck, max_centered(x_zero_point) * 128)?;
    // When no partial sum of a window's products can leave i32, they are
    // summed in i32 (8 lanes a vector) and the bias added after, in i64:
    // the same integers as summing in i64 throughout.
    let narrow = (ck as i64) * max_centered(x_zero_point) * 128 <= i32::MAX as i64;
    let mut out = vec![0i32; batch * mo * no];
    // One input channel's taps, `col[k * no + o]`, then their products with
    // every output channel of the group, `acc[m * no + o]`.
    let mut col = vec![0i64; if narrow { 0 } else { nk * no }];
    let mut acc = vec![0i64; mg * no];
    let mut col32 = vec![0i32; if narrow { nk * no } else { 0 }];
    let mut acc32 = vec![0i32; if narrow { mg * no } else { 0 }];
    for bn in 0..batch {
        for gi in 0..g {
            for m in 0..mg {
                acc[m * no..(m + 1) * no].fill(bv[gi * mg + m] as i64);
            }
            acc32.fill(0);
            for ch in 0..cg {
                let plane = &xv[(bn * ci + gi * cg + ch) * ni..][..ni];
                let wch = |m: usize| &wv[((gi * mg + m) * cg + ch) * nk..][..nk];
                if narrow {
                    for o in 0..no {
                        for k in 0..nk {
                            col32[k * no + o] = match taps[o * nk + k] {
                                Tap::Input(off) => plane[off] as i32,
                                Tap::Pad | Tap::Beyond => 0,
                            };
                        }
                    }
                    mac_i32(&mut acc32, &col32, no, mg, wch);
                    continue;
                }
                for o in 0..no {
                    for k in 0..nk {
                        col[k * no + o] = match taps[o * nk + k] {
                            Tap::Input(off) => plane[off],
                            Tap::Pad | Tap::Beyond => 0,
                        };
                    }
                }
                for m in 0..mg {
                    let wrow = wch(m);
                    let dst = &mut acc[m * no..(m + 1) * no];
                    for (k, &wk) in wrow.iter().enumerate() {
                        let wk = wk as i64;
                        if wk == 0 {
                            continue;
                        }
                        for (s, &v) in dst.iter_mut().zip(&col[k * no..(k + 1) * no]) {
                            *s += wk * v;
                        }
                    }
                }
            }
            for (s, &p) in acc.iter_mut().zip(&acc32) {
                *s += p as i64;
            }
            for m in 0..mg {
                let oc = gi * mg + m;
                let dst = &mut out[(bn * mo + oc) * no..][..no];
                for (y, &s) in dst.iter_mut().zip(&acc[m * no..(m + 1) * no]) {
                    *y = finish(epi, s, oc)?;
                }
            }
        }
    }
    pack(to, out)
}

/// `acc[m·no + o] += Σ_k w(m)[k] · col[k·no + o]` for the `mg` output
/// channels, in wrapping i32 (the caller bounds every partial sum).
fn mac_i32<'w>(acc: &mut [i32], col: &[i32], no: usize, mg: usize, w: impl Fn(usize) -> &'w [i8]) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has the features `mac_i32_avx2` is compiled for.
        unsafe { mac_i32_avx2(acc, col, no, mg, w) };
        return;
    }
    mac_i32_body(acc, col, no, mg, w)
}

/// [`mac_i32_body`] compiled for AVX2 (8 i32 lanes a vector).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn mac_i32_avx2<'w>(
    acc: &mut [i32],
    col: &[i32],
    no: usize,
    mg: usize,
    w: impl Fn(usize) -> &'w [i8],
) {
    mac_i32_body(acc, col, no, mg, w)
}

#[inline(always)]
fn mac_i32_body<'w>(
    acc: &mut [i32],
    col: &[i32],
    no: usize,
    mg: usize,
    w: impl Fn(usize) -> &'w [i8],
) {
    for m in 0..mg {
        let dst = &mut acc[m * no..(m + 1) * no];
        for (k, &wk) in w(m).iter().enumerate() {
            let wk = wk as i32;
            if wk == 0 {
                continue;
            }
            for (s, &v) in dst.iter_mut().zip(&col[k * no..(k + 1) * no]) {
                *s = s.wrapping_add(wk.wrapping_mul(v));
            }
        }
    }
}

/// Integer average pool: `acc = Σ (x - x_zp)` over the window (padding
/// contributes 0), out = `epi.apply(acc, 0)` in the input's dtype.
pub fn qavg_pool(
    p: &PoolAttrs,
    x_zero_point: i32,
    epi: &Epilogue,
    x: &Tensor,
    out_shape: &[usize],
) -> Result<TensorData, String> {
    let xv = centered(x, x_zero_point, "input")?;
    let xs = x.shape();
    if xs.len() < 3 || out_shape.len() != xs.len() || out_shape[..2] != xs[..2] {
        return Err(format!(
            "input {} must be [N,C,spatial…] matching output {out_shape:?}",
            x.ty()
        ));
    }
    let (x_sp, o_sp) = (&xs[2..], &out_shape[2..]);
    let taps = Window {
        input: x_sp,
        output: o_sp,
        kernel: &p.kernel,
        strides: &p.strides,
        dilations: &p.dilations,
        pads: &p.pads,
    }
    .taps()?;
    let (ni, nk, no) = (numel(x_sp), numel(&p.kernel), numel(o_sp));
    let planes = xs[0] * xs[1];
    if xv.len() != planes * ni {
        return Err("internal: input size does not match its shape".into());
    }
    check_i64_sum(nk, max_centered(x_zero_point))?;
    let mut out = Vec::with_capacity(planes * no);
    for pl in 0..planes {
        let plane = &xv[pl * ni..(pl + 1) * ni];
        for o in 0..no {
            let acc: i64 = taps[o * nk..(o + 1) * nk]
                .iter()
                .map(|t| match *t {
                    Tap::Input(off) => plane[off],
                    Tap::Pad | Tap::Beyond => 0,
                })
                .sum();
            out.push(finish(epi, acc, 0)?);
        }
    }
    pack(x.dtype(), out)
}
