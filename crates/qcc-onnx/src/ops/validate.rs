//! Static checks of one node, independent of its inputs: the op exists in
//! qcc and in the model's opset, enumerated attributes take supported
//! values, and no unsupported optional output is used. `check_model` runs
//! them on every node; the importer runs them before building a node.

use crate::attrs::Attrs;
use crate::error::Problem;
use crate::model::is_default_domain;
use crate::proto::NodeProto;
use crate::tensor::dtype_of;
use crate::topo::node_problem;
use std::collections::HashSet;

/// Checks node `n` (number `index`) under default-domain opset `opset`;
/// `used` holds every value name something reads.
pub(crate) fn validate(
    n: &NodeProto,
    index: usize,
    opset: i64,
    used: &HashSet<String>,
) -> Result<(), Problem> {
    let err = |msg: String| node_problem(n, index, msg);
    let op = n.op_type();
    if n.domain() == "com.microsoft" {
        return contrib(n, super::CONTRIB).map_err(err);
    }
    if super::qonnx::is_qonnx_domain(n.domain()) {
        return contrib(n, super::qonnx::QONNX).map_err(err);
    }
    let Some(since) = super::since(op).filter(|_| is_default_domain(n.domain())) else {
        return Err(err(super::unsupported(op, n.domain())));
    };
    if opset < since {
        return Err(err(format!(
            "{op} does not exist before opset {since} (the model imports opset {opset})"
        )));
    }
    let a = Attrs(n);
    a.check_names().map_err(err)?;
    super::schema::check(n, opset).map_err(err)?;
    let out_used = |j: usize| {
        n.output
            .get(j)
            .is_some_and(|o| !o.is_empty() && used.contains(o))
    };
    let one_of = |name: &str, default: &str, allowed: &[&str]| -> Result<(), Problem> {
        let v = a.string_or(name, default).map_err(err)?;
        if allowed.contains(&v.as_str()) {
            Ok(())
        } else {
            Err(err(format!("unsupported attribute {name}='{v}'")))
        }
    };
    let int_is = |name: &str, default: i64, allowed: i64| -> Result<(), Problem> {
        let v = a.int_or(name, default).map_err(err)?;
        if v == allowed {
            Ok(())
        } else {
            Err(err(format!("unsupported attribute {name}={v}")))
        }
    };
    // Before opset 7, BatchNormalization and Dropout run in training mode
    // unless `is_test=1`.
    let test_mode = || -> Result<(), Problem> {
        if opset >= 7 || a.int_or("is_test", 0).map_err(err)? == 1 {
            return Ok(());
        }
        Err(err(format!(
            "is_test=0 asks for training mode at opset {opset}; inference needs is_test=1"
        )))
    };
    const AUTO_PAD: &[&str] = &["NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"];
    // Explicit pads exclude auto_pad and (ConvTranspose) output_shape.
    let pads_alone = || -> Result<(), Problem> {
        if !a.has("pads") {
            return Ok(());
        }
        if a.string_or("auto_pad", "NOTSET").map_err(err)? != "NOTSET" {
            return Err(err("attribute 'pads' given together with 'auto_pad'".into()));
        }
        if a.has("output_shape") {
            return Err(err(
                "attribute 'pads' given together with 'output_shape'".into()
            ));
        }
        Ok(())
    };
    match op {
        "Conv" | "ConvTranspose" | "AveragePool" => {
            pads_alone()?;
            one_of("auto_pad", "NOTSET", AUTO_PAD)
        }
        "Max" | "Min" | "Sum" | "Mean" => match n.input.iter().position(|i| i.is_empty()) {
            Some(j) => Err(err(format!(
                "input {j} is empty (every input of {op} is required)"
            ))),
            None => Ok(()),
        },
        "MaxPool" => {
            pads_alone()?;
            let order = a.int_or("storage_order", 0).map_err(err)?;
            if !(0..=1).contains(&order) {
                return Err(err(format!(
                    "attribute storage_order={order} must be 0 or 1"
                )));
            }
            one_of("auto_pad", "NOTSET", AUTO_PAD)?;
            if out_used(1) {
                return Err(err("the Indices output is not supported".into()));
            }
            Ok(())
        }
        "Pad" => one_of("mode", "constant", &["constant", "reflect", "edge", "wrap"]),
        "Resize" => {
            one_of("mode", "nearest", &["nearest", "linear", "cubic"])?;
            one_of(
                "coordinate_transformation_mode",
                "half_pixel",
                &[
                    "half_pixel",
                    "pytorch_half_pixel",
                    "align_corners",
                    "asymmetric",
                    "half_pixel_symmetric",
                ],
            )?;
            one_of(
                "nearest_mode",
                "round_prefer_floor",
                &["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"],
            )?;
            one_of(
                "keep_aspect_ratio_policy",
                "stretch",
                &["stretch", "not_larger", "not_smaller"],
            )?;
            let exclude = a.int_or("exclude_outside", 0).map_err(err)?;
            if exclude != 0 && exclude != 1 {
                return Err(err(format!(
                    "attribute exclude_outside={exclude} must be 0 or 1"
                )));
            }
            int_is("antialias", 0, 0)
        }
        "Upsample" => one_of("mode", "nearest", &["nearest", "linear"]),
        "BatchNormalization" => {
            test_mode()?;
            int_is("spatial", 1, 1)?;
            int_is("training_mode", 0, 0)?;
            if (1..5).any(out_used) {
                return Err(err(
                    "training outputs (running mean/var) are not supported".into()
                ));
            }
            Ok(())
        }
        "Dropout" => {
            test_mode()?;
            if out_used(1) {
                return Err(err("the mask output is not supported".into()));
            }
            Ok(())
        }
        "Cast" => match crate::attrs::cast_to(&a, opset).map_err(err)? {
            None => Err(err("attribute 'to' is missing".into())),
            Some(to) => match i32::try_from(to)
                .map_err(|_| format!("{to}"))
                .and_then(dtype_of)
            {
                Ok(_) => Ok(()),
                Err(_) => Err(err(format!(
                    "unsupported attribute to={} ({})",
                    to,
                    crate::tensor::data_type_name(to as i32)
                ))),
            },
        },
        "Constant" => {
            for bad in ["sparse_value", "value_string", "value_strings"] {
                if a.has(bad) {
                    return Err(err(format!("unsupported attribute '{bad}'")));
                }
            }
            let given = [
                "value",
                "value_float",
                "value_floats",
                "value_int",
                "value_ints",
            ]
            .iter()
            .filter(|k| a.has(k))
            .count();
            if given != 1 {
                return Err(err(format!(
                    "needs exactly one value attribute, got {given}"
                )));
            }
            Ok(())
        }
        "Gelu" => one_of("approximate", "none", &["none", "tanh"]),
        _ => Ok(()),
    }
}

