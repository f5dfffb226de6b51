//! Importing well-formed models: op translation and opset differences.

mod common;

use common::*;
use qcc_ir::{Op, TensorData};

/// The printed IR with value numbers replaced by `%_`, so assertions do
/// not depend on how many constants come first.
fn print_ok(m: &qcc_onnx::proto::ModelProto) -> String {
    import_print(m)
}

fn unnumbered(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '%' {
            out.push('_');
            while chars
                .peek()
                .is_some_and(|d| d.is_ascii_digit() || *d == '.')
            {
                chars.next();
            }
        }
    }
    out
}

#[test]
fn conv_relu_gemm() {
    let g = graph(
        vec![
            node("conv1", "Conv", &["x", "W", "B"], &["c"])
                .ints("pads", &[1, 1, 1, 1])
                .ints("kernel_shape", &[3, 3]),
            node("relu1", "Relu", &["c"], &["r"]),
            node("gap", "GlobalAveragePool", &["r"], &["p"]),
            node("flat", "Flatten", &["p"], &["f"]),
            node("fc", "Gemm", &["f", "W2", "C2"], &["y"]).i("transB", 1),
        ],
        vec![fvi("x", &[1, 3, 8, 8])],
        vec![fvi("y", &[1, 10])],
        vec![
            tf32_seq("W", &[4, 3, 3, 3]),
            tf32_seq("B", &[4]),
            tf32_seq("W2", &[10, 4]),
            tf32_seq("C2", &[10]),
        ],
    );
    let m = model(13, g);
    let text = print_ok(&m);
    let want = r#"graph "test"(%0: f32[1,3,8,8] "x") {
  %1 = const @w0 : f32[4,3,3,3]  # W
  %2 = const @w1 [0,0.1,0.2,0.3] : f32[4]  # B
  %3 = const @w2 : f32[10,4]  # W2
  %4 = const @w3 : f32[10]  # C2
  %5 = conv %0, %1, %2 {strides=[1,1], pads=[1,1,1,1], dilations=[1,1], group=1} : f32[1,4,8,8]  # conv1
  %6 = relu %5 : f32[1,4,8,8]  # relu1
  %7 = reduce_mean %6 {axes=[2,3], keepdims=true} : f32[1,4,1,1]  # gap
  %8 = reshape %7 : f32[1,4]  # flat
  %9 = gemm %8, %3, %4 {alpha=1, beta=1, trans_a=false, trans_b=true} : f32[1,10]  # fc
  return %9 "y"
}
"#;
    assert_eq!(text, want);
    let g = import(&m).unwrap();
    assert_eq!(g.name, "test");
    assert_eq!(output_types(&g), ["f32[1,10]"]);
    assert_eq!(g.outputs[0].name, "y");
    assert_eq!(g.weights().len(), 4);
}

#[test]
fn graph_name_defaults_to_main() {
    let mut g = graph(
        vec![node("r", "Relu", &["x"], &["y"])],
        vec![fvi("x", &[2])],
        vec![out("y")],
        vec![],
    );
    g.name = None;
    assert_eq!(import(&model(13, g)).unwrap().name, "main");
}

fn conv_same(auto_pad: &str, stride: i64) -> qcc_ir::Graph {
    let g = graph(
        vec![node("c", "Conv", &["x", "W"], &["y"])
            .s("auto_pad", auto_pad)
            .ints("strides", &[stride, stride])],
        vec![fvi("x", &[1, 1, 5, 5])],
        vec![out("y")],
        vec![tf32_seq("W", &[1, 1, 2, 2])],
    );
    import(&model(11, g)).unwrap()
}

fn conv_pads(g: &qcc_ir::Graph) -> Vec<usize> {
    g.node_ids()
        .into_iter()
        .find_map(|id| match &g.node(id).op {
            Op::Conv(c) => Some(c.pads.clone()),
            _ => None,
        })
        .expect("a conv")
}

