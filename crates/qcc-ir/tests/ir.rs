//! Shape inference, verifier and printer.

use qcc_ir::*;

fn conv(strides: usize, pad: usize, group: usize) -> Op {
    Op::Conv(ConvAttrs {
        strides: vec![strides; 2],
        pads: vec![pad; 4],
        dilations: vec![1; 2],
        group,
        output_padding: vec![0; 2],
    })
}

#[test]
fn conv_shapes() {
    let x = TensorType::f32(vec![1, 4, 9, 9]);
    let w = TensorType::f32(vec![8, 2, 3, 3]);
    let out = infer(&conv(2, 1, 2), &[&x, &w]).unwrap();
    assert_eq!(out, vec![TensorType::f32(vec![1, 8, 5, 5])]);
    // Group does not divide the channels.
    assert!(infer(&conv(1, 0, 3), &[&x, &w]).is_err());
    // Kernel larger than padded input.
    let big = TensorType::f32(vec![8, 2, 12, 12]);
    assert!(infer(&conv(1, 1, 2), &[&x, &big]).is_err());
}

#[test]
fn pool_ceil_mode() {
    let p = PoolAttrs {
        kernel: vec![3, 3],
        strides: vec![2, 2],
        pads: vec![0; 4],
        dilations: vec![1, 1],
        ceil_mode: true,
        count_include_pad: false,
    };
    let x = TensorType::f32(vec![1, 1, 6, 6]);
    assert_eq!(
        infer(&Op::MaxPool(p.clone()), &[&x]).unwrap()[0].shape,
        vec![1, 1, 3, 3]
    );
    let floor = PoolAttrs {
        ceil_mode: false,
        ..p
    };
    assert_eq!(
        infer(&Op::MaxPool(floor), &[&x]).unwrap()[0].shape,
        vec![1, 1, 2, 2]
    );
}

#[test]
fn broadcasting_and_matmul() {
    assert_eq!(broadcast_shapes(&[2, 1, 3], &[4, 1]), Some(vec![2, 4, 3]));
    assert_eq!(broadcast_shapes(&[2, 3], &[4]), None);
    assert_eq!(broadcast_strides(&[4, 1], &[2, 4, 3]), vec![0, 1, 0]);
    let a = TensorType::f32(vec![5, 2, 3]);
    let b = TensorType::f32(vec![3]);
    assert_eq!(infer(&Op::MatMul, &[&a, &b]).unwrap()[0].shape, vec![5, 2]);
}

#[test]
fn same_padding() {
    assert_eq!(same_pads(&[5], &[3], &[2], &[1], true), vec![1, 1]);
    assert_eq!(same_pads(&[4], &[3], &[2], &[1], true), vec![0, 1]);
    assert_eq!(same_pads(&[4], &[3], &[2], &[1], false), vec![1, 0]);
}

fn small_graph() -> (Graph, NodeId) {
    let mut g = Graph::new("t");
    let x = g.add_input("x", TensorType::f32(vec![1, 4]));
    let w = g.add_const("w", Tensor::from_f32(vec![4, 2], vec![0.5; 8]).unwrap());
    let mm = g
        .add_node(Op::MatMul, "mm", vec![ValueId::of(x), ValueId::of(w)])
        .unwrap();
    let r = g
        .add_node(Op::Unary(UnaryOp::Relu), "relu", vec![ValueId::of(mm)])
        .unwrap();
    g.add_output("y", ValueId::of(r));
    (g, mm)
}

#[test]
fn verifier_accepts_and_printer_prints() {
    let (g, _) = small_graph();
    verify(&g).unwrap();
    let text = print(&g).unwrap();
    assert!(text.contains("matmul %0, %1 : f32[1,2]  # mm"), "{text}");
    assert!(text.contains("return %3 \"y\""), "{text}");
}

#[test]
fn verifier_rejects_wrong_declared_type() {
    let (mut g, mm) = small_graph();
    g.node_mut(mm).outputs = vec![TensorType::f32(vec![1, 3])];
    let e = verify(&g).unwrap_err().to_string();
    assert!(e.contains("'mm'"), "{e}");
}

