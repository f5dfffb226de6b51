//! The memory plan never lets two live arena tensors share bytes, aliases
//! reshapes, and reuses memory once a tensor is dead.

use qcc_codegen::plan_memory::{plan, Location, MemoryPlan, WORKSPACE_ALIGN};
use qcc_ir::{Graph, Op, TensorType, UnaryOp, ValueId};

/// Checks the plan's guarantee on any graph: values alive at the same time
/// (from definition to last use, through aliases) occupy disjoint arena bytes.
fn check_disjoint(g: &Graph, p: &MemoryPlan) {
    let pos = |n| p.order.iter().position(|&m| m == n).unwrap();
    let mut spans = vec![]; // (offset, size, first, last) per arena location
    for id in &p.order {
        let v = ValueId::of(*id);
        if let Location::Arena { offset } = p.location(v) {
            assert_eq!(offset % WORKSPACE_ALIGN, 0);
            let size = g.value_type(v).byte_size();
            let mut last = pos(*id);
            // Any value sharing this offset and defined later through aliasing extends the life.
            for other in &p.order {
                let w = ValueId::of(*other);
                if p.location(w) == p.location(v) && g.value_type(w).byte_size() == size {
                    for (user, _) in g.users(w) {
                        last = last.max(pos(user));
                    }
                }
            }
            spans.push((offset, size, pos(*id), last));
        }
    }
    for (i, a) in spans.iter().enumerate() {
        for b in &spans[i + 1..] {
            let live_together = a.2 <= b.3 && b.2 <= a.3;
            let overlap = a.0 < b.0 + b.1 && b.0 < a.0 + a.1;
            if live_together && overlap && a.0 != b.0 {
                panic!("live tensors overlap: {a:?} {b:?}");
            }
        }
        assert!(a.0 + a.1 <= p.workspace_size);
    }
}

fn relu(g: &mut Graph, x: ValueId, name: &str) -> ValueId {
    ValueId::of(g.add_node(Op::Unary(UnaryOp::Relu), name, vec![x]).unwrap())
}

#[test]
fn chain_reuses_memory() {
    let mut g = Graph::new("chain");
    let x = ValueId::of(g.add_input("x", TensorType::f32(vec![1000])));
    let mut v = x;
    for i in 0..6 {
        v = relu(&mut g, v, &format!("r{i}"));
    }
    g.add_output("y", v);
    let p = plan(&g).unwrap();
    check_disjoint(&g, &p);
    // Five intermediates, at most two alive at once: two 4000-byte slots (64-aligned).
    assert_eq!(p.workspace_size, 2 * 4032);
    assert_eq!(p.location(v), Location::Output(0));
    assert_eq!(p.location(x), Location::Input(0));
}

#[test]
fn reshape_aliases_its_input_and_extends_its_life() {
    let mut g = Graph::new("alias");
    let x = ValueId::of(g.add_input("x", TensorType::f32(vec![4, 4])));
    let a = relu(&mut g, x, "a");
    let r = ValueId::of(
        g.add_node(Op::Reshape { shape: vec![16] }, "flat", vec![a])
            .unwrap(),
    );
    let b = relu(&mut g, r, "b");
    let c = relu(&mut g, b, "c");
    let d = ValueId::of(
        g.add_node(Op::Reshape { shape: vec![16] }, "flat2", vec![a])
            .unwrap(),
    );
    let e = ValueId::of(
        g.add_node(Op::Binary(qcc_ir::BinaryOp::Add), "sum", vec![c, d])
            .unwrap(),
    );
    g.add_output("y", e);
    let p = plan(&g).unwrap();
    assert_eq!(p.location(r), p.location(a));
    assert_eq!(p.location(d), p.location(a));
    // `a` lives until `sum` through its alias `flat2`, so `b` and `c` can't take its bytes.
    assert_ne!(p.location(b), p.location(a));
    assert_ne!(p.location(c), p.location(a));
    check_disjoint(&g, &p);
}

#[test]
fn reshape_that_is_an_output_gets_the_output_buffer() {
    let mut g = Graph::new("out");
    let x = ValueId::of(g.add_input("x", TensorType::f32(vec![2, 3])));
    let r = ValueId::of(
        g.add_node(Op::Reshape { shape: vec![6] }, "flat", vec![x])
            .unwrap(),
    );
    g.add_output("y", r);
    let p = plan(&g).unwrap();
    assert_eq!(p.location(r), Location::Output(0));
    assert_eq!(p.workspace_size, 0);
}

#[test]
fn diamond_keeps_both_branches_apart() {
    let mut g = Graph::new("diamond");
    let x = ValueId::of(g.add_input("x", TensorType::f32(vec![100])));
    let a = relu(&mut g, x, "a");
    let b = relu(&mut g, a, "b");
    let c = relu(&mut g, a, "c");
    let d = ValueId::of(
        g.add_node(Op::Binary(qcc_ir::BinaryOp::Mul), "d", vec![b, c])
            .unwrap(),
    );
    let e = relu(&mut g, d, "e");
    g.add_output("y", e);
    let p = plan(&g).unwrap();
    check_disjoint(&g, &p);
    assert_ne!(p.location(b), p.location(c));
}
