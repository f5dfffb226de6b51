//! [`NodeCx`]: what an op builder sees of the ONNX node it translates —
//! inputs as IR values, constant parameters, attributes — and how it adds
//! IR nodes. Every error it makes names the node.

use crate::attrs::Attrs;
use crate::error::Problem;
use crate::import::Importer;
use crate::proto::NodeProto;
use qcc_ir::{Op, Tensor, TensorType, ValueId};

/// One ONNX node being translated.
pub(crate) struct NodeCx<'a, 'm> {
    pub imp: &'a mut Importer,
    pub node: &'m NodeProto,
    /// The name errors and IR nodes use.
    pub name: String,
    /// The model's default-domain opset.
    pub opset: i64,
    pub attrs: Attrs<'m>,
}

impl NodeCx<'_, '_> {
    /// A problem located at this node.
    pub fn err(&self, msg: impl Into<String>) -> Problem {
        Problem::Node {
            node: self.name.clone(),
            op: self.node.op_type().to_string(),
            msg: msg.into(),
        }
    }

    /// Maps an attribute error (which names the attribute) to a node problem.
    pub fn attr<T>(&self, r: Result<T, String>) -> Result<T, Problem> {
        r.map_err(|m| self.err(m))
    }

    /// Whether input `i` is an initializer stored as int4 or uint4.
    pub fn input_is_four_bit(&self, i: usize) -> bool {
        self.input_name(i)
            .is_some_and(|n| self.imp.four_bit.contains(n))
    }

    /// The ONNX name of input `i`, if present and not the empty "absent" name.
    pub fn input_name(&self, i: usize) -> Option<&str> {
        self.node
            .input
            .get(i)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }

    pub fn has_input(&self, i: usize) -> bool {
        self.input_name(i).is_some()
    }

    /// Number of input slots, absent ones included.
    pub fn num_inputs(&self) -> usize {
        self.node.input.len()
    }

    /// Optional input `i` as an IR value.
    pub fn opt_input(&self, i: usize) -> Result<Option<ValueId>, Problem> {
        match self.input_name(i) {
            None => Ok(None),
            Some(name) => match self.imp.value(name) {
                Some(v) => Ok(Some(v)),
                None => Err(self.err(format!(
                    "input '{name}' is not produced by any node, initializer or graph input"
                ))),
            },
        }
    }

    /// Required input `i` as an IR value.
    pub fn input(&self, i: usize) -> Result<ValueId, Problem> {
        self.opt_input(i)?
            .ok_or_else(|| self.err(format!("required input #{i} is missing")))
    }

    /// Every present input, in order.
    pub fn present_inputs(&self) -> Result<Vec<ValueId>, Problem> {
        (0..self.num_inputs())
            .filter(|&i| self.has_input(i))
            .map(|i| self.input(i))
            .collect()
    }

    /// The type of an IR value.
    pub fn ty(&self, v: ValueId) -> TensorType {
        self.imp.g.value_type(v).clone()
    }

    /// Optional parameter input `i` (called `what` in errors) that must be a compile-time constant.
    pub fn const_input(&mut self, i: usize, what: &str) -> Result<Option<Tensor>, Problem> {
        let Some(v) = self.opt_input(i)? else {
            return Ok(None);
        };
        match self.imp.const_value(v) {
            Ok(Some(t)) => Ok(Some(t)),
            Ok(None) => Err(self.err(format!("input '{what}' must be a compile-time constant"))),
            Err(why) => Err(self.err(format!(
                "input '{what}' must be a compile-time constant ({why})"
            ))),
        }
    }

    /// Optional integer parameter input as i64 values.
    pub fn const_ints(&mut self, i: usize, what: &str) -> Result<Option<Vec<i64>>, Problem> {
        match self.const_input(i, what)? {
            None => Ok(None),
            // Every integer-list input ONNX defines (axes, shape, pads, split,
            // starts…) is 1-D; a scalar is read as one value.
            Some(t) if t.shape().len() > 1 => Err(self.err(format!(
                "input '{what}' must be a 1-D tensor, got {}",
                t.ty()
            ))),
            Some(t) => t
                .to_i64_vec()
                .map(Some)
                .ok_or_else(|| self.err(format!("input '{what}' must be an integer tensor"))),
        }
    }