/// `x → quantize → reshape → relu-free integer chain`: the quantize's
/// output carries its parameters, the reshape inherits them.
fn quant_chain() -> (Graph, NodeId, NodeId) {
    let mut g = Graph::new("q");
    let x = g.add_input("x", TensorType::f32(vec![2, 3]));
    let q = QParams {
        scale: 0.5,
        zero_point: -3,
    };
    let qn = g
        .add_node(Op::Quantize { q, to: DType::I8 }, "q", vec![ValueId::of(x)])
        .unwrap();
    let r = g
        .add_node(Op::Reshape { shape: vec![6] }, "r", vec![ValueId::of(qn)])
        .unwrap();
    g.add_output("y", ValueId::of(r));
    (g, qn, r)
}

#[test]
fn quantization_parameters_are_part_of_the_type() {
    let (g, qn, r) = quant_chain();
    let q = Some(QParams {
        scale: 0.5,
        zero_point: -3,
    });
    assert_eq!(g.value_type(ValueId::of(qn)).quant, q);
    assert_eq!(g.value_type(ValueId::of(r)).quant, q);
    verify(&g).unwrap();
    let text = print(&g).unwrap();
    assert!(text.contains(": i8[6](s=0.5,z=-3)  # r"), "{text}");
    // A quantize whose type disagrees with its own parameters is a bug.
    let mut bad = g.clone();
    bad.node_mut(qn).outputs[0].quant = None;
    let e = verify(&bad).unwrap_err().to_string();
    assert!(e.contains("'q'"), "{e}");
    // So is a reshape that changes what its integers stand for.
    let mut bad = g.clone();
    bad.node_mut(r).outputs[0].quant = Some(QParams {
        scale: 0.25,
        zero_point: -3,
    });
    let e = verify(&bad).unwrap_err().to_string();
    assert!(e.contains("'r'"), "{e}");
    // Setting a value's parameters carries them through the layout ops.
    let mut g2 = g.clone();
    let q2 = Some(QParams {
        scale: 0.125,
        zero_point: 0,
    });
    g2.set_quant(ValueId::of(qn), q2);
    assert_eq!(g2.value_type(ValueId::of(r)).quant, q2);
    assert_eq!(g2.output_quant(0), q2);
}

#[test]
fn replace_uses_and_dead_code() {
    let (mut g, mm) = small_graph();
    let relu = g.users(ValueId::of(mm))[0].0;
    // Bypass the relu: the output now reads the matmul directly.
    g.replace_all_uses(ValueId::of(relu), ValueId::of(mm));
    assert_eq!(g.remove_dead_nodes(), 1);
    verify(&g).unwrap();
    assert_eq!(g.outputs[0].value, ValueId::of(mm));
}

#[test]
fn cycles_are_reported() {
    let mut g = Graph::new("c");
    let x = g.add_input("x", TensorType::f32(vec![2]));
    let a = g
        .add_node(Op::Unary(UnaryOp::Relu), "a", vec![ValueId::of(x)])
        .unwrap();
    let b = g
        .add_node(Op::Unary(UnaryOp::Relu), "b", vec![ValueId::of(a)])
        .unwrap();
    g.set_input(a, 0, ValueId::of(b));
    assert!(matches!(verify(&g), Err(IrError::Cycle { .. })));
}

/// Integer kernels read weights packed at compile time: a QGemm whose
/// weights are computed at run time is rejected here, not in codegen.
#[test]
fn verifier_rejects_run_time_integer_weights() {
    let mut g = Graph::new("w");
    let a = g.add_input("a", TensorType::new(DType::I8, vec![2, 4]));
    let w_in = g.add_input("w", TensorType::new(DType::I8, vec![4, 3]));
    let w_const = g.add_const(
        "wc",
        Tensor::new(vec![4, 3], TensorData::I8(vec![1; 12])).unwrap(),
    );
    let bias = g.add_const(
        "b",
        Tensor::new(vec![3], TensorData::I32(vec![0; 3])).unwrap(),
    );
    let op = Op::QGemm {
        a_zero_point: 0,
        epi: Epilogue {
            rescale: Rescale::uniform(1, 0),
            zero_point: 0,
            min: -128,
            max: 127,
        },
        to: DType::I8,
    };
    let ins = |w: NodeId| vec![ValueId::of(a), ValueId::of(w), ValueId::of(bias)];
    let ok = g.add_node(op.clone(), "ok", ins(w_const)).unwrap();
    g.add_output("y", ValueId::of(ok));
    verify(&g).unwrap();
    let bad = g.add_node(op, "gemm", ins(w_in)).unwrap();
    g.add_output("z", ValueId::of(bad));
    let e = verify(&g).unwrap_err().to_string();
    assert!(
        e.contains("'gemm'") && e.contains("weights must be a constant"),
        "{e}"
    );
}

