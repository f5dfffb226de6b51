#!/usr/bin/env bash
# Installs what qcc's build and tests need; idempotent, and quick when all is present.
#
#   1. Debian packages: LLVM 22 (headers, libs, Polly; llc comes with them) and
#      zstd, via apt-get, only those that `dpkg -s` says are missing; a C
#      compiler if there is none, python3-venv if Python cannot make a venv
#      ($PYTHON picks the Python); and the cross tests' toolchains: gcc and
#      glibc for aarch64 and armv7 Linux with qemu-user, arm-none-eabi gcc with
#      newlib and qemu-system-arm (all with --no-install-recommends).
#   2. .venv/ (repo root, gitignored): pinned onnx, onnxruntime, numpy from
#      scripts/requirements.txt, re-installed only when that file changes.
#   3. .cache/onnx-node/: the ONNX backend node tests (onnx/backend/test/data/node/*)
#      taken from the onnx 1.22.0 wheel (later wheels no longer ship them), and
#      .cache/onnx-node-const/: their variants with constant op parameters
#      (scripts/node_tests.py constify), remade when that script changes.
#
# Run as root (or with sudo available) on Debian 12 with a Rust toolchain and Python 3.11.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

log() { echo "setup: $*" >&2; }

# --- 1. Debian packages ---------------------------------------------------------
apt_packages=(llvm-22-dev libpolly-22-dev libzstd-dev)
# Cross tests (crates/qcc-codegen/tests/cross.rs, crates/qcc/tests/cross_*.rs).
# The libc6-dev-*-cross packages are only "recommended" by the cross gccs.
apt_packages+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross gcc-arm-linux-gnueabihf libc6-dev-armhf-cross qemu-user)
apt_packages+=(gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm)
# GNU time: the benchmark's peak-memory column.
apt_packages+=(time)
missing=()
for p in "${apt_packages[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
command -v cc >/dev/null 2>&1 || missing+=(gcc libc6-dev)
python="${PYTHON:-python3}"
# Debian's own python3 needs python3-venv for `python3 -m venv`.
"$python" -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
if ((${#missing[@]})); then
    sudo=()
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null 2>&1 || {
            log "missing packages ${missing[*]} and not root; install them and re-run"
            exit 1
        }
        sudo=(sudo)
    fi
    log "installing ${missing[*]}"
    "${sudo[@]}" apt-get update -q
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# --- 2. Python virtual environment ----------------------------------------------
venv="$root/.venv"
req="$root/scripts/requirements.txt"
stamp="$venv/.qcc-requirements"
if [[ ! -x "$venv/bin/python" ]]; then
    log "creating $venv"
    "$python" -m venv "$venv"
fi
if ! cmp -s "$req" "$stamp"; then
    log "installing Python packages from scripts/requirements.txt"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req"
    cp "$req" "$stamp"
fi

# --- 3. ONNX backend node tests -------------------------------------------------
node_dir="$root/.cache/onnx-node"
if [[ ! -f "$node_dir/.complete" ]]; then
    log "fetching the ONNX backend node tests (onnx 1.22.0 wheel)"
    wheels="$root/.cache/wheels"
    mkdir -p "$wheels"
    "$venv/bin/python" -m pip download -q --disable-pip-version-check --no-deps \
        --only-binary :all: onnx==1.22.0 -d "$wheels"
    rm -rf "$node_dir" "$node_dir.tmp"
    "$venv/bin/python" - "$wheels" "$node_dir.tmp" <<'EOF'
import glob, os, sys, zipfile

wheels, dest = sys.argv[1], sys.argv[2]
found = sorted(glob.glob(os.path.join(wheels, "onnx-1.22.0-*.whl")))
if not found:
    sys.exit(f"setup: no onnx 1.22.0 wheel in {wheels}")
prefix = "onnx/backend/test/data/node/"
count = 0
with zipfile.ZipFile(found[0]) as z:
    for info in z.infolist():
        if not info.filename.startswith(prefix) or info.is_dir():
            continue
        rel = info.filename[len(prefix):]
        if ".." in rel.split("/"):
            continue
        out = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with z.open(info) as src, open(out, "wb") as dst:
            dst.write(src.read())
        count += 1
if count == 0:
    sys.exit(f"setup: {found[0]} holds no node tests")
print(f"setup: extracted {count} files", file=sys.stderr)
EOF
    mv "$node_dir.tmp" "$node_dir"
    touch "$node_dir/.complete"
fi

const_dir="$root/.cache/onnx-node-const"
const_stamp="$(sha256sum "$root/scripts/node_tests.py" | cut -d' ' -f1)"
if [[ "$(cat "$const_dir/.complete" 2>/dev/null)" != "$const_stamp" ]]; then
    log "making the constant-parameter variants of the node tests"
    "$venv/bin/python" "$root/scripts/node_tests.py" constify
    echo "$const_stamp" >"$const_dir/.complete"
fi

log "ok"
