#!/usr/bin/env bash
# The README's test command: installs what the tests need and the package (building the
# plugin), then runs the test suite against the installed package.
# torch: an importable torch is left as it is; only when there is none does this install one,
# the CPU-only build (the tests need no CUDA torch).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! python -c "import torch" 2>/dev/null; then
  echo "tests/run.sh: no torch importable; installing the CPU-only build:" \
       "pip install torch --index-url https://download.pytorch.org/whl/cpu"
  # (one retry: where that index cannot be reached, pip's other sources are tried at once)
  python -m pip install -q --retries 1 torch --index-url https://download.pytorch.org/whl/cpu || {
    echo "tests/run.sh: installing torch failed; install the torch you want" \
         "(https://pytorch.org/get-started/locally/), then run this again." >&2
    exit 1
  }
fi
python -m pip install -q -r tests/requirements.txt
python -m pip install -q ".[demo,test]"   # not .[torch]: the torch above stays
pytest -q -p no:cacheprovider tests "$@"
