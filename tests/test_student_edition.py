"""The student edition (scripts/student_edition.py): what it keeps, what it removes, and that the
committed files are exactly what the chapters give."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("student_edition", ROOT / "scripts" / "student_edition.py")
edition = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(edition)

CHAPTERS = edition.chapters()


def _solution_blocks(nb) -> list[str]:
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    return re.findall(r"^````\{solution\}.*?\n(.*?)^````\s*$", text, re.M | re.S)


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_committed_edition_is_what_the_chapter_gives(chapter):
    assert (edition.STUDENT / chapter.name).read_text() == edition.render(chapter), (
        "student/ is stale: run python scripts/student_edition.py"
    )
    assert edition.render(chapter) == edition.render(chapter)  # deterministic


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_no_solution_survives_and_every_exercise_and_code_cell_does(chapter):
    nb = nbformat.read(chapter, as_version=4)
    student = nbformat.read(edition.STUDENT / chapter.name, as_version=4)
    text = "\n".join(c.source for c in student.cells)
    blocks = _solution_blocks(nb)
    assert len(blocks) == sum(c.source.count("{solution}") for c in nb.cells) > 0
    assert "{solution}" not in text
    chapter_code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    for block in blocks:  # no line of a solution is left, unless the chapter's own code has it
        lines = [
            ln.strip() for ln in block.splitlines() if len(ln.strip()) > 25 and ln.strip() not in chapter_code
        ]
        leaked = [ln for ln in lines if ln in text]
        assert not leaked, leaked
    exercises = re.findall(r"\{exercise\}[^\n]*\n:label: (\S+)", "\n".join(c.source for c in nb.cells))
    assert exercises and all(f":label: {label}" in text for label in exercises)
    # the code is the chapter's, cell for cell, without outputs: executing the edition executes the chapter
    code = [c for c in nb.cells if c.cell_type == "code"]
    student_code = [c for c in student.cells if c.cell_type == "code"]
    assert [c.source for c in student_code] == [c.source for c in code]
    assert all(not c.outputs and c.execution_count is None for c in student_code)
    assert "raise NotImplementedError" in text and "def self_check" in text


def test_strip_solutions_handles_fences_and_refuses_an_unclosed_one():
    text = "intro\n\n````{solution} ex\n:class: dropdown\n\nsecret\n```python\nx = 1\n```\n````\nafter\n:::{solution} b\nhidden\n:::\nend"
    assert edition.strip_solutions(text) == "intro\n\nafter\nend"
    with pytest.raises(ValueError, match="unclosed"):
        edition.strip_solutions("````{solution} ex\nsecret\n```")
