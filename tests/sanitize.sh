#!/usr/bin/env bash
# The CPU backend under AddressSanitizer and UndefinedBehaviorSanitizer: builds the plugin's host
# C++ with -fsanitize=address,undefined (setup.py, DALI_MSDA_SANITIZE=1) in a copy of this
# checkout, then runs the test files that drive the op on the CPU against that build, the
# sanitizers' runtime preloaded. Any report (an out-of-bounds access, a use after free,
# undefined behaviour such as a signed overflow or a misaligned load) fails the run and is
# printed. CI runs it after the README's test command; needs git, g++ and nvcc (the .cu files
# are compiled too, for sm_75 only unless DALI_MSDA_CUDA_ARCHS says otherwise, and are not
# instrumented: their host code is the GPU op's, which no CPU test runs).
#   bash tests/sanitize.sh                 # the default selection
#   bash tests/sanitize.sh tests/test_fmix_op.py -k elem    # pytest arguments instead
# The checkout and its build are left as they are.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python}
work=$(mktemp -d "${TMPDIR:-/tmp}/dali-msda-sanitize.XXXXXX")
trap 'rm -rf "$work"' EXIT

asan=$(g++ -print-file-name=libasan.so)
stdcxx=$(g++ -print-file-name=libstdc++.so.6)  # loaded first too, or ASan cannot intercept throws
for lib in "$asan" "$stdcxx"; do
  if [ ! -e "$lib" ]; then
    echo "== sanitize: g++ has no $(basename "$lib") (AddressSanitizer's runtime, e.g. Debian's" \
         "libasan8 package, comes with gcc's libgcc-dev)" >&2
    exit 1
  fi
done

# the checkout's files as they are now (tracked and new, not ignored ones: no build, no venv)
git ls-files -z --cached --others --exclude-standard \
  | while IFS= read -r -d '' f; do
      if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\0' "$f"; fi
    done \
  | xargs -0 cp -P --parents -t "$work"
echo "== sanitize: building the plugin with DALI_MSDA_SANITIZE=1 in $work"
if ! (cd "$work" && DALI_MSDA_SANITIZE=1 DALI_MSDA_CUDA_ARCHS="${DALI_MSDA_CUDA_ARCHS:-75}" \
        "$python" setup.py build_plugin > "$work/build.log" 2>&1); then
  tail -n 40 "$work/build.log" >&2
  echo "== sanitize: the sanitizer build failed (above)" >&2
  exit 1
fi
grep -E "dali-msda build\] (DALI_MSDA_SANITIZE|built)" "$work/build.log" || true

# The harness libraries the tests compile (test_row_loops: the CPU row loops called directly)
# are instrumented too (DALI_MSDA_SANITIZE, conftest.build_test_library). Left out: the files
# that build plugins of their own (test_build, test_mutants), the kernel's emulation (its
# harness checks every access against the buffers' bounds itself, and takes about 9 minutes
# under the sanitizers) and the checkpoint tests that kill trainers (minutes under the
# sanitizers, no op code that the other files do not run).
tests=("$@")
if [ ${#tests[@]} -eq 0 ]; then
  tests=(tests --ignore=tests/test_build.py --ignore=tests/test_mutants.py
         --ignore=tests/test_kernel_emulation.py --ignore=tests/test_checkpoint.py)
fi

# DALI finds nvImageCodec through the loader's search path of its own library, which a
# preloaded ASan hides: name the wheel's folder
codec=$("$python" -c "import nvidia.nvimgcodec as m; print(list(m.__path__)[0])" 2>/dev/null \
        || true)
# DALI's headers bind a reference to element 0 of an empty shape vector (TensorListShape<0>,
# never read): not ours, suppressed by file
printf 'null:dali/core/tensor_shape.h\n' > "$work/ubsan.supp"
status=0
(
  cd "$work"
  export DALI_MSDA_SANITIZE=1 LD_PRELOAD="$asan $stdcxx"
  export LD_LIBRARY_PATH="$codec${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  # handle_segv=0: a SIGSEGV stays a crash, not a report: DALI 2.4's CPU image decoder can
  # crash its process after a failed batch, which the scan's workers are there to absorb (and
  # one scan test crashes a worker on purpose); the sanitizers' checks of every access do not
  # need the handler, and a crash in our code still fails its test
  export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:handle_segv=0:log_path=$work/report"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=0:log_path=$work/report"
  UBSAN_OPTIONS+=":suppressions=$work/ubsan.supp"
  "$python" -m pytest -q -p no:cacheprovider "${tests[@]}"
) || status=$?
reports=("$work"/report.*)
if [ -e "${reports[0]}" ]; then
  echo "== sanitize: ${#reports[@]} sanitizer report(s):" >&2
  head -n 60 "${reports[@]}" >&2
  status=1
fi
[ "$status" -eq 0 ] && echo "== sanitize: no sanitizer report, tests passed"
exit "$status"
