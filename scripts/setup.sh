#!/usr/bin/env bash
# Idempotent set-up on a fresh Debian/Ubuntu machine with Python 3.10+; needs only the package
# registries (Debian, PyPI, npm). Two modes:
#   main (default)  what scripts/main.sh uses: Debian's Fashion-MNIST and npm (the book build
#                   fetches MathJax with it), a virtual environment in .venv with the pinned
#                   requirements.txt, and lnl_core itself (editable)
#   test            main's, plus Chromium (the built book's browser check) and
#                   requirements-test.txt (pytest, Hypothesis, ruff, nbval, Playwright)
# Each step says what it does first; pip and apt print only warnings and errors.
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-main}"
case "$mode" in
  main) requirements=requirements.txt ;;
  test) requirements=requirements-test.txt ;;
  *) echo "usage: scripts/setup.sh [main|test]" >&2; exit 2 ;;
esac
say() { echo "setup ($mode): $*"; }

apt_install() {  # quiet apt-get install; its output is shown only when it fails
  local log
  log=$(mktemp)
  if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@"; } >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    exit 1
  fi
  rm -f "$log"
}
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# Debian packages
missing=()
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || missing+=(dataset-fashion-mnist)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages ${missing[*]} with apt (about 100 MB, a minute or two)..."
  apt_install --no-install-recommends "${missing[@]}"
fi
if [ "$mode" = test ] && ! command -v chromium >/dev/null; then
  say "installing Chromium with apt, for the book's browser check (about 300 MB, a minute or two)..."
  apt_install chromium
fi

# Python: the virtual environment, the pinned packages, lnl_core
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  say "creating the virtual environment .venv with $("$PY" --version)..."
  "$PY" -m venv .venv
fi
pip_flags=(-q --disable-pip-version-check)
[ -t 1 ] || pip_flags+=(--progress-bar off)
export PIP_ROOT_USER_ACTION=ignore  # no warning about pip as root (a container); older pips ignore it
if .venv/bin/python -c "import torch" 2>/dev/null; then
  say "checking .venv against $requirements (seconds when nothing is missing)..."
else
  say "installing PyTorch, the chapters' libraries and the book tools from PyPI into .venv" \
    "($requirements; about 3 GB, a few minutes)..."
fi
.venv/bin/python -m pip install "${pip_flags[@]}" -r "$requirements"
here=$(pwd -P)
installed=$(cd / && "$here/.venv/bin/python" -c 'import os, lnl_core; print(os.path.dirname(os.path.dirname(os.path.realpath(lnl_core.__file__))))' 2>/dev/null || true)
if [ "$installed" != "$here" ]; then
  say "installing lnl_core from this checkout into .venv (editable)..."
  .venv/bin/python -m pip install "${pip_flags[@]}" --no-deps -e .
fi
say "ready: $(.venv/bin/python -c 'import sys, torch; print(f"Python {sys.version.split()[0]}, torch {torch.__version__}")')"
