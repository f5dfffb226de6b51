//! The graph: nodes on a petgraph `StableGraph`, addressed by typed ids.
//!
//! **Invariant:** a node's `inputs` list is authoritative and the petgraph
//! edges mirror it exactly; only methods of [`Graph`] change either, so they
//! never disagree. Passes see [`NodeId`] and [`ValueId`], never `NodeIndex`.

use crate::error::IrError;
use crate::infer::infer;
use crate::op::Op;
use crate::tensor::Tensor;
use crate::types::TensorType;
use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use petgraph::visit::EdgeRef;
use petgraph::Direction;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;

/// A node of the graph. Stable across removals of other nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(NodeIndex<u32>);

impl NodeId {
    pub fn index(self) -> usize {
        self.0.index()
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0.index())
    }
}

/// One output of one node: the unit of dataflow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ValueId {
    pub node: NodeId,
    pub slot: usize,
}

impl ValueId {
    /// The single output of `node`.
    pub fn of(node: NodeId) -> ValueId {
        ValueId { node, slot: 0 }
    }
}

/// An entry of the graph's weight table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WeightId(pub u32);

impl fmt::Display for WeightId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "@w{}", self.0)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub op: Op,
    /// The ONNX node name (or a generated one); used in error messages and dumps.
    pub name: String,
    inputs: Vec<ValueId>,
    /// One type per output slot.
    pub outputs: Vec<TensorType>,
}

impl Node {
    pub fn inputs(&self) -> &[ValueId] {
        &self.inputs
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct GraphOutput {
    pub name: String,
    pub value: ValueId,
}

/// Edge weight: (producer slot, consumer input index).
#[derive(Clone, Copy, Debug)]
struct Edge {
    slot: usize,
    input: usize,
}

#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub name: String,
    g: StableDiGraph<Node, Edge, u32>,
    inputs: Vec<NodeId>,
    pub outputs: Vec<GraphOutput>,
    weights: Vec<Tensor>,
}

impl Graph {
    pub fn new(name: impl Into<String>) -> Self {
        Graph {
            name: name.into(),
            ..Default::default()
        }
    }

    /// Adds graph input number `inputs().len()`.
    pub fn add_input(&mut self, name: impl Into<String>, ty: TensorType) -> NodeId {
        let index = self.inputs.len();
        let id = self.insert(Op::Input { index }, name.into(), vec![], vec![ty]);
        self.inputs.push(id);
        id
    }

    /// Adds a weight to the table and a `Const` node reading it.
    pub fn add_const(&mut self, name: impl Into<String>, t: Tensor) -> NodeId {
        let ty = t.ty();
        let weight = self.add_weight(t);
        self.insert(Op::Const { weight }, name.into(), vec![], vec![ty])
    }

    pub fn add_weight(&mut self, t: Tensor) -> WeightId {
        self.weights.push(t);
        WeightId(self.weights.len() as u32 - 1)
    }

    pub fn weight(&self, w: WeightId) -> &Tensor {
        &self.weights[w.0 as usize]
    }

    pub fn weights(&self) -> &[Tensor] {
        &self.weights
    }

    /// Adds a node, inferring its output types from its inputs' types.
    pub fn add_node(
        &mut self,
        op: Op,
        name: impl Into<String>,
        inputs: Vec<ValueId>,
    ) -> Result<NodeId, IrError> {
        let name = name.into();
        for v in &inputs {
            self.check_value(*v, &name)?;
        }
        let tys: Vec<&TensorType> = inputs.iter().map(|v| self.value_type(*v)).collect();
        let outputs = infer(&op, &tys).map_err(|msg| IrError::Shape {
            node: name.clone(),
            op: op.name(),
            msg,
        })?;
        Ok(self.insert(op, name, inputs, outputs))
    }

    /// Adds a node with given output types; the verifier checks them later.
    pub fn add_node_typed(
        &mut self,
        op: Op,
        name: impl Into<String>,
        inputs: Vec<ValueId>,
        outputs: Vec<TensorType>,
    ) -> NodeId {
        self.insert(op, name.into(), inputs, outputs)
    }

    fn check_value(&self, v: ValueId, user: &str) -> Result<(), IrError> {
        match self.g.node_weight(v.node.0) {
            Some(n) if v.slot < n.outputs.len() => Ok(()),
            _ => Err(IrError::Verify {
                node: user.to_string(),
                msg: format!("uses nonexistent value {v:?}"),
            }),
        }
    }

