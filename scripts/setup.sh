#!/usr/bin/env bash
# Idempotent set-up on a fresh Debian/Ubuntu machine with Python 3.10+:
# Debian's Fashion-MNIST package, a virtual environment in .venv, the pinned
# requirements and lnl_core itself (editable). Needs only the package registries.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: the data set, Chromium for the book's browser check, npm for MathJax.
missing=()
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || missing+=(dataset-fashion-mnist)
command -v chromium >/dev/null || missing+=(chromium)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  echo "setup: installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
if ! .venv/bin/python -m pip install -q -r requirements.txt 2>/tmp/lnl-pip.log; then
  cat /tmp/lnl-pip.log >&2
  exit 1
fi
.venv/bin/python -m pip install -q --no-deps -e . 2>>/tmp/lnl-pip.log || {
  cat /tmp/lnl-pip.log >&2
  exit 1
}
echo "setup: ready ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
