#!/usr/bin/env bash
# The GPU check (benchmarks/gpu_check.py, described in benchmarks/README.md): every registered
# method's full profile timed on CIFAR-shaped synthetic data, under bf16 autocast + channels-last
# and under float32, on one CUDA GPU in under 10 minutes; writes benchmarks/results/gpu-<gpu>.json.
# Uses .venv's Python where there is one (else python3, as on Colab); options: --help.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=python3
if [ -x .venv/bin/python ]; then PY=.venv/bin/python; fi
exec "$PY" benchmarks/gpu_check.py "$@"