    fn insert(
        &mut self,
        op: Op,
        name: String,
        inputs: Vec<ValueId>,
        outputs: Vec<TensorType>,
    ) -> NodeId {
        let id = NodeId(self.g.add_node(Node {
            op,
            name,
            inputs: inputs.clone(),
            outputs,
        }));
        for (i, v) in inputs.iter().enumerate() {
            self.g.add_edge(
                v.node.0,
                id.0,
                Edge {
                    slot: v.slot,
                    input: i,
                },
            );
        }
        id
    }

    pub fn add_output(&mut self, name: impl Into<String>, value: ValueId) {
        self.outputs.push(GraphOutput {
            name: name.into(),
            value,
        });
    }

    /// Graph inputs, in ONNX order.
    pub fn inputs(&self) -> &[NodeId] {
        &self.inputs
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.g[id.0]
    }

    /// Mutable access to a node's op, name and output types (not its inputs).
    pub fn node_mut(&mut self, id: NodeId) -> &mut Node {
        &mut self.g[id.0]
    }

    pub fn contains(&self, id: NodeId) -> bool {
        self.g.contains_node(id.0)
    }

    pub fn node_count(&self) -> usize {
        self.g.node_count()
    }

    /// All node ids in index order (deterministic).
    pub fn node_ids(&self) -> Vec<NodeId> {
        let mut v: Vec<NodeId> = self.g.node_indices().map(NodeId).collect();
        v.sort();
        v
    }

    pub fn value_type(&self, v: ValueId) -> &TensorType {
        &self.g[v.node.0].outputs[v.slot]
    }

    /// The constant behind a value, if its producer is a `Const` node.
    pub fn const_value(&self, v: ValueId) -> Option<&Tensor> {
        match self.g[v.node.0].op {
            Op::Const { weight } => Some(self.weight(weight)),
            _ => None,
        }
    }

    /// The value of a one-element f32 constant.
    pub fn const_scalar(&self, v: ValueId) -> Option<f32> {
        match self.const_value(v)?.as_f32()? {
            [x] => Some(*x),
            _ => None,
        }
    }

    /// Consumers of a value as `(node, input index)`, sorted.
    pub fn users(&self, v: ValueId) -> Vec<(NodeId, usize)> {
        let mut u: Vec<(NodeId, usize)> = self
            .g
            .edges_directed(v.node.0, Direction::Outgoing)
            .filter(|e| e.weight().slot == v.slot)
            .map(|e| (NodeId(e.target()), e.weight().input))
            .collect();
        u.sort();
        u
    }

    /// Whether a value is one of the graph outputs.
    pub fn is_output(&self, v: ValueId) -> bool {
        self.outputs.iter().any(|o| o.value == v)
    }

    /// Rewires input `index` of `node` to read `value`.
    pub fn set_input(&mut self, node: NodeId, index: usize, value: ValueId) {
        let old = self.g[node.0].inputs[index];
        if let Some(e) = self
            .g
            .edges_directed(node.0, Direction::Incoming)
            .find(|e| e.source() == old.node.0 && e.weight().input == index)
            .map(|e| e.id())
        {
            self.g.remove_edge(e);
        }
        self.g[node.0].inputs[index] = value;
        self.g.add_edge(
            value.node.0,
            node.0,
            Edge {
                slot: value.slot,
                input: index,
            },
        );
        // A layout op now moves other integers: it inherits their parameters.
        let n = &self.g[node.0];
        if index == 0
            && n.op.keeps_quant()
            && crate::infer::int8_range(n.outputs[0].dtype).is_some()
        {
            let q = self.value_type(value).quant;
            self.set_quant(ValueId::of(node), q);
        }
    }

    /// Makes every user of `old` (graph outputs included) read `new` instead.
    /// Quantization parameters of graph input `index` (when it is 8-bit).
    pub fn input_quant(&self, index: usize) -> Option<crate::quant::QParams> {
        let id = self.inputs().get(index)?;
        self.value_type(ValueId::of(*id)).quant
    }

    /// Quantization parameters of graph output `index` (when it is 8-bit).
    pub fn output_quant(&self, index: usize) -> Option<crate::quant::QParams> {
        let v = self.outputs.get(index)?.value;
        self.contains(v.node)
            .then(|| self.value_type(v).quant)
            .flatten()
    }

