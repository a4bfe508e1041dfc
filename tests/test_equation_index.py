"""The book's equation-to-code page (scripts/equation_index.py) lists every equation lnl_core cites."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("equation_index", ROOT / "scripts" / "equation_index.py")
index = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(index)


def test_every_cited_equation_and_line_is_on_the_page():
    page = index.render(index.collect())
    rows = re.findall(r"^\| \((\d+)\) \| `([^`]+)` \| (.+) \|$", page, re.M)
    listed = {(int(eq), place) for eq, _, places in rows for place in places.split(", ")}
    # an independent reading of the sources: every line with "Eq." and the first number after it
    expected = set()
    for path in sorted((ROOT / "lnl_core").rglob("*.py")):
        rel = path.relative_to(ROOT / "lnl_core").as_posix()
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for first in re.findall(r"Eqs?\. *\((\d+)\)", line):
                expected.add((int(first), f"{rel}:{number}"))
    assert expected and expected <= listed, sorted(expected - listed)[:5]


def test_ranges_and_lists_expand():
    assert index.equations("(8)-(10)") == [8, 9, 10]
    assert index.equations("(5) and (9)") == [5, 9]
    assert index.equations("(4)") == [4]


def test_attribution_follows_the_enclosing_docstring():
    found = index.collect()
    by_where = {(c["where"], c["eq"]): c["paper"] for c in found}
    assert by_where[("lnl_core.models.DistanceClassifier.embed", 6)] == "PEMM"
    assert by_where[("lnl_core.losses.ar_weights", 4)] == "PMNAR"
    assert by_where[("lnl_core.losses.confidence_regularizer", 9)] == "LNL-flywheel"
    assert {c["paper"] for c in found} == set(index.PAPERS)
