//! Concise builders for ONNX models in tests: nodes with attributes,
//! tensors, value infos, and writing the encoded model to a folder.

#![allow(dead_code)]

use prost::Message;
use qcc_onnx::proto::attribute_proto::AttributeType;
use qcc_onnx::proto::tensor_proto::DataType;
use qcc_onnx::proto::tensor_shape_proto::{dimension, Dimension};
use qcc_onnx::proto::{
    type_proto, AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};
use std::path::{Path, PathBuf};

pub const FLOAT: i32 = DataType::Float as i32;
pub const INT64: i32 = DataType::Int64 as i32;
pub const DOUBLE: i32 = DataType::Double as i32;
pub const BOOL: i32 = DataType::Bool as i32;

/// A node under construction.
pub struct N(pub NodeProto);

/// `node("conv1", "Conv", &["x", "W"], &["y"])`
pub fn node(name: &str, op: &str, inputs: &[&str], outputs: &[&str]) -> N {
    N(NodeProto {
        name: Some(name.into()),
        op_type: Some(op.into()),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    })
}

fn attr(name: &str, ty: AttributeType) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(ty as i32),
        ..Default::default()
    }
}

impl N {
    fn push(mut self, a: AttributeProto) -> N {
        self.0.attribute.push(a);
        self
    }
    pub fn i(self, name: &str, v: i64) -> N {
        let mut a = attr(name, AttributeType::Int);
        a.i = Some(v);
        self.push(a)
    }
    pub fn f(self, name: &str, v: f32) -> N {
        let mut a = attr(name, AttributeType::Float);
        a.f = Some(v);
        self.push(a)
    }
    pub fn s(self, name: &str, v: &str) -> N {
        let mut a = attr(name, AttributeType::String);
        a.s = Some(v.as_bytes().to_vec());
        self.push(a)
    }
    pub fn ints(self, name: &str, v: &[i64]) -> N {
        let mut a = attr(name, AttributeType::Ints);
        a.ints = v.to_vec();
        self.push(a)
    }
    pub fn strings(self, name: &str, v: &[&str]) -> N {
        let mut a = attr(name, AttributeType::Strings);
        a.strings = v.iter().map(|s| s.as_bytes().to_vec()).collect();
        self.push(a)
    }
    pub fn floats(self, name: &str, v: &[f32]) -> N {
        let mut a = attr(name, AttributeType::Floats);
        a.floats = v.to_vec();
        self.push(a)
    }
    pub fn t(self, name: &str, v: TensorProto) -> N {
        let mut a = attr(name, AttributeType::Tensor);
        a.t = Some(v);
        self.push(a)
    }
    pub fn g(self, name: &str, v: GraphProto) -> N {
        let mut a = attr(name, AttributeType::Graph);
        a.g = Some(v);
        self.push(a)
    }
    pub fn domain(mut self, d: &str) -> N {
        self.0.domain = Some(d.into());
        self
    }
}

/// An f32 tensor with raw little-endian data.
pub fn tf32(name: &str, dims: &[i64], v: &[f32]) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(FLOAT),
        raw_data: Some(v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        ..Default::default()
    }
}

/// An f32 tensor filled with `0.0, 0.1, 0.2, …`.
pub fn tf32_seq(name: &str, dims: &[i64]) -> TensorProto {
    let n: i64 = dims.iter().product();
    let v: Vec<f32> = (0..n).map(|i| i as f32 * 0.1).collect();
    tf32(name, dims, &v)
}

/// An i64 tensor using the typed `int64_data` field.
pub fn ti64(name: &str, dims: &[i64], v: &[i64]) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(INT64),
        int64_data: v.to_vec(),
        ..Default::default()
    }
}

/// A 1-D i64 tensor.
pub fn ints(name: &str, v: &[i64]) -> TensorProto {
    ti64(name, &[v.len() as i64], v)
}

/// A tensor value info; each dim is a number or a symbol (`"batch"`), `"?"` for unknown.
pub fn vi(name: &str, elem: i32, dims: &[&str]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: match d.parse::<i64>() {
                Ok(v) => Some(dimension::Value::DimValue(v)),
                Err(_) if *d == "?" => None,
                Err(_) => Some(dimension::Value::DimParam(d.to_string())),
            },
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(elem),
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A float value info with fixed dims.
pub fn fvi(name: &str, dims: &[usize]) -> ValueInfoProto {
    let d: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
    let d: Vec<&str> = d.iter().map(String::as_str).collect();
    vi(name, FLOAT, &d)
}

/// A graph output with no declared type.
pub fn out(name: &str) -> ValueInfoProto {
    ValueInfoProto {
        name: Some(name.into()),
        ..Default::default()
    }
}

/// A graph from its parts.
pub fn graph(
    nodes: Vec<N>,
    inputs: Vec<ValueInfoProto>,
    outputs: Vec<ValueInfoProto>,
    inits: Vec<TensorProto>,
) -> GraphProto {
    GraphProto {
        name: Some("test".into()),
        node: nodes.into_iter().map(|n| n.0).collect(),
        input: inputs,
        output: outputs,
        initializer: inits,
        ..Default::default()
    }
}

/// A model importing the default domain at `opset`.
pub fn model(opset: i64, g: GraphProto) -> ModelProto {
    ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(opset),
        }],
        producer_name: Some("qcc-onnx tests".into()),
        graph: Some(g),
        ..Default::default()
    }
}

/// Encodes `m` as `dir/name`.
pub fn write(dir: &Path, name: &str, m: &ModelProto) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, m.encode_to_vec()).expect("write model");
    p
}

/// Writes `m` to a fresh temp dir; keep the dir alive while using the path.
pub fn temp_model(m: &ModelProto) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write(dir.path(), "model.onnx", m);
    (dir, p)
}

/// Imports `m` with no input shapes.
pub fn import(m: &ModelProto) -> Result<qcc_ir::Graph, qcc_onnx::OnnxError> {
    let (_dir, p) = temp_model(m);
    qcc_onnx::load_model(&p, &Default::default())
}

/// Imports `m` and returns the printed IR, panicking with the error otherwise.
pub fn import_print(m: &ModelProto) -> String {
    let g = import(m).unwrap_or_else(|e| panic!("import failed: {e}"));
    qcc_ir::verify(&g).unwrap_or_else(|e| panic!("verify failed: {e}"));
    qcc_ir::print(&g).expect("print")
}

/// Imports `m`, expecting an error; returns its message.
pub fn import_err(m: &ModelProto) -> String {
    match import(m) {
        Ok(g) => panic!(
            "expected an error, got:\n{}",
            qcc_ir::print(&g).unwrap_or_default()
        ),
        Err(e) => e.to_string(),
    }
}

/// The types of the graph outputs, as printed (`f32[1,2]`).
pub fn output_types(g: &qcc_ir::Graph) -> Vec<String> {
    g.outputs
        .iter()
        .map(|o| g.value_type(o.value).to_string())
        .collect()
}

/// The op names of the nodes in topological order (inputs and consts left out).
pub fn ops(g: &qcc_ir::Graph) -> Vec<&'static str> {
    g.topo_order()
        .expect("acyclic")
        .into_iter()
        .map(|id| g.node(id).op.name())
        .filter(|n| *n != "input" && *n != "const")
        .collect()
}
