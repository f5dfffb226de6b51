//! IR dumps of every test model before and after each pass, as insta
//! snapshots under `snapshots/` at the repository root. A change in what a
//! pass does shows up as a reviewable diff (`cargo insta review`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata")
}

/// The inputs of a case's first test data set, by name, in input order.
fn test_inputs(case: &Path) -> Vec<(String, qcc_ir::Tensor)> {
    let mut inputs = vec![];
    for i in 0.. {
        let p = case.join(format!("test_data_set_0/input_{i}.pb"));
        if !p.exists() {
            break;
        }
        inputs.push(qcc_onnx::read_tensor_pb(&p).expect("read test input"));
    }
    inputs
}

/// Input shapes of a case, taken from its first test data set.
fn input_shapes(case: &Path) -> HashMap<String, Vec<usize>> {
    test_inputs(case)
        .into_iter()
        .map(|(n, t)| (n, t.shape().to_vec()))
        .collect()
}

/// The quantized pipeline (`--quantize int8`, min-max calibration on the
/// case's test inputs), dumped after each pass, for the models it applies to.
#[test]
fn int8_ir_after_each_pass() {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(testdata().join("../snapshots"));
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| {
        for name in ["small_cnn", "mlp", "symbolic_batch", "mbv3_block"] {
            let case = testdata().join(name);
            let mut g = qcc::import(&case.join("model.onnx"), &input_shapes(&case)).unwrap();
            let mut cx = qcc_passes::PassContext {
                quant: Some(qcc_passes::QuantConfig::default()),
                calibration: vec![test_inputs(&case).into_iter().map(|(_, t)| t).collect()],
                ..Default::default()
            };
            for pass in qcc_passes::PASSES {
                (pass.run)(&mut g, &mut cx).unwrap_or_else(|e| panic!("{name}: {e}"));
                qcc_ir::verify(&g).unwrap_or_else(|e| panic!("{name}: {}: {e}", pass.name));
                if matches!(pass.name, "insert-qdq" | "cancel-qdq") {
                    insta::assert_snapshot!(
                        format!("{name}@int8-{}", pass.name),
                        qcc_ir::print(&g).unwrap()
                    );
                }
            }
        }
    });
}

#[test]
fn ir_before_and_after_each_pass() {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(testdata())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("model.onnx").exists())
        .collect();
    cases.sort();
    assert!(!cases.is_empty(), "no models under testdata/");
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(testdata().join("../snapshots"));
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| {
        for case in &cases {
            let name = case.file_name().unwrap().to_string_lossy();
            let mut g = qcc::import(&case.join("model.onnx"), &input_shapes(case))
                .unwrap_or_else(|e| panic!("{name}: import failed: {e:#}"));
            insta::assert_snapshot!(format!("{name}@0-import"), qcc_ir::print(&g).unwrap());
            let mut cx = qcc_passes::PassContext::default();
            for (i, pass) in qcc_passes::PASSES.iter().enumerate() {
                (pass.run)(&mut g, &mut cx)
                    .unwrap_or_else(|e| panic!("{name}: {}: {e}", pass.name));
                qcc_ir::verify(&g)
                    .unwrap_or_else(|e| panic!("{name}: invalid after {}: {e}", pass.name));
                insta::assert_snapshot!(
                    format!("{name}@{}-{}", i + 1, pass.name),
                    qcc_ir::print(&g).unwrap()
                );
            }
        }
    });
}
