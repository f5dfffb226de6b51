//! The microkernel battery: convolutions and matrix products that run on
//! the GEMM microkernels (`src/mmm/`), with shapes drawn to hit every edge
//! (rows past `MR`, columns past `NR`, K blocks with a tail, N blocks with a
//! tail, padding on every side, strides, dilations, groups, batches, one-row
//! and one-column products), checked against the interpreter natively and,
//! under qemu-user, on aarch64 (NEON `fmla`) and armv7 (NEON, 16 registers).

mod common;
use common::*;
use qcc_codegen::{compile, Options};
use qcc_ir::{ConvAttrs, Graph, Op, Tensor, ValueId};

const TOL: f32 = 1e-4;

/// A tiny deterministic generator for shapes.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, lo: usize, hi: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        lo + ((self.0 >> 33) as usize) % (hi - lo + 1)
    }
}

/// One graph input per case, one conv (constant weights and bias) and one
/// output per case.
fn conv_battery(seed: u64, cases: usize) -> (Graph, Vec<Tensor>) {
    let mut r = Lcg(seed);
    let mut g = Graph::new("battery");
    let mut feed = vec![];
    for c in 0..cases {
        let group = if r.next(0, 3) == 0 { 2 } else { 1 };
        let (k, s, d) = (r.next(1, 5), r.next(1, 3), r.next(1, 2));
        let rank = if r.next(0, 4) == 0 { 1 } else { 2 };
        let cin = group * r.next(1, 24);
        let cout = group * r.next(4, 40);
        let hw = r.next(k * d, 20);
        let p = r.next(0, k - 1);
        let batch = r.next(1, 2);
        let mut xs = vec![batch, cin];
        xs.extend(std::iter::repeat_n(hw, rank));
        let mut ws = vec![cout, cin / group];
        ws.extend(std::iter::repeat_n(k, rank));
        let a = ConvAttrs {
            strides: vec![s; rank],
            pads: vec![p; 2 * rank],
            dilations: vec![d; rank],
            group,
            output_padding: vec![0; rank],
        };
        let x = g.add_input(format!("x{c}"), rand_tensor(&xs, seed + c as u64).ty());
        feed.push(rand_tensor(&xs, seed + c as u64));
        let w = g.add_const(format!("w{c}"), rand_tensor(&ws, seed + 100 + c as u64));
        let mut ins = vec![ValueId::of(x), ValueId::of(w)];
        // Every other case clamps in the epilogue (a fused Relu or Clip);
        // one in four adds a residual (a fused Add), clamped or not.
        let residual = c % 4 == 2;
        if residual || r.next(0, 2) > 0 {
            let b = g.add_const(format!("b{c}"), rand_tensor(&[cout], seed + 200 + c as u64));
            ins.push(ValueId::of(b));
        }
        let op = match c % 8 {
            1 | 5 => Op::ConvClamp {
                conv: a,
                min: 0.0,
                max: f32::INFINITY,
            },
            3 | 7 => Op::ConvClamp {
                conv: a,
                min: -0.3,
                max: 0.4,
            },
            2 => Op::ConvAdd {
                conv: a,
                min: f32::NEG_INFINITY,
                max: f32::INFINITY,
            },
            6 => Op::ConvAdd {
                conv: a,
                min: 0.0,
                max: f32::INFINITY,
            },
            _ => Op::Conv(a),
        };
        if residual {
            let o = (hw + 2 * p - d * (k - 1) - 1) / s + 1;
            let mut rs = vec![batch, cout];
            rs.extend(std::iter::repeat_n(o, rank));
            let seed = seed + 400 + c as u64;
            let ri = g.add_input(format!("r{c}"), rand_tensor(&rs, seed).ty());
            feed.push(rand_tensor(&rs, seed));
            ins.push(ValueId::of(ri));
        }
        let y = g.add_node(op, format!("conv{c}"), ins).expect("valid conv");
        g.add_output(format!("y{c}"), ValueId::of(y));
    }
    (g, feed)
}

