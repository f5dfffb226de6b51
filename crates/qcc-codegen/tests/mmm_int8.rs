//! The int8 microkernel battery: QConv and QGemm graphs with shapes drawn to
//! hit every edge (rows past `MR`, columns past `NR`, K not a multiple of
//! four, N blocks with a tail, asymmetric padding, strides, dilations,
//! groups, depthwise, batches, 1-D), i8 and u8 activations and outputs, per-channel
//! and power-of-two epilogues, and the worst-case extremes, compiled for
//! every dot instruction (`vpdpbusd`, AVX2 `vpmaddwd`, AVX2 `vpmaddubsw` on
//! the same batteries with weights clamped to ±64, AArch64 `sdot` and
//! `smull`/`sadalp`, the portable widening kernel on x86-64 baseline and
//! ARMv7) and
//! checked bit for bit against the interpreter, natively or under qemu.

mod common;
mod quant_common;
use common::*;
use qcc_codegen::{compile, Options};
use qcc_ir::{ConvAttrs, DType, Epilogue, Graph, Op, Rescale, Tensor, ValueId};
use quant_common::*;

struct Lcg(u64);
impl Lcg {
    fn next(&mut self, lo: usize, hi: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        lo + ((self.0 >> 33) as usize) % (hi - lo + 1)
    }
    fn pick<T: Copy>(&mut self, v: &[T]) -> T {
        v[self.next(0, v.len() - 1)]
    }
}

/// An epilogue onto `to` for accumulators of about `±span`, per channel
/// (fixed point, power of two or float), with a random zero point and
/// sometimes a fused Relu-like clamp.
fn draw_epi(r: &mut Lcg, m: usize, span: f64, to: DType) -> Epilogue {
    let factor = 100.0 / span.max(1.0);
    let rescale = match r.next(0, 3) {
        0 => per_channel_fixed(m, factor),
        1 => per_channel_pow2(m, (-factor.log2()).round().max(0.0) as u32),
        2 => per_channel_float(m, factor),
        _ => Rescale::fixed_point(factor).expect("factor"),
    };
    let (lo, hi) = range(to);
    let zp = r.next(0, (hi - lo) as usize) as i32 + lo;
    let min = if r.next(0, 3) == 0 { zp } else { lo };
    Epilogue {
        rescale,
        zero_point: zp,
        min,
        max: hi,
    }
}

fn add_case(
    g: &mut Graph,
    feed: &mut Vec<Tensor>,
    c: usize,
    op: Op,
    x: Tensor,
    consts: [Tensor; 2],
) {
    let xi = g.add_input(format!("x{c}"), x.ty());
    feed.push(x);
    let [w, b] = consts;
    let w = g.add_const(format!("w{c}"), w);
    let b = g.add_const(format!("b{c}"), b);
    let y = g
        .add_node(
            op,
            format!("n{c}"),
            vec![ValueId::of(xi), ValueId::of(w), ValueId::of(b)],
        )
        .expect("valid node");
    g.add_output(format!("y{c}"), ValueId::of(y));
}

