//! Compile-time values of IR values, for parameter inputs (Reshape's shape,
//! Slice's starts…). A value is constant when its producer is a `Const` or
//! every input of its producer is constant; such nodes are evaluated with
//! `qcc_interp::eval_op` on demand and the results cached. The nodes stay in
//! the graph: a later constant-folding pass removes them.

use crate::import::Importer;
use qcc_ir::{NodeId, Op, Tensor, ValueId};

impl Importer {
    /// The value of `v` if it is a compile-time constant; `Ok(None)` if it
    /// depends on a graph input; `Err` if evaluating some node failed.
    pub fn const_value(&mut self, v: ValueId) -> Result<Option<Tensor>, String> {
        if !self.evaluate(v.node)? {
            return Ok(None);
        }
        Ok(self.known(v).cloned())
    }

    /// The value of `v` if it is already known (a `Const` or evaluated).
    fn known(&self, v: ValueId) -> Option<&Tensor> {
        if let Some(t) = self.g.const_value(v) {
            return Some(t);
        }
        self.evaluated.get(&v.node).and_then(|ts| ts.get(v.slot))
    }

    /// Evaluates `root` and everything it needs; `false` if it depends on an input.
    fn evaluate(&mut self, root: NodeId) -> Result<bool, String> {
        let mut stack = vec![(root, false)];
        while let Some((id, expanded)) = stack.pop() {
            if self.evaluated.contains_key(&id) {
                continue;
            }
            let node = self.g.node(id);
            match node.op {
                Op::Const { .. } => continue,
                Op::Input { .. } => return Ok(false),
                _ => {}
            }
            if !expanded {
                stack.push((id, true));
                for v in node.inputs() {
                    if self.known(*v).is_none() {
                        stack.push((v.node, false));
                    }
                }
                continue;
            }
            let mut args = Vec::with_capacity(node.inputs().len());
            for v in node.inputs() {
                match self.known(*v) {
                    Some(t) => args.push(t),
                    None => return Ok(false),
                }
            }
            let out = qcc_interp::eval_op(&node.op, &args, &node.outputs)
                .map_err(|e| format!("evaluating node '{}' failed: {e}", node.name))?;
            if out.len() != node.outputs.len() {
                return Err(format!(
                    "evaluating node '{}' gave {} outputs, expected {}",
                    node.name,
                    out.len(),
                    node.outputs.len()
                ));
            }
            self.evaluated.insert(id, out);
        }
        Ok(true)
    }
}
