//! `fuse-decomposed`: activations that exporters write out as several ops
//! become the one op they compute, so the float kernels run one pass over
//! memory and `--quantize` sees one activation (one 256-entry table in its
//! module) instead of three or four separately quantized ops. HardSwish:
//!
//! * `x · Clip(x + 3, 0, 6) / 6` (the Div may be a Mul by 1/6, and the
//!   operands of Add and Mul come in either order);
//! * `x · HardSigmoid(x)` with alpha 1/6 and beta 1/2.
//!
//! SiLU: `x · Sigmoid(x)`. GELU (erf form): `x · (Erf(x/√2) + 1) · ½` with
//! the three factors associated as exporters write them (`(x·a)·½`,
//! `x·(a·½)`, `(x·½)·a`) and `x/√2` possibly `x · (1/√2)`. GELU (tanh
//! form): the same with `Tanh(√(2/π) · (x + 0.044715 · x³)) + 1`, `x³`
//! written as `Pow(x, 3)` or `x·x·x`, every operand order.
//!
//! Needs: a verified graph after `constant-fold` (the constants are `Const`
//! nodes). Guarantees: no such float pattern whose intermediate values have
//! no other use remains; each becomes one `hard_swish`, `silu`, `gelu` or
//! `gelu_tanh`
//! named like the pattern's last node and read by its former users.

use crate::{Changed, PassContext, PassError};
use qcc_ir::{BinaryOp, DType, Graph, NodeId, Op, UnaryOp, ValueId};

const PASS: &str = "fuse-decomposed";

fn near(a: f32, b: f32) -> bool {
    (a - b).abs() <= 1e-6 * b.abs().max(1.0)
}

/// `v`, produced by a node used only here and not a graph output.
fn private(g: &Graph, v: ValueId) -> Option<NodeId> {
    (g.users(v).len() == 1 && !g.is_output(v)).then_some(v.node)
}

/// The two operands of node `n` when it is the binary `op`.
fn operands(g: &Graph, n: NodeId, op: BinaryOp) -> Option<[ValueId; 2]> {
    let node = g.node(n);
    match (&node.op, node.inputs()) {
        (Op::Binary(o), &[a, b]) if *o == op => Some([a, b]),
        _ => None,
    }
}

/// The gate of a HardSwish product.
#[derive(PartialEq)]
enum Gate {
    /// `HardSigmoid(x)` with alpha 1/6, beta 1/2: the product is HardSwish.
    HardSigmoid,
    /// `Clip(x + 3, 0, 6)`: the product is 6 · HardSwish.
    Clip6,
}

/// `(x, gate)` when Mul node `m` is `x · gate(x)`.
fn product(g: &Graph, m: NodeId) -> Option<(ValueId, Gate)> {
    let [a, b] = operands(g, m, BinaryOp::Mul)?;
    for (x, gate) in [(a, b), (b, a)] {
        let Some(gn) = private(g, gate) else { continue };
        let Some(&gin) = g.node(gn).inputs().first() else {
            continue;
        };
        match g.node(gn).op {
            Op::Unary(UnaryOp::HardSigmoid { alpha, beta })
                if near(alpha, 1.0 / 6.0) && near(beta, 0.5) && gin == x =>
            {
                return Some((x, Gate::HardSigmoid))
            }
            Op::Unary(UnaryOp::Clip { min, max }) if min == 0.0 && max == 6.0 => {
                let Some(add) = private(g, gin) else { continue };
                let Some([p, q]) = operands(g, add, BinaryOp::Add) else {
                    continue;
                };
                let three = |v| g.const_scalar(v).is_some_and(|c| c == 3.0);
                if (p == x && three(q)) || (q == x && three(p)) {
                    return Some((x, Gate::Clip6));
                }
            }
            _ => {}
        }
    }
    None
}

/// The x when node `n` ends a HardSwish pattern.
fn hard_swish(g: &Graph, n: NodeId) -> Option<ValueId> {
    let node = g.node(n);
    if node.outputs[0].dtype != DType::F32 || node.inputs().len() != 2 {
        return None;
    }
    let [a, b] = [node.inputs()[0], node.inputs()[1]];
    let clip6 = |prod: ValueId| match product(g, private(g, prod)?)? {
        (x, Gate::Clip6) => Some(x),
        _ => None,
    };
    match node.op {
        // (x · Clip(x + 3, 0, 6)) / 6
        Op::Binary(BinaryOp::Div) if g.const_scalar(b).is_some_and(|c| c == 6.0) => clip6(a),
        Op::Binary(BinaryOp::Mul) => {
            let sixth = |v| g.const_scalar(v).is_some_and(|c| near(c, 1.0 / 6.0));
            if sixth(b) {
                clip6(a)
            } else if sixth(a) {
                clip6(b)
            } else {
                // x · HardSigmoid(x)
                match product(g, n)? {
                    (x, Gate::HardSigmoid) => Some(x),
                    _ => None,
                }
            }
        }
        _ => None,
    }
}

