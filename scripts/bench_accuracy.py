#!/usr/bin/env python3
"""Accuracy of qcc's int8 quantization against float and ONNX Runtime's.

One command, from the repository root (after scripts/setup.sh):

    .venv/bin/python scripts/bench_accuracy.py

What it does:

1. Builds qcc (`cargo build -p qcc`, or `--release`).
2. On testdata/digits/ (a CNN trained by scripts/train_digits.py on
   scikit-learn's 8x8 digits; held-out split test_x.npy/test_y.npy,
   calibration images calib.npy from the training split), top-1 accuracy of:
   - the float model under ONNX Runtime, and compiled by qcc without
     quantization;
   - qcc int8 for every `--calibration` method x `--scales` format (and
     minmax with `--per-tensor`, and 7-bit weights); below 8 bits, uniform
     4-, 3- and 2-bit weights, ternary layers (`--ternary`) and
     `--quantize auto` at 55%, 50%, 35% and 25% of the 8-bit weight bytes. Each configuration is compiled by the qcc
     binary to an object file, linked with a small C program that runs every
     held-out image through it (the model has batch 1) and prints the argmax:
     the native code users get, not a simulation;
   - ONNX Runtime's `quantize_static` (after `quant_pre_process`, as ORT
     recommends): QDQ format, per-channel int8 weights, int8 activations,
     the same calibration images, with MinMax, Entropy and Percentile=99.99
     calibration, run by onnxruntime.
3. Quantization op counts on every model in testdata/ (digits, and the e2e
   cases of testdata/manifest.txt, calibrated on their test_data_set inputs):
   qcc's Quantize + Dequantize + Requantize after cancel-qdq (from `--stats`)
   against ONNX Runtime's QDQ graph: QuantizeLinear + DequantizeLinear on
   activations, and in total (with the DequantizeLinear of every weight and
   bias).

Prints markdown tables (top-1, agreement with the float model's top-1,
SQNR of the logits against float on the held-out images, op counts) and
whether the targets hold: each qcc int8 configuration within 0.3 points of
float top-1 and no worse than the best ONNX Runtime configuration; W4A8 and
auto at 55% within 1 point, auto at 55% above W4A8's logits SQNR; qcc's
quantization ops at most half of ONNX Runtime's QDQ count on activations on
every model (half of its total, which adds weight DequantizeLinear nodes,
follows). `--check` exits 1 when a target is missed. Takes ~20 s once qcc
is built (debug build).
"""

import argparse
import contextlib
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx
from onnx import numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIGITS = os.path.join(ROOT, "testdata", "digits")
METHODS = ["minmax", "percentile=99.99", "entropy", "mse"]
SCALES = ["fixed-point", "pow2"]
TARGET_POINTS = 0.3

EVAL_C = r"""
/* Runs a qcc-compiled single-input, single-output float32 model on every
 * image of a raw little-endian float32 file and prints each output, one line
 * per image. */
#include "model.h"

#include <stdio.h>
#include <stdlib.h>

#if MODEL_NUM_INPUTS != 1 || MODEL_NUM_OUTPUTS != 1
#error "eval.c expects one input and one output"
#endif

static _Alignas(64) unsigned char workspace[MODEL_WORKSPACE_SIZE > 0 ? MODEL_WORKSPACE_SIZE : 1];
static float out[MODEL_OUTPUT0_SIZE];

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s IMAGES.f32\n", argv[0]);
        return 1;
    }
    FILE *f = fopen(argv[1], "rb");
    if (!f) {
        perror(argv[1]);
        return 1;
    }
    if (fseek(f, 0, SEEK_END) != 0) return 1;
    long bytes = ftell(f);
    rewind(f);
    size_t per = MODEL_INPUT0_SIZE;
    if (bytes <= 0 || (size_t)bytes % (per * sizeof(float)) != 0) {
        fprintf(stderr, "%s: %ld bytes is not a whole number of inputs\n", argv[1], bytes);
        return 1;
    }
    size_t n = (size_t)bytes / (per * sizeof(float));
    float *x = malloc((size_t)bytes);
    if (!x || fread(x, 1, (size_t)bytes, f) != (size_t)bytes) {
        fprintf(stderr, "%s: cannot read\n", argv[1]);
        return 1;
    }
    fclose(f);
    for (size_t i = 0; i < n; i++) {
        const void *in[1] = {x + i * per};
        void *o[1] = {out};
        int rc = model_run(in, o, workspace);
        if (rc != 0) {
            fprintf(stderr, "model_run returned %d on image %zu\n", rc, i);
            return 2;
        }
        for (size_t k = 0; k < MODEL_OUTPUT0_SIZE; k++)
            printf(k + 1 < MODEL_OUTPUT0_SIZE ? "%.9g " : "%.9g\n", out[k]);
    }
    free(x);
    return 0;
}
"""