/// Gemm (alpha, beta, transposed B, bias per column) and MatMul with a
/// constant B.
fn gemm_battery(seed: u64, cases: usize) -> (Graph, Vec<Tensor>) {
    let mut r = Lcg(seed);
    let mut g = Graph::new("battery");
    let mut feed = vec![];
    for c in 0..cases {
        let (m, k, n) = (r.next(1, 20), r.next(1, 70), r.next(1, 90));
        let x = rand_tensor(&[m, k], seed + c as u64);
        let xi = g.add_input(format!("x{c}"), x.ty());
        feed.push(x);
        let y = if c % 3 == 2 {
            let w = g.add_const(format!("w{c}"), rand_tensor(&[k, n], seed + 100 + c as u64));
            g.add_node(
                Op::MatMul,
                format!("mm{c}"),
                vec![ValueId::of(xi), ValueId::of(w)],
            )
        } else {
            let trans_b = c % 2 == 1;
            let ws = if trans_b { [n, k] } else { [k, n] };
            let w = g.add_const(format!("w{c}"), rand_tensor(&ws, seed + 100 + c as u64));
            let bias_shape: &[usize] = if c % 4 == 0 { &[n] } else { &[1, n] };
            let b = g.add_const(
                format!("b{c}"),
                rand_tensor(bias_shape, seed + 200 + c as u64),
            );
            let op = Op::Gemm {
                alpha: 0.5 + c as f32 * 0.25,
                beta: 1.5,
                trans_a: false,
                trans_b,
            };
            g.add_node(
                op,
                format!("gemm{c}"),
                vec![ValueId::of(xi), ValueId::of(w), ValueId::of(b)],
            )
        }
        .expect("valid product");
        g.add_output(format!("y{c}"), ValueId::of(y));
    }
    (g, feed)
}

#[test]
fn conv_battery_matches_interpreter() {
    for seed in [1, 2, 3] {
        let (g, feed) = conv_battery(seed * 1000, 12);
        check_interp(&g, &feed, TOL);
    }
}

/// A clamped convolution with K split into several blocks (with a tail):
/// only the finished sums are clamped, in the last block.
#[test]
fn clamp_applies_after_the_last_k_block() {
    let mut g = Graph::new("kblocks");
    let mut feed = vec![];
    for (c, (cin, k)) in [(70usize, 5usize), (130, 3)].into_iter().enumerate() {
        let x = rand_tensor(&[1, cin, 9, 9], 40 + c as u64);
        let xi = g.add_input(format!("x{c}"), x.ty());
        feed.push(x);
        let w = g.add_const(
            format!("w{c}"),
            rand_tensor(&[12, cin, k, k], 50 + c as u64),
        );
        let op = Op::ConvClamp {
            conv: ConvAttrs {
                strides: vec![1, 1],
                pads: vec![1; 4],
                dilations: vec![1, 1],
                group: 1,
                output_padding: vec![0, 0],
            },
            min: -0.5,
            max: 0.5,
        };
        let y = g
            .add_node(
                op,
                format!("conv{c}"),
                vec![ValueId::of(xi), ValueId::of(w)],
            )
            .expect("valid conv");
        g.add_output(format!("y{c}"), ValueId::of(y));
    }
    check_interp(&g, &feed, TOL);
}

