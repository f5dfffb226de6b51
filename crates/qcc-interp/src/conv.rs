//! Conv and ConvTranspose, N-d, with groups, strides, dilations and explicit
//! pads. Both reduce to per-group matrix products accumulated in f64:
//! Conv gathers input taps (im2col), ConvTranspose scatters products (col2im).

use crate::elem::f32s;
use crate::index::unravel;
use crate::matmul::{mm, transpose2};
use crate::window::{Tap, Window};
use qcc_ir::{numel, ConvAttrs, Tensor, TensorData};

/// Sizes common to both convolutions.
struct Dims<'a> {
    batch: usize,
    x_sp: &'a [usize],
    k_sp: &'a [usize],
    o_sp: &'a [usize],
}

fn dims<'a>(
    x: &'a Tensor,
    w: &'a Tensor,
    out_shape: &'a [usize],
    c: &ConvAttrs,
) -> Result<Dims<'a>, String> {
    let r = x.shape().len();
    if r < 3 || w.shape().len() != r || out_shape.len() != r {
        return Err(format!(
            "input {} and weight {} must both be [N,C,spatial…]",
            x.ty(),
            w.ty()
        ));
    }
    let n = r - 2;
    if c.strides.len() != n || c.dilations.len() != n || c.pads.len() != 2 * n || c.group == 0 {
        return Err(format!(
            "strides/dilations/pads/group do not fit {n} spatial dims"
        ));
    }
    Ok(Dims {
        batch: x.shape()[0],
        x_sp: &x.shape()[2..],
        k_sp: &w.shape()[2..],
        o_sp: &out_shape[2..],
    })
}

fn bias_of(b: Option<&Tensor>, m: usize) -> Result<Vec<f64>, String> {
    match b {
        None => Ok(vec![0.0; m]),
        Some(b) => {
            let v = f32s(b, "bias")?;
            if v.len() != m {
                return Err(format!("bias {} must be [{m}]", b.ty()));
            }
            Ok(v.iter().map(|&x| x as f64).collect())
        }
    }
}

/// The im2col matrix of a convolution's input: for one batch item and one
/// group, `[C/group · taps][output positions]`, rows ordered as the weight's
/// `[C/group, k…]` (padding taps read 0). `conv` multiplies by it; weight
/// quantization takes the input's second moments from it.
pub struct Im2Col {
    taps: Vec<Tap>,
    ci: usize,
    cg: usize,
    ni: usize,
    nk: usize,
    no: usize,
}

impl Im2Col {
    /// Geometry of `Conv(c)` on an input `[N,C,…]` with weight `[M,C/group,k…]`
    /// and output `[N,M,o…]`.
    pub fn new(
        c: &ConvAttrs,
        x_shape: &[usize],
        w_shape: &[usize],
        out_shape: &[usize],
    ) -> Result<Self, String> {
        let r = x_shape.len();
        if r < 3 || w_shape.len() != r || out_shape.len() != r {
            return Err(format!(
                "input {x_shape:?} and weight {w_shape:?} must both be [N,C,spatial…]"
            ));
        }
        let taps = Window {
            input: &x_shape[2..],
            output: &out_shape[2..],
            kernel: &w_shape[2..],
            strides: &c.strides,
            dilations: &c.dilations,
            pads: &c.pads,
        }
        .taps()?;
        Ok(Self {
            taps,
            ci: x_shape[1],
            cg: w_shape[1],
            ni: numel(&x_shape[2..]),
            nk: numel(&w_shape[2..]),
            no: numel(&out_shape[2..]),
        })
    }

    /// Rows of a column: `C/group · taps`.
    pub fn rows(&self) -> usize {
        self.cg * self.nk
    }

    /// Output positions: the columns.
    pub fn positions(&self) -> usize {
        self.no
    }

    /// The matrix of batch item `bn`, group `gi` of input `x`, row-major.
    pub fn column(&self, x: &[f32], bn: usize, gi: usize) -> Result<Vec<f32>, String> {
        let (nk, no, ni) = (self.nk, self.no, self.ni);
        let mut col = vec![0.0f32; self.rows() * no];
        for ch in 0..self.cg {
            let base = (bn * self.ci + gi * self.cg + ch) * ni;
            let plane = x
                .get(base..base + ni)
                .ok_or("internal: input plane out of range")?;
            for o in 0..no {
                for k in 0..nk {
                    if let Tap::Input(off) = self.taps[o * nk + k] {
                        col[(ch * nk + k) * no + o] = plane[off];
                    }
                }
            }
        }
        Ok(col)
    }
}

