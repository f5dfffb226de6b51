#!/usr/bin/env python3
"""The ONNX backend node tests qcc runs: the manifest, and constant variants.

Two commands (use the project's venv, made by scripts/setup.sh):

    .venv/bin/python scripts/node_tests.py constify
        For every case of .cache/onnx-node/ that gives an op parameter (Reshape's
        shape, Slice's starts, Resize's scales…) as a runtime graph input, writes
        a variant to .cache/onnx-node-const/<case>/ where those inputs are
        initializers holding the test's values. qcc needs such parameters as
        constants, so only the variants can test these ops' semantics.
        scripts/setup.sh runs this.

    .venv/bin/python scripts/node_tests.py manifest
        Rewrites testdata/onnx-node-tests.txt: every case (and `const/<case>`
        variant) whose ops are all in qcc's float op set and whose graph inputs
        and outputs are float32/int64/bool tensors, with a tolerance from its ops,
        marked `xfail: REASON` when it needs something qcc does not do by
        design. Re-apply hand edits afterwards, or let
        `QCC_BLESS=1 cargo test -p qcc --test onnx_node` update the xfail marks
        from a real run.
"""

import argparse
import os
import shutil
import sys

import onnx
from onnx import TensorProto, helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# qcc's float op set: the ONNX ops the importer maps onto qcc-ir (see crates/qcc-ir/src/op.rs).
SUPPORTED = {
    "Conv", "ConvTranspose", "Gemm", "MatMul",
    "Add", "Sub", "Mul", "Div", "Max", "Min", "Pow",
    "Sqrt", "Exp", "Log", "Neg", "Abs", "Sign", "Reciprocal", "Erf",
    "Relu", "Clip", "LeakyRelu", "PRelu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish",
    "Softmax", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool",
    "BatchNormalization", "ReduceMean", "ReduceMax", "ReduceSum",
    "Flatten", "Reshape", "Transpose", "Concat", "Split", "Slice", "Squeeze", "Unsqueeze",
    "Pad", "Resize", "Identity", "Constant", "Cast", "Gather",
    "Equal", "Greater", "GreaterOrEqual", "Less", "LessOrEqual",
    "Not", "And", "Or", "Xor", "Where", "LayerNormalization",
    "QuantizeLinear", "DequantizeLinear", "LSTM", "GRU", "RNN", "If",
    "InstanceNormalization", "LRN", "Tile", "CumSum", "ArgMax", "ArgMin", "Gelu", "TopK", "ScatterND",
    "QLinearConv", "QLinearMatMul", "DynamicQuantizeLinear", "MatMulInteger", "Round",
    "ConvInteger",
}  # fmt: skip

ALLOWED_TYPES = {TensorProto.FLOAT, TensorProto.INT64, TensorProto.INT32, TensorProto.BOOL, TensorProto.INT8, TensorProto.UINT8}
# Graph inputs, outputs and initializers may also be int4 / uint4 (one value per byte in qcc).
IO_TYPES = ALLOWED_TYPES | {TensorProto.INT4, TensorProto.UINT4}

# Inputs (by position) that qcc needs as constants: they become IR attributes.
PARAM_INPUTS = {
    "Reshape": {1: "shape"},
    "Slice": {1: "starts", 2: "ends", 3: "axes", 4: "steps"},
    "Clip": {1: "min", 2: "max"},
    "QuantizeLinear": {1: "y_scale", 2: "y_zero_point"},
    "DequantizeLinear": {1: "x_scale", 2: "x_zero_point"},
    "QLinearConv": {1: "x_scale", 2: "x_zero_point", 4: "w_scale", 5: "w_zero_point", 6: "y_scale", 7: "y_zero_point"},
    "ConvInteger": {1: "w", 2: "x_zero_point", 3: "w_zero_point"},
    "QLinearMatMul": {1: "a_scale", 2: "a_zero_point", 4: "b_scale", 5: "b_zero_point", 6: "y_scale", 7: "y_zero_point"},
    "LSTM": {1: "W", 2: "R", 3: "B", 4: "sequence_lens", 7: "P"},
    "GRU": {1: "W", 2: "R", 3: "B", 4: "sequence_lens"},
    "RNN": {1: "W", 2: "R", 3: "B", 4: "sequence_lens"},
    "Tile": {1: "repeats"},
    "CumSum": {1: "axis"},
    "TopK": {1: "K"},
    "ScatterND": {1: "indices"},
    "Pad": {1: "pads", 2: "constant_value", 3: "axes"},
    "Resize": {1: "roi", 2: "scales", 3: "sizes"},
    "Split": {1: "split"},
    "Squeeze": {1: "axes"},
    "Unsqueeze": {1: "axes"},
    "ReduceMean": {1: "axes"},
    "ReduceMax": {1: "axes"},
    "ReduceSum": {1: "axes"},
}

