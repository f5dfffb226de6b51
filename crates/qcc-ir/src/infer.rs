//! Shape and type inference: one rule per op, used when nodes are added and
//! again by the verifier.

use crate::op::{BinaryOp, ConvAttrs, Op, PoolAttrs, UnaryOp};
use crate::quant::{Epilogue, MAX_SHIFT};
use crate::types::{broadcast_shapes, DType, TensorType};

type R = Result<Vec<TensorType>, String>;

fn one(t: TensorType) -> R {
    Ok(vec![t])
}

fn need_float(t: &TensorType, what: &str) -> Result<(), String> {
    if t.dtype == DType::F32 {
        Ok(())
    } else {
        Err(format!("{what} must be f32, got {}", t.dtype))
    }
}

fn check_len(v: &[usize], n: usize, what: &str) -> Result<(), String> {
    if v.len() == n {
        Ok(())
    } else {
        Err(format!("{what} has {} entries, expected {n}", v.len()))
    }
}

/// Output size of a sliding window along one dim.
fn window_out(
    input: usize,
    k: usize,
    stride: usize,
    dil: usize,
    pad_begin: usize,
    pad_end: usize,
    ceil: bool,
) -> Result<usize, String> {
    let eff = (k.max(1) - 1) * dil + 1;
    let pad = pad_begin + pad_end;
    let span = input + pad;
    if span < eff || stride == 0 {
        return Err(format!(
            "window of {eff} (kernel {k}, dilation {dil}) does not fit input {input} with padding {pad}"
        ));
    }
    let mut out = if ceil {
        (span - eff).div_ceil(stride) + 1
    } else {
        (span - eff) / stride + 1
    };
    // ONNX: with ceil_mode the last window must start inside the input or left padding.
    if ceil && (out - 1) * stride >= input + pad_begin {
        out -= 1;
    }
    Ok(out)
}

fn pool_shape(x: &TensorType, p: &PoolAttrs) -> R {
    if x.rank() < 3 {
        return Err(format!("input must be [N,C,spatial…], got {x}"));
    }
    let n = x.rank() - 2;
    check_len(&p.kernel, n, "kernel")?;
    check_len(&p.strides, n, "strides")?;
    check_len(&p.dilations, n, "dilations")?;
    check_len(&p.pads, 2 * n, "pads")?;
    let mut shape = x.shape[..2].to_vec();
    for i in 0..n {
        shape.push(window_out(
            x.shape[2 + i],
            p.kernel[i],
            p.strides[i],
            p.dilations[i],
            p.pads[i],
            p.pads[i + n],
            p.ceil_mode,
        )?);
    }
    one(TensorType::new(x.dtype, shape))
}

/// Value range of an 8-bit integer type; `None` for other types.
pub fn int8_range(t: DType) -> Option<(i32, i32)> {
    match t {
        DType::I8 => Some((-128, 127)),
        DType::U8 => Some((0, 255)),
        _ => None,
    }
}

fn need_int8(t: &TensorType, what: &str) -> Result<(i32, i32), String> {
    int8_range(t.dtype).ok_or_else(|| format!("{what} must be i8 or u8, got {t}"))
}

/// Largest K of a `MatMulInteger`: `K · 255²` fits in i32.
pub const MATMUL_INTEGER_MAX_K: usize = (i32::MAX / (255 * 255)) as usize;

/// Checks that `t` is 8-bit and `zp` lies in its range.
fn need_int8_zp(t: &TensorType, zp: i32, what: &str) -> Result<(), String> {
    let (lo, hi) = need_int8(t, what)?;
    if (lo..=hi).contains(&zp) {
        Ok(())
    } else {
        Err(format!(
            "{what} zero point {zp} outside {}'s range",
            t.dtype
        ))
    }
}