#[test]
fn auto_pad_same_upper_and_lower() {
    let up = conv_same("SAME_UPPER", 1);
    assert_eq!(conv_pads(&up), [0, 0, 1, 1]);
    assert_eq!(output_types(&up), ["f32[1,1,5,5]"]);
    let low = conv_same("SAME_LOWER", 1);
    assert_eq!(conv_pads(&low), [1, 1, 0, 0]);
    let strided = conv_same("SAME_UPPER", 2);
    assert_eq!(output_types(&strided), ["f32[1,1,3,3]"]);
    let valid = conv_same("VALID", 1);
    assert_eq!(conv_pads(&valid), [0, 0, 0, 0]);
    assert_eq!(output_types(&valid), ["f32[1,1,4,4]"]);
}

/// Squeeze → Unsqueeze → Split with the axes/split as attributes (opset 11)
/// or constant inputs (opset 13).
fn squeeze_split_model(opset: i64) -> qcc_onnx::proto::ModelProto {
    let (nodes, inits) = if opset < 13 {
        (
            vec![
                node("sq", "Squeeze", &["x"], &["s"]).ints("axes", &[-1]),
                node("unsq", "Unsqueeze", &["s"], &["u"]).ints("axes", &[0]),
                node("sp", "Split", &["u"], &["a", "b"])
                    .i("axis", 2)
                    .ints("split", &[2, 4]),
            ],
            vec![],
        )
    } else {
        (
            vec![
                node("sq", "Squeeze", &["x", "sq_axes"], &["s"]),
                node("unsq", "Unsqueeze", &["s", "unsq_axes"], &["u"]),
                node("sp", "Split", &["u", "split"], &["a", "b"]).i("axis", 2),
            ],
            vec![
                ints("sq_axes", &[-1]),
                ints("unsq_axes", &[0]),
                ints("split", &[2, 4]),
            ],
        )
    };
    model(
        opset,
        graph(
            nodes,
            vec![fvi("x", &[1, 6, 1])],
            vec![out("a"), out("b")],
            inits,
        ),
    )
}

#[test]
fn squeeze_unsqueeze_split_opset_11_and_13() {
    for opset in [11, 13] {
        let g = import(&squeeze_split_model(opset)).unwrap();
        assert_eq!(
            output_types(&g),
            ["f32[1,1,2]", "f32[1,1,4]"],
            "opset {opset}"
        );
        assert_eq!(
            ops(&g),
            ["reshape", "reshape", "slice", "slice"],
            "opset {opset}"
        );
        let text = unnumbered(&qcc_ir::print(&g).unwrap());
        assert!(
            text.contains("slice %_ {starts=[0,0,2], steps=[1,1,1]} : f32[1,1,4]  # sp/1"),
            "{text}"
        );
    }
}

#[test]
fn split_equal_and_num_outputs() {
    let g = graph(
        vec![node("sp", "Split", &["x"], &["a", "b", "c"]).i("axis", 1)],
        vec![fvi("x", &[2, 6])],
        vec![out("a"), out("b"), out("c")],
        vec![],
    );
    let g = import(&model(13, g)).unwrap();
    assert_eq!(output_types(&g), ["f32[2,2]", "f32[2,2]", "f32[2,2]"]);

    let g = graph(
        vec![node("sp", "Split", &["x"], &["a", "b", "c"])
            .i("axis", -1)
            .i("num_outputs", 3)],
        vec![fvi("x", &[2, 7])],
        vec![out("a"), out("b"), out("c")],
        vec![],
    );
    let g = import(&model(18, g)).unwrap();
    assert_eq!(output_types(&g), ["f32[2,3]", "f32[2,3]", "f32[2,1]"]);
}