STATS_RE = re.compile(
    r"quantization ops: (\d+) quantize, (\d+) dequantize, (\d+) requantize = (\d+) "
    r"\(naive QDQ insertion: (\d+) quantize \+ (\d+) dequantize = (\d+)\)"
)


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        sys.exit(f"bench: {' '.join(map(str, cmd))} failed ({r.returncode}):\n{r.stderr.strip()}")
    return r.stdout


def build_qcc(release):
    cmd = ["cargo", "build", "-q", "-p", "qcc", "--bin", "qcc"] + (["--release"] if release else [])
    log(" ".join(cmd))
    run(cmd, cwd=ROOT)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    exe = os.path.join(target, "release" if release else "debug", "qcc")
    if not os.path.isfile(exe):
        sys.exit(f"bench: no qcc binary at {exe}")
    return exe


# --- qcc ----------------------------------------------------------------------


def qcc_compile(qcc, model, out_dir, quant_flags, extra=()):
    """Compiles `model` into out_dir/model.o (+ .h); returns the --stats text."""
    os.makedirs(out_dir, exist_ok=True)
    cmd = [qcc, model, "-o", os.path.join(out_dir, "model.o"), "--name", "model", "--stats"]
    return run(cmd + list(quant_flags) + list(extra))


def parse_counts(stats):
    m = STATS_RE.search(stats)
    if not m:
        return None
    q, dq, rq, total, nq, ndq, ntotal = map(int, m.groups())
    return {"q": q, "dq": dq, "rq": rq, "total": total, "naive": ntotal}


def parse_output_sqnr(stats):
    m = re.search(r"^\s*output \S+\s+(\S+)\s*$", stats, re.M)
    return m.group(1) if m else "-"


def qcc_logits(qcc, cc, work, tag, images, n, quant_flags, model=None):
    """Compiles the digits model (or `model`) with qcc, links it with eval.c,
    runs it on every held-out image; returns ([n, 10] logits, qcc --stats text)."""
    d = os.path.join(work, tag)
    stats = qcc_compile(qcc, model or os.path.join(DIGITS, "model.onnx"), d, quant_flags)
    shutil.copy(os.path.join(work, "eval.c"), d)
    exe = os.path.join(d, "eval")
    run([cc, "-O2", "-std=c11", "-Wall", "-Werror", "-I", d, os.path.join(d, "eval.c"), os.path.join(d, "model.o"), "-o", exe])
    logits = np.array([[float(v) for v in line.split()] for line in run([exe, images]).splitlines()])
    if logits.shape[0] != n:
        sys.exit(f"bench: {tag}: {logits.shape[0]} outputs for {n} images")
    return logits, stats


# --- ONNX Runtime -------------------------------------------------------------


def ort_session(path, optimize=True):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    if not optimize:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def output_step(path):
    """The scale of the DequantizeLinear producing the model's output, if any."""
    m = onnx.load(path)
    out = m.graph.output[0].name
    inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    for node in m.graph.node:
        if out in node.output and node.op_type == "DequantizeLinear" and node.input[1] in inits:
            return float(inits[node.input[1]])
    return None


def ort_logits(path, x, optimize=True):
    sess = ort_session(path, optimize)
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: x[i : i + 1]})[0] for i in range(len(x))])


