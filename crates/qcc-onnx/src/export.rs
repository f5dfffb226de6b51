//! qcc's graph → a standard ONNX model (opset 13; 21 when some weights are
//! 4-bit or narrower, written as `INT4`), so qcc's quantization decisions
//! can run in any ONNX runtime (`--emit onnx`).
//!
//! Float ops are written as their ONNX op. Integer ops are written in the QDQ
//! format ONNX Runtime's `quantize_static` produces: the float op they stand
//! for with `DequantizeLinear` on its inputs and `QuantizeLinear` on its
//! output. Every IR value keeps its element type: the tensor named after an
//! 8-bit value is the int8 (or uint8) tensor, and its float view is a
//! `DequantizeLinear` of it. The dtype-generic ops (MaxPool, Reshape,
//! Transpose, Concat, Slice, Pad, Gather) run directly on 8-bit tensors, as
//! ONNX allows; a `Lut` is a `Gather` on its 256-entry table.
//!
//! Scales come from the values' types: activations' from
//! `TensorType::quant`, an integer kernel's weight scales per channel from
//! its weights' `TensorType::axis_quant` (the model's own for an imported
//! model, the ones qcc chose for its own quantization), bias scales
//! `s_x · s_w[m]`; QAdd's operand scales from the op itself
//! (`|multiplier| · real · s_y`). The epilogue clamp becomes `Relu` or `Clip` when it is tighter
//! than the output type's range.

use crate::proto::attribute_proto::AttributeType;
use crate::proto::tensor_shape_proto::{dimension, Dimension};
use crate::proto::{
    type_proto, AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};
use crate::tensor::{data_type_code, to_proto};
use prost::Message;
use qcc_ir::{
    BinaryOp, CompareOp, CoordTransform, DType, Epilogue, Graph, LogicOp, NearestMode, Node,
    NodeId, Op, QParams, ReduceOp, ResizeMode, Tensor, TensorData, TensorType, UnaryOp, ValueId,
};
use std::collections::{HashMap, HashSet};

/// The opset the exported model imports (per-axis QDQ needs 13).
pub const EXPORT_OPSET: i64 = 13;

/// The opset of a model with 4-bit (or narrower) weights: `INT4` tensors and
/// their `DequantizeLinear` need 21 (where reductions take their axes as an
/// input).
pub const EXPORT_OPSET_INT4: i64 = 21;

/// Whether constant `t` is written as ONNX `INT4`: int8 weights whose type
/// makes them 4 bits or fewer (`AxisQuant::bits`; ONNX's INT2 is newer than
/// the runtimes that read these models, so 2-bit and ternary weights go
/// into INT4 too).
fn int4(t: &TensorType) -> bool {
    t.packed_bits() <= 4
}

/// Why a graph could not be written as ONNX; names the node.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("ONNX export: {0}")]
pub struct ExportError(pub String);

/// Writes `g` as an ONNX model. The quantization parameters of its 8-bit
/// activation values are in their types.
pub fn export_model(g: &Graph) -> Result<ModelProto, ExportError> {
    let mut ex = Exporter::new(g);
    let graph = ex.run()?;
    Ok(ModelProto {
        // IR 10 for INT4 tensors.
        ir_version: Some(if ex.opset >= EXPORT_OPSET_INT4 { 10 } else { 7 }),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(ex.opset),
        }],
        producer_name: Some("qcc".into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        graph: Some(graph),
        ..Default::default()
    })
}

/// [`export_model`], serialized.
pub fn export_model_bytes(g: &Graph) -> Result<Vec<u8>, ExportError> {
    Ok(export_model(g)?.encode_to_vec())
}

struct Exporter<'a> {
    g: &'a Graph,
    names: HashMap<ValueId, String>,
    used: HashSet<String>,
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    /// DequantizeLinear outputs by (value, scale bits, zero point).
    dq_cache: HashMap<(ValueId, u32, i32), String>,
    /// [`EXPORT_OPSET`], or [`EXPORT_OPSET_INT4`] when some weights are
    /// written as INT4.
    opset: i64,
}

/// `t`'s int8 values as an ONNX `INT4` tensor: two per byte, the first in
/// the low nibble (`None` when one does not fit in 4 bits).
fn int4_proto(name: &str, t: &qcc_ir::Tensor) -> Option<TensorProto> {
    let v = t.to_i64_vec()?;
    if v.iter().any(|x| !(-8..=7).contains(x)) {
        return None;
    }
    let raw = v
        .chunks(2)
        .map(|p| (p[0] as u8 & 0xf) | ((p.get(1).copied().unwrap_or(0) as u8 & 0xf) << 4))
        .collect();
    Some(TensorProto {
        name: Some(name.to_string()),
        dims: t.shape().iter().map(|&d| d as i64).collect(),
        data_type: Some(crate::proto::tensor_proto::DataType::Int4 as i32),
        raw_data: Some(raw),
        ..Default::default()
    })
}

fn err(n: &Node, msg: impl std::fmt::Display) -> ExportError {
    ExportError(format!("node '{}' ({}): {msg}", n.name, n.op.name()))
}

fn sanitize(s: &str) -> String {
    let s: String = s
        .chars()
        .map(|c| if c.is_control() { '_' } else { c })
        .collect();
    if s.is_empty() {
        "v".into()
    } else {
        s
    }
}

pub(crate) fn attr_i(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Int as i32),
        i: Some(v),
        ..Default::default()
    }
}

pub(crate) fn attr_f(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Float as i32),
        f: Some(v),
        ..Default::default()
    }
}

fn attr_s(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::String as i32),
        s: Some(v.as_bytes().to_vec()),
        ..Default::default()
    }
}

fn attr_ints<T: Copy + TryInto<i64>>(name: &str, v: &[T]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Ints as i32),
        ints: v
            .iter()
            .map(|&x| x.try_into().unwrap_or(i64::MAX))
            .collect(),
        ..Default::default()
    }
}

fn i64s(v: &[usize]) -> Vec<i64> {
    v.iter().map(|&x| x as i64).collect()
}

/// The integer range of an 8-bit type.
fn range_of(dt: DType) -> Option<(i32, i32)> {
    match dt {
        DType::I8 => Some((-128, 127)),
        DType::U8 => Some((0, 255)),
        _ => None,
    }
}

