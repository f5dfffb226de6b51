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
    let mut out = vec![0i32; batch * mo * no];
    // One input channel's taps, `col[k * no + o]`, then their products with
    // every output channel of the group, `acc[m * no + o]`.
    let mut col = vec![0i64; nk * no];
    let mut acc = vec![0i64; mg * no];
    for bn in 0..batch {
        for gi in 0..g {
            for m in 0..mg {
                acc[m * no..(m + 1) * no].fill(bv[gi * mg + m] as i64);
            }
            for ch in 0..cg {
                let plane = &xv[(bn * ci + gi * cg + ch) * ni..][..ni];
                for o in 0..no {
                    for k in 0..nk {
                        col[k * no + o] = match taps[o * nk + k] {
                            Tap::Input(off) => plane[off],
                            Tap::Pad | Tap::Beyond => 0,
                        };
                    }
                }
                for m in 0..mg {
                    let wrow = &wv[((gi * mg + m) * cg + ch) * nk..][..nk];
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