# Tolerances (atol, rtol): |got - want| <= atol + rtol * |want|.
EXACT = (0.0, 0.0)  # data movement, comparisons, casts: bit-exact
ARITH = (1e-6, 1e-5)  # one rounding step or a short sum
ACCUM = (1e-5, 1e-4)  # dot products and long sums: the summation order differs
TRANSC = (1e-6, 1e-4)  # exp, erf, tanh…: qcc's own polynomial approximations (no libm)
TOL_BY_OP = {
    **{op: EXACT for op in [
        "Relu", "Clip", "Neg", "Abs", "Sign", "Max", "Min", "MaxPool", "GlobalMaxPool", "ReduceMax",
        "Flatten", "Reshape", "Transpose", "Concat", "Split", "Slice", "Squeeze", "Unsqueeze",
        "Pad", "Identity", "Constant", "Cast", "Gather",
        "Equal", "Greater", "GreaterOrEqual", "Less", "LessOrEqual",
        "Not", "And", "Or", "Xor", "Where", "QuantizeLinear", "DequantizeLinear", "If",
        "ArgMax", "ArgMin", "TopK", "ScatterND",
        # Integer outputs: qcc's fixed-point requantization must give the exact integers.
        "QLinearConv", "QLinearMatMul", "DynamicQuantizeLinear", "MatMulInteger", "Round",
        "ConvInteger",
    ]},
    **{op: ARITH for op in [
        "Add", "Sub", "Mul", "Div", "Reciprocal", "Sqrt", "LeakyRelu", "PRelu",
        "HardSigmoid", "HardSwish", "BatchNormalization", "Resize", "Tile",
    ]},
    **{op: ACCUM for op in [
        "Conv", "ConvTranspose", "Gemm", "MatMul", "AveragePool", "GlobalAveragePool",
        "ReduceMean", "ReduceSum", "LayerNormalization",
        # Recurrent cells: products of sums through sigmoid and tanh, per step.
        "LSTM", "GRU", "RNN", "InstanceNormalization", "CumSum",
    ]},
    **{op: TRANSC for op in ["Exp", "Log", "Erf", "Sigmoid", "Tanh", "Pow", "Softmax", "LRN", "Gelu"]},
}  # fmt: skip


def tensor_type(vi):
    """The element type of a plain tensor value, or None for sequences, optionals…"""
    t = vi.type
    return t.tensor_type.elem_type if t.WhichOneof("value") == "tensor_type" else None


def attr(node, name, default=None):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def runtime_params(model):
    """(node, what, input name) for each op parameter given as a runtime graph input."""
    g = model.graph
    runtime = {i.name for i in g.input} - {t.name for t in g.initializer}
    found = []
    for n in g.node:
        for pos, what in PARAM_INPUTS.get(n.op_type, {}).items():
            if pos < len(n.input) and n.input[pos] in runtime:
                found.append((n, what, n.input[pos]))
    return found


