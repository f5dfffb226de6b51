//! Shared helpers of the quantization tests: a fixed-seed generator, small
//! graph builders, the pipeline with a quantization context, and checks.
#![allow(dead_code)]

use qcc_ir::{
    ConvAttrs, DType, Graph, NodeId, Op, PoolAttrs, QParams, ReduceOp, Tensor, TensorType, UnaryOp,
    ValueId,
};
use qcc_passes::{PassContext, Pipeline, QdqCounts, QuantConfig};

/// xorshift64* with Box–Muller normals: deterministic on every platform.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        ((x >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    pub fn normal(&mut self) -> f32 {
        let (u, v) = (self.uniform(), self.uniform());
        ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
    }
    pub fn normals(&mut self, n: usize, std: f32) -> Vec<f32> {
        (0..n).map(|_| self.normal() * std).collect()
    }
}

pub fn tensor(shape: &[usize], v: Vec<f32>) -> Tensor {
    Tensor::from_f32(shape.to_vec(), v).unwrap()
}

pub fn cst(g: &mut Graph, name: &str, shape: &[usize], v: Vec<f32>) -> ValueId {
    ValueId::of(g.add_const(name, tensor(shape, v)))
}

pub fn node(g: &mut Graph, op: Op, name: &str, ins: Vec<ValueId>) -> ValueId {
    ValueId::of(g.add_node(op, name, ins).unwrap())
}

/// A `k`×`k` conv with He-initialized weights and a small bias ("same" padding).
pub fn conv(
    g: &mut Graph,
    rng: &mut Rng,
    name: &str,
    x: ValueId,
    cout: usize,
    k: usize,
    group: usize,
) -> ValueId {
    let cin = g.value_type(x).shape[1];
    let fan_in = cin / group * k * k;
    let w = cst(
        g,
        &format!("{name}_w"),
        &[cout, cin / group, k, k],
        rng.normals(cout * fan_in, (2.0 / fan_in as f32).sqrt()),
    );
    let b = cst(g, &format!("{name}_b"), &[cout], rng.normals(cout, 0.1));
    let p = k / 2;
    let attrs = ConvAttrs {
        strides: vec![1, 1],
        pads: vec![p; 4],
        dilations: vec![1, 1],
        group,
        output_padding: vec![0, 0],
    };
    node(g, Op::Conv(attrs), name, vec![x, w, b])
}

pub fn unary(g: &mut Graph, u: UnaryOp, name: &str, x: ValueId) -> ValueId {
    node(g, Op::Unary(u), name, vec![x])
}

pub fn relu(g: &mut Graph, name: &str, x: ValueId) -> ValueId {
    unary(g, UnaryOp::Relu, name, x)
}

pub fn pool(k: usize, s: usize, pad: usize) -> PoolAttrs {
    PoolAttrs {
        kernel: vec![k, k],
        strides: vec![s, s],
        pads: vec![pad; 4],
        dilations: vec![1, 1],
        ceil_mode: false,
        count_include_pad: true,
    }
}

pub fn gap(g: &mut Graph, name: &str, x: ValueId) -> ValueId {
    let op = Op::Reduce {
        op: ReduceOp::Mean,
        axes: vec![2, 3],
        keepdims: true,
    };
    node(g, op, name, vec![x])
}

/// `Gemm(x, W^T, b)` with W `[n, k]`.
pub fn fc(g: &mut Graph, rng: &mut Rng, name: &str, x: ValueId, n: usize) -> ValueId {
    let k = g.value_type(x).shape[1];
    let w = cst(
        g,
        &format!("{name}_w"),
        &[n, k],
        rng.normals(n * k, (1.0 / k as f32).sqrt()),
    );
    let b = cst(g, &format!("{name}_b"), &[n], rng.normals(n, 0.1));
    let op = Op::Gemm {
        alpha: 1.0,
        beta: 1.0,
        trans_a: false,
        trans_b: true,
    };
    node(g, op, name, vec![x, w, b])
}

/// `count` samples for each graph input, N(0, 1) (f32 inputs only).
pub fn samples(g: &Graph, rng: &mut Rng, count: usize) -> Vec<Vec<Tensor>> {
    (0..count)
        .map(|_| {
            g.inputs()
                .iter()
                .map(|id| {
                    let ty = &g.node(*id).outputs[0];
                    tensor(&ty.shape, rng.normals(ty.numel(), 1.0))
                })
                .collect()
        })
        .collect()
}

/// Runs the whole default pipeline with quantization.
pub fn quantize(g: &mut Graph, cfg: QuantConfig, calibration: Vec<Vec<Tensor>>) -> PassContext {
    let mut cx = PassContext {
        quant: Some(cfg),
        calibration,
        ..Default::default()
    };
    Pipeline::default().run(g, &mut cx, None).unwrap();
    cx
}

/// Number of nodes of each op name.
pub fn count(g: &Graph, name: &str) -> usize {
    g.node_ids()
        .iter()
        .filter(|&&id| g.node(id).op.name() == name)
        .count()
}

