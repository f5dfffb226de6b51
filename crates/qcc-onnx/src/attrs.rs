//! Typed access to a node's attributes. Errors name the attribute; the
//! caller adds the node.

use crate::proto::attribute_proto::AttributeType;
use crate::proto::{AttributeProto, NodeProto, TensorProto};

/// The attributes of one node.
#[derive(Clone, Copy)]
pub(crate) struct Attrs<'a>(pub &'a NodeProto);

type R<T> = Result<Option<T>, String>;

/// A tagged attribute holds exactly the value field of its tag (a list tag
/// may hold an empty list, which protobuf cannot tell from no list).
/// Untagged attributes (IR version 1) are left to the typed getters.
fn check_fields(a: &AttributeProto) -> Result<(), String> {
    use AttributeType as T;
    let set = [
        (T::Float, a.f.is_some()),
        (T::Int, a.i.is_some()),
        (T::String, a.s.is_some()),
        (T::Tensor, a.t.is_some()),
        (T::Graph, a.g.is_some()),
        (T::SparseTensor, a.sparse_tensor.is_some()),
        (T::TypeProto, a.tp.is_some()),
        (T::Floats, !a.floats.is_empty()),
        (T::Ints, !a.ints.is_empty()),
        (T::Strings, !a.strings.is_empty()),
        (T::Tensors, !a.tensors.is_empty()),
        (T::Graphs, !a.graphs.is_empty()),
        (T::SparseTensors, !a.sparse_tensors.is_empty()),
        (T::TypeProtos, !a.type_protos.is_empty()),
    ];
    let tag = a.r#type();
    if tag == T::Undefined {
        return Ok(());
    }
    let held: Vec<T> = set.iter().filter(|(_, on)| *on).map(|(t, _)| *t).collect();
    let list = matches!(
        tag,
        T::Floats
            | T::Ints
            | T::Strings
            | T::Tensors
            | T::Graphs
            | T::SparseTensors
            | T::TypeProtos
    );
    if held == [tag] || (held.is_empty() && list) {
        return Ok(());
    }
    let what = if held.is_empty() {
        "no value".to_string()
    } else {
        let names: Vec<&str> = held.iter().map(|t| t.as_str_name()).collect();
        names.join(" and ")
    };
    Err(format!(
        "attribute '{}' is tagged {} but holds {what}",
        a.name(),
        tag.as_str_name()
    ))
}

fn type_name(a: &AttributeProto) -> &'static str {
    a.r#type().as_str_name()
}

impl<'a> Attrs<'a> {
    /// Every attribute has a name, no name appears twice (qcc would
    /// otherwise read the first copy), and a type tag holds its own value
    /// field and no other: ONNX Runtime and the checker reject all three.
    pub fn check_names(&self) -> Result<(), String> {
        let mut seen = std::collections::HashSet::new();
        for a in &self.0.attribute {
            if a.name().is_empty() {
                return Err("an attribute has no name".into());
            }
            if !seen.insert(a.name()) {
                return Err(format!("attribute '{}' is given twice", a.name()));
            }
            check_fields(a)?;
        }
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&'a AttributeProto> {
        self.0.attribute.iter().find(|a| a.name() == name)
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Looks an attribute up and checks its type. IR version 1 files carry no
    /// type tag: there, `present` says whether the value field is set.
    fn typed(
        &self,
        name: &str,
        want: AttributeType,
        present: impl Fn(&AttributeProto) -> bool,
    ) -> Result<Option<&'a AttributeProto>, String> {
        let Some(a) = self.get(name) else {
            return Ok(None);
        };
        if a.ref_attr_name.as_deref().is_some_and(|r| !r.is_empty()) {
            return Err(format!(
                "attribute '{name}' refers to a function attribute, which is not supported"
            ));
        }
        let ok = a.r#type() == want || (a.r#type() == AttributeType::Undefined && present(a));
        if !ok {
            return Err(format!(
                "attribute '{name}' must be {}, got {}",
                want.as_str_name(),
                type_name(a)
            ));
        }
        Ok(Some(a))
    }

    pub fn int(&self, name: &str) -> R<i64> {
        Ok(self
            .typed(name, AttributeType::Int, |a| a.i.is_some())?
            .map(|a| a.i()))
    }

    pub fn float(&self, name: &str) -> R<f32> {
        Ok(self
            .typed(name, AttributeType::Float, |a| a.f.is_some())?
            .map(|a| a.f()))
    }

    pub fn string(&self, name: &str) -> R<String> {
        match self.typed(name, AttributeType::String, |a| a.s.is_some())? {
            None => Ok(None),
            Some(a) => String::from_utf8(a.s().to_vec())
                .map(Some)
                .map_err(|_| format!("attribute '{name}' is not valid UTF-8")),
        }
    }

    pub fn ints(&self, name: &str) -> R<Vec<i64>> {
        Ok(self
            .typed(name, AttributeType::Ints, |a| !a.ints.is_empty())?
            .map(|a| a.ints.clone()))
    }

    pub fn floats(&self, name: &str) -> R<Vec<f32>> {
        Ok(self
            .typed(name, AttributeType::Floats, |a| !a.floats.is_empty())?
            .map(|a| a.floats.clone()))
    }

    pub fn strings(&self, name: &str) -> R<Vec<String>> {
        match self.typed(name, AttributeType::Strings, |a| !a.strings.is_empty())? {
            None => Ok(None),
            Some(a) => a
                .strings
                .iter()
                .map(|s| {
                    String::from_utf8(s.clone())
                        .map_err(|_| format!("attribute '{name}' is not valid UTF-8"))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
        }
    }

    pub fn tensor(&self, name: &str) -> R<&'a TensorProto> {
        Ok(self
            .typed(name, AttributeType::Tensor, |a| a.t.is_some())?
            .and_then(|a| a.t.as_ref()))
    }

    pub fn int_or(&self, name: &str, default: i64) -> Result<i64, String> {
        Ok(self.int(name)?.unwrap_or(default))
    }

    pub fn float_or(&self, name: &str, default: f32) -> Result<f32, String> {
        Ok(self.float(name)?.unwrap_or(default))
    }

    pub fn string_or(&self, name: &str, default: &str) -> Result<String, String> {
        Ok(self.string(name)?.unwrap_or_else(|| default.to_string()))
    }

    /// A 0/1 flag.
    pub fn flag(&self, name: &str, default: bool) -> Result<bool, String> {
        match self.int(name)? {
            None => Ok(default),
            Some(0) => Ok(false),
            Some(1) => Ok(true),
            Some(v) => Err(format!("attribute '{name}' must be 0 or 1, got {v}")),
        }
    }
}

/// Cast's `to` as an ONNX type code: an int from opset 6 on, before that
/// a type name (`"FLOAT"`, `"INT64"`, …).
pub(crate) fn cast_to(a: &Attrs, opset: i64) -> R<i64> {
    if opset >= 6 {
        return a.int("to");
    }
    let Some(name) = a.string("to")? else {
        return Ok(None);
    };
    use crate::proto::tensor_proto::DataType;
    DataType::from_str_name(&name.to_ascii_uppercase())
        .filter(|t| *t != DataType::Undefined)
        .map(|t| Some(t as i64))
        .ok_or_else(|| format!("attribute 'to': unknown type name '{name}'"))
}