/// Random QConv cases, one graph input and output each.
fn conv_battery(seed: u64, cases: usize) -> (Graph, Vec<Tensor>) {
    let mut r = Lcg(seed);
    let mut g = Graph::new("qbattery");
    let mut feed = vec![];
    for c in 0..cases {
        let (k, s, d) = (r.next(1, 4), r.next(1, 3), r.next(1, 2));
        // Every sixth case is a depthwise one of stride 2 (on x86 its float
        // plane is split into even and odd columns).
        let s = if c % 6 == 2 { 2 } else { s };
        let rank = if r.next(0, 4) == 0 { 1 } else { 2 };
        // Every third case is depthwise (its own kernel, `mmm/qdw.rs`),
        // with a channel multiplier of 1 or 2 and widths around the vectors.
        let (group, cin, cout, hw) = if c % 3 == 2 {
            let cin = r.next(1, 12);
            (cin, cin, cin * r.next(1, 2), r.next(k * d, 40))
        } else {
            let group = if r.next(0, 3) == 0 { 2 } else { 1 };
            // Some wide rows: several vector steps of the packing, a ragged end.
            let hw = if c % 3 == 1 {
                r.next(k * d + 30, 70)
            } else {
                r.next(k * d, 19)
            };
            (group, group * r.next(1, 20), group * r.next(4, 36), hw)
        };
        let pads: Vec<usize> = (0..2 * rank).map(|_| r.next(0, k - 1)).collect();
        let batch = r.next(1, 2);
        let (xdt, to) = (
            r.pick(&[DType::I8, DType::U8]),
            r.pick(&[DType::I8, DType::U8]),
        );
        let mut xs = vec![batch, cin];
        xs.extend(std::iter::repeat_n(hw, rank));
        let mut ws = vec![cout, cin / group];
        ws.extend(std::iter::repeat_n(k, rank));
        let attrs = ConvAttrs {
            strides: vec![s; rank],
            pads,
            dilations: vec![d; rank],
            group,
            output_padding: vec![0; rank],
        };
        let kk = cin / group * k.pow(rank as u32);
        let span = 127.0 * 70.0 * (kk as f64).sqrt();
        let epi = draw_epi(&mut r, cout, span, to);
        let (lo, hi) = range(xdt);
        let zx = r.next(0, (hi - lo) as usize) as i32 + lo;
        let x = rand_t8(xdt, &xs, seed + c as u64);
        let nw: usize = ws.iter().product();
        let w = ints(
            DType::I8,
            &ws,
            &rand_ints(nw, seed + 100 + c as u64, -128, 127),
        );
        let b = ints(
            DType::I32,
            &[cout],
            &rand_ints(cout, seed + 200 + c as u64, -9000, 9000),
        );
        let op = Op::QConv {
            conv: attrs,
            x_zero_point: zx,
            epi,
            to,
        };
        add_case(&mut g, &mut feed, c, op, x, [w, b]);
    }
    (g, feed)
}

/// Case `c`: a random QGemm `[m,k] × [k,n]` (types, zero point and epilogue
/// drawn from `r`; data from seeds `seed + c`, `seed + 100 + c`, `seed + 200 + c`).
fn add_gemm_case(
    g: &mut Graph,
    feed: &mut Vec<Tensor>,
    r: &mut Lcg,
    c: usize,
    (m, k, n): (usize, usize, usize),
    seed: u64,
) {
    let (adt, to) = (
        r.pick(&[DType::I8, DType::U8]),
        r.pick(&[DType::I8, DType::U8]),
    );
    let (lo, hi) = range(adt);
    let za = r.next(0, (hi - lo) as usize) as i32 + lo;
    let epi = draw_epi(r, n, 127.0 * 70.0 * (k as f64).sqrt(), to);
    let a = rand_t8(adt, &[m, k], seed + c as u64);
    let w = ints(
        DType::I8,
        &[k, n],
        &rand_ints(k * n, seed + 100 + c as u64, -128, 127),
    );
    let b = ints(
        DType::I32,
        &[n],
        &rand_ints(n, seed + 200 + c as u64, -9000, 9000),
    );
    let op = Op::QGemm {
        a_zero_point: za,
        epi,
        to,
    };
    add_case(g, feed, c, op, a, [w, b]);
}

/// Random QGemm cases (K a multiple of four or not: a partial last group).
fn gemm_battery(seed: u64, cases: usize) -> (Graph, Vec<Tensor>) {
    let mut r = Lcg(seed);
    let mut g = Graph::new("qbattery");
    let mut feed = vec![];
    for c in 0..cases {
        let (m, n) = (r.pick(&[1, 1, 2, 7, 9, 17, 32]), r.next(1, 150));
        let k = if c % 5 == 4 {
            r.next(1, 90)
        } else {
            4 * r.next(1, 80)
        };
        add_gemm_case(&mut g, &mut feed, &mut r, c, (m, k, n), seed);
    }
    (g, feed)
}

