//! Data movement kernels (Reshape copy, Transpose, Concat, Slice, Pad),
//! Cast and Gather, run natively and compared with values computed in Rust.

mod common;
use common::*;
use qcc_ir::{strides_of, DType, Graph, Op, Tensor, TensorData, TensorType, ValueId};

/// Every multi-index of `shape` in row-major order.
fn indices(shape: &[usize]) -> Vec<Vec<usize>> {
    let n: usize = shape.iter().product();
    let st = strides_of(shape);
    (0..n)
        .map(|i| (0..shape.len()).map(|d| i / st[d] % shape[d]).collect())
        .collect()
}

fn flat(shape: &[usize], idx: &[usize]) -> usize {
    strides_of(shape).iter().zip(idx).map(|(s, i)| s * i).sum()
}

fn one_op(op: Op, x: &Tensor) -> Graph {
    let mut g = Graph::new("t");
    let xi = g.add_input("x", x.ty());
    let y = g.add_node(op, "op", vec![ValueId::of(xi)]).expect("valid");
    g.add_output("y", ValueId::of(y));
    g
}

fn i64_seq(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    i64_tensor(shape, (0..n as i64).map(|v| v * 3 - 7).collect())
}

#[test]
fn reshape_as_output_copies_and_alias_reshape_runs() {
    let x = rand_tensor(&[2, 3, 4], 1);
    // Output reshape: a real copy kernel.
    let g = one_op(Op::Reshape { shape: vec![6, 4] }, &x);
    let want = x.clone().reshaped(vec![6, 4]).expect("same size");
    check(&g, std::slice::from_ref(&x), &[want], 0.0);
    // Alias reshape feeding another node: no code, shares the buffer.
    let mut g = Graph::new("alias");
    let xi = g.add_input("x", x.ty());
    let r = g
        .add_node(Op::Reshape { shape: vec![24] }, "r", vec![ValueId::of(xi)])
        .expect("valid");
    let n = g
        .add_node(Op::Unary(qcc_ir::UnaryOp::Neg), "n", vec![ValueId::of(r)])
        .expect("valid");
    g.add_output("y", ValueId::of(n));
    let want: Vec<f32> = x.as_f32().expect("f32").iter().map(|v| -v).collect();
    check(&g, &[x], &[f32_tensor(&[24], want)], 0.0);
}

fn check_transpose(x: &Tensor, perm: &[usize]) {
    let g = one_op(
        Op::Transpose {
            perm: perm.to_vec(),
        },
        x,
    );
    let out_shape: Vec<usize> = perm.iter().map(|&p| x.shape()[p]).collect();
    let src = x.to_i64_vec();
    let srcf = x.to_f32_vec();
    let mut wi = vec![];
    let mut wf = vec![];
    for idx in indices(&out_shape) {
        let mut in_idx = vec![0; perm.len()];
        for (k, &p) in perm.iter().enumerate() {
            in_idx[p] = idx[k];
        }
        let f = flat(x.shape(), &in_idx);
        wf.push(srcf[f]);
        if let Some(s) = &src {
            wi.push(s[f]);
        }
    }
    let want = match x.dtype() {
        DType::F32 => f32_tensor(&out_shape, wf),
        _ => i64_tensor(&out_shape, wi),
    };
    check(&g, std::slice::from_ref(x), &[want], 0.0);
}

#[test]
fn transpose_permutations() {
    check_transpose(&rand_tensor(&[3, 5], 2), &[1, 0]);
    check_transpose(&rand_tensor(&[2, 3, 4, 5], 3), &[0, 2, 3, 1]);
    check_transpose(&rand_tensor(&[2, 3, 4, 5], 4), &[3, 1, 0, 2]);
    check_transpose(&rand_tensor(&[1, 3, 1, 5], 5), &[2, 3, 0, 1]);
    check_transpose(&i64_seq(&[2, 3, 4]), &[2, 0, 1]);
}