/// A binary layer's kernel keeps its weights as bits: the verifier accepts
/// a `SignMatMul` only on constant weights of -1 and +1.
#[test]
fn sign_matmul_needs_constant_plus_minus_one_weights() {
    let mut g = Graph::new("t");
    let u = g.add_input("u", TensorType::f32([2, 3]));
    let w_in = g.add_input("w", TensorType::f32([3, 2]));
    let w = |v: f32| {
        Tensor::new(
            vec![3, 2],
            TensorData::F32(vec![1.0, -1.0, 1.0, 1.0, -1.0, v]),
        )
        .unwrap()
    };
    let good = g.add_const("good", w(-1.0));
    let half = g.add_const("half", w(0.5));
    let ok = g
        .add_node(
            Op::SignMatMul {
                bipolar: false,
                step: None,
            },
            "ok",
            vec![ValueId::of(u), ValueId::of(good)],
        )
        .unwrap();
    g.add_output("y", ValueId::of(ok));
    verify(&g).unwrap();
    for (name, wv) in [("run_time", w_in), ("not_binary", half)] {
        let mut h = g.clone();
        let bad = h
            .add_node(
                Op::SignMatMul {
                    bipolar: false,
                    step: None,
                },
                name,
                vec![ValueId::of(u), ValueId::of(wv)],
            )
            .unwrap();
        h.add_output("z", ValueId::of(bad));
        let e = verify(&h).unwrap_err().to_string();
        assert!(e.contains(name) && e.contains("-1 and +1"), "{e}");
    }
}

