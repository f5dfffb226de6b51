//! Bad models: every error names the file and, where relevant, the node,
//! tensor or input. Also `check_model` and `read_tensor_pb`.

mod common;

use common::*;
use prost::Message;
use qcc_onnx::proto::tensor_proto::DataLocation;
use qcc_onnx::proto::{ModelProto, StringStringEntryProto, TensorProto, ValueInfoProto};
use qcc_onnx::{check_model, load_model, read_tensor_pb, ImportOptions};
use std::path::Path;

fn relu_model() -> ModelProto {
    model(
        13,
        graph(
            vec![node("r", "Relu", &["x"], &["y"])],
            vec![fvi("x", &[2, 3])],
            vec![out("y")],
            vec![],
        ),
    )
}

fn load_bytes(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.onnx");
    std::fs::write(&p, bytes).unwrap();
    let e = load_model(&p, &ImportOptions::default()).expect_err("must fail");
    let msg = e.to_string();
    assert!(msg.starts_with(&p.display().to_string()), "{msg}");
    msg
}

#[test]
fn missing_file() {
    let e = load_model(Path::new("/nonexistent/m.onnx"), &ImportOptions::default())
        .expect_err("must fail");
    assert!(
        e.to_string()
            .starts_with("/nonexistent/m.onnx: cannot read"),
        "{e}"
    );
}

#[test]
fn empty_file_has_no_graph() {
    let msg = load_bytes(&[]);
    assert!(msg.ends_with("the model has no graph"), "{msg}");
}

#[test]
fn truncated_protobuf() {
    let bytes = relu_model().encode_to_vec();
    let msg = load_bytes(&bytes[..bytes.len() / 2]);
    assert!(msg.contains("not a valid ONNX protobuf file"), "{msg}");
}

#[test]
fn random_bytes() {
    // A simple LCG: deterministic "random" bytes.
    let mut x: u32 = 12345;
    let bytes: Vec<u8> = (0..256)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (x >> 16) as u8
        })
        .collect();
    load_bytes(&bytes);
    let msg = load_bytes(&[0xff; 16]);
    assert!(msg.contains("not a valid ONNX protobuf file"), "{msg}");
}

#[test]
fn unknown_op() {
    let m = model(
        13,
        graph(
            vec![node("n3", "StringNormalizer", &["x"], &["y"])],
            vec![fvi("x", &[2, 3])],
            vec![out("y")],
            vec![],
        ),
    );
    let msg = import_err(&m);
    assert!(
        msg.ends_with("model.onnx: node 'n3' (StringNormalizer): unsupported op"),
        "{msg}"
    );
}

/// Models in the quantized formats qcc does not read yet say which format
/// they are in and what qcc reads instead, at import and in `check`.
#[test]
fn quantized_formats_are_named() {
    let cases = [(
        "DynamicQuantizeMatMul",
        "com.microsoft",
        "dynamically quantized model (quantize_dynamic)",
    )];
    for (op, domain, kind) in cases {
        let m = model(
            13,
            graph(
                vec![node("q", op, &["x"], &["y"]).domain(domain)],
                vec![fvi("x", &[2, 3])],
                vec![out("y")],
                vec![],
            ),
        );
        let msg = import_err(&m);
        assert!(
            msg.contains(&format!("node 'q' ({op}): unsupported op")),
            "{msg}"
        );
        assert!(
            msg.contains(kind) && msg.contains("quantize_static"),
            "{msg}"
        );
    }
}

