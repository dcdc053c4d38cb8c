#!/usr/bin/env bash
# Stages NVIDIA DALI (CUDA 13 build), the wheels it needs and the test suite's missing
# requirements for a GPU machine that cannot reach a package registry and takes at most 64 MiB
# a call (working tree included): parts of at most PART_MIB MiB, a wheel too large for one part
# cut into pieces (NAME.whl.piece-aa, -ab, ...) that `gpu_check.sh tests` joins again.
#
#   bash benchmarks/stage_wheels.sh [OUTDIR] [PART_MIB]   # default .device-wheels (git-ignored), 56
#
# The GPU machine: Python 3.12 (DEVICE_PYTHON), torch, numpy, pytest, scipy, pillow,
# scikit-image; not DALI, nor hypothesis (tests/test_fuzz.py, imported at collection).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-.device-wheels}
part_mib=${2:-56}
dali_version=${DALI_VERSION:-2.4.0}
pyver=${DEVICE_PYTHON:-3.12}

rm -rf "$out" && mkdir -p "$out/all"
plat=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$pyver" \
  --implementation cp "${plat[@]}" -d "$out/all" \
  "nvidia-dali-cuda130==$dali_version" \
  "nvidia-nvimgcodec-cu13==0.9.*" "nvidia-libnvcomp-cu13==5.3.*" \
  nvidia-nvjpeg nvidia-nvjpeg2k-cu13 nvidia-nvtiff-cu13 \
  astunparse gast optree makefun "libcst~=1.8" nvtx "six>=1.16,<=1.17" \
  "hypothesis>=6.50" "attrs>=22.2" sortedcontainers

limit=$((part_mib * 1024 * 1024))
(cd "$out/all" && for w in *.whl; do   # cut what does not fit in one part
  if [ "$(stat -c %s "$w")" -gt "$limit" ]; then
    split -b "$((limit - 1024 * 1024))" "$w" "$w.piece-" && rm "$w"
  fi
done)
n=1; used=0; mkdir -p "$out/part-$n"
for f in $(ls -S "$out/all"); do   # first fit, largest first
  s=$(stat -c %s "$out/all/$f")
  if [ $((used + s)) -gt "$limit" ]; then n=$((n + 1)); used=0; mkdir -p "$out/part-$n"; fi
  mv "$out/all/$f" "$out/part-$n/"; used=$((used + s))
done
rmdir "$out/all"
for d in "$out"/part-*; do echo "$d $(du -sm "$d" | cut -f1) MiB: $(ls "$d" | wc -l) files"; done
echo "stage_wheels.sh: $n parts in $out; each travels in one call: see benchmarks/README.md"
