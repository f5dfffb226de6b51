#!/usr/bin/env python3
"""Benchmark models for bench/run.py (random weights, real topologies).

    python bench/models.py OUT_DIR [--only NAME,...]

Writes OUT_DIR/<name>/model.onnx and OUT_DIR/<name>/calib.npy (16 samples,
the same ones qcc's int8 compile and onnxruntime's quantize_static use).
Nothing here is committed: the benchmark makes them on every run.
"""

import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


class Net:
    def __init__(self, seed, shape):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits, self.n = [], [], 0
        self.input_shape = shape

    def name(self, b):
        self.n += 1
        return f"{b}{self.n}"

    def const(self, b, a):
        n = self.name(b)
        self.inits.append(numpy_helper.from_array(np.asarray(a, dtype=np.float32), n))
        return n

    def conv(self, x, cin, cout, k, s=1, group=1, act="relu", bias=True):
        fan = cin // group * k * k
        w = self.rng.normal(0, np.sqrt(2.0 / fan), (cout, cin // group, k, k))
        ins = [x, self.const("w", w)]
        if bias:
            ins.append(self.const("b", self.rng.normal(0, 0.05, cout)))
        y = self.name("conv")
        p = k // 2
        self.nodes.append(helper.make_node("Conv", ins, [y], strides=[s, s], pads=[p] * 4, group=group))
        return self.act(y, act)

    def act(self, y, act):
        if act is None:
            return y
        z = self.name(act)
        if act == "relu":
            self.nodes.append(helper.make_node("Relu", [y], [z]))
        elif act == "relu6":
            self.nodes.append(helper.make_node("Clip", [y, self.const("lo", 0.0), self.const("hi", 6.0)], [z]))
        return z

    def op(self, kind, ins, **kw):
        y = self.name(kind.lower())
        self.nodes.append(helper.make_node(kind, ins, [y], **kw))
        return y

    def gemm(self, x, k, n, act="relu"):
        w = self.rng.normal(0, np.sqrt(2.0 / k), (k, n))
        y = self.op("Gemm", [x, self.const("w", w), self.const("b", self.rng.normal(0, 0.05, n))])
        return self.act(y, act)

    def model(self, out, out_shape):
        g = helper.make_graph(
            self.nodes,
            "bench",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, self.input_shape)],
            [helper.make_tensor_value_info(out, TensorProto.FLOAT, out_shape)],
            self.inits,
        )
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)])
        m.ir_version = 8
        onnx.checker.check_model(m)
        return m


def head(net, x, c, classes=1000):
    x = net.op("GlobalAveragePool", [x])
    x = net.op("Flatten", [x], axis=1)
    x = net.gemm(x, c, classes, act=None)
    return x, [1, classes]


