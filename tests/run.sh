#!/usr/bin/env bash
# The README's test command: install the package with its test extras (building the plugin),
# then run the test suite against the installed package.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q ".[test]"
pytest -q -p no:cacheprovider tests "$@"