/// The extremes: every activation at one end of its range against weights
/// of one sign at -128 or 127 and K in the thousands (the sums `vpmaddubsw`
/// would saturate on), for both activation types, conv and gemm.
fn worst_cases() -> (Graph, Vec<Tensor>) {
    let mut g = Graph::new("worst");
    let mut feed = vec![];
    let mut c = 0;
    // Shifts of 33 and more take the 32-bit requantization on x86 (`.h`
    // microkernels): per channel, at its smallest and largest shifts, with
    // the largest multipliers, and sums that land in range (shift 51).
    let high = |n: usize| Rescale {
        multiplier: (0..n)
            .map(|c| [i32::MAX, 1 << 30, 1_234_567_891, i32::MAX - 1][c % 4])
            .collect(),
        shift: (0..n).map(|c| [51, 33, 62, 52][c % 4]).collect(),
        float: None,
    };
    // Each case once per rescale: a pure shift, then the high shifts.
    let mut add =
        |op: &dyn Fn(Epilogue) -> Op, rescales: [Rescale; 2], x: Tensor, wb: [Tensor; 2]| {
            for rescale in rescales {
                let epi = Epilogue {
                    rescale,
                    zero_point: 0,
                    min: -128,
                    max: 127,
                };
                add_case(&mut g, &mut feed, c, op(epi), x.clone(), wb.clone());
                c += 1;
            }
        };
    for (xdt, xv, zx) in [
        (DType::U8, 255, 0),
        (DType::I8, -128, 0),
        (DType::I8, 127, -128),
    ] {
        for wv in [-128i64, 127] {
            let k = 4096;
            let gemm = |epi| Op::QGemm {
                a_zero_point: zx,
                epi,
                to: DType::I8,
            };
            add(
                &gemm,
                [Rescale::uniform(1, 20), high(5)],
                ints(xdt, &[3, k], &vec![xv; 3 * k]),
                [
                    ints(DType::I8, &[k, 5], &vec![wv; 5 * k]),
                    ints(DType::I32, &[5], &[0, 1, -1, 1000, -1000]),
                ],
            );
            let conv = |epi| Op::QConv {
                conv: conv_attrs(2, 1, 1, 1, 1),
                x_zero_point: zx,
                epi,
                to: DType::I8,
            };
            add(
                &conv,
                [Rescale::uniform(1, 20), high(8)],
                ints(xdt, &[1, 256, 3, 3], &vec![xv; 256 * 9]),
                [
                    ints(DType::I8, &[8, 256, 3, 3], &vec![wv; 8 * 256 * 9]),
                    ints(DType::I32, &[8], &[0; 8]),
                ],
            );
            // Depthwise 7×7: 49 taps at the extremes, the largest sums the
            // depthwise kernel's exact f32 taps (x86) ever hold.
            let dw = |epi| Op::QConv {
                conv: conv_attrs(2, 1, 3, 1, 3),
                x_zero_point: zx,
                epi,
                to: DType::I8,
            };
            let dw_high = Rescale {
                multiplier: vec![i32::MAX, 1 << 30, 1_500_000_001],
                shift: vec![44, 33, 62],
                float: None,
            };
            add(
                &dw,
                [Rescale::uniform(1, 12), dw_high],
                ints(xdt, &[1, 3, 9, 9], &vec![xv; 3 * 81]),
                [
                    ints(DType::I8, &[3, 1, 7, 7], &vec![wv; 3 * 49]),
                    ints(DType::I32, &[3], &[0, 7, -7]),
                ],
            );
        }
    }
    (g, feed)
}

fn batteries() -> Vec<(Graph, Vec<Tensor>)> {
    vec![
        conv_battery(11_000, 14),
        conv_battery(12_000, 14),
        gemm_battery(13_000, 14),
        worst_cases(),
    ]
}