def ort_quantize(model, out_path, samples, method):
    """quantize_static in QDQ format, per channel; samples: list of {input name: array}."""
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(samples)

        def get_next(self):
            return next(self.it, None)

    pre = out_path + ".pre.onnx"
    quant_pre_process(model, pre)
    calib = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy, "percentile=99.99": CalibrationMethod.Percentile}[method]
    # BatchNormalization's scale is 1-D: its channel axis is 0, not ORT's default 1
    # (with 1, ORT 1.22 fails on a BatchNormalization it could not fuse into a Conv).
    extra = {"QDQOpTypePerChannelSupportToAxis": {"BatchNormalization": 0}}
    if method.startswith("percentile"):
        extra["CalibPercentile"] = 99.99
    def quantize(extra):
        # ORT's calibrators print progress on stdout; keep stdout for the tables.
        with contextlib.redirect_stdout(sys.stderr):
            quantize_static(
                pre,
                out_path,
                Reader(),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=calib,
                extra_options=extra,
            )

    try:
        quantize(extra)
    except ValueError as e:
        # ORT 1.22's per-channel int32-bias check fails on a 2-D Gemm bias
        # ([1, N]); that check only widens weight scales whose bias would
        # overflow int32, so retrying without it changes nothing else.
        log(f"quantize_static failed on {os.path.basename(os.path.dirname(model))} ({e}); retrying with QDQDisableWeightAdjustForInt32Bias")
        quantize({**extra, "QDQDisableWeightAdjustForInt32Bias": True})
    return out_path


def ort_qdq_counts(path):
    """(activation Q+DQ, total Q+DQ) of a QDQ model; a DQ of an initializer is a weight's."""
    g = onnx.load(path).graph
    inits = {i.name for i in g.initializer}
    q = [n for n in g.node if n.op_type == "QuantizeLinear"]
    dq = [n for n in g.node if n.op_type == "DequantizeLinear"]
    weight_dq = [n for n in dq if n.input[0] in inits]
    weight_q = [n for n in q if n.input[0] in inits]
    act = len(q) - len(weight_q) + len(dq) - len(weight_dq)
    return {"q": len(q), "dq": len(dq), "act": act, "total": len(q) + len(dq)}


# --- the op-count models --------------------------------------------------------


QUANTIZED_OPS = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "MatMulInteger", "QLinearConv", "QLinearMatMul"}


# Domains of models that arrive quantized (ONNX Runtime's contrib ops, QONNX).
FOREIGN_DOMAINS = {"com.microsoft", "qonnx.custom_op.general", "finn.custom_op.general", "onnx.brevitas"}


def manifest_cases():
    """(name, qcc flags) of the float e2e cases in testdata/manifest.txt (the
    models that arrive quantized are left out: qcc does not quantize them)."""
    cases = []
    with open(os.path.join(ROOT, "testdata", "manifest.txt")) as f:
        for line in f:
            toks = line.split("#", 1)[0].split()
            if not toks:
                continue
            g = onnx.load(os.path.join(ROOT, "testdata", toks[0], "model.onnx")).graph
            if any(n.op_type in QUANTIZED_OPS or n.domain in FOREIGN_DOMAINS for n in g.node):
                continue
            flags = [t for t in toks[1:] if not re.match(r"^(atol|rtol|oracle)=", t)]
            cases.append((toks[0], flags))
    return cases


def pb_samples(case_dir, model):
    """ORT calibration samples from the case's test_data_set_*/input_*.pb."""
    g = onnx.load(model).graph
    inits = {t.name for t in g.initializer}
    names = [i.name for i in g.input if i.name not in inits]
    samples = []
    for d in sorted(glob.glob(os.path.join(case_dir, "test_data_set_*"))):
        s = {}
        for k, name in enumerate(names):
            t = onnx.TensorProto()
            with open(os.path.join(d, f"input_{k}.pb"), "rb") as f:
                t.ParseFromString(f.read())
            s[name] = numpy_helper.to_array(t)
        samples.append(s)
    return samples


