//! The QOperator format (ONNX's `QLinearConv`, `QLinearMatMul`,
//! `ConvInteger` and ONNX
//! Runtime's `com.microsoft` `QLinearAdd`, `QLinearMul`,
//! `QLinearGlobalAveragePool`, `QLinearAveragePool`, `QLinearConcat`,
//! `QLinearLeakyRelu`, `QLinearSigmoid`, `QGemm`): each node is read as the
//! QDQ pattern it stands for, `DequantizeLinear` on every quantized input →
//! the float op → `QuantizeLinear` with the output's parameters, built by
//! the same builders as a QDQ model's nodes. `fold-qdq` then turns the
//! pattern into the integer kernel; what it cannot fold runs as the float
//! simulation. An int32 bias is dequantized at `x_scale · w_scale`, as the
//! ops define it.

use super::R;
use crate::attrs::Attrs;
use crate::error::Problem;
use crate::export::{attr_f, attr_i};
use crate::node::NodeCx;
use crate::proto::{AttributeProto, NodeProto};

/// The nodes one QOperator node expands to, built one after the other.
struct Expansion<'c> {
    /// The original node's name, for value names and errors.
    base: String,
    nodes: Vec<NodeProto>,
    original: &'c NodeProto,
    /// The default-domain opset the expansion is read at (at least 13, where
    /// DequantizeLinear has `axis`).
    opset: i64,
}

impl<'c> Expansion<'c> {
    fn new(cx: &NodeCx<'_, 'c>) -> Self {
        Expansion {
            base: cx.name.clone(),
            nodes: vec![],
            original: cx.node,
            opset: cx.opset.max(13),
        }
    }

    /// Input `i` of the original node ("" when absent).
    fn input(&self, i: usize) -> String {
        self.original.input.get(i).cloned().unwrap_or_default()
    }

    /// Adds a node; returns the name of its output.
    fn add(&mut self, op: &str, inputs: Vec<String>, attrs: Vec<AttributeProto>) -> String {
        let tag = format!("{}{}", op, self.nodes.len());
        let out = format!("qcc::{}/{tag}", self.base);
        self.nodes.push(NodeProto {
            name: Some(format!("{}/{tag}", self.base)),
            op_type: Some(op.to_string()),
            input: inputs,
            output: vec![out.clone()],
            attribute: attrs,
            ..Default::default()
        });
        out
    }

    /// `DequantizeLinear(x, scale, zero_point)`, along `axis` when given.
    fn dq(&mut self, x: String, scale: String, zp: String, axis: Option<i64>) -> String {
        let attrs = axis.map(|a| vec![attr_i("axis", a)]).unwrap_or_default();
        self.add("DequantizeLinear", vec![x, scale, zp], attrs)
    }

    /// The original's inputs `i, i+1, i+2` (value, scale, zero point), dequantized.
    fn dq_input(&mut self, i: usize, axis: Option<i64>) -> String {
        self.dq(self.input(i), self.input(i + 1), self.input(i + 2), axis)
    }

    /// `QuantizeLinear(y, scale, zero_point)`, the original's output.
    fn q(&mut self, y: String, scale: String, zp: String) {
        self.add("QuantizeLinear", vec![y, scale, zp], vec![]);
        let last = self.nodes.last_mut().expect("just added");
        last.output = self.original.output.clone();
    }

    /// The original's attributes except `skip`.
    fn attrs_except(&self, skip: &[&str]) -> Vec<AttributeProto> {
        self.original
            .attribute
            .iter()
            .filter(|a| !skip.contains(&a.name()))
            .cloned()
            .collect()
    }

    /// Builds every node; returns the last one's outputs.
    fn build(self, cx: &mut NodeCx) -> R {
        let mut outs = vec![];
        for p in &self.nodes {
            let mut sub = NodeCx {
                imp: &mut *cx.imp,
                node: p,
                name: p.name().to_string(),
                opset: self.opset,
                attrs: Attrs(p),
            };
            outs = super::build(&mut sub).map_err(|e| match e {
                Problem::Node { op, msg, .. } => cx.err(format!("{msg} (in its {op})")),
                other => other,
            })?;
            for (name, v) in p.output.iter().zip(&outs) {
                cx.imp.bind(name, *v);
            }
        }
        Ok(outs)
    }
}

/// The axis a per-channel scale of input `i` runs along, `axis` when it
/// holds more than one value (otherwise per tensor: no axis).
fn per_channel(cx: &mut NodeCx, i: usize, axis: i64) -> Result<Option<i64>, Problem> {
    let s = cx
        .const_input(i, "scale")?
        .ok_or_else(|| cx.err(format!("input #{i} (scale) is missing")))?;
    Ok((s.numel() > 1).then_some(axis))
}

/// Channels-last layouts (ONNX Runtime's NHWC variants) are not read.
fn channels_first(cx: &NodeCx) -> Result<(), Problem> {
    if cx.attr(cx.attrs.int_or("channels_last", 0))? != 0 {
        return Err(cx.err("channels_last=1 is not supported"));
    }
    Ok(())
}