/// ONNX Runtime's contrib ops are read in their own domain only, and
/// checked there like ONNX's (input count, attribute names).
#[test]
fn contrib_ops_are_checked_in_their_domain() {
    let cases = [
        (
            "QLinearAdd",
            "",
            7,
            "",
            "QLinearAdd is an ONNX Runtime contrib op, read in domain 'com.microsoft'",
        ),
        (
            "QLinearAdd",
            "com.microsoft",
            3,
            "",
            "3 inputs, expected 7 to 8",
        ),
        (
            "QLinearSigmoid",
            "com.microsoft",
            5,
            "alpha",
            "unknown attribute 'alpha'",
        ),
    ];
    for (op, domain, inputs, attr, want) in cases {
        let names: Vec<String> = (0..inputs).map(|i| format!("i{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut n = node("q", op, &refs, &["y"]).domain(domain);
        if !attr.is_empty() {
            n = n.f(attr, 0.1);
        }
        let m = model(
            13,
            graph(
                vec![n],
                names.iter().map(|i| fvi(i, &[2, 3])).collect(),
                vec![out("y")],
                vec![],
            ),
        );
        let msg = import_err(&m);
        assert!(
            msg.contains(&format!("node 'q' ({op})")) && msg.contains(want),
            "{msg}"
        );
    }
}

/// MatMulNBits' attributes come from the model: absurd ones are errors
/// naming the node, not overflows.
#[test]
fn matmul_nbits_with_absurd_block_size() {
    let n = node("q", "MatMulNBits", &["x", "b", "s"], &["y"])
        .domain("com.microsoft")
        .i("K", 4)
        .i("N", 2)
        .i("bits", 4)
        .i("block_size", i64::MAX);
    let m = model(
        13,
        graph(
            vec![n],
            vec![fvi("x", &[1, 4]), fvi("b", &[2, 1, 1]), fvi("s", &[2])],
            vec![out("y")],
            vec![],
        ),
    );
    let msg = import_err(&m);
    assert!(
        msg.contains("node 'q' (MatMulNBits)") && msg.contains("too large"),
        "{msg}"
    );
}

#[test]
fn custom_domain_op() {
    let m = model(
        13,
        graph(
            vec![node("g", "Gelu", &["x"], &["y"]).domain("com.microsoft")],
            vec![fvi("x", &[2, 3])],
            vec![out("y")],
            vec![],
        ),
    );
    let msg = import_err(&m);
    assert!(
        msg.ends_with("node 'g' (Gelu): unsupported op (domain 'com.microsoft')"),
        "{msg}"
    );
}

#[test]
fn missing_initializer() {
    let m = model(
        13,
        graph(
            vec![node("conv1", "Conv", &["x", "W"], &["y"])],
            vec![fvi("x", &[1, 1, 4, 4])],
            vec![out("y")],
            vec![],
        ),
    );
    let msg = import_err(&m);
    assert!(
        msg.ends_with(
            "model.onnx: node 'conv1' (Conv): input 'W' is not produced by any node, initializer or graph input"
        ),
        "{msg}"
    );
}

#[test]
fn symbolic_dim_without_input_shape() {
    let m = model(
        13,
        graph(
            vec![node("r", "Relu", &["x"], &["y"])],
            vec![vi("x", FLOAT, &["batch", "3", "side", "side"])],
            vec![out("y")],
            vec![],
        ),
    );
    let msg = import_err(&m);
    assert!(
        msg.ends_with(
            "model.onnx: input 'x' has symbolic dim 'batch' at axis 0; pass --input-shape x=1,3,1,1"
        ),
        "{msg}"
    );
    // A symbolic batch dim alone is 1, with a note.
    let m = model(
        13,
        graph(
            vec![node("r", "Relu", &["x"], &["y"])],
            vec![vi("x", FLOAT, &["batch", "3", "224", "224"])],
            vec![out("y")],
            vec![],
        ),
    );
    let (_dir, p) = temp_model(&m);
    let (g, notes) = qcc_onnx::load_model_noted(&p, &ImportOptions::default()).unwrap();
    assert_eq!(output_types(&g), ["f32[1,3,224,224]"]);
    assert_eq!(
        notes,
        ["input 'x' dim 'batch' set to 1; --input-shape to choose"]
    );
}

#[test]
fn input_shape_problems() {
    let m = model(
        13,
        graph(
            vec![node("r", "Relu", &["x"], &["y"])],
            vec![vi("x", FLOAT, &["batch", "3"])],
            vec![out("y")],
            vec![],
        ),
    );
    let (_dir, p) = temp_model(&m);
    let with = |name: &str, shape: Vec<usize>| {
        let mut opts = ImportOptions::default();
        opts.input_shapes.insert("x".into(), vec![1, 3]);
        opts.input_shapes.insert(name.into(), shape);
        load_model(&p, &opts).expect_err("must fail").to_string()
    };
    let msg = with("x", vec![1, 3, 5]);
    assert!(
        msg.contains("input 'x' has rank 2 but the given shape [1, 3, 5] has 3 dims"),
        "{msg}"
    );
    let msg = with("x", vec![1, 4]);
    assert!(msg.contains("input 'x' has dim 3 at axis 1"), "{msg}");
    let msg = with("z", vec![1, 3]);
    assert!(
        msg.contains("'z', which is not a graph input (inputs: x)"),
        "{msg}"
    );
}

#[test]
fn graph_with_cycle() {
    let m = model(
        13,
        graph(
            vec![
                node("start", "Relu", &["x"], &["s"]),
                node("a", "Add", &["s", "c"], &["b"]),
                node("c", "Relu", &["b"], &["c"]),
                node("tail", "Relu", &["c"], &["y"]),
            ],
            vec![fvi("x", &[2])],
            vec![out("y")],
            vec![],
        ),
    );
    let msg = import_err(&m);
    assert!(
        msg.ends_with("the graph has a cycle through node 'a' (Add)")
            || msg.ends_with("the graph has a cycle through node 'c' (Relu)"),
        "{msg}"
    );
}

#[test]
fn float64_tensor() {
    let w = TensorProto {
        name: Some("w64".into()),
        dims: vec![2],
        data_type: Some(DOUBLE),
        double_data: vec![1.0, 2.0],
        ..Default::default()
    };
    let m = model(
        13,
        graph(
            vec![node("a", "Add", &["x", "w64"], &["y"])],
            vec![fvi("x", &[2])],
            vec![out("y")],
            vec![w],
        ),
    );
    let msg = import_err(&m);
    assert!(
        msg.ends_with("model.onnx: tensor 'w64': data type DOUBLE is not supported (qcc supports FLOAT, INT64, INT32, INT8, UINT8, BOOL)"),
        "{msg}"
    );
}

#[test]
fn opset_problems() {
    let mut m = relu_model();
    m.opset_import.clear();
    assert!(import_err(&m).ends_with("the model imports no opset for the default ONNX domain"));
    m.opset_import = model(0, Default::default()).opset_import;
    let msg = import_err(&m);
    assert!(msg.contains("opset 0 is not supported"), "{msg}");
    m.opset_import = model(26, Default::default()).opset_import;
    let msg = import_err(&m);
    assert!(msg.contains("opset 26 is not supported"), "{msg}");
    let m = model(
        13,
        graph(
            vec![node("h", "HardSwish", &["x"], &["y"])],
            vec![fvi("x", &[2])],
            vec![out("y")],
            vec![],
        ),
    );
    let msg = import_err(&m);
    assert!(
        msg.contains("node 'h' (HardSwish): HardSwish does not exist before opset 14"),
        "{msg}"
    );
}

#[test]
fn unsupported_attributes_and_outputs() {
    let one = |n: N, opset: i64| {
        let outs = n.0.output.iter().map(|o| out(o)).collect();
        let m = model(
            opset,
            graph(vec![n], vec![fvi("x", &[1, 1, 4, 4])], outs, vec![]),
        );
        import_err(&m)
    };
    let msg = one(
        node("p", "Pad", &["x"], &["y"])
            .s("mode", "symmetric")
            .ints("pads", &[0; 8]),
        7,
    );
    assert!(
        msg.contains("node 'p' (Pad): unsupported attribute mode='symmetric'"),
        "{msg}"
    );
    let msg = one(
        node("mp", "MaxPool", &["x"], &["y", "y2"]).ints("kernel_shape", &[2, 2]),
        13,
    );
    assert!(
        msg.contains("node 'mp' (MaxPool): the Indices output is not supported"),
        "{msg}"
    );
    let msg = one(node("d", "Dropout", &["x"], &["y", "y2"]), 13);
    assert!(
        msg.contains("node 'd' (Dropout): the mask output is not supported"),
        "{msg}"
    );
    let msg = one(
        node("rs", "Resize", &["x"], &["y"])
            .s("mode", "cubic")
            .i("antialias", 1),
        18,
    );
    assert!(
        msg.contains("node 'rs' (Resize): unsupported attribute antialias=1"),
        "{msg}"
    );
    let msg = one(
        node("rs", "Resize", &["x"], &["y"])
            .s("coordinate_transformation_mode", "tf_crop_and_resize"),
        13,
    );
    assert!(
        msg.contains("unsupported attribute coordinate_transformation_mode='tf_crop_and_resize'"),
        "{msg}"
    );
    let msg = one(node("rs", "Resize", &["x"], &["y"]).i("antialias", 1), 18);
    assert!(msg.contains("unsupported attribute antialias=1"), "{msg}");
    let msg = one(
        node("c", "Conv", &["x", "x"], &["y"])
            .i("group", 1)
            .s("auto_pad", "FOO"),
        13,
    );
    assert!(
        msg.contains("node 'c' (Conv): unsupported attribute auto_pad='FOO'"),
        "{msg}"
    );
}

#[test]
fn attribute_errors_name_node_and_attribute() {
    let m = model(
        13,
        graph(
            vec![node("cat", "Concat", &["x", "x"], &["y"]).i("axis", 5)],
            vec![fvi("x", &[2, 3])],
            vec![out("y")],
            vec![],
        ),
    );
    let msg = import_err(&m);
    assert!(
        msg.ends_with("node 'cat' (Concat): attribute 'axis' 5 is out of range for rank 2"),
        "{msg}"
    );
    let m = model(
        13,
        graph(
            vec![node("t", "Transpose", &["x"], &["y"]).f("perm", 1.0)],
            vec![fvi("x", &[2, 3])],
            vec![out("y")],
            vec![],
        ),
    );
    let msg = import_err(&m);
    assert!(
        msg.ends_with("node 't' (Transpose): attribute 'perm' must be INTS, got FLOAT"),
        "{msg}"
    );
}

#[test]
fn parameter_must_be_constant() {
    let m = model(
        13,
        graph(
            vec![node("r", "Reshape", &["x", "s"], &["y"])],
            vec![fvi("x", &[2, 3]), vi("s", INT64, &["2"])],
            vec![out("y")],
            vec![],
        ),
    );
    let msg = import_err(&m);
    assert!(
        msg.ends_with("node 'r' (Reshape): input 'shape' must be a compile-time constant"),
        "{msg}"
    );
}

#[test]
fn shape_errors_name_the_node() {
    let m = model(
        13,
        graph(
            vec![node("mm", "MatMul", &["x", "w"], &["y"])],
            vec![fvi("x", &[2, 3])],
            vec![out("y")],
            vec![tf32_seq("w", &[4, 5])],
        ),
    );
    let msg = import_err(&m);
    assert!(
        msg.contains("node 'mm' (MatMul): inner dims differ"),
        "{msg}"
    );
}

#[test]
fn declared_output_mismatch() {
    let m = model(
        13,
        graph(
            vec![node("r", "Relu", &["x"], &["y"])],
            vec![fvi("x", &[2, 3])],
            vec![fvi("y", &[3, 2])],
            vec![],
        ),
    );
    // A declared shape is a hint: noted, and the computed shape is used.
    let (_dir, p) = temp_model(&m);
    let (g, notes) = qcc_onnx::load_model_noted(&p, &ImportOptions::default()).unwrap();
    assert_eq!(output_types(&g), ["f32[2,3]"]);
    assert_eq!(
        notes,
        ["graph output 'y' is declared with shape [3,2] but computes f32[2,3]; the computed shape is used"]
    );
    // An element type conflict stays an error.
    let m = model(
        13,
        graph(
            vec![node("r", "Relu", &["x"], &["y"])],
            vec![fvi("x", &[2, 3])],
            vec![vi("y", INT64, &["2", "3"])],
            vec![],
        ),
    );
    assert!(import_err(&m).ends_with("graph output 'y' is declared i64 but computes f32[2,3]"));
}

// ---- external data ----

fn external(name: &str, location: &str, offset: Option<u64>, len: Option<u64>) -> TensorProto {
    let mut ext = vec![StringStringEntryProto {
        key: Some("location".into()),
        value: Some(location.into()),
    }];
    if let Some(o) = offset {
        ext.push(StringStringEntryProto {
            key: Some("offset".into()),
            value: Some(o.to_string()),
        });
    }
    if let Some(l) = len {
        ext.push(StringStringEntryProto {
            key: Some("length".into()),
            value: Some(l.to_string()),
        });
    }
    TensorProto {
        name: Some(name.into()),
        dims: vec![4],
        data_type: Some(FLOAT),
        external_data: ext,
        data_location: Some(DataLocation::External as i32),
        ..Default::default()
    }
}

fn ext_model(t: TensorProto) -> ModelProto {
    model(
        13,
        graph(
            vec![node("a", "Add", &["x", "w"], &["y"])],
            vec![fvi("x", &[4])],
            vec![out("y")],
            vec![t],
        ),
    )
}

fn floats_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn external_data_ok() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    let mut bytes = vec![0u8; 8];
    bytes.extend(floats_bytes(&[1.0, 2.0, 3.0, 4.0]));
    std::fs::write(dir.path().join("data/w.bin"), &bytes).unwrap();
    let p = write(
        dir.path(),
        "m.onnx",
        &ext_model(external("w", "data/w.bin", Some(8), Some(16))),
    );
    let g = load_model(&p, &ImportOptions::default()).unwrap();
    assert_eq!(g.weights()[0].as_f32().unwrap(), [1.0, 2.0, 3.0, 4.0]);
    // Without a length: the rest of the file.
    let p = write(
        dir.path(),
        "m2.onnx",
        &ext_model(external("w", "data/w.bin", Some(8), None)),
    );
    assert!(load_model(&p, &ImportOptions::default()).is_ok());
}

fn ext_err(dir: &Path, t: TensorProto) -> String {
    let p = write(dir, "m.onnx", &ext_model(t));
    let msg = load_model(&p, &ImportOptions::default())
        .expect_err("must fail")
        .to_string();
    assert!(msg.starts_with(&p.display().to_string()), "{msg}");
    msg
}

#[test]
fn external_data_parent_dir_refused() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("model");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(root.path().join("secret.bin"), floats_bytes(&[0.0; 4])).unwrap();
    let msg = ext_err(&dir, external("w", "../secret.bin", None, None));
    assert!(
        msg.contains("tensor 'w': external data path '../secret.bin' contains '..'"),
        "{msg}"
    );
}