/// Checks a node of a non-ONNX domain against its table (`CONTRIB`,
/// `QONNX`): known op, attributes, input and output counts.
fn contrib(n: &NodeProto, table: &[(&str, usize, usize, &[&str])]) -> Result<(), String> {
    let op = n.op_type();
    let Some(&(_, lo, hi, attrs)) = table.iter().find(|c| c.0 == op) else {
        return Err(super::unsupported(op, n.domain()));
    };
    Attrs(n).check_names()?;
    if let Some(a) = n.attribute.iter().find(|a| !attrs.contains(&a.name())) {
        return Err(format!("unknown attribute '{}'", a.name()));
    }
    let count = n.input.len();
    if count < lo || count > hi {
        let want = if hi == usize::MAX {
            format!("at least {lo}")
        } else {
            format!("{lo} to {hi}")
        };
        return Err(format!("{count} inputs, expected {want}"));
    }
    // DynamicQuantizeLSTM has LSTM's three outputs (Y, Y_h, Y_c); the
    // others one.
    let outs = if op == "DynamicQuantizeLSTM" {
        1..=3
    } else {
        1..=1
    };
    if !outs.contains(&n.output.len()) {
        return Err(format!(
            "{} outputs, expected {}",
            n.output.len(),
            if outs.end() == &1 { "1" } else { "1 to 3" }
        ));
    }
    Ok(())
}
