"""The CPC chapter's self-checks tell a right answer from a wrong one.

The reference solutions are taken from the chapter's solution blocks, so the test follows the
chapter as it is; the wrong answers are plausible mistakes (a missing prior term, a sign, a
missing bound)."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import nbformat
import pytest

CHAPTER = Path(__file__).resolve().parents[1] / "notebooks" / "05_cpc.ipynb"

WRONG = """
def posterior_with_prior(v, c, pi):
    return torch.sigmoid((v * c).sum(1))  # forgets the prior's log-odds


def eq2_gradient(s, y, lambda_neg):
    grad = torch.sigmoid(s)  # forgets lambda_neg on the negatives
    grad[y] = torch.sigmoid(s[y]) - 1
    return grad


def plugin_step(C, q):
    C_new = m_step(q)
    return C_new, log_lik(C_new) - log_lik(C), 0.0  # claims EM's guarantee for any guess
"""


def _run_self_check(answers: str) -> list[str]:
    nb = nbformat.read(CHAPTER, as_version=4)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    setup = next(c for c in code if "PROFILE =" in c)
    model = next(c for c in code if "def m_step" in c)
    check = next(c for c in code if "def self_check" in c)
    namespace: dict = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec("import sys\n" + setup, namespace)
        exec(model, namespace)
        exec(answers, namespace)
        exec(check, namespace)
    return [line for line in out.getvalue().splitlines() if line.startswith("exercise")]


def _solutions() -> str:
    nb = nbformat.read(CHAPTER, as_version=4)
    blocks = [
        m for c in nb.cells if c.cell_type == "markdown" and "{solution}" in c.source
        for m in re.findall(r"```python\n(.*?)```", c.source, re.S)
    ]  # fmt: skip
    assert len(blocks) == 3
    return "\n\n".join(blocks)


@pytest.mark.parametrize(
    "answers,verdict", [("solutions", "correct"), ("wrong", "not yet: the check failed")]
)
def test_cpc_self_checks_pass_the_solutions_and_fail_wrong_answers(answers, verdict):
    lines = _run_self_check(_solutions() if answers == "solutions" else WRONG)
    assert lines == [f"exercise {i}: {verdict}" for i in (1, 2, 3)]