/// Convolutions with few output positions and many output channels, the
/// shapes that run the GEMM transposed (positions as microkernel rows, the
/// `.c` microkernels, `Cᵀ` in scratch): 7×7 and 5×5 maps, a 1-D one, the
/// 1×1 direct case, a channel count past the tile, groups, a clamp, and K
/// split into blocks. With at least four weight panels the positions are
/// packed into panels per K block (one block, and three with a partial
/// last position panel); with fewer (the last two cases, direct and not)
/// the microkernel reads them in place.
fn transposed_battery() -> (Graph, Vec<Tensor>) {
    // (cin, cout, group, kernel, stride, pad, input size, rank)
    type Case = (usize, usize, usize, usize, usize, usize, usize, usize);
    let cases: [Case; 11] = [
        (64, 64, 1, 3, 1, 1, 7, 2),
        (48, 100, 1, 3, 2, 1, 13, 2),
        (160, 96, 1, 1, 1, 0, 7, 2),
        (200, 64, 1, 3, 1, 0, 7, 2),
        (32, 66, 2, 3, 1, 1, 5, 2),
        (96, 64, 1, 5, 1, 2, 13, 1),
        (130, 64, 1, 3, 1, 1, 7, 2),
        (128, 64, 1, 1, 1, 0, 14, 2),
        (600, 80, 1, 1, 1, 0, 7, 2),
        (64, 48, 1, 3, 1, 0, 7, 2),
        (160, 32, 1, 1, 1, 0, 7, 2),
    ];
    let mut g = Graph::new("transposed");
    let mut feed = vec![];
    for (c, &(cin, cout, group, k, s, p, hw, rank)) in cases.iter().enumerate() {
        let mut xs = vec![1, cin];
        xs.extend(std::iter::repeat_n(hw, rank));
        let mut ws = vec![cout, cin / group];
        ws.extend(std::iter::repeat_n(k, rank));
        let a = ConvAttrs {
            strides: vec![s; rank],
            pads: vec![p; 2 * rank],
            dilations: vec![1; rank],
            group,
            output_padding: vec![0; rank],
        };
        let seed = 300 + c as u64;
        let x = g.add_input(format!("x{c}"), rand_tensor(&xs, seed).ty());
        feed.push(rand_tensor(&xs, seed));
        let w = g.add_const(format!("w{c}"), rand_tensor(&ws, seed + 100));
        let b = g.add_const(format!("b{c}"), rand_tensor(&[cout], seed + 200));
        let mut ins = vec![ValueId::of(x), ValueId::of(w), ValueId::of(b)];
        let op = match c % 4 {
            1 => Op::ConvClamp {
                conv: a,
                min: -0.2,
                max: 0.3,
            },
            // A residual added on the way out of Cᵀ, then clamped (or not).
            2 | 3 => {
                let o = (hw + 2 * p - k) / s + 1;
                let mut rs = vec![1, cout];
                rs.extend(std::iter::repeat_n(o, rank));
                let ri = g.add_input(format!("r{c}"), rand_tensor(&rs, seed + 300).ty());
                feed.push(rand_tensor(&rs, seed + 300));
                ins.push(ValueId::of(ri));
                let (min, max) = if c % 4 == 3 {
                    (-0.2, 0.3)
                } else {
                    (f32::NEG_INFINITY, f32::INFINITY)
                };
                Op::ConvAdd { conv: a, min, max }
            }
            _ => Op::Conv(a),
        };
        let y = g.add_node(op, format!("conv{c}"), ins).expect("valid conv");
        g.add_output(format!("y{c}"), ValueId::of(y));
    }
    (g, feed)
}