/// ONNX Conv. `x [N,C,…]`, `w [M,C/group,k…]`, optional `bias [M]`; `out_shape` is `[N,M,o…]`.
pub fn conv(
    c: &ConvAttrs,
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    out_shape: &[usize],
) -> Result<TensorData, String> {
    let (xv, wv) = (f32s(x, "input")?, f32s(w, "weight")?);
    let d = dims(x, w, out_shape, c)?;
    let (ci, mo, cg, g) = (x.shape()[1], w.shape()[0], w.shape()[1], c.group);
    if ci != cg * g || mo % g != 0 || out_shape[1] != mo || out_shape[0] != d.batch {
        return Err(format!(
            "weight {} does not fit input {} with group {g}",
            w.ty(),
            x.ty()
        ));
    }
    let mg = mo / g;
    let no = numel(d.o_sp);
    let bias = bias_of(b, mo)?;
    let cols = Im2Col::new(c, x.shape(), w.shape(), out_shape)?;
    let mut out = vec![0.0f32; d.batch * mo * no];
    let ck = cols.rows();
    for bn in 0..d.batch {
        for gi in 0..g {
            let col = cols.column(xv, bn, gi)?;
            let wg = wv
                .get(gi * mg * ck..(gi + 1) * mg * ck)
                .ok_or("internal: weight group out of range")?;
            let res = mm(wg, &col, mg, ck, no)?;
            for m in 0..mg {
                let oc = gi * mg + m;
                let dst = &mut out[(bn * mo + oc) * no..(bn * mo + oc + 1) * no];
                for (y, &r) in dst.iter_mut().zip(&res[m * no..(m + 1) * no]) {
                    *y = (r + bias[oc]) as f32;
                }
            }
        }
    }
    Ok(TensorData::F32(out))
}

/// ONNX ConvTranspose. `x [N,C,…]`, `w [C,M/group,k…]`, optional `bias [M]`;
/// input position `i` and tap `k` feed output `i*stride + k*dilation - pad_begin`.
pub fn conv_transpose(
    c: &ConvAttrs,
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    out_shape: &[usize],
) -> Result<TensorData, String> {
    let (xv, wv) = (f32s(x, "input")?, f32s(w, "weight")?);
    let d = dims(x, w, out_shape, c)?;
    let (ci, mg, g) = (x.shape()[1], w.shape()[1], c.group);
    let mo = mg * g;
    if w.shape()[0] != ci || ci % g != 0 || out_shape[1] != mo || out_shape[0] != d.batch {
        return Err(format!(
            "weight {} does not fit input {} with group {g}",
            w.ty(),
            x.ty()
        ));
    }
    let cg = ci / g;
    let (ni, nk, no) = (numel(d.x_sp), numel(d.k_sp), numel(d.o_sp));
    let bias = bias_of(b, mo)?;
    let targets = scatter_targets(d.x_sp, d.k_sp, d.o_sp, c)?;
    let mut out = vec![0.0f32; d.batch * mo * no];
    let mk = mg * nk;
    for bn in 0..d.batch {
        for gi in 0..g {
            let xg = xv
                .get((bn * ci + gi * cg) * ni..(bn * ci + (gi + 1) * cg) * ni)
                .ok_or("internal: input group out of range")?;
            let wg = wv
                .get(gi * cg * mk..(gi + 1) * cg * mk)
                .ok_or("internal: weight group out of range")?;
            // res[(m*K + k), i] = Σ_c w[c, m, k] * x[c, i]
            let res = mm(&transpose2(wg, cg, mk), xg, mk, cg, ni)?;
            let mut acc = vec![0.0f64; mg * no];
            for m in 0..mg {
                for k in 0..nk {
                    let row = &res[(m * nk + k) * ni..(m * nk + k + 1) * ni];
                    for (i, &v) in row.iter().enumerate() {
                        if let Some(o) = targets[i * nk + k] {
                            acc[m * no + o] += v;
                        }
                    }
                }
            }
            for m in 0..mg {
                let oc = gi * mg + m;
                let dst = &mut out[(bn * mo + oc) * no..(bn * mo + oc + 1) * no];
                for (y, &a) in dst.iter_mut().zip(&acc[m * no..(m + 1) * no]) {
                    *y = (a + bias[oc]) as f32;
                }
            }
        }
    }
    Ok(TensorData::F32(out))
}

/// For every (input position, kernel tap), indexed `i * K + k`, the flat output
/// position it contributes to, or `None` when that falls outside the output.
fn scatter_targets(
    x_sp: &[usize],
    k_sp: &[usize],
    o_sp: &[usize],
    c: &ConvAttrs,
) -> Result<Vec<Option<usize>>, String> {
    let r = x_sp.len();
    if k_sp.len() != r || o_sp.len() != r {
        return Err("internal: spatial ranks differ".into());
    }
    let (ni, nk) = (numel(x_sp), numel(k_sp));
    let mut out = Vec::with_capacity(ni * nk);
    let (mut ic, mut kc) = (vec![0; r], vec![0; r]);
    for i in 0..ni {
        unravel(i, x_sp, &mut ic);
        for k in 0..nk {
            unravel(k, k_sp, &mut kc);
            let mut off = Some(0usize);
            for dd in 0..r {
                let pos =
                    (ic[dd] * c.strides[dd] + kc[dd] * c.dilations[dd]) as i64 - c.pads[dd] as i64;
                off = match off {
                    Some(o) if pos >= 0 && (pos as usize) < o_sp[dd] => {
                        Some(o * o_sp[dd] + pos as usize)
                    }
                    _ => None,
                };
            }
            out.push(off);
        }
    }
    Ok(out)
}
