#!/usr/bin/env python3
"""Generates qcc's end-to-end test models, deterministically.

Each case is written in the ONNX backend-test layout:

    testdata/<case>/model.onnx
    testdata/<case>/test_data_set_0/input_<i>.pb    (ONNX TensorProto, graph input order)
    testdata/<case>/test_data_set_0/output_<i>.pb   (expected, computed by onnxruntime)

Weights and inputs come from numpy generators with fixed seeds (one per case),
so re-running the script rewrites byte-identical files. The list of cases, the
qcc flags each needs and the tolerances live in testdata/manifest.txt.

Run with the project's venv (created by scripts/setup.sh):

    .venv/bin/python testdata/gen_models.py [--check]

`--check` regenerates into a temporary folder and fails if anything differs
from the committed files.
"""

import argparse
import filecmp
import os
import shutil
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
IR_VERSION = 8  # read by onnxruntime 1.22 and tract 0.23 alike
MAX_MODEL_BYTES = 200 * 1024


class Builder:
    """Collects nodes and initializers of one graph; names values uniquely."""

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.nodes = []
        self.inits = []
        self.count = 0

    def name(self, base):
        self.count += 1
        return f"{base}_{self.count}"

    def const(self, base, array):
        """Adds an initializer and returns its name."""
        n = self.name(base)
        self.inits.append(numpy_helper.from_array(np.asarray(array), n))
        return n

    def weight(self, base, shape, fan_in=None, scale=1.0):
        """A float32 initializer of normal values, He-scaled by fan_in if given."""
        std = scale * (np.sqrt(2.0 / fan_in) if fan_in else 1.0)
        return self.const(base, (self.rng.standard_normal(shape) * std).astype(np.float32))

    def uniform(self, base, shape, lo, hi):
        return self.const(base, self.rng.uniform(lo, hi, shape).astype(np.float32))

    def op(self, op_type, inputs, out=None, **attrs):
        """Adds one node with one output and returns the output's name."""
        out = out or self.name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=self.name(op_type), **attrs))
        return out

    def op_multi(self, op_type, inputs, n_out, **attrs):
        outs = [self.name(op_type.lower()) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=self.name(op_type), **attrs))
        return outs

    def model(self, name, inputs, outputs, opset):
        graph = helper.make_graph(self.nodes, name, inputs, outputs, self.inits)
        m = helper.make_model(
            graph,
            producer_name="qcc-gen_models",
            opset_imports=[helper.make_opsetid("", opset)],
            ir_version=IR_VERSION,
        )
        onnx.checker.check_model(m, full_check=True)
        return m