def resnet18():
    net = Net(1, [1, 3, 224, 224])
    x = net.conv("x", 3, 64, 7, 2)
    x = net.op("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    c = 64
    for cout, s in [(64, 1), (128, 2), (256, 2), (512, 2)]:
        for b in range(2):
            st = s if b == 0 else 1
            y = net.conv(x, c, cout, 3, st)
            y = net.conv(y, cout, cout, 3, 1, act=None)
            sc = x if (st == 1 and c == cout) else net.conv(x, c, cout, 1, st, act=None)
            x = net.act(net.op("Add", [y, sc]), "relu")
            c = cout
    return net.model(*head(net, x, c))


def resnet50():
    """ResNet-50-shaped (bottleneck blocks 3-4-6-3, about 25.5 M parameters)."""
    net = Net(8, [1, 3, 224, 224])
    x = net.conv("x", 3, 64, 7, 2)
    x = net.op("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    c = 64
    for mid, n, s in [(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)]:
        cout = 4 * mid
        for b in range(n):
            st = s if b == 0 else 1
            y = net.conv(x, c, mid, 1, 1)
            y = net.conv(y, mid, mid, 3, st)
            y = net.conv(y, mid, cout, 1, 1, act=None)
            sc = x if (st == 1 and c == cout) else net.conv(x, c, cout, 1, st, act=None)
            x = net.act(net.op("Add", [y, sc]), "relu")
            c = cout
    return net.model(*head(net, x, c))


def mobilenetv2():
    net = Net(2, [1, 3, 224, 224])
    x = net.conv("x", 3, 32, 3, 2, act="relu6")
    c = 32
    cfg = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
    for t, cout, n, s in cfg:
        for i in range(n):
            st = s if i == 0 else 1
            hid = c * t
            y = x if t == 1 else net.conv(x, c, hid, 1, act="relu6")
            y = net.conv(y, hid, hid, 3, st, group=hid, act="relu6")
            y = net.conv(y, hid, cout, 1, act=None)
            x = net.op("Add", [x, y]) if (st == 1 and c == cout) else y
            c = cout
    x = net.conv(x, c, 1280, 1, act="relu6")
    return net.model(*head(net, x, 1280))


def mnist_cnn():
    net = Net(3, [1, 1, 28, 28])
    x = net.conv("x", 1, 32, 3)
    x = net.op("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
    x = net.conv(x, 32, 64, 3)
    x = net.op("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
    x = net.op("Flatten", [x], axis=1)
    x = net.gemm(x, 64 * 7 * 7, 128)
    x = net.gemm(x, 128, 10, act=None)
    return net.model(x, [1, 10])


def mlp(batch):
    net = Net(4, [batch, 512])
    x = "x"
    for i in range(4):
        x = net.gemm(x, 512, 512, act="relu" if i < 3 else None)
    return net.model(x, [batch, 512])


def layer_conv(cin, cout, k, s, hw, group=1):
    def make():
        net = Net(5, [1, cin, hw, hw])
        y = net.conv("x", cin, cout, k, s, group=group, act=None)
        o = (hw + 2 * (k // 2) - k) // s + 1
        return net.model(y, [1, cout, o, o])

    return make


def layer_matmul(m, k, n):
    def make():
        net = Net(6, [m, k])
        w = net.rng.normal(0, np.sqrt(1.0 / k), (k, n))
        y = net.op("MatMul", ["x", net.const("w", w)])
        return net.model(y, [m, n])

    return make


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def digits():
    """The README's trained digits CNN (testdata/digits), as shipped."""
    return onnx.load(os.path.join(ROOT, "testdata", "digits", "model.onnx"))


# Calibration samples of models that bring their own (else random normal).
CALIB = {"digits": lambda: np.load(os.path.join(ROOT, "testdata", "digits", "calib.npy"))[:16, None]}

MODELS = {
    "digits": digits,
    "mnist_cnn": mnist_cnn,
    "mobilenetv2": mobilenetv2,
    "resnet18": resnet18,
    "resnet50": resnet50,
    "mlp_b1": lambda: mlp(1),
    "mlp_b32": lambda: mlp(32),
    # Single layers (the table) and the GEMM microkernel at M,N,K >= 256.
    "conv3x3_64_56": layer_conv(64, 64, 3, 1, 56),
    "conv3x3s2_64_128_56": layer_conv(64, 128, 3, 2, 56),
    "conv3x3_256_14": layer_conv(256, 256, 3, 1, 14),
    "conv3x3_512_7": layer_conv(512, 512, 3, 1, 7),
    "conv1x1_64_256_56": layer_conv(64, 256, 1, 1, 56),
    "conv7x7s2_3_64_224": layer_conv(3, 64, 7, 2, 224),
    "dw3x3_144_56": layer_conv(144, 144, 3, 1, 56, group=144),
    "dw3x3s2_96_112": layer_conv(96, 96, 3, 2, 112, group=96),
    "matmul_64x512x512": layer_matmul(64, 512, 512),
    "matmul_256x512x512": layer_matmul(256, 512, 512),
}


def main():
    out = sys.argv[1]
    only = None
    if len(sys.argv) > 3 and sys.argv[2] == "--only":
        only = set(sys.argv[3].split(","))
    for name, make in MODELS.items():
        if only and name not in only:
            continue
        d = os.path.join(out, name)
        os.makedirs(d, exist_ok=True)
        m = make()
        onnx.save(m, os.path.join(d, "model.onnx"))
        shape = [d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim]
        rng = np.random.default_rng(7)
        calib = CALIB[name]() if name in CALIB else rng.normal(0, 1, [16] + shape).astype(np.float32)
        np.save(os.path.join(d, "calib.npy"), calib)


if __name__ == "__main__":
    main()
