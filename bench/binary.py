#!/usr/bin/env python3
"""Binary layers against int8 and float builds of the same topology.

    .venv/bin/python bench/binary.py      (after `cargo build --release -p qcc`)

For each trained binary network of testdata/ (bnn_mlp, bnn_cnn; batch 1):
- **binary**: the model as it is; `binarize` turns the layers that read
  signs into SignMatMul / SignConv (bits and popcount);
- **int8** and **f32**: the same graph with every ±1 weight scaled by a
  random factor in [0.999, 1.001] (so no layer is binary any more, same
  shapes and about the same values), compiled with `--quantize int8`
  (calibrated on 64 of the held-out images) and as float.

Each build is compiled with `--profile --stats`, linked with
bench/harness.c and run one thread, rounds alternated; the per-layer table
comes from `--profile` (mean ns per node over the runs). Writes
bench/BINARY.md with the CPU, whole-model medians, flash (code + weights, from
`--stats`) and the layers side by side.
"""

import os
import re
import shutil
import statistics
import subprocess
import sys

import numpy as np
import onnx
from onnx import numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
QCC = os.path.join(ROOT, "target", "release", "qcc")
WORK = os.path.join(ROOT, "target", "bench", "binary")
ROUNDS, PER, PROFILE_RUNS = 5, 20, 200
NETS = {"bnn_mlp": [1, 784], "bnn_cnn": [1, 1, 28, 28]}

sys.path.insert(0, HERE)
from run import cpu_info  # noqa: E402


def perturbed(src, dst):
    """The model with its ±1 weights (int8 behind a Cast) made float and
    scaled per weight by a factor in [0.999, 1.001]."""
    m = onnx.load(src)
    rng = np.random.default_rng(7)
    casts = {n.input[0]: n for n in m.graph.node if n.op_type == "Cast"}
    for init in m.graph.initializer:
        if init.name in casts:
            w = numpy_helper.to_array(init).astype(np.float32)
            w *= rng.uniform(0.999, 1.001, w.shape).astype(np.float32)
            init.CopyFrom(numpy_helper.from_array(w, init.name))
            casts[init.name].attribute[0].i = onnx.TensorProto.FLOAT
    onnx.save(m, dst)


