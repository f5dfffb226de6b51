//! End-to-end tests: every case of `testdata/manifest.txt` is compiled with the
//! `qcc` binary, linked with the C harness, run on its stored inputs, and
//! compared with the stored onnxruntime outputs and with tract-onnx's outputs.
//! tract is also checked against the stored outputs, which validates the test
//! data independently of qcc. Prints each output's max abs error.

mod common;

use common::{Compiled, DataSet, Tolerance};
use qcc_ir::{DType, Tensor};
use std::fs;
use std::path::PathBuf;
use tract_onnx::prelude::{
    DatumExt, DatumType, Framework, InferenceModelExt, IntoRunnable, IntoTValue, IntoTensor,
    Tensor as TractTensor,
};

/// One line of `testdata/manifest.txt`.
#[derive(Debug)]
struct Case {
    name: String,
    tol: Tolerance,
    flags: Vec<String>,
    /// `false` for `oracle=onnxruntime`: tract's outputs are not compared
    /// (the manifest says why).
    tract: bool,
}

fn manifest() -> Result<Vec<Case>, String> {
    let path = common::repo_root().join("testdata/manifest.txt");
    let text =
        fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut cases = vec![];
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        let mut toks = line.split_whitespace();
        let Some(name) = toks.next() else { continue };
        let mut tol = Tolerance {
            atol: f64::NAN,
            rtol: f64::NAN,
        };
        let mut flags = vec![];
        let mut tract = true;
        for tok in toks {
            if tok == "oracle=onnxruntime" {
                tract = false;
                continue;
            }
            if !common::parse_tolerance_token(tok, &mut tol)
                .map_err(|e| format!("manifest.txt:{}: {e}", n + 1))?
            {
                flags.push(tok.to_string());
            }
        }
        if tol.atol.is_nan() || tol.rtol.is_nan() {
            return Err(format!(
                "manifest.txt:{}: {name}: needs atol= and rtol=",
                n + 1
            ));
        }
        cases.push(Case {
            name: name.to_string(),
            tol,
            flags,
            tract,
        });
    }
    Ok(cases)
}

fn to_tract(t: &Tensor) -> Result<TractTensor, String> {
    let shape = t.shape().to_vec();
    let bad = |e: tract_onnx::prelude::tract_ndarray::ShapeError| e.to_string();
    Ok(match t.dtype() {
        DType::F32 => {
            tract_onnx::prelude::tract_ndarray::ArrayD::from_shape_vec(shape, t.to_f32_vec())
                .map_err(bad)?
                .into_tensor()
        }
        DType::I64 => tract_onnx::prelude::tract_ndarray::ArrayD::from_shape_vec(
            shape,
            t.to_i64_vec().ok_or("not an integer tensor")?,
        )
        .map_err(bad)?
        .into_tensor(),
        other => return Err(format!("input type {} not handled", other.name())),
    })
}

fn from_tract(t: TractTensor) -> Result<Tensor, String> {
    let shape = t.shape().to_vec();
    let e = |e: tract_onnx::prelude::TractError| format!("{e:#}");
    let t = match t.datum_type() {
        DatumType::F32 => Tensor::from_f32(
            shape,
            t.to_plain_array_view::<f32>()
                .map_err(e)?
                .iter()
                .copied()
                .collect(),
        ),
        DatumType::I64 => Tensor::from_i64(
            shape,
            t.to_plain_array_view::<i64>()
                .map_err(e)?
                .iter()
                .copied()
                .collect(),
        ),
        other => return Err(format!("tract output type {other:?} not handled")),
    };
    t.ok_or_else(|| "tract output: element count does not match its shape".into())
}

/// Runs the model with tract, with static input facts from the data set.
fn run_tract(model: &PathBuf, data: &DataSet) -> Result<Vec<Tensor>, String> {
    let e = |e: tract_onnx::prelude::TractError| format!("tract: {e:#}");
    let mut m = tract_onnx::onnx().model_for_path(model).map_err(e)?;
    for (i, t) in data.inputs.iter().enumerate() {
        let fact = match t.dtype() {
            DType::F32 => f32::fact(t.shape()),
            DType::I64 => i64::fact(t.shape()),
            other => return Err(format!("input type {} not handled", other.name())),
        };
        m = m.with_input_fact(i, fact.into()).map_err(e)?;
    }
    let plan = m.into_optimized().map_err(e)?.into_runnable().map_err(e)?;
    let inputs = data
        .inputs
        .iter()
        .map(|t| to_tract(t).map(|t| t.into_tvalue()))
        .collect::<Result<_, _>>()?;
    let outs = plan.run(inputs).map_err(e)?;
    outs.into_iter()
        .map(|v| from_tract(v.into_tensor()))
        .collect()
}

