#!/usr/bin/env bash
# Builds benchmarks/kernel_bench.cu with nvcc alone (no DALI, no pip: the kernel's headers and
# the vendored DALI headers of dali_msda/csrc/third_party/dali), then runs it.
#
#   bash benchmarks/kernel_bench.sh --build-only     # build build/kernel_bench and exit
#   bash benchmarks/kernel_bench.sh [ARGS...]        # build, then run with ARGS (kernel_bench
#                                                    # --help: --out, --reps, --batch, --quick,
#                                                    # --check-only)
#
# nvcc: DALI_MSDA_NVCC, else $CUDA_HOME/bin/nvcc, else nvcc on PATH, else the nvidia-cuda-nvcc
# wheel's (as setup.py finds it). GPU target: DALI_MSDA_BENCH_ARCH (default 90, the H200's);
# like the op, compiled with -fmad=false.
set -euo pipefail
cd "$(dirname "$0")/.."
nvcc="${DALI_MSDA_NVCC:-}"
if [[ -z "$nvcc" && -n "${CUDA_HOME:-}" && -x "$CUDA_HOME/bin/nvcc" ]]; then nvcc="$CUDA_HOME/bin/nvcc"; fi
if [[ -z "$nvcc" ]]; then nvcc="$(command -v nvcc || true)"; fi
if [[ -z "$nvcc" ]]; then
  nvcc="$(python3 - <<'PY' 2>/dev/null || true
import os, nvidia.cu13 as cu13
for base in cu13.__path__:
    cand = os.path.join(base, "bin", "nvcc")
    if os.path.exists(cand):
        print(cand)
        break
PY
)"
fi
if [[ -z "$nvcc" ]]; then
  echo "kernel_bench.sh: no nvcc (set DALI_MSDA_NVCC or CUDA_HOME, or put nvcc on PATH)" >&2
  exit 2
fi
arch="${DALI_MSDA_BENCH_ARCH:-90}"
mkdir -p build
bin=build/kernel_bench
echo "kernel_bench.sh: $nvcc ($("$nvcc" --version | grep -o 'release [0-9.]*')), sm_$arch -> $bin"
"$nvcc" -std=c++20 -O3 -fmad=false -arch="sm_$arch" -diag-suppress 20012 -Xptxas -v \
  -I dali_msda/csrc -I dali_msda/csrc/third_party/dali -I benchmarks \
  benchmarks/kernel_bench.cu dali_msda/csrc/mix/fmix.cc -o "$bin" 2> build/kernel_bench.ptxas.txt \
  || { cat build/kernel_bench.ptxas.txt >&2; exit 1; }
# registers and spills of every kernel instance (ptxas -v), one line each
python3 - build/kernel_bench.ptxas.txt <<'PY' > build/kernel_bench.registers.txt || true
import re, subprocess, sys
text = open(sys.argv[1]).read()
blocks = re.split(r"ptxas info\s+: Compiling entry function '", text)[1:]
for b in blocks:
    name = b.split("'")[0]
    try:
        name = subprocess.run(["c++filt", name], capture_output=True, text=True).stdout.strip()
    except OSError:
        pass
    regs = re.search(r"Used (\d+) registers", b)
    spill = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", b)
    print(f"{regs.group(1) if regs else '?':>4} registers, spills {spill.group(1) if spill else '?'}"
          f"/{spill.group(2) if spill else '?'} B: {name}")
PY
echo "kernel_bench.sh: built; registers per kernel in build/kernel_bench.registers.txt"
if [[ "${1:-}" == "--build-only" ]]; then exit 0; fi
exec "$bin" "$@"