#[test]
fn external_data_absolute_path_refused() {
    let dir = tempfile::tempdir().unwrap();
    let abs = dir.path().join("w.bin");
    std::fs::write(&abs, floats_bytes(&[0.0; 4])).unwrap();
    let abs = abs.display().to_string();
    let msg = ext_err(dir.path(), external("w", &abs, None, None));
    assert!(
        msg.contains(&format!(
            "tensor 'w': external data path '{abs}' is absolute"
        )),
        "{msg}"
    );
}

#[cfg(unix)]
#[test]
fn external_data_symlink_escape_refused() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("model");
    std::fs::create_dir(&dir).unwrap();
    let secret = root.path().join("secret.bin");
    std::fs::write(&secret, floats_bytes(&[0.0; 4])).unwrap();
    std::os::unix::fs::symlink(&secret, dir.join("w.bin")).unwrap();
    let msg = ext_err(&dir, external("w", "w.bin", None, None));
    assert!(
        msg.contains("tensor 'w': external data path 'w.bin' resolves outside the model folder"),
        "{msg}"
    );
}

#[test]
fn external_data_out_of_bounds() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("w.bin"), floats_bytes(&[0.0; 4])).unwrap();
    let msg = ext_err(dir.path(), external("w", "w.bin", Some(8), Some(16)));
    assert!(
        msg.contains("offset 8 + length 16 exceeds the file size 16"),
        "{msg}"
    );
    let msg = ext_err(dir.path(), external("w", "w.bin", None, Some(12)));
    assert!(
        msg.contains("has length 12 but the tensor needs 16 bytes"),
        "{msg}"
    );
    let msg = ext_err(dir.path(), external("w", "nope.bin", None, None));
    assert!(
        msg.contains("cannot open external data file 'nope.bin'"),
        "{msg}"
    );
}