def weight_bytes(model_path):
    """Per layer (node name): (bytes as f32, bytes of the binary kernel's bit
    table). The table is `kernels/binary.rs`'s: per tap, ceil(C / word) words
    of 32 bits when C ≤ 32, else 64, per output channel."""
    m = onnx.load(model_path)
    inits = {i.name: list(i.dims) for i in m.graph.initializer}
    cast = {n.output[0]: n.input[0] for n in m.graph.node if n.op_type == "Cast"}
    out = {}
    for n in m.graph.node:
        if n.op_type not in ("Conv", "MatMul") or len(n.input) < 2:
            continue
        dims = inits.get(cast.get(n.input[1], n.input[1]))
        if dims is None:
            continue
        if n.op_type == "Conv":
            oc, c, taps = dims[0], dims[1], dims[2] * dims[3]
        else:
            (c, oc), taps = dims, 1
        word = 32 if c <= 32 else 64
        count = oc * c * taps
        out[n.name] = (4 * count, taps * -(-c // word) * oc * word // 8)
    return out


def build(d, tag, model, shape, extra=()):
    o, h = os.path.join(d, f"{tag}.o"), os.path.join(d, f"{tag}.h")
    dims = ",".join(map(str, shape))
    r = subprocess.run([QCC, model, "-o", o, "--name", "m", "--header", h, "--profile", "--stats",
                        "--input-shape", f"x={dims}", *extra], check=True, capture_output=True, text=True)
    flash = re.search(r"flash: (\d+) bytes \(code (\d+), read-only data and weights (\d+)\)", r.stdout + r.stderr)
    inc = os.path.join(d, f"inc_{tag}")
    os.makedirs(inc, exist_ok=True)
    shutil.copyfile(h, os.path.join(inc, "m.h"))
    exe = os.path.join(d, f"h_{tag}")
    subprocess.run(["cc", "-O2", "-I", inc, os.path.join(HERE, "harness.c"), o, "-o", exe], check=True)
    return exe, tuple(int(flash.group(i)) for i in (1, 2, 3))


def times(exe, n):
    r = subprocess.run([exe, str(n)], check=True, capture_output=True, text=True)
    return [float(v) for v in r.stdout.split()]


def profile(exe):
    r = subprocess.run([exe, str(PROFILE_RUNS), "profile"], check=True, capture_output=True, text=True)
    out = {}
    for line in r.stdout.splitlines():
        ns, label = line.split("\t", 1)
        name, op = label.rsplit(" (", 1)
        out[name] = (float(ns), op.rstrip(")"))
    return out


def main():
    os.makedirs(WORK, exist_ok=True)
    model_name, flags = cpu_info()
    xs = np.load(os.path.join(ROOT, "testdata", "bnn_mlp", "test_x.npy")).astype(np.float32)
    L = ["# Binary layers against int8 and float builds", ""]
    L.append(f"Written by `bench/binary.py`. CPU: **{model_name}**, one thread, batch 1.")
    keep = [f for f in flags if any(k in f for k in ("avx", "fma", "popcnt", "vpopcnt", "sse4"))]
    L.append(f"Flags: `{' '.join(keep)}`.")
    L.append(f"{ROUNDS} rounds × {PER} runs per build, rounds alternated; per-layer times: mean of "
             f"{PROFILE_RUNS} profiled runs (`--profile`).")
    L.append("")
    for net, shape in NETS.items():
        d = os.path.join(WORK, net)
        os.makedirs(d, exist_ok=True)
        src = os.path.join(ROOT, "testdata", net, "model.onnx")
        pert = os.path.join(d, "perturbed.onnx")
        perturbed(src, pert)
        calib = os.path.join(d, "calib.npy")
        np.save(calib, xs[:64].reshape([64] + shape))
        builds = {
            "binary": build(d, "binary", src, shape),
            "int8": build(d, "int8", pert, shape, ("--quantize", "int8", "--calibration-data", calib)),
            "f32": build(d, "f32", pert, shape),
        }
        t = {k: [] for k in builds}
        for _ in range(ROUNDS):
            for k, (exe, _) in builds.items():
                t[k] += times(exe, PER)
        prof = {k: profile(exe) for k, (exe, _) in builds.items()}
        med = {k: statistics.median(v) / 1e3 for k, v in t.items()}
        L.append(f"## {net}")
        L.append("")
        L.append("| build | median µs (min-max) | flash bytes (code + data) |")
        L.append("|---|---|---|")
        for k, (_, fl) in builds.items():
            L.append(f"| {k} | {med[k]:.1f} ({min(t[k]) / 1e3:.1f}-{max(t[k]) / 1e3:.1f}) | {fl[0]} ({fl[1]} + {fl[2]}) |")
        L.append("")
        wb = weight_bytes(src)
        L.append("| layer | binary op | binary µs | int8 µs | f32 µs | binary / int8 | binary / f32 | weights: bits / f32 bytes |")
        L.append("|---|---|---|---|---|---|---|---|")
        tot = [0, 0]
        for name, (ns, op) in prof["binary"].items():
            if not op.startswith("sign_"):
                continue
            i8 = prof["int8"].get(name, (None, ""))[0]
            f = prof["f32"].get(name, (None, ""))[0]
            cell = lambda v: f"{v / 1e3:.2f}" if v else "-"
            ratio = lambda a, b: f"{a / b:.2f}×" if a and b else "-"
            fb, bb = wb.get(name, (0, 0))
            tot[0] += fb
            tot[1] += bb
            L.append(f"| {name} | {op} | {cell(ns)} | {cell(i8)} | {cell(f)} | {ratio(ns, i8)} | {ratio(ns, f)} "
                     f"| {bb} / {fb} (1/{fb / bb:.0f}) |")
        L.append("")
        L.append(f"Binary layers' weights: {tot[1]} bytes of bits against {tot[0]} as f32 (1/{tot[0] / tot[1]:.1f}).")
        L.append("")
        print("\n".join(L[-14:]))
    open(os.path.join(HERE, "BINARY.md"), "w").write("\n".join(L) + "\n")


if __name__ == "__main__":
    main()
