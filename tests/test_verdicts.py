"""The papers' claims against the store (lnl_core.verdicts): the statistics by hand, and the verdict
tables that the landing page and the chapters show are what the committed store gives."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from lnl_core import bench, verdicts

ROOT = Path(__file__).resolve().parents[1]
STORE = ROOT / "benchmarks" / "results" / "reduced"


def test_paired_interval_by_hand():
    a, b = [80.0, 82.0, 81.0], [78.0, 79.0, 81.0]  # differences 2, 3, 0
    diff, half = verdicts.paired_interval(a, b)
    sd = math.sqrt(((2 - 5 / 3) ** 2 + (3 - 5 / 3) ** 2 + (0 - 5 / 3) ** 2) / 2)
    assert diff == pytest.approx(5 / 3) and half == pytest.approx(4.302653 * sd / math.sqrt(3), rel=1e-6)
    assert math.isnan(verdicts.paired_interval([1.0], [0.0])[1])


def _fake(results):
    """{(method, setting): [finals by seed]} -> what bench.load_results gives."""
    return {
        bench.Cell(m, *setting, seed): {"final_test_acc": v}
        for (m, setting), finals in results.items()
        for seed, v in enumerate(finals)
    }


def test_a_claim_holds_fails_or_stays_open():
    claim = verdicts.Claim("dividemix", verdicts.STRONG, verdicts.SYM80, "paper", "02_dividemix")
    base = [60.0, 61.0, 62.0]
    for finals, expected in (([70.0, 70.5, 72.0], "holds"), ([50.0, 52.0, 51.0], "fails"),
                             ([60.0, 65.0, 58.0], "open")):  # fmt: skip
        results = _fake({("dividemix", verdicts.SYM80): finals, (verdicts.STRONG, verdicts.SYM80): base})
        assert verdicts.verdict(claim, results)["held"] == expected
    grows = verdicts.Claim(
        "dividemix", verdicts.STRONG, verdicts.SYM80, "p", "02_dividemix", grows=verdicts.SYM50
    )
    results = _fake({
        ("dividemix", verdicts.SYM80): [70.0, 71.0, 72.0], (verdicts.STRONG, verdicts.SYM80): [60.0, 60.0, 60.0],
        ("dividemix", verdicts.SYM50): [80.0, 80.0, 81.0], (verdicts.STRONG, verdicts.SYM50): [78.0, 79.0, 78.0],
    })  # fmt: skip
    v = verdicts.verdict(grows, results)  # gaps 10, 11, 12 at 80% against 2, 1, 3 at 50%
    assert v["diff"] == pytest.approx(9.0) and v["held"] == "holds"


@pytest.mark.skipif(not (STORE / "bench.json").is_file(), reason="no committed store")
def test_every_claim_has_its_cells_in_the_store():
    results = bench.load_results(STORE)
    for claim in verdicts.CLAIMS:
        v = verdicts.verdict(claim, results)
        assert v["seeds"] == [0, 1, 2], claim


def test_the_landing_page_shows_what_the_store_gives():
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "verdicts.py"), "--check"], capture_output=True
    )
    assert done.returncode == 0, done.stderr.decode()
    assert "{include} results-at-a-glance.md" in (ROOT / "book" / "preface.md").read_text()


CHAPTERS = sorted({c.chapter for c in verdicts.CLAIMS})


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_each_method_chapter_shows_its_verdict_table_from_the_store(chapter):
    expected = verdicts.chapter_table(chapter, bench.load_results(STORE)).to_html()
    nb = json.loads((ROOT / "notebooks" / f"{chapter}.ipynb").read_text())
    shown = [
        "".join(o["data"]["text/html"])
        for c in nb["cells"] if c["cell_type"] == "code" and "chapter_table(" in "".join(c["source"])
        for o in c.get("outputs", []) if "text/html" in o.get("data", {})
    ]  # fmt: skip
    assert shown, f"{chapter} has no verdict table (a cell calling verdicts.chapter_table)"
    assert all(html == expected for html in shown), f"{chapter}: its verdict table is not the store's"


def test_stability_is_the_mean_spread_of_the_last_epochs():
    def result(accs):
        return {"history": [{"test_acc": a} for a in accs]}

    results = {
        bench.Cell("ce", "symmetric", 0.5, 0): result([50, 60, 61, 63, 62, 60]),  # last 5 span 3
        bench.Cell("ce", "symmetric", 0.5, 1): result([70, 71, 71, 71, 71, 72]),  # 1
    }
    assert verdicts.stability(results) == {"ce": pytest.approx(2.0)}
