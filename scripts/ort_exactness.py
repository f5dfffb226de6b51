#!/usr/bin/env python3
"""qcc against ONNX Runtime's integer kernels, one QOperator node at a time.

For each case a small model `x (f32) -> QuantizeLinear -> <op> ->
DequantizeLinear` is made with random parameters (some with scales that put
results exactly on half steps), run by ONNX Runtime with graph optimizations
on and off, and compiled by qcc with `--requantize float` (the default) and
`--requantize fixed-point`, linked into a small C program and run on the same
inputs. Prints a table of the largest difference in output steps and how many
elements differ.

    .venv/bin/python scripts/ort_exactness.py [--qcc target/release/qcc] [--seed N] [NAME...]

uint8 cases keep their weights within ±64: with full-range weights ONNX
Runtime's AVX2 uint8 x int8 kernels saturate 16-bit pair sums and are not
exact themselves (see README).
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

HARNESS = r"""
#include <stdio.h>
#include <stdlib.h>
#include "m.h"
int main(int argc, char **argv) {
    int n = atoi(argv[1]);
    float *in = malloc(sizeof(float) * M_INPUT0_SIZE);
    float *out = malloc(sizeof(float) * M_OUTPUT0_SIZE);
    void *ws = aligned_alloc(M_WORKSPACE_ALIGN, (M_WORKSPACE_SIZE / M_WORKSPACE_ALIGN + 1) * M_WORKSPACE_ALIGN);
    FILE *fi = fopen(argv[2], "rb"), *fo = fopen(argv[3], "wb");
    if (!fi || !fo) return 3;
    for (int i = 0; i < n; i++) {
        if (fread(in, sizeof(float), M_INPUT0_SIZE, fi) != M_INPUT0_SIZE) return 2;
        const void *ins[1] = {in};
        void *outs[1] = {out};
        if (m_run(ins, outs, ws)) return 1;
        fwrite(out, sizeof(float), M_OUTPUT0_SIZE, fo);
    }
    return fclose(fo) != 0;
}
"""


class Case:
    """One model: `x` quantized with (xs, xzp), the op's nodes, its output
    `yq` dequantized with (ys, yzp)."""

    def __init__(self, rng, dt):
        self.rng, self.dt = rng, dt
        self.inits, self.nodes = [], []

    def const(self, name, value):
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def qparams(self):
        scale = np.float32(self.rng.uniform(0.005, 0.05))
        zp = self.rng.integers(100, 156) if self.dt == np.uint8 else self.rng.integers(-20, 20)
        return scale, self.dt(zp)

    def ints(self, lo, hi, shape, dtype):
        return self.rng.integers(lo, hi + 1, shape).astype(dtype)

    def model(self, xshape, xs, xzp, ys, yzp):
        nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xzp"], ["xq"])] + self.nodes
        nodes.append(helper.make_node("DequantizeLinear", ["yq", "ys", "yzp"], ["y"]))
        for n, v in [("xs", xs), ("xzp", xzp), ("ys", np.float32(ys)), ("yzp", self.dt(yzp))]:
            self.const(n, v)
        g = helper.make_graph(nodes, "case", [helper.make_tensor_value_info("x", TensorProto.FLOAT, xshape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], self.inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
        m.ir_version = 8
        return m, xshape, xs, ys


def conv(c, tie=False, group=1):
    xs, xzp = c.qparams()
    wmax = 64 if c.dt == np.uint8 else 127
    w = c.ints(-wmax, wmax, [8, 8 // group, 3, 3], np.int8)
    ws = c.rng.uniform(0.001, 0.01, 8).astype(np.float32)
    ys = np.float32(xs * ws.mean() * 60)
    if tie:  # factor (0.5 · 0.25) / 2 = 1/16
        xs, ws, ys = np.float32(0.5), np.full(8, 0.25, np.float32), np.float32(2.0)
        w = c.ints(-3, 3, w.shape, np.int8)
    c.nodes.append(helper.make_node("QLinearConv", ["xq", "xs", "xzp", "w", "ws", "wzp", "ys", "yzp", "b"], ["yq"],
                                    pads=[1, 1, 1, 1], group=group))
    c.const("w", w), c.const("ws", ws), c.const("wzp", np.zeros(8, np.int8))
    c.const("b", c.ints(-2000, 2000, [8], np.int32))
    return c.model([1, 8, 10, 10], xs, xzp, ys, c.qparams()[1])


def matmul(c, tie=False):
    xs, xzp = c.qparams()
    wmax = 64 if c.dt == np.uint8 else 127
    w = c.ints(-wmax, wmax, [40, 12], np.int8)
    ws = np.float32(c.rng.uniform(0.001, 0.01))
    ys = np.float32(xs * ws * 60)
    if tie:  # factor 1/8
        xs, ws, ys = np.float32(0.5), np.float32(0.25), np.float32(1.0)
        w = c.ints(-3, 3, w.shape, np.int8)
    c.nodes.append(helper.make_node("QLinearMatMul", ["xq", "xs", "xzp", "w", "ws", "wzp", "ys", "yzp"], ["yq"]))
    c.const("w", w), c.const("ws", ws), c.const("wzp", np.int8(0))
    return c.model([6, 40], xs, xzp, ys, c.qparams()[1])


def binary(c, op):
    xs, xzp = c.qparams()
    bs, bzp = c.qparams()
    b = c.ints(0, 255, [50], np.uint8) if c.dt == np.uint8 else c.ints(-128, 127, [50], np.int8)
    ys = np.float32((xs + bs) * 1.3) if op == "QLinearAdd" else np.float32(xs * bs * 90)
    c.nodes.append(helper.make_node(op, ["xq", "xs", "xzp", "b", "bs", "bzp", "ys", "yzp"], ["yq"],
                                    domain="com.microsoft"))
    c.const("b", b), c.const("bs", bs), c.const("bzp", bzp)
    return c.model([4, 50], xs, xzp, ys, c.qparams()[1])


def unary(c, op, **attrs):
    xs, xzp = c.qparams()
    ys, yzp = c.qparams()
    shape = [4, 60]
    if op == "QLinearGlobalAveragePool":
        shape, attrs = [1, 6, 7, 7], dict(channels_last=0)
    if op == "QLinearAveragePool":
        shape, attrs = [1, 6, 7, 7], dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1], count_include_pad=1)
    if op == "QLinearSoftmax":
        attrs = dict(axis=-1, opset=13)
        ys, yzp = np.float32(1 / 256), c.dt(0 if c.dt == np.uint8 else -128)
    c.nodes.append(helper.make_node(op, ["xq", "xs", "xzp", "ys", "yzp"], ["yq"], domain="com.microsoft", **attrs))
    return c.model(shape, xs, xzp, ys, yzp)


def concat(c):
    xs, xzp = c.qparams()
    bs, bzp = c.qparams()
    b = c.ints(0, 255, [2, 3, 6], np.uint8) if c.dt == np.uint8 else c.ints(-128, 127, [2, 3, 6], np.int8)
    c.nodes.append(helper.make_node("QLinearConcat", ["ys", "yzp", "xq", "xs", "xzp", "b", "bs", "bzp"], ["yq"],
                                    domain="com.microsoft", axis=1))
    c.const("b", b), c.const("bs", bs), c.const("bzp", bzp)
    ys, yzp = c.qparams()
    return c.model([2, 5, 6], xs, xzp, ys, yzp)


CASES = {
    "conv": conv,
    "conv_tie": lambda c: conv(c, tie=True),
    "depthwise": lambda c: conv(c, group=8),
    "matmul": matmul,
    "matmul_tie": lambda c: matmul(c, tie=True),
    "add": lambda c: binary(c, "QLinearAdd"),
    "mul": lambda c: binary(c, "QLinearMul"),
    "global_avgpool": lambda c: unary(c, "QLinearGlobalAveragePool"),
    "avgpool": lambda c: unary(c, "QLinearAveragePool"),
    "sigmoid": lambda c: unary(c, "QLinearSigmoid"),
    "leaky_relu": lambda c: unary(c, "QLinearLeakyRelu", alpha=0.1),
    "softmax": lambda c: unary(c, "QLinearSoftmax"),
    "concat": concat,
}


def session(path, level):
    o = ort.SessionOptions()
    o.graph_optimization_level = level
    o.intra_op_num_threads = 1
    return ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])


def run_qcc(qcc, model, mode, xs, work):
    obj, exe = os.path.join(work, "m.o"), os.path.join(work, "h")
    subprocess.run([qcc, model, "-o", obj, "--name", "m", "--requantize", mode], check=True)
    subprocess.run(["cc", "-O1", "-I", work, os.path.join(work, "h.c"), obj, "-o", exe, "-lm"], check=True)
    np.stack(xs).tofile(os.path.join(work, "in.bin"))
    subprocess.run([exe, str(len(xs)), os.path.join(work, "in.bin"), os.path.join(work, "out.bin")], check=True)
    return np.fromfile(os.path.join(work, "out.bin"), dtype=np.float32)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--qcc", default="target/release/qcc")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--samples", type=int, default=8)
    p.add_argument("names", nargs="*")
    a = p.parse_args()
    rng = np.random.default_rng(a.seed)
    print("| case | elements | qcc float vs ORT | qcc fixed-point vs ORT | ORT optimized vs not |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as work:
        with open(os.path.join(work, "h.c"), "w") as f:
            f.write(HARNESS)
        for dt, tag in [(np.uint8, "u8"), (np.int8, "s8")]:
            for name, make in CASES.items():
                if a.names and name not in a.names:
                    continue
                m, xshape, xs, ys = make(Case(rng, dt))
                path = os.path.join(work, "model.onnx")
                onnx.save(m, path)
                inputs = [rng.uniform(-140 * xs, 140 * xs, xshape).astype(np.float32) for _ in range(a.samples)]
                opt = session(path, ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
                off = session(path, ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
                want = np.concatenate([opt.run(None, {"x": x})[0].ravel() for x in inputs])
                plain = np.concatenate([off.run(None, {"x": x})[0].ravel() for x in inputs])
                cols = []
                for got in [run_qcc(a.qcc, path, mode, inputs, work) for mode in ("float", "fixed-point")] + [plain]:
                    d = np.abs(got.astype(np.float64) - want) / ys
                    cols.append(f"{d.max():.0f} step(s), {(d > 0.5).sum()} differ")
                print(f"| {name} {tag} | {want.size} | " + " | ".join(cols) + " |")
                sys.stdout.flush()


if __name__ == "__main__":
    main()
