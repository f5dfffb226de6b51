//! `fuse-activation`: a float `Conv` whose only use is a `Relu` or `Clip`
//! becomes one `ConvClamp` node, so the clamp happens in the convolution's
//! epilogue (the GEMM microkernels clamp while the tile is in registers)
//! instead of in a second pass over the whole tensor. An unclamped
//! `ConvAdd` (from `fuse-residual`) takes the clamp the same way.
//!
//! Needs: a verified graph. Runs last: with `--quantize` the modules have
//! already become integer kernels whose epilogue clamps; what is fused here
//! is what stayed float.
//! Guarantees: no `Relu`/`Clip` reads a float `Conv` (or unclamped
//! `ConvAdd`) that has no other use and is not a graph output; each fused
//! pair is one `ConvClamp` (`ConvAdd`) named like the Conv, read by the
//! activation's former users (graph outputs included).

use crate::{Changed, PassContext, PassError};
use qcc_ir::{DType, Graph, Op, UnaryOp, ValueId};

const PASS: &str = "fuse-activation";

pub fn run(g: &mut Graph, _cx: &mut PassContext) -> Result<Changed, PassError> {
    let fail = |msg: String| PassError::Failed { pass: PASS, msg };
    let order = g.topo_order().map_err(|e| fail(e.to_string()))?;
    let mut changed = false;
    for act in order {
        let n = g.node(act);
        let (min, max) = match n.op {
            Op::Unary(UnaryOp::Relu) => (0.0, f32::INFINITY),
            Op::Unary(UnaryOp::Clip { min, max }) => (min, max),
            _ => continue,
        };
        let src = n.inputs()[0];
        let prod = g.node(src.node);
        let op = match &prod.op {
            Op::Conv(conv) => Op::ConvClamp {
                conv: conv.clone(),
                min,
                max,
            },
            Op::ConvAdd {
                conv,
                min: f32::NEG_INFINITY,
                max: f32::INFINITY,
            } => Op::ConvAdd {
                conv: conv.clone(),
                min,
                max,
            },
            _ => continue,
        };
        if prod.outputs[0].dtype != DType::F32 || g.is_output(src) || g.users(src).len() != 1 {
            continue;
        }
        let (name, ins) = (prod.name.clone(), prod.inputs().to_vec());
        let fused = g.add_node(op, name, ins).map_err(|e| fail(e.to_string()))?;
        g.replace_all_uses(ValueId::of(act), ValueId::of(fused));
        g.remove_node(act);
        g.remove_node(src.node);
        changed = true;
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use qcc_ir::{ConvAttrs, Tensor, TensorType};

    fn conv_graph(act: Option<UnaryOp>, extra_use: bool) -> Graph {
        let mut g = Graph::new("t");
        let x = g.add_input("x", TensorType::f32(vec![1, 2, 5, 5]));
        let w = g.add_const(
            "w",
            Tensor::from_f32(vec![3, 2, 3, 3], vec![0.5; 54]).unwrap(),
        );
        let a = ConvAttrs {
            strides: vec![1, 1],
            pads: vec![1; 4],
            dilations: vec![1, 1],
            group: 1,
            output_padding: vec![0, 0],
        };
        let c = g
            .add_node(Op::Conv(a), "conv", vec![ValueId::of(x), ValueId::of(w)])
            .unwrap();
        let mut last = c;
        if let Some(u) = act {
            last = g
                .add_node(Op::Unary(u), "act", vec![ValueId::of(c)])
                .unwrap();
        }
        g.add_output("y", ValueId::of(last));
        if extra_use {
            g.add_output("c", ValueId::of(c));
        }
        g
    }

    fn ops(g: &Graph) -> Vec<&'static str> {
        g.topo_order()
            .unwrap()
            .into_iter()
            .map(|id| g.node(id).op.name())
            .collect()
    }

    #[test]
    fn relu_and_clip_fold_into_the_conv() {
        let mut cx = PassContext::default();
        for (u, lo, hi) in [
            (UnaryOp::Relu, 0.0, f32::INFINITY),
            (UnaryOp::Clip { min: 0.0, max: 6.0 }, 0.0, 6.0),
        ] {
            let mut g = conv_graph(Some(u), false);
            assert!(run(&mut g, &mut cx).unwrap());
            qcc_ir::verify(&g).unwrap();
            assert_eq!(ops(&g), ["input", "const", "conv_clamp"]);
            let id = g.outputs[0].value.node;
            assert_eq!(g.node(id).name, "conv");
            let Op::ConvClamp { min, max, .. } = g.node(id).op else {
                panic!("not fused");
            };
            assert_eq!((min, max), (lo, hi));
        }
    }

    #[test]
    fn relu_after_a_residual_add_folds_into_conv_add() {
        let mut cx = PassContext::default();
        let mut g = Graph::new("t");
        let ty = TensorType::f32(vec![1, 3, 5, 5]);
        let x = g.add_input("x", TensorType::f32(vec![1, 2, 5, 5]));
        let r = g.add_input("r", ty);
        let w = g.add_const(
            "w",
            Tensor::from_f32(vec![3, 2, 1, 1], vec![0.5; 6]).unwrap(),
        );
        let b = g.add_const("b", Tensor::from_f32(vec![3], vec![0.0; 3]).unwrap());
        let a = ConvAttrs {
            strides: vec![1, 1],
            pads: vec![0; 4],
            dilations: vec![1, 1],
            group: 1,
            output_padding: vec![0, 0],
        };
        let unclamped = Op::ConvAdd {
            conv: a,
            min: f32::NEG_INFINITY,
            max: f32::INFINITY,
        };
        let ins = [x, w, b, r].map(ValueId::of).to_vec();
        let c = g.add_node(unclamped, "conv", ins).unwrap();
        let y = g
            .add_node(Op::Unary(UnaryOp::Relu), "act", vec![ValueId::of(c)])
            .unwrap();
        g.add_output("y", ValueId::of(y));
        assert!(run(&mut g, &mut cx).unwrap());
        qcc_ir::verify(&g).unwrap();
        assert_eq!(ops(&g), ["input", "input", "const", "const", "conv_add"]);
        let Op::ConvAdd { min, max, .. } = g.node(g.outputs[0].value.node).op else {
            panic!("not fused");
        };
        assert_eq!((min, max), (0.0, f32::INFINITY));
        // A clamped ConvAdd keeps its clamp and the second activation.
        let mut g2 = g.clone();
        let last = g2.outputs[0].value;
        let z = g2
            .add_node(Op::Unary(UnaryOp::Relu), "act2", vec![last])
            .unwrap();
        g2.outputs[0].value = ValueId::of(z);
        assert!(!run(&mut g2, &mut cx).unwrap());
    }

    #[test]
    fn shared_or_unactivated_convs_stay() {
        let mut cx = PassContext::default();
        let mut g = conv_graph(Some(UnaryOp::Relu), true);
        assert!(!run(&mut g, &mut cx).unwrap());
        assert_eq!(ops(&g), ["input", "const", "conv", "relu"]);
        let mut g = conv_graph(Some(UnaryOp::Sigmoid), false);
        assert!(!run(&mut g, &mut cx).unwrap());
        let mut g = conv_graph(None, false);
        assert!(!run(&mut g, &mut cx).unwrap());
    }
}