/// Checks an epilogue: valid rescale with 1 or `channels` entries, zero point
/// and clamp bounds inside `to`'s range.
fn check_epilogue(e: &Epilogue, channels: usize, to: DType) -> Result<(), String> {
    let (lo, hi) =
        int8_range(to).ok_or_else(|| format!("output type must be i8 or u8, got {to}"))?;
    let r = &e.rescale;
    let n = r.multiplier.len();
    if n == 0 || n != r.shift.len() || (n != 1 && n != channels) {
        return Err(format!(
            "epilogue has {n} multipliers and {} shifts; want 1 or {channels}",
            r.shift.len()
        ));
    }
    if r.multiplier.iter().any(|&m| m < 1) || r.shift.iter().any(|&s| s > MAX_SHIFT) {
        return Err("epilogue multipliers must be positive and shifts at most 62".into());
    }
    if let Some(f) = &r.float {
        if f.scales.len() != n {
            return Err(format!(
                "epilogue has {} float scales for {n} multipliers",
                f.scales.len()
            ));
        }
        if let Some(s) = f
            .scales
            .iter()
            .find(|&&s| !crate::quant::valid_float_scale(s))
        {
            return Err(format!(
                "epilogue float scale {s} is not a normal positive f32 below 2^31"
            ));
        }
    }
    if !(lo..=hi).contains(&e.zero_point) || e.min > e.max || e.min < lo || e.max > hi {
        return Err(format!(
            "epilogue zero point {} / clamp [{}, {}] outside {to}'s range",
            e.zero_point, e.min, e.max
        ));
    }
    Ok(())
}

/// Whether every window of an average pool counts the same number of cells.
fn uniform_windows(x: &TensorType, p: &PoolAttrs, out: &[usize]) -> bool {
    let n = p.kernel.len();
    (0..n).all(|i| {
        let last_end = (out[2 + i] - 1) * p.strides[i] + (p.kernel[i] - 1) * p.dilations[i] + 1;
        let padded = x.shape[2 + i] + p.pads[i] + p.pads[i + n];
        let no_pad = p.pads[i] == 0 && p.pads[i + n] == 0;
        last_end <= padded && (p.count_include_pad || no_pad)
    })
}

/// Infers the output types of `op` applied to inputs of the given types,
/// with the quantization parameters the op decides: `Quantize`'s own, and
/// for 8-bit outputs of [`Op::keeps_quant`] ops their first input's.
pub fn infer(op: &Op, ins: &[&TensorType]) -> R {
    let mut out = infer_layout(op, ins)?;
    for t in &mut out {
        t.quant = match op {
            Op::Quantize { q, .. } => Some(*q),
            op if op.keeps_quant() && int8_range(t.dtype).is_some() => {
                ins.first().and_then(|i| i.quant)
            }
            _ => None,
        };
    }
    Ok(out)
}