/// Compiles `g` with `opts` and asserts that the module has int8
/// microkernels of `dot` (and no other; `dot` may name two, "vnni512|amx")
/// and that QConv/QGemm call them.
fn assert_uses(g: &Graph, opts: &Options, dot: &str) {
    let opts = Options {
        emit_llvm_ir: true,
        prefix: "m".into(),
        ..opts.clone()
    };
    let ir = compile(g, &opts).expect("compiles").llvm_ir.expect("ir");
    let defs: Vec<&str> = ir
        .lines()
        .filter(|l| l.starts_with("define") && l.contains("@qcc.mmm.i8."))
        .collect();
    assert!(!defs.is_empty(), "no int8 microkernel for {dot}");
    let dots: Vec<&str> = dot.split('|').collect();
    for d in &defs {
        assert!(
            dots.iter()
                .any(|k| d.contains(&format!("@qcc.mmm.i8.{k}."))),
            "unexpected {d}"
        );
    }
    // Every battery has rescales with shifts of 33 and more: on x86 they
    // take the 32-bit requantization, on ARM never.
    let x86 = dots
        .iter()
        .any(|k| matches!(*k, "vnni512" | "maddwd" | "maddubs" | "amx"));
    let high = defs.iter().any(|d| d.contains(".h("));
    assert_eq!(high, x86, "32-bit requantization microkernels for {dot}");
}

fn check(tc: &Toolchain, opts: Options, runner_args: &[&str], dot: &str) {
    check_graphs(batteries(), tc, opts, runner_args, dot)
}

fn check_graphs(
    graphs: Vec<(Graph, Vec<Tensor>)>,
    tc: &Toolchain,
    opts: Options,
    runner_args: &[&str],
    dot: &str,
) {
    for (g, feed) in graphs {
        if !dot.is_empty() {
            let opts = Options {
                target: tc.triple.map(str::to_string),
                ..opts.clone()
            };
            assert_uses(&g, &opts, dot);
        }
        let want = qcc_interp::run(&g, &feed).expect("interpreter");
        let raw: Vec<Vec<u8>> = feed.iter().map(|t| t.to_le_bytes()).collect();
        let got = run_with_opts(tc, &g, &raw, opts.clone(), runner_args);
        for (j, (a, b)) in got.iter().zip(&want).enumerate() {
            assert_same(a, b, &format!("{dot} {} output {j}", g.name));
        }
    }
}

/// The batteries with every QConv/QGemm weight clamped to ±64, the range on
/// which AVX2 `vpmaddubsw` cannot saturate (the extremes stay extreme: u8
/// 255 against ±64 is the largest pair sum it may see).
fn small_weight_batteries() -> Vec<(Graph, Vec<Tensor>)> {
    clamped_batteries(-64, 64)
}

/// The batteries with every QConv/QGemm weight clamped to `[lo, hi]`, its
/// type saying how many bits they take (what codegen stores them in).
fn clamped_batteries(lo: i64, hi: i64) -> Vec<(Graph, Vec<Tensor>)> {
    batteries()
        .into_iter()
        .map(|(mut g, feed)| {
            for id in g.node_ids() {
                let n = g.node(id);
                if !matches!(n.op, Op::QConv { .. } | Op::QGemm { .. }) {
                    continue;
                }
                let w = n.inputs()[1];
                let t = g.const_value(w).expect("constant weight").clone();
                let v: Vec<i64> = t
                    .to_i64_vec()
                    .expect("int8")
                    .iter()
                    .map(|&x| x.clamp(lo, hi))
                    .collect();
                let axis = match n.op {
                    Op::QConv { .. } => 0,
                    _ => 1,
                };
                let channels = t.shape()[axis];
                let c = g.add_const(format!("{}/small", n.name), ints(DType::I8, t.shape(), &v));
                g.set_axis_quant(
                    ValueId::of(c),
                    Some(qcc_ir::AxisQuant {
                        axis,
                        scales: vec![1.0; channels],
                        zero_points: vec![0],
                        bits: qcc_ir::AxisQuant::bits_for(v.iter().copied(), true),
                    }),
                );
                g.set_input(id, 1, ValueId::of(c));
            }
            g.remove_dead_nodes();
            (g, feed)
        })
        .collect()
}

