//! QuantizeLinear and DequantizeLinear: the QDQ form of a model someone
//! already quantized (ONNX Runtime's `quantize_static`, PyTorch and NNCF
//! exporters).
//!
//! The scales and zero points are honoured as given, never recalibrated.
//! A run-time tensor with one scale and one zero point becomes the IR's
//! `Quantize` / `Dequantize` (the same exact rounding the interpreter and
//! the kernels share, `qcc_ir::quant`); a constant tensor (int8 weights,
//! int32 biases) is computed here, whatever its quantization axis or
//! blocks, so the float ops after a weight's DequantizeLinear see the very
//! floats ONNX defines (`(q - zero_point) · scale` in f32). What is left is
//! the float simulation of the quantized model, which ONNX Runtime runs
//! with its graph optimizations off. A run-time tensor dequantized per axis
//! or in blocks (an int8 embedding row gathered at run time) is
//! `(x - zero_point) · scale` with broadcast constants, and quantized per
//! axis or in blocks, `Cast(clamp(round(clamp(x / scale, ±2^16)) +
//! zero_point, lo, hi))`: float ops that compute [`qcc_ir::quant::quantize`]
//! element by element (every intermediate is a whole number below 2^24
//! after the rounding, so the f32 additions are exact). Blocked parameters
//! are expanded to the tensor's shape. int4 and uint4 (opset 21) are held
//! one value per byte as int8 and uint8, quantized by the same float ops
//! to their 4-bit range.

use super::R;
use crate::error::Problem;
use crate::node::NodeCx;
use qcc_ir::quant::QParams;
use qcc_ir::{DType, Op, Tensor, TensorData};

/// The quantization parameters of one node: scale(s), zero point(s), and
/// how they map onto the elements of a tensor of shape `shape`.
struct Params {
    scale: Vec<f32>,
    zero: Vec<i32>,
    /// The 8-bit type of the quantized side (the zero point's).
    qtype: DType,
    /// Quantization axis (per-axis and blocked).
    axis: usize,
    /// Elements along `axis` that share one scale (1: per-axis; the whole
    /// axis when per-tensor).
    block: usize,
}

