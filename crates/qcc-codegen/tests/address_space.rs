//! Every size must fit the target's address space: a tensor, the weights
//! and the workspace that a 32-bit target cannot address stop compilation
//! with an error naming what is too big, never an object with wrapped sizes.

use qcc_codegen::{compile, CodegenError, Options};
use qcc_ir::{Graph, Op, TensorType, UnaryOp, ValueId};

/// `x` of `shape` → `depth` Relus → output.
fn relus(shape: &[usize], depth: usize) -> Graph {
    let mut g = Graph::new("big");
    let x = g.add_input("x", TensorType::f32(shape.to_vec()));
    let mut v = x;
    for i in 0..depth {
        v = g
            .add_node(
                Op::Unary(UnaryOp::Relu),
                format!("relu{i}"),
                vec![ValueId::of(v)],
            )
            .expect("valid relu");
    }
    g.add_output("y", ValueId::of(v));
    g
}

fn for_target(triple: &str) -> Options {
    Options {
        target: Some(triple.into()),
        prefix: "m".into(),
        ..Default::default()
    }
}

fn too_large(g: &Graph, triple: &str) -> String {
    match compile(g, &for_target(triple)) {
        Err(e @ CodegenError::TooLarge(_)) => e.to_string(),
        Err(e) => panic!("{triple}: wrong error: {e}"),
        Ok(_) => panic!("{triple}: compiled a model it cannot address"),
    }
}

#[test]
fn tensors_past_the_address_space_are_refused() {
    // 70000² floats: 19.6 GB. [1e6, 1e6]: 4 TB (its element count alone
    // wraps 32 bits).
    for shape in [[70_000, 70_000], [1_000_000, 1_000_000]] {
        let g = relus(&shape, 1);
        for triple in ["armv7-unknown-linux-gnueabihf", "thumbv7em-none-eabihf"] {
            let e = too_large(&g, triple);
            assert!(e.contains("input 'x'") && e.contains("32-bit"), "{e}");
            assert_eq!(e.lines().count(), 1, "{e}");
        }
    }
}

#[test]
fn a_workspace_past_the_address_space_is_refused() {
    // Two 1.6 GB intermediates alive together: each fits 32 bits, the
    // workspace holding both does not.
    let g = relus(&[20_000, 20_000], 3);
    let e = too_large(&g, "thumbv7em-none-eabihf");
    assert!(e.contains("workspace") && e.contains("32-bit"), "{e}");
    // A 64-bit target addresses it.
    compile(&g, &for_target("x86_64-unknown-linux-gnu")).expect("fits 64 bits");
}