    /// Optional float scalar parameter (a one-element tensor of any numeric type).
    pub fn const_scalar(&mut self, i: usize, what: &str) -> Result<Option<f32>, Problem> {
        match self.const_input(i, what)? {
            None => Ok(None),
            Some(t) if t.numel() == 1 => Ok(Some(t.to_f32_vec()[0])),
            Some(t) => Err(self.err(format!(
                "input '{what}' must hold one value, got {}",
                t.ty()
            ))),
        }
    }

    /// Adds the IR node that carries this ONNX node's name.
    pub fn add(&mut self, op: Op, inputs: Vec<ValueId>) -> Result<ValueId, Problem> {
        let name = self.name.clone();
        self.add_as(name, op, inputs)
    }

    /// Adds a helper IR node named `<node>/<suffix>`.
    pub fn add_aux(
        &mut self,
        suffix: &str,
        op: Op,
        inputs: Vec<ValueId>,
    ) -> Result<ValueId, Problem> {
        let name = format!("{}/{suffix}", self.name);
        self.add_as(name, op, inputs)
    }

    fn add_as(&mut self, name: String, op: Op, inputs: Vec<ValueId>) -> Result<ValueId, Problem> {
        match self.imp.g.add_node(op, name, inputs) {
            Ok(id) => Ok(ValueId::of(id)),
            Err(qcc_ir::IrError::Shape { msg, .. }) => Err(self.err(msg)),
            Err(e) => Err(self.err(e.to_string())),
        }
    }

    /// Adds a constant named after this node (with a suffix).
    /// Books `ty`'s bytes against the model's budget for constants the
    /// importer generates (`MAX_GENERATED_BYTES`), before building it.
    pub fn generate(&mut self, ty: &qcc_ir::TensorType) -> Result<(), Problem> {
        let max = crate::ops::MAX_GENERATED_BYTES;
        let bytes = ty
            .shape
            .iter()
            .try_fold(ty.dtype.size() as u128, |a, &d| a.checked_mul(d as u128))
            .unwrap_or(u128::MAX);
        let total = self.imp.generated.saturating_add(bytes);
        if total > max {
            return Err(self.err(format!(
                "{ty} would bring the constants this model generates (ConstantOfShape, \
                 Range, Expand) to {total} bytes, more than the {max} qcc builds"
            )));
        }
        self.imp.generated = total;
        Ok(())
    }

    pub fn add_const(&mut self, suffix: &str, t: Tensor) -> ValueId {
        let name = if suffix.is_empty() {
            self.name.clone()
        } else {
            format!("{}/{suffix}", self.name)
        };
        ValueId::of(self.imp.g.add_const(name, t))
    }

    /// A same-shape `Reshape`: how Identity-like nodes are expressed.
    pub fn identity(&mut self, v: ValueId) -> Result<ValueId, Problem> {
        let shape = self.ty(v).shape;
        self.add(Op::Reshape { shape }, vec![v])
    }

    /// Normalizes a possibly negative axis for a tensor of rank `rank`.
    pub fn axis(&self, axis: i64, rank: usize, what: &str) -> Result<usize, Problem> {
        norm_axis(axis, rank)
            .ok_or_else(|| self.err(format!("{what} {axis} is out of range for rank {rank}")))
    }

    /// Normalizes a list of axes, refusing duplicates.
    pub fn axes(&self, axes: &[i64], rank: usize, what: &str) -> Result<Vec<usize>, Problem> {
        let mut out = Vec::with_capacity(axes.len());
        for &a in axes {
            let a = self.axis(a, rank, what)?;
            if out.contains(&a) {
                return Err(self.err(format!("{what} {axes:?} repeat axis {a}")));
            }
            out.push(a);
        }
        Ok(out)
    }

    /// Converts a list of non-negative integers (strides, pads, kernel…).
    pub fn usizes(&self, v: &[i64], what: &str) -> Result<Vec<usize>, Problem> {
        v.iter()
            .map(|&x| {
                usize::try_from(x)
                    .map_err(|_| self.err(format!("{what} {v:?} has a negative entry")))
            })
            .collect()
    }
}

/// `axis` in `[-rank, rank)` → `[0, rank)`.
pub(crate) fn norm_axis(axis: i64, rank: usize) -> Option<usize> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    (0..r).contains(&a).then_some(a as usize)
}
