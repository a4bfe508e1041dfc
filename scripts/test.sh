#!/usr/bin/env bash
# The test job (CI runs exactly this): set up, then the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
start=$(date +%s)
.venv/bin/ruff check lnl_core tests benchmarks
.venv/bin/ruff format --check lnl_core tests benchmarks
.venv/bin/python -m pytest -q -p no:cacheprovider tests "$@"
echo "tests took $(( $(date +%s) - start )) s"