#[test]
fn softmax_opset_11_is_coerced_to_2d() {
    let g = graph(
        vec![node("sm", "Softmax", &["x"], &["y"])],
        vec![fvi("x", &[2, 3, 4])],
        vec![fvi("y", &[2, 3, 4])],
        vec![],
    );
    let text = unnumbered(&print_ok(&model(11, g.clone())));
    assert!(
        text.contains("reshape %_ : f32[2,12]  # sm/coerce_2d"),
        "{text}"
    );
    assert!(
        text.contains("softmax %_ {axis=1} : f32[2,12]  # sm/softmax_2d"),
        "{text}"
    );
    assert!(text.contains("reshape %_ : f32[2,3,4]  # sm\n"), "{text}");
    // Opset 13: the default axis is the last one, no reshapes.
    let g13 = import(&model(13, g)).unwrap();
    assert_eq!(ops(&g13), ["softmax"]);
    assert!(qcc_ir::print(&g13).unwrap().contains("{axis=2}"));
}

#[test]
fn log_softmax_is_softmax_then_log() {
    let g = graph(
        vec![node("ls", "LogSoftmax", &["x"], &["y"]).i("axis", 0)],
        vec![fvi("x", &[2, 3])],
        vec![out("y")],
        vec![],
    );
    let g11 = import(&model(11, g.clone())).unwrap();
    assert_eq!(ops(&g11), ["reshape", "softmax", "reshape", "log"]);
    let g13 = import(&model(13, g)).unwrap();
    assert_eq!(ops(&g13), ["softmax", "log"]);
}

#[test]
fn reshape_with_zero_and_minus_one() {
    let g = graph(
        vec![node("r", "Reshape", &["x", "shape"], &["y"])],
        vec![fvi("x", &[2, 3, 4])],
        vec![fvi("y", &[2, 12])],
        vec![ints("shape", &[0, -1])],
    );
    let g = import(&model(13, g)).unwrap();
    assert_eq!(output_types(&g), ["f32[2,12]"]);
    let id = g.outputs[0].value.node;
    assert_eq!(g.node(id).op, Op::Reshape { shape: vec![2, 12] });
    assert_eq!(g.node(id).name, "r");
}

#[test]
fn reshape_allowzero() {
    let g = graph(
        vec![node("r", "Reshape", &["x", "shape"], &["y"]).i("allowzero", 1)],
        vec![fvi("x", &[0, 3])],
        vec![out("y")],
        vec![ints("shape", &[3, 0])],
    );
    let g = import(&model(14, g)).unwrap();
    assert_eq!(output_types(&g), ["f32[3,0]"]);
}

fn slice_op(g: &qcc_ir::Graph) -> Op {
    g.node(g.outputs[0].value.node).op.clone()
}

#[test]
fn slice_negative_and_clamped() {
    let g = graph(
        vec![node(
            "s",
            "Slice",
            &["x", "starts", "ends", "axes", "steps"],
            &["y"],
        )],
        vec![fvi("x", &[10, 8])],
        vec![out("y")],
        vec![
            ints("starts", &[-3, 0]),
            ints("ends", &[i64::MAX, -1]),
            ints("axes", &[0, -1]),
            ints("steps", &[1, 2]),
        ],
    );
    let g = import(&model(13, g)).unwrap();
    assert_eq!(output_types(&g), ["f32[3,4]"]);
    assert_eq!(
        slice_op(&g),
        Op::Slice {
            starts: vec![7, 0],
            steps: vec![1, 2],
            lens: vec![3, 4]
        }
    );
}

#[test]
fn slice_negative_step_reverses() {
    let g = graph(
        vec![node(
            "s",
            "Slice",
            &["x", "starts", "ends", "axes", "steps"],
            &["y"],
        )],
        vec![fvi("x", &[10, 8])],
        vec![out("y")],
        vec![
            ints("starts", &[-1]),
            ints("ends", &[i64::MIN]),
            ints("axes", &[1]),
            ints("steps", &[-1]),
        ],
    );
    let g = import(&model(13, g)).unwrap();
    assert_eq!(
        slice_op(&g),
        Op::Slice {
            starts: vec![0, 7],
            steps: vec![1, -1],
            lens: vec![10, 8]
        }
    );
}

#[test]
fn slice_attributes_before_opset_10() {
    let g = graph(
        vec![node("s", "Slice", &["x"], &["y"])
            .ints("starts", &[1, 100])
            .ints("ends", &[-1, 200])],
        vec![fvi("x", &[4, 5])],
        vec![out("y")],
        vec![],
    );
    let g = import(&model(9, g)).unwrap();
    assert_eq!(output_types(&g), ["f32[2,0]"]);
}

