"""Generates the malformed inputs under testdata/bad/ that the CLI error tests feed to qcc,
and the seeds of the fuzz corpus under testdata/fuzz/ (crates/qcc/tests/fuzz_pipeline.rs).

Each file is small and deterministic; run `python testdata/gen_bad_models.py` from the
repository root to regenerate them. The expected error of each is asserted in
crates/qcc/tests/cli_errors.rs.
"""

import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bad")


def save(model, name):
    path = os.path.join(OUT, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(model.SerializeToString())
    return path


def relu_model(nodes=None, inputs=None, initializers=(), x_shape=(1, 4)):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    nodes = nodes or [helper.make_node("Relu", ["x"], ["y"], name="relu")]
    g = helper.make_graph(nodes, "g", inputs or [x], [y], initializer=list(initializers))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


def main():
    os.makedirs(OUT, exist_ok=True)
    # A valid model, to derive the broken ones from.
    good = relu_model()
    data = good.SerializeToString()
    open(os.path.join(OUT, "empty.onnx"), "wb").close()
    with open(os.path.join(OUT, "truncated.onnx"), "wb") as f:
        f.write(data[: len(data) // 2])
    rng = np.random.default_rng(7)
    with open(os.path.join(OUT, "random.onnx"), "wb") as f:
        f.write(rng.integers(0, 256, 512, dtype=np.uint8).tobytes())

    save(relu_model([helper.make_node("FancyOp", ["x"], ["y"], name="mystery")]), "unknown_op.onnx")

    # Conv whose weight W is neither an initializer nor an input.
    x4 = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])
    save(relu_model([helper.make_node("Conv", ["x", "W"], ["y"], name="conv1")], [x4]),
         "missing_initializer.onnx")

    save(relu_model(x_shape=("batch", 4)), "symbolic_dims.onnx")
    # A symbolic dim past the batch axis: --input-shape is still needed.
    save(relu_model(x_shape=(1, "width")), "symbolic_width.onnx")
    # An output declared rank 0 while it computes [1, 4] (a Paddle export quirk).
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y0 = helper.make_tensor_value_info("y", TensorProto.FLOAT, [])
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="relu")], "g", [x], [y0])
    save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), "output_rank0.onnx")
    # Paddle-style "dynamic" dim: dim_value -1 (fixed with --input-shape).
    save(relu_model(x_shape=(-1, 4)), "minus_one_dim.onnx")

    # Two nodes feeding each other.
    save(relu_model([
        helper.make_node("Relu", ["b"], ["a"], name="first"),
        helper.make_node("Add", ["a", "x"], ["b"], name="second"),
        helper.make_node("Relu", ["b"], ["y"], name="last"),
    ]), "cycle.onnx")

    # An initializer stored outside the model's folder.
    w = numpy_helper.from_array(np.ones((1, 4), np.float32), "w")
    w.data_location = TensorProto.EXTERNAL
    entry = w.external_data.add()
    entry.key, entry.value = "location", "../escape.bin"
    w.ClearField("raw_data")
    save(relu_model([helper.make_node("Add", ["x", "w"], ["y"], name="add")], initializers=[w]),
         "external_escape.onnx")

    # An initializer stored in "weights.bin" beside the model (the CLI test
    # makes that a FIFO, which qcc must refuse rather than block on).
    w = numpy_helper.from_array(np.ones((1, 4), np.float32), "w")
    w.data_location = TensorProto.EXTERNAL
    entry = w.external_data.add()
    entry.key, entry.value = "location", "weights.bin"
    w.ClearField("raw_data")
    save(relu_model([helper.make_node("Add", ["x", "w"], ["y"], name="add")], initializers=[w]),
         "external_beside.onnx")

    # A node name with a newline and a terminal escape sequence.
    save(relu_model([helper.make_node("FancyOp", ["x"], ["y"], name="evil\nname\x1b[31m")]),
         "control_chars.onnx")

    # ConstantOfShape bombs: four 1 GiB fills in a few hundred bytes, and one.
    def fills(k):
        shape = numpy_helper.from_array(np.array([16384, 16384], np.int64), "shape")
        nodes = [helper.make_node("ConstantOfShape", ["shape"], [f"c{i}"], name=f"fill{i}")
                 for i in range(k)]
        last = "x"
        for i in range(k):
            nodes.append(helper.make_node("Add", [last, f"c{i}"], [f"s{i}"], name=f"add{i}"))
            last = f"s{i}"
        nodes.append(helper.make_node("Relu", [last], ["y"], name="relu"))
        return relu_model(nodes, initializers=[shape], x_shape=(16384, 16384))
    save(fills(4), "fill_bomb.onnx")
    save(fills(1), "fill_1gib.onnx")

    # Two unsupported ops at once, for `qcc check`.
    save(relu_model([
        helper.make_node("Relu", ["x"], ["r"], name="ok"),
        helper.make_node("Hardmax", ["r"], ["h"], name="hm"),
        helper.make_node("FancyOp", ["h"], ["y"], name="mystery"),
    ]), "two_unsupported.onnx")

    # ConvInteger whose int32 sums can pass 2^24 (17x17 taps of 255 x 255):
    # qcc's exact float evaluation cannot hold them, so it refuses.
    xu = helper.make_tensor_value_info("x", TensorProto.UINT8, [1, 1, 17, 17])
    yi = helper.make_tensor_value_info("y", TensorProto.INT32, [1, 1, 1, 1])
    wu = numpy_helper.from_array(np.full((1, 1, 17, 17), 255, np.uint8), "w")
    g = helper.make_graph([helper.make_node("ConvInteger", ["x", "w"], ["y"], name="wide")],
                          "g", [xu], [yi], [wu])
    save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]),
         "conv_integer_overflow.onnx")

    fuzz_seeds()