/// The x when Mul node `n` is `x · Sigmoid(x)` (SiLU).
fn silu(g: &Graph, n: NodeId) -> Option<ValueId> {
    let [a, b] = operands(g, n, BinaryOp::Mul)?;
    [(a, b), (b, a)].into_iter().find_map(|(x, s)| {
        let sn = private(g, s)?;
        let node = g.node(sn);
        (node.op == Op::Unary(UnaryOp::Sigmoid) && node.inputs() == [x]).then_some(x)
    })
}

/// Whether `a` is `Erf(x/√2) + 1` (the division possibly a Mul by 1/√2),
/// every step private.
fn erf_plus_one(g: &Graph, a: ValueId, x: ValueId) -> bool {
    let scaled = |u: ValueId| -> bool {
        let Some(un) = private(g, u) else {
            return false;
        };
        if let Some([p, q]) = operands(g, un, BinaryOp::Div) {
            return p == x
                && g.const_scalar(q)
                    .is_some_and(|c| near(c, std::f32::consts::SQRT_2));
        }
        let Some([p, q]) = operands(g, un, BinaryOp::Mul) else {
            return false;
        };
        let r = |v| {
            g.const_scalar(v)
                .is_some_and(|c| near(c, std::f32::consts::FRAC_1_SQRT_2))
        };
        (p == x && r(q)) || (q == x && r(p))
    };
    let Some(an) = private(g, a) else {
        return false;
    };
    let Some([p, q]) = operands(g, an, BinaryOp::Add) else {
        return false;
    };
    [(p, q), (q, p)].into_iter().any(|(e, one)| {
        g.const_scalar(one) == Some(1.0)
            && private(g, e).is_some_and(|en| {
                let node = g.node(en);
                node.op == Op::Unary(UnaryOp::Erf)
                    && node.inputs().len() == 1
                    && scaled(node.inputs()[0])
            })
    })
}

/// Whether `a` is `Tanh(√(2/π) · (x + 0.044715 · x³)) + 1`, every step
/// private, operands in either order, `x³` as `Pow(x, 3)` or `x·x·x`.
fn tanh_plus_one(g: &Graph, a: ValueId, x: ValueId) -> bool {
    // The two operands of the private binary `op` producing `v`, both orders.
    let pairs = |v: ValueId, op| -> Vec<(ValueId, ValueId)> {
        private(g, v)
            .and_then(|n| operands(g, n, op))
            .map_or(vec![], |[p, q]| vec![(p, q), (q, p)])
    };
    let is = |v, c: f32| g.const_scalar(v).is_some_and(|s| near(s, c));
    let square = |v| {
        pairs(v, BinaryOp::Mul)
            .iter()
            .any(|&(p, q)| p == x && q == x)
    };
    let cube = |v| {
        pairs(v, BinaryOp::Pow)
            .first()
            .is_some_and(|&(p, e)| p == x && g.const_scalar(e) == Some(3.0))
            || pairs(v, BinaryOp::Mul)
                .iter()
                .any(|&(p, q)| p == x && square(q))
    };
    let inner = |s| {
        pairs(s, BinaryOp::Add).iter().any(|&(p, m)| {
            p == x
                && pairs(m, BinaryOp::Mul)
                    .iter()
                    .any(|&(c, k)| is(c, 0.044715) && cube(k))
        })
    };
    let arg = |v| {
        let k = (2.0 / std::f64::consts::PI).sqrt() as f32;
        pairs(v, BinaryOp::Mul)
            .iter()
            .any(|&(c, s)| is(c, k) && inner(s))
    };
    pairs(a, BinaryOp::Add).iter().any(|&(one, t)| {
        g.const_scalar(one) == Some(1.0)
            && private(g, t).is_some_and(|tn| {
                let node = g.node(tn);
                node.op == Op::Unary(UnaryOp::Tanh)
                    && node.inputs().len() == 1
                    && arg(node.inputs()[0])
            })
    })
}

/// Which GELU `a` is the gate of (`Erf(…) + 1` or `Tanh(…) + 1` of `x`).
fn gate(g: &Graph, a: ValueId, x: ValueId) -> Option<UnaryOp> {
    if erf_plus_one(g, a, x) {
        Some(UnaryOp::Gelu)
    } else if tanh_plus_one(g, a, x) {
        Some(UnaryOp::GeluTanh)
    } else {
        None
    }
}

