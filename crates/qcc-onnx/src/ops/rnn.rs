//! LSTM, GRU and RNN, unrolled over their sequence (static, like every
//! shape qcc compiles) into the IR's float ops.
//!
//! Per direction, the input projection of every time step is one Gemm
//! against the constant `W` (`X·Wᵀ + Wb + Rb`, on the GEMM microkernels);
//! each step then adds `H·Rᵀ` (a Gemm against the constant `R`), slices
//! the gates and applies the cell's equations as the ONNX spec writes them
//! (gate orders `iofc` for LSTM, `zrh` for GRU). `Y` concatenates the
//! steps' hidden states; `Y_h` (and `Y_c`) are the last step's. Reverse
//! directions walk the steps backwards; `layout = 1` transposes at the
//! edges. `sequence_lens` must be constant and equal to the sequence
//! length (shorter sequences would need masking); W, R, B and P must be
//! constants.
//!
//! ONNX Runtime's `com.microsoft.DynamicQuantizeLSTM` (what `quantize_dynamic`
//! makes of an LSTM) is the same cell with int8/uint8 weights `W [dirs,
//! input, 4H]` and `R [dirs, H, 4H]` (already transposed) and their scales:
//! each of its two products quantizes its float operand at run time, as
//! ONNX Runtime's quantized GEMM does (the input projection once for the
//! whole sequence, `H·R` at every step): `DynamicQuantizeLinear` (its u8
//! range over the whole operand), `MatMulInteger` against the weights, then
//! `f32(acc) · (a_scale · w_scale)`; the step adds `X·W + H·R`, then the
//! biases, in ONNX Runtime's order.

use super::R;
use crate::error::Problem;
use crate::node::NodeCx;
use qcc_ir::{BinaryOp, DType, Op, Tensor, UnaryOp, ValueId};

/// Which recurrent op.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Cell {
    Lstm,
    Gru,
    Rnn,
}

impl Cell {
    fn gates(self) -> usize {
        match self {
            Cell::Lstm => 4,
            Cell::Gru => 3,
            Cell::Rnn => 1,
        }
    }

    fn default_acts(self) -> &'static [&'static str] {
        match self {
            Cell::Lstm => &["Sigmoid", "Tanh", "Tanh"],
            Cell::Gru => &["Sigmoid", "Tanh"],
            Cell::Rnn => &["Tanh"],
        }
    }
}

/// One activation function of the cell, with its parameters.
#[derive(Clone, Copy)]
enum Act {
    Unary(UnaryOp),
    /// `alpha · x + beta`.
    Affine(f32, f32),
    /// `alpha · tanh(beta · x)`.
    ScaledTanh(f32, f32),
}

/// The activations of every direction (`per` each), from `activations`,
/// `activation_alpha` and `activation_beta`.
fn activations(cx: &NodeCx, cell: Cell, dirs: usize) -> Result<Vec<Act>, Problem> {
    let per = cell.default_acts().len();
    let names = cx
        .attr(cx.attrs.strings("activations"))?
        .unwrap_or_else(|| {
            let d = cell.default_acts();
            (0..dirs * d.len())
                .map(|i| d[i % d.len()].to_string())
                .collect()
        });
    if names.len() != per * dirs {
        return Err(cx.err(format!(
            "attribute 'activations' has {} entries, {} needs {}",
            names.len(),
            cx.node.op_type(),
            per * dirs
        )));
    }
    let alphas = cx
        .attr(cx.attrs.floats("activation_alpha"))?
        .unwrap_or_default();
    let betas = cx
        .attr(cx.attrs.floats("activation_beta"))?
        .unwrap_or_default();
    let (mut ai, mut bi) = (0, 0);
    let take = |v: &[f32], i: &mut usize, default: f32| {
        let x = v.get(*i).copied().unwrap_or(default);
        *i += 1;
        x
    };
    names
        .iter()
        .map(|n| {
            Ok(match n.to_ascii_lowercase().as_str() {
                "sigmoid" => Act::Unary(UnaryOp::Sigmoid),
                "tanh" => Act::Unary(UnaryOp::Tanh),
                "relu" => Act::Unary(UnaryOp::Relu),
                "leakyrelu" => Act::Unary(UnaryOp::LeakyRelu {
                    alpha: take(&alphas, &mut ai, 0.01),
                }),
                "hardsigmoid" => Act::Unary(UnaryOp::HardSigmoid {
                    alpha: take(&alphas, &mut ai, 0.2),
                    beta: take(&betas, &mut bi, 0.5),
                }),
                "affine" => Act::Affine(take(&alphas, &mut ai, 1.0), take(&betas, &mut bi, 0.0)),
                "scaledtanh" => {
                    Act::ScaledTanh(take(&alphas, &mut ai, 1.0), take(&betas, &mut bi, 1.0))
                }
                _ => return Err(cx.err(format!("activation '{n}' is not supported"))),
            })
        })
        .collect()
}