def xfail_reason(model):
    """Why qcc cannot compile this case by design, or None."""
    params = runtime_params(model)
    if params:
        n, what, _ = params[0]
        return f"parameter given as runtime input ({n.op_type} {what})"
    types = {v.name: tensor_type(v) for v in model.graph.input}
    for n in model.graph.node:
        if n.op_type == "Pad":
            mode = attr(n, "mode", b"constant")
            if mode != b"constant":
                return f"Pad mode {mode.decode()}"
        if n.op_type == "Resize":
            mode = attr(n, "mode", b"nearest")
            if mode not in (b"nearest", b"linear"):
                return f"Resize mode {mode.decode()}"
            if attr(n, "antialias", 0):
                return "Resize antialias"
            if attr(n, "coordinate_transformation_mode", b"") == b"tf_crop_and_resize":
                return "Resize tf_crop_and_resize"
        if n.op_type == "BatchNormalization" and (attr(n, "training_mode", 0) or len(n.output) > 1):
            return "BatchNormalization training mode"
        if n.op_type == "MaxPool" and len([o for o in n.output if o]) > 1:
            return "MaxPool indices output"
        if n.op_type == "MaxPool" and attr(n, "storage_order", 0):
            return "MaxPool storage_order"
        if n.op_type == "Pow" and types.get(n.input[0]) == TensorProto.INT64:
            return "Pow of an int64 base (qcc's Pow is float only)"
    return None


# Cases whose expected outputs were written by hand with few digits, so the
# exact result differs from them by up to half a unit in the last digit.
TOL_BY_CASE = {
    # Expected values given to 4 decimals (e.g. 0.1511 for 1.3595 / 9 = 0.151056).
    "test_averagepool_2d_ceil_last_window_starts_on_pad": (1e-4, 0.0),
}


def tolerance(name, ops):
    """The loosest tolerance among the case's ops, unless the case has its own."""
    if name in TOL_BY_CASE:
        return TOL_BY_CASE[name]
    tols = [TOL_BY_OP[o] for o in ops]
    return max(t[0] for t in tols), max(t[1] for t in tols)


def fmt_num(x):
    return "0" if x == 0 else f"{x:g}"


def case_dirs(node_dir):
    for name in sorted(os.listdir(node_dir)):
        path = os.path.join(node_dir, name, "model.onnx")
        if os.path.isfile(path):
            yield name, path


def scan(node_dir, prefix=""):
    """(manifest name, ops, tolerance, xfail reason) of every case qcc's op set covers."""
    cases = []
    for name, path in case_dirs(node_dir):
        model = onnx.load(path)
        ops = sorted({n.op_type for n in model.graph.node})
        if not ops or not set(ops) <= SUPPORTED:
            continue
        g = model.graph
        if any(tensor_type(v) not in IO_TYPES for v in list(g.input) + list(g.output)):
            continue
        if any(t.data_type not in IO_TYPES for t in g.initializer):
            continue
        if any(n.op_type == "Cast" and attr(n, "to") not in ALLOWED_TYPES for n in g.node):
            continue
        if any(d.domain not in ("", "ai.onnx") for d in model.opset_import):
            continue
        cases.append((prefix + name, ops, tolerance(name, ops), xfail_reason(model)))
    return cases


def read_tensor(path):
    t = onnx.TensorProto()
    with open(path, "rb") as f:
        t.ParseFromString(f.read())
    return t


def constify(node_dir, out_dir):
    """Writes the constant-parameter variants; returns how many."""
    tmp = out_dir + ".tmp"
    if os.path.isdir(tmp):
        shutil.rmtree(tmp)
    os.makedirs(tmp)
    count = 0
    for name, path in case_dirs(node_dir):
        model = onnx.load(path)
        params = {p[2] for p in runtime_params(model)}
        if not params:
            continue
        g = model.graph
        inits = {t.name for t in g.initializer}
        runtime = [v for v in g.input if v.name not in inits]
        sets = sorted(d for d in os.listdir(os.path.dirname(path)) if d.startswith("test_data_set_"))
        if len(sets) != 1:
            continue  # the constants would differ between data sets
        src = os.path.join(os.path.dirname(path), sets[0])
        dst = os.path.join(tmp, name, sets[0])
        os.makedirs(dst)
        kept = []
        for i, v in enumerate(runtime):
            t = read_tensor(os.path.join(src, f"input_{i}.pb"))
            if v.name in params:
                t.name = v.name
                g.initializer.append(t)
            else:
                kept.append((v, t))
        keep_names = {v.name for v, _ in kept}
        new_inputs = [v for v in g.input if v.name in keep_names or v.name in inits]
        del g.input[:]
        g.input.extend(new_inputs)
        for j, (_, t) in enumerate(kept):
            with open(os.path.join(dst, f"input_{j}.pb"), "wb") as f:
                f.write(t.SerializeToString())
        for f in sorted(os.listdir(src)):
            if f.startswith("output_"):
                shutil.copyfile(os.path.join(src, f), os.path.join(dst, f))
        onnx.save(model, os.path.join(tmp, name, "model.onnx"))
        count += 1
    if os.path.isdir(out_dir):
        shutil.rmtree(out_dir)
    os.rename(tmp, out_dir)
    return count