/// A scalar integer tensor of type `dt` (a zero point).
fn int_scalar(dt: DType, v: i32, shape: Vec<usize>) -> Option<Tensor> {
    let n = shape.iter().product::<usize>();
    let data = match dt {
        DType::I8 => TensorData::I8(vec![i8::try_from(v).ok()?; n]),
        DType::U8 => TensorData::U8(vec![u8::try_from(v).ok()?; n]),
        DType::I32 => TensorData::I32(vec![v; n]),
        _ => return None,
    };
    Tensor::new(shape, data)
}

fn value_info(name: &str, ty: &TensorType) -> ValueInfoProto {
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(data_type_code(ty.dtype)),
                shape: Some(TensorShapeProto {
                    dim: ty
                        .shape
                        .iter()
                        .map(|&d| Dimension {
                            value: Some(dimension::Value::DimValue(d as i64)),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

impl<'a> Exporter<'a> {
    fn new(g: &'a Graph) -> Self {
        Exporter {
            g,
            names: HashMap::new(),
            used: HashSet::new(),
            nodes: vec![],
            inits: vec![],
            dq_cache: HashMap::new(),
            opset: if g.node_ids().into_iter().any(|id| {
                let n = g.node(id);
                matches!(n.op, Op::Const { .. }) && n.outputs.first().is_some_and(int4)
            }) {
                EXPORT_OPSET_INT4
            } else {
                EXPORT_OPSET
            },
        }
    }

    /// A tensor name not used yet, based on `base`.
    fn fresh(&mut self, base: &str) -> String {
        let base = sanitize(base);
        let mut name = base.clone();
        let mut k = 1;
        while self.used.contains(&name) {
            name = format!("{base}_{k}");
            k += 1;
        }
        self.used.insert(name.clone());
        name
    }

    fn init(&mut self, base: &str, t: &Tensor) -> String {
        let name = self.fresh(base);
        self.inits.push(to_proto(&name, t));
        name
    }

    /// A reduction's inputs and attributes: its axes an attribute, or (ReduceSum
    /// from opset 13, the others from 18) a second input.
    fn reduce_args(
        &mut self,
        op: &str,
        base: &str,
        x: String,
        axes: &[usize],
        keepdims: AttributeProto,
    ) -> (Vec<String>, Vec<AttributeProto>) {
        if op == "ReduceSum" || self.opset >= 18 {
            let a = self.i64_init(&format!("{base}/axes"), i64s(axes));
            (vec![x, a], vec![keepdims])
        } else {
            (vec![x], vec![attr_ints("axes", axes), keepdims])
        }
    }

    fn i64_init(&mut self, base: &str, v: Vec<i64>) -> String {
        let n = v.len();
        let t = Tensor::from_i64(vec![n], v)
            .unwrap_or_else(|| Tensor::zeros(&TensorType::new(DType::I64, [0])));
        self.init(base, &t)
    }

    fn f32_init(
        &mut self,
        base: &str,
        v: Vec<f32>,
        shape: Vec<usize>,
    ) -> Result<String, ExportError> {
        let t = Tensor::from_f32(shape, v)
            .ok_or_else(|| ExportError(format!("tensor '{base}': shape mismatch")))?;
        Ok(self.init(base, &t))
    }

    fn push(
        &mut self,
        op: &str,
        base: &str,
        inputs: Vec<String>,
        output: String,
        attrs: Vec<AttributeProto>,
    ) {
        let name = self.fresh(&format!("{base}/{op}"));
        self.nodes.push(NodeProto {
            input: inputs,
            output: vec![output],
            name: Some(name),
            op_type: Some(op.into()),
            domain: Some(String::new()),
            attribute: attrs,
            ..Default::default()
        });
    }

    /// Adds a node writing a fresh tensor; returns its name.
    /// A binary layer's thresholds (`qcc_ir::SignStep`) on its `count`, into
    /// `y`: with `m = ±count` per channel, `(Sign(m - pos + ½) + Sign(m -
    /// zero + ½)) / 2` is 1, 0 or -1 exactly as the thresholds say (NaN
    /// stays NaN).
    fn sign_step(
        &mut self,
        base: &str,
        count: String,
        st: &qcc_ir::SignStep,
        conv: bool,
        y: String,
    ) -> Result<(), ExportError> {
        let n = st.len();
        let shape = if conv { vec![n, 1, 1] } else { vec![n] };
        let flip: Vec<f32> = st
            .flip
            .iter()
            .map(|&f| if f { -1.0 } else { 1.0 })
            .collect();
        let at = |t: &[i32]| t.iter().map(|&v| v as f32 - 0.5).collect::<Vec<f32>>();
        let f = self.f32_init(&format!("{base}/flip"), flip, shape.clone())?;
        let tp = self.f32_init(&format!("{base}/pos"), at(&st.pos), shape.clone())?;
        let tz = self.f32_init(&format!("{base}/zero_at"), at(&st.zero), shape)?;
        let half = self.f32_init(&format!("{base}/half"), vec![0.5], vec![])?;
        let m = self.emit("Mul", base, vec![count, f], vec![]);
        let dp = self.emit("Sub", base, vec![m.clone(), tp], vec![]);
        let dz = self.emit("Sub", base, vec![m, tz], vec![]);
        let sp = self.emit("Sign", base, vec![dp], vec![]);
        let sz = self.emit("Sign", base, vec![dz], vec![]);
        let sum = self.emit("Add", base, vec![sp, sz], vec![]);
        self.push("Mul", base, vec![sum, half], y, vec![]);
        Ok(())
    }

    fn emit(
        &mut self,
        op: &str,
        base: &str,
        inputs: Vec<String>,
        attrs: Vec<AttributeProto>,
    ) -> String {
        let out = self.fresh(&format!("{base}/{op}_out"));
        self.push(op, base, inputs, out.clone(), attrs);
        out
    }

    fn name(&self, v: ValueId) -> String {
        self.names.get(&v).cloned().unwrap_or_default()
    }

    fn qparams(&self, n: &Node, v: ValueId, what: &str) -> Result<QParams, ExportError> {
        self.g
            .value_type(v)
            .quant
            .ok_or_else(|| err(n, format!("no quantization parameters for its {what}")))
    }

    /// The float view of an 8-bit (or i32) value: `DequantizeLinear(v, scale, zp)`.
    fn dq(&mut self, n: &Node, v: ValueId, scale: f32, zp: i32) -> Result<String, ExportError> {
        if !(scale.is_finite() && scale > 0.0) {
            return Err(err(
                n,
                format!("input scale {scale} is not a positive number"),
            ));
        }
        let key = (v, scale.to_bits(), zp);
        if let Some(s) = self.dq_cache.get(&key) {
            return Ok(s.clone());
        }
        let out = self.fresh(&format!("{}/dq", self.name(v)));
        self.dq_into(n, v, scale, zp, out.clone())?;
        Ok(out)
    }

    /// `DequantizeLinear(v, scale, zp)` written into `out` (remembered for reuse).
    fn dq_into(
        &mut self,
        n: &Node,
        v: ValueId,
        scale: f32,
        zp: i32,
        out: String,
    ) -> Result<(), ExportError> {
        if !(scale.is_finite() && scale > 0.0) {
            return Err(err(
                n,
                format!("input scale {scale} is not a positive number"),
            ));
        }
        let x = self.name(v);
        let dt = self.g.value_type(v).dtype;
        let zpt = int_scalar(dt, zp, vec![])
            .ok_or_else(|| err(n, format!("zero point {zp} does not fit {dt}")))?;
        let s = self.f32_init(&format!("{x}/scale"), vec![scale], vec![])?;
        let z = self.init(&format!("{x}/zero_point"), &zpt);
        self.push(
            "DequantizeLinear",
            &x,
            vec![x.clone(), s, z],
            out.clone(),
            vec![],
        );
        self.dq_cache.insert((v, scale.to_bits(), zp), out);
        Ok(())
    }

    /// `DequantizeLinear` of a constant along `axis` with one scale per
    /// channel (or one for all) and zero points 0.
    fn dq_axis(
        &mut self,
        n: &Node,
        v: ValueId,
        scales: &[f32],
        axis: usize,
    ) -> Result<String, ExportError> {
        if let Some(bad) = scales.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return Err(err(
                n,
                format!("weight scale {bad} is not a positive number"),
            ));
        }
        let x = self.name(v);
        let ty = self.g.value_type(v);
        let dt = ty.dtype;
        let shape = if scales.len() == 1 {
            vec![]
        } else {
            vec![scales.len()]
        };
        let zpt = int_scalar(dt, 0, shape.clone())
            .ok_or_else(|| err(n, format!("cannot dequantize {dt}")))?;
        let s = self.f32_init(&format!("{x}/scale"), scales.to_vec(), shape)?;
        // INT4 weights take an INT4 zero point.
        let z = if int4(ty) {
            let name = self.fresh(&format!("{x}/zero_point"));
            let p = int4_proto(&name, &zpt).ok_or_else(|| err(n, "zero point"))?;
            self.inits.push(p);
            name
        } else {
            self.init(&format!("{x}/zero_point"), &zpt)
        };
        let attrs = if scales.len() == 1 {
            vec![]
        } else {
            vec![attr_i("axis", axis as i64)]
        };
        Ok(self.emit("DequantizeLinear", &x, vec![x.clone(), s, z], attrs))
    }

    /// The epilogue's clamp as a float activation on `x` (scale `s_y`), if it
    /// is tighter than the output type's range; then `QuantizeLinear` into `y`.
    fn clamp_and_quantize(
        &mut self,
        n: &Node,
        x: String,
        epi: &Epilogue,
        s_y: f32,
        to: DType,
        y: String,
    ) -> Result<(), ExportError> {
        let (lo, hi) =
            range_of(to).ok_or_else(|| err(n, format!("output type {to} is not 8-bit")))?;
        let base = n.name.clone();
        let x = if epi.min == epi.zero_point && epi.max >= hi && epi.min > lo {
            self.emit("Relu", &base, vec![x], vec![])
        } else if epi.min > lo || epi.max < hi {
            let mut inputs = vec![x];
            inputs.push(if epi.min > lo {
                self.f32_init(
                    &format!("{base}/clip_min"),
                    vec![(epi.min - epi.zero_point) as f32 * s_y],
                    vec![],
                )?
            } else {
                String::new()
            });
            if epi.max < hi {
                let m = self.f32_init(
                    &format!("{base}/clip_max"),
                    vec![(epi.max - epi.zero_point) as f32 * s_y],
                    vec![],
                )?;
                inputs.push(m);
            }
            self.emit("Clip", &base, inputs, vec![])
        } else {
            x
        };
        self.quantize(n, x, s_y, epi.zero_point, to, y)
    }

    fn quantize(
        &mut self,
        n: &Node,
        x: String,
        scale: f32,
        zp: i32,
        to: DType,
        y: String,
    ) -> Result<(), ExportError> {
        if !(scale.is_finite() && scale > 0.0) {
            return Err(err(
                n,
                format!("output scale {scale} is not a positive number"),
            ));
        }
        let zpt = int_scalar(to, zp, vec![])
            .ok_or_else(|| err(n, format!("zero point {zp} does not fit {to}")))?;
        let s = self.f32_init(&format!("{y}/scale"), vec![scale], vec![])?;
        let z = self.init(&format!("{y}/zero_point"), &zpt);
        self.push("QuantizeLinear", &n.name, vec![x, s, z], y, vec![]);
        Ok(())
    }

    /// Names every value: graph inputs keep theirs, graph outputs take
    /// theirs when a node of their own produces them, others their node's.
    fn assign_names(&mut self, order: &[NodeId]) {
        for &id in self.g.inputs() {
            let name = self.fresh(&self.g.node(id).name.clone());
            self.names.insert(ValueId::of(id), name);
        }
        for o in &self.g.outputs {
            let n = self.g.node(o.value.node);
            let own = !matches!(n.op, Op::Input { .. } | Op::Const { .. });
            if own && !self.names.contains_key(&o.value) && !self.used.contains(&o.name) {
                self.used.insert(o.name.clone());
                self.names.insert(o.value, o.name.clone());
            }
        }
        for &id in order {
            let n = self.g.node(id);
            for slot in 0..n.outputs.len() {
                let v = ValueId { node: id, slot };
                if !self.names.contains_key(&v) {
                    let name = self.fresh(&n.name.clone());
                    self.names.insert(v, name);
                }
            }
        }
    }

    fn run(&mut self) -> Result<GraphProto, ExportError> {
        let order = self
            .g
            .topo_order()
            .map_err(|e| ExportError(e.to_string()))?;
        self.assign_names(&order);
        for &id in &order {
            self.node(id)?;
        }
        let mut outputs = vec![];
        for o in &self.g.outputs {
            let name = self.name(o.value);
            if name != o.name {
                if self.used.contains(&o.name) {
                    return Err(ExportError(format!(
                        "graph output '{}': the name is used twice",
                        o.name
                    )));
                }
                self.used.insert(o.name.clone());
                self.push("Identity", &o.name, vec![name], o.name.clone(), vec![]);
            }
            outputs.push(value_info(&o.name, self.g.value_type(o.value)));
        }
        let inputs = self
            .g
            .inputs()
            .iter()
            .map(|&id| {
                value_info(
                    &self.name(ValueId::of(id)),
                    self.g.value_type(ValueId::of(id)),
                )
            })
            .collect();
        Ok(GraphProto {
            node: std::mem::take(&mut self.nodes),
            name: Some(self.g.name.clone()),
            initializer: std::mem::take(&mut self.inits),
            input: inputs,
            output: outputs,
            ..Default::default()
        })
    }

    fn node(&mut self, id: NodeId) -> Result<(), ExportError> {
        let g = self.g;
        let n = g.node(id);
        let y = self.name(ValueId::of(id));
        let ins: Vec<String> = n.inputs().iter().map(|&v| self.name(v)).collect();
        let in_ty = |i: usize| g.value_type(n.inputs()[i]);
        let base = n.name.clone();
        let simple = |op: &str, attrs: Vec<AttributeProto>| (op.to_string(), attrs);
        let (op, attrs) = match &n.op {
            Op::Input { .. } => return Ok(()),
            Op::Const { weight } => {
                let t = g.weight(*weight);
                let p = match n.outputs.first().filter(|t| int4(t)) {
                    Some(_) => int4_proto(&y, t).ok_or_else(|| err(n, "weights past 4 bits"))?,
                    None => to_proto(&y, t),
                };
                self.inits.push(p);
                return Ok(());
            }
            Op::ConvClamp { conv, min, max } | Op::ConvAdd { conv, min, max } => {
                // Conv, the residual Add, then Relu or Clip.
                let k = in_ty(1).shape.get(2..).unwrap_or(&[]).to_vec();
                let a = vec![
                    attr_ints("kernel_shape", &k),
                    attr_ints("strides", &conv.strides),
                    attr_ints("pads", &conv.pads),
                    attr_ints("dilations", &conv.dilations),
                    attr_i("group", conv.group as i64),
                ];
                let mut c = self.emit("Conv", &base, ins[..ins.len().min(3)].to_vec(), a);
                if matches!(n.op, Op::ConvAdd { .. }) {
                    let r = ins[3].clone();
                    if (*min, *max) == (f32::NEG_INFINITY, f32::INFINITY) {
                        self.push("Add", &base, vec![c, r], y, vec![]);
                        return Ok(());
                    }
                    c = self.emit("Add", &base, vec![c, r], vec![]);
                }
                let act = if *min == 0.0 && *max == f32::INFINITY {
                    UnaryOp::Relu
                } else {
                    UnaryOp::Clip {
                        min: *min,
                        max: *max,
                    }
                };
                return self.unary(n, act, vec![c], y);
            }
            Op::Conv(c) | Op::ConvTranspose(c) => {
                let k = in_ty(1).shape.get(2..).unwrap_or(&[]).to_vec();
                let mut a = vec![
                    attr_ints("kernel_shape", &k),
                    attr_ints("strides", &c.strides),
                    attr_ints("pads", &c.pads),
                    attr_ints("dilations", &c.dilations),
                    attr_i("group", c.group as i64),
                ];
                if matches!(n.op, Op::ConvTranspose(_)) {
                    a.push(attr_ints("output_padding", &c.output_padding));
                    simple("ConvTranspose", a)
                } else {
                    simple("Conv", a)
                }
            }
            Op::Gemm {
                alpha,
                beta,
                trans_a,
                trans_b,
            } => simple(
                "Gemm",
                vec![
                    attr_f("alpha", *alpha),
                    attr_f("beta", *beta),
                    attr_i("transA", *trans_a as i64),
                    attr_i("transB", *trans_b as i64),
                ],
            ),
            Op::MatMul => simple("MatMul", vec![]),
            Op::SignMatMul { bipolar, step } | Op::SignConv { bipolar, step, .. } => {
                // Back to what it came from: Sign (or the bipolar sign), then
                // MatMul or Conv by the ±1 weights (then the thresholds).
                let s = if *bipolar {
                    let zero = self.f32_init(&format!("{base}/zero"), vec![0.0], vec![])?;
                    let one = self.f32_init(&format!("{base}/one"), vec![1.0], vec![])?;
                    let minus = self.f32_init(&format!("{base}/minus_one"), vec![-1.0], vec![])?;
                    let ge = self.emit("GreaterOrEqual", &base, vec![ins[0].clone(), zero], vec![]);
                    self.emit("Where", &base, vec![ge, one, minus], vec![])
                } else {
                    self.emit("Sign", &base, vec![ins[0].clone()], vec![])
                };
                let (op, a) = match &n.op {
                    Op::SignConv { conv: c, .. } => {
                        let k = in_ty(1).shape.get(2..).unwrap_or(&[]).to_vec();
                        let a = vec![
                            attr_ints("kernel_shape", &k),
                            attr_ints("strides", &c.strides),
                            attr_ints("pads", &c.pads),
                            attr_ints("dilations", &c.dilations),
                        ];
                        ("Conv", a)
                    }
                    _ => ("MatMul", vec![]),
                };
                let Some(st) = step else {
                    self.push(op, &base, vec![s, ins[1].clone()], y, a);
                    return Ok(());
                };
                let count = self.emit(op, &base, vec![s, ins[1].clone()], a);
                self.sign_step(&base, count, st, op == "Conv", y)?;
                return Ok(());
            }
            Op::Unary(u) => return self.unary(n, *u, ins, y),
            Op::Binary(b) => simple(
                match b {
                    BinaryOp::Add => "Add",
                    BinaryOp::Sub => "Sub",
                    BinaryOp::Mul => "Mul",
                    BinaryOp::Div => "Div",
                    BinaryOp::Max => "Max",
                    BinaryOp::Min => "Min",
                    BinaryOp::Pow => "Pow",
                    BinaryOp::PRelu => "PRelu",
                },
                vec![],
            ),
            Op::Compare(c) => simple(
                match c {
                    CompareOp::Equal => "Equal",
                    CompareOp::Greater => "Greater",
                    CompareOp::GreaterOrEqual => "GreaterOrEqual",
                    CompareOp::Less => "Less",
                    CompareOp::LessOrEqual => "LessOrEqual",
                },
                vec![],
            ),
            Op::Logic(l) => simple(
                match l {
                    LogicOp::And => "And",
                    LogicOp::Or => "Or",
                    LogicOp::Xor => "Xor",
                },
                vec![],
            ),
            Op::Not => simple("Not", vec![]),
            Op::Where => simple("Where", vec![]),
            Op::Softmax { axis } => simple("Softmax", vec![attr_i("axis", *axis as i64)]),
            Op::MaxPool(p) => simple(
                "MaxPool",
                vec![
                    attr_ints("kernel_shape", &p.kernel),
                    attr_ints("strides", &p.strides),
                    attr_ints("pads", &p.pads),
                    attr_ints("dilations", &p.dilations),
                    attr_i("ceil_mode", p.ceil_mode as i64),
                ],
            ),
            Op::AveragePool(p) => simple("AveragePool", self.avg_attrs(n, p)?),
            Op::Reduce { op, axes, keepdims } => {
                let kd = attr_i("keepdims", *keepdims as i64);
                let op = match op {
                    ReduceOp::Mean => "ReduceMean",
                    ReduceOp::Max => "ReduceMax",
                    ReduceOp::Sum => "ReduceSum",
                };
                let (ins, attrs) = self.reduce_args(op, &base, ins[0].clone(), axes, kd);
                self.push(op, &base, ins, y, attrs);
                return Ok(());
            }
            Op::BatchNorm { epsilon } => {
                simple("BatchNormalization", vec![attr_f("epsilon", *epsilon)])
            }
            Op::Reshape { shape } => {
                if shape.contains(&0) {
                    return Err(err(n, "a zero-sized dim needs opset 14's allowzero"));
                }
                let s = self.i64_init(&format!("{base}/shape"), i64s(shape));
                self.push("Reshape", &base, vec![ins[0].clone(), s], y, vec![]);
                return Ok(());
            }
            Op::Transpose { perm } => simple("Transpose", vec![attr_ints("perm", perm)]),
            Op::Concat { axis } => simple("Concat", vec![attr_i("axis", *axis as i64)]),
            Op::Slice {
                starts,
                steps,
                lens,
            } => {
                let ends: Vec<i64> = (0..starts.len())
                    .map(|d| {
                        let e = starts[d] + lens[d] as i64 * steps[d];
                        // A negative end would count from the back: "before index 0".
                        if e < 0 {
                            i64::MIN
                        } else {
                            e
                        }
                    })
                    .collect();
                let axes: Vec<i64> = (0..starts.len() as i64).collect();
                let s = self.i64_init(&format!("{base}/starts"), starts.clone());
                let e = self.i64_init(&format!("{base}/ends"), ends);
                let a = self.i64_init(&format!("{base}/axes"), axes);
                let st = self.i64_init(&format!("{base}/steps"), steps.clone());
                self.push("Slice", &base, vec![ins[0].clone(), s, e, a, st], y, vec![]);
                return Ok(());
            }
            Op::Pad { pads, value } => {
                let dt = in_ty(0).dtype;
                let v = match dt {
                    DType::F32 => Tensor::from_f32(vec![], vec![*value]),
                    _ => int_scalar(dt, *value as i32, vec![]),
                }
                .ok_or_else(|| err(n, format!("pad value {value} does not fit {dt}")))?;
                let p = self.i64_init(&format!("{base}/pads"), i64s(pads));
                let c = self.init(&format!("{base}/value"), &v);
                self.push(
                    "Pad",
                    &base,
                    vec![ins[0].clone(), p, c],
                    y,
                    vec![attr_s("mode", "constant")],
                );
                return Ok(());
            }
            Op::Resize(r) => {
                let coord = match r.coord {
                    CoordTransform::HalfPixel => "half_pixel",
                    CoordTransform::PytorchHalfPixel => "pytorch_half_pixel",
                    CoordTransform::AlignCorners => "align_corners",
                    CoordTransform::Asymmetric => "asymmetric",
                    CoordTransform::HalfPixelSymmetric => {
                        return Err(err(n, "half_pixel_symmetric needs opset 19"))
                    }
                };
                let nearest = match r.nearest {
                    NearestMode::RoundPreferFloor => "round_prefer_floor",
                    NearestMode::RoundPreferCeil => "round_prefer_ceil",
                    NearestMode::Floor => "floor",
                    NearestMode::Ceil => "ceil",
                };
                let mode = match r.mode {
                    ResizeMode::Nearest => "nearest",
                    ResizeMode::Linear => "linear",
                    ResizeMode::Cubic { .. } => "cubic",
                };
                let s = self.i64_init(&format!("{base}/sizes"), i64s(&r.sizes));
                let mut a = vec![
                    attr_s("mode", mode),
                    attr_s("coordinate_transformation_mode", coord),
                    attr_s("nearest_mode", nearest),
                ];
                if let ResizeMode::Cubic {
                    a: ca,
                    exclude_outside,
                } = r.mode
                {
                    a.push(attr_f("cubic_coeff_a", ca));
                    a.push(attr_i("exclude_outside", exclude_outside as i64));
                }
                self.push(
                    "Resize",
                    &base,
                    vec![ins[0].clone(), String::new(), String::new(), s],
                    y,
                    a,
                );
                return Ok(());
            }
            Op::Cast { to } => simple("Cast", vec![attr_i("to", data_type_code(*to) as i64)]),
            Op::Gather { axis } => simple("Gather", vec![attr_i("axis", *axis as i64)]),
            _ => return self.integer(n, id, y),
        };
        self.push(&op, &base, ins, y, attrs);
        Ok(())
    }

    fn avg_attrs(
        &self,
        n: &Node,
        p: &qcc_ir::PoolAttrs,
    ) -> Result<Vec<AttributeProto>, ExportError> {
        if p.dilations.iter().any(|&d| d != 1) {
            return Err(err(n, "dilated AveragePool needs opset 19"));
        }
        Ok(vec![
            attr_ints("kernel_shape", &p.kernel),
            attr_ints("strides", &p.strides),
            attr_ints("pads", &p.pads),
            attr_i("ceil_mode", p.ceil_mode as i64),
            attr_i("count_include_pad", p.count_include_pad as i64),
        ])
    }

    fn unary(
        &mut self,
        n: &Node,
        u: UnaryOp,
        ins: Vec<String>,
        y: String,
    ) -> Result<(), ExportError> {
        let base = n.name.clone();
        let (op, attrs) = match u {
            UnaryOp::Relu => ("Relu", vec![]),
            UnaryOp::Sigmoid => ("Sigmoid", vec![]),
            UnaryOp::Tanh => ("Tanh", vec![]),
            UnaryOp::Exp => ("Exp", vec![]),
            UnaryOp::Log => ("Log", vec![]),
            UnaryOp::Sqrt => ("Sqrt", vec![]),
            UnaryOp::Neg => ("Neg", vec![]),
            UnaryOp::Abs => ("Abs", vec![]),
            UnaryOp::Sign => ("Sign", vec![]),
            UnaryOp::Reciprocal => ("Reciprocal", vec![]),
            UnaryOp::Erf => ("Erf", vec![]),
            UnaryOp::Round => ("Round", vec![]),
            UnaryOp::LeakyRelu { alpha } => ("LeakyRelu", vec![attr_f("alpha", alpha)]),
            UnaryOp::HardSigmoid { alpha, beta } => (
                "HardSigmoid",
                vec![attr_f("alpha", alpha), attr_f("beta", beta)],
            ),
            UnaryOp::HardSwish => {
                // HardSwish is opset 14: x * HardSigmoid(x; 1/6, 1/2).
                let x = ins[0].clone();
                let hs = self.emit(
                    "HardSigmoid",
                    &base,
                    vec![x.clone()],
                    vec![attr_f("alpha", 1.0 / 6.0), attr_f("beta", 0.5)],
                );
                self.push("Mul", &base, vec![x, hs], y, vec![]);
                return Ok(());
            }
            UnaryOp::Silu => {
                let x = ins[0].clone();
                let s = self.emit("Sigmoid", &base, vec![x.clone()], vec![]);
                self.push("Mul", &base, vec![x, s], y, vec![]);
                return Ok(());
            }
            UnaryOp::Gelu => {
                // x · (erf(x · 1/√2) + 1) · 1/2
                let x = ins[0].clone();
                let r = self.f32_init(
                    &format!("{base}/inv_sqrt2"),
                    vec![std::f32::consts::FRAC_1_SQRT_2],
                    vec![],
                )?;
                let one = self.f32_init(&format!("{base}/one"), vec![1.0], vec![])?;
                let half = self.f32_init(&format!("{base}/half"), vec![0.5], vec![])?;
                let xs = self.emit("Mul", &base, vec![x.clone(), r], vec![]);
                let e = self.emit("Erf", &base, vec![xs], vec![]);
                let p = self.emit("Add", &base, vec![e, one], vec![]);
                let xp = self.emit("Mul", &base, vec![x, p], vec![]);
                self.push("Mul", &base, vec![xp, half], y, vec![]);
                return Ok(());
            }
            UnaryOp::GeluTanh => {
                // x · (tanh(√(2/π) · (x + 0.044715 · x·x·x)) + 1) · 1/2
                let x = ins[0].clone();
                let k = (2.0 / std::f64::consts::PI).sqrt() as f32;
                let c = self.f32_init(&format!("{base}/c"), vec![0.044715], vec![])?;
                let kk = self.f32_init(&format!("{base}/k"), vec![k], vec![])?;
                let one = self.f32_init(&format!("{base}/one"), vec![1.0], vec![])?;
                let half = self.f32_init(&format!("{base}/half"), vec![0.5], vec![])?;
                let x2 = self.emit("Mul", &base, vec![x.clone(), x.clone()], vec![]);
                let x3 = self.emit("Mul", &base, vec![x2, x.clone()], vec![]);
                let cx3 = self.emit("Mul", &base, vec![x3, c], vec![]);
                let s = self.emit("Add", &base, vec![x.clone(), cx3], vec![]);
                let ks = self.emit("Mul", &base, vec![s, kk], vec![]);
                let t = self.emit("Tanh", &base, vec![ks], vec![]);
                let p = self.emit("Add", &base, vec![t, one], vec![]);
                let xp = self.emit("Mul", &base, vec![x, p], vec![]);
                self.push("Mul", &base, vec![xp, half], y, vec![]);
                return Ok(());
            }
            UnaryOp::Clip { min, max } => {
                let mut inputs = vec![ins[0].clone()];
                inputs.push(if min.is_finite() {
                    self.f32_init(&format!("{base}/min"), vec![min], vec![])?
                } else {
                    String::new()
                });
                if max.is_finite() {
                    inputs.push(self.f32_init(&format!("{base}/max"), vec![max], vec![])?);
                }
                self.push("Clip", &base, inputs, y, vec![]);
                return Ok(());
            }
        };
        self.push(op, &base, ins, y, attrs);
        Ok(())
    }

    /// The integer ops.
    fn integer(&mut self, n: &Node, id: NodeId, y: String) -> Result<(), ExportError> {
        let g = self.g;
        let vin = |i: usize| n.inputs()[i];
        let out = ValueId::of(id);
        let base = n.name.clone();
        match &n.op {
            Op::Quantize { q, to } => {
                let x = self.name(vin(0));
                self.quantize(n, x, q.scale, q.zero_point, *to, y)
            }
            Op::Dequantize { q } => {
                let key = (vin(0), q.scale.to_bits(), q.zero_point);
                if let Some(x) = self.dq_cache.get(&key).cloned() {
                    self.push("Identity", &base, vec![x], y, vec![]);
                } else {
                    self.dq_into(n, vin(0), q.scale, q.zero_point, y)?;
                }
                Ok(())
            }
            Op::Requantize {
                in_zero_point,
                epi,
                to,
            } => {
                let s_y = self.qparams(n, out, "output")?.scale;
                let s_x = self.scale_of(vin(0), epi.rescale.real(0) * s_y as f64);
                let x = self.dq(n, vin(0), s_x, *in_zero_point)?;
                self.clamp_and_quantize(n, x, epi, s_y, *to, y)
            }
            Op::QConv {
                conv,
                x_zero_point,
                epi,
                to,
            } => {
                let s_y = self.qparams(n, out, "output")?.scale;
                let s_x = self.qparams(n, vin(0), "input")?.scale;
                let m = g.value_type(vin(1)).shape.first().copied().unwrap_or(1);
                let (sw, sb) = self.weight_scales(n, vin(1), m, s_x)?;
                let x = self.dq(n, vin(0), s_x, *x_zero_point)?;
                let w = self.dq_axis(n, vin(1), &sw, 0)?;
                let b = self.dq_axis(n, vin(2), &sb, 0)?;
                let k = g.value_type(vin(1)).shape.get(2..).unwrap_or(&[]).to_vec();
                let attrs = vec![
                    attr_ints("kernel_shape", &k),
                    attr_ints("strides", &conv.strides),
                    attr_ints("pads", &conv.pads),
                    attr_ints("dilations", &conv.dilations),
                    attr_i("group", conv.group as i64),
                ];
                let acc = self.emit("Conv", &base, vec![x, w, b], attrs);
                self.clamp_and_quantize(n, acc, epi, s_y, *to, y)
            }
            Op::QGemm {
                a_zero_point,
                epi,
                to,
            } => {
                let s_y = self.qparams(n, out, "output")?.scale;
                let s_a = self.qparams(n, vin(0), "input")?.scale;
                let cols = g.value_type(vin(1)).shape.get(1).copied().unwrap_or(1);
                let (sw, sb) = self.weight_scales(n, vin(1), cols, s_a)?;
                let a = self.dq(n, vin(0), s_a, *a_zero_point)?;
                let b = self.dq_axis(n, vin(1), &sw, 1)?;
                let c = self.dq_axis(n, vin(2), &sb, 0)?;
                let acc = self.emit("Gemm", &base, vec![a, b, c], vec![]);
                self.clamp_and_quantize(n, acc, epi, s_y, *to, y)
            }
            Op::QAdd {
                a_zero_point,
                a_multiplier,
                b_zero_point,
                b_multiplier,
                epi,
                to,
            } => {
                let s_y = self.qparams(n, out, "output")?.scale;
                let unit = epi.rescale.real(0) * s_y as f64;
                let s_a = self.scale_of(vin(0), unit * a_multiplier.unsigned_abs() as f64);
                let s_b = self.scale_of(vin(1), unit * b_multiplier.unsigned_abs() as f64);
                let a = self.dq(n, vin(0), s_a, *a_zero_point)?;
                let b = self.dq(n, vin(1), s_b, *b_zero_point)?;
                let (op, ins) = match (*a_multiplier > 0, *b_multiplier > 0) {
                    (true, true) => ("Add", vec![a, b]),
                    (true, false) => ("Sub", vec![a, b]),
                    (false, true) => ("Sub", vec![b, a]),
                    (false, false) => return Err(err(n, "both multipliers are negative")),
                };
                let acc = self.emit(op, &base, ins, vec![]);
                self.clamp_and_quantize(n, acc, epi, s_y, *to, y)
            }
            Op::QMul {
                a_zero_point,
                b_zero_point,
                epi,
                to,
            }
            | Op::QMatMul {
                a_zero_point,
                b_zero_point,
                epi,
                to,
            } => {
                let name = if matches!(n.op, Op::QMul { .. }) {
                    "Mul"
                } else {
                    "MatMul"
                };
                let s_y = self.qparams(n, out, "output")?.scale;
                let prod = (epi.rescale.real(0) * s_y as f64) as f32;
                let (s_a, s_b) = match (self.quant(vin(0)), self.quant(vin(1))) {
                    (Some(a), _) => (a.scale, prod / a.scale),
                    (None, Some(b)) => (prod / b.scale, b.scale),
                    (None, None) => {
                        return Err(err(n, "no quantization parameters for its inputs"))
                    }
                };
                let a = self.dq(n, vin(0), s_a, *a_zero_point)?;
                let b = self.dq(n, vin(1), s_b, *b_zero_point)?;
                let acc = self.emit(name, &base, vec![a, b], vec![]);
                self.clamp_and_quantize(n, acc, epi, s_y, *to, y)
            }
            Op::QAvgPool {
                pool,
                x_zero_point,
                epi,
            } => {
                let s_y = self.qparams(n, out, "output")?.scale;
                let count: usize = pool.kernel.iter().product();
                let s_x = self.scale_of(vin(0), epi.rescale.real(0) * s_y as f64 * count as f64);
                let x = self.dq(n, vin(0), s_x, *x_zero_point)?;
                let attrs = self.avg_attrs(n, pool)?;
                let acc = self.emit("AveragePool", &base, vec![x], attrs);
                let to = g.value_type(vin(0)).dtype;
                self.clamp_and_quantize(n, acc, epi, s_y, to, y)
            }
            Op::QMean {
                axes,
                keepdims,
                x_zero_point,
                epi,
            } => {
                let s_y = self.qparams(n, out, "output")?.scale;
                let shape = &g.value_type(vin(0)).shape;
                let count: usize = axes
                    .iter()
                    .map(|&a| shape.get(a).copied().unwrap_or(1))
                    .product();
                let s_x = self.scale_of(vin(0), epi.rescale.real(0) * s_y as f64 * count as f64);
                let x = self.dq(n, vin(0), s_x, *x_zero_point)?;
                let kd = attr_i("keepdims", *keepdims as i64);
                let (ins, attrs) = self.reduce_args("ReduceMean", &base, x, axes, kd);
                let acc = self.emit("ReduceMean", &base, ins, attrs);
                let to = g.value_type(vin(0)).dtype;
                self.clamp_and_quantize(n, acc, epi, s_y, to, y)
            }
            Op::Lut { table, to } => {
                let in_dt = g.value_type(vin(0)).dtype;
                let (lo, _) = range_of(in_dt)
                    .ok_or_else(|| err(n, format!("input type {in_dt} is not 8-bit")))?;
                let fits = |v: &i32| range_of(*to).is_some_and(|(l, h)| (l..=h).contains(v));
                if table.len() != 256 || !table.iter().all(fits) {
                    return Err(err(n, format!("the table is not 256 entries within {to}")));
                }
                let data = match to {
                    DType::I8 => TensorData::I8(table.iter().map(|&v| v as i8).collect()),
                    _ => TensorData::U8(table.iter().map(|&v| v as u8).collect()),
                };
                let tt = Tensor::new(vec![256], data).ok_or_else(|| err(n, "bad table"))?;
                let tname = self.init(&format!("{base}/table"), &tt);
                let x = self.name(vin(0));
                let wide = self.emit(
                    "Cast",
                    &base,
                    vec![x],
                    vec![attr_i("to", data_type_code(DType::I64) as i64)],
                );
                let off = self.i64_init(&format!("{base}/offset"), vec![-(lo as i64)]);
                let idx = self.emit("Add", &base, vec![wide, off], vec![]);
                self.push(
                    "Gather",
                    &base,
                    vec![tname, idx],
                    y,
                    vec![attr_i("axis", 0)],
                );
                Ok(())
            }
            // The float softmax the table computes (within one output step).
            Op::QSoftmax {
                scale_inv,
                zero_point,
                to,
                ..
            } => {
                let qx = self.qparams(n, vin(0), "input")?;
                let x = self.dq(n, vin(0), qx.scale, qx.zero_point)?;
                let rank = g.value_type(vin(0)).rank() as i64;
                let p = self.emit("Softmax", &base, vec![x], vec![attr_i("axis", rank - 1)]);
                self.quantize(n, p, 1.0 / *scale_inv as f32, *zero_point, *to, y)
            }
            other => Err(err(n, format!("op '{}' cannot be exported", other.name()))),
        }
    }

    /// The quantization parameters in `v`'s type.
    fn quant(&self, v: ValueId) -> Option<QParams> {
        self.g.value_type(v).quant
    }

    /// The scale of an 8-bit input as an integer op defines it (`derived`,
    /// from its multipliers), or the value's own (its type's) when that
    /// agrees to 1e-4 (then every user shares one `DequantizeLinear`, as in
    /// ONNX Runtime's QDQ form; the two differ by the multipliers' rounding).
    fn scale_of(&self, v: ValueId, derived: f64) -> f32 {
        match self.quant(v) {
            Some(q) if ((q.scale as f64 - derived) / derived).abs() < 1e-4 => q.scale,
            _ => derived as f32,
        }
    }

    /// Weight scales per channel, from the weights' type (the model's own,
    /// or the ones qcc chose), and bias scales `s_x · s_w[m]` of a
    /// QConv/QGemm with `channels` output channels.
    fn weight_scales(
        &self,
        n: &Node,
        w: ValueId,
        channels: usize,
        s_x: f32,
    ) -> Result<(Vec<f32>, Vec<f32>), ExportError> {
        let t = self.g.value_type(w);
        let Some(a) = t.axis_quant.as_deref() else {
            return Err(err(
                n,
                format!("weights {t} carry no quantization parameters"),
            ));
        };
        if a.scales.len() != channels || a.zero_points.iter().any(|&z| z != 0) {
            return Err(err(
                n,
                format!("weights {t} do not have one scale per {channels} output channels"),
            ));
        }
        let sb = a.scales.iter().map(|&s| s_x * s).collect();
        Ok((a.scales.clone(), sb))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qcc_ir::Rescale;

    /// An int8 chain the model tests do not reach: Lut → Requantize → Slice
    /// (negative step) → Pad.
    fn chain() -> Graph {
        let mut g = Graph::new("t");
        let x = g.add_input("x", TensorType::new(DType::I8, [1, 4]));
        let table: Vec<i32> = (-128..128).map(|v: i32| v.max(0)).collect();
        let to = DType::I8;
        let lut = g.add_node(Op::Lut { table, to }, "lut", vec![ValueId::of(x)]);
        let epi = Epilogue {
            rescale: Rescale::uniform(1, 1),
            zero_point: 3,
            min: 3,
            max: 100,
        };
        let rq = Op::Requantize {
            in_zero_point: 0,
            epi,
            to,
        };
        let rq = g
            .add_node(rq, "rq", vec![ValueId::of(lut.unwrap())])
            .unwrap();
        let slice = Op::Slice {
            starts: vec![0, 3],
            steps: vec![1, -1],
            lens: vec![1, 4],
        };
        let sl = g.add_node(slice, "sl", vec![ValueId::of(rq)]).unwrap();
        let pad = Op::Pad {
            pads: vec![0, 1, 0, 1],
            value: 3.0,
        };
        let p = g.add_node(pad, "pad", vec![ValueId::of(sl)]).unwrap();
        g.add_output("y", ValueId::of(p));
        let q = |s| QParams {
            scale: s,
            zero_point: 3,
        };
        g.set_quant(ValueId::of(rq), Some(q(0.5)));
        g
    }

    fn ops(m: &ModelProto) -> Vec<String> {
        let g = m.graph.as_ref().unwrap();
        g.node.iter().map(|n| n.op_type().to_string()).collect()
    }

    #[test]
    fn int8_chain() {
        let g = chain();
        let m = export_model(&g).unwrap();
        assert_eq!(
            ops(&m),
            [
                "Cast",
                "Add",
                "Gather",
                "DequantizeLinear",
                "Clip",
                "QuantizeLinear",
                "Slice",
                "Pad"
            ]
        );
        let gp = m.graph.as_ref().unwrap();
        assert_eq!(gp.node.last().unwrap().output, ["y"]);
        let ends = gp
            .initializer
            .iter()
            .find(|t| t.name() == "sl/ends")
            .unwrap();
        let ends = crate::tensor::to_tensor(ends, std::path::Path::new(".")).unwrap();
        assert_eq!(ends.as_i64().unwrap(), [1, i64::MIN]);
        // Requantize: input scale = real · s_y = 0.5 · 0.5; clamp [3, 100] → Clip [0, 48.5].
        let dq_scale = gp
            .initializer
            .iter()
            .find(|t| t.name() == "lut/scale")
            .unwrap();
        let s = crate::tensor::to_tensor(dq_scale, std::path::Path::new(".")).unwrap();
        assert_eq!(s.as_f32().unwrap(), [0.25]);
        let max = gp
            .initializer
            .iter()
            .find(|t| t.name() == "rq/clip_max")
            .unwrap();
        let max = crate::tensor::to_tensor(max, std::path::Path::new(".")).unwrap();
        assert_eq!(max.as_f32().unwrap(), [48.5]);
    }

    #[test]
    fn missing_qparams_is_an_error_naming_the_node() {
        let mut g = chain();
        let rq = g
            .node_ids()
            .into_iter()
            .find(|&id| g.node(id).name == "rq")
            .unwrap();
        g.set_quant(ValueId::of(rq), None);
        let e = export_model(&g).unwrap_err();
        assert!(e.to_string().contains("node 'rq' (requantize)"), "{e}");
    }
}