/// A required constant input as f32 values, with its shape checked.
fn weights(cx: &mut NodeCx, i: usize, what: &str, shape: &[usize]) -> Result<Vec<f32>, Problem> {
    let t = cx
        .const_input(i, what)?
        .ok_or_else(|| cx.err(format!("required input '{what}' is missing")))?;
    if t.shape() != shape || t.dtype() != DType::F32 {
        return Err(cx.err(format!(
            "input '{what}' is {}, expected f32{shape:?}",
            t.ty()
        )));
    }
    Ok(t.to_f32_vec())
}

/// A DynamicQuantizeLSTM weight of one direction: its integers `[rows,
/// cols]`, zero point and scale (one, or one per column) as IR constants.
struct QWeight {
    q: ValueId,
    zp: ValueId,
    scale: ValueId,
}

/// The quantized weight at input `i` (`[dirs, rows, cols]`, int8 or uint8)
/// with its scale and zero point at inputs `si`, `si + 1` (`[dirs]` or
/// `[dirs, cols]`), per direction. One zero point per direction: ONNX
/// Runtime's kernel reads only the first of a direction's.
fn qweights(
    cx: &mut NodeCx,
    (i, si): (usize, usize),
    what: &str,
    (dirs, rows, cols): (usize, usize, usize),
) -> Result<Vec<QWeight>, Problem> {
    let t = cx
        .const_input(i, what)?
        .ok_or_else(|| cx.err(format!("required input '{what}' is missing")))?;
    let dt = t.dtype();
    if t.shape() != [dirs, rows, cols] || !matches!(dt, DType::I8 | DType::U8) {
        return Err(cx.err(format!(
            "input '{what}' is {}, expected int8 or uint8 [{dirs},{rows},{cols}]",
            t.ty()
        )));
    }
    let scale_name = format!("{what}_scale");
    let s = cx
        .const_input(si, &scale_name)?
        .ok_or_else(|| cx.err(format!("required input '{scale_name}' is missing")))?;
    let per_col = s.shape() == [dirs, cols];
    if s.dtype() != DType::F32 || !(s.shape() == [dirs] || per_col) {
        return Err(cx.err(format!(
            "input '{scale_name}' is {}, expected f32 [{dirs}] or [{dirs},{cols}]",
            s.ty()
        )));
    }
    let zp_name = format!("{what}_zero_point");
    let z = match cx.const_input(si + 1, &zp_name)? {
        Some(z) if z.dtype() == dt && z.shape() == s.shape() => z.to_i64_vec().unwrap_or_default(),
        Some(z) => {
            return Err(cx.err(format!(
                "input '{zp_name}' is {}, expected {} of {}'s shape",
                z.ty(),
                dt.name(),
                scale_name
            )))
        }
        None => vec![0; s.numel()],
    };
    let (q, sv) = (t.to_i64_vec().unwrap_or_default(), s.to_f32_vec());
    let per = s.numel() / dirs;
    let int = |cx: &mut NodeCx, tag: &str, shape: Vec<usize>, v: &[i64]| {
        let data = match dt {
            DType::I8 => qcc_ir::TensorData::I8(v.iter().map(|&x| x as i8).collect()),
            _ => qcc_ir::TensorData::U8(v.iter().map(|&x| x as u8).collect()),
        };
        let t = Tensor::new(shape, data).ok_or_else(|| cx.err("bad constant"))?;
        Ok::<_, Problem>(cx.add_const(tag, t))
    };
    let mut out = vec![];
    for d in 0..dirs {
        let zd = &z[d * per..(d + 1) * per];
        if zd.iter().any(|&v| v != zd[0]) {
            return Err(cx.err(format!(
                "input '{zp_name}' differs across the columns of direction {d}: \
                 ONNX Runtime reads one zero point per direction"
            )));
        }
        let qd = int(
            cx,
            &format!("{what}_q{d}"),
            vec![rows, cols],
            &q[d * rows * cols..(d + 1) * rows * cols],
        )?;
        let zp = int(cx, &format!("{what}_zp{d}"), vec![], &zd[..1])?;
        let shape = if per_col { vec![cols] } else { vec![] };
        let st = Tensor::from_f32(shape, sv[d * per..(d + 1) * per].to_vec())
            .ok_or_else(|| cx.err("bad constant"))?;
        let scale = cx.add_const(&format!("{what}_scale{d}"), st);
        out.push(QWeight { q: qd, zp, scale });
    }
    Ok(out)
}