/// The form and the x when Mul node `n` ends `x · (G(x) + 1) · 1/2` (GELU,
/// `G` the erf or tanh gate) in any association of the three factors
/// exporters write.
fn gelu(g: &Graph, n: NodeId) -> Option<(UnaryOp, ValueId)> {
    let half = |v| g.const_scalar(v) == Some(0.5);
    // The two operands of a private Mul.
    let mul_of = |v| operands(g, private(g, v)?, BinaryOp::Mul);
    let [p, q] = operands(g, n, BinaryOp::Mul)?;
    for (u, v) in [(p, q), (q, p)] {
        // ½ · (x · a)
        if half(u) {
            if let Some([s, t]) = mul_of(v) {
                if let Some(found) = [(s, t), (t, s)]
                    .into_iter()
                    .find_map(|(x, a)| Some((gate(g, a, x)?, x)))
                {
                    return Some(found);
                }
            }
        }
        // x · (a · ½)
        if let Some([s, t]) = mul_of(v) {
            if let Some(op) =
                [(s, t), (t, s)]
                    .into_iter()
                    .find_map(|(a, h)| if half(h) { gate(g, a, u) } else { None })
            {
                return Some((op, u));
            }
        }
        // (x · ½) · a
        if let Some([s, t]) = mul_of(u) {
            if let Some(found) = [(s, t), (t, s)].into_iter().find_map(|(x, h)| {
                if half(h) {
                    Some((gate(g, v, x)?, x))
                } else {
                    None
                }
            }) {
                return Some(found);
            }
        }
    }
    None
}

/// The activation node `n` ends, and its input.
fn fusion(g: &Graph, n: NodeId) -> Option<(UnaryOp, ValueId)> {
    if g.node(n).outputs[0].dtype != DType::F32 {
        return None;
    }
    if let Some(x) = hard_swish(g, n) {
        return Some((UnaryOp::HardSwish, x));
    }
    if let Some(found) = gelu(g, n) {
        return Some(found);
    }
    silu(g, n).map(|x| (UnaryOp::Silu, x))
}

