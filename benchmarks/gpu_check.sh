#!/usr/bin/env bash
# The GPU run, prepared: one stage per call of a short GPU lease, every step time-limited,
# every log under $OUT (default ./gpu-out), one summary line per step in $OUT/summary.txt.
#
#   bash benchmarks/gpu_check.sh kernels   # kernel_bench (nvcc only, no DALI) + compute-sanitizer
#                                          # memcheck on a quick subset of it
#   bash benchmarks/gpu_check.sh ncu       # ncu on the old and new kernel, main fused case
#                                          # (SpeedOfLight, MemoryWorkloadAnalysis, Occupancy)
#   bash benchmarks/gpu_check.sh dali      # needs DALI's wheels in $WHEELS (default /tmp/w;
#                                          # split pieces NAME.whl.piece-* are joined): install,
#                                          # build in place for sm_90, the GPU tests of FMix,
#                                          # ResizeMix, label maps, boxes, the segmentation
#                                          # pipelines and test_cpu_and_gpu_agree,
#                                          # profile_gpu.py,
#                                          # throughput.py --imagenet-sized, the 10,000-iteration
#                                          # GPU soak
#   DRY_RUN=1 bash benchmarks/gpu_check.sh STAGE   # without a GPU: builds what can be built,
#                                          # prints each GPU step's command instead of running it
#
# Order on a lease: kernels first (it needs nothing carried), then ncu, then dali as time allows.
# Timeouts per step: TIMEOUT_SCALE=2 doubles them.
set -uo pipefail
cd "$(dirname "$0")/.."
stage=${1:?"usage: gpu_check.sh kernels|ncu|dali"}
out=${OUT:-$PWD/gpu-out}
mkdir -p "$out"
summary=$out/summary.txt
py=${PYTHON:-python3}
dry=${DRY_RUN:-}
scale=${TIMEOUT_SCALE:-1}
say() { echo "[$stage] $*" | tee -a "$summary"; }
# step NAME SECONDS LOG CMD...: runs CMD with a time limit, its output in $out/LOG
step() {
  local name=$1 secs=$(($2 * scale)) log=$out/$3
  shift 3
  if [[ -n "$dry" ]]; then
    say "$name: dry run, would run (limit ${secs}s, log $(basename "$log")): $*"
    return 0
  fi
  local t0=$SECONDS
  timeout "$secs" "$@" > "$log" 2>&1
  local rc=$?
  say "$name (rc $rc, $((SECONDS - t0)) s): $(tail -1 "$log" | cut -c1-200)"
  return $rc
}

gpu_name() {
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -1
  else
    echo "no nvidia-smi"
  fi
}

build_bench() {
  local t0=$SECONDS
  if bash benchmarks/kernel_bench.sh --build-only > "$out/kernel_bench_build.log" 2>&1; then
    cp build/kernel_bench.registers.txt "$out/" 2>/dev/null
    say "kernel_bench build: ok ($((SECONDS - t0)) s); registers in kernel_bench.registers.txt"
  else
    say "FAIL: kernel_bench build (kernel_bench_build.log)"
    return 1
  fi
}