/// Adds IR nodes for one recurrent op, each named `<node>/<tag>…`.
struct Unroll<'c, 'a, 'm> {
    cx: &'c mut NodeCx<'a, 'm>,
    n: usize,
}

impl Unroll<'_, '_, '_> {
    fn op(&mut self, tag: &str, op: Op, ins: Vec<ValueId>) -> Result<ValueId, Problem> {
        self.n += 1;
        let suffix = format!("{tag}{}", self.n);
        self.cx.add_aux(&suffix, op, ins)
    }

    fn konst(&mut self, tag: &str, shape: Vec<usize>, v: Vec<f32>) -> Result<ValueId, Problem> {
        self.n += 1;
        let t = Tensor::from_f32(shape, v).ok_or_else(|| self.cx.err("bad constant"))?;
        Ok(self.cx.add_const(&format!("{tag}{}", self.n), t))
    }

    fn bin(&mut self, op: BinaryOp, a: ValueId, b: ValueId) -> Result<ValueId, Problem> {
        self.op("e", Op::Binary(op), vec![a, b])
    }

    fn reshape(&mut self, v: ValueId, shape: Vec<usize>) -> Result<ValueId, Problem> {
        self.op("r", Op::Reshape { shape }, vec![v])
    }

    /// Elements `[at, at + len)` of the last axis of `v` (`[rows, width]`).
    fn cols(&mut self, v: ValueId, at: usize, len: usize) -> Result<ValueId, Problem> {
        let rows = self.cx.ty(v).shape[0];
        self.op(
            "s",
            Op::Slice {
                starts: vec![0, at as i64],
                steps: vec![1, 1],
                lens: vec![rows, len],
            },
            vec![v],
        )
    }

    /// Index `i` of axis 0 of `v`, that axis dropped.
    fn index0(&mut self, v: ValueId, i: usize) -> Result<ValueId, Problem> {
        let shape = self.cx.ty(v).shape;
        let mut starts = vec![0; shape.len()];
        starts[0] = i as i64;
        let mut lens = shape.clone();
        lens[0] = 1;
        let s = self.op(
            "s",
            Op::Slice {
                starts,
                steps: vec![1; shape.len()],
                lens,
            },
            vec![v],
        )?;
        self.reshape(s, shape[1..].to_vec())
    }

    fn act(&mut self, a: Act, v: ValueId) -> Result<ValueId, Problem> {
        match a {
            Act::Unary(u) => self.op("a", Op::Unary(u), vec![v]),
            Act::Affine(alpha, beta) => {
                let k = self.konst("k", vec![1], vec![alpha])?;
                let m = self.bin(BinaryOp::Mul, v, k)?;
                let b = self.konst("k", vec![1], vec![beta])?;
                self.bin(BinaryOp::Add, m, b)
            }
            Act::ScaledTanh(alpha, beta) => {
                let b = self.konst("k", vec![1], vec![beta])?;
                let m = self.bin(BinaryOp::Mul, v, b)?;
                let t = self.op("a", Op::Unary(UnaryOp::Tanh), vec![m])?;
                let k = self.konst("k", vec![1], vec![alpha])?;
                self.bin(BinaryOp::Mul, t, k)
            }
        }
    }

    /// `a @ w` for a DynamicQuantizeLSTM weight: `a` quantized at run time
    /// (DynamicQuantizeLinear), the integer product, scaled back to f32.
    fn qmatmul(&mut self, a: ValueId, w: &QWeight) -> Result<ValueId, Problem> {
        let Unroll { cx, n } = self;
        let [aq, s, z] = super::quant::dynamic_quantize(cx, a, &mut |cx, tag, op, ins| {
            *n += 1;
            cx.add_aux(&format!("q{tag}{n}"), op, ins)
        })?;
        let acc = self.op("m", Op::MatMulInteger, vec![aq, w.q, z, w.zp])?;
        let f = self.op("f", Op::Cast { to: DType::F32 }, vec![acc])?;
        let factor = self.bin(BinaryOp::Mul, s, w.scale)?;
        self.bin(BinaryOp::Mul, f, factor)
    }

    /// `a @ wᵀ (+ bias)` for a constant `w` `[rows, a's width]`.
    fn gemm_t(
        &mut self,
        a: ValueId,
        w: ValueId,
        bias: Option<ValueId>,
    ) -> Result<ValueId, Problem> {
        let op = Op::Gemm {
            alpha: 1.0,
            beta: 1.0,
            trans_a: false,
            trans_b: true,
        };
        let mut ins = vec![a, w];
        ins.extend(bias);
        self.op("g", op, ins)
    }
}

