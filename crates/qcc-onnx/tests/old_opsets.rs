//! Models at opsets 1 to 6 import with the semantics of their op versions:
//! each old form computes, through the interpreter, exactly what its modern
//! spelling computes, and the old forms that cannot be compiled for
//! inference are refused naming the node.

mod common;

use common::*;
use qcc_ir::{Tensor, TensorData};
use qcc_onnx::proto::ModelProto;

fn run(m: &ModelProto, inputs: &[Tensor]) -> Vec<Tensor> {
    let g = import(m).unwrap_or_else(|e| panic!("import: {e}"));
    qcc_interp::run(&g, inputs).expect("interpreter")
}

fn seq(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    let v = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
    Tensor::new(shape.to_vec(), TensorData::F32(v)).expect("tensor")
}

/// `old` and `new` (models with input `x` of `shape`) agree exactly.
fn same(old: &ModelProto, new: &ModelProto, shape: &[usize]) {
    let x = seq(shape);
    let (a, b) = (run(old, std::slice::from_ref(&x)), run(new, &[x]));
    // Bit for bit (a Div by the sequence's 0 gives the same NaN and infinities).
    let bits = |v: &[Tensor]| {
        v.iter()
            .map(|t| (t.ty(), t.to_le_bytes()))
            .collect::<Vec<_>>()
    };
    assert_eq!(bits(&a), bits(&b));
}

fn one_node(opset: i64, n: N, x: &[usize], inits: Vec<qcc_onnx::proto::TensorProto>) -> ModelProto {
    model(
        opset,
        graph(vec![n], vec![fvi("x", x)], vec![out("y")], inits),
    )
}

#[test]
fn legacy_broadcast_follows_axis() {
    // B [3, 4] against A [2, 3, 4, 5] from axis 1.
    let b = tf32_seq("b", &[3, 4]);
    let b4 = tf32_seq("b", &[1, 3, 4, 1]);
    for op in ["Add", "Sub", "Mul", "Div", "Pow"] {
        let old = one_node(
            6,
            node("n", op, &["x", "b"], &["y"])
                .i("broadcast", 1)
                .i("axis", 1),
            &[2, 3, 4, 5],
            vec![b.clone()],
        );
        let new = one_node(
            13,
            node("n", op, &["x", "b"], &["y"]),
            &[2, 3, 4, 5],
            vec![b4.clone()],
        );
        same(&old, &new, &[2, 3, 4, 5]);
    }
    // No axis: B aligned with A's last dims, as numpy does.
    let b = tf32_seq("b", &[4, 5]);
    let old = one_node(
        5,
        node("n", "Mul", &["x", "b"], &["y"]).i("broadcast", 1),
        &[2, 3, 4, 5],
        vec![b.clone()],
    );
    let new = one_node(
        13,
        node("n", "Mul", &["x", "b"], &["y"]),
        &[2, 3, 4, 5],
        vec![b],
    );
    same(&old, &new, &[2, 3, 4, 5]);
    // Comparisons too (a bool result).
    let b = tf32_seq("b", &[2]);
    let b4 = tf32_seq("b", &[2, 1, 1]);
    let old = one_node(
        1,
        node("n", "Greater", &["x", "b"], &["y"])
            .i("broadcast", 1)
            .i("axis", 0),
        &[2, 3, 4],
        vec![b],
    );
    let new = one_node(
        13,
        node("n", "Greater", &["x", "b"], &["y"]),
        &[2, 3, 4],
        vec![b4],
    );
    same(&old, &new, &[2, 3, 4]);
}

#[test]
fn legacy_broadcast_is_only_on_request() {
    let m = one_node(
        6,
        node("add1", "Add", &["x", "b"], &["y"]),
        &[2, 3],
        vec![tf32_seq("b", &[3])],
    );
    let msg = import_err(&m);
    assert!(
        msg.contains("node 'add1' (Add): operand shapes [2, 3] and [3] differ, and opset 6 broadcasts only with broadcast=1"),
        "{msg}"
    );
    let m = one_node(
        6,
        node("add2", "Add", &["x", "b"], &["y"])
            .i("broadcast", 1)
            .i("axis", 0),
        &[2, 3],
        vec![tf32_seq("b", &[3])],
    );
    let msg = import_err(&m);
    assert!(
        msg.contains("does not broadcast to [2, 3] from axis 0"),
        "{msg}"
    );
}