def f32(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def conv(b, x, cin, cout, k, group=1, pad=None, stride=1, bias=True):
    pad = k // 2 if pad is None else pad
    w = b.weight("w", (cout, cin // group, k, k), fan_in=cin // group * k * k)
    ins = [x, w] + ([b.uniform("b", (cout,), -0.1, 0.1)] if bias else [])
    return b.op("Conv", ins, kernel_shape=[k, k], pads=[pad] * 4, strides=[stride] * 2, group=group)


def small_cnn():
    """A small CNN: convs of every kind, residual, pools, concat, batch norm, head."""
    b = Builder(seed=1)
    x = "x"
    c1 = b.op("Relu", [conv(b, x, 3, 8, 3)])
    dw = b.op("Relu", [conv(b, c1, 8, 8, 3, group=8)])
    gc = conv(b, dw, 8, 8, 3, group=2)
    res = b.op("Add", [gc, c1])
    mp = b.op("MaxPool", [res], kernel_shape=[2, 2], strides=[2, 2])
    br1 = conv(b, mp, 8, 8, 1)
    br2 = b.op("AveragePool", [mp], kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1])
    cat = b.op("Concat", [br1, br2], axis=1)
    bn = b.op(
        "BatchNormalization",
        [
            cat,
            b.uniform("gamma", (16,), 0.5, 1.5),
            b.uniform("beta", (16,), -0.2, 0.2),
            b.uniform("mean", (16,), -0.2, 0.2),
            b.uniform("var", (16,), 0.5, 2.0),
        ],
        epsilon=1e-5,
    )
    gap = b.op("GlobalAveragePool", [bn])
    fl = b.op("Flatten", [gap], axis=1)
    fc = b.op(
        "Gemm",
        [fl, b.weight("fc_w", (10, 16), fan_in=16, scale=0.7), b.uniform("fc_b", (10,), -0.1, 0.1)],
        transB=1,
    )
    b.op("Softmax", [fc], out="probs", axis=-1)
    m = b.model("small_cnn", [f32("x", [1, 3, 16, 16])], [f32("probs", [1, 10])], opset=13)
    inputs = [b.rng.standard_normal((1, 3, 16, 16)).astype(np.float32)]
    return m, inputs


def mlp():
    """An MLP at opset 11: Gemm (both layouts), activations, MatMul+Add, opset-11 Softmax."""
    b = Builder(seed=2)
    h1 = b.op(
        "Gemm",
        ["x", b.weight("w1", (32, 64), fan_in=32), b.uniform("b1", (64,), -0.1, 0.1)],
    )
    h1 = b.op("Relu", [h1])
    h2 = b.op(
        "Gemm",
        [h1, b.weight("w2", (64, 64), fan_in=64), b.uniform("b2", (1, 64), -0.1, 0.1)],
        transB=1,
        alpha=0.5,
        beta=2.0,
    )
    h2 = b.op("Tanh", [b.op("Sigmoid", [h2])])
    logits = b.op("Add", [b.op("MatMul", [h2, b.weight("w3", (64, 10), fan_in=64, scale=3.0)]), b.uniform("b3", (10,), -1, 1)])
    b.op("Sigmoid", [logits], out="y")
    b.op("Softmax", [logits], out="probs", axis=1)
    m = b.model("mlp", [f32("x", [4, 32])], [f32("y", [4, 10]), f32("probs", [4, 10])], opset=11)
    inputs = [b.rng.standard_normal((4, 32)).astype(np.float32)]
    return m, inputs


def symbolic_batch():
    """A symbolic batch dim and PyTorch's flatten export (Shape→Gather→Unsqueeze→Concat→Reshape), opset 17."""
    b = Builder(seed=3)
    c = b.op("HardSwish", [conv(b, "x", 1, 4, 3)])
    shape = b.op("Shape", [c])
    batch = b.op("Gather", [shape, b.const("zero", np.array(0, dtype=np.int64))], axis=0)
    batch = b.op("Unsqueeze", [batch, b.const("axes", np.array([0], dtype=np.int64))])
    new_shape = b.op("Concat", [batch, b.const("minus_one", np.array([-1], dtype=np.int64))], axis=0)
    flat = b.op("Reshape", [c, new_shape])
    b.op(
        "Gemm",
        [flat, b.weight("fc_w", (5, 256), fan_in=256), b.uniform("fc_b", (5,), -0.1, 0.1)],
        out="y",
        transB=1,
    )
    m = b.model("symbolic_batch", [f32("x", ["batch", 1, 8, 8])], [f32("y", ["batch", 5])], opset=17)
    inputs = [b.rng.standard_normal((2, 1, 8, 8)).astype(np.float32)]
    return m, inputs


def ops_mix():
    """Everything else in qcc's float op set, on small tensors, with three outputs."""
    b = Builder(seed=4)
    i64 = lambda v: np.array(v, dtype=np.int64)  # noqa: E731
    scalar = lambda v: np.array(v, dtype=np.float32)  # noqa: E731

    # Upsampling path: ConvTranspose, Resize (nearest, linear), Pad, Slice, Transpose.
    ct = b.op(
        "ConvTranspose",
        ["x", b.weight("ct_w", (4, 4, 3, 3), fan_in=36), b.uniform("ct_b", (4,), -0.1, 0.1)],
        kernel_shape=[3, 3],
        strides=[2, 2],
        pads=[1, 1, 1, 1],
        output_padding=[1, 1],
    )  # [1,4,16,16]
    near = b.op(
        "Resize",
        [ct, "", b.const("scales", np.array([1, 1, 0.5, 0.5], dtype=np.float32))],
        mode="nearest",
        coordinate_transformation_mode="asymmetric",
        nearest_mode="floor",
    )  # [1,4,8,8]
    lin = b.op(
        "Resize",
        ["x", "", "", b.const("sizes", i64([1, 4, 12, 12]))],
        mode="linear",
        coordinate_transformation_mode="half_pixel",
    )  # [1,4,12,12]
    pad = b.op("Pad", [lin, b.const("pads", i64([0, 0, 1, 2, 0, 0, 1, 0])), b.const("pad_value", scalar(0.5))])  # [1,4,14,14]
    sl = b.op(
        "Slice",
        [pad, b.const("starts", i64([1, 0])), b.const("ends", i64([13, 100])), b.const("axes", i64([2, -1])), b.const("steps", i64([1, 2]))],
    )  # [1,4,12,7]
    b.op("Transpose", [sl], out="y_upsampled", perm=[0, 2, 3, 1])  # [1,12,7,4]

    # Elementwise path on the two parts of a Split.
    a, rest = b.op_multi("Split", [near, b.const("split", i64([1, 3]))], 2, axis=1)
    ca = b.op("Clip", [a, b.const("lo", scalar(-0.5)), b.const("hi", scalar(0.5))])
    lr = b.op("LeakyRelu", [rest], alpha=0.1)
    pr = b.op("PRelu", [rest, b.uniform("slope", (3, 1, 1), 0.05, 0.3)])
    hs = b.op("HardSigmoid", [lr], alpha=0.2, beta=0.5)
    er = b.op("Erf", [pr])
    pw = b.op("Pow", [hs, b.const("exponent", scalar(1.5))])
    sq = b.op("Sqrt", [b.op("Add", [b.op("Mul", [pr, pr]), b.const("one", scalar(1.0))])])
    ex = b.op("Exp", [b.op("Neg", [b.op("Abs", [er])])])
    dv = b.op("Div", [pw, sq])
    rc = b.op("Reciprocal", [b.op("Add", [ex, b.const("one", scalar(1.0))])])
    diff = b.op("Sub", [b.op("Max", [dv, rc]), b.op("Min", [er, ex])])
    scaled = b.op("Mul", [diff, b.uniform("chan_scale", (1, 3, 1, 1), 0.5, 2.0)])
    b.op("Concat", [ca, scaled], out="y_mixed", axis=1)  # [1,4,8,8]

    # Reductions and rank changes.
    rm = b.op("ReduceMean", ["y_mixed"], axes=[2, 3], keepdims=1)  # [1,4,1,1]
    sq2 = b.op("Squeeze", [rm, b.const("sq_axes", i64([2, 3]))])  # [1,4]
    b.op("Unsqueeze", [sq2, b.const("unsq_axes", i64([1]))], out="y_pooled")  # [1,1,4]

    m = b.model(
        "ops_mix",
        [f32("x", [1, 4, 8, 8])],
        [f32("y_upsampled", [1, 12, 7, 4]), f32("y_mixed", [1, 4, 8, 8]), f32("y_pooled", [1, 1, 4])],
        opset=13,
    )
    inputs = [b.rng.standard_normal((1, 4, 8, 8)).astype(np.float32)]
    return m, inputs


def export_quirks():
    """Forms real exports use: Clip with bounds computed at run time (a log-mel
    front end clamps to `ReduceMax(x) - 80`), one computed bound beside a
    constant one; HardSwish written out as x · Clip(x + 3, 0, 6) / 6."""
    b = Builder(seed=5)
    scalar = lambda v: np.array(v, dtype=np.float32)  # noqa: E731
    top = b.op("ReduceMax", ["x"], keepdims=0)
    lo = b.op("Sub", [top, b.const("range", scalar(2.5))])
    b.op("Clip", ["x", lo], out="y_floor")
    hi = b.op("Mul", [b.op("ReduceMean", ["x"], keepdims=0), b.const("two", scalar(2.0))])
    b.op("Clip", ["x", b.const("lo", scalar(-1.0)), hi], out="y_band")
    gate = b.op("Clip", [b.op("Add", ["x", b.const("three", scalar(3.0))]), b.const("zero", scalar(0.0)), b.const("six", scalar(6.0))])
    b.op("Div", [b.op("Mul", ["x", gate]), b.const("six_div", scalar(6.0))], out="y_hswish")
    m = b.model(
        "export_quirks",
        [f32("x", [1, 3, 8, 8])],
        [f32("y_floor", [1, 3, 8, 8]), f32("y_band", [1, 3, 8, 8]), f32("y_hswish", [1, 3, 8, 8])],
        opset=13,
    )
    inputs = [(b.rng.standard_normal((1, 3, 8, 8)) * 2).astype(np.float32)]
    return m, inputs


def qdq_cnn():
    """A model someone already quantized, in the QDQ form ONNX Runtime's
    `quantize_static` writes: QuantizeLinear/DequantizeLinear pairs on the
    activations (int8 and uint8, nonzero zero points), int8 weights with one
    scale per output channel (axis 0) and int32 biases behind their own
    DequantizeLinear, a per-tensor uint8 weight, a residual Add between
    quantized values, pooling and a Gemm head."""
    b = Builder(seed=6)

    def qdq(x, scale, zp, dtype):
        s = b.const("s", np.array(scale, dtype=np.float32))
        z = b.const("zp", np.array(zp, dtype=dtype))
        return b.op("DequantizeLinear", [b.op("QuantizeLinear", [x, s, z]), s, z])

    def qconv(x, x_scale, cin, cout):
        w = b.rng.standard_normal((cout, cin, 3, 3)) * np.sqrt(2.0 / (cin * 9))
        ws = (np.abs(w).reshape(cout, -1).max(axis=1) / 127).astype(np.float32)
        wq = np.clip(np.round(w / ws[:, None, None, None]), -127, 127).astype(np.int8)
        wdq = b.op("DequantizeLinear", [b.const("wq", wq), b.const("ws", ws), b.const("wz", np.zeros(cout, np.int8))], axis=0)
        bs = (ws * x_scale).astype(np.float32)
        bq = np.round(b.rng.uniform(-0.1, 0.1, cout) / bs).astype(np.int32)
        bdq = b.op("DequantizeLinear", [b.const("bq", bq), b.const("bs", bs), b.const("bz", np.zeros(cout, np.int32))], axis=0)
        return b.op("Conv", [x, wdq, bdq], kernel_shape=[3, 3], pads=[1, 1, 1, 1])

    xs = 4.0 / 127
    x = qdq("x", xs, 0, np.int8)
    a1 = qdq(b.op("Relu", [qconv(x, xs, 3, 16)]), 6.0 / 255, -128, np.int8)
    a2 = qdq(qconv(a1, 6.0 / 255, 16, 16), 0.05, 10, np.uint8)
    r = qdq(b.op("Add", [a2, a1]), 0.06, -5, np.int8)
    mp = qdq(b.op("MaxPool", [r], kernel_shape=[2, 2], strides=[2, 2]), 0.06, -5, np.int8)
    gap = qdq(b.op("GlobalAveragePool", [mp]), 0.02, 0, np.int8)
    fl = b.op("Flatten", [gap], axis=1)
    w = (b.rng.standard_normal((10, 16)) * 0.5).astype(np.float32)
    ws = np.float32(np.abs(w).max() / 127)
    wq = np.clip(np.round(w / ws) + 128, 0, 255).astype(np.uint8)
    wdq = b.op("DequantizeLinear", [b.const("fq", wq), b.const("fs", ws), b.const("fz", np.uint8(128))])
    fc = b.op("Gemm", [fl, wdq, b.uniform("fb", (10,), -0.1, 0.1)], transB=1)
    s = b.const("s", np.float32(0.08))
    z = b.const("zp", np.uint8(100))
    b.op("DequantizeLinear", [b.op("QuantizeLinear", [fc, s, z]), s, z], out="y")
    m = b.model("qdq_cnn", [f32("x", [1, 3, 12, 12])], [f32("y", [1, 10])], opset=13)
    inputs = [b.rng.standard_normal((1, 3, 12, 12)).astype(np.float32)]
    return m, inputs


def recurrent():
    """A keyword-spotter-shaped recurrent net: a bidirectional LSTM (with
    biases, peepholes and initial states) over 6 frames, its output
    sequence flattened into a GRU (linear_before_reset=1) that keeps its
    last state, and a Gemm head; plus an RNN beside them. (A reverse RNN is
    left out: tract-onnx 0.23's disagrees with onnxruntime and numpy; the
    bidirectional LSTM walks backwards too. layout=1, which onnxruntime does
    not run for RNNs, is covered by the node tests.)"""
    b = Builder(seed=7)
    seq, feat, h1, h2 = 6, 8, 12, 10
    w = lambda shape, fan: b.weight("w", shape, fan_in=fan, scale=0.7)  # noqa: E731
    lstm = b.op_multi(
        "LSTM",
        [
            "x",
            w((2, 4 * h1, feat), feat),
            w((2, 4 * h1, h1), h1),
            b.uniform("b", (2, 8 * h1), -0.2, 0.2),
            "",
            b.uniform("h0", (2, 1, h1), -0.5, 0.5),
            b.uniform("c0", (2, 1, h1), -0.5, 0.5),
            b.uniform("p", (2, 3 * h1), -0.3, 0.3),
        ],
        3,
        hidden_size=h1,
        direction="bidirectional",
    )
    y = b.op("Reshape", [lstm[0], b.const("shape", np.array([seq, 1, 2 * h1], dtype=np.int64))])
    _, gru_h = b.op_multi(
        "GRU",
        [y, w((1, 3 * h2, 2 * h1), 2 * h1), w((1, 3 * h2, h2), h2), b.uniform("b", (1, 6 * h2), -0.2, 0.2)],
        2,
        hidden_size=h2,
        linear_before_reset=1,
    )
    flat = b.op("Reshape", [gru_h, b.const("shape", np.array([1, h2], dtype=np.int64))])
    b.op("Gemm", [flat, w((4, h2), h2), b.uniform("fb", (4,), -0.1, 0.1)], out="logits", transB=1)
    b.op("Identity", [lstm[2]], out="lstm_c")
    rnn_y, _ = b.op_multi("RNN", ["x", w((1, 6, feat), feat), w((1, 6, 6), 6)], 2, hidden_size=6)
    b.op("Identity", [rnn_y], out="rnn_y")
    m = b.model(
        "recurrent",
        [f32("x", [seq, 1, feat])],
        [f32("logits", [1, 4]), f32("lstm_c", [2, 1, h1]), f32("rnn_y", [seq, 1, 1, 6])],
        opset=14,
    )
    inputs = [b.rng.standard_normal((seq, 1, feat)).astype(np.float32)]
    return m, inputs


def if_on_data():
    """An If whose condition is computed from the data (mean of x > 0): both
    branches are compiled and Where selects; the branches read outer values
    (x and an initializer) and use the same inner names."""
    b = Builder(seed=8)
    cond = b.op("Greater", [b.op("ReduceMean", ["x"], keepdims=0), b.const("zero", np.array(0.0, dtype=np.float32))])
    scale = b.const("scale", np.array([2.0], dtype=np.float32))
    then = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["t"]), helper.make_node("Mul", ["t", scale], ["b"])],
        "then", [], [f32("b", [1, 4, 6])],
    )
    els = helper.make_graph(
        [helper.make_node("Neg", ["x"], ["t"]), helper.make_node("Sigmoid", ["t"], ["b"])],
        "else", [], [f32("b", [1, 4, 6])],
    )
    b.nodes.append(helper.make_node("If", [cond], ["y"], name="if1", then_branch=then, else_branch=els))
    m = b.model("if_on_data", [f32("x", [1, 4, 6])], [f32("y", [1, 4, 6])], opset=13)
    inputs = [(b.rng.standard_normal((1, 4, 6)) - 0.3).astype(np.float32)]
    return m, inputs