#[test]
fn clip_attributes_and_inputs() {
    let clip = |g: &qcc_ir::Graph| g.node(g.outputs[0].value.node).op.clone();
    let g7 = graph(
        vec![node("c", "Clip", &["x"], &["y"])
            .f("min", 0.0)
            .f("max", 6.0)],
        vec![fvi("x", &[3])],
        vec![out("y")],
        vec![],
    );
    let want = Op::Unary(qcc_ir::UnaryOp::Clip { min: 0.0, max: 6.0 });
    assert_eq!(clip(&import(&model(7, g7)).unwrap()), want);
    let g11 = graph(
        vec![node("c", "Clip", &["x", "lo", "hi"], &["y"])],
        vec![fvi("x", &[3])],
        vec![out("y")],
        vec![tf32("lo", &[], &[0.0]), tf32("hi", &[], &[6.0])],
    );
    assert_eq!(clip(&import(&model(11, g11)).unwrap()), want);
    let open = graph(
        vec![node("c", "Clip", &["x", "", "hi"], &["y"])],
        vec![fvi("x", &[3])],
        vec![out("y")],
        vec![tf32("hi", &[], &[6.0])],
    );
    assert_eq!(
        clip(&import(&model(13, open)).unwrap()),
        Op::Unary(qcc_ir::UnaryOp::Clip {
            min: f32::NEG_INFINITY,
            max: 6.0
        })
    );
}

#[test]
fn pad_attribute_and_input_forms() {
    let pad = |g: &qcc_ir::Graph| g.node(g.outputs[0].value.node).op.clone();
    let g2 = graph(
        vec![node("p", "Pad", &["x"], &["y"])
            .ints("pads", &[0, 1, 0, 2])
            .f("value", 1.5)],
        vec![fvi("x", &[2, 3])],
        vec![out("y")],
        vec![],
    );
    let want = Op::Pad {
        pads: vec![0, 1, 0, 2],
        value: 1.5,
    };
    assert_eq!(pad(&import(&model(7, g2)).unwrap()), want);
    let g11 = graph(
        vec![node("p", "Pad", &["x", "pads", "v"], &["y"])],
        vec![fvi("x", &[2, 3])],
        vec![out("y")],
        vec![ints("pads", &[0, 1, 0, 2]), tf32("v", &[], &[1.5])],
    );
    assert_eq!(pad(&import(&model(11, g11)).unwrap()), want);
    let g18 = graph(
        vec![node("p", "Pad", &["x", "pads", "v", "axes"], &["y"])],
        vec![fvi("x", &[2, 3])],
        vec![out("y")],
        vec![
            ints("pads", &[1, 2]),
            tf32("v", &[], &[1.5]),
            ints("axes", &[-1]),
        ],
    );
    let g = import(&model(18, g18)).unwrap();
    assert_eq!(pad(&g), want);
    assert_eq!(output_types(&g), ["f32[2,6]"]);
}

#[test]
fn negative_pads_crop() {
    let g = graph(
        vec![node("p", "Pad", &["x", "pads"], &["y"])],
        vec![fvi("x", &[4, 4])],
        vec![out("y")],
        vec![ints("pads", &[-1, 0, 0, 2])],
    );
    let g = import(&model(13, g)).unwrap();
    assert_eq!(ops(&g), ["slice", "pad"]);
    assert_eq!(output_types(&g), ["f32[3,6]"]);

    // Values: drop the first element, append two zeros.
    let g = graph(
        vec![node("p", "Pad", &["x", "pads"], &["y"])],
        vec![fvi("x", &[1, 4])],
        vec![out("y")],
        vec![ints("pads", &[0, -1, 0, 2])],
    );
    let g = import(&model(13, g)).unwrap();
    let x = qcc_ir::Tensor::from_f32(vec![1, 4], vec![1.0, 2.0, 3.0, 4.0]).unwrap();
    let y = qcc_interp::run(&g, &[x]).unwrap();
    assert_eq!(y[0].as_f32().unwrap(), [2.0, 3.0, 4.0, 0.0, 0.0]);
}

