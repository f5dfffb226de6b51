//! What each supported op may be given, by opset: the attributes ONNX
//! defines for it and how many inputs and outputs a node has. The table
//! (`schema_table.rs`) is generated from the ONNX operator schemas by
//! `scripts/op_schema.py`. A node outside it is refused, as ONNX Runtime
//! and `onnx.checker` refuse it, rather than imported with a guessed
//! meaning (an attribute nobody reads, an input nobody uses).

use super::schema_table::SIGS;
use crate::proto::NodeProto;

/// One op's signature.
pub(crate) struct Sig {
    /// Attribute name, first and last opset defining it (99: still defined).
    pub attrs: &'static [(&'static str, i64, i64)],
    /// From an opset on: (min inputs, max inputs, min outputs, max outputs).
    pub arity: &'static [(i64, usize, usize, usize, usize)],
}

fn sig(op: &str) -> Option<&'static Sig> {
    SIGS.iter().find(|(n, _)| *n == op).map(|(_, s)| s)
}

/// Checks node `n`'s attribute names and its input and output counts
/// against what opset `opset` defines for its op (counting empty names
/// of optional inputs and outputs, as the checker does).
pub(crate) fn check(n: &NodeProto, opset: i64) -> Result<(), String> {
    let op = n.op_type();
    let Some(s) = sig(op) else {
        return Ok(());
    };
    for a in &n.attribute {
        let name = a.name();
        match s.attrs.iter().find(|(k, _, _)| *k == name) {
            None => {
                return Err(format!(
                    "attribute '{name}' is not defined for {op} (ONNX Runtime rejects it)"
                ))
            }
            Some(&(_, from, to)) if opset < from || opset > to => {
                let when = if opset < from {
                    format!("from opset {from} on")
                } else {
                    format!("up to opset {to}")
                };
                return Err(format!(
                    "attribute '{name}' of {op} is defined only {when}; the model imports opset {opset}"
                ));
            }
            Some(_) => {}
        }
    }
    let Some(&(_, imin, imax, omin, omax)) = s.arity.iter().rev().find(|a| a.0 <= opset) else {
        return Ok(());
    };
    let count = |what: &str, n: usize, min: usize, max: usize| -> Result<(), String> {
        let plural = |k: usize| if k == 1 { "" } else { "s" };
        if n > max {
            Err(format!(
                "has {n} {what}{}; {op} takes at most {max} at opset {opset}",
                plural(n)
            ))
        } else if n < min {
            Err(format!(
                "has {n} {what}{}; {op} needs at least {min} at opset {opset}",
                plural(n)
            ))
        } else {
            Ok(())
        }
    };
    count("input", n.input.len(), imin, imax)?;
    count("output", n.output.len(), omin, omax)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_supported_op_has_a_signature() {
        let ops: Vec<&str> = super::super::OPS.iter().map(|(n, _)| *n).collect();
        let sigs: Vec<&str> = super::SIGS.iter().map(|(n, _)| *n).collect();
        assert_eq!(ops, sigs, "regenerate with scripts/op_schema.py");
    }
}
