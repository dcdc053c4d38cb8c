#!/usr/bin/env bash
# The GPU run, prepared: what one short lease of a GPU machine (15 minutes of machine time in
# all, starts included; at most 600 s and 8 returned files a call; 64 MiB carried a call, the
# working tree included; no registry) does, call by call. Everything is built HERE first, so that
# the machine's minutes go to measuring. The exact calls are in benchmarks/README.md ("The GPU
# lease, call by call").
#
#   bash benchmarks/gpu_check.sh prepare   # here (CPU): kernel_bench and the plugin for sm_90,
#                                          # the DALI wheel parts; then a dry run of every stage
#   bash benchmarks/gpu_check.sh kernels   # call 1 (carry build/kernel_bench; no DALI):
#                                          # kernel_bench (old, new, copy, normalise-only;
#                                          # bit for bit on the device; batch 64 and 256; every
#                                          # method, both modes, the four cases), compute-
#                                          # sanitizer memcheck and racecheck of a quick
#                                          # subset, ncu of the main case (old and new kernel)
#   bash benchmarks/gpu_check.sh wheels    # calls 2..K+1 (carry .device-wheels/part-k, one
#                                          # each, back to back): lists what has arrived
#   bash benchmarks/gpu_check.sh tests     # call K+2 (carry build/device): DALI installed from
#                                          # the parts, the plugin built here put in place, the
#                                          # GPU tests of every method, mode, dtype and layout,
#                                          # label maps, ClassMix, boxes, the segmentation
#                                          # pipelines, CPU == GPU; memcheck of the GPU
#                                          # reference tests
#   bash benchmarks/gpu_check.sh bench     # call K+3: op_cost (fused op vs crop_mirror_normalize
#                                          # vs CMN + mix, label maps and ClassMix, batch 256),
#                                          # throughput.py --imagenet-sized (mixing vs none)
#   DRY_RUN=1 bash benchmarks/gpu_check.sh kernels|wheels|tests|bench
#                                          # without a GPU: checks what the stage needs is here
#                                          # (carried files built from today's sources, the test
#                                          # selection collects, the scripts take their
#                                          # arguments) and prints each step instead of running it
#
# Each step has its own time limit (the stage's limits add up to its call's timeout, below 600 s);
# logs go to $OUT (default ./gpu-out) and come back in one tarball, logs-STAGE.tar.gz, beside
# summary.txt (one line per step) and the stage's JSON: at most 8 files a call. The exit status
# is 0 when every step passed (a dry run: when every check passed), else 1.
set -uo pipefail
cd "$(dirname "$0")/.."
stage=${1:?"usage: gpu_check.sh prepare|kernels|wheels|tests|bench"}
out=${OUT:-$PWD/gpu-out}
mkdir -p "$out"
summary=$out/summary.txt
logs=$out/logs
mkdir -p "$logs"
py=${PYTHON:-python3}
dry=${DRY_RUN:-}
failures=0
WHEELS=.device-wheels
DEVICE_BUILD=build/device  # the plugin built here for sm_90, carried to the tests call
ARCH=90
say() { echo "[$stage] $*" | tee -a "$summary"; }
fail() { say "FAIL: $*"; failures=$((failures + 1)); }
# step NAME SECONDS LOG CMD...: CMD with a time limit, its output in $logs/LOG
step() {
  local name=$1 secs=$2 log=$logs/$3
  shift 3
  if [[ -n "$dry" ]]; then
    say "$name: would run (limit ${secs} s, log $(basename "$log")): $*"
    return 0
  fi
  local t0=$SECONDS
  timeout "$secs" "$@" > "$log" 2>&1
  local rc=$?
  say "$name (rc $rc, $((SECONDS - t0)) s): $(tail -1 "$log" | cut -c1-200)"
  [[ $rc -eq 0 ]] || failures=$((failures + 1))
  return $rc
}
finish() {
  if [[ -z "$dry" ]]; then
    tar czf "$out/logs-$stage.tar.gz" -C "$out" logs 2>/dev/null && rm -rf "$logs"
  fi
  say "done: $failures failed"
  [[ $failures -eq 0 ]] && exit 0 || exit 1
}
gpu_name() {
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -1
  else
    echo "no nvidia-smi"
  fi
}
# newer than every source it is built from
fresh() {
  local built=$1
  shift
  [[ -f "$built" ]] && [[ -z "$(find "$@" -newer "$built" -type f 2>/dev/null | head -1)" ]]
}
need() {  # need FILE WHAT: a carried file must be here (dry run) / have arrived (lease)
  [[ -e "$1" ]] || { fail "$1 missing ($2)"; return 1; }
}
KERNEL_SOURCES=(dali_msda/csrc/mix benchmarks/kernel_bench.cu benchmarks/old_kernel.cuh)
# every test with a GPU case but the property-based ones (GPU_TESTS=... narrows it for a rerun)
GPU_TESTS=${GPU_TESTS:-"gpu and not fuzz"}
SANITIZED_TESTS="gpu and (agree or odd_and_tiny)"  # CPU == GPU, odd and tiny batches