#[test]
fn avx2_maddubs_on_small_weights_matches_interpreter() {
    if !cfg!(target_arch = "x86_64") {
        return;
    }
    assert!(host_has("avx2"), "the x86 test machines have AVX2");
    check_graphs(
        small_weight_batteries(),
        &HOST,
        x86("+avx2,+fma"),
        &[],
        "maddubs",
    );
}

/// Weights within [-8, 7] (4-bit) are stored two per byte, within [-2, 1]
/// (2-bit, ternary) four per byte, and unpacked per panel at run time: the
/// same results as the interpreter on AVX2 (`vpmaddubsw`), baseline x86,
/// AArch64 with and without `sdot` and ARMv7 under qemu; the object's QConv (`qw`) and
/// QGemm (`qb`) weight tables are the packed ones.
#[test]
fn packed_weights_match_interpreter() {
    for (bits, lo, hi) in [(4, -8, 7), (2, -2, 1)] {
        let packed = || clamped_batteries(lo, hi);
        let opts = Options {
            emit_llvm_ir: true,
            prefix: "m".into(),
            ..x86("+avx2,+fma")
        };
        let ir: String = packed()
            .iter()
            .map(|(g, _)| compile(g, &opts).expect("compiles").llvm_ir.expect("ir"))
            .collect();
        for t in ["qw", "qb"] {
            assert!(
                ir.contains(&format!("@mmm.{t}{bits}")),
                "no {bits}-bit {t} table"
            );
            assert!(
                !ir.contains(&format!("@mmm.{t} ")) && !ir.contains(&format!("@mmm.{t}.")),
                "{t} byte tables left at {bits} bits"
            );
        }
        if cfg!(target_arch = "x86_64") {
            check_graphs(packed(), &HOST, x86("+avx2,+fma"), &[], "maddubs");
            check_graphs(packed(), &HOST, x86(""), &[], "widen");
        }
        if let Some(tc) = cross("aarch64-unknown-linux-gnu") {
            check_graphs(packed(), &tc, Options::default(), &[], "sadalp");
            let dotprod = Options {
                features: Some("+dotprod".into()),
                ..Default::default()
            };
            check_graphs(packed(), &tc, dotprod, &["-cpu", "max"], "sdot");
        }
        if let Some(tc) = cross("armv7-unknown-linux-gnueabihf") {
            check_graphs(packed(), &tc, Options::default(), &[], "widen");
        }
    }
}

fn host_has(flag: &str) -> bool {
    std::fs::read_to_string("/proc/cpuinfo")
        .map(|s| s.split_whitespace().any(|w| w == flag))
        .unwrap_or(false)
}

/// Baseline x86-64 plus `features` (named CPUs do not yet tell qcc which
/// features they imply, so the level is spelled out).
fn x86(features: &str) -> Options {
    Options {
        cpu: Some("x86-64".into()),
        features: (!features.is_empty()).then(|| features.to_string()),
        ..Default::default()
    }
}

#[test]
fn host_dot_matches_interpreter() {
    let dot = if !cfg!(target_arch = "x86_64") {
        return check(&HOST, Options::default(), &[], "");
    } else if host_amx() {
        // QGemms of 8 rows and more run on AMX tiles.
        "vnni512|amx"
    } else if host_has("avx512_vnni") && host_has("avx512bw") {
        "vnni512"
    } else {
        "maddwd"
    };
    check(&HOST, Options::default(), &[], dot);
}

/// The host has AMX and its Linux grants the tile state (else host objects
/// use VNNI, and AMX objects would return 3).
fn host_amx() -> bool {
    ["amx_tile", "amx_int8", "avx512bw", "avx512_vnni"]
        .iter()
        .all(|f| host_has(f))
        && qcc_codegen::mmm::amx::host_grants_amx()
}