    /// Sets the quantization parameters of value `v`'s type, and of the
    /// values downstream that inherit them (8-bit outputs of
    /// [`Op::keeps_quant`] ops reading `v` first).
    pub fn set_quant(&mut self, v: ValueId, q: Option<crate::quant::QParams>) {
        let mut todo = vec![v];
        while let Some(v) = todo.pop() {
            let Some(t) = self.g[v.node.0].outputs.get_mut(v.slot) else {
                continue;
            };
            if t.quant == q {
                continue;
            }
            t.quant = q;
            for (u, i) in self.users(v) {
                let n = self.node(u);
                if i == 0
                    && n.op.keeps_quant()
                    && crate::infer::int8_range(n.outputs[0].dtype).is_some()
                {
                    todo.push(ValueId::of(u));
                }
            }
        }
    }

    /// Sets the per-channel quantization parameters of constant `v`'s type.
    pub fn set_axis_quant(&mut self, v: ValueId, q: Option<crate::types::AxisQuant>) {
        if let Some(t) = self.g[v.node.0].outputs.get_mut(v.slot) {
            t.axis_quant = q.map(Box::new);
        }
    }

    pub fn replace_all_uses(&mut self, old: ValueId, new: ValueId) {
        for (node, index) in self.users(old) {
            self.set_input(node, index, new);
        }
        for o in &mut self.outputs {
            if o.value == old {
                o.value = new;
            }
        }
    }

    /// Removes a node. Its outputs must have no users left (checked by the verifier).
    pub fn remove_node(&mut self, id: NodeId) -> Option<Node> {
        let n = self.g.remove_node(id.0)?;
        self.inputs.retain(|&i| i != id);
        Some(n)
    }

    /// Nodes in a deterministic topological order (lowest index first among ready nodes).
    pub fn topo_order(&self) -> Result<Vec<NodeId>, IrError> {
        let mut indeg: std::collections::HashMap<NodeIndex<u32>, usize> = self
            .g
            .node_indices()
            .map(|n| (n, self.g.edges_directed(n, Direction::Incoming).count()))
            .collect();
        let mut ready: BinaryHeap<Reverse<NodeIndex<u32>>> = indeg
            .iter()
            .filter(|(_, &d)| d == 0)
            .map(|(&n, _)| Reverse(n))
            .collect();
        let mut order = Vec::with_capacity(indeg.len());
        while let Some(Reverse(n)) = ready.pop() {
            order.push(NodeId(n));
            for e in self.g.edges_directed(n, Direction::Outgoing) {
                let d = indeg.get_mut(&e.target()).expect("edge to a live node");
                *d -= 1;
                if *d == 0 {
                    ready.push(Reverse(e.target()));
                }
            }
        }
        if order.len() != self.g.node_count() {
            let stuck = self
                .g
                .node_indices()
                .find(|n| indeg[n] > 0)
                .map(|n| self.g[n].name.clone())
                .unwrap_or_default();
            return Err(IrError::Cycle { node: stuck });
        }
        Ok(order)
    }

    /// Drops weights no `Const` node references and renumbers the rest in use order.
    pub fn prune_weights(&mut self) {
        let mut map = std::collections::HashMap::new();
        let mut kept = Vec::new();
        for id in self.node_ids() {
            if let Op::Const { weight } = self.g[id.0].op {
                let new = *map.entry(weight).or_insert_with(|| {
                    kept.push(self.weights[weight.0 as usize].clone());
                    WeightId(kept.len() as u32 - 1)
                });
                self.g[id.0].op = Op::Const { weight: new };
            }
        }
        self.weights = kept;
    }

    /// Removes nodes whose outputs nobody uses (graph inputs are kept). Returns how many.
    pub fn remove_dead_nodes(&mut self) -> usize {
        let mut removed = 0;
        loop {
            let dead: Vec<NodeId> = self
                .node_ids()
                .into_iter()
                .filter(|&id| {
                    !matches!(self.node(id).op, Op::Input { .. })
                        && self
                            .g
                            .edges_directed(id.0, Direction::Outgoing)
                            .next()
                            .is_none()
                        && !self.outputs.iter().any(|o| o.value.node == id)
                })
                .collect();
            if dead.is_empty() {
                break;
            }
            for id in dead {
                self.g.remove_node(id.0);
                removed += 1;
            }
        }
        removed
    }
}