pub fn run(g: &mut Graph, _cx: &mut PassContext) -> Result<Changed, PassError> {
    let fail = |msg: String| PassError::Failed { pass: PASS, msg };
    let order = g.topo_order().map_err(|e| fail(e.to_string()))?;
    let mut changed = false;
    for n in order {
        if !g.contains(n) {
            continue;
        }
        let Some((op, x)) = fusion(g, n) else {
            continue;
        };
        let name = g.node(n).name.clone();
        let fused = g
            .add_node(Op::Unary(op), name, vec![x])
            .map_err(|e| fail(e.to_string()))?;
        g.replace_all_uses(ValueId::of(n), ValueId::of(fused));
        changed = true;
    }
    if changed {
        g.remove_dead_nodes();
        g.prune_weights();
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use qcc_ir::{Tensor, TensorType};

    fn c(g: &mut Graph, name: &str, v: f32) -> ValueId {
        ValueId::of(g.add_const(name, Tensor::from_f32(vec![], vec![v]).unwrap()))
    }

    fn bin(g: &mut Graph, op: BinaryOp, name: &str, a: ValueId, b: ValueId) -> ValueId {
        ValueId::of(g.add_node(Op::Binary(op), name, vec![a, b]).unwrap())
    }

    fn un(g: &mut Graph, op: UnaryOp, name: &str, a: ValueId) -> ValueId {
        ValueId::of(g.add_node(Op::Unary(op), name, vec![a]).unwrap())
    }

    /// `form` 0: `x·Clip(x+3,0,6)/6`; 1: `(Clip(3+x,0,6)·x)·(1/6)`;
    /// 2: `x·HardSigmoid(x)`. `leak` also outputs the gate.
    fn graph(form: usize, leak: bool) -> Graph {
        let mut g = Graph::new("t");
        let x = ValueId::of(g.add_input("x", TensorType::f32(vec![2, 5])));
        let (y, gate) = match form {
            0 | 1 => {
                let three = c(&mut g, "three", 3.0);
                let s = if form == 0 {
                    bin(&mut g, BinaryOp::Add, "add", x, three)
                } else {
                    bin(&mut g, BinaryOp::Add, "add", three, x)
                };
                let clip = un(&mut g, UnaryOp::Clip { min: 0.0, max: 6.0 }, "clip", s);
                if form == 0 {
                    let p = bin(&mut g, BinaryOp::Mul, "mul", x, clip);
                    let six = c(&mut g, "six", 6.0);
                    (bin(&mut g, BinaryOp::Div, "div", p, six), clip)
                } else {
                    let p = bin(&mut g, BinaryOp::Mul, "mul", clip, x);
                    let sixth = c(&mut g, "sixth", 1.0 / 6.0);
                    (bin(&mut g, BinaryOp::Mul, "scale", p, sixth), clip)
                }
            }
            _ => {
                let hs = UnaryOp::HardSigmoid {
                    alpha: 1.0 / 6.0,
                    beta: 0.5,
                };
                let gate = un(&mut g, hs, "hsig", x);
                (bin(&mut g, BinaryOp::Mul, "mul", x, gate), gate)
            }
        };
        g.add_output("y", y);
        if leak {
            g.add_output("gate", gate);
        }
        g
    }

    /// Runs the pass on `g`, which must then be `input → op`, computing what
    /// the pattern computed (to float rounding) on a few values.
    fn assert_fuses_into(mut g: Graph, op: &str, what: &str) {
        let mut cx = PassContext::default();
        let x = Tensor::from_f32(
            vec![2, 5],
            vec![-5.0, -3.0, -1.5, -0.2, 0.0, 0.7, 1.5, 2.9, 3.0, 8.0],
        )
        .unwrap();
        let want = qcc_interp::run(&g, std::slice::from_ref(&x)).unwrap();
        assert!(run(&mut g, &mut cx).unwrap(), "{what}");
        qcc_ir::verify(&g).unwrap();
        let ops: Vec<&str> = g
            .topo_order()
            .unwrap()
            .into_iter()
            .map(|id| g.node(id).op.name())
            .collect();
        assert_eq!(ops, ["input", op], "{what}");
        let got = qcc_interp::run(&g, std::slice::from_ref(&x)).unwrap();
        for (a, b) in got[0]
            .as_f32()
            .unwrap()
            .iter()
            .zip(want[0].as_f32().unwrap())
        {
            assert!(
                (a - b).abs() <= 1e-6 * b.abs().max(1.0),
                "{what}: {a} vs {b}"
            );
        }
    }

    #[test]
    fn decomposed_hard_swish_becomes_one_op() {
        for form in 0..3 {
            assert_fuses_into(graph(form, false), "hard_swish", &format!("form {form}"));
        }
    }

    #[test]
    fn patterns_with_shared_parts_or_other_constants_stay() {
        let mut cx = PassContext::default();
        for form in 0..3 {
            let mut g = graph(form, true);
            assert!(!run(&mut g, &mut cx).unwrap(), "form {form}");
        }
        // x·Clip(x+3,0,6)/5 is not HardSwish.
        let mut g = graph(0, false);
        let six = g
            .topo_order()
            .unwrap()
            .into_iter()
            .find(|&id| g.node(id).name == "six")
            .unwrap();
        let five = c(&mut g, "five", 5.0);
        g.replace_all_uses(ValueId::of(six), five);
        assert!(!run(&mut g, &mut cx).unwrap());
    }

    /// SiLU (`form` 0, 1: both operand orders) and GELU (`form` 2..7: the
    /// three associations, with `/√2` or `·(1/√2)`); `leak` also outputs
    /// the Sigmoid or the Erf.
    fn activation_graph(form: usize, leak: bool) -> Graph {
        let mut g = Graph::new("t");
        let x = ValueId::of(g.add_input("x", TensorType::f32(vec![2, 5])));
        let (y, inner) = if form < 2 {
            let s = un(&mut g, UnaryOp::Sigmoid, "sig", x);
            let y = if form == 0 {
                bin(&mut g, BinaryOp::Mul, "mul", x, s)
            } else {
                bin(&mut g, BinaryOp::Mul, "mul", s, x)
            };
            (y, s)
        } else {
            let scaled = if form.is_multiple_of(2) {
                let r2 = c(&mut g, "sqrt2", std::f32::consts::SQRT_2);
                bin(&mut g, BinaryOp::Div, "div", x, r2)
            } else {
                let r = c(&mut g, "inv_sqrt2", std::f32::consts::FRAC_1_SQRT_2);
                bin(&mut g, BinaryOp::Mul, "scale", r, x)
            };
            let e = un(&mut g, UnaryOp::Erf, "erf", scaled);
            let one = c(&mut g, "one", 1.0);
            let a = bin(&mut g, BinaryOp::Add, "add", one, e);
            let half = c(&mut g, "half", 0.5);
            let y = match (form - 2) / 2 {
                0 => {
                    let xa = bin(&mut g, BinaryOp::Mul, "xa", x, a);
                    bin(&mut g, BinaryOp::Mul, "y", xa, half)
                }
                1 => {
                    let ah = bin(&mut g, BinaryOp::Mul, "ah", half, a);
                    bin(&mut g, BinaryOp::Mul, "y", x, ah)
                }
                _ => {
                    let hx = bin(&mut g, BinaryOp::Mul, "hx", x, half);
                    bin(&mut g, BinaryOp::Mul, "y", a, hx)
                }
            };
            (y, e)
        };
        g.add_output("y", y);
        if leak {
            g.add_output("inner", inner);
        }
        g
    }

    /// Tanh-form GELU as exporters write it: `form` 0: `x·x·x` and
    /// `(x·a)·½` with every operand as the importer orders it; 1: `Pow(x,3)`,
    /// constants first and `x·(a·½)`; 2: `(x·x)·x` reversed, `(x·½)·a`.
    /// `leak` also outputs the Tanh.
    fn tanh_gelu_graph(form: usize, leak: bool) -> Graph {
        let mut g = Graph::new("t");
        let x = ValueId::of(g.add_input("x", TensorType::f32(vec![2, 5])));
        let cube = if form == 1 {
            let three = c(&mut g, "three", 3.0);
            bin(&mut g, BinaryOp::Pow, "pow", x, three)
        } else {
            let x2 = bin(&mut g, BinaryOp::Mul, "x2", x, x);
            if form == 0 {
                bin(&mut g, BinaryOp::Mul, "x3", x2, x)
            } else {
                bin(&mut g, BinaryOp::Mul, "x3", x, x2)
            }
        };
        let c0 = c(&mut g, "c0", 0.044715);
        let k = c(&mut g, "k", (2.0 / std::f64::consts::PI).sqrt() as f32);
        let ks = if form == 1 {
            let m = bin(&mut g, BinaryOp::Mul, "m", c0, cube);
            let s = bin(&mut g, BinaryOp::Add, "s", m, x);
            bin(&mut g, BinaryOp::Mul, "ks", k, s)
        } else {
            let m = bin(&mut g, BinaryOp::Mul, "m", cube, c0);
            let s = bin(&mut g, BinaryOp::Add, "s", x, m);
            bin(&mut g, BinaryOp::Mul, "ks", s, k)
        };
        let t = un(&mut g, UnaryOp::Tanh, "tanh", ks);
        let one = c(&mut g, "one", 1.0);
        let a = bin(&mut g, BinaryOp::Add, "a", t, one);
        let half = c(&mut g, "half", 0.5);
        let y = match form {
            0 => {
                let xa = bin(&mut g, BinaryOp::Mul, "xa", x, a);
                bin(&mut g, BinaryOp::Mul, "y", xa, half)
            }
            1 => {
                let ah = bin(&mut g, BinaryOp::Mul, "ah", a, half);
                bin(&mut g, BinaryOp::Mul, "y", x, ah)
            }
            _ => {
                let hx = bin(&mut g, BinaryOp::Mul, "hx", half, x);
                bin(&mut g, BinaryOp::Mul, "y", hx, a)
            }
        };
        g.add_output("y", y);
        if leak {
            g.add_output("inner", t);
        }
        g
    }

    #[test]
    fn decomposed_tanh_gelu_becomes_one_op() {
        let mut cx = PassContext::default();
        for form in 0..3 {
            assert_fuses_into(
                tanh_gelu_graph(form, false),
                "gelu_tanh",
                &format!("form {form}"),
            );
            let mut g = tanh_gelu_graph(form, true);
            assert!(!run(&mut g, &mut cx).unwrap(), "form {form} leaked");
        }
        // 0.05 instead of 0.044715 is not GELU.
        let mut g = tanh_gelu_graph(0, false);
        let c0 = g
            .node_ids()
            .into_iter()
            .find(|&id| g.node(id).name == "c0")
            .unwrap();
        let other = c(&mut g, "other", 0.05);
        g.replace_all_uses(ValueId::of(c0), other);
        assert!(!run(&mut g, &mut cx).unwrap());
    }

    #[test]
    fn decomposed_silu_and_gelu_become_one_op() {
        let mut cx = PassContext::default();
        for form in 0..8 {
            let name = if form < 2 { "silu" } else { "gelu" };
            assert_fuses_into(activation_graph(form, false), name, &format!("form {form}"));
            // With the inner value also an output, nothing is fused.
            let mut g = activation_graph(form, true);
            assert!(!run(&mut g, &mut cx).unwrap(), "form {form} leaked");
        }
    }
}
