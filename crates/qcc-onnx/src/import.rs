//! The graph walk: initializers → constants, graph inputs → IR inputs,
//! nodes in topological order → IR nodes, graph outputs. In "collect" mode
//! (used by `check_model`) problems are gathered instead of stopping at the
//! first, and values that could not be built are marked poisoned so their
//! users are only checked statically.

use crate::attrs::Attrs;
use crate::error::Problem;
use crate::model;
use crate::node::NodeCx;
use crate::ops;
use crate::proto::{GraphProto, ModelProto, NodeProto};
use crate::signature::{input_contradicts, input_type, leading_batch_note, output_mismatch};
use crate::tensor;
use crate::topo;
use crate::ImportOptions;
use qcc_ir::{Graph, NodeId, Tensor, ValueId};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// State of one import.
pub(crate) struct Importer {
    pub g: Graph,
    /// ONNX value name → IR value.
    values: HashMap<String, ValueId>,
    /// Names that could not be built (collect mode).
    poisoned: HashSet<String>,
    /// Names read by some node or graph output.
    pub(crate) used: HashSet<String>,
    /// Constant values computed for parameter inputs, by IR node.
    pub(crate) evaluated: HashMap<NodeId, Vec<Tensor>>,
    /// `Some` in collect mode.
    problems: Option<Vec<Problem>>,
    /// The model's folder, where external data lives.
    pub dir: PathBuf,
    /// What the user should know but that does not stop the import (a
    /// batch dim set to 1, a declared output shape overridden), one line each.
    pub(crate) notes: Vec<String>,
    /// Bytes of the constants the importer generated itself so far
    /// (ConstantOfShape, Range, Expand): bounded by `MAX_GENERATED_BYTES`.
    pub(crate) generated: u128,
    /// Names of the initializers stored as int4 / uint4 and of the graph
    /// inputs declared so (all held as int8 / uint8): a zero point among
    /// them makes its QuantizeLinear 4-bit; CastLike to one is refused.
    pub(crate) four_bit: HashSet<String>,
}

impl Importer {
    /// The IR value of an ONNX name.
    pub fn value(&self, name: &str) -> Option<ValueId> {
        self.values.get(name).copied()
    }

    /// Names an IR value (the output of a node an op expands to).
    pub(crate) fn bind(&mut self, name: &str, v: ValueId) {
        self.values.insert(name.to_string(), v);
    }

    /// Reports a problem: an error in strict mode, recorded in collect mode.
    pub(crate) fn report(&mut self, p: Problem) -> Result<(), Problem> {
        match &mut self.problems {
            Some(list) => {
                list.push(p);
                Ok(())
            }
            None => Err(p),
        }
    }

    fn poison<'s>(&mut self, names: impl IntoIterator<Item = &'s String>) {
        self.poisoned
            .extend(names.into_iter().filter(|s| !s.is_empty()).cloned());
    }

    /// The names in scope, to be put back with [`Importer::set_scope`]
    /// after importing a subgraph whose own names must not leak out.
    pub(crate) fn scope(&self) -> Scope {
        Scope(self.values.clone(), self.poisoned.clone())
    }

    pub(crate) fn set_scope(&mut self, s: Scope) {
        (self.values, self.poisoned) = (s.0, s.1);
    }
}

/// The value names in scope at one point of an import.
pub(crate) struct Scope(HashMap<String, ValueId>, HashSet<String>);

/// What an import gives: the graph, the problems found (with `collect`),
/// and the notes for the user.
pub(crate) struct Imported {
    pub graph: Graph,
    pub problems: Vec<Problem>,
    pub notes: Vec<String>,
}

/// Imports `model` (read from `path`). With `collect`, returns every problem
/// found instead of failing at the first; the graph is then incomplete.
pub(crate) fn import(
    model: &ModelProto,
    path: &Path,
    opts: &ImportOptions,
    collect: bool,
) -> Result<Imported, Problem> {
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| Problem::Graph("the model has no graph".into()))?;
    let opset = model::default_opset(model)?;
    let name = if graph.name().is_empty() {
        "main"
    } else {
        graph.name()
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut imp = Importer {
        g: Graph::new(name),
        values: HashMap::new(),
        poisoned: HashSet::new(),
        used: used_names(graph),
        evaluated: HashMap::new(),
        generated: 0,
        four_bit: HashSet::new(),
        notes: vec![],
        problems: collect.then(Vec::new),
        dir: dir.clone(),
    };
    let initializers = add_initializers(&mut imp, graph, &dir)?;
    add_inputs(&mut imp, graph, &initializers, opts)?;
    add_nodes(&mut imp, graph, opset)?;
    add_outputs(&mut imp, graph)?;
    let problems = imp.problems.take().unwrap_or_default();
    Ok(Imported {
        graph: imp.g,
        problems,
        notes: imp.notes,
    })
}