impl Params {
    /// Reads inputs 1 (scale) and 2 (zero point) and the `axis` and
    /// `block_size` attributes for a tensor of `shape`; `default_q` is the
    /// quantized type when no zero point says otherwise.
    fn read(
        cx: &mut NodeCx,
        shape: &[usize],
        default_q: DType,
    ) -> Result<Params, crate::error::Problem> {
        let scale = cx
            .const_input(1, "scale")?
            .ok_or_else(|| cx.err("required input #1 (scale) is missing"))?;
        if scale.dtype() != DType::F32 {
            return Err(cx.err(format!("scale must be float, got {}", scale.ty())));
        }
        let zp = cx.const_input(2, "zero_point")?;
        let qtype = zp.as_ref().map_or(default_q, |z| z.dtype());
        if !matches!(qtype, DType::I8 | DType::U8) {
            return Err(cx.err(format!(
                "quantized type {} is not supported (int8 and uint8 are)",
                qtype.name()
            )));
        }
        let zero = zero_points(cx, zp.as_ref(), scale.numel())?;
        // (One value each is one value, whatever the ranks: ONNX's own
        // 4-bit tests give a scalar scale with a `[1]` zero point.)
        let one_each = scale.numel() == 1 && zp.as_ref().is_some_and(|z| z.numel() == 1);
        if !one_each && zp.as_ref().is_some_and(|z| z.shape() != scale.shape()) {
            return Err(cx.err(format!(
                "zero_point {} does not match scale {}",
                zp.as_ref().map(|z| z.ty().to_string()).unwrap_or_default(),
                scale.ty()
            )));
        }
        let scale_v = scale.to_f32_vec();
        if let Some(s) = scale_v.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return Err(cx.err(format!("scale {s} is not a positive finite number")));
        }
        let rank = shape.len();
        let block_size = cx.attr(cx.attrs.int_or("block_size", 0))?;
        let axis_attr = cx.attr(cx.attrs.int_or("axis", 1))?;
        if scale.numel() == 1 && scale.shape().len() <= 1 && block_size == 0 {
            return Ok(Params {
                scale: scale_v,
                zero,
                qtype,
                axis: 0,
                block: shape.first().copied().unwrap_or(1).max(1),
            });
        }
        let axis = cx.axis(axis_attr, rank, "axis")?;
        let len = shape[axis];
        if block_size > 0 {
            // Blocked (opset 21): scale has the input's shape with the axis
            // divided into ceil(len / block_size) blocks.
            let b = block_size as usize;
            let mut want = shape.to_vec();
            want[axis] = len.div_ceil(b);
            if scale.shape() != want.as_slice() {
                return Err(cx.err(format!(
                    "blocked scale {} does not match the input {:?} with block_size {b}",
                    scale.ty(),
                    shape
                )));
            }
            return Ok(Params {
                scale: scale_v,
                zero,
                qtype,
                axis,
                block: b,
            });
        }
        if scale.shape() != [len] {
            return Err(cx.err(format!(
                "per-axis scale {} does not match axis {axis} of length {len}",
                scale.ty()
            )));
        }
        Ok(Params {
            scale: scale_v,
            zero,
            qtype,
            axis,
            block: 1,
        })
    }

    /// The scales and zero points as constants that broadcast against a
    /// tensor of shape `shape`: scalars per tensor, `[1, …, len, …, 1]`
    /// per axis, the tensor's own shape (every element's parameters) when
    /// blocked.
    fn broadcast(&self, shape: &[usize]) -> (Vec<usize>, Vec<f32>, Vec<i32>) {
        if self.scale.len() == 1 {
            return (vec![], self.scale.clone(), self.zero.clone());
        }
        if self.block == 1 && self.scale.len() == shape[self.axis] {
            let mut b = vec![1; shape.len()];
            b[self.axis] = self.scale.len();
            return (b, self.scale.clone(), self.zero.clone());
        }
        let n: usize = shape.iter().product();
        let all: Vec<QParams> = (0..n).map(|i| self.of(shape, i)).collect();
        (
            shape.to_vec(),
            all.iter().map(|q| q.scale).collect(),
            all.iter().map(|q| q.zero_point).collect(),
        )
    }

    fn per_tensor(&self) -> Option<QParams> {
        (self.scale.len() == 1).then(|| QParams {
            scale: self.scale[0],
            zero_point: self.zero[0],
        })
    }

    /// The parameters of element `i` of a tensor of shape `shape`.
    fn of(&self, shape: &[usize], i: usize) -> QParams {
        if self.scale.len() == 1 {
            return QParams {
                scale: self.scale[0],
                zero_point: self.zero[0],
            };
        }
        let inner: usize = shape[self.axis + 1..].iter().product();
        let len = shape[self.axis];
        let outer = i / (inner * len);
        let a = (i / inner) % len;
        let rest = i % inner;
        let blocks = len.div_ceil(self.block);
        // Per-axis: index `a`; blocked: the scale tensor's own element.
        let j = if self.block == 1 && self.scale.len() == len {
            a
        } else {
            (outer * blocks + a / self.block) * inner + rest
        };
        QParams {
            scale: self.scale[j],
            zero_point: self.zero[j],
        }
    }
}

/// The zero points (`n` zeros when absent) as i32.
fn zero_points(
    cx: &NodeCx,
    zp: Option<&Tensor>,
    n: usize,
) -> Result<Vec<i32>, crate::error::Problem> {
    match zp {
        Some(z) => Ok(z
            .to_i64_vec()
            .ok_or_else(|| cx.err("zero_point must be an integer tensor"))?
            .into_iter()
            .map(|v| v as i32)
            .collect()),
        None => Ok(vec![0; n]),
    }
}

