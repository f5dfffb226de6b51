//! Einsum of one or two operands, as the ops it amounts to: ReduceSum over
//! the letters only one operand has and the output lacks, then a batched
//! MatMul (`[batch, left, contracted] @ [batch, contracted, right]`) between
//! Transposes and Reshapes. Ellipses are expanded to the dims they stand
//! for. A letter repeated within one operand (a diagonal) is refused.

use super::R;
use crate::error::Problem;
use crate::node::NodeCx;
use qcc_ir::{Op, ReduceOp, ValueId};
use std::collections::HashMap;

/// Stand-ins for the dims of an ellipsis (not einsum letters, so no clash).
const ELLIPSIS_DIMS: &str = "0123456789";

/// One operand's letters, its ellipsis expanded for `rank` dims.
fn expand(
    cx: &NodeCx,
    term: &str,
    rank: usize,
    ell: &mut Option<usize>,
) -> Result<Vec<char>, Problem> {
    let bad = |m: String| cx.err(format!("equation term '{term}': {m}"));
    let Some(at) = term.find("...") else {
        let t: Vec<char> = term.chars().collect();
        if t.len() != rank {
            return Err(bad(format!(
                "{} letters for an input of rank {rank}",
                t.len()
            )));
        }
        return Ok(t);
    };
    let (pre, post) = (&term[..at], &term[at + 3..]);
    let named = pre.chars().count() + post.chars().count();
    let Some(n) = rank.checked_sub(named) else {
        return Err(bad(format!("{named} letters for an input of rank {rank}")));
    };
    if n > ELLIPSIS_DIMS.len() || ell.is_some_and(|e| e != n) {
        return Err(bad(format!(
            "an ellipsis of {n} dims is not supported here"
        )));
    }
    *ell = Some(n);
    let dims: Vec<char> = ELLIPSIS_DIMS
        .chars()
        .skip(ELLIPSIS_DIMS.len() - n)
        .collect();
    Ok(pre.chars().chain(dims).chain(post.chars()).collect())
}

