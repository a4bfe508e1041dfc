"""The chapters' self-checks tell a right answer from a wrong one.

The reference solutions are taken from each chapter's solution blocks, so the test follows the
chapter as it is; the wrong answers are plausible mistakes."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"

# chapter: (cells to run before the answers, identified by a string they contain; wrong answers)
CHAPTERS = {
    "05_cpc": (
        ("PROFILE =", "def m_step"),
        """
def posterior_with_prior(v, c, pi):
    return torch.sigmoid((v * c).sum(1))  # forgets the prior's log-odds


def eq2_gradient(s, y, lambda_neg):
    grad = torch.sigmoid(s)  # forgets lambda_neg on the negatives
    grad[y] = torch.sigmoid(s[y]) - 1
    return grad


def plugin_step(C, q):
    C_new = m_step(q)
    return C_new, log_lik(C_new) - log_lik(C), 0.0  # claims EM's guarantee for any guess
""",
    ),
    "06_plremix": (
        ("PROFILE =",),
        """
def anchor_gradient(q_a, q_pos, q_neg, tau):
    P = (torch.cat([(q_a @ q_pos)[None], q_neg @ q_a]) / tau).softmax(0)
    return (-q_pos + (P[1:, None] * q_neg).sum(0)) / tau  # forgets the factor 1 - P_aa+


def disjoint_share(K, kappa):
    return ((K - kappa) / K) ** kappa  # draws the second set's classes with replacement


def auc_one_and_two(delta, sigma):
    return norm.cdf(delta / sigma), norm.cdf(delta / sigma)  # forgets the sqrt(2) of a difference
""",
    ),
    "07_flywheel": (
        ("PROFILE =", "def gradient_descent"),
        """
def fixed_point_w(gamma, K):
    return gamma  # forgets the corrupted draws that land on the true class


def cr_minimiser(p_cond, prior, lam):
    return (p_cond - lam * prior) / (1 - lam)  # the all-positive formula, used where it does not hold


def transition_m_step(q, labels, K):
    counts = q.T @ F.one_hot(labels, K).to(q)
    return counts / counts.sum(0, keepdim=True)  # normalises columns instead of rows
""",
    ),
}


def _cells(chapter: str) -> list[str]:
    nb = nbformat.read(NOTEBOOKS / f"{chapter}.ipynb", as_version=4)
    return [c.source for c in nb.cells if c.cell_type == "code"]


def _run_self_check(chapter: str, answers: str) -> list[str]:
    code = _cells(chapter)
    setup = [next(c for c in code if marker in c) for marker in CHAPTERS[chapter][0]]
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
    assert len(blocks) == 3
    return "\n\n".join(blocks)


@pytest.mark.parametrize("chapter", sorted(CHAPTERS))
@pytest.mark.parametrize(
    "answers,verdict", [("solutions", "correct"), ("wrong", "not yet: the check failed")]
)
def test_self_checks_pass_the_solutions_and_fail_wrong_answers(chapter, answers, verdict):
    lines = _run_self_check(chapter, _solutions(chapter) if answers == "solutions" else CHAPTERS[chapter][1])
    assert lines == [f"exercise {i}: {verdict}" for i in (1, 2, 3)]
