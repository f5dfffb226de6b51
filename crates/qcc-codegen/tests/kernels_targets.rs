//! A small network using every kernel of conv/matmul/pool/reduce/resize/
//! softmax/norm, checked against the interpreter natively and (when the
//! cross tools are installed) under qemu on 32- and 64-bit ARM; and the
//! objects for every supported target reference no function besides
//! memcpy/memset/memmove (no libm from floor/exp/…).
//!
//! Tolerance 1e-4 relative to max(1, |want|): the chain sums a few hundred
//! f32 products per value in another order than the f64 interpreter.

mod common;
use common::*;
use object::{Object, ObjectSymbol};
use qcc_codegen::{compile, Options};
use qcc_ir::{
    ConvAttrs, CoordTransform, Graph, NearestMode, Op, PoolAttrs, ReduceOp, ResizeAttrs,
    ResizeMode, ValueId,
};

const TOL: f32 = 1e-4;

fn net() -> Graph {
    let (mut g, x) = graph_with_input(&[1, 3, 12, 20]);
    let c = |g: &mut Graph, name: &str, shape: &[usize], seed: u64| {
        ValueId::of(g.add_const(name, rand_tensor(shape, seed)))
    };
    let conv = |group| ConvAttrs {
        strides: vec![1, 1],
        pads: vec![1, 1, 1, 1],
        dilations: vec![1, 1],
        group,
        output_padding: vec![0, 0],
    };
    let (w1, b1) = (c(&mut g, "w1", &[8, 3, 3, 3], 1), c(&mut g, "b1", &[8], 2));
    let mut v = ValueId::of(
        g.add_node(Op::Conv(conv(1)), "conv", vec![ValueId::of(x), w1, b1])
            .expect("conv"),
    );
    let var = ValueId::of(g.add_const("var", f32_tensor(&[8], rand_f32(8, 3, 0.5, 2.0))));
    let bn_in = vec![
        v,
        c(&mut g, "s", &[8], 4),
        c(&mut g, "bb", &[8], 5),
        c(&mut g, "m", &[8], 6),
        var,
    ];
    v = ValueId::of(
        g.add_node(Op::BatchNorm { epsilon: 1e-5 }, "bn", bn_in)
            .expect("bn"),
    );
    let pool = |k: usize, s: usize, p: usize, ceil: bool, inc: bool| PoolAttrs {
        kernel: vec![k, k],
        strides: vec![s, s],
        pads: vec![p; 4],
        dilations: vec![1, 1],
        ceil_mode: ceil,
        count_include_pad: inc,
    };
    v = ValueId::of(
        g.add_node(Op::MaxPool(pool(3, 2, 0, true, false)), "mp", vec![v])
            .expect("mp"),
    );
    let mut ct = conv(2);
    ct.strides = vec![2, 2];
    ct.pads = vec![0, 1, 0, 1];
    ct.output_padding = vec![1, 1];
    let wt = c(&mut g, "wt", &[8, 2, 2, 3], 7);
    v = ValueId::of(
        g.add_node(Op::ConvTranspose(ct), "ct", vec![v, wt])
            .expect("ct"),
    );
    let shape = g.value_type(v).shape.clone();
    let sizes = vec![1, 4, 30, 50];
    let rz = ResizeAttrs {
        mode: ResizeMode::Linear,
        coord: CoordTransform::HalfPixel,
        nearest: NearestMode::RoundPreferFloor,
        scales: shape
            .iter()
            .zip(&sizes)
            .map(|(&i, &o)| o as f32 / i as f32)
            .collect(),
        sizes,
    };
    v = ValueId::of(g.add_node(Op::Resize(rz), "rz", vec![v]).expect("resize"));
    let dw = c(&mut g, "dw", &[4, 1, 3, 3], 8);
    v = ValueId::of(
        g.add_node(Op::Conv(conv(4)), "dw", vec![v, dw])
            .expect("dw"),
    );
    v = ValueId::of(
        g.add_node(Op::AveragePool(pool(3, 2, 1, false, true)), "ap", vec![v])
            .expect("ap"),
    );
    let red = |op| Op::Reduce {
        op,
        axes: vec![2, 3],
        keepdims: false,
    };
    let mx = ValueId::of(g.add_node(red(ReduceOp::Max), "max", vec![v]).expect("max"));
    v = ValueId::of(
        g.add_node(red(ReduceOp::Mean), "mean", vec![v])
            .expect("mean"),
    );
    let gemm = Op::Gemm {
        alpha: 1.0,
        beta: 1.0,
        trans_a: false,
        trans_b: true,
    };
    let (wf, bf) = (c(&mut g, "wf", &[21, 4], 9), c(&mut g, "bf", &[21], 10));
    v = ValueId::of(g.add_node(gemm, "fc", vec![v, wf, bf]).expect("gemm"));
    let wm = c(&mut g, "wm", &[21, 17], 11);
    v = ValueId::of(g.add_node(Op::MatMul, "mm", vec![v, wm]).expect("matmul"));
    v = ValueId::of(
        g.add_node(Op::Softmax { axis: 1 }, "sm", vec![v])
            .expect("softmax"),
    );
    g.add_output("probs", v);
    g.add_output("max", mx);
    g
}

#[test]
fn network_matches_interpreter_natively() {
    let g = net();
    check_interp(&g, &[rand_tensor(&[1, 3, 12, 20], 99)], TOL);
}

#[test]
fn network_matches_interpreter_on_arm() {
    let g = net();
    let x = rand_tensor(&[1, 3, 12, 20], 98);
    let want = qcc_interp::run(&g, std::slice::from_ref(&x)).expect("interpreter");
    for triple in ["armv7-unknown-linux-gnueabihf", "aarch64-unknown-linux-gnu"] {
        let Some(tc) = cross(triple) else { continue };
        let got = run_with(&tc, &g, &[x.to_le_bytes()]);
        for (j, (a, b)) in got.iter().zip(&want).enumerate() {
            assert_close(a, b, TOL, &format!("{triple} output {j}"));
        }
    }
}

#[test]
fn objects_call_nothing_but_mem_functions() {
    let g = net();
    for triple in [
        "x86_64-unknown-linux-gnu",
        "aarch64-unknown-linux-gnu",
        "armv7-unknown-linux-gnueabihf",
        "thumbv7em-none-eabihf",
    ] {
        let opts = Options {
            target: Some(triple.into()),
            prefix: "net".into(),
            ..Default::default()
        };
        let art = compile(&g, &opts).unwrap_or_else(|e| panic!("{triple}: {e}"));
        let f = object::File::parse(&*art.object).expect("parse object");
        for s in f.symbols().filter(|s| s.is_undefined()) {
            let name = s.name().expect("symbol name");
            let ok = name.is_empty()
                || ["memcpy", "memset", "memmove"].contains(&name)
                || [
                    "__aeabi_memcpy",
                    "__aeabi_memmove",
                    "__aeabi_memset",
                    "__aeabi_memclr",
                ]
                .iter()
                .any(|p| name.starts_with(p));
            assert!(ok, "{triple}: undefined symbol {name}");
        }
    }
}
