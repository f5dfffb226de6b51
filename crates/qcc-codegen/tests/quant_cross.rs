//! Integer models cross-compiled for aarch64 and 32-bit ARM and run under
//! qemu-user on the oldest cores (`-cpu cortex-a53`, `-cpu cortex-a8`):
//! outputs equal the host's (and the interpreter's) bit for bit, so the i64
//! rescale, the magic-number rounding of Quantize and the packed dot
//! products behave the same everywhere. Objects for every ARM flavour
//! (A-profile and bare-metal M-profile) call nothing but memcpy/memset.
//!
//! A missing cross gcc or qemu skips the runs locally, and fails them when
//! `CI` is set.

mod common;
mod quant_common;
use common::*;
use object::{Object, ObjectSymbol};
use qcc_codegen::{compile, Options};
use qcc_ir::{
    DType, Epilogue, Graph, Op, PoolAttrs, QParams, Rescale, Tensor, TensorType, ValueId,
};
use quant_common::*;
use std::process::Command;

/// The cross toolchain for `triple`; `None` (skip) only outside CI.
fn toolchain(triple: &'static str) -> Option<Toolchain> {
    match cross(triple) {
        Some(tc) => Some(tc),
        None if std::env::var_os("CI").is_some() => panic!(
            "{triple}: cross gcc or qemu-user is missing, and CI is set (scripts/setup.sh installs them)"
        ),
        None => None,
    }
}

fn node(g: &mut Graph, op: Op, name: &str, ins: &[ValueId]) -> ValueId {
    ValueId::of(
        g.add_node(op, name, ins.to_vec())
            .unwrap_or_else(|e| panic!("{name}: {e}")),
    )
}

fn konst(g: &mut Graph, name: &str, t: Tensor) -> ValueId {
    ValueId::of(g.add_const(name, t))
}

fn full_epi(r: Rescale, zp: i32, to: DType) -> Epilogue {
    epi(r, zp, to)
}

/// f32 input → Quantize → QConv (packed dot products, per-channel fixed
/// point) → depthwise QConv (rows, per-channel pow2, fused Relu) → i8
/// MaxPool → QAvgPool → Dequantize. Outputs: the first conv's i8 result and
/// the final f32.
fn conv_model() -> (Graph, Vec<Tensor>) {
    let mut g = Graph::new("qconv_model");
    let xs = [1, 8, 13, 11];
    let x = g.add_input("x", TensorType::f32(xs.to_vec()));
    let q = QParams {
        scale: 0.02,
        zero_point: -4,
    };
    let xq = node(
        &mut g,
        Op::Quantize { q, to: DType::I8 },
        "q",
        &[ValueId::of(x)],
    );
    let w1 = ints(DType::I8, &[16, 8, 3, 3], &rand_ints(16 * 72, 2, -127, 127));
    let b1 = ints(DType::I32, &[16], &rand_ints(16, 3, -3000, 3000));
    let (w1, b1) = (konst(&mut g, "w1", w1), konst(&mut g, "b1", b1));
    let c1 = node(
        &mut g,
        Op::QConv {
            conv: conv_attrs(2, 1, 1, 1, 1),
            x_zero_point: -4,
            epi: full_epi(per_channel_fixed(16, 1.0 / 5000.0), 3, DType::I8),
            to: DType::I8,
        },
        "c1",
        &[xq, w1, b1],
    );
    let w2 = ints(DType::I8, &[16, 1, 3, 3], &rand_ints(16 * 9, 4, -127, 127));
    let b2 = ints(DType::I32, &[16], &rand_ints(16, 5, -500, 500));
    let (w2, b2) = (konst(&mut g, "w2", w2), konst(&mut g, "b2", b2));
    let relu = Epilogue {
        rescale: per_channel_pow2(16, 8),
        zero_point: -10,
        min: -10,
        max: 127,
    };
    let c2 = node(
        &mut g,
        Op::QConv {
            conv: conv_attrs(2, 2, 1, 1, 16),
            x_zero_point: 3,
            epi: relu,
            to: DType::I8,
        },
        "c2",
        &[c1, w2, b2],
    );
    let mp = PoolAttrs {
        kernel: vec![2, 2],
        strides: vec![1, 1],
        pads: vec![0, 0, 1, 1],
        dilations: vec![1, 1],
        ceil_mode: false,
        count_include_pad: true,
    };
    let p1 = node(&mut g, Op::MaxPool(mp.clone()), "mp", &[c2]);
    let p2 = node(
        &mut g,
        Op::QAvgPool {
            pool: mp,
            x_zero_point: -10,
            epi: full_epi(Rescale::fixed_point(0.25).unwrap(), -10, DType::I8),
        },
        "ap",
        &[p1],
    );
    let y = node(
        &mut g,
        Op::Dequantize {
            q: QParams {
                scale: 0.1,
                zero_point: -10,
            },
        },
        "dq",
        &[p2],
    );
    g.add_output("conv1", c1);
    g.add_output("y", y);
    // Half the input sits within an ulp of the quantization ties, where a
    // Quantize that multiplies by the reciprocal (AArch64's and x86's FMA
    // path, `qcc_ir::quant::quantize_fused`) must still round like the
    // division.
    assert!(qcc_ir::quant::exact_reciprocal(q.scale).is_some());
    let mut xv = rand_f32(xs.iter().product(), 9, -3.0, 3.0);
    for (i, v) in xv.iter_mut().take(600).enumerate() {
        let t = ((i / 3) as f32 - 100.0 + 0.5) * q.scale;
        *v = f32::from_bits(t.to_bits().wrapping_add_signed(i as i32 % 3 - 1));
    }
    let input = f32_tensor(&xs, xv);
    (g, vec![input])
}

