"""Execute chapter notebooks in place with the reduced profile: the project's own execute
command, whose outputs are committed and shown by the book.

    python scripts/execute_notebooks.py                 # every notebook in notebooks/
    python scripts/execute_notebooks.py notebooks/01_noisy_labels.ipynb

Cells run in the notebook's directory with LNL_PROFILE=reduced; the time per notebook is
printed. A notebook that raises is not written back.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


def execute(path: Path) -> float:
    nb = nbformat.read(path, as_version=4)
    os.environ["LNL_PROFILE"] = "reduced"
    client = NotebookClient(
        nb, timeout=1200, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    start = time.perf_counter()
    client.execute()
    elapsed = time.perf_counter() - start
    for cell in nb.cells:  # execution timestamps would make every run a diff
        cell.get("metadata", {}).pop("execution", None)
    nbformat.write(nb, path)
    return elapsed


def main(argv: list[str]) -> int:
    paths = [Path(a) for a in argv] or sorted((ROOT / "notebooks").glob("*.ipynb"))
    for path in paths:
        print(f"executing {path} ...", flush=True)
        print(f"  {execute(path):.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
