#!/usr/bin/env bash
# The main job: set up, then the reduced experiment (CE vs SCE under 50% symmetric noise on
# Fashion-MNIST, seed 0) with a table of the results (runs land in runs/), then the book
# (_build/html/index.html) from the notebooks' committed outputs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
for method in ce sce; do
  lnl run "$method" --dataset fashion_mnist --noise symmetric --rate 0.5 --seed 0 \
    --profile reduced --out "runs/$method-sym50-seed0" --overwrite
done
lnl table runs/ce-sym50-seed0 runs/sce-sym50-seed0
bash scripts/build_book.sh
echo "book: $PWD/_build/html/index.html"