/// f32 input → Quantize (u8) → QGemm (per-channel) → QAdd (broadcast
/// constant) → QMul (by itself) → Lut → Requantize (u8) → QMean → Dequantize;
/// the QGemm and the QMean requantize in float; the QAdd's output also goes
/// through a QSoftmax.
fn gemm_model() -> (Graph, Vec<Tensor>) {
    let mut g = Graph::new("qgemm_model");
    let (m, k, n) = (5, 50, 13);
    let a = g.add_input("a", TensorType::f32(vec![m, k]));
    let q = QParams {
        scale: 0.05,
        zero_point: 120,
    };
    let aq = node(
        &mut g,
        Op::Quantize { q, to: DType::U8 },
        "q",
        &[ValueId::of(a)],
    );
    let w = ints(DType::I8, &[k, n], &rand_ints(k * n, 6, -127, 127));
    let b = ints(DType::I32, &[n], &rand_ints(n, 7, -9000, 9000));
    let (w, b) = (konst(&mut g, "w", w), konst(&mut g, "b", b));
    let mm = node(
        &mut g,
        Op::QGemm {
            a_zero_point: 120,
            // The float form (ONNX Runtime's requantization) on every target.
            epi: full_epi(per_channel_float(n, 1.0 / 4000.0), -1, DType::I8),
            to: DType::I8,
        },
        "gemm",
        &[aq, w, b],
    );
    let c = konst(
        &mut g,
        "c",
        ints(DType::I8, &[n], &rand_ints(n, 8, -128, 127)),
    );
    let add = node(
        &mut g,
        Op::QAdd {
            a_zero_point: -1,
            a_multiplier: 1 << 20,
            b_zero_point: 0,
            b_multiplier: 3 << 18,
            epi: full_epi(
                Rescale::fixed_point(1.0 / (1 << 20) as f64).unwrap(),
                2,
                DType::I8,
            ),
            to: DType::I8,
        },
        "add",
        &[mm, c],
    );
    let mul = node(
        &mut g,
        Op::QMul {
            a_zero_point: 2,
            b_zero_point: 2,
            epi: full_epi(Rescale::uniform(1, 6), -128, DType::I8),
            to: DType::I8,
        },
        "mul",
        &[add, add],
    );
    let table: Vec<i32> = (0..256).map(|i| ((i * 7) % 256) - 128).collect();
    let lut = node(
        &mut g,
        Op::Lut {
            table,
            to: DType::I8,
        },
        "lut",
        &[mul],
    );
    let rq = node(
        &mut g,
        Op::Requantize {
            in_zero_point: 0,
            epi: full_epi(Rescale::fixed_point(0.6).unwrap(), 128, DType::U8),
            to: DType::U8,
        },
        "rq",
        &[lut],
    );
    let mean = node(
        &mut g,
        Op::QMean {
            axes: vec![1],
            keepdims: true,
            x_zero_point: 128,
            epi: full_epi(Rescale::float(&[1.0 / n as f32]).unwrap(), 128, DType::U8),
        },
        "mean",
        &[rq],
    );
    let y = node(
        &mut g,
        Op::Dequantize {
            q: QParams {
                scale: 0.5,
                zero_point: 128,
            },
        },
        "dq",
        &[mean],
    );
    let sm = node(
        &mut g,
        Op::QSoftmax {
            table: qcc_ir::quant::softmax_table(0.05),
            scale_inv: 256,
            zero_point: -128,
            to: DType::I8,
        },
        "softmax",
        &[add],
    );
    g.add_output("gemm", mm);
    g.add_output("lut", rq);
    g.add_output("y", y);
    g.add_output("softmax", sm);
    let input = f32_tensor(&[m, k], rand_f32(m * k, 10, -6.0, 6.0));
    (g, vec![input])
}