def op_counts(qcc, work):
    rows = []
    cases = [("digits", [], os.path.join(DIGITS, "calib.npy"))]
    cases += [(name, flags, os.path.join(ROOT, "testdata", name)) for name, flags in manifest_cases()]
    for name, flags, calib in cases:
        model = os.path.join(ROOT, "testdata", name, "model.onnx")
        d = os.path.join(work, "ops", name)
        stats = qcc_compile(qcc, model, d, ["--quantize", "int8", "--calibration-data", calib], flags)
        ours = parse_counts(stats)
        if name == "digits":
            x = np.load(calib)
            inp = onnx.load(model).graph.input[0].name
            samples = [{inp: x[i : i + 1]} for i in range(len(x))]
        else:
            samples = pb_samples(calib, model)
        theirs = ort_qdq_counts(ort_quantize(model, os.path.join(d, "ort_qdq.onnx"), samples, "minmax"))
        rows.append((name, ours, theirs, stats))
    return rows


# --- main -----------------------------------------------------------------------


def fmt_acc(correct, n):
    return f"{100.0 * correct / n:.2f}% ({correct}/{n})"


def sqnr_db(ref, got):
    noise = float(((ref - got) ** 2).sum())
    return float("inf") if noise == 0 else 10 * np.log10(float((ref**2).sum()) / noise)