case "$stage" in
  prepare)
    if ! "$py" -c "import nvidia.dali, torch" > "$logs/prepare_env.log" 2>&1; then
      fail "$py cannot import nvidia.dali and torch: run prepare in the environment of \
\`pip install \".[torch,demo,test]\"\` (or set PYTHON); $(tail -1 "$logs/prepare_env.log")"
      dry=1 finish
    fi
    bash benchmarks/kernel_bench.sh --build-only > "$logs/kernel_bench_build.log" 2>&1 \
      || fail "kernel_bench build (see $logs/kernel_bench_build.log)"
    say "kernel_bench (sm_$ARCH): $(stat -c %s build/kernel_bench 2>/dev/null) bytes"
    if ! fresh "$DEVICE_BUILD/libdali_msda.so" dali_msda/csrc setup.py; then
      DALI_MSDA_CUDA_ARCHS=$ARCH "$py" -c "import sys; sys.path.insert(0, '.'); import setup; \
setup.build_plugin('$DEVICE_BUILD')" > "$logs/plugin_build.log" 2>&1 \
        || fail "plugin build for sm_$ARCH (see $logs/plugin_build.log)"
    fi
    say "plugin (sm_$ARCH): $(stat -c %s "$DEVICE_BUILD/libdali_msda.so" 2>/dev/null) bytes"
    if ! ls "$WHEELS"/part-* >/dev/null 2>&1; then
      bash benchmarks/stage_wheels.sh "$WHEELS" 56 > "$logs/stage_wheels.log" 2>&1 \
        || fail "stage_wheels.sh (see $logs/stage_wheels.log)"
    fi
    for s in kernels wheels tests bench; do
      DRY_RUN=1 OUT="$out" bash "$0" "$s" || failures=$((failures + 1))
    done
    dry=1 finish
    ;;
  kernels)  # call 1: limits 80 + 20 + 20 + 2 x 20 = 160 s
    say "gpu: $(gpu_name)"
    need build/kernel_bench "bash benchmarks/gpu_check.sh prepare builds it; carry it"
    if [[ -n "$dry" ]] && ! fresh build/kernel_bench "${KERNEL_SOURCES[@]}"; then
      fail "build/kernel_bench is older than the kernel's sources: run prepare again"
    fi
    step "kernel_bench, batch 64 and 256" 80 kernel_bench.log build/kernel_bench \
      --batch 64 --batch 256 --out "$out/kernel_gpu.json"
    for tool in memcheck racecheck; do
      step "compute-sanitizer $tool (quick subset, checks only)" 20 "$tool.log" \
        compute-sanitizer --tool "$tool" --error-exitcode 9 build/kernel_bench --quick \
        --check-only --batch 8 --batch 3
    done
    # one configuration (fused uint8 -> float16 CHW, Mixup, batch mode, batch 256): one launch
    # of each kernel after its unprofiled runs (new: the normalise-only oracle, the bit-for-bit
    # check; old: the check), with what tells a memory limit from an issue or latency limit
    bench=(build/kernel_bench --case fused_u8_f16_chw --method mixup --mode batch --batch 256
           --reps 1 --no-variants --out "$logs/ncu_bench.json")
    sections=(--clock-control none --section SpeedOfLight --section MemoryWorkloadAnalysis
              --section Occupancy --section WarpStateStats --section SchedulerStats
              --section ComputeWorkloadAnalysis --section LaunchStats)
    step "ncu old kernel" 20 ncu_old.txt ncu "${sections[@]}" -k regex:OldMixKernel \
      --launch-skip 2 --launch-count 1 "${bench[@]}"
    step "ncu new kernel" 20 ncu_new.txt ncu "${sections[@]}" -k regex:NewKernel \
      --launch-skip 3 --launch-count 1 "${bench[@]}"
    if [[ -z "$dry" ]]; then
      cat "$logs/ncu_old.txt" "$logs/ncu_new.txt" > "$out/ncu.txt" 2>/dev/null
      say "ncu: $(grep -cE 'Duration|DRAM Throughput|Issue Slots Busy|No Eligible' \
        "$out/ncu.txt") key lines in ncu.txt"
    fi
    finish
    ;;
  wheels)  # calls 2..K+1: each carries one part; the parts stay on the warm machine
    if [[ -n "$dry" ]]; then
      tree=$(git ls-files -z | du -cb --files0-from=- | tail -1 | cut -f1)
      n=0
      for d in "$WHEELS"/part-*; do
        [[ -d "$d" ]] || continue
        n=$((n + 1))
        size=$(du -sb "$d" | cut -f1)
        total=$(( (size + tree) / 1048576 ))
        if (( size + tree > 64 * 1048576 )); then
          fail "$d: $total MiB with the working tree (limit 64)"
        else
          say "$d: $total MiB with the working tree: carry it in its own call"
        fi
      done
      (( n > 0 )) || fail "no wheel parts in $WHEELS (bash benchmarks/stage_wheels.sh)"
    else
      say "arrived: $(ls -d "$WHEELS"/part-* 2>/dev/null | tr '\n' ' ')"
      say "$(du -shc "$WHEELS"/part-* 2>/dev/null | tail -1)"
    fi
    finish
    ;;
  tests)  # call K+2: limits 40 + 170 + 45 = 255 s
    say "gpu: $(gpu_name)"
    need "$DEVICE_BUILD/libdali_msda.so" "prepare builds it; carry $DEVICE_BUILD" || finish
    if [[ -n "$dry" ]]; then
      fresh "$DEVICE_BUILD/libdali_msda.so" dali_msda/csrc setup.py \
        || fail "$DEVICE_BUILD is older than the sources: run prepare again"
      grep -q "CUDA_ARCHS = \['$ARCH'\]" "$DEVICE_BUILD/_build_info.py" \
        || fail "$DEVICE_BUILD not built for sm_$ARCH alone"
      for w in nvidia_dali_cuda130 hypothesis sortedcontainers attrs; do
        ls "$WHEELS"/part-*/"$w"-* >/dev/null 2>&1 \
          || fail "no $w wheel (pieces) in $WHEELS/part-* (bash benchmarks/stage_wheels.sh)"
      done
      for sel in "$GPU_TESTS" "$SANITIZED_TESTS"; do
        got=$("$py" -m pytest --collect-only -q -p no:cacheprovider tests -k "$sel" 2>&1 \
          | grep -oE '^[0-9]+(/[0-9]+)? tests? collected' | cut -d' ' -f1 | cut -d/ -f1)
        if [[ -n "$got" && "$got" -gt 0 ]]; then
          say "selection '$sel': $got tests collected here (skipped without a GPU)"
        else
          fail "selection '$sel' collects nothing"
        fi
      done
    elif ! "$py" -c "import nvidia.dali" 2>/dev/null; then
      mkdir -p /tmp/wheels && cp "$WHEELS"/part-*/* /tmp/wheels/ \
        && (cd /tmp/wheels && for first in *.whl.piece-aa; do
              [ -e "$first" ] || continue
              whl=${first%.piece-aa}; cat "$whl".piece-* > "$whl" && rm -f "$whl".piece-*
            done)
      step "install DALI and the test requirements from the parts" 40 install.log \
        "$py" -m pip install --no-index --no-deps --no-cache-dir /tmp/wheels/*.whl || finish
    fi
    # the plugin built here for sm_90, in place; pipelines/ reachable as dali_msda.pipelines
    [[ -n "$dry" ]] || cp "$DEVICE_BUILD/libdali_msda.so" "$DEVICE_BUILD/_build_info.py" dali_msda/
    [ -e dali_msda/pipelines ] || [[ -n "$dry" ]] || ln -s ../pipelines dali_msda/pipelines
    export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
    step "GPU tests (methods, modes, dtypes, layouts, maps, ClassMix, boxes, CPU == GPU)" \
      170 pytest_gpu.log "$py" -m pytest -q -p no:cacheprovider tests -k "$GPU_TESTS" \
      --junitxml="$out/junit_gpu.xml"
    step "compute-sanitizer memcheck: CPU == GPU, odd and tiny batches" 45 memcheck_op.log \
      compute-sanitizer --tool memcheck --error-exitcode 9 "$py" -m pytest -q \
      -p no:cacheprovider tests -k "$SANITIZED_TESTS" -x
    finish
    ;;
  bench)  # call K+3: limits 70 + 50 + 10 + 25 = 155 s
    say "gpu: $(gpu_name)"
    export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
    op_cost=(benchmarks/op_cost.py --device gpu --batch 256 --dtypes fused seg
             --methods mixup cutmix --json "$out/op_cost_gpu.json")  # seg adds ClassMix
    throughput=(benchmarks/throughput.py --device gpu --imagenet-sized --methods mixup cutmix
                --json "$out/throughput_gpu.json")
    ce_cost=(benchmarks/ce_cost.py --device cuda --out "$out/ce_cost_gpu.json")
    loop_cost=(benchmarks/loop_cost.py --device cuda --batch 256 --out "$out/loop_cost_gpu.json")
    if [[ -n "$dry" ]]; then  # the scripts take these arguments
      for cmd in "op_cost" "throughput" "ce_cost" "loop_cost"; do
        declare -n args=$cmd
        help=$("$py" "${args[0]}" --help 2>&1)
        for a in "${args[@]:1}"; do
          [[ "$a" == --* ]] || continue
          grep -q -- "$a" <<< "$help" || fail "${args[0]} has no $a"
        done
      done
    fi
    step "op_cost: fused op vs CMN vs CMN + mix; label maps, ClassMix (batch 256)" 70 \
      op_cost.log "$py" "${op_cost[@]}"
    step "throughput --imagenet-sized: the pipeline with mixing vs without" 50 \
      throughput.log "$py" "${throughput[@]}"
    step "ce_cost: the loss with dense vs index targets (K 1,000 and 21,843)" 10 \
      ce_cost.log "$py" "${ce_cost[@]}"
    step "loop_cost: Mixer on CUDA tensors vs timm's Mixup in the loop (batch 256)" 25 \
      loop_cost.log "$py" "${loop_cost[@]}"
    finish
    ;;
  *)
    echo "gpu_check.sh: unknown stage '$stage' (prepare, kernels, wheels, tests or bench)" >&2
    exit 2
    ;;
esac