// ---- check_model ----

#[test]
fn check_lists_every_problem() {
    let m = model(
        13,
        graph(
            vec![
                node("n1", "Relu", &["x"], &["a"]),
                node("n3", "StringNormalizer", &["a"], &["b"]),
                node("p", "Pad", &["b", "pads"], &["c"]).s("mode", "symmetric"),
                node("q", "Erf", &["c"], &["d"]),
                node("n5", "NonMaxSuppression", &["d"], &["y"]),
            ],
            vec![fvi("x", &[1, 4])],
            vec![out("y")],
            vec![ints("pads", &[0, 1, 0, 1])],
        ),
    );
    let (_dir, p) = temp_model(&m);
    let problems = check_model(&p, &ImportOptions::default()).unwrap();
    assert_eq!(
        problems,
        [
            "node 'n3' (StringNormalizer): unsupported op",
            "node 'p' (Pad): unsupported attribute mode='symmetric'",
            "node 'n5' (NonMaxSuppression): unsupported op",
        ]
    );
}

/// `check` looks inside the branches of an If it cannot fold (and their
/// own subgraphs), naming where each problem sits; supported ops inside
/// them are not reported.
#[test]
fn check_looks_inside_subgraphs() {
    let branch = |nodes: Vec<N>| graph(nodes, vec![], vec![out("b")], vec![]);
    let inner = node("inner", "If", &["c"], &["b"])
        .g(
            "then_branch",
            branch(vec![node("foo", "Foo", &["x"], &["b"])]),
        )
        .g(
            "else_branch",
            branch(vec![node("neg", "Neg", &["x"], &["b"])]),
        );
    let then = branch(vec![
        node("sn", "StringNormalizer", &["x"], &["b"]),
        node("not", "Not", &["c"], &["nc"]),
        node("pad", "Pad", &["x"], &["p"])
            .s("mode", "symmetric")
            .ints("pads", &[0, 0, 0, 0]),
    ]);
    let m = model(
        9,
        graph(
            vec![node("if1", "If", &["c"], &["y"])
                .g("then_branch", then)
                .g("else_branch", branch(vec![inner]))],
            vec![vi("c", BOOL, &[]), fvi("x", &[2, 3])],
            vec![out("y")],
            vec![],
        ),
    );
    let (_d, p) = temp_model(&m);
    let problems = check_model(&p, &ImportOptions::default()).expect("decodes");
    let want = [
        "node 'sn' (StringNormalizer): unsupported op (in the then_branch of node 'if1' (If))",
        "node 'pad' (Pad): unsupported attribute mode='symmetric' (in the then_branch of node 'if1' (If))",
        "node 'foo' (Foo): unsupported op (in the then_branch of node 'inner' (If)) \
         (in the else_branch of node 'if1' (If))",
    ];
    for w in want {
        assert!(problems.iter().any(|p| p.contains(w)), "{w}\n{problems:#?}");
    }
    assert_eq!(problems.len(), want.len(), "{problems:#?}");
}

