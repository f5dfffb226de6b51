//! LSTM / GRU / RNN (`src/ops/rnn.rs`): unrolled over the static sequence;
//! what the unrolling cannot express is refused by name.

mod common;

use common::*;
use qcc_ir::{Tensor, TensorData};
use qcc_onnx::proto::ModelProto;

/// An RNN over `x` `[3, 1, 2]` with hidden size 2 and the given extra node
/// attributes and inputs (`sequence_lens` as a constant when given).
fn rnn(acts: Option<&str>, lens: Option<&[i64]>) -> ModelProto {
    let mut inputs = vec!["x", "w", "r", "", ""];
    let mut inits = vec![
        tf32("w", &[1, 2, 2], &[1.0, 0.0, 0.0, 1.0]),
        tf32("r", &[1, 2, 2], &[0.5, 0.0, 0.0, 0.5]),
    ];
    if let Some(l) = lens {
        inputs[4] = "lens";
        inits.push(ti64("lens", &[1], l));
    }
    let mut n = node("rnn", "RNN", &inputs, &["y", "yh"]).i("hidden_size", 2);
    if let Some(a) = acts {
        n = n.strings("activations", &[a]);
    }
    model(
        14,
        graph(
            vec![n],
            vec![fvi("x", &[3, 1, 2])],
            vec![out("y"), out("yh")],
            inits,
        ),
    )
}

/// With identity-like weights and Relu the recurrence is `h = relu(x_t + h/2)`.
#[test]
fn an_rnn_unrolls_into_its_recurrence() {
    let g = import(&rnn(Some("Relu"), Some(&[3]))).expect("imports");
    let x = Tensor::new(
        vec![3, 1, 2],
        TensorData::F32(vec![1.0, -1.0, 2.0, 4.0, -8.0, 1.0]),
    )
    .unwrap();
    let out = qcc_interp::run(&g, &[x]).expect("interpreter");
    // h1 = (1, 0), h2 = (2.5, 4), h3 = (0, 3).
    assert_eq!(out[0].to_f32_vec(), [1.0, 0.0, 2.5, 4.0, 0.0, 3.0]);
    assert_eq!(out[1].to_f32_vec(), [0.0, 3.0]);
}

#[test]
fn what_the_unrolling_cannot_do_is_refused_by_name() {
    let msg = import_err(&rnn(None, Some(&[2])));
    assert!(
        msg.contains("node 'rnn' (RNN): sequence_lens [2] differ from the sequence length 3"),
        "{msg}"
    );
    let msg = import_err(&rnn(Some("Softsign"), None));
    assert!(
        msg.contains("node 'rnn' (RNN): activation 'Softsign' is not supported"),
        "{msg}"
    );
    // Weights computed at run time.
    let m = model(
        14,
        graph(
            vec![node("lstm", "LSTM", &["x", "w", "r"], &["y"]).i("hidden_size", 1)],
            vec![
                fvi("x", &[2, 1, 1]),
                fvi("w", &[1, 4, 1]),
                fvi("r", &[1, 4, 1]),
            ],
            vec![out("y")],
            vec![],
        ),
    );
    let msg = import_err(&m);
    assert!(
        msg.contains("node 'lstm' (LSTM): input 'W' must be a compile-time constant"),
        "{msg}"
    );
}
