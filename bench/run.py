#!/usr/bin/env python3
"""qcc's speed benchmark: one command, writes bench/RESULTS.md and bench/results.svg.

    bash bench/run.sh [--rounds 5] [--per 5] [--only name,...]

For every model of bench/models.py, side by side on one thread, rounds
alternated: qcc f32, qcc int8 (`--quantize int8`, 16 calibration samples),
qcc ORT-QDQ (ONNX Runtime's own QDQ model below, compiled by qcc as it comes:
`fold-qdq`, no `--quantize`), ONNX Runtime fp32, ONNX Runtime int8 (QDQ from
`quantize_static` on the same samples) and tract-onnx fp32 (optimized, through its Rust API:
crates/qcc/examples/tract_time.rs). On an x86 core without VNNI also qcc int8 with
`--weight-bits 7` and ONNX Runtime int8 with `reduce_range` (see `seven_bit`). Each round runs every variant `--per` times after warm-up;
the table gives the median and min-max over all rounds and the ratios.
Register-only probes (bench/probes.c) give this machine's ceilings.
"""

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WORK = os.path.join(ROOT, "target", "bench")
QCC = os.path.join(ROOT, "target", "release", "qcc")
TRACT = os.path.join(ROOT, "target", "release", "examples", "tract_time")

MACS = {  # multiply-accumulates of the single-layer models
    "conv3x3_64_56": 64 * 64 * 9 * 56 * 56,
    "conv3x3s2_64_128_56": 64 * 128 * 9 * 28 * 28,
    "conv3x3_256_14": 256 * 256 * 9 * 14 * 14,
    "conv3x3_512_7": 512 * 512 * 9 * 7 * 7,
    "conv1x1_64_256_56": 64 * 256 * 56 * 56,
    "conv7x7s2_3_64_224": 3 * 64 * 49 * 112 * 112,
    "dw3x3_144_56": 144 * 9 * 56 * 56,
    "dw3x3s2_96_112": 96 * 9 * 56 * 56,
    "matmul_64x512x512": 64 * 512 * 512,
    "matmul_256x512x512": 256 * 512 * 512,
}


def cpu_info():
    model, flags = platform.processor(), []
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name") and model in ("", platform.processor()):
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = line.split(":", 1)[1].split()
                break
    except OSError:
        pass
    return model, flags


def probes(flags):
    defs = []
    if "fma" in flags and "avx2" in flags:
        defs += ["-DP_FMA_YMM", "-DP_MADDUBS_YMM"]
    if "avx512f" in flags:
        defs += ["-DP_FMA_ZMM"]
    if "avx_vnni" in flags or "avx512_vnni" in flags:
        defs += ["-DP_VNNI_YMM"]
    if "avx512_vnni" in flags:
        defs += ["-DP_VNNI_ZMM"]
    if "amx_int8" in flags and "amx_tile" in flags and sys.platform.startswith("linux"):
        defs += ["-DP_AMX"]
    if not defs:
        return {}
    exe = os.path.join(WORK, "probes")
    subprocess.run(["cc", "-O2", "-march=native", *defs, os.path.join(HERE, "probes.c"), "-o", exe], check=True)
    out = subprocess.run([exe], check=True, capture_output=True, text=True).stdout
    return {l.split()[0]: float(l.split()[1]) for l in out.splitlines()}