/// LSTM, GRU or RNN; with `quantized`, ONNX Runtime's DynamicQuantizeLSTM
/// (see the module docs).
pub(super) fn recurrent(cx: &mut NodeCx, cell: Cell, quantized: bool) -> R {
    let x = cx.input(0)?;
    let xt = cx.ty(x);
    if xt.dtype != DType::F32 || xt.rank() != 3 {
        return Err(cx.err(format!("input X must be f32 of rank 3, got {xt}")));
    }
    let layout = cx.attr(cx.attrs.int_or("layout", 0))?;
    let (seq, batch, isz) = match layout {
        0 => (xt.shape[0], xt.shape[1], xt.shape[2]),
        1 => (xt.shape[1], xt.shape[0], xt.shape[2]),
        v => return Err(cx.err(format!("attribute layout={v} must be 0 or 1"))),
    };
    let dir = cx.attr(cx.attrs.string_or("direction", "forward"))?;
    let dirs = match dir.as_str() {
        "forward" | "reverse" => 1,
        "bidirectional" => 2,
        _ => return Err(cx.err(format!("unsupported attribute direction='{dir}'"))),
    };
    let g = cell.gates();
    let wt = cx
        .const_input(1, "W")?
        .ok_or_else(|| cx.err("required input 'W' is missing"))?;
    // The gates' axis: 1 (`[dirs, 4H, input]`), or 2 when quantized.
    let gate_axis = if quantized { 2 } else { 1 };
    if wt.shape().len() != 3 || wt.shape()[0] != dirs || wt.shape()[gate_axis] % g != 0 {
        return Err(cx.err(format!(
            "input 'W' {} does not fit {dirs} direction(s)",
            wt.ty()
        )));
    }
    let h = wt.shape()[gate_axis] / g;
    if let Some(hs) = cx.attr(cx.attrs.int("hidden_size"))? {
        if hs as usize != h {
            return Err(cx.err(format!("hidden_size={hs} but W holds {h} per gate")));
        }
    }
    if seq == 0 || batch == 0 || h == 0 {
        return Err(cx.err("empty sequence, batch or hidden state"));
    }
    let (w, r, qw) = if quantized {
        let qx = qweights(cx, (1, 8), "W", (dirs, isz, g * h))?;
        let qh = qweights(cx, (2, 10), "R", (dirs, h, g * h))?;
        (
            vec![0.0; dirs * g * h * isz],
            vec![0.0; dirs * g * h * h],
            Some((qx, qh)),
        )
    } else {
        let w = weights(cx, 1, "W", &[dirs, g * h, isz])?;
        (w, weights(cx, 2, "R", &[dirs, g * h, h])?, None)
    };
    let b = if cx.has_input(3) {
        weights(cx, 3, "B", &[dirs, 2 * g * h])?
    } else {
        vec![0.0; dirs * 2 * g * h]
    };
    if let Some(lens) = cx.const_ints(4, "sequence_lens")? {
        if lens.len() != batch || lens.iter().any(|&l| l as usize != seq) {
            return Err(cx.err(format!(
                "sequence_lens {lens:?} differ from the sequence length {seq}; \
                 only full-length sequences are supported"
            )));
        }
    } else if cx.has_input(4) {
        return Err(cx.err("input 'sequence_lens' must be a compile-time constant"));
    }
    let state_shape = if layout == 0 {
        vec![dirs, batch, h]
    } else {
        vec![batch, dirs, h]
    };
    let state = |cx: &NodeCx, i: usize, what: &str| -> Result<Option<ValueId>, Problem> {
        let Some(v) = cx.opt_input(i)? else {
            return Ok(None);
        };
        let t = cx.ty(v);
        if t.dtype != DType::F32 || t.shape != state_shape {
            return Err(cx.err(format!(
                "input '{what}' is {t}, expected f32{state_shape:?}"
            )));
        }
        Ok(Some(v))
    };
    let h0 = state(cx, 5, "initial_h")?;
    let (c0, p) = if cell == Cell::Lstm {
        let p = if cx.has_input(7) {
            Some(weights(cx, 7, "P", &[dirs, 3 * h])?)
        } else {
            None
        };
        (state(cx, 6, "initial_c")?, p)
    } else {
        (None, None)
    };
    let clip = cx.attr(cx.attrs.float("clip"))?;
    let acts = activations(cx, cell, dirs)?;
    let input_forget = cell == Cell::Lstm && cx.attr(cx.attrs.flag("input_forget", false))?;
    let lbr = cell == Cell::Gru && cx.attr(cx.attrs.int_or("linear_before_reset", 0))? != 0;
    let wants = |cx: &NodeCx, j: usize| {
        cx.node
            .output
            .get(j)
            .is_some_and(|o| !o.is_empty() && cx.imp.used.contains(o))
    };
    let want_y = wants(cx, 0);

    let mut u = Unroll { cx, n: 0 };
    let to_tbi = |u: &mut Unroll, v: ValueId| -> Result<ValueId, Problem> {
        // States given `[batch, dirs, H]` (layout 1) as `[dirs, batch, H]`.
        if layout == 1 {
            u.op(
                "t",
                Op::Transpose {
                    perm: vec![1, 0, 2],
                },
                vec![v],
            )
        } else {
            Ok(v)
        }
    };
    let xs = if layout == 1 {
        u.op(
            "t",
            Op::Transpose {
                perm: vec![1, 0, 2],
            },
            vec![x],
        )?
    } else {
        x
    };
    let x2 = u.reshape(xs, vec![seq * batch, isz])?;
    let h0 = h0.map(|v| to_tbi(&mut u, v)).transpose()?;
    let c0 = c0.map(|v| to_tbi(&mut u, v)).transpose()?;
    let per = cell.default_acts().len();
    let (mut ys, mut hs, mut cs) = (vec![], vec![], vec![]);
    for d in 0..dirs {
        let gh = g * h;
        let wd = u.konst(
            "w",
            vec![gh, isz],
            w[d * gh * isz..(d + 1) * gh * isz].to_vec(),
        )?;
        let bd = &b[d * 2 * gh..(d + 1) * 2 * gh];
        // Wb + Rb into the projection, except GRU's Rbh with
        // linear_before_reset, which sits inside r ⊙ (…).
        let bias: Vec<f32> = (0..gh)
            .map(|j| {
                let rb = if lbr && j >= 2 * h { 0.0 } else { bd[gh + j] };
                bd[j] + rb
            })
            .collect();
        let bias = u.konst("b", vec![gh], bias)?;
        let xw = match &qw {
            Some((qx, _)) => u.qmatmul(x2, &qx[d])?,
            None => u.gemm_t(x2, wd, Some(bias))?,
        };
        let xw = u.reshape(xw, vec![seq, batch, gh])?;
        let rd = &r[d * gh * h..(d + 1) * gh * h];
        let a = &acts[d * per..(d + 1) * per];
        let zeros = || vec![0.0; batch * h];
        let mut hp = match h0 {
            Some(v) => u.index0(v, d)?,
            None => u.konst("h", vec![batch, h], zeros())?,
        };
        let mut cp = match c0 {
            Some(v) => u.index0(v, d)?,
            None => u.konst("c", vec![batch, h], zeros())?,
        };
        let reverse = dir == "reverse" || d == 1;
        let mut outs = vec![None; seq];
        // The recurrent weights, split where a cell multiplies part of
        // them by something else than H.
        let (r_all, r_h) = match cell {
            Cell::Gru => (
                u.konst("r", vec![2 * h, h], rd[..2 * h * h].to_vec())?,
                Some(u.konst("r", vec![h, h], rd[2 * h * h..].to_vec())?),
            ),
            _ => (u.konst("r", vec![gh, h], rd.to_vec())?, None),
        };
        let rbh = if lbr {
            Some(u.konst("b", vec![h], bd[gh + 2 * h..2 * gh].to_vec())?)
        } else {
            None
        };
        let peep = match &p {
            Some(p) => {
                let pd = &p[d * 3 * h..(d + 1) * 3 * h];
                let mut v = vec![];
                for k in 0..3 {
                    v.push(u.konst("p", vec![h], pd[k * h..(k + 1) * h].to_vec())?);
                }
                Some(v)
            }
            None => None,
        };
        let one = u.konst("k", vec![1], vec![1.0])?;
        for step in 0..seq {
            let t = if reverse { seq - 1 - step } else { step };
            let xt = u.index0(xw, t)?;
            let hr = match &qw {
                Some((_, qh)) => u.qmatmul(hp, &qh[d])?,
                None => u.gemm_t(hp, r_all, None)?,
            };
            let width = if cell == Cell::Gru { 2 * h } else { gh };
            let xa = if cell == Cell::Gru {
                u.cols(xt, 0, width)?
            } else {
                xt
            };
            let mut pre = u.bin(BinaryOp::Add, xa, hr)?;
            if qw.is_some() {
                // ONNX Runtime's order: (X·W + H·R) + the biases.
                pre = u.bin(BinaryOp::Add, pre, bias)?;
            }
            if let Some(c) = clip {
                pre = u.op("c", Op::Unary(UnaryOp::Clip { min: -c, max: c }), vec![pre])?;
            }
            match cell {
                Cell::Rnn => {
                    hp = u.act(a[0], pre)?;
                }
                Cell::Lstm => {
                    let mut i = u.cols(pre, 0, h)?;
                    let mut o = u.cols(pre, h, h)?;
                    let mut f = u.cols(pre, 2 * h, h)?;
                    let c = u.cols(pre, 3 * h, h)?;
                    if let Some(pv) = &peep {
                        let pi = u.bin(BinaryOp::Mul, cp, pv[0])?;
                        i = u.bin(BinaryOp::Add, i, pi)?;
                        let pf = u.bin(BinaryOp::Mul, cp, pv[2])?;
                        f = u.bin(BinaryOp::Add, f, pf)?;
                    }
                    let i = u.act(a[0], i)?;
                    let f = if input_forget {
                        u.bin(BinaryOp::Sub, one, i)?
                    } else {
                        u.act(a[0], f)?
                    };
                    let c = u.act(a[1], c)?;
                    let fc = u.bin(BinaryOp::Mul, f, cp)?;
                    let ic = u.bin(BinaryOp::Mul, i, c)?;
                    cp = u.bin(BinaryOp::Add, fc, ic)?;
                    if let Some(pv) = &peep {
                        let po = u.bin(BinaryOp::Mul, cp, pv[1])?;
                        o = u.bin(BinaryOp::Add, o, po)?;
                    }
                    let o = u.act(a[0], o)?;
                    let hc = u.act(a[2], cp)?;
                    hp = u.bin(BinaryOp::Mul, o, hc)?;
                }
                Cell::Gru => {
                    let z = u.cols(pre, 0, h)?;
                    let z = u.act(a[0], z)?;
                    let rg = u.cols(pre, h, h)?;
                    let rg = u.act(a[0], rg)?;
                    let xh = u.cols(xt, 2 * h, h)?;
                    let r_h = r_h.ok_or_else(|| u.cx.err("internal: GRU without R_h"))?;
                    let hh = if lbr {
                        let hr = u.gemm_t(hp, r_h, rbh)?;
                        u.bin(BinaryOp::Mul, rg, hr)?
                    } else {
                        let rh = u.bin(BinaryOp::Mul, rg, hp)?;
                        u.gemm_t(rh, r_h, None)?
                    };
                    let mut pre_h = u.bin(BinaryOp::Add, xh, hh)?;
                    if let Some(c) = clip {
                        let op = Op::Unary(UnaryOp::Clip { min: -c, max: c });
                        pre_h = u.op("c", op, vec![pre_h])?;
                    }
                    let ht = u.act(a[1], pre_h)?;
                    // (1 - z) ⊙ ht + z ⊙ H = ht + z ⊙ (H - ht)
                    let diff = u.bin(BinaryOp::Sub, hp, ht)?;
                    let zd = u.bin(BinaryOp::Mul, z, diff)?;
                    hp = u.bin(BinaryOp::Add, ht, zd)?;
                }
            }
            outs[t] = Some(hp);
        }
        if want_y {
            let steps = outs
                .into_iter()
                .map(|v| {
                    let v = v.ok_or_else(|| u.cx.err("internal: a step without output"))?;
                    u.reshape(v, vec![1, 1, batch, h])
                })
                .collect::<Result<Vec<_>, _>>()?;
            ys.push(u.op("y", Op::Concat { axis: 0 }, steps)?);
        }
        hs.push(u.reshape(hp, vec![1, batch, h])?);
        cs.push(u.reshape(cp, vec![1, batch, h])?);
    }
    let cat = |u: &mut Unroll, v: Vec<ValueId>, axis: usize| -> Result<ValueId, Problem> {
        if v.len() == 1 {
            Ok(v[0])
        } else {
            u.op("y", Op::Concat { axis }, v)
        }
    };
    let mut yh = cat(&mut u, hs, 0)?;
    let mut yc = cat(&mut u, cs, 0)?;
    let mut y = if want_y {
        Some(cat(&mut u, ys, 1)?)
    } else {
        None
    };
    if layout == 1 {
        let t3 = Op::Transpose {
            perm: vec![1, 0, 2],
        };
        yh = u.op("t", t3.clone(), vec![yh])?;
        yc = u.op("t", t3, vec![yc])?;
        if let Some(v) = y {
            y = Some(u.op(
                "t",
                Op::Transpose {
                    perm: vec![2, 0, 1, 3],
                },
                vec![v],
            )?);
        }
    }
    let mut out = vec![y.unwrap_or(yh), yh];
    if cell == Cell::Lstm {
        out.push(yc);
    }
    Ok(out)
}
