#!/usr/bin/env python3
"""Static cycle estimates of qcc's AArch64 microkernels (qemu cannot time ARM).

    python bench/mca.py MODEL_DIR [--qcc PATH] [--mca PATH]

MODEL_DIR holds model.onnx and calib.npy (bench/models.py's conv3x3_64_56).
For each core, qcc compiles the model (f32, and int8 with the calibration
samples) for aarch64 with `--cpu CORE --emit asm`; the inner k loop of every
microkernel in the assembly goes through `llvm-mca -mcpu=CORE`, and its
multiply-accumulates per cycle are set against the same model's peak, from
register-only loops of independent `fmla` / `sdot` / `smlal` (the ARM
counterpart of bench/probes.c). Prints a markdown table.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

CORES = ["cortex-a53", "cortex-a55", "cortex-a76", "neoverse-n1"]
TRIPLE = "aarch64-unknown-linux-gnu"

# Multiply-accumulates per instruction (q-register forms).
MACS = [
    (re.compile(r"^fmla\s+v\d+\.4s"), 4),
    (re.compile(r"^sdot\s+v\d+\.4s"), 16),
    (re.compile(r"^(smlal2?|smlsl2?)\s+v\d+\.4s"), 4),
    (re.compile(r"^(smlal2?|smlsl2?)\s+v\d+\.8h"), 8),
    (re.compile(r"^mla\s+v\d+\.4s"), 4),
    # smull(2) makes 8 exact i16 products that sadalp then accumulates.
    (re.compile(r"^smull2?\s+v\d+\.8h"), 8),
]


def macs_of(line):
    for rx, n in MACS:
        if rx.match(line):
            return n
    return 0


def loops(asm):
    """(function, loop body lines) of the innermost self-loop of each microkernel."""
    out = []
    lines = [l.strip() for l in asm.splitlines()]
    i = 0
    while i < len(lines):
        m = re.match(r"^(qcc\.mmm\.[\w.]+):$", lines[i])
        if not m:
            i += 1
            continue
        fn, i = m.group(1), i + 1
        best = None
        while i < len(lines) and not re.match(r"^qcc\.mmm\.[\w.]+:$|^\.Lfunc_end", lines[i]):
            lab = re.match(r"^(\.LBB\w+):", lines[i])
            if lab:
                body, j = [], i + 1
                while j < len(lines) and not lines[j].endswith(":"):
                    body.append(lines[j])
                    if re.match(rf"^b(\.\w+)?\s+{re.escape(lab.group(1))}$", lines[j]):
                        instrs = [b for b in body if b and not b.startswith(("//", "."))]
                        if sum(map(macs_of, instrs)) and (best is None or len(instrs) > len(best)):
                            best = instrs
                        break
                    j += 1
            i += 1
        if best:
            out.append((fn, best))
    return out


def mca(tool, cpu, instrs, iters=200):
    r = subprocess.run(
        [tool, f"-mtriple=aarch64", f"-mcpu={cpu}", f"-iterations={iters}"],
        input="\n".join(instrs) + "\n",
        capture_output=True,
        text=True,
        check=True,
    )
    cycles = int(re.search(r"Total Cycles:\s+(\d+)", r.stdout).group(1))
    return cycles / iters


def peak(tool, cpu, form):
    """MACs per cycle of independent instructions of one form."""
    if form == "fmla":
        instrs = [f"fmla v{i}.4s, v28.4s, v29.s[0]" for i in range(24)]
    elif form == "sdot":
        instrs = [f"sdot v{i}.4s, v28.16b, v29.4b[0]" for i in range(24)]
    else:  # smull + sadalp pairs, products first (in-order cores)
        instrs = [f"smull v{i}.8h, v28.8b, v29.8b" for i in range(12)]
        instrs += [f"sadalp v{i + 12}.4s, v{i}.8h" for i in range(12)]
    return sum(map(macs_of, instrs)) / mca(tool, cpu, instrs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("--qcc", default=os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "target", "release", "qcc"))
    ap.add_argument("--mca", default=shutil.which("llvm-mca-22") or shutil.which("llvm-mca") or "llvm-mca")
    a = ap.parse_args()
    model = os.path.join(a.model_dir, "model.onnx")
    calib = os.path.join(a.model_dir, "calib.npy")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for cpu in CORES:
            for tag, extra in (("f32", []), ("int8", ["--quantize", "int8", "--calibration-data", calib])):
                o = os.path.join(tmp, f"{cpu}_{tag}.o")
                cmd = [a.qcc, model, "-o", o, "--target", TRIPLE, "--cpu", cpu, "--emit", "asm,obj", *extra]
                subprocess.run(cmd, check=True, capture_output=True)
                asm = open(o[:-2] + ".s").read()
                for fn, body in loops(asm):
                    cyc = mca(a.mca, cpu, body)
                    macs = sum(map(macs_of, body))
                    form = "fmla" if ".f32." in fn else ("sdot" if ".sdot." in fn else "smull")
                    pk = peak(a.mca, cpu, form)
                    mr, nr = map(int, re.search(r"\.(\d+)x(\d+)\.", fn).groups())
                    per_k = mr * nr * (1 if ".f32." in fn else 4)
                    rows.append((cpu, fn, len(body), macs // per_k, cyc, macs / cyc, form, pk))
    print("| core | microkernel | instructions / iteration | k steps / iteration | cycles / iteration | MACs / cycle | peak MACs / cycle (same model) | of peak |")
    print("|---|---|---|---|---|---|---|---|")
    for cpu, fn, n, ks, cyc, mpc, form, pk in rows:
        print(f"| {cpu} | `{fn}` | {n} | {ks} | {cyc:.2f} | {mpc:.1f} | {pk:.1f} (`{form}`) | {mpc / pk * 100:.0f}% |")


if __name__ == "__main__":
    sys.exit(main())
