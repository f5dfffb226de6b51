//! `fuse-residual`: a float `Conv` whose only use is an `Add` with a tensor
//! of the Add's own type (a residual connection, no broadcast) becomes one
//! `ConvAdd` node: the GEMM microkernels add the residual while the output
//! tile is in registers, instead of a second pass over three tensors.
//! `fuse-activation`, next, folds a Relu or Clip after it into the same node.
//!
//! Needs: a verified graph. Runs after the quantization passes, like
//! `fuse-activation`: what is fused here is what stayed float.
//! Guarantees: no float `Add` reads a `Conv` that has no other use, is not a
//! graph output and has the Add's type; each fused pair is one `ConvAdd`
//! named like the Conv, with a bias (zeros when the Conv had none), clamped
//! to `±inf`, read by the Add's former users (graph outputs included).

use crate::{Changed, PassContext, PassError};
use qcc_ir::{BinaryOp, DType, Graph, Op, Tensor, ValueId};

const PASS: &str = "fuse-residual";

pub fn run(g: &mut Graph, _cx: &mut PassContext) -> Result<Changed, PassError> {
    let fail = |msg: String| PassError::Failed { pass: PASS, msg };
    let order = g.topo_order().map_err(|e| fail(e.to_string()))?;
    let mut changed = false;
    for add in order {
        let n = g.node(add);
        if n.op != Op::Binary(BinaryOp::Add) || n.outputs[0].dtype != DType::F32 {
            continue;
        }
        let ty = n.outputs[0].clone();
        let ins = n.inputs().to_vec();
        // The first operand that is a fusable Conv; the other is the residual.
        let pick = (0..2).find(|&i| {
            let v = ins[i];
            matches!(g.node(v.node).op, Op::Conv(_))
                && g.users(v).len() == 1
                && !g.is_output(v)
                && *g.value_type(v) == ty
                && *g.value_type(ins[1 - i]) == ty
        });
        let Some(i) = pick else {
            continue;
        };
        let (src, res) = (ins[i], ins[1 - i]);
        let prod = g.node(src.node);
        let Op::Conv(conv) = prod.op.clone() else {
            continue;
        };
        let name = prod.name.clone();
        let mut cins = prod.inputs().to_vec();
        if cins.len() == 2 {
            let m = ty.shape[1];
            let zeros = Tensor::from_f32(vec![m], vec![0.0; m])
                .ok_or_else(|| fail(format!("{name}: no zero bias of {m} channels")))?;
            cins.push(ValueId::of(g.add_const(format!("{name}_bias"), zeros)));
        }
        cins.push(res);
        let op = Op::ConvAdd {
            conv,
            min: f32::NEG_INFINITY,
            max: f32::INFINITY,
        };
        let fused = g
            .add_node(op, name, cins)
            .map_err(|e| fail(e.to_string()))?;
        g.replace_all_uses(ValueId::of(add), ValueId::of(fused));
        g.remove_node(add);
        g.remove_node(src.node);
        changed = true;
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use qcc_ir::{ConvAttrs, NodeId, TensorType};

    /// `x → conv (bias or not) → add(conv, r)` with `r` an input of `r_shape`;
    /// `swap` puts the residual first; `extra_use` also outputs the conv.
    fn graph(bias: bool, r_shape: Vec<usize>, swap: bool, extra_use: bool) -> (Graph, NodeId) {
        let mut g = Graph::new("t");
        let x = g.add_input("x", TensorType::f32(vec![1, 2, 5, 5]));
        let r = g.add_input("r", TensorType::f32(r_shape));
        let w = g.add_const(
            "w",
            Tensor::from_f32(vec![3, 2, 3, 3], vec![0.5; 54]).unwrap(),
        );
        let mut ins = vec![ValueId::of(x), ValueId::of(w)];
        if bias {
            let b = g.add_const("b", Tensor::from_f32(vec![3], vec![1.0; 3]).unwrap());
            ins.push(ValueId::of(b));
        }
        let a = ConvAttrs {
            strides: vec![1, 1],
            pads: vec![1; 4],
            dilations: vec![1, 1],
            group: 1,
            output_padding: vec![0, 0],
        };
        let c = g.add_node(Op::Conv(a), "conv", ins).unwrap();
        let mut ab = vec![ValueId::of(c), ValueId::of(r)];
        if swap {
            ab.reverse();
        }
        let s = g.add_node(Op::Binary(BinaryOp::Add), "add", ab).unwrap();
        g.add_output("y", ValueId::of(s));
        if extra_use {
            g.add_output("c", ValueId::of(c));
        }
        (g, r)
    }

    #[test]
    fn conv_and_add_become_one_node() {
        let mut cx = PassContext::default();
        for (bias, swap) in [(true, false), (false, true)] {
            let (mut g, r) = graph(bias, vec![1, 3, 5, 5], swap, false);
            let (before, feed) = (g.clone(), {
                let x =
                    Tensor::from_f32(vec![1, 2, 5, 5], (0..50).map(|i| i as f32 * 0.1).collect());
                let r = Tensor::from_f32(
                    vec![1, 3, 5, 5],
                    (0..75).map(|i| 1.0 - i as f32 * 0.05).collect(),
                );
                vec![x.unwrap(), r.unwrap()]
            });
            assert!(run(&mut g, &mut cx).unwrap());
            qcc_ir::verify(&g).unwrap();
            let id = g.outputs[0].value.node;
            let n = g.node(id);
            assert_eq!(n.op.name(), "conv_add");
            assert_eq!(n.name, "conv");
            assert_eq!(n.inputs().len(), 4);
            assert_eq!(n.inputs()[3], ValueId::of(r));
            // Same numbers as Conv then Add.
            let want = qcc_interp::run(&before, &feed).unwrap();
            let got = qcc_interp::run(&g, &feed).unwrap();
            assert_eq!(got, want);
        }
    }

    #[test]
    fn broadcast_shared_or_non_conv_adds_stay() {
        let mut cx = PassContext::default();
        // A broadcast residual.
        let (mut g, _) = graph(true, vec![1, 3, 1, 1], false, false);
        assert!(!run(&mut g, &mut cx).unwrap());
        // The conv is also a graph output.
        let (mut g, _) = graph(true, vec![1, 3, 5, 5], false, true);
        assert!(!run(&mut g, &mut cx).unwrap());
    }
}