/// Every value name something reads: node inputs (in subgraphs too) and
/// graph outputs.
fn used_names(graph: &GraphProto) -> HashSet<String> {
    let mut used: HashSet<String> = graph
        .node
        .iter()
        .flat_map(|n| n.input.iter().filter(|s| !s.is_empty()).cloned())
        .collect();
    used.extend(graph.output.iter().map(|o| o.name().to_string()));
    for n in &graph.node {
        for a in &n.attribute {
            for g in a.g.iter().chain(&a.graphs) {
                used.extend(used_names(g));
            }
        }
    }
    used
}

/// Adds every initializer as a constant; returns their names.
fn add_initializers(
    imp: &mut Importer,
    graph: &GraphProto,
    dir: &Path,
) -> Result<HashSet<String>, Problem> {
    let mut names = HashSet::new();
    for t in &graph.initializer {
        let name = t.name().to_string();
        if name.is_empty() {
            imp.report(Problem::Graph("an initializer has no name".into()))?;
            continue;
        }
        if !names.insert(name.clone()) {
            imp.report(Problem::tensor(&name, "is defined by two initializers"))?;
            continue;
        }
        if tensor::is_four_bit(t.data_type()) {
            imp.four_bit.insert(name.clone());
        }
        match tensor::to_tensor(t, dir) {
            Ok(value) => {
                let id = imp.g.add_const(name.clone(), value);
                imp.values.insert(name, ValueId::of(id));
            }
            Err(p) => {
                imp.report(p)?;
                imp.poisoned.insert(name);
            }
        }
    }
    for s in &graph.sparse_initializer {
        let name = s.values.as_ref().map(|v| v.name()).unwrap_or_default();
        imp.report(Problem::tensor(
            name,
            "sparse initializers are not supported",
        ))?;
        imp.poisoned.insert(name.to_string());
        names.insert(name.to_string());
    }
    Ok(names)
}

/// Whether a graph input is declared int4 or uint4 (held as int8 / uint8).
fn vi_is_four_bit(vi: &crate::proto::ValueInfoProto) -> bool {
    use crate::proto::type_proto::Value;
    match vi.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(Value::TensorType(t)) => tensor::is_four_bit(t.elem_type()),
        _ => false,
    }
}

/// Adds the graph inputs that are not initializers, with static shapes.
fn add_inputs(
    imp: &mut Importer,
    graph: &GraphProto,
    initializers: &HashSet<String>,
    opts: &ImportOptions,
) -> Result<(), Problem> {
    let mut seen = HashSet::new();
    for vi in &graph.input {
        let name = vi.name();
        if initializers.contains(name) {
            // The initializer is the value; a declaration must agree with it.
            let init = imp.values.get(name).map(|v| imp.g.value_type(*v).clone());
            if let Some(why) = init.and_then(|t| input_contradicts(vi, &t)) {
                imp.report(Problem::tensor(name, &why))?;
            }
            continue;
        }
        if !seen.insert(name.to_string()) {
            imp.report(Problem::Graph(format!(
                "graph input '{name}' is listed twice"
            )))?;
            continue;
        }
        match input_type(vi, opts.input_shapes.get(name)) {
            Ok(ty) if opts.const_inputs.contains_key(name) => {
                let text = &opts.const_inputs[name];
                match tensor::parse_values(&ty, text) {
                    Ok(t) => {
                        let id = imp.g.add_const(name.to_string(), t);
                        imp.values.insert(name.to_string(), ValueId::of(id));
                    }
                    Err(why) => {
                        imp.report(Problem::Graph(format!("--const-input {name}: {why}")))?;
                        imp.poisoned.insert(name.to_string());
                    }
                }
            }
            Ok(ty) => {
                if vi_is_four_bit(vi) {
                    imp.four_bit.insert(name.to_string());
                }
                imp.notes
                    .extend(leading_batch_note(vi, opts.input_shapes.get(name)));
                let id = imp.g.add_input(name, ty);
                imp.values.insert(name.to_string(), ValueId::of(id));
            }
            Err(p) => {
                imp.report(p)?;
                imp.poisoned.insert(name.to_string());
            }
        }
    }
    let mut names: Vec<&str> = seen.iter().map(String::as_str).collect();
    names.sort();
    for (what, given) in [
        (
            "an input shape",
            opts.input_shapes.keys().collect::<Vec<_>>(),
        ),
        ("a constant", opts.const_inputs.keys().collect()),
    ] {
        let mut extra: Vec<&String> = given.into_iter().filter(|k| !seen.contains(*k)).collect();
        extra.sort();
        for k in extra {
            imp.report(Problem::Graph(format!(
                "{what} is given for '{k}', which is not a graph input (inputs: {})",
                names.join(", ")
            )))?;
        }
    }
    Ok(())
}

