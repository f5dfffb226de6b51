//! The binary-layer kernel (`SignMatMul`: Sign(u) · w with w ∈ {-1, +1},
//! weights as bits, popcount), run natively on random shapes (K across and
//! off the 64-bit word boundary, batched rows), inputs holding zeros of both
//! signs and a NaN row, against a direct sum computed here and the
//! interpreter: exact; and QONNX's bipolar form (zeros +1, NaN -1). The same
//! for the binary convolution (`SignConv`: windows across the border,
//! strides, dilations, channels across the word boundary, a NaN); and both
//! with random thresholds (`SignStep`: BN + Sign folded) on their counts.

mod common;
use common::*;
use qcc_ir::{Op, SignStep, Tensor, ValueId};

/// Random thresholds for `n` channels of counts within ±`k` (some past
/// either end, some flipped, zero bands of 0 to 3 counts), or none.
fn random_step(n: usize, k: usize, seed: u64, on: bool) -> Option<Box<SignStep>> {
    if !on {
        return None;
    }
    let r = rand_f32(3 * n, seed, 0.0, 1.0);
    let k = k as f32 + 2.0;
    let zero: Vec<i32> = (0..n)
        .map(|o| (r[o] * 2.0 * k - k).round() as i32)
        .collect();
    Some(Box::new(SignStep {
        flip: (0..n).map(|o| r[n + o] < 0.4).collect(),
        pos: (0..n)
            .map(|o| zero[o] + (r[2 * n + o] * 3.0) as i32)
            .collect(),
        zero,
    }))
}

/// The thresholds' output for count `c` of channel `o` (written out here,
/// not `SignStep::apply`): NaN stays NaN.
fn stepped(step: &Option<Box<SignStep>>, o: usize, c: f32) -> f32 {
    let Some(s) = step else { return c };
    if c.is_nan() {
        return c;
    }
    let m = if s.flip[o] { -c } else { c };
    if m >= s.pos[o] as f32 {
        1.0
    } else if m >= s.zero[o] as f32 {
        0.0
    } else {
        -1.0
    }
}

fn sign_matmul_case(ushape: &[usize], n: usize, seed: u64, bipolar: bool, thresholds: bool) {
    let k = *ushape.last().unwrap();
    let rows: usize = ushape.iter().product::<usize>() / k;
    let mut u = rand_f32(rows * k, seed, -1.0, 1.0);
    // Zeros of both signs (Sign gives 0: neither mask), and a NaN row.
    for (i, v) in u.iter_mut().enumerate() {
        match i % 7 {
            3 => *v = 0.0,
            5 => *v = -0.0,
            _ => {}
        }
    }
    if rows > 1 {
        u[k + k / 2] = f32::NAN;
    }
    let w: Vec<f32> = rand_f32(k * n, seed + 1, -1.0, 1.0)
        .iter()
        .map(|&v| if v < 0.0 { -1.0 } else { 1.0 })
        .collect();
    let (mut g, x) = graph_with_input(ushape);
    let wc = g.add_const("w", f32_tensor(&[k, n], w.clone()));
    let step = random_step(n, k, seed + 2, thresholds);
    let y = g
        .add_node(
            Op::SignMatMul {
                bipolar,
                step: step.clone(),
            },
            "b",
            vec![ValueId::of(x), ValueId::of(wc)],
        )
        .expect("valid");
    g.add_output("y", ValueId::of(y));
    let mut want = vec![0f32; rows * n];
    for r in 0..rows {
        let row = &u[r * k..(r + 1) * k];
        for j in 0..n {
            let s: i64 = row
                .iter()
                .enumerate()
                .map(|(kk, &v)| {
                    // Bipolar: zeros count +1, NaN -1.
                    let sg = if bipolar {
                        if v >= 0.0 {
                            1
                        } else {
                            -1
                        }
                    } else if v > 0.0 {
                        1
                    } else if v < 0.0 {
                        -1
                    } else {
                        0
                    };
                    sg * w[kk * n + j] as i64
                })
                .sum();
            let count = if !bipolar && row.iter().any(|v| v.is_nan()) {
                f32::NAN
            } else {
                s as f32
            };
            want[r * n + j] = stepped(&step, j, count);
        }
    }
    let mut oshape = ushape[..ushape.len() - 1].to_vec();
    oshape.push(n);
    let input: Tensor = f32_tensor(ushape, u);
    let want = f32_tensor(&oshape, want);
    let interp = qcc_interp::run(&g, std::slice::from_ref(&input)).expect("interpreter");
    assert_close(
        &interp[0],
        &want,
        0.0,
        &format!("interpreter {ushape:?} x {n}"),
    );
    check(&g, &[input], &[want], 0.0);
}

