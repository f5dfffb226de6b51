//! `fuse-modules`: finds the unified modules of Geng et al.'s dataflow-based
//! joint quantization — one weighted or elementwise op plus the activation
//! that is its only use — so that each is quantized once, as one integer
//! kernel whose activation becomes the requantization clamp (Relu, Clip) or
//! a 256-entry lookup table (LeakyRelu, HardSwish, HardSigmoid, Sigmoid, Tanh).
//!
//! Anchors: `Conv` with a constant f32 weight (and constant bias, if any);
//! `Gemm` with a constant 2-D B (and constant C, if any); `MatMul` with a
//! constant 2-D B; `BatchNorm` (rank ≥ 3, constant parameters) left over by
//! `fold-batch-norm`, which becomes a depthwise 1×1 convolution; `Add`,
//! `Sub`, `Mul` of two f32 tensors (at most one constant); `MatMul` of two
//! computed f32 tensors (attention's products).
//!
//! The graph is left unchanged (the modules are a side table, so `--after
//! fuse-modules` dumps stay float graphs and other passes see plain IR).
//!
//! Needs: `cx.quant` (does nothing and returns `Ok(false)` without it).
//! Guarantees: `cx.modules` lists every module, anchors in topological order;
//! an anchor or activation named in `keep_float` is not part of a module;
//! every `keep_float` name names a node (an unknown name is an error);
//! every `layer_bits` and `ternary` name names a Conv, Gemm or MatMul anchor.

use crate::context::{Module, ModuleKind};
use crate::quantize::lut::is_module_activation;
use crate::{Changed, PassContext, PassError};
use qcc_ir::{BinaryOp, DType, Graph, NodeId, Op, ValueId};

const PASS: &str = "fuse-modules";

fn is_const_f32(g: &Graph, v: ValueId) -> bool {
    g.const_value(v).is_some_and(|t| t.dtype() == DType::F32)
}

/// The module kind `id` can anchor, if any.
fn anchor_kind(g: &Graph, id: NodeId) -> Option<ModuleKind> {
    let n = g.node(id);
    let ins = n.inputs();
    if !n.outputs[0].dtype.is_float() || ins.is_empty() {
        return None;
    }
    // Weighted anchors: a computed first input, constant parameters.
    let consts_after_first =
        || !is_const_f32(g, ins[0]) && ins[1..].iter().all(|v| is_const_f32(g, *v));
    match &n.op {
        Op::Conv(_) if consts_after_first() => Some(ModuleKind::Conv),
        Op::Gemm { .. } if consts_after_first() => Some(ModuleKind::Gemm),
        Op::MatMul if consts_after_first() && g.value_type(ins[1]).rank() == 2 => {
            Some(ModuleKind::MatMul)
        }
        Op::BatchNorm { .. } if consts_after_first() && g.value_type(ins[0]).rank() >= 3 => {
            Some(ModuleKind::BatchNorm)
        }
        Op::MatMul
            if ins.iter().all(|v| g.const_value(*v).is_none())
                && ins.iter().all(|v| g.value_type(*v).dtype.is_float()) =>
        {
            Some(ModuleKind::ActMatMul)
        }
        Op::Binary(b @ (BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul))
            if !(is_const_f32(g, ins[0]) && is_const_f32(g, ins[1]))
                && ins.iter().all(|v| g.value_type(*v).dtype.is_float()) =>
        {
            Some(match b {
                BinaryOp::Add => ModuleKind::Add,
                BinaryOp::Sub => ModuleKind::Sub,
                _ => ModuleKind::Mul,
            })
        }
        _ => None,
    }
}

/// The `Add(y, c)` (or `Add(c, y)`) of a constant f32 vector of MatMul `id`'s
/// N columns (shape `[N]` or ones then N) that is its output's only user.
fn matmul_bias(g: &Graph, id: NodeId) -> Option<NodeId> {
    let out = ValueId::of(id);
    let n_cols = *g.node(id).outputs[0].shape.last()?;
    let users = g.users(out);
    let [(user, _)] = users.as_slice() else {
        return None;
    };
    if g.is_output(out) || g.node(*user).op != Op::Binary(BinaryOp::Add) {
        return None;
    }
    let ins = g.node(*user).inputs();
    let c = if ins[0] == out { ins[1] } else { ins[0] };
    let t = g.const_value(c).filter(|t| t.dtype() == DType::F32)?;
    let s = t.shape();
    let vector = s.last() == Some(&n_cols) && s.iter().rev().skip(1).all(|&d| d == 1);
    let same = g.node(*user).outputs[0].shape == g.node(id).outputs[0].shape;
    (vector && same).then_some(*user)
}

pub fn run(g: &mut Graph, cx: &mut PassContext) -> Result<Changed, PassError> {
    let Some(cfg) = &cx.quant else {
        return Ok(false);
    };
    let ids = g.node_ids();
    for name in &cfg.keep_float {
        if !ids.iter().any(|&id| g.node(id).name == *name) {
            return Err(PassError::Failed {
                pass: PASS,
                msg: format!("--keep-float: no node named '{name}'"),
            });
        }
    }
    let named = cfg
        .layer_bits
        .iter()
        .map(|(n, _)| ("--bits", n))
        .chain(cfg.ternary.iter().map(|n| ("--ternary", n)));
    for (flag, name) in named {
        let weighted = ids.iter().any(|&id| {
            g.node(id).name == *name
                && matches!(
                    anchor_kind(g, id),
                    Some(ModuleKind::Conv | ModuleKind::Gemm | ModuleKind::MatMul)
                )
        });
        if !weighted {
            return Err(PassError::Failed {
                pass: PASS,
                msg: format!(
                    "{flag}: no Conv, Gemm or MatMul with constant weights is named '{name}'"
                ),
            });
        }
    }
    let keep = |id: NodeId| cfg.keep_float.contains(&g.node(id).name);
    let order = g.topo_order().map_err(|e| PassError::Failed {
        pass: PASS,
        msg: e.to_string(),
    })?;
    let mut modules = vec![];
    for id in order {
        let Some(kind) = anchor_kind(g, id) else {
            continue;
        };
        if keep(id) {
            continue;
        }
        let bias = (kind == ModuleKind::MatMul)
            .then(|| matmul_bias(g, id))
            .flatten()
            .filter(|&b| !keep(b));
        let out = ValueId::of(bias.unwrap_or(id));
        let users = g.users(out);
        let act = match users.as_slice() {
            [(user, 0)] if !g.is_output(out) && !keep(*user) => match &g.node(*user).op {
                Op::Unary(u) if is_module_activation(u) => Some(*user),
                _ => None,
            },
            _ => None,
        };
        modules.push(Module {
            kind,
            anchor: id,
            bias,
            act,
        });
    }
    cx.modules = modules;
    Ok(false)
}
