#!/usr/bin/env bash
# The main job: set up (scripts/setup.sh main: no browser, no test tools), then the reduced
# experiment (CE vs SCE under 50% symmetric noise on Fashion-MNIST, seed 0) with a table of the
# results (runs land in runs/), then the book (_build/html/index.html) from the notebooks'
# committed outputs. Each step says what it does first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh main
export PATH="$PWD/.venv/bin:$PATH"
echo "main: CE and SCE, reduced profile (4,000 Fashion-MNIST images, 30 epochs; about half a minute each on 2 CPU cores)..."
for method in ce sce; do
  lnl run "$method" --dataset fashion_mnist --noise symmetric --rate 0.5 --seed 0 \
    --profile reduced --out "runs/$method-sym50-seed0" --overwrite
done
echo "main: the results side by side"
lnl table runs/ce-sym50-seed0 runs/sce-sym50-seed0
echo "main: building the book from the notebooks' committed outputs (about a minute)..."
bash scripts/build_book.sh
echo "book: $PWD/_build/html/index.html"