/// `ConvInteger(x, w, [x_zero_point], [w_zero_point])` → int32, read as
/// `Cast<int32>(Conv(float(x) - float(x_zp), w - w_zp))`: the weights (a
/// constant) minus their zero point (one, or one per output channel) become
/// a float constant; `x_zp` may be computed at run time (`quantize_dynamic`
/// writes DynamicQuantizeLinear's). The float Conv is exact because every
/// partial sum is a whole number below 2^24 (checked here from the weights
/// and the activation range, the widest one when `x_zp` is not a constant;
/// a convolution whose sums could reach 2^24 is refused, never rounded). Float convolutions with whole-number weights
/// never run as Winograd (`TargetFacts::for_float_weights`).
pub(super) fn conv_integer(cx: &mut NodeCx) -> R {
    use qcc_ir::{DType, Tensor};
    let x = cx.input(0)?;
    let xdt = cx.ty(x).dtype;
    let w = cx
        .const_input(1, "w")?
        .ok_or_else(|| cx.err("input #1 (w) is missing"))?;
    for (dt, what) in [(xdt, "x"), (w.dtype(), "w")] {
        if !matches!(dt, DType::I8 | DType::U8) {
            return Err(cx.err(format!("{what} must be int8 or uint8, got {}", dt.name())));
        }
    }
    let scalar = |cx: &NodeCx, t: Option<Tensor>, what: &str, dt: DType| {
        let Some(t) = t else { return Ok(vec![0]) };
        if t.dtype() != dt {
            return Err(cx.err(format!(
                "{what} {} does not match its operand's type",
                t.ty()
            )));
        }
        t.to_i64_vec()
            .ok_or_else(|| cx.err(format!("{what} is not an integer tensor")))
    };
    let (lo, hi) = if xdt == DType::U8 {
        (0, 255)
    } else {
        (-128, 127)
    };
    let xmax = match cx.opt_input(2)? {
        None => hi.max(-lo),
        Some(z) => {
            let zt = cx.ty(z);
            if zt.dtype != xdt || zt.numel() != 1 {
                return Err(cx.err(format!("x_zero_point {zt} must be one {}", xdt.name())));
            }
            match cx
                .imp
                .const_value(z)
                .ok()
                .flatten()
                .and_then(|t| t.to_i64_vec())
            {
                Some(zx) => (zx[0] - lo).max(hi - zx[0]),
                None => hi - lo,
            }
        }
    };
    let t = cx.const_input(3, "w_zero_point")?;
    let zw = scalar(cx, t, "w_zero_point", w.dtype())?;
    let oc = w.shape().first().copied().unwrap_or(0);
    if oc == 0 || (zw.len() != 1 && zw.len() != oc) {
        return Err(cx.err(format!(
            "w_zero_point holds {} values; expected 1 or {oc} (one per output channel)",
            zw.len()
        )));
    }
    let wv = w
        .to_i64_vec()
        .ok_or_else(|| cx.err("w is not an integer tensor"))?;
    let per = wv.len() / oc;
    let mut wf = Vec::with_capacity(wv.len());
    let mut worst = 0i64;
    for (o, row) in wv.chunks(per.max(1)).enumerate() {
        let z = zw[if zw.len() == 1 { 0 } else { o }];
        let sum: i64 = row.iter().map(|&v| (v - z).abs()).sum();
        worst = worst.max(sum * xmax);
        wf.extend(row.iter().map(|&v| (v - z) as f32));
    }
    if worst >= 1 << 24 {
        return Err(cx.err(format!(
            "its int32 sums reach up to {worst}, past 2^24, where qcc's exact float \
             evaluation of ConvInteger stops; not supported"
        )));
    }
    let wt = Tensor::from_f32(w.shape().to_vec(), wf).ok_or_else(|| cx.err("bad weights"))?;
    let wname = format!("qcc::{}/w", cx.name);
    let wvid = cx.add_const("w", wt);
    cx.imp.bind(&wname, wvid);
    let mut e = Expansion::new(cx);
    let to_f32 = |e: &mut Expansion, i: usize| {
        let v = e.input(i);
        e.add("Cast", vec![v], vec![attr_i("to", 1)])
    };
    let mut xf = to_f32(&mut e, 0);
    if cx.has_input(2) {
        let zf = to_f32(&mut e, 2);
        xf = e.add("Sub", vec![xf, zf], vec![]);
    }
    let y = e.add("Conv", vec![xf, wname], e.attrs_except(&[]));
    e.add("Cast", vec![y], vec![attr_i("to", 6)]);
    e.nodes.last_mut().expect("cast").output = cx.node.output.clone();
    e.build(cx)
}

/// `QLinearConv(x, x_scale, x_zp, w, w_scale, w_zp, y_scale, y_zp, [B])`.
pub(super) fn conv(cx: &mut NodeCx) -> R {
    let mut e = Expansion::new(cx);
    let axis = per_channel(cx, 4, 0)?;
    let x = e.dq_input(0, None);
    let w = e.dq_input(3, axis);
    let mut ins = vec![x, w];
    if cx.has_input(8) {
        let bs = e.add("Mul", vec![e.input(1), e.input(4)], vec![]);
        ins.push(e.dq(e.input(8), bs, String::new(), Some(0)));
    }
    let y = e.add("Conv", ins, e.attrs_except(&[]));
    e.q(y, e.input(6), e.input(7));
    e.build(cx)
}