#[test]
fn old_attribute_forms() {
    // Reshape's shape as an attribute (opsets 1-4).
    let old = one_node(
        4,
        node("r", "Reshape", &["x"], &["y"]).ints("shape", &[3, -1]),
        &[2, 6],
        vec![],
    );
    let new = one_node(
        13,
        node("r", "Reshape", &["x", "s"], &["y"]),
        &[2, 6],
        vec![ints("s", &[3, -1])],
    );
    same(&old, &new, &[2, 6]);
    // Concat's axis is optional before opset 4 (1 by default).
    let c = |opset: i64, n: N| {
        model(
            opset,
            graph(
                vec![n],
                vec![fvi("x", &[2, 3]), fvi("z", &[2, 2])],
                vec![out("y")],
                vec![],
            ),
        )
    };
    let (x, z) = (seq(&[2, 3]), seq(&[2, 2]));
    let a = run(
        &c(3, node("c", "Concat", &["x", "z"], &["y"])),
        &[x.clone(), z.clone()],
    );
    let b = run(
        &c(13, node("c", "Concat", &["x", "z"], &["y"]).i("axis", 1)),
        &[x, z],
    );
    assert_eq!(a, b);
    // Pad's pads were `paddings` at opset 1.
    let old = one_node(
        1,
        node("p", "Pad", &["x"], &["y"])
            .ints("paddings", &[0, 1, 1, 0])
            .f("value", 2.5),
        &[2, 3],
        vec![],
    );
    let new = one_node(
        2,
        node("p", "Pad", &["x"], &["y"])
            .ints("pads", &[0, 1, 1, 0])
            .f("value", 2.5),
        &[2, 3],
        vec![],
    );
    same(&old, &new, &[2, 3]);
    // Cast's target type by name before opset 6.
    let old = one_node(
        5,
        node("c", "Cast", &["x"], &["y"]).s("to", "INT64"),
        &[2, 3],
        vec![],
    );
    let new = one_node(
        13,
        node("c", "Cast", &["x"], &["y"]).i("to", 7),
        &[2, 3],
        vec![],
    );
    same(&old, &new, &[2, 3]);
    let m = one_node(
        5,
        node("c", "Cast", &["x"], &["y"]).s("to", "QUATERNION"),
        &[2, 3],
        vec![],
    );
    assert!(import_err(&m).contains("unknown type name 'QUATERNION'"));
    // consumed_inputs (opsets 1-5) is a memory hint, nothing to compute.
    let old = one_node(
        1,
        node("r", "Relu", &["x"], &["y"]).ints("consumed_inputs", &[0]),
        &[2, 3],
        vec![],
    );
    let new = one_node(13, node("r", "Relu", &["x"], &["y"]), &[2, 3], vec![]);
    same(&old, &new, &[2, 3]);
}

#[test]
fn batch_norm_and_dropout_need_test_mode() {
    let stats = || {
        vec![
            tf32("s", &[3], &[1.0, 2.0, 0.5]),
            tf32("b", &[3], &[0.1, -0.2, 0.3]),
            tf32("m", &[3], &[0.0, 0.5, -0.5]),
            tf32("v", &[3], &[1.0, 4.0, 0.25]),
        ]
    };
    let bn = |opset: i64, is_test: Option<i64>| {
        let mut n = node(
            "bn",
            "BatchNormalization",
            &["x", "s", "b", "m", "v"],
            &["y"],
        );
        if let Some(t) = is_test {
            n = n.i("is_test", t);
        }
        one_node(opset, n, &[2, 3, 4], stats())
    };
    same(&bn(6, Some(1)), &bn(13, None), &[2, 3, 4]);
    for m in [bn(6, None), bn(6, Some(0))] {
        let msg = import_err(&m);
        assert!(
            msg.contains(
                "node 'bn' (BatchNormalization): is_test=0 asks for training mode at opset 6"
            ),
            "{msg}"
        );
    }
    let d = one_node(
        6,
        node("d", "Dropout", &["x"], &["y"]).i("is_test", 1),
        &[2, 3],
        vec![],
    );
    let x = seq(&[2, 3]);
    assert_eq!(run(&d, std::slice::from_ref(&x)), vec![x]);
    let d = one_node(6, node("d", "Dropout", &["x"], &["y"]), &[2, 3], vec![]);
    assert!(import_err(&d).contains("node 'd' (Dropout): is_test=0 asks for training mode"));
}

#[test]
fn gemm_c_broadcasts_only_on_request() {
    let inits = |c: &[i64]| vec![tf32_seq("w", &[3, 4]), tf32_seq("c", c)];
    let g = |opset: i64, c: &[i64], bcast: bool| {
        let mut n = node("fc", "Gemm", &["x", "w", "c"], &["y"]);
        if bcast {
            n = n.i("broadcast", 1);
        }
        one_node(opset, n, &[2, 3], inits(c))
    };
    same(&g(6, &[2, 4], false), &g(13, &[2, 4], false), &[2, 3]);
    same(&g(6, &[4], true), &g(13, &[4], false), &[2, 3]);
    let msg = import_err(&g(6, &[4], false));
    assert!(
        msg.contains("node 'fc' (Gemm): C f32[4] must have the result's shape [2, 4] at opset 6"),
        "{msg}"
    );
}

#[test]
fn models_without_opset_import_are_opset_1() {
    let mut m = one_node(1, node("r", "Relu", &["x"], &["y"]), &[2, 3], vec![]);
    m.opset_import.clear();
    m.ir_version = Some(2);
    let x = seq(&[2, 3]);
    let want: Vec<f32> = x.as_f32().unwrap().iter().map(|v| v.max(0.0)).collect();
    assert_eq!(run(&m, &[x])[0].as_f32().unwrap(), &want[..]);
}
