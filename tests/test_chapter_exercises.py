"""Every chapter's self-check tells a right answer from a wrong one.

The reference solutions are taken from each chapter's solution blocks (the ```python blocks
of its ``{solution}`` cells), so the test follows the chapter as it is. The wrong answers, one
file per chapter in ``tests/chapter_exercises/``, are plausible mistakes; each must fail.
Open-ended exercises have no self-check and no python block in their solution."""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import io
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent
NOTEBOOKS = ROOT.parent / "notebooks"
WRONG = ROOT / "chapter_exercises"


def _spec(chapter: str):
    spec = importlib.util.spec_from_file_location(f"wrong_{chapter}", WRONG / f"{chapter}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CHAPTERS = sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb"))


def _cells(chapter: str) -> list[str]:
    nb = nbformat.read(NOTEBOOKS / f"{chapter}.ipynb", as_version=4)
    return [c.source for c in nb.cells if c.cell_type == "code"]


def _run_self_check(chapter: str, answers: str) -> list[str]:
    code = _cells(chapter)
    setup = [next(c for c in code if marker in c) for marker in _spec(chapter).SETUP]
    check = next(c for c in code if "def self_check" in c)
    namespace: dict = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec("import sys\n" + setup[0], namespace)
        for cell in setup[1:]:
            exec(cell, namespace)
        exec(answers, namespace)
        exec(check, namespace)
    return [line for line in out.getvalue().splitlines() if line.startswith("exercise")]


def _solutions(chapter: str) -> str:
    nb = nbformat.read(NOTEBOOKS / f"{chapter}.ipynb", as_version=4)
    blocks = [
        m for c in nb.cells if c.cell_type == "markdown" and "{solution}" in c.source
        for m in re.findall(r"```python\n(.*?)```", c.source, re.S)
    ]  # fmt: skip
    assert len(blocks) == len(_spec(chapter).CHECKED), "one python block per self-checked exercise"
    return "\n\n".join(blocks)


def test_every_chapter_has_its_wrong_answers():
    assert CHAPTERS == sorted(p.stem for p in WRONG.glob("*.py"))


@functools.cache
def _verdicts(chapter: str, answers: str) -> dict[int, str]:
    """exercise number -> the self-check's verdict, for the reference solutions or the wrong answers
    (one run of the chapter's self-check per chapter and kind, shared by the per-exercise tests)."""
    lines = _run_self_check(chapter, _solutions(chapter) if answers == "solutions" else _spec(chapter).WRONG)
    return {int(m.group(1)): m.group(2) for m in (re.match(r"exercise (\d+): (.*)", ln) for ln in lines)}


EXERCISES = [(c, i) for c in CHAPTERS for i in _spec(c).CHECKED]


@pytest.mark.parametrize("chapter,exercise", EXERCISES, ids=[f"{c}-ex{i}" for c, i in EXERCISES])
@pytest.mark.parametrize(
    "answers,verdict", [("solutions", "correct"), ("wrong", "not yet: the check failed")]
)
def test_self_check_passes_the_solution_and_fails_a_wrong_answer(chapter, exercise, answers, verdict):
    verdicts = _verdicts(chapter, answers)
    assert sorted(verdicts) == list(_spec(chapter).CHECKED)
    assert verdicts[exercise] == verdict


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_untouched_stubs_report_not_attempted(chapter):
    stubs = next(c for c in _cells(chapter) if "raise NotImplementedError" in c)
    assert _run_self_check(chapter, stubs) == [
        f"exercise {i}: not attempted yet" for i in _spec(chapter).CHECKED
    ]