/// Compiles for `tc`'s triple (baseline CPU), links statically and runs
/// under `qemu -cpu QEMU_CPU`.
fn run_on(tc: &Toolchain, qemu_cpu: &str, g: &Graph, inputs: &[Tensor]) -> Vec<Tensor> {
    let opts = Options {
        target: tc.triple.map(str::to_string),
        prefix: "m".into(),
        ..Default::default()
    };
    let art = compile(g, &opts).unwrap_or_else(|e| panic!("compile: {e}"));
    let dir = tempfile::tempdir().expect("tempdir");
    let app = build_app_with(tc, dir.path(), g, &art, "m");
    for (i, t) in inputs.iter().enumerate() {
        std::fs::write(dir.path().join(format!("in{i}.bin")), t.to_le_bytes()).expect("input");
    }
    let runner = tc.runner.expect("a cross toolchain has an emulator");
    let o = Command::new(runner)
        .args(["-cpu", qemu_cpu])
        .arg(&app)
        .current_dir(dir.path())
        .output()
        .expect("run qemu");
    assert!(
        o.status.success(),
        "{runner} -cpu {qemu_cpu}: exit {:?}: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    g.outputs
        .iter()
        .enumerate()
        .map(|(j, out)| {
            let bytes = std::fs::read(dir.path().join(format!("out{j}.bin"))).expect("output");
            Tensor::from_le_bytes(g.value_type(out.value), &bytes).expect("output size")
        })
        .collect()
}

fn same_on_every_target(g: &Graph, inputs: &[Tensor]) {
    let host = run_native(g, inputs);
    // Outputs worth comparing: not constant, not all saturated.
    for (k, t) in host.iter().enumerate() {
        let mut v: Vec<u32> = t.to_f32_vec().iter().map(|x| x.to_bits()).collect();
        v.sort_unstable();
        v.dedup();
        assert!(
            v.len() >= 4,
            "{}: output {k} has {} distinct values",
            g.name,
            v.len()
        );
    }
    if let Some(want) = interp(g, inputs) {
        for (k, (a, b)) in host.iter().zip(&want).enumerate() {
            assert_same(
                a,
                b,
                &format!("{}: host vs interpreter, output {k}", g.name),
            );
        }
    }
    for (triple, cpu) in [
        ("aarch64-unknown-linux-gnu", "cortex-a53"),
        ("armv7-unknown-linux-gnueabihf", "cortex-a8"),
    ] {
        let Some(tc) = toolchain(triple) else {
            continue;
        };
        let got = run_on(&tc, cpu, g, inputs);
        for (k, (a, b)) in got.iter().zip(&host).enumerate() {
            assert_same(a, b, &format!("{}: {triple} vs host, output {k}", g.name));
        }
    }
}

#[test]
fn qconv_model_matches_the_host_on_arm() {
    let (g, inputs) = conv_model();
    same_on_every_target(&g, &inputs);
}

#[test]
fn qgemm_model_matches_the_host_on_arm() {
    let (g, inputs) = gemm_model();
    same_on_every_target(&g, &inputs);
}

/// Undefined symbols of an object: only memcpy/memset/memmove (or their
/// ARM run-time ABI forms) may appear, never libgcc/compiler-rt helpers
/// such as `__aeabi_lmul`, `__aeabi_llsr`, `__aeabi_f2iz` or libm's `rintf`.
fn check_undefined(obj: &[u8], what: &str) {
    let f = object::File::parse(obj).expect("parse object");
    for s in f.symbols() {
        let name = s.name().expect("symbol name");
        if !s.is_undefined() || name.is_empty() {
            continue;
        }
        let ok = ["memcpy", "memset", "memmove"].contains(&name)
            || [
                "__aeabi_memcpy",
                "__aeabi_memmove",
                "__aeabi_memset",
                "__aeabi_memclr",
            ]
            .iter()
            .any(|p| name.starts_with(p));
        assert!(ok, "{what}: undefined symbol {name}");
    }
}

#[test]
fn integer_objects_call_no_runtime_helpers() {
    for (g, _) in [conv_model(), gemm_model()] {
        for triple in [
            None,
            Some("aarch64-unknown-linux-gnu"),
            Some("armv7-unknown-linux-gnueabihf"),
            Some("thumbv7em-none-eabihf"),
            Some("thumbv8m.main-none-eabihf"),
        ] {
            let opts = Options {
                target: triple.map(str::to_string),
                prefix: "m".into(),
                ..Default::default()
            };
            let what = format!("{} for {triple:?}", g.name);
            let art = compile(&g, &opts).unwrap_or_else(|e| panic!("{what}: {e}"));
            check_undefined(&art.object, &what);
        }
    }
}