/// The conv battery, then QGemms shaped for AMX tiles: rows around the
/// 16-row tiles and 32-row blocks, columns around the 32-column block, K
/// from one 64-byte tile row on (and not a multiple of four), and the
/// extremes over K = 4096.
fn amx_battery() -> (Graph, Vec<Tensor>) {
    const CONVS: usize = 12;
    let (mut g, mut feed) = conv_battery(17_000, CONVS);
    let mut r = Lcg(17_000);
    let shapes = [
        (8, 64, 32),
        (16, 64, 1),
        (17, 129, 33),
        (31, 65, 31),
        (32, 128, 64),
        (33, 100, 17),
        (40, 71, 150),
        (64, 512, 48),
        (70, 190, 96),
    ];
    for (c, &(m, k, n)) in shapes.iter().enumerate() {
        add_gemm_case(&mut g, &mut feed, &mut r, CONVS + c, (m, k, n), 300);
    }
    let high = Rescale {
        multiplier: vec![i32::MAX, 1 << 30, 1_234_567_891, i32::MAX - 1, 7],
        shift: vec![51, 33, 62, 52, 40],
        float: None,
    };
    let k = 4096;
    let mut c = CONVS + shapes.len();
    for (xdt, xv, zx) in [
        (DType::U8, 255, 0),
        (DType::I8, -128, 0),
        (DType::I8, 127, -128),
    ] {
        for wv in [-128i64, 127] {
            for rescale in [Rescale::uniform(1, 20), high.clone()] {
                let op = Op::QGemm {
                    a_zero_point: zx,
                    epi: Epilogue {
                        rescale,
                        zero_point: 0,
                        min: -128,
                        max: 127,
                    },
                    to: DType::I8,
                };
                let wb = [
                    ints(DType::I8, &[k, 5], &vec![wv; 5 * k]),
                    ints(DType::I32, &[5], &[0, 1, -1, 1000, -1000]),
                ];
                add_case(
                    &mut g,
                    &mut feed,
                    c,
                    op,
                    ints(xdt, &[33, k], &vec![xv; 33 * k]),
                    wb,
                );
                c += 1;
            }
        }
    }
    (g, feed)
}

/// The AMX kernels (QGemm and QConv): always compiled for a CPU with AMX
/// and checked to use the tile kernels (and to ask Linux for the tiles);
/// run and compared bit for bit with the interpreter where the host has
/// AMX.
#[test]
fn amx_gemm_matches_interpreter() {
    if !cfg!(target_arch = "x86_64") {
        return;
    }
    let (g, feed) = amx_battery();
    let amx = x86("+avx2,+fma,+avx512f,+avx512bw,+avx512vnni,+amx-tile,+amx-int8");
    let linux = Options {
        target: Some("x86_64-unknown-linux-gnu".into()),
        ..amx.clone()
    };
    // Depthwise convolutions keep their own vector kernel.
    assert_uses(&g, &linux, "amx|vnni512");
    let ir = compile(
        &g,
        &Options {
            emit_llvm_ir: true,
            prefix: "m".into(),
            ..linux.clone()
        },
    )
    .expect("compiles")
    .llvm_ir
    .expect("ir");
    for k in [
        "amx.32x32.x",
        "amx.32x32.w",
        "tdpbusd",
        "tdpbsud",
        "syscall",
    ] {
        assert!(ir.contains(k), "no {k} in the AMX module");
    }
    let art = compile(
        &g,
        &Options {
            prefix: "m".into(),
            ..linux.clone()
        },
    )
    .expect("compiles");
    assert!(art.header.contains("returns 3"), "{}", art.header);
    if host_amx() {
        let want = qcc_interp::run(&g, &feed).expect("interpreter");
        let raw: Vec<Vec<u8>> = feed.iter().map(|t| t.to_le_bytes()).collect();
        let got = run_with_opts(&HOST, &g, &raw, amx, &[]);
        for (j, (a, b)) in got.iter().zip(&want).enumerate() {
            assert_same(a, b, &format!("amx output {j}"));
        }
    }
}

