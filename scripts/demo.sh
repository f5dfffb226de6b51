#!/usr/bin/env bash
# qcc in one command: builds qcc, compiles testdata/small_cnn/model.onnx into
# target/demo/small_cnn.{o,h}, links it into the C program examples/demo/main.c
# and runs it on the model's bundled test input. Prints the 10 class
# probabilities, then onnxruntime's for comparison.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
out=target/demo
case_dir=testdata/small_cnn

bash scripts/setup.sh
# A debug build: dependencies are optimized (profile.dev.package."*"), and it
# builds faster than --release; compile speed of a small model is not at stake.
cargo build -q -p qcc
mkdir -p "$out"

echo "==> qcc $case_dir/model.onnx -o $out/small_cnn.o"
target/debug/qcc "$case_dir/model.onnx" -o "$out/small_cnn.o"
echo "==> cc examples/demo/main.c $out/small_cnn.o -o $out/demo"
cc -O2 -std=c11 -Wall -Wextra -I "$out" examples/demo/main.c "$out/small_cnn.o" -o "$out/demo"

# The input as raw float32 (the bundled one is an ONNX TensorProto).
.venv/bin/python - "$case_dir/test_data_set_0" "$out" <<'PY'
import sys
import onnx
from onnx import numpy_helper

data, out = sys.argv[1], sys.argv[2]
t = onnx.TensorProto()
with open(f"{data}/input_0.pb", "rb") as f:
    t.ParseFromString(f.read())
numpy_helper.to_array(t).astype("<f4").tofile(f"{out}/input.bin")
with open(f"{data}/output_0.pb", "rb") as f:
    t.ParseFromString(f.read())
with open(f"{out}/expected.txt", "w") as f:
    f.write(" ".join(f"{p:.6f}" for p in numpy_helper.to_array(t).ravel()) + "\n")
PY

echo "==> $out/demo $out/input.bin"
"$out/demo" "$out/input.bin"
echo "onnxruntime: $(cat "$out/expected.txt")"