pub(super) fn quantize_linear(cx: &mut NodeCx) -> R {
    let x = cx.input(0)?;
    let ty = cx.ty(x);
    if ty.dtype != DType::F32 {
        return Err(cx.err(format!("input must be float, got {ty}")));
    }
    let code = cx.attr(cx.attrs.int_or("output_dtype", 0))? as i32;
    let out_dtype = match code {
        0 => DType::U8,
        code => crate::tensor::io_dtype_of(code)
            .map_err(|m| cx.err(format!("attribute 'output_dtype': {m}")))?,
    };
    // int4 / uint4 (a 4-bit zero point, or the output type): held one value
    // per byte like the 8-bit types, saturated to the 4-bit range.
    let four = cx.input_is_four_bit(2) || crate::tensor::is_four_bit(code);
    let p = Params::read(cx, &ty.shape, out_dtype)?;
    let (lo, hi) = match (four, p.qtype) {
        (true, DType::I8) => (-8, 7),
        (true, _) => (0, 15),
        _ => qcc_ir::infer::int8_range(p.qtype).unwrap_or((-128, 127)),
    };
    if let Some(t) = cx.imp.const_value(x).ok().flatten() {
        let v = t.to_f32_vec();
        let q: Vec<i32> = v
            .iter()
            .enumerate()
            .map(|(i, &f)| qcc_ir::quant::quantize(f, p.of(&ty.shape, i), lo, hi))
            .collect();
        let data = match p.qtype {
            DType::I8 => TensorData::I8(q.iter().map(|&v| v as i8).collect()),
            _ => TensorData::U8(q.iter().map(|&v| v as u8).collect()),
        };
        let t = Tensor::new(ty.shape.clone(), data).ok_or_else(|| cx.err("bad constant"))?;
        return Ok(vec![cx.add_const("", t)]);
    }
    if let Some(q) = p.per_tensor().filter(|_| !four) {
        return Ok(vec![cx.add(Op::Quantize { q, to: p.qtype }, vec![x])?]);
    }
    use qcc_ir::{BinaryOp as B, UnaryOp as U};
    let (shape, scale, zero) = p.broadcast(&ty.shape);
    let scale = Tensor::from_f32(shape.clone(), scale).ok_or_else(|| cx.err("bad constant"))?;
    let scale = cx.add_const("scale", scale);
    let y = cx.add_aux("steps", Op::Binary(B::Div), vec![x, scale])?;
    let y = cx.add_aux(
        "bounded",
        Op::Unary(U::Clip {
            min: -65536.0,
            max: 65536.0,
        }),
        vec![y],
    )?;
    let mut y = cx.add_aux("rounded", Op::Unary(U::Round), vec![y])?;
    if zero.iter().any(|&z| z != 0) {
        let zp: Vec<f32> = zero.iter().map(|&z| z as f32).collect();
        let zp = Tensor::from_f32(shape, zp).ok_or_else(|| cx.err("bad constant"))?;
        let zp = cx.add_const("zero_point", zp);
        y = cx.add_aux("shifted", Op::Binary(B::Add), vec![y, zp])?;
    }
    let y = cx.add_aux(
        "clamped",
        Op::Unary(U::Clip {
            min: lo as f32,
            max: hi as f32,
        }),
        vec![y],
    )?;
    Ok(vec![cx.add(Op::Cast { to: p.qtype }, vec![y])?])
}

pub(super) fn dequantize_linear(cx: &mut NodeCx) -> R {
    let x = cx.input(0)?;
    let ty = cx.ty(x);
    if let Some(t) = cx.imp.const_value(x).ok().flatten() {
        // A weight or bias: int8, uint8 or int32 (biases, with a zero
        // point of 0).
        let p = if t.dtype() == DType::I32 {
            Params::read_i32(cx, &ty.shape)?
        } else {
            Params::read(cx, &ty.shape, t.dtype())?
        };
        let v = t
            .to_i64_vec()
            .ok_or_else(|| cx.err(format!("input must be an integer tensor, got {ty}")))?;
        // Per tensor or per axis, the integers stay visible as
        // `Cast(q) · scale` (`fold-qdq` reads them from there; otherwise
        // `constant-fold` computes the floats). An int32 with a zero point,
        // or blocked scales, are computed now.
        let exact = p.zero.iter().all(|&z| z == 0) || t.dtype() != DType::I32;
        let per_axis = p.block == 1 && p.scale.len() == ty.shape.get(p.axis).copied().unwrap_or(0);
        if exact && (p.scale.len() == 1 || per_axis) {
            return Ok(vec![scaled(cx, x, &p, &ty.shape)?]);
        }
        let f: Vec<f32> = v
            .iter()
            .enumerate()
            .map(|(i, &q)| {
                let qp = p.of(&ty.shape, i);
                (q - qp.zero_point as i64) as f32 * qp.scale
            })
            .collect();
        let t = Tensor::from_f32(ty.shape.clone(), f).ok_or_else(|| cx.err("bad constant"))?;
        return Ok(vec![cx.add_const("", t)]);
    }
    if !matches!(ty.dtype, DType::I8 | DType::U8) {
        return Err(cx.err(format!("run-time input must be int8 or uint8, got {ty}")));
    }
    let p = Params::read(cx, &ty.shape, ty.dtype)?;
    if p.qtype != ty.dtype {
        return Err(cx.err(format!(
            "zero_point type {} does not match the input {ty}",
            p.qtype.name()
        )));
    }
    if let Some(q) = p.per_tensor() {
        return Ok(vec![cx.add(Op::Dequantize { q }, vec![x])?]);
    }
    Ok(vec![scaled(cx, x, &p, &ty.shape)?])
}