#[test]
fn check_reports_graph_problems_too() {
    let m = model(
        13,
        graph(
            vec![
                node("r", "Relu", &["x"], &["a"]),
                node("n3", "StringNormalizer", &["a"], &["b"]),
                node("add", "Add", &["b", "missing"], &["y"]),
            ],
            vec![vi("x", FLOAT, &["2", "width"])],
            vec![out("y")],
            vec![],
        ),
    );
    let (_dir, p) = temp_model(&m);
    let problems = check_model(&p, &ImportOptions::default()).unwrap();
    assert_eq!(problems.len(), 3, "{problems:#?}");
    assert!(problems[0].starts_with("input 'x' has symbolic dim 'width'"));
    assert!(problems[1].contains("node 'add' (Add): input 'missing' is not produced"));
    assert_eq!(problems[2], "node 'n3' (StringNormalizer): unsupported op");
}

#[test]
fn check_ok_model_is_empty() {
    let (_dir, p) = temp_model(&relu_model());
    assert_eq!(
        check_model(&p, &ImportOptions::default()).unwrap(),
        Vec::<String>::new()
    );
}

#[test]
fn check_decode_error_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.onnx");
    std::fs::write(&p, [0xffu8; 8]).unwrap();
    assert!(check_model(&p, &ImportOptions::default()).is_err());
}

// ---- read_tensor_pb ----

