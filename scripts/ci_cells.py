"""The cells of the committed benchmark grids that CI re-runs with ``lnl verify`` (scripts/test.sh).

One cell per method of every committed grid, and among them every noise setting and every seed,
so that a number the code no longer produces fails CI whatever the method, setting or seed. Which
cell a method gets is chosen for the run cache: the expensive methods get the cell their chapter
trains (seed 0, the chapter's setting), so the chapter, which runs after the store check, loads it
instead of training it again; the cheap ones cover the other seeds and settings.
``tests/test_ci_cells.py`` checks the coverage against the committed grids.

    python scripts/ci_cells.py --grids                 # the committed grids, one per line
    python scripts/ci_cells.py benchmarks/results/reduced   # that grid's cells, space-separated
"""

from __future__ import annotations

import sys

CELLS = {
    "benchmarks/results/reduced": [
        "ce/symmetric-0.50/seed0",  # chapters 1 and 2
        "ce+augment=weak/symmetric-0.50/seed0",  # the strong baseline of every method chapter
        "ce+augment=flip/symmetric-0.50/seed0",  # chapters 1, 2 and 4 (the views' control)
        "gce/none-0.00/seed0",  # chapter 1
        "sce/symmetric-0.80/seed1",
        "pemm/asymmetric-0.40/seed2",  # (chapter 3 trains PEMM on other noise)
        "dividemix/symmetric-0.50/seed0",  # chapters 2, 5 and 6
        "dividemix-pe/symmetric-0.50/seed0",  # chapter 3
        "cpc/symmetric-0.50/seed0",  # chapter 5
        "plremix/symmetric-0.50/seed0",  # chapter 6
        "flywheel/symmetric-0.50/seed0",  # chapter 7
        "pmnar/symmetric-0.50/seed0",  # chapter 4
    ],
}


def main(argv: list[str]) -> int:
    if argv == ["--grids"]:
        print("\n".join(CELLS))
        return 0
    if len(argv) == 1 and argv[0].rstrip("/") in CELLS:
        print(" ".join(CELLS[argv[0].rstrip("/")]))
        return 0
    print("usage: python scripts/ci_cells.py --grids | GRID", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