HEADER = """\
# ONNX backend node tests run by crates/qcc/tests/onnx_node.rs, from the onnx 1.22.0
# wheel (scripts/setup.sh extracts them into .cache/onnx-node/).
#
# Generated by `scripts/node_tests.py manifest`: every case whose ops are all in
# qcc's op set and whose graph inputs and outputs are float32/int64/int32/bool/
# int8/uint8 tensors, or int4/uint4 (one value per byte in qcc).
# `const/NAME` is the variant of case NAME whose op parameters (Reshape's shape,
# Slice's starts, Resize's scales…), runtime graph inputs in the original, are
# initializers (`scripts/node_tests.py constify` makes them in .cache/onnx-node-const/).
# Updated from real runs with `QCC_BLESS=1 cargo test -p qcc --test onnx_node`.
#
# Line format:  CASE atol=A rtol=R [xfail: REASON]
#   A value passes when |got - want| <= atol + rtol * |want| (NaN matches NaN).
#   Tolerances by op kind: data movement, max/min and casts are exact (0);
#   one rounding step 1e-6/1e-5; dot products and long sums 1e-5/1e-4 (the
#   summation order differs from the reference); exp/log/erf/tanh/sigmoid/pow/
#   softmax 1e-6/1e-4 (qcc uses its own approximations, no libm).
#   An xfail case must fail; the test fails if it passes, so remove the mark then.
"""


def write_manifest(cases, out):
    width = max(len(c[0]) for c in cases)
    lines = [HEADER]
    passing = [c for c in cases if c[3] is None]
    failing = [c for c in cases if c[3] is not None]
    by_ops = {}
    for c in passing:
        by_ops.setdefault(" ".join(c[1]), []).append(c)
    for ops in sorted(by_ops):
        lines.append(f"\n# {ops}\n")
        for name, _, (atol, rtol), _ in sorted(by_ops[ops]):
            lines.append(f"{name:<{width}}  atol={fmt_num(atol)} rtol={fmt_num(rtol)}\n")
    lines.append("\n# ---- known failures ----\n")
    for name, _, (atol, rtol), reason in sorted(failing):
        lines.append(f"{name:<{width}}  atol={fmt_num(atol)} rtol={fmt_num(rtol)}  xfail: {reason}\n")
    with open(out, "w") as f:
        f.writelines(lines)
    return len(passing), len(failing)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("command", choices=["constify", "manifest"])
    p.add_argument("--node-dir", default=os.path.join(ROOT, ".cache", "onnx-node"))
    p.add_argument("--const-dir", default=os.path.join(ROOT, ".cache", "onnx-node-const"))
    p.add_argument("--out", default=os.path.join(ROOT, "testdata", "onnx-node-tests.txt"))
    args = p.parse_args()
    if not os.path.isdir(args.node_dir):
        sys.exit(f"node_tests: {args.node_dir} not found: run scripts/setup.sh")
    if args.command == "constify":
        n = constify(args.node_dir, args.const_dir)
        print(f"node_tests: {n} constant-parameter variants -> {args.const_dir}", file=sys.stderr)
        return
    if not os.path.isdir(args.const_dir):
        sys.exit(f"node_tests: {args.const_dir} not found: run scripts/setup.sh")
    cases = scan(args.node_dir)
    originals = {c[0]: c for c in cases}
    for c in scan(args.const_dir, prefix="const/"):
        # A variant is worth running only where its original fails for its runtime parameters.
        orig = originals.get(c[0][len("const/"):])
        if orig and orig[3] and orig[3].startswith("parameter given as runtime input"):
            cases.append(c)
    n_pass, n_fail = write_manifest(cases, args.out)
    print(f"node_tests: {len(cases)} cases ({n_pass} expected to pass, {n_fail} xfail) -> {args.out}")


if __name__ == "__main__":
    main()
