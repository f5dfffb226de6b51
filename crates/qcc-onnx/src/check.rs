//! `check_model`: every problem that keeps a model from importing, at once.
//!
//! Runs the importer in collect mode (nodes whose inputs failed are still
//! checked statically); when the model-level opset is unusable, falls back
//! to listing the unsupported ops.

use crate::error::Problem;
use crate::import;
use crate::model::{default_opset, is_default_domain};
use crate::ops;
use crate::proto::ModelProto;
use crate::topo::node_problem;
use crate::ImportOptions;
use std::path::Path;

/// The problems of `model` (read from `path`), one message each.
pub(crate) fn check(model: &ModelProto, path: &Path, opts: &ImportOptions) -> Vec<String> {
    let problems = match import::import(model, path, opts, true) {
        Ok(imported) => imported.problems,
        Err(fatal) => {
            let mut problems = vec![fatal];
            if default_opset(model).is_err() {
                problems.extend(unsupported_ops(model));
            }
            problems
        }
    };
    problems.iter().map(Problem::to_string).collect()
}

/// Nodes whose op qcc does not know, whatever the opset.
fn unsupported_ops(model: &ModelProto) -> Vec<Problem> {
    let Some(graph) = &model.graph else {
        return vec![];
    };
    graph
        .node
        .iter()
        .enumerate()
        .filter_map(|(i, n)| {
            if !is_default_domain(n.domain()) || ops::since(n.op_type()).is_none() {
                Some(node_problem(
                    n,
                    i,
                    ops::unsupported(n.op_type(), n.domain()),
                ))
            } else {
                None
            }
        })
        .collect()
}