/// `QLinearMatMul(a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp)`.
pub(super) fn matmul(cx: &mut NodeCx) -> R {
    let mut e = Expansion::new(cx);
    let b = cx.input(3)?;
    let rank = cx.ty(b).rank() as i64;
    let axis = per_channel(cx, 4, rank - 1)?;
    let a = e.dq_input(0, None);
    let b = e.dq_input(3, axis);
    let y = e.add("MatMul", vec![a, b], vec![]);
    e.q(y, e.input(6), e.input(7));
    e.build(cx)
}

/// `QGemm(A, a_scale, a_zp, B, b_scale, b_zp, [C], [y_scale, y_zp])`:
/// `alpha · (A·B + C)` in real terms (C at `a_scale · b_scale`), a float
/// output when `y_scale` is absent.
pub(super) fn gemm(cx: &mut NodeCx) -> R {
    let mut e = Expansion::new(cx);
    let trans_b = cx.attr(cx.attrs.int_or("transB", 0))? != 0;
    let axis = per_channel(cx, 4, if trans_b { 0 } else { 1 })?;
    let a = e.dq_input(0, None);
    let b = e.dq_input(3, axis);
    let mut ins = vec![a, b];
    if cx.has_input(6) {
        // ONNX Runtime's kernel computes `alpha · (A·B + C)`: C's scale is
        // `alpha · a_scale · b_scale`.
        let mut cs = e.add("Mul", vec![e.input(1), e.input(4)], vec![]);
        let alpha = cx.attr(cx.attrs.float_or("alpha", 1.0))?;
        if alpha != 1.0 {
            let a = e.add("Constant", vec![], vec![attr_f("value_float", alpha)]);
            cs = e.add("Mul", vec![cs, a], vec![]);
        }
        ins.push(e.dq(e.input(6), cs, String::new(), Some(0)));
    }
    let y = e.add("Gemm", ins, e.attrs_except(&[]));
    if cx.has_input(7) {
        e.q(y, e.input(7), e.input(8));
    } else {
        e.nodes.last_mut().expect("gemm").output = cx.node.output.clone();
    }
    e.build(cx)
}

/// `QLinearAdd` / `QLinearMul(A, A_scale, A_zp, B, B_scale, B_zp, C_scale, C_zp)`.
pub(super) fn binary(cx: &mut NodeCx, op: &str) -> R {
    let mut e = Expansion::new(cx);
    let a = e.dq_input(0, None);
    let b = e.dq_input(3, None);
    let y = e.add(op, vec![a, b], vec![]);
    e.q(y, e.input(6), e.input(7));
    e.build(cx)
}

/// `QLinearSigmoid`, `QLinearLeakyRelu`, `QLinearGlobalAveragePool`,
/// `QLinearAveragePool` `(X, X_scale, X_zp, Y_scale, Y_zp)` as `op` with the
/// node's other attributes.
pub(super) fn unary(cx: &mut NodeCx, op: &str) -> R {
    channels_first(cx)?;
    let mut e = Expansion::new(cx);
    let x = e.dq_input(0, None);
    let y = e.add(op, vec![x], e.attrs_except(&["channels_last"]));
    e.q(y, e.input(3), e.input(4));
    e.build(cx)
}

/// `QLinearSoftmax(X, X_scale, X_zp, Y_scale, Y_zp)`: Softmax with the
/// semantics of the opset its `opset` attribute names (the axis default and,
/// before 13, the flattening to 2-D).
pub(super) fn softmax(cx: &mut NodeCx) -> R {
    let opset = cx
        .attr(cx.attrs.int("opset"))?
        .ok_or_else(|| cx.err("attribute 'opset' is required"))?;
    if !(crate::model::MIN_OPSET..=crate::model::MAX_OPSET).contains(&opset) {
        return Err(cx.err(format!(
            "attribute 'opset' {opset} is not an opset qcc reads"
        )));
    }
    let mut e = Expansion::new(cx);
    e.opset = opset;
    let x = e.dq_input(0, None);
    let y = e.add("Softmax", vec![x], e.attrs_except(&["opset"]));
    e.q(y, e.input(3), e.input(4));
    e.build(cx)
}

/// `QLinearConcat(Y_scale, Y_zp, X0, X0_scale, X0_zp, X1, …)`.
pub(super) fn concat(cx: &mut NodeCx) -> R {
    let n = cx.num_inputs();
    if n < 5 || !(n - 2).is_multiple_of(3) {
        return Err(cx.err(format!(
            "{n} inputs: expected Y_scale, Y_zero_point and (X, X_scale, X_zero_point) triples"
        )));
    }
    let mut e = Expansion::new(cx);
    let xs: Vec<String> = (2..n).step_by(3).map(|i| e.dq_input(i, None)).collect();
    let y = e.add("Concat", xs, e.attrs_except(&[]));
    e.q(y, e.input(0), e.input(1));
    e.build(cx)
}
