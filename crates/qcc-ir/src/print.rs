//! The IR printer: a stable, diffable text form used by `qcc dump` and snapshots.
//!
//! Values are numbered `%0, %1, …` in topological order (multi-output nodes
//! print `%3.1`), so dumps do not depend on internal node indices.

use crate::graph::{Graph, ValueId};
use crate::op::Op;
use std::collections::HashMap;
use std::fmt::Write;

/// Renders the graph as text. Fails only if the graph has a cycle.
pub fn print(g: &Graph) -> Result<String, crate::IrError> {
    // Graph inputs first, then everything else in topological order.
    let mut order: Vec<_> = g.inputs().to_vec();
    order.extend(
        g.topo_order()?
            .into_iter()
            .filter(|id| !matches!(g.node(*id).op, Op::Input { .. })),
    );
    let mut num = HashMap::new();
    for (i, id) in order.iter().enumerate() {
        num.insert(*id, i);
    }
    let val = |v: &ValueId| -> String {
        let n = num[&v.node];
        if g.node(v.node).outputs.len() > 1 {
            format!("%{n}.{}", v.slot)
        } else {
            format!("%{n}")
        }
    };
    let mut s = String::new();
    let ins: Vec<String> = g
        .inputs()
        .iter()
        .map(|id| {
            let n = g.node(*id);
            format!("%{}: {} {:?}", num[id], n.outputs[0], n.name)
        })
        .collect();
    let _ = writeln!(s, "graph {:?}({}) {{", g.name, ins.join(", "));
    for id in &order {
        let n = g.node(*id);
        if matches!(n.op, Op::Input { .. }) {
            continue;
        }
        let lhs: Vec<String> = (0..n.outputs.len())
            .map(|slot| val(&ValueId { node: *id, slot }))
            .collect();
        let mut rhs = n.op.name().to_string();
        if let Op::Const { weight } = n.op {
            let _ = write!(rhs, " {weight}");
            let t = g.weight(weight);
            if t.numel() <= 8 {
                let _ = write!(rhs, " {}", short_values(t));
            }
        }
        let args: Vec<String> = n.inputs().iter().map(val).collect();
        if !args.is_empty() {
            let _ = write!(rhs, " {}", args.join(", "));
        }
        let attrs = n.op.attrs();
        if !attrs.is_empty() {
            let a: Vec<String> = attrs.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let _ = write!(rhs, " {{{}}}", a.join(", "));
        }
        let tys: Vec<String> = n.outputs.iter().map(|t| t.to_string()).collect();
        let _ = writeln!(
            s,
            "  {} = {} : {}  # {}",
            lhs.join(", "),
            rhs,
            tys.join(", "),
            n.name
        );
    }
    let outs: Vec<String> = g
        .outputs
        .iter()
        .map(|o| format!("{} {:?}", val(&o.value), o.name))
        .collect();
    let _ = writeln!(s, "  return {}", outs.join(", "));
    s.push_str("}\n");
    Ok(s)
}

fn short_values(t: &crate::Tensor) -> String {
    use crate::TensorData::*;
    let items: Vec<String> = match t.data() {
        F32(v) => v.iter().map(|x| format!("{x}")).collect(),
        I64(v) => v.iter().map(|x| x.to_string()).collect(),
        I32(v) => v.iter().map(|x| x.to_string()).collect(),
        I8(v) => v.iter().map(|x| x.to_string()).collect(),
        U8(v) => v.iter().map(|x| x.to_string()).collect(),
        Bool(v) => v.iter().map(|x| x.to_string()).collect(),
    };
    format!("[{}]", items.join(","))
}