#[test]
fn resize_scales_and_sizes() {
    let g = graph(
        vec![node("rs", "Resize", &["x", "", "scales"], &["y"]).s("mode", "nearest")],
        vec![fvi("x", &[1, 2, 3, 4])],
        vec![out("y")],
        vec![tf32("scales", &[4], &[1.0, 1.0, 2.0, 1.5])],
    );
    let g = import(&model(13, g)).unwrap();
    assert_eq!(output_types(&g), ["f32[1,2,6,6]"]);
    let Op::Resize(r) = g.node(g.outputs[0].value.node).op.clone() else {
        panic!("not a resize")
    };
    assert_eq!(r.coord, qcc_ir::CoordTransform::HalfPixel);
    assert_eq!(r.scales, [1.0, 1.0, 2.0, 1.5]);

    let g = graph(
        vec![node("rs", "Resize", &["x", "", "", "sizes"], &["y"])
            .s("mode", "linear")
            .s("coordinate_transformation_mode", "align_corners")],
        vec![fvi("x", &[1, 2, 3, 4])],
        vec![out("y")],
        vec![ints("sizes", &[1, 2, 6, 2])],
    );
    let g = import(&model(13, g)).unwrap();
    let Op::Resize(r) = g.node(g.outputs[0].value.node).op.clone() else {
        panic!("not a resize")
    };
    assert_eq!(r.sizes, [1, 2, 6, 2]);
    assert_eq!(r.scales, [1.0, 1.0, 2.0, 0.5]);
    assert_eq!(r.mode, qcc_ir::ResizeMode::Linear);
    assert_eq!(r.coord, qcc_ir::CoordTransform::AlignCorners);
}

#[test]
fn reduce_mean_axes_attribute_and_input() {
    let g13 = graph(
        vec![node("m", "ReduceMean", &["x"], &["y"])
            .ints("axes", &[-1])
            .i("keepdims", 0)],
        vec![fvi("x", &[2, 3])],
        vec![out("y")],
        vec![],
    );
    assert_eq!(output_types(&import(&model(13, g13)).unwrap()), ["f32[2]"]);
    let g18 = graph(
        vec![node("m", "ReduceMean", &["x", "axes"], &["y"])],
        vec![fvi("x", &[2, 3])],
        vec![out("y")],
        vec![ints("axes", &[0])],
    );
    assert_eq!(
        output_types(&import(&model(18, g18)).unwrap()),
        ["f32[1,3]"]
    );
    let noop = graph(
        vec![node("m", "ReduceMean", &["x"], &["y"]).i("noop_with_empty_axes", 1)],
        vec![fvi("x", &[2, 3])],
        vec![out("y")],
        vec![],
    );
    let g = import(&model(18, noop)).unwrap();
    assert_eq!(ops(&g), ["reshape"]);
    let all = graph(
        vec![node("m", "ReduceSum", &["x"], &["y"])],
        vec![fvi("x", &[2, 3])],
        vec![out("y")],
        vec![],
    );
    assert_eq!(
        output_types(&import(&model(13, all)).unwrap()),
        ["f32[1,1]"]
    );
}

#[test]
fn pools_batchnorm_and_dropout() {
    let g = graph(
        vec![
            node(
                "bn",
                "BatchNormalization",
                &["x", "s", "b", "m", "v"],
                &["n"],
            ),
            node("mp", "MaxPool", &["n"], &["p"])
                .ints("kernel_shape", &[2, 2])
                .ints("strides", &[2, 2]),
            node("ap", "AveragePool", &["p"], &["a"])
                .ints("kernel_shape", &[3, 3])
                .ints("pads", &[1, 1, 1, 1])
                .i("count_include_pad", 1),
            node("do", "Dropout", &["a"], &["y", "mask"]),
        ],
        vec![fvi("x", &[1, 2, 8, 8])],
        vec![fvi("y", &[1, 2, 4, 4])],
        vec![
            tf32_seq("s", &[2]),
            tf32_seq("b", &[2]),
            tf32_seq("m", &[2]),
            tf32("v", &[2], &[1.0, 1.0]),
        ],
    );
    let g = import(&model(13, g)).unwrap();
    assert_eq!(
        ops(&g),
        ["batch_norm", "max_pool", "average_pool", "reshape"]
    );
}