/// ... and only up to `SIGN_MATMUL_MAX_K` (its kernel's sign masks).
#[test]
fn sign_matmul_k_is_bounded() {
    let k = SIGN_MATMUL_MAX_K + 1;
    let mut g = Graph::new("t");
    let u = g.add_input("u", TensorType::f32([1, k]));
    let w = g.add_const(
        "w",
        Tensor::new(vec![k, 1], TensorData::F32(vec![1.0; k])).unwrap(),
    );
    let e = g
        .add_node(
            Op::SignMatMul {
                bipolar: false,
                step: None,
            },
            "wide",
            vec![ValueId::of(u), ValueId::of(w)],
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
        .and_then(|()| verify(&g).map_err(|e| e.to_string()))
        .unwrap_err();
    assert!(e.contains(&format!("K = {k}")), "{e}");
}

/// QMatMul's operands: i8 only, A `[…, M, K]` with B 2-D or with A's batch
/// dims, K within the i32 bound, a per-tensor epilogue; a float-form
/// epilogue is accepted, an invalid float factor is not.
#[test]
fn qmatmul_shapes_and_parameters() {
    let i8t = |s: &[usize]| TensorType::new(DType::I8, s.to_vec());
    let op = |epi: Epilogue| Op::QMatMul {
        a_zero_point: 3,
        b_zero_point: -4,
        epi,
        to: DType::I8,
    };
    let epi = |rescale: Rescale| Epilogue {
        rescale,
        zero_point: 0,
        min: -128,
        max: 127,
    };
    let fixed = op(epi(Rescale::fixed_point(0.01).unwrap()));
    let out = infer(&fixed, &[&i8t(&[2, 4, 5, 16]), &i8t(&[2, 4, 16, 7])]).unwrap();
    assert_eq!(out[0].shape, vec![2, 4, 5, 7]);
    assert_eq!(
        infer(&fixed, &[&i8t(&[3, 16]), &i8t(&[16, 7])]).unwrap()[0].shape,
        vec![3, 7]
    );
    // Inner dims, batch dims, types, the K bound.
    assert!(infer(&fixed, &[&i8t(&[3, 16]), &i8t(&[15, 7])]).is_err());
    assert!(infer(&fixed, &[&i8t(&[2, 3, 16]), &i8t(&[3, 16, 7])]).is_err());
    let u8t = TensorType::new(DType::U8, vec![16, 7]);
    assert!(infer(&fixed, &[&i8t(&[3, 16]), &u8t]).is_err());
    let k = infer::MATMUL_INTEGER_MAX_K + 1;
    assert!(infer(&fixed, &[&i8t(&[1, k]), &i8t(&[k, 1])]).is_err());
    // Float form: valid factors only; one factor (per tensor).
    let float = op(epi(Rescale::float(&[0.25]).unwrap()));
    assert!(infer(&float, &[&i8t(&[3, 16]), &i8t(&[16, 7])]).is_ok());
    assert!(Rescale::float(&[f32::NAN]).is_none() && Rescale::float(&[0.0]).is_none());
    let mut bad = Rescale::float(&[0.25]).unwrap();
    bad.float.as_mut().unwrap().scales[0] = -1.0;
    assert!(infer(&op(epi(bad)), &[&i8t(&[3, 16]), &i8t(&[16, 7])]).is_err());
    let per_channel = op(epi(Rescale::float(&[0.25, 0.5]).unwrap()));
    assert!(infer(&per_channel, &[&i8t(&[3, 16]), &i8t(&[16, 2])]).is_err());
}

/// Per-channel weight parameters (`TensorType::axis_quant`) must fit: one
/// scale per channel along an existing axis, positive, on 8-bit constants,
/// along a QGemm's columns (axis 1), and a width (`bits`) that holds every
/// weight.
#[test]
fn verify_checks_per_channel_weight_parameters() {
    use qcc_ir::{AxisQuant, Epilogue, Rescale};
    let aq = |axis, scales: Vec<f32>| AxisQuant {
        axis,
        scales,
        zero_points: vec![0],
        bits: 8,
    };
    let build = |wt: Tensor, q: AxisQuant| {
        let mut g = Graph::new("t");
        let x = g.add_input("x", TensorType::new(DType::I8, [1, 3]));
        let w = g.add_const("w", wt);
        g.set_axis_quant(ValueId::of(w), Some(q));
        let b = g.add_const(
            "b",
            Tensor::new(vec![2], TensorData::I32(vec![0, 0])).unwrap(),
        );
        let epi = Epilogue {
            rescale: Rescale::uniform(1, 0),
            zero_point: 0,
            min: -128,
            max: 127,
        };
        let op = Op::QGemm {
            a_zero_point: 0,
            epi,
            to: DType::I8,
        };
        let y = g.add_node(
            op,
            "gemm",
            vec![ValueId::of(x), ValueId::of(w), ValueId::of(b)],
        );
        if let Ok(y) = y {
            g.add_output("y", ValueId::of(y));
        }
        qcc_ir::verify(&g).map_err(|e| e.to_string())
    };
    let w8 = || Tensor::new(vec![3, 2], TensorData::I8(vec![1, -2, 3, -4, 5, -6])).unwrap();
    assert!(build(w8(), aq(1, vec![0.5, 0.25])).is_ok());
    let e = build(w8(), aq(1, vec![0.5])).unwrap_err();
    assert!(e.contains("1 scales for 2 channels"), "{e}");
    let e = build(w8(), aq(0, vec![0.5, 0.25, 1.0])).unwrap_err();
    assert!(e.contains("along axis 0, not 1"), "{e}");
    let e = build(w8(), aq(1, vec![0.5, -1.0])).unwrap_err();
    assert!(e.contains("not a positive number"), "{e}");
    let e = build(w8(), aq(2, vec![0.5])).unwrap_err();
    assert!(e.contains("past the rank"), "{e}");
    // Widths: 5 and -6 are 4-bit values, not 3-bit ones; 9 bits is too many.
    let bits = |b| AxisQuant {
        bits: b,
        ..aq(1, vec![0.5, 0.25])
    };
    assert!(build(w8(), bits(4)).is_ok());
    let e = build(w8(), bits(3)).unwrap_err();
    assert!(e.contains("weight 5 does not fit its 3-bit type"), "{e}");
    let e = build(w8(), bits(9)).unwrap_err();
    assert!(e.contains("9-bit weights"), "{e}");
    assert_eq!(AxisQuant::bits_for([1, -2, 3, -4, 5, -6], true), 4);
    assert_eq!(AxisQuant::bits_for([-2, 1, 0], true), 2);
    assert_eq!(AxisQuant::bits_for([-65, 63], true), 8);
    assert_eq!(AxisQuant::range(4, false), (0, 15));
}