/// Float depthwise convolutions (the f32 depthwise kernel, `mmm/dw.rs`):
/// strides 1 to 3 (column stride 2 on the two-phase copy: plain, dilated,
/// with a multiplier, 1-D, rows a vector and more wide), dilation,
/// asymmetric padding, channel multipliers, 1-D, a batch of two, rows with
/// a vector tail and rows shorter than a vector, plain, clamped and with a
/// residual; a stride-2 plane 100 wide (chunks of the phase split wholly
/// inside its rows, and first and last ones shifted into them).
fn depthwise_battery() -> (Graph, Vec<Tensor>) {
    // (channels, multiplier, kernel, stride, dilation, pads (begin, end), size, rank, batch)
    type Case = (
        usize,
        usize,
        usize,
        usize,
        usize,
        (usize, usize),
        usize,
        usize,
        usize,
    );
    let cases: [Case; 12] = [
        (8, 1, 3, 1, 1, (1, 1), 19, 2, 1),
        (5, 1, 3, 2, 2, (2, 2), 30, 2, 1),
        (4, 2, 5, 2, 1, (2, 1), 24, 2, 1),
        (3, 1, 3, 2, 1, (1, 1), 70, 1, 1),
        (6, 1, 3, 2, 1, (1, 1), 37, 2, 2),
        (5, 2, 5, 1, 1, (2, 2), 12, 2, 1),
        (4, 1, 3, 3, 2, (2, 1), 40, 2, 1),
        (7, 1, 3, 2, 1, (0, 1), 21, 1, 1),
        (3, 3, 1, 1, 1, (0, 0), 9, 2, 2),
        (16, 1, 7, 1, 1, (3, 3), 5, 2, 1),
        (9, 1, 3, 1, 1, (1, 1), 35, 2, 1),
        (3, 1, 3, 2, 1, (1, 1), 100, 2, 1),
    ];
    let mut g = Graph::new("depthwise");
    let mut feed = vec![];
    for (c, &(ch, mult, k, s, d, (pb, pe), hw, rank, batch)) in cases.iter().enumerate() {
        let mut xs = vec![batch, ch];
        xs.extend(std::iter::repeat_n(hw, rank));
        let mut ws = vec![ch * mult, 1];
        ws.extend(std::iter::repeat_n(k, rank));
        let mut pads = vec![pb; rank];
        pads.extend(std::iter::repeat_n(pe, rank));
        let a = ConvAttrs {
            strides: vec![s; rank],
            pads,
            dilations: vec![d; rank],
            group: ch,
            output_padding: vec![0; rank],
        };
        let seed = 500 + c as u64;
        let x = g.add_input(format!("x{c}"), rand_tensor(&xs, seed).ty());
        feed.push(rand_tensor(&xs, seed));
        let w = g.add_const(format!("w{c}"), rand_tensor(&ws, seed + 100));
        let mut ins = vec![ValueId::of(x), ValueId::of(w)];
        if c % 3 != 1 {
            let b = g.add_const(format!("b{c}"), rand_tensor(&[ch * mult], seed + 200));
            ins.push(ValueId::of(b));
        }
        let op = match c % 4 {
            1 => Op::ConvClamp {
                conv: a,
                min: 0.0,
                max: 0.5,
            },
            2 | 3 if ins.len() == 3 => {
                let o = (hw + pb + pe - d * (k - 1) - 1) / s + 1;
                let mut rs = vec![batch, ch * mult];
                rs.extend(std::iter::repeat_n(o, rank));
                let ri = g.add_input(format!("r{c}"), rand_tensor(&rs, seed + 300).ty());
                feed.push(rand_tensor(&rs, seed + 300));
                ins.push(ValueId::of(ri));
                let (min, max) = if c % 4 == 3 {
                    (0.0, f32::INFINITY)
                } else {
                    (f32::NEG_INFINITY, f32::INFINITY)
                };
                Op::ConvAdd { conv: a, min, max }
            }
            _ => Op::Conv(a),
        };
        let y = g.add_node(op, format!("dw{c}"), ins).expect("valid conv");
        g.add_output(format!("y{c}"), ValueId::of(y));
    }
    (g, feed)
}

#[test]
fn depthwise_convolutions_match_interpreter() {
    let (g, feed) = depthwise_battery();
    check_interp(&g, &feed, TOL);
    // ... and they ran on the depthwise kernel: its weight tables are there.
    let ir = host_ir(&g);
    assert!(ir.contains("dw.w"), "no depthwise kernel in the module");
    check_avx2(&g, &feed);
}

/// The LLVM IR of `g` compiled for this host.
fn host_ir(g: &Graph) -> String {
    let opts = Options {
        emit_llvm_ir: true,
        ..host("m")
    };
    compile(g, &opts)
        .expect("compiles")
        .llvm_ir
        .expect("llvm ir")
}

/// Whether the module defines an f32 microkernel whose name ends in `suffix`.
fn defines_f32_microkernel(ir: &str, suffix: &str) -> bool {
    ir.lines().any(|l| {
        l.starts_with("define") && l.contains("@qcc.mmm.f32.") && l.contains(&format!("{suffix}("))
    })
}

/// The AVX2 kernels (16 registers, 8 lanes) on an x86 host, whatever its own
/// level, against the interpreter.
fn check_avx2(g: &Graph, feed: &[Tensor]) {
    if !cfg!(target_arch = "x86_64") {
        return;
    }
    let want = qcc_interp::run(g, feed).expect("interpreter");
    let raw: Vec<Vec<u8>> = feed.iter().map(|t| t.to_le_bytes()).collect();
    let opts = Options {
        cpu: Some("x86-64".into()),
        features: Some("+avx2,+fma".into()),
        ..Default::default()
    };
    let got = run_with_opts(&HOST, g, &raw, opts, &[]);
    for (j, (a, b)) in got.iter().zip(&want).enumerate() {
        assert_close(a, b, TOL, &format!("avx2 output {j}"));
    }
}