def pads_and_sums():
    """Ops that real exports use and qcc builds from others: Pad in reflect
    and edge modes (slices and concats), CumSum (a triangular MatMul), Tile
    (concats), InstanceNormalization and LRN (reductions, an average pool)."""
    b = Builder(seed=9)
    i64 = lambda v: np.array(v, dtype=np.int64)  # noqa: E731
    b.op("Pad", ["x", b.const("pads", i64([0, 0, 2, 1, 0, 0, 1, 2]))], out="y_reflect", mode="reflect")
    b.op("Pad", ["x", b.const("pads", i64([0, 0, 1, 0, 0, 0, 2, 3]))], out="y_edge", mode="edge")
    c1 = b.op("CumSum", ["x", b.const("axis", i64(3))], exclusive=1, reverse=1)
    c2 = b.op("CumSum", ["x", b.const("axis", i64(-3))])
    b.op("Add", [c1, c2], out="y_cumsum")
    b.op("Tile", ["x", b.const("reps", i64([1, 2, 1, 2]))], out="y_tile")
    norm = b.op("InstanceNormalization", ["x", b.uniform("s", (3,), 0.5, 1.5), b.uniform("b", (3,), -0.2, 0.2)], epsilon=1e-4)
    b.op("LRN", [norm], out="y_norm", size=3, alpha=0.3, beta=0.6, bias=1.5)
    m = b.model(
        "pads_and_sums",
        [f32("x", [1, 3, 5, 6])],
        [f32("y_reflect", [1, 3, 8, 9]), f32("y_edge", [1, 3, 8, 9]), f32("y_cumsum", [1, 3, 5, 6]),
         f32("y_tile", [1, 6, 5, 12]), f32("y_norm", [1, 3, 5, 6])],
        opset=13,
    )
    inputs = [b.rng.standard_normal((1, 3, 5, 6)).astype(np.float32)]
    return m, inputs