#[test]
fn concat_along_each_axis() {
    for axis in 0..3 {
        let mut shapes = [vec![2, 3, 4], vec![2, 3, 4], vec![2, 3, 4]];
        shapes[1][axis] = 1;
        shapes[2][axis] = 5;
        let ts: Vec<Tensor> = shapes
            .iter()
            .enumerate()
            .map(|(k, s)| rand_tensor(s, 10 + k as u64))
            .collect();
        let mut g = Graph::new("cat");
        let a = g.add_input("a", ts[0].ty());
        let b = g.add_const("b", ts[1].clone());
        let c = g.add_input("c", ts[2].ty());
        let y = g
            .add_node(
                Op::Concat { axis },
                "cat",
                vec![ValueId::of(a), ValueId::of(b), ValueId::of(c)],
            )
            .expect("valid");
        g.add_output("y", ValueId::of(y));
        let out_shape = g.value_type(ValueId::of(y)).shape.clone();
        let mut want = vec![];
        for idx in indices(&out_shape) {
            let mut k = 0;
            let mut i = idx[axis];
            while i >= shapes[k][axis] {
                i -= shapes[k][axis];
                k += 1;
            }
            let mut src = idx.clone();
            src[axis] = i;
            want.push(ts[k].as_f32().expect("f32")[flat(&shapes[k], &src)]);
        }
        check(
            &g,
            &[ts[0].clone(), ts[2].clone()],
            &[f32_tensor(&out_shape, want)],
            0.0,
        );
    }
}

#[test]
fn slice_with_positive_and_negative_steps() {
    let x = rand_tensor(&[4, 6, 5], 6);
    let cases: [(Vec<i64>, Vec<i64>, Vec<usize>); 3] = [
        (vec![1, 0, 0], vec![1, 2, 1], vec![2, 3, 5]),
        (vec![3, 5, 4], vec![-1, -2, -3], vec![4, 3, 2]),
        (vec![0, 2, 1], vec![2, 1, -1], vec![2, 4, 2]),
    ];
    for (starts, steps, lens) in cases {
        let g = one_op(
            Op::Slice {
                starts: starts.clone(),
                steps: steps.clone(),
                lens: lens.clone(),
            },
            &x,
        );
        let want: Vec<f32> = indices(&lens)
            .iter()
            .map(|idx| {
                let src: Vec<usize> = (0..3)
                    .map(|d| (starts[d] + idx[d] as i64 * steps[d]) as usize)
                    .collect();
                x.as_f32().expect("f32")[flat(x.shape(), &src)]
            })
            .collect();
        check(
            &g,
            std::slice::from_ref(&x),
            &[f32_tensor(&lens, want)],
            0.0,
        );
    }
}

#[test]
fn pad_with_constant_values() {
    let x = rand_tensor(&[2, 3, 4], 7);
    for (pads, value) in [
        (vec![0, 1, 2, 1, 0, 3], 1.5f32),
        (vec![0, 0, 1, 0, 0, 1], 0.0),
        (vec![0, 0, 0, 0, 0, 0], 9.0),
    ] {
        let g = one_op(
            Op::Pad {
                pads: pads.clone(),
                value,
            },
            &x,
        );
        let out_shape: Vec<usize> = (0..3)
            .map(|d| x.shape()[d] + pads[d] + pads[d + 3])
            .collect();
        let want: Vec<f32> = indices(&out_shape)
            .iter()
            .map(|idx| {
                let inside = (0..3).all(|d| idx[d] >= pads[d] && idx[d] < pads[d] + x.shape()[d]);
                if inside {
                    let src: Vec<usize> = (0..3).map(|d| idx[d] - pads[d]).collect();
                    x.as_f32().expect("f32")[flat(x.shape(), &src)]
                } else {
                    value
                }
            })
            .collect();
        check(
            &g,
            std::slice::from_ref(&x),
            &[f32_tensor(&out_shape, want)],
            0.0,
        );
    }
    // Integers, non-zero pad value.
    let xi = i64_seq(&[2, 2]);
    let g = one_op(
        Op::Pad {
            pads: vec![1, 0, 0, 1],
            value: -2.0,
        },
        &xi,
    );
    let want = i64_tensor(&[3, 3], vec![-2, -2, -2, -7, -4, -2, -1, 2, -2]);
    check(&g, &[xi], &[want], 0.0);
}