def main():
    ap = argparse.ArgumentParser(description="int8 accuracy and quantization-op counts: qcc vs ONNX Runtime")
    ap.add_argument("--release", action="store_true", help="build and use the release qcc")
    ap.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    ap.add_argument("--keep", metavar="DIR", help="work in DIR and keep it (default: a temporary folder)")
    args = ap.parse_args()
    t0 = time.time()

    cc = os.environ.get("CC", "cc")
    qcc = build_qcc(args.release)
    tmp = None
    if args.keep:
        work = os.path.abspath(args.keep)
        os.makedirs(work, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="qcc-bench-")
        work = tmp.name

    x = np.load(os.path.join(DIGITS, "test_x.npy"))
    y = np.load(os.path.join(DIGITS, "test_y.npy"))
    calib = np.load(os.path.join(DIGITS, "calib.npy"))
    n = len(y)
    images = os.path.join(work, "test_x.f32")
    x.astype("<f4").tofile(images)
    with open(os.path.join(work, "eval.c"), "w") as f:
        f.write(EVAL_C)
    model = os.path.join(DIGITS, "model.onnx")
    calib_path = os.path.join(DIGITS, "calib.npy")

    # Rows: {what, method, scales, logits, ops (text), qcc (bool)}
    rows = []
    log("float")
    ref = ort_logits(model, x)
    rows.append(dict(what="float, ONNX Runtime", method="-", scales="-", logits=ref, ops="-", qcc=False))
    lg, _ = qcc_logits(qcc, cc, work, "float", images, n, [])
    rows.append(dict(what="float, qcc native", method="-", scales="-", logits=lg, ops="-", qcc=False))

    configs = [(m, s, []) for m in METHODS for s in SCALES] + [
        ("minmax", "fixed-point", ["--per-tensor"]),
        ("minmax", "fixed-point", ["--weight-bits", "7"]),
    ]
    for method, scales, extra in configs:
        tag = f"int8-{method}-{scales}{''.join(extra)}".replace("=", "").replace("--", "-")
        log(tag)
        flags = ["--quantize", "int8", "--calibration-data", calib_path, "--calibration", method, "--scales", scales] + extra
        lg, stats = qcc_logits(qcc, cc, work, tag, images, n, flags)
        c = parse_counts(stats)
        ops = "?" if c is None else f"{c['total']} ({c['q']} Q + {c['dq']} DQ + {c['rq']} R)"
        what = "int8, qcc native" + (", per-tensor" if "--per-tensor" in extra else ", per-channel")
        if "--weight-bits" in extra:
            what += f", {extra[extra.index('--weight-bits') + 1]}-bit weights"
        rows.append(dict(what=what, method=method, scales=scales, logits=lg, ops=ops, qcc=True))

    # Below 8 bits (minmax activations, fixed-point scales): (label, flags,
    # target points from float or None, whether it must beat uniform 4-bit's
    # logits SQNR).
    low = [
        ("uniform 4-bit weights (W4A8)", ["--quantize", "int8", "--weight-bits", "4"], 1.0, False),
        ("uniform 3-bit weights", ["--quantize", "int8", "--weight-bits", "3"], None, False),
        ("uniform 2-bit weights", ["--quantize", "int8", "--weight-bits", "2"], None, False),
        ("conv2 ternary (TNT)", ["--quantize", "int8", "--ternary", "conv2"], None, False),
        ("conv1, conv2 ternary (TNT)", ["--quantize", "int8", "--ternary", "conv1,conv2"], None, False),
        ("auto, --weight-budget 55%", ["--quantize", "auto", "--weight-budget", "55%"], 1.0, True),
        ("auto, --weight-budget 50%", ["--quantize", "auto", "--weight-budget", "50%"], None, False),
        ("auto, --weight-budget 35%", ["--quantize", "auto", "--weight-budget", "35%"], None, False),
        ("auto, --weight-budget 25%", ["--quantize", "auto", "--weight-budget", "25%"], None, False),
    ]
    low_rows = []
    for label, flags, target, beat_w4 in low:
        tag = "low-" + "".join(ch for ch in label if ch.isalnum())
        log(tag)
        lg, stats = qcc_logits(qcc, cc, work, tag, images, n, flags + ["--calibration-data", calib_path])
        m = re.search(r"^chosen: (.*), (\d+) bytes of weights", stats, re.M)
        wb = int(m.group(2)) if m else None
        low_rows.append(dict(what=label, logits=lg, target=target, beat_w4=beat_w4, bytes=wb, chosen=m.group(1) if m else "-"))

    samples = [{"x": calib[i : i + 1]} for i in range(len(calib))]
    imported = []
    for method in ["minmax", "entropy", "percentile=99.99"]:
        log(f"onnxruntime quantize_static {method}")
        path = ort_quantize(model, os.path.join(work, f"ort-{method}.onnx".replace("=", "")), samples, method)
        c = ort_qdq_counts(path)
        ops = f"{c['act']} on activations; {c['total']} with weights ({c['q']} Q + {c['dq']} DQ)"
        ort_lg = ort_logits(path, x)
        rows.append(dict(what="int8, ONNX Runtime QDQ, per-channel", method=method, scales="float", logits=ort_lg, ops=ops, qcc=False))
        # The same QDQ model compiled by qcc as it comes (fold-qdq).
        lg, _ = qcc_logits(qcc, cc, work, f"ortqdq-{method}".replace("=", ""), images, n, [], path)
        rows.append(dict(what="int8, ONNX Runtime's QDQ model compiled by qcc", method=method, scales="fixed-point", logits=lg, ops="-", qcc=False))
        imported.append((method, lg, ort_lg, ort_logits(path, x, optimize=False), output_step(path)))

    log("quantization op counts")
    ops = op_counts(qcc, work)
    elapsed = time.time() - t0

    ref_pred = ref.argmax(1)
    float_ok = int((ref_pred == y).sum())
    for r in rows:
        pred = r["logits"].argmax(1)
        r["correct"] = int((pred == y).sum())
        r["agree"] = int((pred == ref_pred).sum())
        r["sqnr"] = sqnr_db(ref, r["logits"])
    ort_best = max(r["correct"] for r in rows if r["what"].startswith("int8, ONNX Runtime QDQ"))
    for r in low_rows:
        pred = r["logits"].argmax(1)
        r["correct"] = int((pred == y).sum())
        r["agree"] = int((pred == ref_pred).sum())
        r["sqnr"] = sqnr_db(ref, r["logits"])
    w4_sqnr = low_rows[0]["sqnr"]

    print(f"## Top-1 on the digits held-out split ({n} images; calibration: 100 images of the training split)\n")
    print("| model | calibration | scales | top-1 | vs float (points) | same top-1 as float | logits SQNR vs float (dB) | quantization ops |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        delta = 100.0 * (r["correct"] - float_ok) / n
        sq = "exact" if np.isinf(r["sqnr"]) else f"{r['sqnr']:.1f}"
        print(
            f"| {r['what']} | {r['method']} | {r['scales']} | {fmt_acc(r['correct'], n)} | {delta:+.2f} "
            f"| {r['agree']}/{n} | {sq} | {r['ops']} |"
        )

    print("\n## Below 8 bits (qcc native; 8-bit activations, minmax, fixed-point)\n")
    print("| weights | top-1 | vs float (points) | same top-1 as float | logits SQNR vs float (dB) | auto's choice |")
    print("|---|---|---|---|---|---|")
    for r in low_rows:
        delta = 100.0 * (r["correct"] - float_ok) / n
        chosen = r["chosen"] if r["bytes"] is None else f"{r['chosen']} ({r['bytes']} B)"
        print(
            f"| {r['what']} | {fmt_acc(r['correct'], n)} | {delta:+.2f} | {r['agree']}/{n} "
            f"| {r['sqnr']:.1f} | {chosen} |"
        )

    print("\n## ONNX Runtime's quantized digits models: compiled by qcc vs run by ONNX Runtime\n")
    print("Differences in steps of the output's quantization scale; ONNX Runtime optimized (its fused int8")
    print("kernels) and with graph optimizations off (the QDQ model's float simulation).\n")
    print("| calibration | same top-1 as ORT optimized | max steps vs ORT optimized | same top-1 as ORT simulation | max steps vs ORT simulation |")
    print("|---|---|---|---|---|")
    for method, lg, opt, sim, step in imported:
        steps = lambda o: f"{np.abs(lg - o).max() / step:.0f}" if step else f"{np.abs(lg - o).max():.3g} (float)"
        same = lambda o: f"{int((lg.argmax(1) == o.argmax(1)).sum())}/{n}"
        print(f"| {method} | {same(opt)} | {steps(opt)} | {same(sim)} | {steps(sim)} |")

    print("\n## Quantization ops: qcc (after cancel-qdq) vs ONNX Runtime QDQ (quantize_static, per-channel, MinMax)\n")
    print("| model | qcc Q + DQ + R | qcc naive QDQ | ORT Q + DQ on activations | ORT Q + DQ with weights and biases | qcc / ORT activations |")
    print("|---|---|---|---|---|---|")
    ops_ok = True
    for name, ours, theirs, _ in ops:
        if ours is None:
            ours_s, ratio = "no count in --stats", "-"
            ops_ok = False
        else:
            ours_s = f"{ours['q']} + {ours['dq']} + {ours['rq']} = {ours['total']}"
            ratio = f"{ours['total'] / theirs['act']:.2f}" if theirs["act"] else "-"
            if theirs["act"] and 2 * ours["total"] > theirs["act"]:
                ops_ok = False
        naive = "-" if ours is None else str(ours["naive"])
        print(f"| {name} | {ours_s} | {naive} | {theirs['act']} | {theirs['q']} + {theirs['dq']} = {theirs['total']} | {ratio} |")

    print("\n## Targets\n")
    ok = True
    for r in rows:
        if not r["qcc"]:
            continue
        within = 100.0 * (float_ok - r["correct"]) / n <= TARGET_POINTS + 1e-9
        not_worse = r["correct"] >= ort_best
        ok &= within and not_worse
        print(
            f"- {r['what']}, {r['method']}, {r['scales']}: {'ok' if within and not_worse else 'MISSED'} "
            f"(within {TARGET_POINTS} points of float: {'yes' if within else 'no'}; "
            f"no worse than ONNX Runtime's best, {fmt_acc(ort_best, n)}: {'yes' if not_worse else 'no'})"
        )
    for r in low_rows:
        if r["target"] is None:
            continue
        within = 100.0 * (float_ok - r["correct"]) / n <= r["target"] + 1e-9
        beats = not r["beat_w4"] or r["sqnr"] > w4_sqnr
        ok &= within and beats
        extra = f"; logits SQNR above uniform 4-bit's {w4_sqnr:.1f} dB: {'yes' if beats else 'no'}" if r["beat_w4"] else ""
        print(
            f"- {r['what']}: {'ok' if within and beats else 'MISSED'} "
            f"(within {r['target']} point of float: {'yes' if within else 'no'}{extra})"
        )
    print(f"- quantization ops at most half of ONNX Runtime's activation QDQ count on every model: {'ok' if ops_ok else 'MISSED'}")
    print(f"\nbench took {elapsed:.0f} s ({'release' if args.release else 'debug'} qcc, {cc})")
    if tmp:
        tmp.cleanup()
    if args.check and not (ok and ops_ok):
        sys.exit(1)


if __name__ == "__main__":
    main()
