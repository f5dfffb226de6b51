#!/usr/bin/env python3
"""Compile time of wide graphs: `x` → N Relu branches → one Sum, for growing N.

    .venv/bin/python bench/wide.py      (after `cargo build --release -p qcc`)

Writes bench/WIDE.md: seconds and peak RSS per compile, and the time per
node, so growth worse than linear in the node count shows as a rising
last column.
"""

import os
import subprocess
import time

import onnx
from onnx import TensorProto, helper

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WORK = os.path.join(ROOT, "target", "bench", "wide")
QCC = os.path.join(ROOT, "target", "release", "qcc")


def model(n):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    nodes = [helper.make_node("Relu", ["x"], [f"r{i}"], name=f"relu{i}") for i in range(n)]
    nodes.append(helper.make_node("Sum", [f"r{i}" for i in range(n)], ["y"], name="sum"))
    g = helper.make_graph(nodes, "wide", [x], [y])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


def main():
    os.makedirs(WORK, exist_ok=True)
    rows = []
    for n in (2500, 5000, 10000, 20000):
        path = os.path.join(WORK, f"wide{n}.onnx")
        onnx.save(model(n), path)
        rss_file = os.path.join(WORK, "rss.txt")
        t0 = time.time()
        subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss_file, QCC, path,
                        "-o", os.path.join(WORK, "wide.o")], check=True)
        dt = time.time() - t0
        rss = float(open(rss_file).read().split()[-1]) / 1024
        rows.append((n, dt, rss))
        print(f"{n} branches: {dt:.2f} s, {rss:.0f} MiB")
    lines = [
        "# Compile time of wide graphs",
        "",
        "Written by `bench/wide.py`: `x` → N Relu branches → one Sum (N + 1 nodes), one compile each.",
        "",
        "| branches | seconds | peak RSS (MiB) | µs per node |",
        "|---|---|---|---|",
    ]
    lines += [f"| {n} | {dt:.2f} | {rss:.0f} | {dt / (n + 1) * 1e6:.0f} |" for n, dt, rss in rows]
    open(os.path.join(HERE, "WIDE.md"), "w").write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