fn values_as(dt: DType, v: &[f64]) -> Tensor {
    let n = v.len();
    let data = match dt {
        DType::F32 => TensorData::F32(v.iter().map(|&x| x as f32).collect()),
        DType::I64 => TensorData::I64(v.iter().map(|&x| x as i64).collect()),
        DType::I32 => TensorData::I32(v.iter().map(|&x| x as i32).collect()),
        DType::I8 => TensorData::I8(v.iter().map(|&x| x as i8).collect()),
        DType::U8 => TensorData::U8(v.iter().map(|&x| x as u8).collect()),
        DType::Bool => TensorData::Bool(v.iter().map(|&x| x != 0.0).collect()),
    };
    tensor(&[n], data)
}

/// Rust's `as` semantics for one value between the IR's types.
fn cast_ref(t: &Tensor, to: DType) -> Tensor {
    let n = t.numel();
    let data = match (t.data(), to) {
        (TensorData::F32(v), DType::I64) => TensorData::I64(v.iter().map(|&x| x as i64).collect()),
        (TensorData::F32(v), DType::I32) => TensorData::I32(v.iter().map(|&x| x as i32).collect()),
        (TensorData::F32(v), DType::I8) => TensorData::I8(v.iter().map(|&x| x as i8).collect()),
        (TensorData::F32(v), DType::U8) => TensorData::U8(v.iter().map(|&x| x as u8).collect()),
        (TensorData::F32(v), DType::Bool) => {
            TensorData::Bool(v.iter().map(|&x| x != 0.0).collect())
        }
        (_, DType::F32) => TensorData::F32(t.to_f32_vec()),
        (_, _) => {
            let v = t.to_i64_vec().expect("integer");
            match to {
                DType::I64 => TensorData::I64(v),
                DType::I32 => TensorData::I32(v.iter().map(|&x| x as i32).collect()),
                DType::I8 => TensorData::I8(v.iter().map(|&x| x as i8).collect()),
                DType::U8 => TensorData::U8(v.iter().map(|&x| x as u8).collect()),
                DType::Bool => TensorData::Bool(v.iter().map(|&x| x != 0).collect()),
                DType::F32 => unreachable!("handled above"),
            }
        }
    };
    tensor(&[n], data)
}

#[test]
fn cast_between_all_types() {
    let all = [
        DType::F32,
        DType::I64,
        DType::I32,
        DType::I8,
        DType::U8,
        DType::Bool,
    ];
    let floats = [
        0.0, -0.0, 1.9, -1.9, 2.5, -3.7, 127.9, 300.0, -300.0, 1e10, -1e10,
    ];
    let ints = [0.0, 1.0, -1.0, 127.0, -128.0, 255.0, 70000.0, -70000.0];
    for from in all {
        let vals: &[f64] = if from == DType::F32 { &floats } else { &ints };
        let x = values_as(from, vals);
        for to in all {
            let g = one_op(Op::Cast { to }, &x);
            check(&g, std::slice::from_ref(&x), &[cast_ref(&x, to)], 0.0);
        }
    }
    // NaN becomes 0 for integer targets and true for bool.
    let x = f32_tensor(&[2], vec![f32::NAN, f32::INFINITY]);
    for to in [DType::I64, DType::I32, DType::U8, DType::Bool] {
        let g = one_op(Op::Cast { to }, &x);
        check(&g, std::slice::from_ref(&x), &[cast_ref(&x, to)], 0.0);
    }
}