#[test]
fn x86_avx2_and_baseline_match_interpreter() {
    if !cfg!(target_arch = "x86_64") {
        return;
    }
    assert!(host_has("avx2"), "the x86 test machines have AVX2");
    check(&HOST, x86("+avx2,+fma"), &[], "maddwd");
    check(&HOST, x86(""), &[], "widen");
    // A named CPU picks the kernels its features allow (compiled only: the
    // test machine may lack AVX-512).
    let (g, _) = gemm_battery(16_000, 4);
    for (cpu, dot) in [
        ("znver4", "vnni512"),
        ("haswell", "maddwd"),
        ("nehalem", "widen"),
    ] {
        let opts = Options {
            target: Some("x86_64-unknown-linux-gnu".into()),
            cpu: Some(cpu.into()),
            ..Default::default()
        };
        assert_uses(&g, &opts, dot);
    }
}

#[test]
fn arm_dots_match_interpreter_under_qemu() {
    if let Some(tc) = cross("aarch64-unknown-linux-gnu") {
        check(&tc, Options::default(), &[], "sadalp");
        let dotprod = Options {
            features: Some("+dotprod".into()),
            ..Default::default()
        };
        check(&tc, dotprod, &["-cpu", "max"], "sdot");
    }
    if let Some(tc) = cross("armv7-unknown-linux-gnueabihf") {
        check(&tc, Options::default(), &[], "widen");
    }
}

/// The inner k loop of a microkernel in `asm`: the instructions of the
/// block that branches back to itself.
fn inner_loop(asm: &str, func: &str) -> Vec<String> {
    let lines: Vec<&str> = asm
        .lines()
        .map(|l| l.split("//").next().unwrap_or("").trim())
        .collect();
    let start = lines
        .iter()
        .position(|l| l.starts_with(func) && l.ends_with(':'))
        .unwrap_or_else(|| panic!("{func} not in the assembly"));
    for (i, l) in lines.iter().enumerate().skip(start + 1) {
        let Some(label) = l.strip_suffix(':').filter(|x| x.starts_with(".LBB")) else {
            continue;
        };
        let mut body = vec![];
        for b in &lines[i + 1..] {
            if b.ends_with(':') {
                break;
            }
            if !b.is_empty() && !b.starts_with('.') {
                body.push(b.to_string());
            }
            if b.ends_with(label) && b.starts_with('b') {
                return body;
            }
        }
    }
    panic!("no loop in {func}");
}

/// The AArch64 inner loops are what they should be: with dotprod, 24
/// indexed `sdot` (8×12) fed by three loads of B and two of A; the f32
/// loop 24 by-element `fmla`; without dotprod, `smull` + `sadalp` pairs.
#[test]
fn aarch64_inner_loops_are_tight() {
    // K in the thousands: the k loops stay loops.
    let (g, _) = worst_cases();
    let asm_for = |cpu: &str| {
        let opts = Options {
            target: Some("aarch64-unknown-linux-gnu".into()),
            cpu: Some(cpu.into()),
            emit_asm: true,
            prefix: "m".into(),
            ..Default::default()
        };
        compile(&g, &opts).expect("compiles").asm.expect("asm")
    };
    let count = |body: &[String], m: &str| body.iter().filter(|l| l.starts_with(m)).count();
    let a76 = asm_for("cortex-a76");
    let name = a76
        .lines()
        .find_map(|l| {
            l.strip_suffix(':')
                .filter(|n| n.starts_with("qcc.mmm.i8.sdot.8x12"))
        })
        .expect("an 8x12 sdot microkernel")
        .to_string();
    let body = inner_loop(&a76, &name);
    assert_eq!(count(&body, "sdot"), 24, "{body:#?}");
    assert!(body.iter().all(|l| !l.starts_with("ld1r")), "{body:#?}");
    assert!(
        body.len() <= 24 + 10,
        "{} instructions: {body:#?}",
        body.len()
    );
    let a53 = asm_for("cortex-a53");
    let name = a53
        .lines()
        .find_map(|l| {
            l.strip_suffix(':')
                .filter(|n| n.starts_with("qcc.mmm.i8.sadalp"))
        })
        .expect("a sadalp microkernel")
        .to_string();
    let body = inner_loop(&a53, &name);
    assert_eq!(count(&body, "smull"), count(&body, "sadalp"), "{body:#?}");
    assert!(count(&body, "sadalp") >= 8, "{body:#?}");
}
