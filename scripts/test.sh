#!/usr/bin/env bash
# The test job (CI runs exactly this): set up, then every check, each timed against its budget;
# a table of the times ends the log, also when a step fails. Every step runs even when an earlier
# one failed (set-up excepted), so one log shows every failure; the exit status is 1 if any did.
#
# Order: lint, unit tests, the benchmark store's re-runs (lnl verify), the notebooks, the book.
# Within this one run, identical training runs are trained once: LNL_RUN_CACHE (lnl_core.cache)
# keeps every finished run, keyed by its config, the source code and the thread count, in
# .cache/runs, emptied first, so every number is still produced by the code under test. The store
# check goes before the notebooks so that the chapters find the cells it re-ran (scripts/ci_cells.txt).
set -uo pipefail
cd "$(dirname "$0")/.."

names=() secs=() budgets=() results=()
failed=0
t_all=$(date +%s)

table() {
  local total=$(( $(date +%s) - t_all ))
  echo
  echo "== time table (seconds, against budgets on the CI machine)"
  printf '%-34s %7s %7s  %s\n' "step" "time" "budget" "result"
  local i
  for i in "${!names[@]}"; do
    printf '%-34s %7s %7s  %s\n' "${names[$i]}" "${secs[$i]}" "${budgets[$i]}" "${results[$i]}"
  done
  printf '%-34s %7s %7s  %s\n' "total" "$total" 1800 "$([ "$total" -le 1800 ] && echo ok || echo OVER BUDGET)"
}
trap table EXIT

# step NAME BUDGET COMMAND...: run, time and record one check
step() {
  local name=$1 budget=$2 t rc result
  shift 2
  echo "== $name"
  t=$(date +%s)
  "$@"
  rc=$?
  t=$(( $(date +%s) - t ))
  if [ "$rc" -ne 0 ]; then
    result="FAILED (exit $rc)"
    failed=1
  elif [ "$t" -gt "$budget" ]; then
    result="passed, over budget"
  else
    result="passed"
  fi
  names+=("$name") secs+=("$t") budgets+=("$budget") results+=("$result")
  echo "$name: $t s (budget $budget s), $result"
  return "$rc"
}

step "set-up" 300 bash scripts/setup.sh test || exit 1
export PATH="$PWD/.venv/bin:$PATH"  # the notebooks' kernel is the venv's python
export LNL_RUN_CACHE="$PWD/.cache/runs"
rm -rf "$LNL_RUN_CACHE"

lint() {
  ruff check lnl_core tests benchmarks scripts book/_ext notebooks student book/own-data.ipynb &&
    ruff format --check lnl_core tests benchmarks scripts book/_ext
}
step "lint (ruff)" 60 lint

# the 20 slowest tests are listed at the end of pytest's output
step "unit tests" 480 python -m pytest -q -p no:cacheprovider -m "not book" --durations=20 tests

# one cell per method of every committed grid, and every noise setting and seed among them,
# re-run: histories bit-identical on a CPU kind on record (lnl verify)
store() {
  local grid
  for grid in $(python scripts/ci_cells.py --grids); do
    python -m lnl_core verify "$grid" --cells $(python scripts/ci_cells.py "$grid") || return 1
  done
}
step "store check (lnl verify)" 420 store

# student/ holds each chapter with its solutions removed; its code cells are the chapter's, cell for
# cell (tests/test_student_edition.py), so executing the student editions executes every chapter's
# code with the stubs untouched; one pytest per notebook, each against its 5-minute budget
step "student editions up to date" 30 python scripts/student_edition.py --check
for nb in student/*.ipynb book/own-data.ipynb book/calibration.ipynb; do
  [ -f "$nb" ] || continue
  step "$nb" 300 env LNL_PROFILE=reduced python -m pytest -q -p no:cacheprovider --nbval-lax "$nb"
done

step "book build" 120 bash scripts/build_book.sh &&
  step "browser and static book checks" 120 python -m pytest -q -p no:cacheprovider -m book tests/book

exit "$failed"