#[test]
fn variadic_max_and_single_input() {
    let g = graph(
        vec![
            node("mx", "Max", &["a", "b", "c"], &["m"]),
            node("mn", "Min", &["m"], &["y"]),
        ],
        vec![fvi("a", &[2, 1]), fvi("b", &[3]), fvi("c", &[1])],
        vec![fvi("y", &[2, 3])],
        vec![],
    );
    let text = print_ok(&model(13, g));
    assert!(
        text.contains("%3 = max %0, %1 : f32[2,3]  # mx/0"),
        "{text}"
    );
    assert!(
        text.contains("%4 = max %3, %2 : f32[2,3]  # mx\n"),
        "{text}"
    );
    assert!(text.contains("%5 = reshape %4 : f32[2,3]  # mn"), "{text}");
}

#[test]
fn conv_transpose_output_shape() {
    let g = graph(
        vec![node("ct", "ConvTranspose", &["x", "W"], &["y"])
            .ints("strides", &[2, 2])
            .ints("output_shape", &[10, 8])],
        vec![fvi("x", &[1, 1, 4, 4])],
        vec![out("y")],
        vec![tf32_seq("W", &[1, 2, 3, 3])],
    );
    let g = import(&model(13, g)).unwrap();
    assert_eq!(output_types(&g), ["f32[1,2,10,8]"]);
    let Op::ConvTranspose(c) = g.node(g.outputs[0].value.node).op.clone() else {
        panic!("not a conv transpose")
    };
    // Full size 2·3+3 = 9: dim 0 needs one more (output_padding), dim 1 drops one.
    assert_eq!(c.output_padding, [1, 0]);
    assert_eq!(c.pads, [0, 1, 0, 0]);
}

#[test]
fn constants_cast_and_gather() {
    let g = graph(
        vec![
            node("k", "Constant", &[], &["k"]).t("value", ints("kv", &[2, 0])),
            node("g", "Gather", &["x", "k"], &["gx"]).i("axis", 1),
            node("c", "Cast", &["gx"], &["y"]).i("to", INT64 as i64),
            node("one", "Constant", &[], &["f"]).f("value_float", 2.5),
        ],
        vec![fvi("x", &[4, 3])],
        vec![out("y"), out("f")],
        vec![],
    );
    let g = import(&model(13, g)).unwrap();
    assert_eq!(output_types(&g), ["i64[4,2]", "f32[]"]);
    let f = g.const_value(g.outputs[1].value).unwrap();
    assert_eq!(f.data(), &TensorData::F32(vec![2.5]));
}

#[test]
fn shape_becomes_a_constant() {
    let g = graph(
        vec![node("s", "Shape", &["x"], &["y"])
            .i("start", 1)
            .i("end", -1)],
        vec![fvi("x", &[2, 3, 4, 5])],
        vec![out("y")],
        vec![],
    );
    let g = import(&model(15, g)).unwrap();
    let t = g.const_value(g.outputs[0].value).expect("a constant");
    assert_eq!(t.data(), &TensorData::I64(vec![3, 4]));
}

#[test]
fn initializer_listed_as_input_is_a_constant() {
    let g = graph(
        vec![node("a", "Add", &["x", "w"], &["y"])],
        vec![fvi("x", &[2]), fvi("w", &[2])],
        vec![out("y")],
        vec![tf32("w", &[2], &[1.0, 2.0])],
    );
    let g = import(&model(8, g)).unwrap();
    assert_eq!(g.inputs().len(), 1);
}