/// `(float(x) - zero_point) · scale` with both broadcast along the axis
/// (per tensor: scalars; blocked: expanded to `shape`), the subtraction
/// left out when every zero point is 0. Subtracting two small integers is
/// exact in f32, so this is ONNX's arithmetic to the bit.
fn scaled(
    cx: &mut NodeCx,
    x: qcc_ir::ValueId,
    p: &Params,
    shape: &[usize],
) -> Result<qcc_ir::ValueId, crate::error::Problem> {
    let (shape, scale, zero) = p.broadcast(shape);
    let mut c = cx.add_aux("float", Op::Cast { to: DType::F32 }, vec![x])?;
    if zero.iter().any(|&z| z != 0) {
        let zp: Vec<f32> = zero.iter().map(|&z| z as f32).collect();
        let zp = Tensor::from_f32(shape.clone(), zp).ok_or_else(|| cx.err("bad constant"))?;
        let zp = cx.add_const("zero_point", zp);
        c = cx.add_aux("centered", Op::Binary(qcc_ir::BinaryOp::Sub), vec![c, zp])?;
    }
    let scale = Tensor::from_f32(shape, scale).ok_or_else(|| cx.err("bad constant"))?;
    let scale = cx.add_const("scale", scale);
    cx.add(Op::Binary(qcc_ir::BinaryOp::Mul), vec![c, scale])
}

impl Params {
    /// The parameters of an int32 DequantizeLinear (a bias): the zero point,
    /// if any, is int32 too; the 8-bit checks do not apply.
    fn read_i32(cx: &mut NodeCx, shape: &[usize]) -> Result<Params, crate::error::Problem> {
        let scale = cx
            .const_input(1, "scale")?
            .ok_or_else(|| cx.err("required input #1 (scale) is missing"))?;
        let scale_v = scale.to_f32_vec();
        let zp = cx.const_input(2, "zero_point")?;
        let zero = zero_points(cx, zp.as_ref(), scale_v.len())?;
        if zero.len() != scale_v.len() {
            return Err(cx.err("zero_point does not match scale"));
        }
        let axis_attr = cx.attr(cx.attrs.int_or("axis", 1))?;
        if scale_v.len() == 1 {
            return Ok(Params {
                scale: scale_v,
                zero,
                qtype: DType::I32,
                axis: 0,
                block: 1,
            });
        }
        let axis = cx.axis(axis_attr, shape.len(), "axis")?;
        if scale_v.len() != shape[axis] {
            return Err(cx.err(format!(
                "per-axis scale {} does not match axis {axis} of length {}",
                scale.ty(),
                shape[axis]
            )));
        }
        Ok(Params {
            scale: scale_v,
            zero,
            qtype: DType::I32,
            axis,
            block: 1,
        })
    }
}

/// `MatMulInteger(A, B, [a_zero_point], [b_zero_point])`: absent zero points
/// are 0 of their operand's type; A's is one value, B's one value or one per
/// column.
pub(super) fn matmul_integer(cx: &mut NodeCx) -> R {
    let (a, b) = (cx.input(0)?, cx.input(1)?);
    let mut ins = vec![a, b];
    for (i, v, what) in [(2, a, "a_zero_point"), (3, b, "b_zero_point")] {
        let dt = cx.ty(v).dtype;
        if !matches!(dt, DType::I8 | DType::U8) {
            return Err(cx.err(format!(
                "{} must be int8 or uint8, got {}",
                &what[..1],
                cx.ty(v)
            )));
        }
        let z = match cx.opt_input(i)? {
            Some(z) => z,
            None => {
                let data = match dt {
                    DType::I8 => TensorData::I8(vec![0]),
                    _ => TensorData::U8(vec![0]),
                };
                let t = Tensor::new(vec![], data).ok_or_else(|| cx.err("bad constant"))?;
                cx.add_const(what, t)
            }
        };
        if cx.ty(z).dtype != dt {
            return Err(cx.err(format!("{what} {} does not match {}", cx.ty(z), cx.ty(v))));
        }
        ins.push(z);
    }
    Ok(vec![cx.add(Op::MatMulInteger, ins)?])
}

