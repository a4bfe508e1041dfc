"""The student edition: each chapter notebook with every solution removed.

    python scripts/student_edition.py            # write student/<chapter>.ipynb for every chapter
    python scripts/student_edition.py --check    # exit 1 if student/ differs from what the chapters give

Generated, never edited by hand. From ``notebooks/<chapter>.ipynb`` it keeps every code cell (the
same source, tags and cell ids; outputs cleared, so a student runs the chapter) and every markdown
cell with its ``{solution}`` blocks cut out; a markdown cell that held only solutions is dropped.
The exercises, their code stubs and the self-check stay, and the self-check reports "not attempted
yet" on the untouched stubs. A note after the title says where the file comes from. The output
depends only on the chapters, so running the command twice gives the same bytes; a test
regenerates the editions and compares them with the committed ones, and CI executes the committed
ones under nbval.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = ROOT / "notebooks"
STUDENT = ROOT / "student"
_OPEN = re.compile(r"^(`{3,}|:{3,})\{solution\}")

NOTE = (
    "**Student edition.** This notebook is generated from `notebooks/{stem}.ipynb` by "
    "`scripts/student_edition.py`, without the solutions (they are in the book). Run the cells in "
    "order; each exercise has a code stub to replace, and the self-check at the end reports "
    '"not attempted yet" until you do.'
)


def strip_solutions(text: str) -> str:
    """``text`` without its ``{solution}`` directive blocks (backtick or colon fences, closed by
    a fence of the same character at least as long)."""
    out, fence = [], None
    for line in text.split("\n"):
        if fence is None:
            m = _OPEN.match(line)
            if m:
                fence = m.group(1)
                continue
            out.append(line)
        elif re.fullmatch(re.escape(fence[0]) + f"{{{len(fence)},}}\\s*", line):
            fence = None
    if fence is not None:
        raise ValueError(f"unclosed {{solution}} block (fence {fence})")
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip("\n")


def student_notebook(chapter: Path) -> nbformat.NotebookNode:
    nb = nbformat.read(chapter, as_version=4)
    cells = []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            source = strip_solutions(cell.source)
            if not source.strip():
                continue
            cells.append(
                nbformat.v4.new_markdown_cell(source, metadata=dict(cell.metadata), id=cell.get("id"))
            )
        elif cell.cell_type == "code":
            cells.append(
                nbformat.v4.new_code_cell(cell.source, metadata=dict(cell.metadata), id=cell.get("id"))
            )
        else:
            cells.append(cell)
    note = nbformat.v4.new_markdown_cell(NOTE.format(stem=chapter.stem), id="student-edition-note")
    cells.insert(1, note)
    out = nbformat.v4.new_notebook(cells=cells, metadata=dict(nb.metadata))
    out.nbformat, out.nbformat_minor = nb.nbformat, nb.nbformat_minor
    return out


def render(chapter: Path) -> str:
    return nbformat.writes(student_notebook(chapter)) + "\n"


def chapters() -> list[Path]:
    return sorted(CHAPTERS.glob("*.ipynb"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="compare with student/ instead of writing")
    args = p.parse_args(argv)
    stale = []
    expected = {STUDENT / c.name: render(c) for c in chapters()}
    if args.check:
        present = set(STUDENT.glob("*.ipynb"))
        stale = [str(p) for p, text in expected.items() if not p.is_file() or p.read_text() != text]
        stale += [str(p) for p in present - set(expected)]
        for path in stale:
            print(f"stale: {path} (run python scripts/student_edition.py)", file=sys.stderr)
        return 1 if stale else 0
    STUDENT.mkdir(exist_ok=True)
    for path in set(STUDENT.glob("*.ipynb")) - set(expected):
        path.unlink()  # a chapter that no longer exists
    for path, text in expected.items():
        path.write_text(text)
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