#[test]
fn nodes_out_of_order_are_sorted() {
    let g = graph(
        vec![
            node("second", "Relu", &["t"], &["y"]),
            node("first", "Neg", &["x"], &["t"]),
        ],
        vec![fvi("x", &[2])],
        vec![out("y")],
        vec![],
    );
    let g = import(&model(13, g)).unwrap();
    assert_eq!(ops(&g), ["neg", "relu"]);
}

#[test]
fn input_shapes_fix_symbolic_dims() {
    let g = graph(
        vec![node("r", "Relu", &["x"], &["y"])],
        vec![vi("x", FLOAT, &["batch", "3"])],
        vec![vi("y", FLOAT, &["batch", "3"])],
        vec![],
    );
    let (_dir, p) = temp_model(&model(13, g));
    let mut opts = qcc_onnx::ImportOptions::default();
    opts.input_shapes.insert("x".into(), vec![5, 3]);
    let g = qcc_onnx::load_model(&p, &opts).unwrap();
    assert_eq!(output_types(&g), ["f32[5,3]"]);
}

/// A shape subgraph (Shape → Gather → Unsqueeze → Concat → Reshape): needs
/// `qcc_interp::eval_op` to fold the computed shape.
#[test]
fn computed_reshape_shape() {
    let g = graph(
        vec![
            node("shape", "Shape", &["x"], &["s"]),
            node("gather", "Gather", &["s", "zero"], &["n"]),
            node("unsq", "Unsqueeze", &["n", "axes0"], &["n1"]),
            node("cat", "Concat", &["n1", "minus1"], &["target"]).i("axis", 0),
            node("r", "Reshape", &["x", "target"], &["y"]),
        ],
        vec![fvi("x", &[2, 3, 4])],
        vec![fvi("y", &[2, 12])],
        vec![
            ti64("zero", &[], &[0]),
            ints("axes0", &[0]),
            ints("minus1", &[-1]),
        ],
    );
    let g = import(&model(13, g)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(output_types(&g), ["f32[2,12]"]);
    // The shape computation stays in the graph for constant folding to remove.
    assert_eq!(ops(&g), ["gather", "reshape", "concat", "reshape"]);
}

/// Clip with bounds computed at run time (`min = ReduceMax(x) - 2.5`, as a
/// log-mel front end clamps) becomes Max / Min with that tensor; a constant
/// bound beside it stays a Clip, in `min(max(x, lo), hi)` order.
#[test]
fn clip_with_computed_bounds() {
    let nodes = |max: &str| {
        vec![
            node("rm", "ReduceMax", &["x"], &["m"]).i("keepdims", 0),
            node("sub", "Sub", &["m", "d"], &["lo"]),
            node("clip", "Clip", &["x", "lo", max], &["y"]),
        ]
    };
    let x = qcc_ir::Tensor::from_f32(vec![2, 3], vec![-4.0, 1.0, 0.5, 2.0, -1.0, 0.75]).unwrap();
    let inits = || vec![tf32("d", &[], &[2.5]), tf32("hi", &[], &[1.5])];
    // Computed min only: max(x, 2 - 2.5).
    let g = graph(nodes(""), vec![fvi("x", &[2, 3])], vec![out("y")], inits());
    let g = import(&model(13, g)).unwrap();
    assert!(ops(&g).contains(&"max"), "{:?}", ops(&g));
    let y = qcc_interp::run(&g, std::slice::from_ref(&x)).unwrap();
    assert_eq!(y[0].as_f32().unwrap(), [-0.5, 1.0, 0.5, 2.0, -0.5, 0.75]);
    // Computed min, constant max.
    let g = graph(
        nodes("hi"),
        vec![fvi("x", &[2, 3])],
        vec![out("y")],
        inits(),
    );
    let g = import(&model(13, g)).unwrap();
    let y = qcc_interp::run(&g, &[x]).unwrap();
    assert_eq!(y[0].as_f32().unwrap(), [-0.5, 1.0, 0.5, 1.5, -0.5, 0.75]);
}
