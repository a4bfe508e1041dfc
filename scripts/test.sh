#!/usr/bin/env bash
# The test job (CI runs exactly this): set up, then the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
start=$(date +%s)
.venv/bin/ruff check lnl_core tests benchmarks scripts book/_ext
.venv/bin/ruff format --check lnl_core tests benchmarks scripts book/_ext
export PATH="$PWD/.venv/bin:$PATH"  # the notebooks' kernel is the venv's python
echo "== unit tests"
python -m pytest -q -p no:cacheprovider -m "not book" tests
echo "== benchmark store: one cell per method re-run, histories bit-identical on a CPU kind on record (lnl verify)"
t=$(date +%s)
python -m lnl_core verify benchmarks/results/reduced
python -m lnl_core verify benchmarks/results/reduced-clean
echo "store check took $(( $(date +%s) - t )) s"
echo "== notebooks under nbval (reduced profile): the student editions, stubs untouched, and the page \"Your own data\""
# student/ holds each chapter with its solutions removed; its code cells are the chapter's, cell for
# cell (tests/test_student_edition.py), so executing the student editions executes every chapter's code
python scripts/student_edition.py --check
# one pytest per notebook, so that each one's time can be read against its 5-minute budget
t=$(date +%s)
failed=()
for nb in student/*.ipynb book/own-data.ipynb; do
  t_nb=$(date +%s)
  LNL_PROFILE=reduced python -m pytest -q -p no:cacheprovider --nbval-lax "$nb" || failed+=("$nb")
  echo "$nb took $(( $(date +%s) - t_nb )) s (budget 300 s)"
done
echo "notebooks took $(( $(date +%s) - t )) s"
if [ ${#failed[@]} -gt 0 ]; then
  echo "notebooks that failed: ${failed[*]}"
  exit 1
fi
echo "== book build and browser check"
bash scripts/build_book.sh
python -m pytest -q -p no:cacheprovider -m book tests/book
echo "tests took $(( $(date +%s) - start )) s"
