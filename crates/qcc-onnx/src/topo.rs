//! Orders the ONNX nodes topologically (ONNX requires it, qcc does not trust
//! it) and finds inputs nobody produces, duplicate producers and cycles.

use crate::error::Problem;
use crate::proto::NodeProto;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};

/// The name a node is reported under: its own, else its first output's, else `<op>_<index>`.
pub(crate) fn node_name(n: &NodeProto, index: usize) -> String {
    if !n.name().is_empty() {
        n.name().to_string()
    } else if let Some(o) = n.output.iter().find(|o| !o.is_empty()) {
        o.clone()
    } else {
        format!("{}_{index}", n.op_type())
    }
}

pub(crate) fn node_problem(n: &NodeProto, index: usize, msg: impl Into<String>) -> Problem {
    Problem::Node {
        node: node_name(n, index),
        op: n.op_type().to_string(),
        msg: msg.into(),
    }
}

/// Result of sorting: the nodes that can run, in order, and what is wrong.
pub(crate) struct Sorted {
    /// Node indices in a topological order (nodes on or after a cycle are left out).
    pub order: Vec<usize>,
    /// Problems, in node order, then the cycle if any.
    pub problems: Vec<Problem>,
}

/// Sorts `nodes`; `available` are the names of initializers and graph inputs.
pub(crate) fn sort(nodes: &[NodeProto], available: &HashSet<String>) -> Sorted {
    let mut problems = Vec::new();
    let mut producer: HashMap<&str, usize> = HashMap::new();
    for (i, n) in nodes.iter().enumerate() {
        for o in n.output.iter().filter(|o| !o.is_empty()) {
            if available.contains(o) {
                problems.push(node_problem(
                    n,
                    i,
                    format!("output '{o}' has the name of an initializer or graph input"),
                ));
            } else if let Some(&j) = producer.get(o.as_str()) {
                problems.push(node_problem(
                    n,
                    i,
                    format!(
                        "output '{o}' is also produced by node '{}'",
                        node_name(&nodes[j], j)
                    ),
                ));
            } else {
                producer.insert(o, i);
            }
        }
    }
    let mut users: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    let mut indeg = vec![0usize; nodes.len()];
    for (i, n) in nodes.iter().enumerate() {
        for name in n.input.iter().filter(|s| !s.is_empty()) {
            if let Some(&j) = producer.get(name.as_str()) {
                users[j].push(i);
                indeg[i] += 1;
            } else if !available.contains(name) {
                problems.push(node_problem(
                    n,
                    i,
                    format!(
                        "input '{name}' is not produced by any node, initializer or graph input"
                    ),
                ));
            }
        }
    }
    let mut ready: BinaryHeap<Reverse<usize>> = (0..nodes.len())
        .filter(|&i| indeg[i] == 0)
        .map(Reverse)
        .collect();
    let mut order = Vec::with_capacity(nodes.len());
    while let Some(Reverse(i)) = ready.pop() {
        order.push(i);
        for &u in &users[i] {
            indeg[u] -= 1;
            if indeg[u] == 0 {
                ready.push(Reverse(u));
            }
        }
    }
    if let Some(start) = (0..nodes.len()).find(|&i| indeg[i] > 0) {
        // Walk producers among the stuck nodes until one repeats: it is on a cycle.
        let mut seen = HashSet::new();
        let mut cur = start;
        while seen.insert(cur) {
            let pred = nodes[cur]
                .input
                .iter()
                .filter_map(|s| producer.get(s.as_str()))
                .find(|&&j| indeg[j] > 0);
            match pred {
                Some(&j) => cur = j,
                None => break,
            }
        }
        problems.push(Problem::Graph(format!(
            "the graph has a cycle through node '{}' ({})",
            node_name(&nodes[cur], cur),
            nodes[cur].op_type()
        )));
    }
    Sorted { order, problems }
}