pub fn ops(g: &Graph) -> Vec<&'static str> {
    let mut v: Vec<_> = g
        .topo_order()
        .unwrap()
        .iter()
        .map(|&id| g.node(id).op.name())
        .collect();
    v.retain(|n| *n != "const" && *n != "input");
    v
}

/// SQNR in dB of `got` against `want`.
pub fn sqnr(want: &[f32], got: &[f32]) -> f64 {
    let s: f64 = want.iter().map(|&x| (x as f64).powi(2)).sum();
    let n: f64 = want
        .iter()
        .zip(got)
        .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
        .sum();
    if n == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (s / n).log10()
    }
}

/// Float outputs of the float and quantized graphs on `inputs`, concatenated.
pub fn compare(float: &Graph, quant: &Graph, inputs: &[Vec<Tensor>]) -> (Vec<f32>, Vec<f32>) {
    let (mut a, mut b) = (vec![], vec![]);
    for s in inputs {
        for t in qcc_interp::run(float, s).unwrap() {
            a.extend(t.to_f32_vec());
        }
        for t in qcc_interp::run(quant, s).unwrap() {
            b.extend(t.as_f32().expect("float output").to_vec());
        }
    }
    (a, b)
}

/// Checks the quantization parameters in the types: every 8-bit activation
/// has them, and every op's zero points and parameters agree with them.
pub fn check_qparams(g: &Graph, _cx: &PassContext) {
    let qp = |v: ValueId| -> QParams {
        g.value_type(v)
            .quant
            .unwrap_or_else(|| panic!("no qparams for the output of '{}'", g.node(v.node).name))
    };
    for id in g.node_ids() {
        let n = g.node(id);
        let out = ValueId::of(id);
        let weight_input = |id: NodeId| {
            g.users(ValueId::of(id)).iter().all(|(u, i)| {
                matches!(g.node(*u).op, Op::QConv { .. } | Op::QGemm { .. }) && *i > 0
            })
        };
        if n.outputs[0].dtype == DType::I8
            && !(matches!(n.op, Op::Const { .. }) && weight_input(id))
        {
            qp(out);
        }
        let x = n.inputs().first().copied();
        match &n.op {
            Op::Dequantize { q } => assert_eq!(qp(x.unwrap()), *q, "{}", n.name),
            Op::Quantize { q, .. } => assert_eq!(qp(out), *q, "{}", n.name),
            Op::Requantize {
                in_zero_point, epi, ..
            } => {
                assert_eq!(qp(x.unwrap()).zero_point, *in_zero_point, "{}", n.name);
                assert_eq!(qp(out).zero_point, epi.zero_point, "{}", n.name);
            }
            Op::QConv {
                x_zero_point, epi, ..
            } => {
                assert_eq!(qp(x.unwrap()).zero_point, *x_zero_point, "{}", n.name);
                assert_eq!(qp(out).zero_point, epi.zero_point, "{}", n.name);
            }
            Op::QGemm {
                a_zero_point, epi, ..
            } => {
                assert_eq!(qp(x.unwrap()).zero_point, *a_zero_point, "{}", n.name);
                assert_eq!(qp(out).zero_point, epi.zero_point, "{}", n.name);
            }
            Op::QAdd {
                a_zero_point,
                b_zero_point,
                epi,
                ..
            }
            | Op::QMul {
                a_zero_point,
                b_zero_point,
                epi,
                ..
            } => {
                assert_eq!(qp(n.inputs()[0]).zero_point, *a_zero_point, "{}", n.name);
                assert_eq!(qp(n.inputs()[1]).zero_point, *b_zero_point, "{}", n.name);
                assert_eq!(qp(out).zero_point, epi.zero_point, "{}", n.name);
            }
            op if op.keeps_quant() && n.outputs[0].dtype == DType::I8 => {
                for v in n.inputs() {
                    assert_eq!(qp(*v), qp(out), "{}", n.name);
                }
            }
            _ => {}
        }
    }
}

/// Every rescale of every integer op.
pub fn rescales(g: &Graph) -> Vec<qcc_ir::Rescale> {
    g.node_ids()
        .iter()
        .filter_map(|&id| match &g.node(id).op {
            Op::Requantize { epi, .. }
            | Op::QConv { epi, .. }
            | Op::QGemm { epi, .. }
            | Op::QAdd { epi, .. }
            | Op::QMul { epi, .. }
            | Op::QAvgPool { epi, .. }
            | Op::QMean { epi, .. } => Some(epi.rescale.clone()),
            _ => None,
        })
        .collect()
}

pub fn counts(g: &Graph) -> QdqCounts {
    QdqCounts::of(g)
}

/// The f32 graph input type helper.
pub fn input(g: &mut Graph, name: &str, shape: &[usize]) -> ValueId {
    ValueId::of(g.add_input(name, TensorType::f32(shape.to_vec())))
}
