//! A trained binary network compiles exactly: `testdata/bnn_mlp/` (made by
//! `scripts/train_bnn.py`: an MLP on MNIST-5k with ±1 weights and ±1 hidden
//! activations, BNN-style, exported as float ONNX with `Sign` and
//! half-integer thresholds) compiled by the `qcc` binary for the 500
//! held-out images at once (`--input-shape x=500,784`), linked with the C
//! harness and run: its logits must equal, bit for bit, the training
//! script's own integer evaluation (`logits.npy`), so its accuracy is the
//! script's on every image. (Every sum in this network is an integer below
//! 2^24 and every logit one f32 addition, so exact float code must agree;
//! the binary kernels to come must too.)

mod common;

use qcc_ir::{Tensor, TensorData, TensorType};
use std::path::PathBuf;

fn dir() -> PathBuf {
    common::repo_root().join("testdata/bnn_mlp")
}

fn npy<T: npyz::Deserialize>(name: &str) -> (Vec<u64>, Vec<T>) {
    let bytes = std::fs::read(dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let f = npyz::NpyFile::new(&bytes[..]).unwrap_or_else(|e| panic!("{name}: {e}"));
    let shape = f.shape().to_vec();
    (
        shape,
        f.into_vec().unwrap_or_else(|e| panic!("{name}: {e}")),
    )
}

#[test]
fn binary_mlp_logits_equal_the_training_scripts() {
    let (xs, x) = npy::<u8>("test_x.npy");
    let (_, labels) = npy::<i64>("test_y.npy");
    let (ls, want) = npy::<f32>("logits.npy");
    let n = xs[0] as usize;
    assert_eq!((xs[1], ls.as_slice()), (784, &[n as u64, 10][..]));
    let input = Tensor::new(
        vec![n, 784],
        TensorData::F32(x.iter().map(|&p| p as f32).collect()),
    )
    .expect("input tensor");
    let c = common::compile_and_link(
        "bnn_mlp",
        &dir().join("model.onnx"),
        &["--input-shape".into(), format!("x={n},784")],
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
            "image {i}: {row:?} vs {want_row:?}"
        );
        let top = (0..10).fold(0, |b, j| if row[j] > row[b] { j } else { b });
        correct += (top as i64 == labels[i]) as usize;
    }
    let acc = correct as f64 / n as f64;
    eprintln!("binary MLP: {:.2}% of {n} held-out images", acc * 100.0);
    assert!(acc > 0.9, "accuracy {acc}");
}

/// `binarize` makes the two layers that read a Sign binary (`SignMatMul`,
/// weights as bits); the first, on raw pixels, stays a float MatMul.
#[test]
fn binary_mlp_hidden_and_last_layers_are_binary() {
    let mut g = qcc::import(&dir().join("model.onnx"), &Default::default()).expect("import");
    qcc::optimize(&mut g, None).expect("pipeline");
    let ops: Vec<(&str, &str)> = g
        .node_ids()
        .into_iter()
        .map(|id| g.node(id))
        .filter(|n| {
            matches!(
                n.op,
                qcc_ir::Op::SignMatMul { .. } | qcc_ir::Op::MatMul | qcc_ir::Op::Gemm { .. }
            )
        })
        .map(|n| (n.name.as_str(), n.op.name()))
        .collect();
    assert_eq!(
        ops,
        [
            ("fc1", "matmul"),
            ("fc2", "sign_matmul"),
            ("fc3", "sign_matmul")
        ],
        "{ops:?}"
    );
}