/// Element types and shapes of `op`'s outputs.
fn infer_layout(op: &Op, ins: &[&TensorType]) -> R {
    let (lo, hi) = op.arity();
    if ins.len() < lo || ins.len() > hi {
        return Err(format!(
            "takes {} inputs, got {}",
            if lo == hi {
                lo.to_string()
            } else if hi == usize::MAX {
                format!("at least {lo}")
            } else {
                format!("{lo} to {hi}")
            },
            ins.len()
        ));
    }
    match op {
        Op::Input { .. } | Op::Const { .. } => {
            Err("input and const nodes carry their own type".into())
        }
        Op::ConvClamp { conv, .. } => infer(&Op::Conv(conv.clone()), ins),
        Op::ConvAdd { conv, .. } => {
            let y = infer(&Op::Conv(conv.clone()), &ins[..3])?;
            match y.first() {
                Some(t) if t.same_layout(ins[3]) => Ok(y),
                Some(t) => Err(format!("residual {} does not match the output {t}", ins[3])),
                None => Err("internal: a convolution has no output".into()),
            }
        }
        Op::Conv(c) => {
            let (x, w) = (ins[0], ins[1]);
            need_float(x, "input")?;
            need_float(w, "weight")?;
            if x.rank() < 3 || w.rank() != x.rank() {
                return Err(format!(
                    "input {x} and weight {w} must both be [N,C,spatial…]"
                ));
            }
            let n = x.rank() - 2;
            check_len(&c.strides, n, "strides")?;
            check_len(&c.dilations, n, "dilations")?;
            check_len(&c.pads, 2 * n, "pads")?;
            if c.group == 0 || x.shape[1] % c.group != 0 || w.shape[0] % c.group != 0 {
                return Err(format!(
                    "group {} does not divide input channels {} and output channels {}",
                    c.group, x.shape[1], w.shape[0]
                ));
            }
            if w.shape[1] * c.group != x.shape[1] {
                return Err(format!(
                    "weight {w} expects {} input channels (group {}), input has {}",
                    w.shape[1] * c.group,
                    c.group,
                    x.shape[1]
                ));
            }
            if let Some(b) = ins.get(2) {
                if b.shape != [w.shape[0]] {
                    return Err(format!("bias {b} must be [{}]", w.shape[0]));
                }
            }
            let mut shape = vec![x.shape[0], w.shape[0]];
            for i in 0..n {
                shape.push(window_out(
                    x.shape[2 + i],
                    w.shape[2 + i],
                    c.strides[i],
                    c.dilations[i],
                    c.pads[i],
                    c.pads[i + n],
                    false,
                )?);
            }
            one(TensorType::f32(shape))
        }
        Op::ConvTranspose(c) => {
            let (x, w) = (ins[0], ins[1]);
            need_float(x, "input")?;
            need_float(w, "weight")?;
            if x.rank() < 3 || w.rank() != x.rank() {
                return Err(format!(
                    "input {x} and weight {w} must both be [N,C,spatial…]"
                ));
            }
            let n = x.rank() - 2;
            check_len(&c.strides, n, "strides")?;
            check_len(&c.dilations, n, "dilations")?;
            check_len(&c.pads, 2 * n, "pads")?;
            check_len(&c.output_padding, n, "output_padding")?;
            if c.group == 0 || w.shape[0] != x.shape[1] || x.shape[1] % c.group != 0 {
                return Err(format!(
                    "weight {w} does not match input {x} with group {}",
                    c.group
                ));
            }
            let m = w.shape[1] * c.group;
            if let Some(b) = ins.get(2) {
                if b.shape != [m] {
                    return Err(format!("bias {b} must be [{m}]"));
                }
            }
            let mut shape = vec![x.shape[0], m];
            if x.shape[2..].contains(&0) || w.shape[2..].contains(&0) {
                return Err(format!(
                    "input {x} and weight {w} must have non-empty spatial dims"
                ));
            }
            for i in 0..n {
                let full = c.strides[i] * (x.shape[2 + i] - 1)
                    + c.output_padding[i]
                    + (w.shape[2 + i] - 1) * c.dilations[i]
                    + 1;
                let pad = c.pads[i] + c.pads[i + n];
                if full <= pad {
                    return Err(format!("padding {pad} removes the whole output dim {i}"));
                }
                shape.push(full - pad);
            }
            one(TensorType::f32(shape))
        }
        Op::Gemm {
            trans_a, trans_b, ..
        } => {
            let (a, b) = (ins[0], ins[1]);
            need_float(a, "A")?;
            need_float(b, "B")?;
            if a.rank() != 2 || b.rank() != 2 {
                return Err(format!("A {a} and B {b} must be 2-D"));
            }
            let (m, ka) = if *trans_a {
                (a.shape[1], a.shape[0])
            } else {
                (a.shape[0], a.shape[1])
            };
            let (kb, n) = if *trans_b {
                (b.shape[1], b.shape[0])
            } else {
                (b.shape[0], b.shape[1])
            };
            if ka != kb {
                return Err(format!("inner dims differ: A {a} vs B {b}"));
            }
            if let Some(c) = ins.get(2) {
                match broadcast_shapes(&c.shape, &[m, n]) {
                    Some(s) if s == [m, n] => {}
                    _ => return Err(format!("C {c} does not broadcast to [{m},{n}]")),
                }
            }
            one(TensorType::f32(vec![m, n]))
        }
        Op::SignConv { conv, .. } => {
            let (x, w) = (ins[0], ins[1]);
            if x.rank() != 4 || conv.group != 1 {
                return Err(format!(
                    "input {x} must be [N,C,H,W] and the convolution one group (group {})",
                    conv.group
                ));
            }
            let y = infer(&Op::Conv(conv.clone()), &ins[..2])?;
            let taps = w.shape[2] * w.shape[3];
            let k = w.shape[1] * taps;
            if k == 0 || k > crate::SIGN_MATMUL_MAX_K || taps > crate::SIGN_CONV_MAX_TAPS {
                return Err(format!(
                    "window of {k} values ({taps} taps) is outside 1..={} ({} taps)",
                    crate::SIGN_MATMUL_MAX_K,
                    crate::SIGN_CONV_MAX_TAPS
                ));
            }
            Ok(y)
        }
        Op::SignMatMul { .. } => {
            let (u, w) = (ins[0], ins[1]);
            need_float(u, "U")?;
            need_float(w, "W")?;
            match (u.shape.last(), w.shape.as_slice()) {
                (Some(&k), _) if k == 0 || k > crate::SIGN_MATMUL_MAX_K => Err(format!(
                    "K = {k} is outside 1..={}",
                    crate::SIGN_MATMUL_MAX_K
                )),
                (Some(&k), &[kw, n]) if k == kw => {
                    let mut shape = u.shape[..u.rank() - 1].to_vec();
                    shape.push(n);
                    one(TensorType::f32(shape))
                }
                _ => Err(format!("U {u} and W {w} must be [..., K] and [K, N]")),
            }
        }
        Op::MatMul => {
            let (a, b) = (ins[0], ins[1]);
            need_float(a, "A")?;
            need_float(b, "B")?;
            if a.rank() == 0 || b.rank() == 0 {
                return Err("operands must have rank ≥ 1".into());
            }
            let ash: Vec<usize> = if a.rank() == 1 {
                vec![1, a.shape[0]]
            } else {
                a.shape.clone()
            };
            let bsh: Vec<usize> = if b.rank() == 1 {
                vec![b.shape[0], 1]
            } else {
                b.shape.clone()
            };
            let (m, k) = (ash[ash.len() - 2], ash[ash.len() - 1]);
            let (k2, n) = (bsh[bsh.len() - 2], bsh[bsh.len() - 1]);
            if k != k2 {
                return Err(format!("inner dims differ: A {a} vs B {b}"));
            }
            let batch = broadcast_shapes(&ash[..ash.len() - 2], &bsh[..bsh.len() - 2])
                .ok_or_else(|| format!("batch dims of A {a} and B {b} do not broadcast"))?;
            let mut shape = batch;
            if a.rank() > 1 {
                shape.push(m);
            }
            if b.rank() > 1 {
                shape.push(n);
            }
            one(TensorType::f32(shape))
        }
        // Neg, Abs and Sign also take signed integers (Neg and Abs
        // wrapping); the rest are float.
        Op::Unary(UnaryOp::Neg | UnaryOp::Abs | UnaryOp::Sign)
            if matches!(ins[0].dtype, DType::I64 | DType::I32 | DType::I8) =>
        {
            one(ins[0].clone())
        }
        Op::Unary(_) => {
            need_float(ins[0], "input")?;
            one(ins[0].clone())
        }
        Op::Binary(b) => {
            let (x, y) = (ins[0], ins[1]);
            if x.dtype != y.dtype {
                return Err(format!("operand types differ: {x} vs {y}"));
            }
            if matches!(b, BinaryOp::Pow | BinaryOp::PRelu) {
                need_float(x, "input")?;
            }
            let shape = broadcast_shapes(&x.shape, &y.shape)
                .ok_or_else(|| format!("shapes {x} and {y} do not broadcast"))?;
            if *b == BinaryOp::PRelu && shape != x.shape {
                return Err(format!("slope {y} must broadcast to input {x}"));
            }
            one(TensorType::new(x.dtype, shape))
        }
        Op::Compare(_) => {
            let (x, y) = (ins[0], ins[1]);
            if x.dtype != y.dtype {
                return Err(format!("operand types differ: {x} vs {y}"));
            }
            let shape = broadcast_shapes(&x.shape, &y.shape)
                .ok_or_else(|| format!("shapes {x} and {y} do not broadcast"))?;
            one(TensorType::new(DType::Bool, shape))
        }
        Op::Logic(_) => {
            let (x, y) = (ins[0], ins[1]);
            if x.dtype != DType::Bool || y.dtype != DType::Bool {
                return Err(format!("operands must be bool, got {x} and {y}"));
            }
            let shape = broadcast_shapes(&x.shape, &y.shape)
                .ok_or_else(|| format!("shapes {x} and {y} do not broadcast"))?;
            one(TensorType::new(DType::Bool, shape))
        }
        Op::Not => {
            if ins[0].dtype != DType::Bool {
                return Err(format!("input must be bool, got {}", ins[0]));
            }
            one(ins[0].clone())
        }
        Op::Where => {
            let (c, x, y) = (ins[0], ins[1], ins[2]);
            if c.dtype != DType::Bool {
                return Err(format!("condition must be bool, got {c}"));
            }
            if x.dtype != y.dtype {
                return Err(format!("operand types differ: {x} vs {y}"));
            }
            let shape = broadcast_shapes(&c.shape, &x.shape)
                .and_then(|s| broadcast_shapes(&s, &y.shape))
                .ok_or_else(|| format!("shapes {c}, {x} and {y} do not broadcast"))?;
            one(TensorType::new(x.dtype, shape))
        }
        Op::Softmax { axis } => {
            need_float(ins[0], "input")?;
            if *axis >= ins[0].rank() {
                return Err(format!("axis {axis} out of range for {}", ins[0]));
            }
            one(ins[0].clone())
        }
        Op::MaxPool(p) => {
            if !matches!(ins[0].dtype, DType::F32 | DType::I8 | DType::U8) {
                return Err(format!("input must be f32, i8 or u8, got {}", ins[0]));
            }
            pool_shape(ins[0], p)
        }
        Op::AveragePool(p) => {
            need_float(ins[0], "input")?;
            pool_shape(ins[0], p)
        }
        Op::Reduce { axes, keepdims, .. } => {
            let x = ins[0];
            need_float(x, "input")?;
            if axes.iter().any(|&a| a >= x.rank()) {
                return Err(format!("axes {axes:?} out of range for {x}"));
            }
            let mut shape = vec![];
            for (i, &d) in x.shape.iter().enumerate() {
                if axes.contains(&i) {
                    if *keepdims {
                        shape.push(1);
                    }
                } else {
                    shape.push(d);
                }
            }
            one(TensorType::f32(shape))
        }
        Op::BatchNorm { .. } => {
            let x = ins[0];
            need_float(x, "input")?;
            if x.rank() < 2 {
                return Err(format!("input {x} must be [N,C,…]"));
            }
            for (t, what) in ins[1..].iter().zip(["scale", "bias", "mean", "var"]) {
                if t.shape != [x.shape[1]] || t.dtype != DType::F32 {
                    return Err(format!("{what} {t} must be f32[{}]", x.shape[1]));
                }
            }
            one(x.clone())
        }
        Op::Reshape { shape } => {
            let count = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
            if count != Some(ins[0].numel()) {
                return Err(format!(
                    "cannot reshape {} ({} elements) to {shape:?}",
                    ins[0],
                    ins[0].numel()
                ));
            }
            one(TensorType::new(ins[0].dtype, shape.clone()))
        }
        Op::Transpose { perm } => {
            let x = ins[0];
            let mut seen = vec![false; x.rank()];
            if perm.len() != x.rank()
                || perm
                    .iter()
                    .any(|&p| p >= x.rank() || std::mem::replace(&mut seen[p], true))
            {
                return Err(format!("perm {perm:?} is not a permutation of {x}'s dims"));
            }
            one(TensorType::new(
                x.dtype,
                perm.iter().map(|&p| x.shape[p]).collect::<Vec<_>>(),
            ))
        }
        Op::Concat { axis } => {
            let first = ins[0];
            if *axis >= first.rank() {
                return Err(format!("axis {axis} out of range for {first}"));
            }
            let mut shape = first.shape.clone();
            shape[*axis] = 0;
            for t in ins {
                let same = t.dtype == first.dtype
                    && t.rank() == first.rank()
                    && (0..t.rank()).all(|i| i == *axis || t.shape[i] == first.shape[i]);
                if !same {
                    return Err(format!("inputs {first} and {t} differ off axis {axis}"));
                }
                shape[*axis] += t.shape[*axis];
            }
            one(TensorType::new(first.dtype, shape))
        }
        Op::Slice {
            starts,
            steps,
            lens,
        } => {
            let x = ins[0];
            if starts.len() != x.rank() || steps.len() != x.rank() || lens.len() != x.rank() {
                return Err(format!(
                    "starts/steps/lens must have one entry per dim of {x}"
                ));
            }
            for d in 0..x.rank() {
                let (s, st, n) = (starts[d], steps[d], lens[d] as i64);
                if n == 0 {
                    continue;
                }
                let last = (n - 1)
                    .checked_mul(st)
                    .and_then(|o| o.checked_add(s))
                    .ok_or_else(|| format!("dim {d}: slice bounds overflow"))?;
                let dim = x.shape[d] as i64;
                if st == 0 || s < 0 || s >= dim || last < 0 || last >= dim {
                    return Err(format!(
                        "dim {d}: start {s}, step {st}, {n} elements leave [0,{dim})"
                    ));
                }
            }
            one(TensorType::new(x.dtype, lens.clone()))
        }
        Op::Pad { pads, .. } => {
            let x = ins[0];
            let n = x.rank();
            check_len(pads, 2 * n, "pads")?;
            let shape = (0..n)
                .map(|i| {
                    x.shape[i]
                        .checked_add(pads[i])
                        .and_then(|v| v.checked_add(pads[i + n]))
                })
                .collect::<Option<Vec<usize>>>()
                .ok_or("padded size overflows")?;
            one(TensorType::new(x.dtype, shape))
        }
        Op::Resize(r) => {
            let x = ins[0];
            need_float(x, "input")?;
            if r.sizes.len() != x.rank() || r.scales.len() != x.rank() {
                return Err(format!("sizes/scales must have one entry per dim of {x}"));
            }
            one(TensorType::f32(r.sizes.clone()))
        }
        Op::Cast { to } => one(TensorType::new(*to, ins[0].shape.clone())),
        Op::Gather { axis } => {
            let (x, idx) = (ins[0], ins[1]);
            if *axis >= x.rank() {
                return Err(format!("axis {axis} out of range for {x}"));
            }
            if !matches!(idx.dtype, DType::I64 | DType::I32) {
                return Err(format!("indices must be i64 or i32, got {idx}"));
            }
            let mut shape = x.shape[..*axis].to_vec();
            shape.extend(&idx.shape);
            shape.extend(&x.shape[axis + 1..]);
            one(TensorType::new(x.dtype, shape))
        }
        Op::Quantize { q, to } => {
            need_float(ins[0], "input")?;
            let (lo, hi) = int8_range(*to).ok_or_else(|| format!("cannot quantize to {to}"))?;
            if !(q.scale.is_finite() && q.scale > 0.0 && (lo..=hi).contains(&q.zero_point)) {
                return Err(format!("bad quantization parameters {q:?} for {to}"));
            }
            one(TensorType::new(*to, ins[0].shape.clone()))
        }
        Op::Dequantize { q } => {
            if !matches!(ins[0].dtype, DType::I8 | DType::U8 | DType::I32) {
                return Err(format!("input must be i8, u8 or i32, got {}", ins[0]));
            }
            if !(q.scale.is_finite() && q.scale > 0.0) {
                return Err(format!("bad scale {}", q.scale));
            }
            one(TensorType::f32(ins[0].shape.clone()))
        }
        Op::Requantize {
            in_zero_point,
            epi,
            to,
        } => {
            let (lo, hi) = need_int8(ins[0], "input")?;
            if !(lo..=hi).contains(in_zero_point) {
                return Err(format!(
                    "input zero point {in_zero_point} outside {}",
                    ins[0].dtype
                ));
            }
            check_epilogue(epi, 1, *to)?;
            one(TensorType::new(*to, ins[0].shape.clone()))
        }
        Op::QConv { conv, epi, to, .. } => {
            need_int8(ins[0], "input")?;
            if ins[1].dtype != DType::I8 || ins[2].dtype != DType::I32 {
                return Err(format!(
                    "weight must be i8 and bias i32, got {} and {}",
                    ins[1], ins[2]
                ));
            }
            let shape = float_conv_shape(conv, ins)?;
            check_epilogue(epi, shape[1], *to)?;
            one(TensorType::new(*to, shape))
        }
        Op::QGemm {
            a_zero_point,
            epi,
            to,
        } => {
            let (a, b, bias) = (ins[0], ins[1], ins[2]);
            need_int8_zp(a, *a_zero_point, "A")?;
            if b.dtype != DType::I8 || bias.dtype != DType::I32 {
                return Err(format!("B must be i8 and bias i32, got {b} and {bias}"));
            }
            if a.rank() != 2 || b.rank() != 2 || a.shape[1] != b.shape[0] {
                return Err(format!("A {a} and B {b} must be [M,K] and [K,N]"));
            }
            if bias.shape != [b.shape[1]] {
                return Err(format!("bias {bias} must be [{}]", b.shape[1]));
            }
            check_epilogue(epi, b.shape[1], *to)?;
            one(TensorType::new(*to, vec![a.shape[0], b.shape[1]]))
        }
        Op::QAdd {
            a_zero_point,
            b_zero_point,
            epi,
            to,
            ..
        }
        | Op::QMul {
            a_zero_point,
            b_zero_point,
            epi,
            to,
        } => {
            need_int8_zp(ins[0], *a_zero_point, "A")?;
            need_int8_zp(ins[1], *b_zero_point, "B")?;
            let shape = broadcast_shapes(&ins[0].shape, &ins[1].shape)
                .ok_or_else(|| format!("shapes {} and {} do not broadcast", ins[0], ins[1]))?;
            check_epilogue(epi, 1, *to)?;
            one(TensorType::new(*to, shape))
        }
        Op::QAvgPool {
            pool,
            x_zero_point,
            epi,
        } => {
            need_int8_zp(ins[0], *x_zero_point, "input")?;
            let out = pool_shape(ins[0], pool)?;
            if !uniform_windows(ins[0], pool, &out[0].shape) {
                return Err("windows count different numbers of cells".into());
            }
            check_epilogue(epi, 1, ins[0].dtype)?;
            Ok(out)
        }
        Op::QMean {
            axes,
            keepdims,
            x_zero_point,
            epi,
        } => {
            let x = ins[0];
            need_int8_zp(x, *x_zero_point, "input")?;
            let f = TensorType::f32(x.shape.clone());
            let out = infer(
                &Op::Reduce {
                    op: crate::op::ReduceOp::Mean,
                    axes: axes.clone(),
                    keepdims: *keepdims,
                },
                &[&f],
            )?;
            check_epilogue(epi, 1, x.dtype)?;
            one(TensorType::new(x.dtype, out[0].shape.clone()))
        }
        Op::MatMulInteger => {
            let [a, b, az, bz] = ins else {
                return Err(format!("needs 4 inputs, got {}", ins.len()));
            };
            need_int8(a, "A")?;
            need_int8(b, "B")?;
            if az.dtype != a.dtype || az.numel() != 1 || az.rank() > 1 {
                return Err(format!("a_zero_point {az} must be one {} value", a.dtype));
            }
            let shape = integer_matmul_shape(a, b)?;
            let n = shape[shape.len() - 1];
            if bz.dtype != b.dtype || bz.rank() > 1 || (bz.numel() != 1 && bz.numel() != n) {
                return Err(format!(
                    "b_zero_point {bz} must be one {} value or one per column",
                    b.dtype
                ));
            }
            one(TensorType::new(DType::I32, shape))
        }
        Op::QMatMul {
            a_zero_point,
            b_zero_point,
            epi,
            to,
        } => {
            let (a, b) = (ins[0], ins[1]);
            if a.dtype != DType::I8 || b.dtype != DType::I8 {
                return Err(format!("A {a} and B {b} must be i8"));
            }
            need_int8_zp(a, *a_zero_point, "A")?;
            need_int8_zp(b, *b_zero_point, "B")?;
            let shape = integer_matmul_shape(a, b)?;
            check_epilogue(epi, 1, *to)?;
            if epi.rescale.channels() != 1 {
                return Err("the epilogue must be per tensor".into());
            }
            one(TensorType::new(*to, shape))
        }
        Op::QSoftmax {
            table,
            scale_inv,
            zero_point,
            to,
        } => {
            let x = ins[0];
            if x.dtype != DType::I8 || x.rank() == 0 {
                return Err(format!("input must be an i8 tensor of rank ≥ 1, got {x}"));
            }
            let (lo, hi) =
                int8_range(*to).ok_or_else(|| format!("output type must be i8 or u8, got {to}"))?;
            let top = crate::quant::SOFTMAX_ONE;
            if table.len() != 256 || table[0] <= 0 || table.iter().any(|&t| !(0..=top).contains(&t))
            {
                return Err(format!(
                    "table must have 256 entries in 0..={top}, the first > 0"
                ));
            }
            if x.shape[x.rank() - 1] > crate::quant::SOFTMAX_MAX_ROW {
                return Err(format!(
                    "rows longer than {} elements",
                    crate::quant::SOFTMAX_MAX_ROW
                ));
            }
            if !(1..=32768).contains(scale_inv) || !(lo..=hi).contains(zero_point) {
                return Err(format!(
                    "step 1/{scale_inv} and zero point {zero_point} must be 1/1..1/32768 and within {to}"
                ));
            }
            one(TensorType::new(*to, x.shape.clone()))
        }
        Op::Lut { table, to } => {
            need_int8(ins[0], "input")?;
            let (lo, hi) =
                int8_range(*to).ok_or_else(|| format!("output type must be i8 or u8, got {to}"))?;
            if table.len() != 256 || table.iter().any(|v| !(lo..=hi).contains(v)) {
                return Err(format!("table must have 256 entries within {to}'s range"));
            }
            one(TensorType::new(*to, ins[0].shape.clone()))
        }
    }
}

