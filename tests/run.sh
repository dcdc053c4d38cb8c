#!/usr/bin/env bash
# The README's test command: install the test requirements (torch pinned to the CPU build
# 2.13.0) and the package (building the plugin), then run the test suite against the
# installed package.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q -r tests/requirements.txt
python -m pip install -q ".[torch,demo,test]"
pytest -q -p no:cacheprovider tests "$@"