#[test]
fn read_tensor_pb_roundtrip() {
    let dir = tempfile::tempdir().unwrap();
    let t = qcc_ir::Tensor::from_f32(vec![2, 2], vec![1.0, -2.0, 3.5, 0.0]).unwrap();
    let p = dir.path().join("input_0.pb");
    std::fs::write(&p, qcc_onnx::tensor_to_proto("x", &t).encode_to_vec()).unwrap();
    let (name, back) = read_tensor_pb(&p).unwrap();
    assert_eq!(name, "x");
    assert_eq!(back, t);

    let typed = ti64("idx", &[3], &[1, -2, 3]);
    let p = dir.path().join("input_1.pb");
    std::fs::write(&p, typed.encode_to_vec()).unwrap();
    let (name, back) = read_tensor_pb(&p).unwrap();
    assert_eq!(name, "idx");
    assert_eq!(back.as_i64().unwrap(), [1, -2, 3]);

    let p = dir.path().join("bad.pb");
    std::fs::write(&p, [0xffu8; 4]).unwrap();
    let msg = read_tensor_pb(&p).expect_err("must fail").to_string();
    assert!(msg.starts_with(&p.display().to_string()), "{msg}");
}

#[test]
fn tensor_data_length_mismatch() {
    let mut t = tf32("w", &[3], &[1.0, 2.0]);
    let m = ext_model(t.clone());
    assert!(import_err(&m).contains("tensor 'w': raw data has 8 bytes but f32[3] needs 12"));
    t.raw_data = None;
    t.float_data = vec![1.0];
    assert!(import_err(&ext_model(t)).contains("float_data has 1 elements but shape [3] needs 3"));
}

/// Forms ONNX Runtime and the checker reject, which qcc used to import with
/// a guessed meaning: an attribute given twice (the first copy won), an
/// attribute without a name, the default domain imported twice, and a
/// missing or out-of-range `ir_version`.
#[test]
fn invalid_models_are_rejected_not_guessed() {
    let gemm = |b1: i64, b2: i64| {
        model(
            13,
            graph(
                vec![node("fc", "Gemm", &["x", "w"], &["y"])
                    .i("transB", b1)
                    .i("transB", b2)],
                vec![fvi("x", &[2, 3]), fvi("w", &[3, 3])],
                vec![out("y")],
                vec![],
            ),
        )
    };
    let msg = import_err(&gemm(0, 1));
    assert!(
        msg.contains("'fc'") && msg.contains("attribute 'transB' is given twice"),
        "{msg}"
    );

    let m = model(
        13,
        graph(
            vec![node("r", "Relu", &["x"], &["y"]).i("", 1)],
            vec![fvi("x", &[2, 3])],
            vec![out("y")],
            vec![],
        ),
    );
    let msg = import_err(&m);
    assert!(
        msg.contains("'r'") && msg.contains("an attribute has no name"),
        "{msg}"
    );

    let mut m = relu_model();
    let again = model(11, Default::default()).opset_import;
    m.opset_import.extend(again);
    let msg = import_err(&m);
    assert!(msg.contains("imported twice (opsets 13 and 11)"), "{msg}");

    let mut m = relu_model();
    m.ir_version = None;
    assert!(import_err(&m).contains("the model has no ir_version"));
    m.ir_version = Some(14);
    let msg = import_err(&m);
    assert!(msg.contains("ir_version 14 is out of range"), "{msg}");
    m.ir_version = Some(-3);
    assert!(import_err(&m).contains("ir_version -3 is out of range"));
}

/// Attributes the op does not define (at all, or at the model's opset) and
/// more or fewer inputs or outputs than it takes: refused, naming the node,
/// never imported with the attribute or the input ignored.
#[test]
fn undefined_attributes_and_wrong_arity_are_rejected() {
    let one = |n: N, opset: i64| {
        let outs = n.0.output.iter().map(|o| out(o)).collect();
        let m = model(opset, graph(vec![n], vec![fvi("x", &[2, 3])], outs, vec![]));
        import_err(&m)
    };
    let cases: Vec<(N, i64, &str)> = vec![
        (
            node("r", "Relu", &["x"], &["y"]).f("alpha", 0.1),
            13,
            "node 'r' (Relu): attribute 'alpha' is not defined for Relu",
        ),
        (
            node("c", "Clip", &["x"], &["y"]).f("min", 0.0),
            13,
            "node 'c' (Clip): attribute 'min' of Clip is defined only up to opset 10; \
             the model imports opset 13",
        ),
        (
            node("s", "Squeeze", &["x"], &["y"]).ints("axes", &[0]),
            13,
            "attribute 'axes' of Squeeze is defined only up to opset 12",
        ),
        (
            node("g", "Gelu", &["x"], &["y"]).s("approximate", "tanh"),
            21,
            "",
        ),
        (
            node("r", "Relu", &["x", "x"], &["y"]),
            13,
            "node 'r' (Relu): has 2 inputs; Relu takes at most 1 at opset 13",
        ),
        (
            node("r", "Relu", &["x", ""], &["y"]),
            13,
            "has 2 inputs; Relu takes at most 1",
        ),
        (
            node("fc", "Gemm", &["x", "x"], &["y"]),
            9,
            "node 'fc' (Gemm): has 2 inputs; Gemm needs at least 3 at opset 9",
        ),
        (
            node("a", "Add", &["x", "x"], &["y", "y2", "y3"]),
            13,
            "node 'a' (Add): has 3 outputs; Add takes at most 1 at opset 13",
        ),
    ];
    for (n, opset, want) in cases {
        let m = {
            let outs = n.0.output.iter().map(|o| out(o)).collect();
            model(
                opset,
                graph(vec![N(n.0.clone())], vec![fvi("x", &[2, 3])], outs, vec![]),
            )
        };
        if want.is_empty() {
            // Defined at this opset: no attribute or arity error.
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("ok.onnx");
            std::fs::write(&p, m.encode_to_vec()).unwrap();
            load_model(&p, &ImportOptions::default()).expect("a defined attribute imports");
            continue;
        }
        let msg = one(n, opset);
        assert!(msg.contains(want), "{msg}");
        // `qcc check` reports the same problem.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.onnx");
        std::fs::write(&p, m.encode_to_vec()).unwrap();
        let problems = check_model(&p, &ImportOptions::default()).expect("decodes");
        assert!(problems.iter().any(|q| q.contains(want)), "{problems:?}");
    }
}