/// The output shape `[…, M, N]` of an integer matrix product of A
/// `[…, M, K]` and B `[K, N]` or `[…, K, N]` (A's batch dims), whose i32
/// sums of 8-bit differences cannot overflow (K ≤ [`MATMUL_INTEGER_MAX_K`]).
fn integer_matmul_shape(a: &TensorType, b: &TensorType) -> Result<Vec<usize>, String> {
    if a.rank() < 2 || b.rank() < 2 {
        return Err(format!("A {a} and B {b} must have rank ≥ 2"));
    }
    let (m, k) = (a.shape[a.rank() - 2], a.shape[a.rank() - 1]);
    let (k2, n) = (b.shape[b.rank() - 2], b.shape[b.rank() - 1]);
    if k != k2 {
        return Err(format!("inner dims differ: A {a} vs B {b}"));
    }
    let batch = &a.shape[..a.rank() - 2];
    if b.rank() != 2 && (b.rank() != a.rank() || &b.shape[..b.rank() - 2] != batch) {
        return Err(format!("B {b} must be 2-D or have A's batch dims ({a})"));
    }
    if k > MATMUL_INTEGER_MAX_K {
        return Err(format!(
            "K = {k} could overflow the i32 accumulator (at most {MATMUL_INTEGER_MAX_K})"
        ));
    }
    let mut shape = batch.to_vec();
    shape.extend([m, n]);
    Ok(shape)
}

/// The output shape of a convolution, checked as for f32 operands.
fn float_conv_shape(conv: &ConvAttrs, ins: &[&TensorType]) -> Result<Vec<usize>, String> {
    let x = TensorType::f32(ins[0].shape.clone());
    let w = TensorType::f32(ins[1].shape.clone());
    let b = TensorType::f32(ins[2].shape.clone());
    let out = infer(&Op::Conv(conv.clone()), &[&x, &w, &b])?;
    Ok(out[0].shape.clone())
}
