#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what is missing
# (scripts/setup.sh), then checks formatting, lints, runs every Rust test
# (unit, snapshot, end-to-end and ONNX node tests) and checks that the committed
# test models and the op signature table match their generators. Runs every step, reports each failure, and
# exits non-zero if any failed.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

bash scripts/setup.sh

failed=()
step() {
    echo "==> $*" >&2
    if ! "$@"; then
        echo "==> FAILED: $*" >&2
        failed+=("$*")
    fi
}

step cargo fmt --all -- --check
step cargo clippy --workspace --all-targets -- -D warnings
step cargo test --workspace --no-fail-fast
step .venv/bin/python testdata/gen_models.py --check
schema_is_current() {
    .venv/bin/python scripts/op_schema.py | diff - crates/qcc-onnx/src/ops/schema_table.rs
}
step schema_is_current

if ((${#failed[@]})); then
    echo "test.sh: ${#failed[@]} step(s) failed:" >&2
    printf '  %s\n' "${failed[@]}" >&2
    exit 1
fi
echo "test.sh: all steps passed" >&2