def einsum_attention():
    """One attention head written with Einsum, as transformer exports do:
    projections with an ellipsis against constant weights, Q·Kᵀ and P·V
    between two run-time operands with batch letters, a softmax, an
    implicit-output equation and a reduction over a letter only one
    operand has."""
    b = Builder(seed=10)
    d, t = 8, 5
    w = lambda base: b.weight(base, (d, d), fan_in=d)  # noqa: E731
    q = b.op("Einsum", ["x", w("wq")], equation="...td,de->...te")
    k = b.op("Einsum", ["x", w("wk")], equation="...td,de->...te")
    v = b.op("Einsum", ["x", w("wv")], equation="btd,de->bte")
    qh = b.op("Reshape", [q, b.const("heads", np.array([1, t, 2, d // 2], dtype=np.int64))])
    kh = b.op("Reshape", [k, b.const("heads", np.array([1, t, 2, d // 2], dtype=np.int64))])
    vh = b.op("Reshape", [v, b.const("heads", np.array([1, t, 2, d // 2], dtype=np.int64))])
    s = b.op("Einsum", [qh, kh], equation="bqhd,bkhd->bhqk")
    p = b.op("Softmax", [b.op("Mul", [s, b.const("scale", np.array(0.5, dtype=np.float32))])], axis=-1)
    o = b.op("Einsum", [p, vh], equation="bhqk,bkhd->bqhd")
    b.op("Reshape", [o, b.const("merge", np.array([1, t, d], dtype=np.int64))], out="y")
    b.op("Einsum", ["x", w("wt")], out="y_implicit", equation="btd,de")
    b.op("Einsum", ["x", b.weight("wr", (3, t), fan_in=t)], out="y_reduced", equation="btd,ct->bc")
    m = b.model(
        "einsum_attention",
        [f32("x", [1, t, d])],
        [f32("y", [1, t, d]), f32("y_implicit", [1, d, t]), f32("y_reduced", [1, 3])],
        opset=13,
    )
    inputs = [b.rng.standard_normal((1, t, d)).astype(np.float32)]
    return m, inputs


def transformer():
    """A 2-layer transformer encoder as PyTorch exports it (d=64, 4 heads,
    sequence 32): token ids through an embedding Gather plus positions,
    attention from Reshape/Transpose/MatMul/Softmax, LayerNormalization, and
    a feed-forward block with GELU in its erf form. The two layers share
    their weights (as ALBERT's do), which keeps the file under the size
    limit of committed test models."""
    b = Builder(seed=11)
    d, heads, seq, vocab, ff = 64, 4, 32, 50, 128
    dh = d // heads
    i64 = lambda v: np.array(v, dtype=np.int64)  # noqa: E731
    emb = b.weight("embedding", (vocab, d), scale=0.5)
    pos = b.weight("positions", (1, seq, d), scale=0.1)
    x = b.op("Add", [b.op("Gather", [emb, "tokens"], axis=0), pos])
    params = {}

    def shared(key, make):
        if key not in params:
            params[key] = make()
        return params[key]

    def ln(v, key):
        g = shared(key + "g", lambda: b.uniform("g", (d,), 0.8, 1.2))
        be = shared(key + "b", lambda: b.uniform("be", (d,), -0.1, 0.1))
        return b.op("LayerNormalization", [v, g, be], axis=-1, epsilon=1e-5)

    def linear(v, n_in, n_out, key):
        w = shared(key + "w", lambda: b.weight("w", (n_in, n_out), fan_in=n_in, scale=0.7))
        bias = shared(key + "b", lambda: b.uniform("bias", (n_out,), -0.05, 0.05))
        return b.op("Add", [b.op("MatMul", [v, w]), bias])

    def split_heads(v):
        r = b.op("Reshape", [v, b.const("shape", i64([1, seq, heads, dh]))])
        return b.op("Transpose", [r], perm=[0, 2, 1, 3])

    for _ in range(2):
        q, k, v = (split_heads(linear(x, d, d, n)) for n in "qkv")
        kt = b.op("Transpose", [k], perm=[0, 1, 3, 2])
        scores = b.op("Div", [b.op("MatMul", [q, kt]), b.const("sqrt_dh", np.array(np.sqrt(dh), dtype=np.float32))])
        att = b.op("MatMul", [b.op("Softmax", [scores], axis=-1), v])
        merged = b.op("Reshape", [b.op("Transpose", [att], perm=[0, 2, 1, 3]), b.const("shape", i64([1, seq, d]))])
        x = ln(b.op("Add", [x, linear(merged, d, d, "o")]), "ln1")
        h = linear(x, d, ff, "f1")
        erf = b.op("Erf", [b.op("Div", [h, b.const("sqrt2", np.array(np.sqrt(2.0), dtype=np.float32))])])
        gelu = b.op("Mul", [b.op("Mul", [h, b.op("Add", [erf, b.const("one", np.array(1.0, dtype=np.float32))])]), b.const("half", np.array(0.5, dtype=np.float32))])
        x = ln(b.op("Add", [x, linear(gelu, ff, d, "f2")]), "ln2")
    b.op("Identity", [x], out="y")
    m = b.model(
        "transformer",
        [helper.make_tensor_value_info("tokens", TensorProto.INT64, [1, seq])],
        [f32("y", [1, seq, d])],
        opset=17,
    )
    inputs = [b.rng.integers(0, vocab, (1, seq)).astype(np.int64)]
    return m, inputs


def mbv3_block():
    """A MobileNetV3 bottleneck as exports write it: 1×1 expand, HardSwish
    written out as x·Clip(x+3,0,6)/6, a depthwise 3×3, squeeze-and-excite
    (global pool, 1×1 convs, Relu, HardSigmoid, a Mul), a SiLU written as
    x·Sigmoid(x), the 1×1 projection and the residual."""
    b = Builder(seed=12)
    c, e, se = 16, 48, 12

    def hswish(v):
        gate = b.op("Clip", [b.op("Add", [v, b.const("three", np.array(3.0, dtype=np.float32))]),
                             b.const("zero", np.array(0.0, dtype=np.float32)), b.const("six", np.array(6.0, dtype=np.float32))])
        return b.op("Div", [b.op("Mul", [v, gate]), b.const("six_div", np.array(6.0, dtype=np.float32))])

    h = hswish(conv(b, "x", c, e, 1))
    d = conv(b, h, e, e, 3, group=e)
    s = b.op("GlobalAveragePool", [d])
    s = b.op("Relu", [conv(b, s, e, se, 1)])
    s = b.op("HardSigmoid", [conv(b, s, se, e, 1)], alpha=1.0 / 6, beta=0.5)
    d = b.op("Mul", [d, s])
    d = b.op("Mul", [d, b.op("Sigmoid", [d])])
    b.op("Add", [conv(b, d, e, c, 1), "x"], out="y")
    m = b.model("mbv3_block", [f32("x", [1, c, 14, 14])], [f32("y", [1, c, 14, 14])], opset=13)
    inputs = [b.rng.standard_normal((1, c, 14, 14)).astype(np.float32)]
    return m, inputs


def qdq_u8_weights():
    """A QDQ 1x1 Conv and a Gemm whose weights are uint8 with zero points
    (per output channel for the Conv, 120 to 135; one, 128, for the Gemm),
    all scales 1 and integer inputs: every output is an exact integer sum,
    so a weight off by one step changes it by at least 1."""
    b = Builder(seed=31)

    def qdq(x, zp):
        s = b.const("s", np.float32(1.0))
        z = b.const("zp", np.uint8(zp))
        return b.op("DequantizeLinear", [b.op("QuantizeLinear", [x, s, z]), s, z])

    x = qdq("x", 128)
    zc = b.rng.integers(120, 136, 5).astype(np.uint8)
    wc = (zc[:, None, None, None] + b.rng.integers(-6, 7, (5, 6, 1, 1))).astype(np.uint8)
    wd = b.op("DequantizeLinear", [b.const("wq", wc), b.const("ws", np.ones(5, np.float32)), b.const("wz", zc)], axis=0)
    c = qdq(b.op("Conv", [x, wd], kernel_shape=[1, 1]), 128)
    fl = qdq(b.op("Flatten", [c], axis=1), 128)
    wg = (128 + b.rng.integers(-2, 3, (3, 20))).astype(np.uint8)
    gd = b.op("DequantizeLinear", [b.const("gq", wg), b.const("gs", np.float32(1.0)), b.const("gz", np.uint8(128))])
    g = b.op("Gemm", [fl, gd], transB=1)
    s = b.const("s", np.float32(1.0))
    z = b.const("zp", np.uint8(128))
    b.op("DequantizeLinear", [b.op("QuantizeLinear", [g, s, z]), s, z], out="y")
    m = b.model("qdq_u8_weights", [f32("x", [1, 6, 2, 2])], [f32("y", [1, 3])], opset=13)
    inputs = [b.rng.integers(-2, 3, (1, 6, 2, 2)).astype(np.float32)]
    return m, inputs


def ort_quantized(base, fmt="QDQ", **options):
    """`base`'s model as onnxruntime's `quantize_static` writes it in format
    `fmt` (QDQ or QOperator) with `options`, calibrated with MinMax on its input and four
    scaled, noised copies (the output is the same bytes every time)."""
    import logging
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self, name, samples):
            self.it = iter([{name: s} for s in samples])

        def get_next(self):
            return next(self.it, None)

    def build():
        m, inputs = base()
        rng = np.random.default_rng(0)
        x = inputs[0]
        if np.issubdtype(x.dtype, np.integer):  # token ids: other ids
            samples = [x] + [rng.integers(0, x.max() + 1, x.shape).astype(x.dtype) for _ in range(4)]
        else:
            samples = [x] + [(x * (0.5 + 0.25 * k) + rng.standard_normal(x.shape) * 0.1).astype(np.float32) for k in range(4)]
        logging.getLogger().setLevel(logging.ERROR)
        with tempfile.TemporaryDirectory() as d:
            src, dst = os.path.join(d, "float.onnx"), os.path.join(d, "qdq.onnx")
            onnx.save(m, src)
            quantize_static(src, dst, Reader(m.graph.input[0].name, samples), quant_format=QuantFormat[fmt], **options)
            q = onnx.load(dst)
        return q, inputs

    return build


def ort_qdq_cnn_s8s8():
    """small_cnn by onnxruntime's quantize_static: int8 activations and
    per-channel int8 weights (S8S8)."""
    from onnxruntime.quantization import QuantType
    return ort_quantized(small_cnn, per_channel=True, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)()


def ort_qdq_cnn_u8s8():
    """small_cnn by onnxruntime's quantize_static: uint8 activations,
    per-tensor int8 weights with reduce_range (7-bit)."""
    from onnxruntime.quantization import QuantType
    return ort_quantized(small_cnn, per_channel=False, reduce_range=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)()


def ort_qdq_cnn_u8u8():
    """small_cnn by onnxruntime's quantize_static: uint8 activations and
    per-channel uint8 weights with their zero points (U8U8)."""
    from onnxruntime.quantization import QuantType
    return ort_quantized(small_cnn, per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QUInt8)()


def ort_qdq_cnn_u8u8_pt():
    """small_cnn by onnxruntime's quantize_static with per-tensor uint8
    weights (U8U8, per_channel=False): their zero points (105…139) leave
    9-bit values `q - zp`, which qcc splits into two int8 halves."""
    from onnxruntime.quantization import QuantType
    return ort_quantized(small_cnn, activation_type=QuantType.QUInt8, weight_type=QuantType.QUInt8)()


def ort_qdq_mlp_u8u8_pt():
    """mlp by onnxruntime's quantize_static with per-tensor uint8 weights
    (U8U8): Gemms whose 9-bit weights run as two int8 halves."""
    from onnxruntime.quantization import QuantType
    return ort_quantized(mlp, activation_type=QuantType.QUInt8, weight_type=QuantType.QUInt8)()


def ort_qdq_mlp_u8s8():
    """mlp by onnxruntime's quantize_static: uint8 activations and
    per-tensor int8 weights (U8S8; onnxruntime 1.22's per-channel Gemm
    weights fail in its own bias-scale check)."""
    from onnxruntime.quantization import QuantType
    return ort_quantized(mlp, per_channel=False, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)()


def ort_qop_cnn_s8s8():
    """small_cnn by onnxruntime's quantize_static in the QOperator format
    (QLinearConv, QLinearAdd, QLinearConcat, QGemm…): int8 activations and
    per-channel int8 weights."""
    from onnxruntime.quantization import QuantType
    return ort_quantized(small_cnn, "QOperator", per_channel=True, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)()


def ort_qop_mlp_u8s8():
    """mlp by onnxruntime's quantize_static in the QOperator format: uint8
    activations, per-tensor int8 weights (QGemm, QLinearMatMul,
    QLinearSigmoid…)."""
    from onnxruntime.quantization import QuantType
    return ort_quantized(mlp, "QOperator", per_channel=False, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)()


def ort_qdq_transformer():
    """transformer by onnxruntime's quantize_static (QDQ, S8S8, per-tensor):
    besides the weighted MatMuls, the attention products Q·Kᵀ and P·V are
    MatMuls of two quantized run-time tensors (fold-qdq: QMatMul)."""
    from onnxruntime.quantization import QuantType
    return ort_quantized(transformer, per_channel=False, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)()


def ort_qop_transformer():
    """The same in the QOperator format: QLinearMatMul with two run-time
    inputs for the attention products, uint8 activations (U8S8)."""
    from onnxruntime.quantization import QuantType
    return ort_quantized(transformer, "QOperator", per_channel=False, reduce_range=True,
                         activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)()


def qonnx_mlp():
    """QONNX quantizers as Brevitas exports them (domain
    qonnx.custom_op.general): an 8-bit signed Quant on the input, 4-bit
    narrow per-channel Quant weights, an unsigned 8-bit Quant after a Relu,
    a BipolarQuant activation and bipolar weights. onnxruntime cannot run
    these ops: the reference is computed here in numpy from QONNX's
    definitions, in float32 as the graph computes them (round half to
    even)."""
    b = Builder(seed=53)
    r = b.rng
    dom = "qonnx.custom_op.general"
    f = np.float32

    def quant(x, scale, zp, bits, signed=1, narrow=0):
        ins = [x, b.const("s", f(scale) if np.ndim(scale) == 0 else scale.astype(f)), b.const("z", f(zp)), b.const("bits", f(bits))]
        return b.op("Quant", ins, domain=dom, signed=signed, narrow=narrow, rounding_mode="ROUND")

    def ref_quant(x, scale, zp, bits, signed=1, narrow=0):
        lo, hi = (-(2 ** (bits - 1)) + narrow, 2 ** (bits - 1) - 1) if signed else (0, 2 ** bits - 1 - narrow)
        q = np.clip(np.round(x / f(scale) + f(zp)), lo, hi).astype(f)
        return ((q - f(zp)) * scale).astype(f)

    w1 = r.uniform(-1, 1, (16, 8)).astype(f)
    s1 = (np.abs(w1).max(axis=0, keepdims=True) / 7).astype(f)
    w2 = r.uniform(-1, 1, (8, 6)).astype(f)
    bias = r.uniform(-0.2, 0.2, 8).astype(f)
    xq = quant("x", 0.05, 0, 8)
    h = b.op("MatMul", [xq, quant(b.const("w1", w1), s1, 0, 4, narrow=1)])
    h = b.op("Relu", [b.op("Add", [h, b.const("bias", bias)])])
    hq = quant(h, 0.02, 0, 8, signed=0)
    sign = b.op("BipolarQuant", [b.op("Sub", [hq, b.const("mid", f(0.3))]), b.const("one", f(1.0))], domain=dom)
    wb = b.op("BipolarQuant", [b.const("w2", w2), b.const("alpha", f(0.5))], domain=dom)
    b.op("MatMul", [sign, wb], out="y")
    graph = helper.make_graph(b.nodes, "qonnx_mlp", [f32("x", [1, 16])], [f32("y", [1, 6])], b.inits)
    m = helper.make_model(graph, producer_name="qcc-gen_models", ir_version=IR_VERSION,
                          opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(dom, 1)])
    x = r.uniform(-3, 3, (1, 16)).astype(f)
    # The reference, step by step as the graph computes it (float32 ops).
    h = ref_quant(x, f(0.05), 0, 8) @ ref_quant(w1, s1, 0, 4, narrow=1)
    h = np.maximum(h + bias, 0).astype(f)
    s = np.where(ref_quant(h, f(0.02), 0, 8, signed=0) - f(0.3) >= 0, f(1), f(-1))
    y = (s @ (np.where(w2 >= 0, f(1), f(-1)) * f(0.5))).astype(f)
    return m, [x], (["y"], [y])


def ort_qop_requant():
    """QOperator nodes whose requantization ONNX Runtime computes in float,
    with scales that put many results exactly or nearly on a half step:
    QLinearConv (per-channel factors 1/16 and 3/32: exact ties) and a
    depthwise one with arbitrary per-channel scales, QLinearMatMul on uint8
    (factor 1/128), ONNX Runtime's QLinearMul (zero point added before
    rounding) and QLinearConcat (a table per input). Its integer kernels
    are the reference: qcc's default float requantization must give the
    same bytes; the fixed-point one differs on the ties."""
    from onnx import TensorProto as T
    b = Builder(seed=41)
    r = b.rng
    c = lambda n, a: b.const(n, a)
    xs, xz = c("xs", np.float32(0.5)), c("xz", np.int8(3))
    xq = b.op("QuantizeLinear", ["x", xs, xz])
    # Conv: acc · (0.5 · 0.25) / 2 = acc / 16 (and 3/32 for the 0.375 channels).
    ws = np.where(np.arange(8) % 3 == 2, 0.375, 0.25).astype(np.float32)
    w0 = r.integers(-3, 4, (8, 8, 3, 3)).astype(np.int8)
    y0s, y0z = c("y0s", np.float32(2.0)), c("y0z", np.int8(-5))
    y0 = b.op("QLinearConv", [xq, xs, xz, c("w0", w0), c("w0s", ws), c("w0z", np.zeros(8, np.int8)), y0s, y0z,
                              c("b0", r.integers(-40, 40, 8).astype(np.int32))], pads=[1, 1, 1, 1])
    b.op("DequantizeLinear", [y0, y0s, y0z], out="conv")
    w1 = r.integers(-127, 128, (8, 1, 3, 3)).astype(np.int8)
    w1s = r.uniform(0.002, 0.02, 8).astype(np.float32)
    y1s, y1z = c("y1s", np.float32(0.9)), c("y1z", np.int8(7))
    y1 = b.op("QLinearConv", [xq, xs, xz, c("w1", w1), c("w1s", w1s), c("w1z", np.zeros(8, np.int8)), y1s, y1z],
              pads=[1, 1, 1, 1], group=8)
    b.op("DequantizeLinear", [y1, y1s, y1z], out="depthwise")
    # MatMul on uint8 behind a Reshape, factor 1/128 (weights within ±20:
    # no AVX2 vpmaddubsw saturation).
    us, uz = c("us", np.float32(0.5)), c("uz", np.uint8(130))
    uq = b.op("QuantizeLinear", ["x", us, uz])
    u2 = b.op("Reshape", [uq, c("shape", np.array([80, 10], np.int64))])
    w2 = r.integers(-20, 21, (10, 16)).astype(np.int8)
    y2s, y2z = c("y2s", np.float32(0.5 * 0.25 * 128)), c("y2z", np.uint8(120))
    y2 = b.op("QLinearMatMul", [u2, us, uz, c("w2", w2), c("w2s", np.float32(0.25)), c("w2z", np.int8(0)), y2s, y2z])
    b.op("DequantizeLinear", [y2, y2s, y2z], out="matmul")
    # Whole and half multiples of the input scale: quantization ties too.
    x = (r.integers(-240, 241, (1, 8, 10, 10)) * 0.25).astype(np.float32)
    # QLinearMul with the factor (0.5 · 0.125) / next_after(1) just below
    # 1/16: products on a half step land just below it, and adding the zero
    # point (100) before rounding, as onnxruntime does, brings them back
    # onto it (ties to even) where rounding first goes down.
    bq = r.integers(-3, 4, 10).astype(np.int8)
    y3s, y3z = c("y3s", np.nextafter(np.float32(1), np.float32(2))), c("y3z", np.int8(100))
    y3 = b.op("QLinearMul", [xq, xs, xz, c("bq", bq), c("bqs", np.float32(0.125)), c("bqz", np.int8(1)), y3s, y3z],
              domain="com.microsoft")
    b.op("DequantizeLinear", [y3, y3s, y3z], out="mul")
    y4s, y4z = c("y4s", np.float32(0.7)), c("y4z", np.int8(-1))
    y4 = b.op("QLinearConcat", [y4s, y4z, xq, xs, xz, y0, y0s, y0z], axis=1, domain="com.microsoft")
    b.op("DequantizeLinear", [y4, y4s, y4z], out="concat")
    outs = [f32("conv", [1, 8, 10, 10]), f32("depthwise", [1, 8, 10, 10]), f32("matmul", [80, 16]),
            f32("mul", [1, 8, 10, 10]), f32("concat", [1, 16, 10, 10])]
    graph = helper.make_graph(b.nodes, "ort_qop_requant", [f32("x", [1, 8, 10, 10])], outs, b.inits)
    m = helper.make_model(graph, producer_name="qcc-gen_models", ir_version=IR_VERSION,
                          opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    onnx.checker.check_model(m)
    return m, [x]


def ort_dynamic(base, **options):
    """`base`'s model as onnxruntime's `quantize_dynamic` writes it with
    `options` (DynamicQuantizeLinear on the activations, MatMulInteger on
    int8 weights)."""
    import logging
    from onnxruntime.quantization import quantize_dynamic

    def build():
        m, inputs = base()
        logging.getLogger().setLevel(logging.ERROR)
        with tempfile.TemporaryDirectory() as d:
            src, dst = os.path.join(d, "float.onnx"), os.path.join(d, "dynamic.onnx")
            onnx.save(m, src)
            quantize_dynamic(src, dst, **options)
            q = onnx.load(dst)
        return q, inputs

    return build


def ort_dyn_transformer():
    """transformer by onnxruntime's quantize_dynamic: every MatMul with
    int8 weights as DynamicQuantizeLinear + MatMulInteger + the scale
    multiply, the attention products between activations too. 7-bit weights
    (reduce_range): with full-range int8 weights onnxruntime's own uint8 x
    int8 kernel saturates 16-bit pair sums (vpmaddubsw) on some CPUs, so its
    outputs are not MatMulInteger's exact ones (qcc's and tract's are)."""
    from onnxruntime.quantization import QuantType
    return ort_dynamic(transformer, weight_type=QuantType.QInt8, reduce_range=True)()


def ort_dyn_mlp_u8():
    """mlp by onnxruntime's quantize_dynamic with uint8 weights (nonzero
    weight zero points)."""
    from onnxruntime.quantization import QuantType
    return ort_dynamic(mlp, weight_type=QuantType.QUInt8)()


def ort_dyn_recurrent():
    """recurrent by onnxruntime's quantize_dynamic: its bidirectional LSTM
    as com.microsoft.DynamicQuantizeLSTM (int8 weights [dirs, input, 4H],
    one scale per direction), the Gemm head as DynamicQuantizeLinear +
    MatMulInteger; the GRU and RNN stay float. 7-bit weights (reduce_range),
    as for ort_dyn_transformer: with full-range int8 weights onnxruntime's
    AVX2 kernel saturates pair sums (its LSTM state then differs by 0.34
    from its own exact integer products)."""
    from onnxruntime.quantization import QuantType
    return ort_dynamic(recurrent, weight_type=QuantType.QInt8, reduce_range=True)()


def ort_dyn_cnn():
    """small_cnn by onnxruntime's quantize_dynamic: each Conv as
    DynamicQuantizeLinear + ConvInteger (uint8 activations with a run-time
    zero point, uint8 weights with per-tensor zero points: onnxruntime's
    ConvInteger reads only uint8) + Cast + the scale multiply, the Gemm as
    MatMulInteger."""
    from onnxruntime.quantization import QuantType
    return ort_dynamic(small_cnn, weight_type=QuantType.QUInt8)()


def int4_weights():
    """Weight-only 4-bit (opset 21): a Conv whose int4 weights are
    dequantized per output channel, and a MatMul whose uint4 weights are
    dequantized in blocks of 4 along K with uint4 zero points."""
    b = Builder(seed=21)

    def four(base, values, dtype):
        n = b.name(base)
        b.inits.append(helper.make_tensor(n, dtype, values.shape, values.flatten().tolist()))
        return n

    wq = b.rng.integers(-8, 8, (8, 3, 3, 3))
    ws = b.const("ws", (b.rng.uniform(0.02, 0.08, 8)).astype(np.float32))
    wz = four("wz", np.zeros(8, dtype=np.int64), TensorProto.INT4)
    w = b.op("DequantizeLinear", [four("wq", wq, TensorProto.INT4), ws, wz], axis=0)
    c = b.op("Relu", [b.op("Conv", ["x", w, b.uniform("b", (8,), -0.1, 0.1)], kernel_shape=[3, 3], pads=[1, 1, 1, 1])])
    f = b.op("Flatten", [b.op("GlobalAveragePool", [c])], axis=1)
    mq = b.rng.integers(0, 16, (8, 10))
    ms = b.const("ms", b.rng.uniform(0.05, 0.2, (2, 10)).astype(np.float32))
    mz = four("mz", b.rng.integers(6, 10, (2, 10)), TensorProto.UINT4)
    m = b.op("DequantizeLinear", [four("mq", mq, TensorProto.UINT4), ms, mz], axis=0, block_size=4)
    b.op("MatMul", [f, m], out="y")
    model = b.model("int4_weights", [f32("x", [1, 3, 8, 8])], [f32("y", [1, 10])], opset=21)
    inputs = [b.rng.standard_normal((1, 3, 8, 8)).astype(np.float32)]
    return model, inputs


def qdq_int4_cnn():
    """qdq_cnn's shape with ONNX's own 4-bit weights (opset 21): int4
    weights behind DequantizeLinear, per output channel for the two Convs
    (weights within ±7), per tensor for the Gemm head (within [-8, 7]),
    int32 biases, int8 activations. qcc folds each pattern into an integer
    kernel whose weights it stores two per byte."""
    b = Builder(seed=22)

    def four(base, values):
        n = b.name(base)
        b.inits.append(helper.make_tensor(n, TensorProto.INT4, values.shape, values.flatten().tolist()))
        return n

    def qdq(x, scale, zp):
        s = b.const("s", np.array(scale, dtype=np.float32))
        z = b.const("zp", np.array(zp, dtype=np.int8))
        return b.op("DequantizeLinear", [b.op("QuantizeLinear", [x, s, z]), s, z])

    def qconv(x, x_scale, cin, cout):
        w = b.rng.standard_normal((cout, cin, 3, 3)) * np.sqrt(2.0 / (cin * 9))
        ws = (np.abs(w).reshape(cout, -1).max(axis=1) / 7).astype(np.float32)
        wq = np.clip(np.round(w / ws[:, None, None, None]), -7, 7).astype(np.int64)
        wz = four("wz", np.zeros(cout, np.int64))
        wdq = b.op("DequantizeLinear", [four("wq", wq), b.const("ws", ws), wz], axis=0)
        bs = (ws * x_scale).astype(np.float32)
        bq = np.round(b.rng.uniform(-0.1, 0.1, cout) / bs).astype(np.int32)
        bdq = b.op("DequantizeLinear", [b.const("bq", bq), b.const("bs", bs), b.const("bz", np.zeros(cout, np.int32))], axis=0)
        return b.op("Conv", [x, wdq, bdq], kernel_shape=[3, 3], pads=[1, 1, 1, 1])

    xs = 4.0 / 127
    x = qdq("x", xs, 0)
    a1 = qdq(b.op("Relu", [qconv(x, xs, 3, 16)]), 6.0 / 255, -128)
    a2 = qdq(b.op("Relu", [qconv(a1, 6.0 / 255, 16, 16)]), 6.0 / 255, -128)
    gap = qdq(b.op("GlobalAveragePool", [a2]), 0.02, -128)
    fl = b.op("Flatten", [gap], axis=1)
    w = b.rng.standard_normal((10, 16)) * 0.5
    ws = np.float32(np.abs(w).max() / 7)
    wq = np.clip(np.round(w / ws), -8, 7).astype(np.int64)
    wdq = b.op("DequantizeLinear", [four("fq", wq), b.const("fs", ws), four("fz", np.zeros((), np.int64))])
    fc = b.op("Gemm", [fl, wdq, b.uniform("fb", (10,), -0.1, 0.1)], transB=1)
    s = b.const("s", np.float32(0.08))
    z = b.const("zp", np.int8(0))
    b.op("DequantizeLinear", [b.op("QuantizeLinear", [fc, s, z]), s, z], out="y")
    m = b.model("qdq_int4_cnn", [f32("x", [1, 3, 12, 12])], [f32("y", [1, 10])], opset=21)
    inputs = [b.rng.standard_normal((1, 3, 12, 12)).astype(np.float32)]
    return m, inputs


def ort_nbits(base, **options):
    """`base`'s model with its constant-weight MatMuls as onnxruntime's
    MatMulNBitsQuantizer writes them (com.microsoft MatMulNBits, 4-bit
    blocks of 32 along K)."""
    import logging
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    def build():
        m, inputs = base()
        logging.getLogger().setLevel(logging.ERROR)
        q = MatMulNBitsQuantizer(m, block_size=32, **options)
        q.process()
        return q.model.model, inputs

    return build


def ort_nbits_transformer():
    """transformer with symmetric 4-bit MatMulNBits weights (no zero points)."""
    return ort_nbits(transformer, is_symmetric=True)()


def ort_nbits_transformer_zp():
    """transformer with asymmetric 4-bit MatMulNBits weights (packed uint8
    zero points)."""
    return ort_nbits(transformer, is_symmetric=False)()


def matmul_integer_long_k():
    """DynamicQuantizeLinear + MatMulInteger with K = 300 (too long for the
    exact float path: qcc's integer kernel) and uint8 weights with one zero
    point per column, then the float rescale."""
    b = Builder(seed=30)
    xq, xs, xz = b.op_multi("DynamicQuantizeLinear", ["x"], 3)
    w = b.const("w", b.rng.integers(0, 256, (300, 8)).astype(np.uint8))
    wz = b.const("wz", b.rng.integers(100, 156, 8).astype(np.uint8))
    acc = b.op("Cast", [b.op("MatMulInteger", [xq, w, xz, wz])], to=TensorProto.FLOAT)
    s = b.op("Mul", [xs, b.const("ws", np.float32(0.01))])
    b.op("Mul", [acc, s], out="y")
    m = b.model("matmul_integer_long_k", [f32("x", [2, 300])], [f32("y", [2, 8])], opset=13)
    inputs = [b.rng.standard_normal((2, 300)).astype(np.float32)]
    return m, inputs


def binary_cnn():
    """Binary convolutions as a binary CNN exports them in float ONNX: Conv by
    weights that are all ±1 reading a Sign (zeros in the input give Sign 0),
    a MaxPool of Signs, a 2-word channel count (70 > 64), asymmetric pads
    with stride 2, dilation with QONNX's bipolar sign `Where(u ≥ 0, 1, -1)`,
    a Flatten of pooled Signs into a MatMul by ±1 weights, XNOR-Net's
    ±α weights (α per output channel), and a batch norm + Sign after a binary
    convolution (integer thresholds). Every output is an integer sum or a
    sign, exact in float32: tolerance 0."""
    b = Builder(seed=61)
    r = b.rng

    def pm1(shape):
        # Stored as int8 behind a Cast, as binary networks ship them.
        w = b.const("pm", np.where(r.random(shape) < 0.5, -1, 1).astype(np.int8))
        return b.op("Cast", [w], to=TensorProto.FLOAT)

    def bias(c):
        return b.uniform("t", (1, c, 1, 1), -2.0, 2.0)

    s_in = b.op("Sign", ["x"])
    b.op("Conv", [s_in, pm1((8, 3, 3, 3))], out="y0", kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    c0 = conv(b, "x", 3, 70, 3)
    s0 = b.op("Sign", [b.op("Add", [c0, bias(70)])])
    c1 = b.op("Conv", [s0, pm1((40, 70, 3, 3))], out="y1", kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    s1 = b.op("Sign", [b.op("Add", [c1, b.uniform("t", (1, 40, 1, 1), -8.0, 8.0)])])
    p1 = b.op("MaxPool", [s1], kernel_shape=[2, 2], strides=[2, 2])
    c2 = b.op("Conv", [p1, pm1((24, 40, 3, 3))], out="y2", kernel_shape=[3, 3], pads=[1, 0, 0, 1], strides=[2, 2])
    ge = b.op("GreaterOrEqual", [c2, b.const("zero", np.float32(0))])
    q = b.op("Where", [ge, b.const("one", np.float32(1)), b.const("minus_one", np.float32(-1))])
    b.op("Conv", [q, pm1((10, 24, 2, 2))], out="y3", kernel_shape=[2, 2], dilations=[2, 2])
    # XNOR-Net's scaled weights: ±α per output channel (powers of two).
    alpha = b.const("alpha", np.array([1, 0.5, 2, 0.25, 1, 4], np.float32).reshape(6, 1, 1, 1))
    b.op("Conv", [p1, b.op("Mul", [pm1((6, 40, 1, 1)), alpha])], out="y5", kernel_shape=[1, 1])
    f = b.op("Flatten", [p1], axis=1)
    b.op("MatMul", [f, pm1((40 * 6 * 6, 10))], out="y4")
    # A batch norm (scale, shift per channel) and Sign after a binary
    # convolution, which qcc folds into integer thresholds: scales of both
    # signs and zero, shifts that send the counts t6 exactly to 0, a zero
    # channel (always 0) and a constant positive one.
    c6 = b.op("Conv", [p1, pm1((12, 40, 3, 3))], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    g6 = np.array([0.5, -0.25, 0, 2, -1, 0.125, 1, -3, 0, 0.75, -0.5, 4], np.float32)
    t6 = np.array([2, -3, 0, 7, 1, -9, 0, 4, 0, -1, 5, -6], np.float32)
    beta = -g6 * t6
    beta[8] = 1.5
    scaled = b.op("Mul", [c6, b.const("gamma", g6.reshape(12, 1, 1))])
    b.op("Sign", [b.op("Add", [scaled, b.const("beta", beta.reshape(12, 1, 1))])], out="y6")
    outs = [f32("y0", [2, 8, 12, 12]), f32("y1", [2, 40, 12, 12]), f32("y2", [2, 24, 3, 3]),
            f32("y3", [2, 10, 1, 1]), f32("y4", [2, 10]), f32("y5", [2, 6, 6, 6]),
            f32("y6", [2, 12, 6, 6])]
    m = b.model("binary_cnn", [f32("x", [2, 3, 12, 12])], outs, 13)
    x = r.standard_normal((2, 3, 12, 12)).astype(np.float32)
    x[r.random(x.shape) < 0.2] = 0.0
    return m, [x]


CASES = {
    "small_cnn": small_cnn,
    "mlp": mlp,
    "symbolic_batch": symbolic_batch,
    "ops_mix": ops_mix,
    "export_quirks": export_quirks,
    "qdq_cnn": qdq_cnn,
    "recurrent": recurrent,
    "if_on_data": if_on_data,
    "pads_and_sums": pads_and_sums,
    "einsum_attention": einsum_attention,
    "transformer": transformer,
    "mbv3_block": mbv3_block,
    "ort_qdq_cnn_s8s8": ort_qdq_cnn_s8s8,
    "ort_qdq_cnn_u8s8": ort_qdq_cnn_u8s8,
    "ort_qdq_cnn_u8u8": ort_qdq_cnn_u8u8,
    "qdq_u8_weights": qdq_u8_weights,
    "ort_qdq_mlp_u8s8": ort_qdq_mlp_u8s8,
    "ort_qop_cnn_s8s8": ort_qop_cnn_s8s8,
    "ort_qop_mlp_u8s8": ort_qop_mlp_u8s8,
    "ort_qop_requant": ort_qop_requant,
    "qonnx_mlp": qonnx_mlp,
    "ort_qdq_transformer": ort_qdq_transformer,
    "ort_qop_transformer": ort_qop_transformer,
    "ort_dyn_transformer": ort_dyn_transformer,
    "ort_dyn_mlp_u8": ort_dyn_mlp_u8,
    "ort_dyn_cnn": ort_dyn_cnn,
    "int4_weights": int4_weights,
    "qdq_int4_cnn": qdq_int4_cnn,
    "ort_nbits_transformer": ort_nbits_transformer,
    "ort_nbits_transformer_zp": ort_nbits_transformer_zp,
    "matmul_integer_long_k": matmul_integer_long_k,
    "binary_cnn": binary_cnn,
    "ort_dyn_recurrent": ort_dyn_recurrent,
    "ort_qdq_cnn_u8u8_pt": ort_qdq_cnn_u8u8_pt,
    "ort_qdq_mlp_u8u8_pt": ort_qdq_mlp_u8u8_pt,
}


def run_reference(model, inputs):
    """Expected outputs, from onnxruntime on one thread with graph optimizations off."""
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    feeds = {i.name: v for i, v in zip(sess.get_inputs(), inputs)}
    names = [o.name for o in sess.get_outputs()]
    return names, sess.run(names, feeds)


def write_case(out_dir, name, build):
    built = build()
    model, inputs = built[0], built[1]
    case_dir = os.path.join(out_dir, name)
    data_dir = os.path.join(case_dir, "test_data_set_0")
    if os.path.isdir(case_dir):
        shutil.rmtree(case_dir)
    os.makedirs(data_dir)
    model_path = os.path.join(case_dir, "model.onnx")
    onnx.save(model, model_path)
    size = os.path.getsize(model_path)
    if size > MAX_MODEL_BYTES:
        sys.exit(f"gen_models: {name}: model.onnx is {size} bytes, over {MAX_MODEL_BYTES}")
    for i, (vi, arr) in enumerate(zip(model.graph.input, inputs)):
        write_tensor(os.path.join(data_dir, f"input_{i}.pb"), arr, vi.name)
    # A case whose ops onnxruntime cannot run gives its own reference.
    names, outputs = built[2] if len(built) > 2 else run_reference(model, inputs)
    for i, (n, arr) in enumerate(zip(names, outputs)):
        if not np.all(np.isfinite(arr)):
            sys.exit(f"gen_models: {name}: output {n} is not finite")
        write_tensor(os.path.join(data_dir, f"output_{i}.pb"), arr, n)
    shapes = ", ".join(f"{n}{list(o.shape)}" for n, o in zip(names, outputs))
    print(f"{name}: {size} bytes, opset {model.opset_import[0].version}, outputs {shapes}")


def write_tensor(path, arr, name):
    with open(path, "wb") as f:
        f.write(numpy_helper.from_array(arr, name).SerializeToString())


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=HERE, help="folder to write the cases into (default: testdata/)")
    p.add_argument("--check", action="store_true", help="fail if the committed files differ from a fresh generation")
    p.add_argument("cases", nargs="*", help="cases to generate (default: all)")
    args = p.parse_args()
    names = args.cases or list(CASES)
    for n in names:
        if n not in CASES:
            sys.exit(f"gen_models: unknown case '{n}'; known: {', '.join(CASES)}")
    if not args.check:
        for n in names:
            write_case(args.out, n, CASES[n])
        return
    with tempfile.TemporaryDirectory() as tmp:
        bad = []
        for n in names:
            write_case(tmp, n, CASES[n])
            bad += diffs(os.path.join(tmp, n), os.path.join(args.out, n), n)
        if bad:
            sys.exit("gen_models: differs from the committed files (re-run testdata/gen_models.py): " + ", ".join(bad))
        print("gen_models: committed files are up to date")


def diffs(fresh, committed, prefix):
    """Files that differ: models and inputs byte for byte; expected outputs within
    1e-6 (onnxruntime's last bits may vary with the CPU's vector width)."""
    out = []
    cmp = filecmp.dircmp(fresh, committed)
    out += [f"{prefix}/{f} (missing or extra)" for f in cmp.left_only + cmp.right_only + cmp.funny_files]
    for f in cmp.common_files:
        a, b = os.path.join(fresh, f), os.path.join(committed, f)
        if filecmp.cmp(a, b, shallow=False):
            continue
        if f.startswith("output_") and outputs_close(a, b):
            continue
        out.append(f"{prefix}/{f}")
    for sub in cmp.common_dirs:
        out += diffs(os.path.join(fresh, sub), os.path.join(committed, sub), f"{prefix}/{sub}")
    return out


def outputs_close(a, b):
    ta, tb = onnx.TensorProto(), onnx.TensorProto()
    with open(a, "rb") as f:
        ta.ParseFromString(f.read())
    with open(b, "rb") as f:
        tb.ParseFromString(f.read())
    x, y = numpy_helper.to_array(ta), numpy_helper.to_array(tb)
    return ta.name == tb.name and x.dtype == y.dtype and x.shape == y.shape and np.allclose(x, y, rtol=1e-5, atol=1e-6)


if __name__ == "__main__":
    main()