#[test]
fn sign_matmul_counts_exactly() {
    for (i, (shape, n)) in [
        (&[1usize, 1][..], 1usize),
        (&[3, 64], 5),
        (&[2, 130], 7),
        (&[4, 200], 33),
        (&[2, 3, 65], 4),
        (&[129], 3),
        // 49 words: byte counts summed in runs of 31 words, then 18.
        (&[2, 3136], 10),
    ]
    .into_iter()
    .enumerate()
    {
        sign_matmul_case(shape, n, 11 + i as u64, false, false);
        sign_matmul_case(shape, n, 31 + i as u64, true, false);
        sign_matmul_case(shape, n, 91 + i as u64, i % 2 == 0, true);
    }
}

/// `SignConv` on `x` `[n, c, h, w]` by ±1 weights `[oc, c, kh, kw]`: the
/// native kernel and the interpreter against a direct sum over each window
/// (padding counts 0) computed here.
#[allow(clippy::too_many_arguments)]
fn sign_conv_case(
    x_shape: [usize; 4],
    (oc, kh, kw): (usize, usize, usize),
    strides: [usize; 2],
    pads: [usize; 4],
    dil: [usize; 2],
    seed: u64,
    bipolar: bool,
    thresholds: bool,
) {
    let [n, c, h, w] = x_shape;
    let mut x = rand_f32(n * c * h * w, seed, -1.0, 1.0);
    for (i, v) in x.iter_mut().enumerate() {
        match i % 7 {
            3 => *v = 0.0,
            5 => *v = -0.0,
            _ => {}
        }
    }
    // One NaN: the windows that hold it give NaN (bipolar: it counts -1).
    if n > 1 {
        x[c * h * w + (c / 2) * h * w + (h / 2) * w + w / 2] = f32::NAN;
    }
    let wv: Vec<f32> = rand_f32(oc * c * kh * kw, seed + 1, -1.0, 1.0)
        .iter()
        .map(|&v| if v < 0.0 { -1.0 } else { 1.0 })
        .collect();
    let conv = qcc_ir::ConvAttrs {
        strides: strides.to_vec(),
        pads: pads.to_vec(),
        dilations: dil.to_vec(),
        group: 1,
        output_padding: vec![0, 0],
    };
    let (mut g, xi) = graph_with_input(&x_shape);
    let wc = g.add_const("w", f32_tensor(&[oc, c, kh, kw], wv.clone()));
    let step = random_step(oc, c * kh * kw, seed + 2, thresholds);
    let y = g
        .add_node(
            Op::SignConv {
                conv,
                bipolar,
                step: step.clone(),
            },
            "b",
            vec![ValueId::of(xi), ValueId::of(wc)],
        )
        .expect("valid");
    g.add_output("y", ValueId::of(y));
    let oh = (h + pads[0] + pads[2] - dil[0] * (kh - 1) - 1) / strides[0] + 1;
    let ow = (w + pads[1] + pads[3] - dil[1] * (kw - 1) - 1) / strides[1] + 1;
    let sign = |v: f32| -> Option<i64> {
        if bipolar {
            Some(if v >= 0.0 { 1 } else { -1 })
        } else if v.is_nan() {
            None
        } else {
            Some((v > 0.0) as i64 - (v < 0.0) as i64)
        }
    };
    let mut want = vec![0f32; n * oc * oh * ow];
    for b in 0..n {
        for o in 0..oc {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut s = Some(0i64);
                    for ci in 0..c {
                        for ki in 0..kh {
                            for kj in 0..kw {
                                let iy =
                                    (oy * strides[0] + ki * dil[0]) as isize - pads[0] as isize;
                                let ix =
                                    (ox * strides[1] + kj * dil[1]) as isize - pads[1] as isize;
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                    continue;
                                }
                                let v = x[((b * c + ci) * h + iy as usize) * w + ix as usize];
                                let wt = wv[((o * c + ci) * kh + ki) * kw + kj] as i64;
                                s = s.zip(sign(v)).map(|(s, sg)| s + sg * wt);
                            }
                        }
                    }
                    let count = s.map_or(f32::NAN, |s| s as f32);
                    want[((b * oc + o) * oh + oy) * ow + ox] = stepped(&step, o, count);
                }
            }
        }
    }
    let input = f32_tensor(&x_shape, x);
    let want = f32_tensor(&[n, oc, oh, ow], want);
    let what = format!(
        "sign_conv {x_shape:?} oc {oc} k {kh}x{kw} bipolar {bipolar} thresholds {thresholds}"
    );
    let interp = qcc_interp::run(&g, std::slice::from_ref(&input)).expect("interpreter");
    assert_close(&interp[0], &want, 0.0, &format!("interpreter {what}"));
    check(&g, &[input], &[want], 0.0);
}

/// `(input, (oc, kh, kw), strides, pads, dilations)`.
type ConvCase = (
    [usize; 4],
    (usize, usize, usize),
    [usize; 2],
    [usize; 4],
    [usize; 2],
);