/// `DynamicQuantizeLinear(x) → (y, y_scale, y_zero_point)`, ONNX's
/// definition in IR ops: `lo = min(min(x), 0)`, `hi = max(max(x), 0)`,
/// `y_scale = (hi - lo) / 255`, `y_zero_point = round(clamp(-lo / y_scale,
/// 0, 255))` and `y = clamp(round(x / y_scale) + y_zero_point, 0, 255)`
/// (rounding half to even). An all-zero `x` (scale 0) divides by the
/// smallest normal float instead, so `y` and the zero point are 0.
pub(super) fn dynamic_quantize_linear(cx: &mut NodeCx) -> R {
    let x = cx.input(0)?;
    let ty = cx.ty(x);
    if ty.dtype != DType::F32 {
        return Err(cx.err(format!("input must be float, got {ty}")));
    }
    let [y, scale, zp] = dynamic_quantize(cx, x, &mut |cx, tag, op, ins| {
        if tag == "y" {
            cx.add(op, ins)
        } else {
            cx.add_aux(tag, op, ins)
        }
    })?;
    Ok(vec![y, scale, zp])
}

/// Adds one IR node: `(cx, tag, op, inputs)` (`tag` names it).
pub(super) type AddNode<'f> =
    dyn FnMut(&mut NodeCx, &str, Op, Vec<qcc_ir::ValueId>) -> Result<qcc_ir::ValueId, Problem> + 'f;

/// [`dynamic_quantize_linear`]'s arithmetic on the f32 value `x`, each node
/// added through `add` (tags `max` … `y`): `[y (u8), y_scale, y_zero_point (u8)]`.
/// DynamicQuantizeLSTM quantizes its GEMMs' inputs with it too.
pub(super) fn dynamic_quantize(
    cx: &mut NodeCx,
    x: qcc_ir::ValueId,
    add: &mut AddNode,
) -> Result<[qcc_ir::ValueId; 3], Problem> {
    use qcc_ir::{BinaryOp as B, ReduceOp, UnaryOp as U};
    let ty = cx.ty(x);
    let all = |keepdims| Op::Reduce {
        op: ReduceOp::Max,
        axes: (0..ty.rank()).collect(),
        keepdims,
    };
    let scalar = |cx: &mut NodeCx, name: &str, v: f32| {
        let t = Tensor::from_f32(vec![], vec![v]).ok_or_else(|| cx.err("bad constant"));
        t.map(|t| cx.add_const(name, t))
    };
    let clip = Op::Unary(U::Clip {
        min: 0.0,
        max: 255.0,
    });
    let zero = scalar(cx, "zero", 0.0)?;
    let max = add(cx, "max", all(false), vec![x])?;
    let neg = add(cx, "neg", Op::Unary(U::Neg), vec![x])?;
    let neg_min = add(cx, "neg_min", all(false), vec![neg])?;
    let min = add(cx, "min", Op::Unary(U::Neg), vec![neg_min])?;
    let lo = add(cx, "lo", Op::Binary(B::Min), vec![min, zero])?;
    let hi = add(cx, "hi", Op::Binary(B::Max), vec![max, zero])?;
    let range = add(cx, "range", Op::Binary(B::Sub), vec![hi, lo])?;
    let levels = scalar(cx, "levels", 255.0)?;
    let scale = add(cx, "scale", Op::Binary(B::Div), vec![range, levels])?;
    let tiny = scalar(cx, "tiny", f32::MIN_POSITIVE)?;
    let divisor = add(cx, "divisor", Op::Binary(B::Max), vec![scale, tiny])?;
    let q = add(cx, "lo_steps", Op::Binary(B::Div), vec![lo, divisor])?;
    let q = add(cx, "zp_real", Op::Unary(U::Neg), vec![q])?;
    let q = add(cx, "zp_clamped", clip.clone(), vec![q])?;
    let zp = add(cx, "zp_float", Op::Unary(U::Round), vec![q])?;
    let y = add(cx, "steps", Op::Binary(B::Div), vec![x, divisor])?;
    let y = add(cx, "rounded", Op::Unary(U::Round), vec![y])?;
    let y = add(cx, "shifted", Op::Binary(B::Add), vec![y, zp])?;
    let y = add(cx, "clamped", clip, vec![y])?;
    let y = add(cx, "y", Op::Cast { to: DType::U8 }, vec![y])?;
    let zp = add(cx, "zero_point", Op::Cast { to: DType::U8 }, vec![zp])?;
    Ok([y, scale, zp])
}