case "$stage" in
  kernels)
    say "gpu: $(gpu_name)"
    build_bench || exit 1
    step "kernel_bench" $((300)) kernel_bench.log build/kernel_bench --out "$out/kernel_gpu.json"
    if command -v compute-sanitizer >/dev/null || [[ -n "$dry" ]]; then
      step "memcheck (quick subset)" 240 memcheck.log compute-sanitizer --tool memcheck \
        --error-exitcode 9 build/kernel_bench --quick --check-only --batch 8 --batch 3
      [[ -z "$dry" ]] && say "memcheck: $(grep -m1 'ERROR SUMMARY' "$out/memcheck.log")"
    else
      say "memcheck: compute-sanitizer not found"
    fi
    ;;
  ncu)
    say "gpu: $(gpu_name)"
    [[ -x build/kernel_bench ]] || build_bench || exit 1
    # one configuration (fused uint8 -> float16 CHW, Mixup, batch mode, batch 256), one launch
    # of each kernel after warm-up; in that run the new kernel runs twice unprofiled first (the
    # normalise-only oracle, the bit-for-bit check), the old one once
    bench=(build/kernel_bench --case fused_u8_f16_chw --method mixup --mode batch --batch 256
           --reps 1 --no-variants --out "$out/ncu_bench.json")
    sections=(--clock-control none --section SpeedOfLight --section MemoryWorkloadAnalysis
              --section Occupancy)
    step "ncu old kernel" 240 ncu_old.txt ncu "${sections[@]}" -k regex:OldMixKernel \
      --launch-skip 2 --launch-count 1 "${bench[@]}"
    step "ncu new kernel" 240 ncu_new.txt ncu "${sections[@]}" -k regex:NewKernel \
      --launch-skip 3 --launch-count 1 "${bench[@]}"
    [[ -z "$dry" ]] && cat "$out/ncu_old.txt" "$out/ncu_new.txt" > "$out/ncu.txt" 2>/dev/null
    if [[ -z "$dry" && -f "$out/ncu.txt" ]]; then
      grep -E "OldMixKernel|NewKernel|DRAM Throughput|Memory Throughput|Duration|Achieved Occupancy|Registers Per" \
        "$out/ncu.txt" > "$out/ncu_summary.txt"
      say "ncu: $(wc -l < "$out/ncu_summary.txt") summary lines in ncu_summary.txt"
    fi
    ;;
  dali)
    say "gpu: $(gpu_name)"
    wheels=${WHEELS:-/tmp/w}
    if ! "$py" -c "import nvidia.dali" 2>/dev/null; then
      if [[ -n "$dry" ]]; then
        say "install: dry run, would join $wheels/*.whl.piece-* and pip install --no-index $wheels/*.whl"
      else
        (cd "$wheels" && for first in *.whl.piece-aa; do
           [ -e "$first" ] || continue
           whl=${first%.piece-aa}; cat "$whl".piece-* > "$whl" && rm -f "$whl".piece-*
         done) || { say "FAIL: no wheel folder $wheels"; exit 1; }
        step "install DALI wheels" 180 install.log "$py" -m pip install --no-index --no-deps \
          --no-cache-dir "$wheels"/*.whl || exit 1
      fi
    fi
    export DALI_MSDA_CUDA_ARCHS=${DALI_MSDA_CUDA_ARCHS:-90} PYTHONUNBUFFERED=1
    [ -e dali_msda/pipelines ] || ln -s ../pipelines dali_msda/pipelines
    step "build in place (sm_$DALI_MSDA_CUDA_ARCHS)" 420 build.log "$py" setup.py build_plugin \
      || exit 1
    export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
    gpu_tests="fmix or resizemix or agree or reference or fused or seg or classmix or boxes"
    step "GPU tests: FMix, ResizeMix, maps, boxes, seg. pipelines, the kernel, CPU == GPU" 420 \
      pytest_gpu.log "$py" -m pytest -q -p no:cacheprovider tests -x \
      -k "gpu and ($gpu_tests or segmentation)"
    step "profile_gpu.py" 240 profile_gpu.log "$py" benchmarks/profile_gpu.py --device gpu \
      --imagenet-sized --json "$out/profile_gpu.json"
    step "throughput.py --device gpu --imagenet-sized" 300 throughput.log "$py" \
      benchmarks/throughput.py --device gpu --imagenet-sized \
      --methods mixup cutmix gmix fmix resizemix --json "$out/throughput_gpu.json"
    step "soak, GPU, 10,000 iterations" 420 soak.log "$py" benchmarks/soak.py --device gpu \
      --iterations 10000 --json "$out/soak_gpu.json"
    ;;
  *)
    echo "gpu_check.sh: unknown stage '$stage' (kernels, ncu or dali)" >&2
    exit 2
    ;;
esac