#[test]
fn transposed_convolutions_match_interpreter() {
    let (g, feed) = transposed_battery();
    check_interp(&g, &feed, TOL);
    // ... and they did run transposed, on whatever vector unit this host has.
    let ir = host_ir(&g);
    assert!(
        defines_f32_microkernel(&ir, ".c") || defines_f32_microkernel(&ir, ".c.o"),
        "no column-major (transposed GEMM) microkernel in the module"
    );
    check_avx2(&g, &feed);
}

/// Convolutions big enough that their copies (the implicit im2col, one copy
/// per tap or per kj and row phase) split into several row blocks with a
/// tail, each phase copy holding the rows its taps reach past the block:
/// strides 1, 2 and 3, a dilated strided one (one row phase), 7×7
/// stride-2 stems, and K split into channel blocks with a tail under a
/// clamp and a residual.
fn row_block_battery() -> (Graph, Vec<Tensor>) {
    let mut g = Graph::new("rowblocks");
    let mut feed = vec![];
    // (input [C, H, W], cout, k, stride, dilation, pad, residual): few
    // rows, wide ones, so that a row block holds only a few.
    let cases = [
        ([48, 20, 100], 4, 3, 1, 1, 1, false),
        ([32, 41, 121], 4, 3, 2, 1, 1, false),
        ([16, 40, 90], 4, 3, 2, 2, 2, false),
        ([3, 60, 150], 16, 7, 2, 1, 3, false),
        ([32, 40, 100], 4, 5, 3, 1, 2, false),
        ([151, 12, 30], 8, 3, 1, 1, 1, true),
        // Output widths that are multiples of 16: phase copies (one per kj
        // and row phase), not one per tap.
        ([48, 20, 96], 4, 3, 1, 1, 1, true),
        ([32, 40, 64], 4, 3, 2, 1, 1, false),
        ([16, 40, 256], 4, 3, 2, 2, 2, false),
        ([3, 60, 224], 16, 7, 2, 1, 3, false),
        ([32, 30, 96], 4, 5, 3, 1, 2, false),
    ];
    for (c, &(xs, cout, k, s, d, p, residual)) in cases.iter().enumerate() {
        let xs = [1, xs[0], xs[1], xs[2]];
        let out = |n: usize| (n + 2 * p - d * (k - 1) - 1) / s + 1;
        let a = ConvAttrs {
            strides: vec![s; 2],
            pads: vec![p; 4],
            dilations: vec![d; 2],
            group: 1,
            output_padding: vec![0; 2],
        };
        let seed = 31_000 + c as u64;
        let x = g.add_input(format!("x{c}"), rand_tensor(&xs, seed).ty());
        feed.push(rand_tensor(&xs, seed));
        let ws = [cout, xs[1], k, k];
        let w = g.add_const(format!("w{c}"), rand_tensor(&ws, seed + 100));
        let b = g.add_const(format!("b{c}"), rand_tensor(&[cout], seed + 200));
        let mut ins = vec![ValueId::of(x), ValueId::of(w), ValueId::of(b)];
        let op = if residual {
            let rs = [1, cout, out(xs[2]), out(xs[3])];
            let ri = g.add_input(format!("r{c}"), rand_tensor(&rs, seed + 300).ty());
            feed.push(rand_tensor(&rs, seed + 300));
            ins.push(ValueId::of(ri));
            Op::ConvAdd {
                conv: a,
                min: -0.5,
                max: 0.5,
            }
        } else {
            Op::ConvClamp {
                conv: a,
                min: 0.0,
                max: f32::INFINITY,
            }
        };
        let y = g.add_node(op, format!("conv{c}"), ins).expect("valid conv");
        g.add_output(format!("y{c}"), ValueId::of(y));
    }
    (g, feed)
}