#[test]
fn cast_bool_input_treats_any_nonzero_byte_as_true() {
    let ty = TensorType::new(DType::Bool, vec![3]);
    let mut g = Graph::new("b");
    let x = g.add_input("x", ty);
    let y = g
        .add_node(Op::Cast { to: DType::F32 }, "c", vec![ValueId::of(x)])
        .expect("valid");
    g.add_output("y", ValueId::of(y));
    // Raw bytes 0, 1, 7: Tensor cannot hold a 7, so build it from bytes.
    let raw =
        Tensor::from_le_bytes(&TensorType::new(DType::U8, vec![3]), &[0, 1, 7]).expect("3 bytes");
    let as_bool = tensor(&[3], TensorData::Bool(vec![false, true, true]));
    let out = run_native_raw(&g, &[raw.to_le_bytes()]);
    let want = cast_ref(&as_bool, DType::F32);
    assert_close(&out[0], &want, 0.0, "bool cast");
}

fn gather_ref(data: &Tensor, axis: usize, idx: &[i64], idx_shape: &[usize]) -> Tensor {
    let ds = data.shape();
    let mut out_shape = ds[..axis].to_vec();
    out_shape.extend(idx_shape);
    out_shape.extend(&ds[axis + 1..]);
    let v = data.as_f32().expect("f32");
    let want: Vec<f32> = indices(&out_shape)
        .iter()
        .map(|o| {
            let k = flat(idx_shape, &o[axis..axis + idx_shape.len()]);
            let dim = ds[axis] as i64;
            let i = idx[k];
            let i = (if i < 0 { i + dim } else { i }).clamp(0, dim - 1) as usize;
            let mut src = o[..axis].to_vec();
            src.push(i);
            src.extend(&o[axis + idx_shape.len()..]);
            v[flat(ds, &src)]
        })
        .collect();
    f32_tensor(&out_shape, want)
}

#[test]
fn gather_constant_and_runtime_indices() {
    let data = rand_tensor(&[4, 5, 3], 8);
    let idx = vec![3i64, -1, 0, 2, 9, -7];
    for axis in 0..3 {
        for runtime in [false, true] {
            for i32_idx in [false, true] {
                let it = if i32_idx {
                    tensor(
                        &[2, 3],
                        TensorData::I32(idx.iter().map(|&v| v as i32).collect()),
                    )
                } else {
                    i64_tensor(&[2, 3], idx.clone())
                };
                let mut g = Graph::new("gather");
                let d = g.add_input("data", data.ty());
                let i = if runtime {
                    g.add_input("idx", it.ty())
                } else {
                    g.add_const("idx", it.clone())
                };
                let y = g
                    .add_node(
                        Op::Gather { axis },
                        "g",
                        vec![ValueId::of(d), ValueId::of(i)],
                    )
                    .expect("valid");
                g.add_output("y", ValueId::of(y));
                let mut inputs = vec![data.clone()];
                if runtime {
                    inputs.push(it);
                }
                check(&g, &inputs, &[gather_ref(&data, axis, &idx, &[2, 3])], 0.0);
            }
        }
    }
}

#[test]
fn gather_from_constant_table_with_scalar_index() {
    // Embedding-style lookup: constant data, runtime scalar index.
    let table = rand_tensor(&[6, 4], 9);
    let mut g = Graph::new("emb");
    let t = g.add_const("table", table.clone());
    let i = g.add_input("i", TensorType::new(DType::I64, vec![]));
    let y = g
        .add_node(
            Op::Gather { axis: 0 },
            "g",
            vec![ValueId::of(t), ValueId::of(i)],
        )
        .expect("valid");
    g.add_output("y", ValueId::of(y));
    for k in [0i64, 5, -2, 100] {
        check(
            &g,
            &[i64_tensor(&[], vec![k])],
            &[gather_ref(&table, 0, &[k], &[])],
            0.0,
        );
    }
}
