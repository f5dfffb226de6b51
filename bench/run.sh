#!/usr/bin/env bash
# The speed benchmark: installs what is missing, builds qcc (release), runs
# bench/run.py (models, side-by-side timing against ONNX Runtime, probes) and
# writes bench/RESULTS.md + bench/results.svg. Arguments go to bench/run.py.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
cargo build --release -q -p qcc
# tract-onnx, the independent float runtime (crates/qcc/examples/tract_time.rs).
cargo build --release -q -p qcc --example tract_time
exec .venv/bin/python bench/run.py "$@"