#[test]
fn phase_copies_span_row_and_channel_blocks() {
    let (g, feed) = row_block_battery();
    check_interp(&g, &feed, TOL);
    let ir = host_ir(&g);
    assert!(
        defines_f32_microkernel(&ir, ".o"),
        "no offsets (implicit im2col) microkernel in the module"
    );
    check_avx2(&g, &feed);
}

/// 3×3 stride-1 convolutions that run as Winograd F(2×2, 3×3)
/// (`src/mmm/winograd.rs`): odd output sizes (a last tile row or column
/// with one output), asymmetric and wide padding, output channels past the
/// microkernel's rows, tile rows split into blocks with a tail, rows of
/// tiles wider than a vector and not a multiple of it, batches, and every
/// epilogue (bias, clamp, residual).
fn winograd_battery() -> (Graph, Vec<Tensor>) {
    let mut g = Graph::new("winograd");
    let mut feed = vec![];
    // (batch, cin, cout, h, w, pads [t, l, b, r], epilogue 0..3)
    type Case = (usize, usize, usize, usize, usize, [usize; 4], usize);
    let cases: [Case; 8] = [
        (1, 64, 64, 56, 56, [1, 1, 1, 1], 0),
        (1, 24, 20, 15, 15, [1, 1, 1, 1], 1),
        (2, 16, 40, 17, 13, [1, 0, 0, 1], 2),
        (1, 32, 16, 18, 18, [0, 0, 0, 0], 3),
        (1, 17, 24, 10, 11, [2, 2, 2, 2], 1),
        (1, 300, 40, 12, 12, [1, 1, 1, 1], 2),
        (1, 16, 16, 4, 129, [1, 1, 1, 1], 0),
        (1, 48, 33, 40, 70, [1, 1, 1, 1], 3),
    ];
    for (c, &(n, cin, cout, h, w, pads, epi)) in cases.iter().enumerate() {
        let xs = [n, cin, h, w];
        let (oh, ow) = (h + pads[0] + pads[2] - 2, w + pads[1] + pads[3] - 2);
        let a = ConvAttrs {
            strides: vec![1; 2],
            pads: pads.to_vec(),
            dilations: vec![1; 2],
            group: 1,
            output_padding: vec![0; 2],
        };
        let seed = 41_000 + c as u64;
        let x = g.add_input(format!("x{c}"), rand_tensor(&xs, seed).ty());
        feed.push(rand_tensor(&xs, seed));
        // Weights of a trained layer's scale (±1/√K), so that the sums stay
        // near the inputs' own ±3 and the tolerance means the same for
        // every case (with ±3 weights and 2700 products it would be relative
        // to sums of hundreds, for the direct convolution as well).
        let span = 1.0 / ((9 * cin) as f32).sqrt();
        let wv = rand_f32(cout * cin * 9, seed + 100, -span, span);
        let wt = Tensor::from_f32(vec![cout, cin, 3, 3], wv).expect("sizes match");
        let w = g.add_const(format!("w{c}"), wt);
        let b = g.add_const(format!("b{c}"), rand_tensor(&[cout], seed + 200));
        let mut ins = vec![ValueId::of(x), ValueId::of(w), ValueId::of(b)];
        let op = match epi {
            0 => Op::Conv(a),
            1 => Op::ConvClamp {
                conv: a,
                min: -0.3,
                max: 0.4,
            },
            _ => {
                let rs = [n, cout, oh, ow];
                let ri = g.add_input(format!("r{c}"), rand_tensor(&rs, seed + 300).ty());
                feed.push(rand_tensor(&rs, seed + 300));
                ins.push(ValueId::of(ri));
                let (min, max) = if epi == 3 {
                    (0.0, f32::INFINITY)
                } else {
                    (f32::NEG_INFINITY, f32::INFINITY)
                };
                Op::ConvAdd { conv: a, min, max }
            }
        };
        let y = g.add_node(op, format!("conv{c}"), ins).expect("valid conv");
        g.add_output(format!("y{c}"), ValueId::of(y));
    }
    (g, feed)
}

