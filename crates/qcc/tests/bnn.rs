//! Trained binary networks compile exactly: `testdata/bnn_mlp/` and
//! `testdata/bnn_cnn/` (made by `scripts/train_bnn.py [cnn]`: an MLP and a
//! CNN on MNIST-5k with ±1 weights and ±1 hidden activations, BNN-style,
//! exported as float ONNX with `Sign` and half-integer thresholds, the CNN
//! pooling its signs; both again in QONNX's `BipolarQuant` form) compiled
//! by the `qcc` binary for the 500 held-out images at once
//! (`--input-shape`), linked with the C harness and run:
//! their logits must equal, bit for bit, the training script's own integer
//! evaluation (`logits.npy`), so the accuracy is the script's on every
//! image. (Every sum in these networks is an integer below 2^24 and every
//! logit one f32 addition, so exact float code must agree, and the binary
//! kernels, which count bits, too.)

mod common;

use qcc_ir::{Tensor, TensorData, TensorType};
use std::path::PathBuf;

fn dir() -> PathBuf {
    common::repo_root().join("testdata/bnn_mlp")
}

fn npy<T: npyz::Deserialize>(name: &str) -> (Vec<u64>, Vec<T>) {
    npy_in(&dir(), name)
}

fn npy_in<T: npyz::Deserialize>(dir: &std::path::Path, name: &str) -> (Vec<u64>, Vec<T>) {
    let bytes = std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let f = npyz::NpyFile::new(&bytes[..]).unwrap_or_else(|e| panic!("{name}: {e}"));
    let shape = f.shape().to_vec();
    (
        shape,
        f.into_vec().unwrap_or_else(|e| panic!("{name}: {e}")),
    )
}

/// Compiles `testdata/<case>/<model>` for the 500 held-out images, input
/// `[n, pixel dims…]`, and checks its logits bit for bit against the case's
/// `logits.npy`; returns the accuracy.
fn logits_equal_the_training_scripts(case: &str, model: &str, pixel_dims: &[usize]) -> f64 {
    let (xs, x) = npy::<u8>("test_x.npy");
    let (_, labels) = npy::<i64>("test_y.npy");
    let (ls, want) = npy_in::<f32>(
        &common::repo_root().join("testdata").join(case),
        "logits.npy",
    );
    let n = xs[0] as usize;
    assert_eq!((xs[1], ls.as_slice()), (784, &[n as u64, 10][..]));
    let mut shape = vec![n];
    shape.extend_from_slice(pixel_dims);
    let input = Tensor::new(
        shape.clone(),
        TensorData::F32(x.iter().map(|&p| p as f32).collect()),
    )
    .expect("input tensor");
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let c = common::compile_and_link(
        case,
        &common::repo_root().join("testdata").join(case).join(model),
        &["--input-shape".into(), format!("x={}", dims.join(","))],
    )
    .expect("compile and link");
    let got =
        common::run_app(&c.app, c.work.path(), &[input], &[TensorType::f32([n, 10])]).expect("run");
    let got = got[0].as_f32().expect("f32 logits");
    let mut correct = 0;
    for i in 0..n {
        let row = &got[i * 10..(i + 1) * 10];
        let want_row = &want[i * 10..(i + 1) * 10];
        let bits = |r: &[f32]| r.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(row),
            bits(want_row),
            "{case}/{model} image {i}: {row:?} vs {want_row:?}"
        );
        let top = (0..10).fold(0, |b, j| if row[j] > row[b] { j } else { b });
        correct += (top as i64 == labels[i]) as usize;
    }
    let acc = correct as f64 / n as f64;
    eprintln!("{case}/{model}: {:.2}% of {n} held-out images", acc * 100.0);
    acc
}

/// As float ONNX with `Sign`, and in QONNX's form (`BipolarQuant` on the
/// weights and the activations, as Brevitas exports them).
#[test]
fn binary_mlp_logits_equal_the_training_scripts() {
    for model in ["model.onnx", "model_qonnx.onnx"] {
        let acc = logits_equal_the_training_scripts("bnn_mlp", model, &[784]);
        assert!(acc > 0.9, "{model}: accuracy {acc}");
    }
}

/// The binary CNN reads the MLP's held-out images (the script checks that
/// its split is the same).
#[test]
fn binary_cnn_logits_equal_the_training_scripts() {
    for model in ["model.onnx", "model_qonnx.onnx"] {
        let acc = logits_equal_the_training_scripts("bnn_cnn", model, &[1, 28, 28]);
        assert!(acc > 0.9, "{model}: accuracy {acc}");
    }
}

/// The layers of `testdata/<case>/<model>` that hold weights, `(name, op)`,
/// after the pipeline.
fn weighted_layers(case: &str, model: &str) -> Vec<(String, &'static str)> {
    let model = common::repo_root().join("testdata").join(case).join(model);
    let mut g = qcc::import(&model, &Default::default()).expect("import");
    qcc::optimize(&mut g, None).expect("pipeline");
    g.node_ids()
        .into_iter()
        .map(|id| g.node(id))
        .filter(|n| {
            matches!(
                n.op,
                qcc_ir::Op::SignMatMul { .. }
                    | qcc_ir::Op::SignConv { .. }
                    | qcc_ir::Op::MatMul
                    | qcc_ir::Op::Gemm { .. }
                    | qcc_ir::Op::Conv(_)
                    | qcc_ir::Op::ConvClamp { .. }
            )
        })
        .map(|n| (n.name.clone(), n.op.name()))
        .collect()
}

/// The CNN's second convolution reads pooled signs: a `SignConv`; its last
/// layer reads their Flatten: a `SignMatMul`; the first, on raw pixels,
/// stays a float Conv.
#[test]
fn binary_cnn_layers_after_the_first_are_binary() {
    const CASE: &str = "bnn_cnn";
    let want = [
        ("conv1", "conv"),
        ("conv2", "sign_conv"),
        ("fc3", "sign_matmul"),
    ];
    let want: Vec<(String, &str)> = want.iter().map(|(a, b)| (a.to_string(), *b)).collect();
    for model in ["model.onnx", "model_qonnx.onnx"] {
        assert_eq!(weighted_layers(CASE, model), want, "{model}");
    }
}

/// `binarize` makes the two layers that read a Sign binary (`SignMatMul`,
/// weights as bits); the first, on raw pixels, stays a float MatMul.
#[test]
fn binary_mlp_hidden_and_last_layers_are_binary() {
    const CASE: &str = "bnn_mlp";
    let want = [
        ("fc1", "matmul"),
        ("fc2", "sign_matmul"),
        ("fc3", "sign_matmul"),
    ];
    let want: Vec<(String, &str)> = want.iter().map(|(a, b)| (a.to_string(), *b)).collect();
    for model in ["model.onnx", "model_qonnx.onnx"] {
        assert_eq!(weighted_layers(CASE, model), want, "{model}");
    }
}