def compile_qcc(name, d, int8, model="model.onnx", tag=None, extra=()):
    """qcc's build of `d/model` (float, or `--quantize int8`, plus `extra`
    flags); `tag` names its files."""
    tag = tag or ("i8" if int8 else "f32")
    o = os.path.join(d, f"m_{tag}.o")
    h = os.path.join(d, f"m_{tag}.h")
    cmd = [QCC, os.path.join(d, model), "-o", o, "--name", "m", "--header", h, "--profile"]
    if int8:
        cmd += ["--quantize", "int8", "--calibration-data", os.path.join(d, "calib.npy")]
    cmd += list(extra)
    # Peak RSS through GNU time: a child forked from this (large) Python
    # process would report the parent's high-water mark as its own.
    gnu_time = "/usr/bin/time" if os.path.exists("/usr/bin/time") else None
    rss_file = os.path.join(d, f"rss_{tag}.txt")
    full = [gnu_time, "-f", "%M", "-o", rss_file, *cmd] if gnu_time else cmd
    t0 = time.time()
    r = subprocess.run(full, capture_output=True, text=True)
    rss = float(open(rss_file).read().split()[-1]) / 1024 if gnu_time else float("nan")
    dt = (time.time() - t0, rss)  # seconds, peak RSS in MiB
    if r.returncode != 0:
        print(f"bench: qcc {tag} failed on {name}: {r.stderr.strip()}", file=sys.stderr)
        return None, dt
    exe = os.path.join(d, f"h_{tag}")
    inc = os.path.join(d, f"inc_{tag}")
    os.makedirs(inc, exist_ok=True)
    shutil.copyfile(h, os.path.join(inc, "m.h"))
    subprocess.run(["cc", "-O2", "-I", inc, os.path.join(HERE, "harness.c"), o, "-o", exe], check=True)
    return exe, dt


def seven_bit(flags):
    """Whether this is an x86 core whose best int8 instruction is AVX2's
    `vpmaddubsw` (no VNNI): there it sums two u8 × s8 products into a
    saturating i16, which only 7-bit weights keep exact. Such a run adds qcc
    with `--weight-bits 7` and ONNX Runtime's `reduce_range` (7-bit weights)
    QDQ model: the two exact int8 builds of the same kind."""
    return "avx2" in flags and not ("avx512_vnni" in flags or "avx_vnni" in flags)


def qdq_model(d, name, **extra):
    """ONNX Runtime's `quantize_static` QDQ model of `d/model.onnx` (int8
    activations and weights, per channel, calibrated on `d/calib.npy`, plus
    `extra` options), written once to `d/name`."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    q = os.path.join(d, name)
    if not os.path.exists(q):
        calib = np.load(os.path.join(d, "calib.npy"))

        class Reader(CalibrationDataReader):
            def __init__(self):
                self.it = iter([{"x": c} for c in calib])

            def get_next(self):
                return next(self.it, None)

        quantize_static(
            os.path.join(d, "model.onnx"), q, Reader(), quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, per_channel=True, **extra,
        )
    return q


def ort_session(path):
    """A one-thread, sequential, fully optimized ONNX Runtime CPU session."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def ort_rr_session(d):
    """ONNX Runtime on its `quantize_static(..., reduce_range=True)` QDQ model."""
    return ort_session(qdq_model(d, "model_qdq_rr.onnx", reduce_range=True))


def ort_sessions(d):
    calib = np.load(os.path.join(d, "calib.npy"))
    f32 = ort_session(os.path.join(d, "model.onnx"))
    i8 = ort_session(qdq_model(d, "model_qdq.onnx"))
    return f32, i8, {"x": calib[0]}


def time_ort(sess, feed, n):
    out = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        sess.run(None, feed)
        out.append(time.perf_counter_ns() - t0)
    return out


def time_exe(exe, n):
    r = subprocess.run([exe, str(n)], check=True, capture_output=True, text=True)
    return [float(x) for x in r.stdout.split()]


def time_tract(model, n):
    """tract-onnx's run times (ns), or [] when tract cannot run the model."""
    if not os.path.exists(TRACT):
        return []
    r = subprocess.run([TRACT, model, str(n)], capture_output=True, text=True)
    return [float(x) for x in r.stdout.split()] if r.returncode == 0 else []


def profile_exe(exe, n):
    """Per-node mean nanoseconds from `--profile` (bench/harness.c), by op and by node."""
    r = subprocess.run([exe, str(n), "profile"], check=True, capture_output=True, text=True)
    nodes = []
    for line in r.stdout.splitlines():
        ns, label = line.split("\t", 1)
        op = label.rsplit("(", 1)[-1].rstrip(")")
        nodes.append((float(ns), label, op))
    return nodes


