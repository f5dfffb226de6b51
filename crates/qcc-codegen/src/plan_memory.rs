//! A static, liveness-based memory plan for the workspace arena: the last
//! step before lowering, here beside the kernels whose scratch it places
//! (`mmm::node_scratch`).
//!
//! Needs: a verified graph. Guarantees: every value has a [`Location`];
//! values placed in the arena whose lifetimes overlap never share bytes;
//! every arena offset is a multiple of [`WORKSPACE_ALIGN`].
//!
//! A `Reshape` whose output is not a graph output takes no memory of its own:
//! it aliases its input's storage, whose lifetime is extended to cover every
//! alias. A graph output is written straight into the caller's output buffer.

use qcc_ir::{Graph, IrError, NodeId, Op, ValueId, WeightId};
use std::collections::{BTreeMap, HashMap};

/// Alignment of the workspace and of every tensor placed in it.
pub const WORKSPACE_ALIGN: usize = 64;

/// Where a value lives at run time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Location {
    /// The caller's input buffer number `i` (read-only).
    Input(usize),
    /// The caller's output buffer number `j`.
    Output(usize),
    /// A read-only constant from the weight table.
    Const(WeightId),
    /// Bytes `[offset, offset + size)` of the workspace.
    Arena { offset: usize },
}

#[derive(Clone, Debug, Default)]
pub struct MemoryPlan {
    /// Bytes of workspace the caller must provide (a multiple of the alignment; 0 if none needed).
    pub workspace_size: usize,
    /// Every value's location.
    pub locations: HashMap<ValueId, Location>,
    /// Nodes in execution order.
    pub order: Vec<NodeId>,
    /// Workspace offset of each node's private scratch (only nodes that asked for some).
    pub scratch: HashMap<NodeId, usize>,
}

impl MemoryPlan {
    pub fn location(&self, v: ValueId) -> Location {
        self.locations[&v]
    }
}

/// Whether `node` is a Reshape that aliases its input rather than copying.
pub fn is_alias(g: &Graph, node: NodeId) -> bool {
    matches!(g.node(node).op, Op::Reshape { .. }) && !g.is_output(ValueId::of(node))
}

/// Computes the plan.
pub fn plan(g: &Graph) -> Result<MemoryPlan, IrError> {
    plan_with_scratch(g, &|_| 0)
}

/// What the arena holds: a value's storage, or a node's scratch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Item {
    Value(ValueId),
    Scratch(NodeId),
}

/// Computes the plan, giving each node the `scratch(node)` bytes of
/// workspace it asks for, alive only while that node runs (a kernel's
/// packing buffers). The header's workspace size includes them.
pub fn plan_with_scratch(
    g: &Graph,
    scratch: &dyn Fn(NodeId) -> usize,
) -> Result<MemoryPlan, IrError> {
    let order = g.topo_order()?;
    let pos: HashMap<NodeId, usize> = order.iter().enumerate().map(|(i, n)| (*n, i)).collect();

    // Storage root of every value, following aliasing reshapes.
    let mut root: HashMap<ValueId, ValueId> = HashMap::new();
    for &id in &order {
        let n = g.node(id);
        for slot in 0..n.outputs.len() {
            let v = ValueId { node: id, slot };
            let r = if is_alias(g, id) {
                root[&n.inputs()[0]]
            } else {
                v
            };
            root.insert(v, r);
        }
    }

    // Lifetime of each root: from its definition to the last use of any alias.
    let mut life: BTreeMap<ValueId, (usize, usize)> = BTreeMap::new();
    for &id in &order {
        let n = g.node(id);
        for slot in 0..n.outputs.len() {
            let v = ValueId { node: id, slot };
            let r = root[&v];
            let e = life.entry(r).or_insert((pos[&id], pos[&id]));
            e.1 = e.1.max(pos[&id]);
        }
        for v in n.inputs() {
            let e = life.get_mut(&root[v]).expect("inputs defined before use");
            e.1 = e.1.max(pos[&id]);
        }
    }

    let mut locations = HashMap::new();
    let mut arena_vals = vec![];
    for (&r, &(start, end)) in &life {
        let n = g.node(r.node);
        let loc = match n.op {
            Op::Input { index } => Some(Location::Input(index)),
            Op::Const { weight } => Some(Location::Const(weight)),
            _ => g
                .outputs
                .iter()
                .position(|o| o.value == r)
                .map(Location::Output),
        };
        match loc {
            Some(l) => {
                locations.insert(r, l);
            }
            None => arena_vals.push((Item::Value(r), start, end, g.value_type(r).byte_size())),
        }
    }
    for &id in &order {
        let bytes = scratch(id);
        if bytes > 0 {
            arena_vals.push((Item::Scratch(id), pos[&id], pos[&id], bytes));
        }
    }
    let mut scratch_at = HashMap::new();

    // Greedy placement, largest first (ties by definition order): lowest aligned
    // offset that does not overlap any already-placed value alive at the same time.
    // `placed` stays sorted by offset, so one pass over it finds the gap (no
    // sort or allocation per value: wide graphs stay fast).
    arena_vals.sort_by(|a, b| b.3.cmp(&a.3).then(a.1.cmp(&b.1)).then(a.0.cmp(&b.0)));
    let mut placed: Vec<(usize, usize, usize, usize)> = vec![]; // (offset, size, start, end)
    let mut total = 0;
    for (r, start, end, size) in arena_vals {
        let mut offset = 0;
        for &(lo, len, s, e) in &placed {
            if s > end || start > e {
                continue;
            }
            if offset + size <= lo {
                break;
            }
            offset = offset.max((lo + len).next_multiple_of(WORKSPACE_ALIGN));
        }
        let at = placed.partition_point(|p| p.0 <= offset);
        placed.insert(at, (offset, size, start, end));
        total = total.max(offset + size);
        match r {
            Item::Value(v) => {
                locations.insert(v, Location::Arena { offset });
            }
            Item::Scratch(n) => {
                scratch_at.insert(n, offset);
            }
        }
    }

    for (v, r) in &root {
        let l = locations[r];
        locations.insert(*v, l);
    }
    Ok(MemoryPlan {
        workspace_size: total.next_multiple_of(WORKSPACE_ALIGN),
        locations,
        order,
        scratch: scratch_at,
    })
}
