//! Robustness: randomly corrupted models must give errors, never panics.

mod common;

use common::*;
use prost::Message;
use qcc_onnx::{check_model, load_model, ImportOptions};

fn rich_model() -> qcc_onnx::proto::ModelProto {
    model(
        13,
        graph(
            vec![
                node("conv", "Conv", &["x", "W"], &["c"])
                    .s("auto_pad", "SAME_UPPER")
                    .ints("strides", &[2, 2]),
                node("pool", "MaxPool", &["c"], &["p"]).ints("kernel_shape", &[2, 2]),
                node("rs", "Resize", &["p", "", "scales"], &["u"]),
                node("sp", "Split", &["u", "split"], &["a", "b"]).i("axis", 1),
                node("sl", "Slice", &["a", "st", "en", "ax"], &["s"]),
                node("pad", "Pad", &["s", "pads"], &["q"]),
                node("r", "Reshape", &["q", "shape"], &["f"]),
                node("fc", "Gemm", &["f", "W2"], &["g"]).i("transB", 1),
                node("sm", "Softmax", &["g"], &["y"]),
                node("red", "ReduceMean", &["b"], &["z"]).ints("axes", &[2, 3]),
            ],
            vec![fvi("x", &[1, 2, 8, 8])],
            vec![fvi("y", &[1, 3]), out("z")],
            vec![
                tf32_seq("W", &[4, 2, 3, 3]),
                tf32("scales", &[4], &[1.0, 1.0, 2.0, 2.0]),
                ints("split", &[2, 2]),
                ints("st", &[1]),
                ints("en", &[-1]),
                ints("ax", &[3]),
                ints("pads", &[0, 0, 0, 0, 0, 0, 1, 1]),
                ints("shape", &[1, -1]),
                tf32_seq("W2", &[3, 70]),
            ],
        ),
    )
}

#[test]
fn the_rich_model_imports() {
    let g = import(&rich_model()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(output_types(&g), ["f32[1,3]", "f32[1,2,1,1]"]);
}

#[test]
fn corrupted_models_do_not_panic() {
    let bytes = rich_model().encode_to_vec();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.onnx");
    let opts = ImportOptions::default();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let (mut ok, mut failed) = (0, 0);
    for _ in 0..1500 {
        let mut b = bytes.clone();
        for _ in 0..1 + next() % 3 {
            let i = (next() % b.len() as u64) as usize;
            b[i] = next() as u8;
        }
        if next() % 8 == 0 {
            b.truncate((next() % b.len() as u64) as usize);
        }
        std::fs::write(&path, &b).unwrap();
        match load_model(&path, &opts) {
            Ok(g) => {
                qcc_ir::verify(&g).unwrap_or_else(|e| panic!("imported an invalid graph: {e}"));
                ok += 1;
            }
            Err(e) => {
                assert!(
                    e.to_string().starts_with(&path.display().to_string()),
                    "{e}"
                );
                failed += 1;
            }
        }
        let _ = check_model(&path, &opts);
    }
    assert!(ok > 0 && failed > 0, "ok {ok}, failed {failed}");
}

/// Edge values that break careless arithmetic.
const EDGES: &[i64] = &[-2, -1, 0, 1, 2, 3, 7, 1 << 40, i64::MAX, i64::MIN];

#[test]
fn mutated_attributes_and_parameters_do_not_panic() {
    let base = rich_model();
    let dir = tempfile::tempdir().unwrap();
    let opts = ImportOptions::default();
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..3000 {
        let mut m = base.clone();
        let g = m.graph.as_mut().unwrap();
        for _ in 0..1 + next() % 3 {
            let edge = EDGES[(next() % EDGES.len() as u64) as usize];
            match next() % 4 {
                0 => {
                    let n = (next() % g.node.len() as u64) as usize;
                    if let Some(a) = g.node[n].attribute.first_mut() {
                        if a.i.is_some() {
                            a.i = Some(edge);
                        }
                        if let Some(k) = a.ints.first_mut() {
                            *k = edge;
                        }
                    }
                }
                1 => {
                    // Integer parameters (split, starts, pads, shape…).
                    let small: Vec<usize> = (0..g.initializer.len())
                        .filter(|&i| !g.initializer[i].int64_data.is_empty())
                        .collect();
                    let t = &mut g.initializer[small[(next() % small.len() as u64) as usize]];
                    let k = (next() % t.int64_data.len() as u64) as usize;
                    t.int64_data[k] = edge;
                }
                2 => {
                    let t = (next() % g.initializer.len() as u64) as usize;
                    if let Some(d) = g.initializer[t].dims.first_mut() {
                        *d = edge;
                    }
                }
                _ => {
                    let n = (next() % g.node.len() as u64) as usize;
                    let last = g.node[n].input.len() - 1;
                    g.node[n].input.swap(0, last);
                }
            }
        }
        let path = write(dir.path(), "m.onnx", &m);
        if let Ok(g) = load_model(&path, &opts) {
            qcc_ir::verify(&g).unwrap_or_else(|e| panic!("imported an invalid graph: {e}"));
        }
        let _ = check_model(&path, &opts);
    }
}