def fuzz_seeds():
    """Seeds of the fuzz corpus (testdata/fuzz/, with every other model under
    testdata/): small valid models that reach the passes' rewrites."""
    d = os.path.join(os.path.dirname(OUT), "fuzz")
    os.makedirs(d, exist_ok=True)

    def put(g, name, opset=13):
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
        with open(os.path.join(d, name), "wb") as f:
            f.write(m.SerializeToString())

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 6, 6])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    w = numpy_helper.from_array(np.full((4, 4, 3, 3), 0.1, np.float32), "w")
    b = numpy_helper.from_array(np.zeros(4, np.float32), "b")
    # Conv + residual Add + Relu (fuse-residual, fuse-activation), a depthwise conv.
    wd = numpy_helper.from_array(np.full((4, 1, 3, 3), 0.2, np.float32), "wd")
    put(helper.make_graph([
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Add", ["c", "x"], ["s"], name="add"),
        helper.make_node("Relu", ["s"], ["r"], name="relu"),
        helper.make_node("Conv", ["r", "wd"], ["y"], pads=[1, 1, 1, 1], group=4, name="dw"),
    ], "residual", [x], [y], [w, b, wd]), "residual.onnx")
    # Generated constants and shape arithmetic.
    shape = numpy_helper.from_array(np.array([1, 4, 6, 6], np.int64), "shape")
    lim = numpy_helper.from_array(np.array(6, np.int64), "lim")
    zero = numpy_helper.from_array(np.array(0, np.int64), "zero")
    one = numpy_helper.from_array(np.array(1, np.int64), "one")
    put(helper.make_graph([
        helper.make_node("ConstantOfShape", ["shape"], ["f"], name="fill"),
        helper.make_node("Range", ["zero", "lim", "one"], ["rg"], name="range"),
        helper.make_node("Cast", ["rg"], ["rf"], to=TensorProto.FLOAT, name="cast"),
        helper.make_node("Expand", ["rf", "shape"], ["e"], name="expand"),
        helper.make_node("Add", ["x", "f"], ["a"], name="add0"),
        helper.make_node("Mul", ["a", "e"], ["y"], name="mul"),
    ], "fills", [x], [y], [shape, lim, zero, one]), "fills.onnx")
    # Split with num_outputs (opset 18) and a variadic Max.
    put(helper.make_graph([
        helper.make_node("Split", ["x"], ["p", "q"], axis=1, num_outputs=2, name="split"),
        helper.make_node("Max", ["p", "q"], ["y"], name="max"),
    ], "split18", [x], [y]), "split18.onnx", opset=18)


if __name__ == "__main__":
    main()