fn fmt_errs(errs: &[(String, f64)]) -> String {
    errs.iter()
        .map(|(n, e)| format!("{n} {e:.2e}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn check_case(case: &Case) -> Result<(), String> {
    let dir = common::repo_root().join("testdata").join(&case.name);
    let model = dir.join("model.onnx");
    let sets = common::data_set_dirs(&dir)?;
    let data: Vec<DataSet> = sets
        .iter()
        .map(|d| common::load_data_set(d))
        .collect::<Result<_, _>>()?;

    // The test data itself: tract must agree with the stored onnxruntime outputs.
    let mut tract_outs = vec![];
    for d in data.iter().filter(|_| case.tract) {
        let t = run_tract(&model, d)?;
        let errs = common::compare_outputs(&t, &d.outputs, case.tol, "onnxruntime (tract run)")?;
        println!(
            "e2e {}: tract vs onnxruntime max abs err: {}",
            case.name,
            fmt_errs(&errs)
        );
        tract_outs.push(t);
    }

    let compiled: Compiled = common::compile_and_link(&case.name, &model, &case.flags)?;
    for (i, d) in data.iter().enumerate() {
        let got = compiled.run(d)?;
        let errs = common::compare_outputs(&got, &d.outputs, case.tol, "onnxruntime")?;
        println!(
            "e2e {}: qcc vs onnxruntime max abs err: {}",
            case.name,
            fmt_errs(&errs)
        );
        let Some(t) = tract_outs.get(i) else {
            println!("e2e {}: tract not compared (oracle=onnxruntime)", case.name);
            continue;
        };
        let named: Vec<(String, Tensor)> = d
            .outputs
            .iter()
            .map(|(n, _)| n.clone())
            .zip(t.iter().cloned())
            .collect();
        let errs = common::compare_outputs(&got, &named, case.tol, "tract")?;
        println!(
            "e2e {}: qcc vs tract max abs err: {}",
            case.name,
            fmt_errs(&errs)
        );
    }
    Ok(())
}

fn run_case(name: &str) {
    let cases = manifest().unwrap_or_else(|e| panic!("e2e {name}: {e}"));
    let case = cases
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("e2e {name}: not listed in testdata/manifest.txt"));
    if let Err(e) = check_case(case) {
        panic!("e2e {name}: {e}");
    }
}

macro_rules! e2e_cases {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                run_case(stringify!($name));
            }
        )*

        /// Every manifest case has a test above, and every test a manifest line.
        #[test]
        fn manifest_matches_tests() {
            let listed: Vec<String> = manifest().unwrap().into_iter().map(|c| c.name).collect();
            let tested = [$(stringify!($name)),*];
            for n in &listed {
                assert!(tested.contains(&n.as_str()), "manifest case {n} has no #[test] in e2e.rs");
            }
            for n in tested {
                assert!(listed.iter().any(|l| l == n), "e2e test {n} is not in testdata/manifest.txt");
            }
        }
    };
}

e2e_cases!(
    small_cnn,
    mlp,
    symbolic_batch,
    ops_mix,
    export_quirks,
    qdq_cnn,
    recurrent,
    if_on_data,
    pads_and_sums,
    einsum_attention,
    transformer,
    mbv3_block,
    ort_qdq_cnn_s8s8,
    ort_qdq_cnn_u8s8,
    ort_qdq_cnn_u8u8,
    qdq_u8_weights,
    ort_qdq_mlp_u8s8,
    ort_qop_cnn_s8s8,
    ort_qop_mlp_u8s8,
    ort_qop_requant,
    qonnx_mlp,
    ort_qdq_transformer,
    ort_qop_transformer,
    ort_dyn_transformer,
    ort_dyn_mlp_u8,
    ort_dyn_cnn,
    int4_weights,
    qdq_int4_cnn,
    ort_nbits_transformer,
    ort_nbits_transformer_zp,
    binary_cnn,
    ort_dyn_recurrent,
    ort_qdq_cnn_u8u8_pt,
    ort_qdq_mlp_u8u8_pt,
    matmul_integer_long_k
);