/// More forms the checker rejects: explicit pads beside auto_pad or
/// output_shape, MaxPool's storage_order past 1, an empty input of a
/// variadic op (`Max('', x)`).
#[test]
fn contradictory_attributes_and_empty_inputs_are_rejected() {
    let one = |n: N, x: &[usize]| {
        model(
            13,
            graph(
                vec![n],
                vec![fvi("x", x), fvi("w", &[1, 1, 3, 3])],
                vec![out("y")],
                vec![],
            ),
        )
    };
    let conv = node("c", "Conv", &["x", "w"], &["y"])
        .s("auto_pad", "SAME_UPPER")
        .ints("pads", &[1, 1, 1, 1]);
    let msg = import_err(&one(conv, &[1, 1, 5, 5]));
    assert!(
        msg.contains("'c'") && msg.contains("'pads' given together with 'auto_pad'"),
        "{msg}"
    );
    let deconv = node("d", "ConvTranspose", &["x", "w"], &["y"])
        .ints("output_shape", &[7, 7])
        .ints("pads", &[1, 1, 1, 1]);
    let msg = import_err(&one(deconv, &[1, 1, 5, 5]));
    assert!(
        msg.contains("'pads' given together with 'output_shape'"),
        "{msg}"
    );
    let pool = node("p", "MaxPool", &["x"], &["y"])
        .ints("kernel_shape", &[2, 2])
        .i("storage_order", 3);
    let msg = import_err(&one(pool, &[1, 1, 4, 4]));
    assert!(msg.contains("storage_order=3 must be 0 or 1"), "{msg}");
    let max = node("m", "Max", &["", "x"], &["y"]);
    let msg = import_err(&one(max, &[2, 2]));
    assert!(
        msg.contains("'m'") && msg.contains("input 0 is empty"),
        "{msg}"
    );
}

/// An attribute whose type tag disagrees with the field it holds.
#[test]
fn attribute_tags_must_match_their_values() {
    let with = |f: &dyn Fn(&mut qcc_onnx::proto::AttributeProto)| {
        let mut n = node("fc", "Gemm", &["x", "w"], &["y"]).i("transB", 1);
        f(&mut n.0.attribute[0]);
        model(
            13,
            graph(
                vec![n],
                vec![fvi("x", &[2, 3]), fvi("w", &[3, 3])],
                vec![out("y")],
                vec![],
            ),
        )
    };
    let msg = import_err(&with(&|a| a.f = Some(1.0)));
    assert!(
        msg.contains("'transB' is tagged INT but holds FLOAT and INT"),
        "{msg}"
    );
    let msg = import_err(&with(&|a| a.i = None));
    assert!(
        msg.contains("'transB' is tagged INT but holds no value"),
        "{msg}"
    );
    let msg = import_err(&with(&|a| {
        a.i = None;
        a.ints = vec![1];
    }));
    assert!(msg.contains("tagged INT but holds INTS"), "{msg}");
}

/// A graph input named like an initializer must declare the initializer's
/// type (symbolic dims agree with anything).
#[test]
fn inputs_shadowing_initializers_must_agree() {
    let m = |w_decl: ValueInfoProto| {
        model(
            13,
            graph(
                vec![node("mm", "MatMul", &["x", "w"], &["y"])],
                vec![fvi("x", &[2, 3]), w_decl],
                vec![out("y")],
                vec![tf32_seq("w", &[3, 4])],
            ),
        )
    };
    let msg = import_err(&m(fvi("w", &[3, 3])));
    assert!(
        msg.contains("'w'") && msg.contains("does not match its initializer f32[3,4]"),
        "{msg}"
    );
    import(&m(vi("w", FLOAT, &["3", "n"]))).expect("a symbolic dim agrees");
    import(&m(fvi("w", &[3, 4]))).expect("the same type agrees");
}