PROFILED = ("mobilenetv2", "resnet18", "resnet50")


def profile_table(name, tag, nodes):
    total = sum(n[0] for n in nodes) or 1.0
    by_op = {}
    for ns, _, op in nodes:
        by_op[op] = by_op.get(op, 0.0) + ns
    L = [f"**{name}, qcc {tag}** (sum of nodes {total / 1e6:.2f} ms): by op "]
    L[-1] += ", ".join(f"{op} {v / total * 100:.0f}%" for op, v in sorted(by_op.items(), key=lambda x: -x[1]))
    L.append("")
    L.append("| node (op) | ms | share |")
    L.append("|---|---|---|")
    for ns, label, _ in sorted(nodes, key=lambda x: -x[0])[:8]:
        L.append(f"| {label} | {ns / 1e6:.3f} | {ns / total * 100:.1f}% |")
    L.append("")
    return L


def fmt(ts):
    ms = [t / 1e6 for t in ts]
    return f"{statistics.median(ms):.3f} ({min(ms):.3f}-{max(ms):.3f})"


def svg(rows, path):
    """A bar chart: each model's median latency relative to ONNX Runtime fp32."""
    variants = ["qcc f32", "qcc int8", "ORT fp32", "ORT int8", "tract fp32"]
    colors = ["#1f77b4", "#2ca02c", "#aaaaaa", "#666666", "#d62728"]
    bw, gap, h = 10, 18, 220
    width = 160 + len(rows) * (len(variants) * bw + gap)
    vmax = max([r[v] / r["ORT fp32"] for r in rows for v in variants if r.get(v)] + [1.0])
    s = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{h + 140}" font-family="sans-serif" font-size="10">']
    s.append(f'<text x="10" y="14">median latency / ONNX Runtime fp32 (lower is better)</text>')
    y0 = h + 20
    one = y0 - h / vmax
    s.append(f'<line x1="40" y1="{one:.1f}" x2="{width}" y2="{one:.1f}" stroke="red" stroke-dasharray="4"/>')
    for i, r in enumerate(rows):
        x = 50 + i * (len(variants) * bw + gap)
        for j, v in enumerate(variants):
            if not r.get(v):
                continue
            val = r[v] / r["ORT fp32"]
            bh = h * val / vmax
            s.append(f'<rect x="{x + j * bw}" y="{y0 - bh:.1f}" width="{bw - 1}" height="{bh:.1f}" fill="{colors[j]}"/>')
        s.append(f'<text transform="translate({x + 2 * bw},{y0 + 8}) rotate(60)">{r["name"]}</text>')
    for j, v in enumerate(variants):
        s.append(f'<rect x="{width - 110}" y="{30 + 14 * j}" width="10" height="10" fill="{colors[j]}"/>')
        s.append(f'<text x="{width - 95}" y="{39 + 14 * j}">{v}</text>')
    s.append("</svg>")
    open(path, "w").write("\n".join(s))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--per", type=int, default=5)
    ap.add_argument("--only")
    ap.add_argument("--out", default=os.path.join(HERE, "RESULTS.md"))
    args = ap.parse_args()
    os.makedirs(WORK, exist_ok=True)
    mdir = os.path.join(WORK, "models")
    gen = [sys.executable, os.path.join(HERE, "models.py"), mdir]
    if args.only:
        gen += ["--only", args.only]
    subprocess.run(gen, check=True)
    sys.path.insert(0, HERE)
    import models

    names = [n for n in models.MODELS if not args.only or n in args.only.split(",")]
    model, flags = cpu_info()
    ceil = probes(flags)
    w7 = seven_bit(flags)
    rows, compile_times = [], {}
    for name in names:
        d = os.path.join(mdir, name)
        print(f"bench: {name}", file=sys.stderr)
        ef, tf = compile_qcc(name, d, False)
        ei, ti = compile_qcc(name, d, True)
        compile_times[name] = (tf, ti)
        sf, si, feed = ort_sessions(d)
        # ONNX Runtime's own QDQ model, compiled by qcc as it comes (fold-qdq).
        eq, _ = compile_qcc(name, d, False, "model_qdq.onnx", "ortqdq")
        e7, srr = None, None
        if w7:
            e7, _ = compile_qcc(name, d, True, tag="i8w7", extra=("--weight-bits", "7"))
            srr = ort_rr_session(d)
            time_ort(srr, feed, 3)
        time_ort(sf, feed, 3)
        time_ort(si, feed, 3)
        t = {"qcc f32": [], "qcc int8": [], "qcc ORT-QDQ": [], "ORT fp32": [], "ORT int8": [], "tract fp32": [],
             "qcc int8 w7": [], "ORT int8 rr": []}
        model_path = os.path.join(d, "model.onnx")
        for _ in range(args.rounds):
            if ef:
                t["qcc f32"] += time_exe(ef, args.per)
            if ei:
                t["qcc int8"] += time_exe(ei, args.per)
            if eq:
                t["qcc ORT-QDQ"] += time_exe(eq, args.per)
            t["ORT fp32"] += time_ort(sf, feed, args.per)
            t["ORT int8"] += time_ort(si, feed, args.per)
            t["tract fp32"] += time_tract(model_path, args.per)
            if e7:
                t["qcc int8 w7"] += time_exe(e7, args.per)
            if srr:
                t["ORT int8 rr"] += time_ort(srr, feed, args.per)
        row = {"name": name, "t": t, "profile": {}}
        if name in PROFILED:
            for tag, exe in (("f32", ef), ("int8", ei)):
                if exe:
                    row["profile"][tag] = profile_exe(exe, max(3, args.per))
        for k, v in t.items():
            row[k] = statistics.median(v) if v else None
        rows.append(row)

    L = ["# qcc benchmark results", ""]
    L.append(f"Written by `bash bench/run.sh` on {time.strftime('%Y-%m-%d')}. CPU: **{model}**, one thread.")
    keep = [f for f in flags if any(k in f for k in ("avx", "fma", "vnni", "sse4", "amx", "popcnt"))]
    L.append(f"Flags: `{' '.join(keep)}`.")
    L.append(f"{args.rounds} rounds × {args.per} runs per variant after warm-up, rounds alternated; times in ms, median (min-max).")
    L.append("")
    L.append("| model | qcc f32 | qcc int8 | qcc ORT-QDQ | ORT fp32 | ORT int8 | tract fp32 | qcc f32 / ORT fp32 | qcc int8 / ORT int8 | qcc ORT-QDQ / ORT int8 | qcc int8 / ORT fp32 | qcc f32 / tract | qcc int8 / tract |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    ratio = lambda a, b: f"{a / b:.2f}×" if a and b else "-"
    for r in rows:
        t = r["t"]
        cells = [fmt(t[k]) if t[k] else "failed" for k in ("qcc f32", "qcc int8", "qcc ORT-QDQ", "ORT fp32", "ORT int8", "tract fp32")]
        L.append(
            f"| {r['name']} | " + " | ".join(cells) + f" | {ratio(r['qcc f32'], r['ORT fp32'])} | "
            f"{ratio(r['qcc int8'], r['ORT int8'])} | {ratio(r['qcc ORT-QDQ'], r['ORT int8'])} | {ratio(r['qcc int8'], r['ORT fp32'])} | "
            f"{ratio(r['qcc f32'], r['tract fp32'])} | {ratio(r['qcc int8'], r['tract fp32'])} |"
        )
    L.append("")
    if w7:
        L.append("## Exact int8 on this core (no VNNI)")
        L.append("")
        L.append("AVX2's `vpmaddubsw` sums two u8 × s8 products into a saturating i16. ONNX Runtime's int8")
        L.append("above uses it on full-range weights (results may saturate); qcc's default int8 stays exact")
        L.append("with `vpmaddwd` on widened bytes. The exact fast pair: qcc `--weight-bits 7` (weights within")
        L.append("±63, `vpmaddubsw` kernels) and ONNX Runtime on its `reduce_range=True` model (7-bit weights).")
        L.append("")
        L.append("| model | qcc int8 w7 | ORT int8 rr | qcc int8 w7 / ORT int8 rr | qcc int8 w7 / ORT int8 | qcc int8 w7 / ORT fp32 | qcc int8 w7 / qcc int8 |")
        L.append("|---|---|---|---|---|---|---|")
        for r in rows:
            t = r["t"]
            cells = [fmt(t[k]) if t[k] else "failed" for k in ("qcc int8 w7", "ORT int8 rr")]
            L.append(
                f"| {r['name']} | " + " | ".join(cells) + f" | {ratio(r['qcc int8 w7'], r['ORT int8 rr'])} | "
                f"{ratio(r['qcc int8 w7'], r['ORT int8'])} | {ratio(r['qcc int8 w7'], r['ORT fp32'])} | "
                f"{ratio(r['qcc int8 w7'], r['qcc int8'])} |"
            )
        L.append("")
    L.append("## Throughput of the single layers (GMAC/s, from the medians)")
    L.append("")
    L.append("| layer | qcc f32 | ORT fp32 | qcc int8 | ORT int8 |")
    L.append("|---|---|---|---|---|")
    for r in rows:
        macs = MACS.get(r["name"])
        if not macs:
            continue
        g = lambda k: f"{macs / r[k]:.1f}" if r.get(k) else "-"
        L.append(f"| {r['name']} | {g('qcc f32')} | {g('ORT fp32')} | {g('qcc int8')} | {g('ORT int8')} |")
    L.append("")
    L.append("## This machine's ceilings (register-only probes, bench/probes.c, GMAC/s)")
    L.append("")
    L.append("| probe | GMAC/s |")
    L.append("|---|---|")
    for k, v in ceil.items():
        L.append(f"| {k} | {v:.1f} |")
    L.append("")
    mca_dir = os.path.join(mdir, "conv3x3_64_56")
    if os.path.isdir(mca_dir):
        L.append("## AArch64 microkernels (llvm-mca; qemu cannot time ARM)")
        L.append("")
        L.append("The inner k loop of each microkernel qcc emits for conv3x3_64_56 with `--cpu CORE`, through")
        L.append("`llvm-mca -mcpu=CORE`, against the same model's peak for independent instructions of that form (bench/mca.py).")
        L.append("")
        r = subprocess.run([sys.executable, os.path.join(HERE, "mca.py"), mca_dir], capture_output=True, text=True)
        L += r.stdout.strip().splitlines() if r.returncode == 0 else [f"(bench/mca.py failed: {r.stderr.strip()[-200:]})"]
        L.append("")
    L.append("## Per-layer profile (qcc `--profile`: `m_run_profiled` with a clock_gettime clock)")
    L.append("")
    for r in rows:
        for tag, nodes in r["profile"].items():
            L += profile_table(r["name"], tag, nodes)
    L.append("## qcc compile time and peak memory")
    L.append("")
    L.append("| model | f32 (s) | f32 peak RSS (MiB) | int8, 16 samples (s) | int8 peak RSS (MiB) |")
    L.append("|---|---|---|---|---|")
    for n, (a, b) in compile_times.items():
        L.append(f"| {n} | {a[0]:.2f} | {a[1]:.0f} | {b[0]:.2f} | {b[1]:.0f} |")
    L.append("")
    # The chart sits beside the table, named after it (RESULTS.md → results.svg,
    # RESULTS-avx2.md → results-avx2.svg), so runs on other machines keep theirs.
    chart = os.path.splitext(os.path.basename(args.out))[0].lower() + ".svg"
    L.append(f"![latency relative to ONNX Runtime fp32]({chart})")
    open(args.out, "w").write("\n".join(L) + "\n")
    svg(rows, os.path.join(os.path.dirname(args.out), chart))
    print("\n".join(L))


if __name__ == "__main__":
    main()