#[test]
fn winograd_convolutions_match_interpreter() {
    let (g, feed) = winograd_battery();
    check_interp(&g, &feed, TOL);
    // ... and they ran as Winograd: its transformed weights are there,
    // unless `no_winograd` keeps them on the direct GEMMs.
    assert!(host_ir(&g).contains("wino.u"), "no Winograd convolution");
    let opts = Options {
        emit_llvm_ir: true,
        no_winograd: true,
        ..host("m")
    };
    let direct = compile(&g, &opts).expect("compiles").llvm_ir.expect("ir");
    assert!(!direct.contains("wino.u"), "no_winograd is ignored");
    check_avx2(&g, &feed);
}

/// A 3×3 float convolution whose weights are whole numbers (a ConvInteger
/// read as a float Conv) keeps the direct GEMM, whose sums of whole numbers
/// below 2^24 are exact: equal to the interpreter's bit for bit, no
/// Winograd (whose fractional transforms would round them).
#[test]
fn whole_number_weights_skip_winograd_and_stay_exact() {
    let mut g = Graph::new("wholes");
    let (cin, cout, h) = (64, 64, 28);
    let ints = |n: usize, seed: u64, span: i64| -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 33) as i64 % (2 * span + 1) - span) as f32
            })
            .collect()
    };
    let xt = Tensor::from_f32(vec![1, cin, h, h], ints(cin * h * h, 1, 255)).unwrap();
    let x = g.add_input("x", xt.ty());
    let wt = Tensor::from_f32(vec![cout, cin, 3, 3], ints(cout * cin * 9, 2, 127)).unwrap();
    let w = g.add_const("w", wt);
    let a = ConvAttrs {
        strides: vec![1; 2],
        pads: vec![1; 4],
        dilations: vec![1; 2],
        group: 1,
        output_padding: vec![0; 2],
    };
    let y = g
        .add_node(Op::Conv(a), "conv", vec![ValueId::of(x), ValueId::of(w)])
        .expect("valid conv");
    g.add_output("y", ValueId::of(y));
    assert!(
        !host_ir(&g).contains("wino.u"),
        "whole-number weights ran as Winograd"
    );
    check_interp(&g, &[xt], 0.0);
}

#[test]
fn gemm_battery_matches_interpreter() {
    for seed in [4, 5] {
        let (g, feed) = gemm_battery(seed * 1000, 12);
        check_interp(&g, &feed, TOL);
    }
}

#[test]
fn battery_on_arm_under_qemu() {
    for triple in ["aarch64-unknown-linux-gnu", "armv7-unknown-linux-gnueabihf"] {
        let Some(tc) = cross(triple) else { continue };
        for (g, feed) in [
            conv_battery(7000, 10),
            gemm_battery(8000, 10),
            transposed_battery(),
            depthwise_battery(),
            row_block_battery(),
            winograd_battery(),
        ] {
            let want = qcc_interp::run(&g, &feed).expect("interpreter");
            let raw: Vec<Vec<u8>> = feed.iter().map(|t| t.to_le_bytes()).collect();
            let got = run_with(&tc, &g, &raw);
            for (j, (a, b)) in got.iter().zip(&want).enumerate() {
                assert_close(a, b, TOL, &format!("{triple} output {j}"));
            }
        }
    }
}

/// The microkernels are functions of their own, emitted once per object
/// however many nodes call them, and the nodes reach them.
#[test]
fn microkernels_are_emitted_once_and_called() {
    let (g, _) = conv_battery(9000, 6);
    let ir = host_ir(&g);
    let defs: Vec<&str> = ir
        .lines()
        .filter(|l| l.starts_with("define") && l.contains("@qcc.mmm.f32."))
        .collect();
    assert!(!defs.is_empty(), "no microkernel in the module");
    let mut names: Vec<&str> = defs
        .iter()
        .filter_map(|l| l.split('@').nth(1)?.split('(').next())
        .collect();
    let all = names.len();
    names.sort();
    names.dedup();
    assert_eq!(all, names.len(), "a microkernel is defined twice");
    for n in names {
        assert!(
            ir.lines()
                .any(|l| l.contains(" call ") && l.contains(&format!("@{n}("))),
            "{n} is never called"
        );
    }
}