/// An external-data key given twice (which `location` would qcc read?), and
/// Split-18 without, or with both, the `split` input and `num_outputs`.
#[test]
fn duplicate_external_keys_and_split_18_forms() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("w.bin"), floats_bytes(&[1.0; 4])).unwrap();
    let mut t = external("w", "w.bin", None, None);
    t.external_data.push(StringStringEntryProto {
        key: Some("location".into()),
        value: Some("other.bin".into()),
    });
    let p = write(dir.path(), "m.onnx", &ext_model(t));
    let e = load_model(&p, &ImportOptions::default()).expect_err("must fail");
    assert!(
        e.to_string().contains("entry 'location' is given twice"),
        "{e}"
    );

    let split = |n: N, inits: Vec<TensorProto>| {
        model(
            18,
            graph(
                vec![n],
                vec![fvi("x", &[2, 6])],
                vec![out("a"), out("b")],
                inits,
            ),
        )
    };
    let msg = import_err(&split(
        node("sp", "Split", &["x"], &["a", "b"]).i("axis", 1),
        vec![],
    ));
    assert!(
        msg.contains("needs the 'split' input or attribute 'num_outputs'"),
        "{msg}"
    );
    let both = node("sp", "Split", &["x", "s"], &["a", "b"])
        .i("axis", 1)
        .i("num_outputs", 2);
    let msg = import_err(&split(both, vec![ints("s", &[3, 3])]));
    assert!(
        msg.contains("has both the 'split' input and attribute 'num_outputs'"),
        "{msg}"
    );
}

/// Integer-list inputs (axes, shape, pads…) are 1-D tensors.
#[test]
fn a_two_dimensional_axes_tensor_is_rejected() {
    let axes = TensorProto {
        dims: vec![1, 2],
        ..ints("axes", &[2, 3])
    };
    let m = model(
        13,
        graph(
            vec![node("rm", "ReduceSum", &["x", "axes"], &["y"])],
            vec![fvi("x", &[1, 2, 3, 4])],
            vec![out("y")],
            vec![axes],
        ),
    );
    let msg = import_err(&m);
    assert!(
        msg.contains("'rm'") && msg.contains("input 'axes' must be a 1-D tensor"),
        "{msg}"
    );
}

/// QONNX's Quant: a rounding mode qcc does not compute, a bit width that is
/// not a constant whole number, and an unknown QONNX op are errors naming
/// the node.
#[test]
fn qonnx_quant_errors_name_the_node() {
    let dom = "qonnx.custom_op.general";
    let case = |n: N, bits: &[f32]| {
        let inits = vec![
            tf32("s", &[], &[0.1]),
            tf32("z", &[], &[0.0]),
            tf32("b", &[], bits),
        ];
        let m = model(
            13,
            graph(vec![n], vec![fvi("x", &[2, 3])], vec![out("y")], inits),
        );
        import_err(&m)
    };
    let q = || node("q", "Quant", &["x", "s", "z", "b"], &["y"]).domain(dom);
    let msg = case(q().s("rounding_mode", "FLOOR"), &[8.0]);
    assert!(
        msg.contains("node 'q' (Quant): unsupported attribute rounding_mode='FLOOR'"),
        "{msg}"
    );
    let msg = case(q(), &[2.5]);
    assert!(msg.contains("node 'q' (Quant): bitwidth 2.5"), "{msg}");
    let msg = case(node("q", "TruncQuant", &["x"], &["y"]).domain(dom), &[8.0]);
    assert!(
        msg.contains("node 'q' (TruncQuant): unsupported op (domain 'qonnx.custom_op.general')"),
        "{msg}"
    );
}

/// DynamicQuantizeLSTM: weights that are not int8/uint8 constants of the
/// transposed shape, and zero points that differ within a direction (ONNX
/// Runtime reads one per direction), are errors naming the node.
#[test]
fn dynamic_quantize_lstm_errors_name_the_node() {
    let int8 = |name: &str, dims: &[i64], v: &[i32]| TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(3),
        int32_data: v.to_vec(),
        ..Default::default()
    };
    let (h, isz) = (2usize, 3usize);
    let case = |w: TensorProto, wzp: TensorProto| {
        let ins = ["x", "w", "r", "", "", "", "", "", "ws", "wz", "rs", "rz"];
        let n = node("q", "DynamicQuantizeLSTM", &ins, &["y"])
            .domain("com.microsoft")
            .i("hidden_size", h as i64);
        let inits = vec![
            w,
            int8("r", &[1, h as i64, 4 * h as i64], &[1; 16]),
            tf32("ws", &[1, 4 * h as i64], &[0.1; 8]),
            wzp,
            tf32("rs", &[1], &[0.1]),
            int8("rz", &[1], &[0]),
        ];
        let m = model(
            14,
            graph(vec![n], vec![fvi("x", &[2, 1, isz])], vec![out("y")], inits),
        );
        import_err(&m)
    };
    let w = || int8("w", &[1, isz as i64, 4 * h as i64], &[1; 24]);
    let msg = case(
        w(),
        int8("wz", &[1, 4 * h as i64], &[0, 0, 0, 1, 0, 0, 0, 0]),
    );
    assert!(
        msg.contains("node 'q' (DynamicQuantizeLSTM)")
            && msg.contains("one zero point per direction"),
        "{msg}"
    );
    let wf = tf32("w", &[1, isz as i64, 4 * h as i64], &[1.0; 24]);
    let msg = case(wf, int8("wz", &[1, 4 * h as i64], &[0; 8]));
    assert!(
        msg.contains("node 'q' (DynamicQuantizeLSTM)") && msg.contains("expected int8 or uint8"),
        "{msg}"
    );
}