pub(super) fn einsum(cx: &mut NodeCx) -> R {
    let eq: String = cx
        .attr(cx.attrs.string("equation"))?
        .ok_or_else(|| cx.err("attribute 'equation' is missing"))?
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let (lhs, rhs) = match eq.split_once("->") {
        Some((l, r)) => (l.to_string(), Some(r.to_string())),
        None => (eq.clone(), None),
    };
    let terms: Vec<&str> = lhs.split(',').collect();
    let ins = cx.present_inputs()?;
    if terms.len() != ins.len() || !(1..=2).contains(&ins.len()) {
        return Err(cx.err(format!(
            "equation '{eq}' with {} inputs: one or two operands are supported",
            ins.len()
        )));
    }
    let mut ell = None;
    let mut ops = vec![];
    let mut size: HashMap<char, usize> = HashMap::new();
    for (&t, &v) in terms.iter().zip(&ins) {
        let ty = cx.ty(v);
        let letters = expand(cx, t, ty.rank(), &mut ell)?;
        for (i, &c) in letters.iter().enumerate() {
            if letters[..i].contains(&c) {
                return Err(cx.err(format!(
                    "equation '{eq}': letter '{c}' repeats within one operand (a diagonal), \
                     which is not supported"
                )));
            }
            match size.insert(c, ty.shape[i]) {
                Some(s) if s != ty.shape[i] => {
                    return Err(cx.err(format!(
                        "equation '{eq}': '{c}' is {s} in one place and {} in another",
                        ty.shape[i]
                    )))
                }
                _ => {}
            }
        }
        ops.push((v, letters));
    }
    let out: Vec<char> = match rhs {
        Some(r) => {
            let n = ell.unwrap_or(0);
            let r = if r.contains("...") {
                r.replace("...", &ELLIPSIS_DIMS[ELLIPSIS_DIMS.len() - n..])
            } else {
                r
            };
            r.chars().collect()
        }
        None => {
            // Implicit output: the ellipsis dims, then the letters that
            // appear once, in alphabetical order.
            let all: Vec<char> = ops.iter().flat_map(|(_, l)| l.iter().copied()).collect();
            let mut once: Vec<char> = all
                .iter()
                .copied()
                .filter(|c| all.iter().filter(|d| *d == c).count() == 1 && !c.is_ascii_digit())
                .collect();
            once.sort_unstable();
            let mut o: Vec<char> = ELLIPSIS_DIMS
                .chars()
                .skip(ELLIPSIS_DIMS.len() - ell.unwrap_or(0))
                .collect();
            o.extend(once);
            o
        }
    };
    for (i, &c) in out.iter().enumerate() {
        if !size.contains_key(&c) || out[..i].contains(&c) {
            return Err(cx.err(format!(
                "equation '{eq}': output letter '{c}' is not an input letter, or repeats"
            )));
        }
    }
    let mut b = Build { cx, n: 0 };
    // Sum away what only one operand has and the output lacks.
    let mut reduced = vec![];
    for (k, (v, letters)) in ops.iter().enumerate() {
        let other: Vec<char> = ops
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != k)
            .flat_map(|(_, (_, l))| l.iter().copied())
            .collect();
        let axes: Vec<usize> = (0..letters.len())
            .filter(|&i| !out.contains(&letters[i]) && !other.contains(&letters[i]))
            .collect();
        let kept: Vec<char> = (0..letters.len())
            .filter(|i| !axes.contains(i))
            .map(|i| letters[i])
            .collect();
        let v = if axes.is_empty() {
            *v
        } else {
            let op = Op::Reduce {
                op: ReduceOp::Sum,
                axes,
                keepdims: false,
            };
            b.op("sum", op, vec![*v])?
        };
        reduced.push((v, kept));
    }
    let y = if reduced.len() == 1 {
        let (v, l) = &reduced[0];
        b.permute(*v, l, &out)?
    } else {
        let ((a, la), (c, lc)) = (&reduced[0], &reduced[1]);
        let batch: Vec<char> = out
            .iter()
            .copied()
            .filter(|x| la.contains(x) && lc.contains(x))
            .collect();
        let left: Vec<char> = la
            .iter()
            .copied()
            .filter(|x| out.contains(x) && !batch.contains(x))
            .collect();
        let right: Vec<char> = lc
            .iter()
            .copied()
            .filter(|x| out.contains(x) && !batch.contains(x))
            .collect();
        let contr: Vec<char> = la
            .iter()
            .copied()
            .filter(|x| lc.contains(x) && !out.contains(x))
            .collect();
        let prod = |l: &[char]| l.iter().map(|c| size[c]).product::<usize>();
        let (nb, nl, nk, nr) = (prod(&batch), prod(&left), prod(&contr), prod(&right));
        let cat = |p: &[&[char]]| p.concat();
        let a = b.permute(*a, la, &cat(&[&batch, &left, &contr]))?;
        let a = b.reshape(a, vec![nb, nl, nk])?;
        let c = b.permute(*c, lc, &cat(&[&batch, &contr, &right]))?;
        let c = b.reshape(c, vec![nb, nk, nr])?;
        let m = b.op("matmul", Op::MatMul, vec![a, c])?;
        let got = cat(&[&batch, &left, &right]);
        let m = b.reshape(m, got.iter().map(|c| size[c]).collect())?;
        b.permute(m, &got, &out)?
    };
    // The node's own name on its output.
    let shape = b.cx.ty(y).shape;
    Ok(vec![b.cx.add(Op::Reshape { shape }, vec![y])?])
}

struct Build<'c, 'a, 'm> {
    cx: &'c mut NodeCx<'a, 'm>,
    n: usize,
}

impl Build<'_, '_, '_> {
    fn op(&mut self, tag: &str, op: Op, ins: Vec<ValueId>) -> Result<ValueId, Problem> {
        self.n += 1;
        self.cx.add_aux(&format!("{tag}{}", self.n), op, ins)
    }

    fn reshape(&mut self, v: ValueId, shape: Vec<usize>) -> Result<ValueId, Problem> {
        if self.cx.ty(v).shape == shape {
            return Ok(v);
        }
        self.op("reshape", Op::Reshape { shape }, vec![v])
    }

    /// `v`, whose dims are `from`, with its dims in the order `to`.
    fn permute(&mut self, v: ValueId, from: &[char], to: &[char]) -> Result<ValueId, Problem> {
        let perm: Vec<usize> = to
            .iter()
            .map(|c| from.iter().position(|d| d == c).unwrap_or(0))
            .collect();
        if perm.iter().enumerate().all(|(i, &p)| i == p) {
            return Ok(v);
        }
        self.op("transpose", Op::Transpose { perm }, vec![v])
    }
}