#[test]
fn sign_conv_counts_exactly() {
    let cases: [ConvCase; 8] = [
        ([1, 1, 1, 1], (1, 1, 1), [1, 1], [0, 0, 0, 0], [1, 1]),
        ([2, 3, 7, 6], (5, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1]),
        ([2, 64, 5, 5], (8, 3, 3), [2, 2], [1, 0, 0, 1], [1, 1]),
        ([2, 70, 6, 4], (17, 3, 2), [1, 2], [2, 1, 0, 1], [2, 1]),
        ([1, 130, 4, 4], (9, 1, 1), [1, 1], [0, 0, 0, 0], [1, 1]),
        ([2, 16, 9, 9], (16, 5, 5), [3, 2], [2, 2, 2, 2], [1, 2]),
        // 45 words a window, 5 a tap: byte counts summed per tap's run.
        ([2, 260, 5, 5], (6, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1]),
        // 49 one-word taps: each word's count on its own.
        ([2, 16, 9, 9], (4, 7, 7), [1, 1], [3, 3, 3, 3], [1, 1]),
    ];
    for (i, (x, k, s, p, d)) in cases.into_iter().enumerate() {
        sign_conv_case(x, k, s, p, d, 51 + i as u64, false, false);
        sign_conv_case(x, k, s, p, d, 71 + i as u64, true, false);
        sign_conv_case(x, k, s, p, d, 111 + i as u64, i % 2 == 1, true);
    }
}

/// The counting loop's population count is each target's own: AVX2's
/// nibble table (`vpshufb`, no `popcnt` instruction it lacks), AVX-512
/// `vpopcntq` on a core with VPOPCNTDQ, NEON `cnt` on AArch64 and ARMv7,
/// and plain ALU code on a Cortex-M4 (no vector unit, no library call).
#[test]
fn popcount_is_each_targets_own() {
    let (mut g, x) = graph_with_input(&[1, 64, 6, 6]);
    let w: Vec<f32> = rand_f32(16 * 64 * 9, 3, -1.0, 1.0)
        .iter()
        .map(|&v| if v < 0.0 { -1.0 } else { 1.0 })
        .collect();
    let wc = g.add_const("w", f32_tensor(&[16, 64, 3, 3], w));
    let conv = qcc_ir::ConvAttrs {
        strides: vec![1, 1],
        pads: vec![1, 1, 1, 1],
        dilations: vec![1, 1],
        group: 1,
        output_padding: vec![0, 0],
    };
    let y = g
        .add_node(
            Op::SignConv {
                conv,
                bipolar: false,
                step: None,
            },
            "b",
            vec![ValueId::of(x), ValueId::of(wc)],
        )
        .expect("valid");
    g.add_output("y", ValueId::of(y));
    let asm_for = |triple: &str, cpu: &str| -> Vec<String> {
        let opts = qcc_codegen::Options {
            target: Some(triple.into()),
            cpu: Some(cpu.into()),
            emit_asm: true,
            prefix: "m".into(),
            ..Default::default()
        };
        let asm = qcc_codegen::compile(&g, &opts)
            .expect("compiles")
            .asm
            .expect("asm");
        // The node's function, label to end.
        let mut body = vec![];
        let mut inside = false;
        for l in asm.lines() {
            let t = l.trim();
            if t.ends_with("sign_conv:") {
                inside = true;
            } else if inside && t.starts_with(".Lfunc_end") {
                break;
            } else if inside && !t.is_empty() && !t.starts_with('.') && !t.ends_with(':') {
                body.push(t.to_string());
            }
        }
        assert!(!body.is_empty(), "{triple} {cpu}: no sign_conv function");
        body
    };
    let has =
        |body: &[String], m: &str| body.iter().any(|l| l.split_whitespace().next() == Some(m));
    let x86 = "x86_64-unknown-linux-gnu";
    let haswell = asm_for(x86, "haswell");
    assert!(has(&haswell, "vpshufb"), "{haswell:#?}");
    assert!(
        !haswell.iter().any(|l| l.starts_with("vpopcnt")),
        "{haswell:#?}"
    );
    let icelake = asm_for(x86, "icelake-server");
    assert!(
        ["vpopcntb", "vpopcntq", "vpopcntd"]
            .iter()
            .any(|m| has(&icelake, m)),
        "{icelake:#?}"
    );
    let a53 = asm_for("aarch64-unknown-linux-gnu", "cortex-a53");
    assert!(has(&a53, "cnt"), "{a53:#?}");
    let a8 = asm_for("armv7-unknown-linux-gnueabihf", "cortex-a8");
    assert!(has(&a8, "vcnt.8"), "{a8:#?}");
    // No vector count, and no call but the scratch clearing (memset).
    let m4 = asm_for("thumbv7em-none-eabihf", "cortex-m4");
    let calls: Vec<&String> = m4
        .iter()
        .filter(|l| l.starts_with("bl\t") && !l.contains("mem"))
        .collect();
    assert!(
        calls.is_empty() && !m4.iter().any(|l| l.starts_with("vcnt")),
        "{calls:#?}"
    );
}