/// Translates the nodes in topological order (also those of an If branch
/// that folds: their names live in the same scope).
pub(crate) fn add_nodes(imp: &mut Importer, graph: &GraphProto, opset: i64) -> Result<(), Problem> {
    let available: HashSet<String> = imp
        .values
        .keys()
        .chain(imp.poisoned.iter())
        .cloned()
        .collect();
    let sorted = topo::sort(&graph.node, &available);
    for p in sorted.problems {
        imp.report(p)?;
    }
    let mut done = vec![false; graph.node.len()];
    for &i in &sorted.order {
        done[i] = true;
        let n = &graph.node[i];
        if let Err(p) = ops::validate(n, i, opset, &imp.used) {
            imp.report(p)?;
            // (Collect mode only:) what the node's subgraphs hold too.
            for p in subgraph_problems(n, &topo::node_name(n, i), opset) {
                imp.report(p)?;
            }
            imp.poison(&n.output);
            continue;
        }
        let ready = n
            .input
            .iter()
            .all(|s| s.is_empty() || imp.values.contains_key(s));
        if !ready {
            // Only in collect mode: an input failed or is missing (already reported).
            imp.poison(&n.output);
            continue;
        }
        if let Err(p) = build_node(imp, n, i, opset) {
            // (An If whose branches hold problems fails with the first.)
            let inner = subgraph_problems(n, &topo::node_name(n, i), opset);
            imp.report(p.clone())?;
            for q in inner.into_iter().filter(|q| *q != p) {
                imp.report(q)?;
            }
            imp.poison(&n.output);
        }
    }
    // Nodes on or after a cycle (collect mode): static checks only.
    for (i, n) in graph.node.iter().enumerate().filter(|(i, _)| !done[*i]) {
        if let Err(p) = ops::validate(n, i, opset, &imp.used) {
            imp.report(p)?;
        }
        imp.poison(&n.output);
    }
    Ok(())
}

/// The static problems of the nodes inside node `n`'s graph attributes (If
/// branches, Loop and Scan bodies), recursively, each saying where it sits:
/// `qcc check` lists them with the op that holds them.
pub(crate) fn subgraph_problems(n: &NodeProto, outer: &str, opset: i64) -> Vec<Problem> {
    let mut out = vec![];
    for a in &n.attribute {
        for g in a.g.iter().chain(&a.graphs) {
            let used = used_names(g);
            let place = format!("in the {} of node '{outer}' ({})", a.name(), n.op_type());
            for (j, m) in g.node.iter().enumerate() {
                let inner = ops::validate(m, j, opset, &used).err().into_iter();
                for p in inner.chain(subgraph_problems(m, &topo::node_name(m, j), opset)) {
                    out.push(match p {
                        Problem::Node { node, op, msg } => Problem::Node {
                            node,
                            op,
                            msg: format!("{msg} ({place})"),
                        },
                        other => Problem::Graph(format!("{other} ({place})")),
                    });
                }
            }
        }
    }
    out
}

fn build_node(imp: &mut Importer, n: &NodeProto, i: usize, opset: i64) -> Result<(), Problem> {
    let mut cx = NodeCx {
        imp,
        node: n,
        name: topo::node_name(n, i),
        opset,
        attrs: Attrs(n),
    };
    let outs = ops::build(&mut cx)?;
    for (j, name) in n.output.iter().enumerate() {
        if name.is_empty() {
            continue;
        }
        match outs.get(j) {
            Some(&v) => {
                cx.imp.values.insert(name.clone(), v);
            }
            None if cx.imp.used.contains(name) => {
                return Err(cx.err(format!("output #{j} ('{name}') is not supported")));
            }
            None => {}
        }
    }
    Ok(())
}

/// Adds the graph outputs, checking declared types against inferred ones.
fn add_outputs(imp: &mut Importer, graph: &GraphProto) -> Result<(), Problem> {
    if graph.output.is_empty() {
        imp.report(Problem::Graph("the graph has no outputs".into()))?;
    }
    for vi in &graph.output {
        let name = vi.name();
        if imp.poisoned.contains(name) {
            continue;
        }
        let Some(v) = imp.value(name) else {
            imp.report(Problem::Graph(format!(
                "graph output '{name}' is not produced by any node, initializer or graph input"
            )))?;
            continue;
        };
        let actual = imp.g.value_type(v).clone();
        match output_mismatch(vi, &actual) {
            Some(Err(msg)) => {
                imp.report(Problem::Graph(format!("graph output '{name}' {msg}")))?;
                continue;
            }
            Some(Ok(msg)) => imp.notes.push(format!("graph output '{name}' {msg}")),
            None => {}
        }
        imp.g.add_output(name, v);
    }
    Ok(())
}
