"""The papers' claims against the reduced-profile benchmark: does each hold in the miniature?

Each :class:`Claim` says that one method ends above another in one noise setting (or that a gap
grows with the noise rate), as its paper reports on CIFAR. :func:`verdict` reads the committed
benchmark grid (``benchmarks/results/reduced``), where every method saw the same noisy labels at a
given (noise, rate, seed), and compares the last-epoch test accuracies seed by seed: the mean
paired difference and its 95% interval, ``mean +- t(0.975, n - 1) * sd / sqrt(n)``. A claim
*holds* when the interval lies above zero, *fails* when it lies below, and is *open* when it
contains zero (the seeds cannot tell).

The book's landing page ("Results at a glance", ``book/results-at-a-glance.md``, written by
``scripts/verdicts.py``) and each method chapter show these rows; ``tests/test_verdicts.py`` checks
that what they show is what the store gives. Reduced-profile numbers are a miniature (4,000
Fashion-MNIST images, a small CNN, 30 epochs), never a reproduction of the papers' CIFAR tables.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import LNLError

# The strong baseline of every chapter: CE on crop + flip, the papers' own CE baseline augmentation
# and, under noise, the best simple alternative in the store (random crops resist memorisation far
# better than the flip views the methods take; the flip views won on clean labels only)
STRONG = "ce+augment=weak"
SAME_VIEWS = "ce+augment=flip"  # CE on the methods' own flip views: the method without its views
SETTING_NAMES = {
    ("symmetric", 0.5): "sym 50%",
    ("symmetric", 0.8): "sym 80%",
    ("asymmetric", 0.4): "asym 40%",
    ("none", 0.0): "clean",
}


@dataclass(frozen=True)
class Claim:
    """``method`` ends above ``against`` in ``setting`` (a (noise, rate) pair); with ``grows``, the
    gap is larger in ``setting`` than in ``grows`` (another setting). ``paper`` is what the paper
    reports, in words and its own numbers; ``chapter`` is the book's chapter that tests it."""

    method: str
    against: str
    setting: tuple[str, float]
    paper: str
    chapter: str
    grows: tuple[str, float] | None = None

    @property
    def text(self) -> str:
        where = SETTING_NAMES.get(self.setting, f"{self.setting[0]} {self.setting[1]:g}")
        if self.grows is not None:
            low = SETTING_NAMES.get(self.grows, f"{self.grows[0]} {self.grows[1]:g}")
            return f"{_name(self.method)} − {_name(self.against)}: larger at {where} than at {low}"
        return f"{_name(self.method)} > {_name(self.against)} at {where}"


_NAMES = {
    "ce": "CE", SAME_VIEWS: "CE + flip", STRONG: "CE + crop/flip", "gce": "GCE", "sce": "SCE",
    "pemm": "PEMM", "pmnar": "PMNAR", "dividemix": "DivideMix", "dividemix-pe": "DivideMix + PE",
    "cpc": "CPC", "plremix": "PLReMix", "flywheel": "LNL-flywheel",
}  # fmt: skip


def _name(method: str) -> str:
    return _NAMES.get(method, method)


SYM50, SYM80, ASYM40 = ("symmetric", 0.5), ("symmetric", 0.8), ("asymmetric", 0.4)

# The claims, by chapter: each paper's headline ordering on CIFAR-10 (its own tables, best-epoch
# numbers as printed), read as "A ends above B". "Against CE" means the paper's CE baseline, trained
# with standard augmentation (crop + flip): here STRONG. CPC's
# baseline is AugDMix (DivideMix on strong views; here DivideMix on the profile's views). PEMM's
# noise flips labels to other classes; its 40% is closest to the store's 50% (45% actual).
CLAIMS: tuple[Claim, ...] = (
    Claim("dividemix", STRONG, SYM50, "94.6 vs CE 79.4 (CIFAR-10, Li et al. Table 1)", "02_dividemix"),
    Claim("dividemix", STRONG, SYM80, "93.2 vs CE 62.9 (CIFAR-10, Table 1)", "02_dividemix"),
    Claim(
        "dividemix",
        STRONG,
        SYM80,
        "the gap grows with the noise: +15.2 at 50%, +30.3 at 80%",
        "02_dividemix",
        grows=SYM50,
    ),  # fmt: skip
    Claim("dividemix", STRONG, ASYM40, "93.4 vs CE 85.0 (CIFAR-10, Table 1)", "02_dividemix"),
    Claim("dividemix", SAME_VIEWS, SYM50, "not in the paper: CE on DivideMix's own views", "02_dividemix"),
    Claim("pemm", STRONG, SYM50, "88.54 vs CE 78.70 at 40% (CIFAR-10, Table 1)", "03_pemm"),
    Claim("pemm", "sce", SYM50, "88.54 vs SCE 86.34 at 40% (CIFAR-10, Table 1)", "03_pemm"),
    Claim("pemm", STRONG, SYM80, "59.34 vs CE 34.80 at 80% (CIFAR-10, Table 1)", "03_pemm"),
    Claim(
        "dividemix-pe",
        "dividemix",
        SYM50,
        "'out of box': the PE improves the method it joins (Sec. 1)",
        "03_pemm",
    ),  # fmt: skip
    Claim("pmnar", STRONG, SYM50, "96.0 vs CE 79.4 (CIFAR-10, Table 1)", "04_pmnar"),
    Claim("pmnar", "dividemix", SYM50, "96.0 vs DivideMix 94.6 (CIFAR-10, Table 1)", "04_pmnar"),
    Claim("pmnar", "dividemix", ASYM40, "95.3 vs DivideMix 91.7 (CIFAR-10, Table 1)", "04_pmnar"),
    Claim("cpc", "dividemix", SYM50, "95.64 vs AugDMix 95.6 (CIFAR-10, Table 2)", "05_cpc"),
    Claim("cpc", "dividemix", SYM80, "94.78 vs AugDMix 93.6 (CIFAR-10, Table 2)", "05_cpc"),
    Claim("cpc", "dividemix", ASYM40, "94.73 vs AugDMix 94.6 (CIFAR-10, Table 2)", "05_cpc"),
    Claim("plremix", "dividemix", SYM50, "95.71 vs DivideMix 94.6 (CIFAR-10, Table 1)", "06_plremix"),
    Claim("plremix", "dividemix", SYM80, "95.08 vs DivideMix 93.2 (CIFAR-10, Table 1)", "06_plremix"),
    Claim("plremix", "dividemix", ASYM40, "95.11 vs DivideMix 93.4 (CIFAR-10, Table 1)", "06_plremix"),
    Claim("flywheel", "dividemix", SYM50, "96.7 vs DivideMix 94.6 (CIFAR-10, Table 1)", "07_flywheel"),
    Claim("flywheel", "dividemix", SYM80, "95.9 vs DivideMix 93.2 (CIFAR-10, Table 1)", "07_flywheel"),
    Claim("flywheel", "dividemix", ASYM40, "96.2 vs DivideMix 91.7 (CIFAR-10, Table 1)", "07_flywheel"),
)

# The landing page's "Results at a glance": one headline claim per method.
HEADLINES = (
    ("dividemix", SYM80, STRONG), ("pemm", SYM50, STRONG), ("pmnar", SYM50, "dividemix"),
    ("cpc", SYM80, "dividemix"), ("plremix", SYM50, "dividemix"), ("flywheel", SYM50, "dividemix"),
    ("dividemix-pe", SYM50, "dividemix"),
)  # fmt: skip


def paired_interval(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Mean of the paired differences ``a - b`` and the half-width of its ``level`` interval
    (Student's t with n - 1 degrees of freedom). NaN half-width for a single pair."""
    from scipy import stats

    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if d.ndim != 1 or d.size == 0:
        raise ValueError("paired_interval needs two equal-length, non-empty sequences")
    if d.size == 1:
        return float(d[0]), math.nan
    half = float(stats.t.ppf(0.5 + level / 2, d.size - 1)) * float(d.std(ddof=1)) / math.sqrt(d.size)
    return float(d.mean()), half


def _finals(results: dict, method: str, setting: tuple[str, float]) -> dict[int, float]:
    return {
        c.seed: r["final_test_acc"] for c, r in results.items() if c.method == method and c.setting == setting
    }


def verdict(claim: Claim, results: dict) -> dict[str, Any]:
    """The claim against ``results`` (:func:`lnl_core.bench.load_results` of the store): the mean
    paired difference ``diff``, its 95% half-width ``half``, the seeds, and ``held`` ("holds",
    "fails" or "open")."""
    a, b = _finals(results, claim.method, claim.setting), _finals(results, claim.against, claim.setting)
    seeds = sorted(set(a) & set(b))
    if not seeds:
        raise LNLError(
            f"the store has no cells of both {claim.method} and {claim.against} at {claim.setting}"
        )
    gaps = [a[s] - b[s] for s in seeds]
    if claim.grows is not None:
        a0, b0 = _finals(results, claim.method, claim.grows), _finals(results, claim.against, claim.grows)
        seeds = [s for s in seeds if s in a0 and s in b0]
        gaps = [(a[s] - b[s]) - (a0[s] - b0[s]) for s in seeds]
    diff, half = paired_interval(gaps, [0.0] * len(gaps))
    held = "open" if not math.isfinite(half) or abs(diff) <= half else ("holds" if diff > 0 else "fails")
    return {"claim": claim, "diff": diff, "half": half, "seeds": seeds, "held": held}


def load_store(out: str | Path | None = None) -> dict:
    """The results of the committed reduced grid (``benchmarks/results/reduced``)."""
    from .bench import find_store, load_results

    store = Path(out) if out is not None else find_store("reduced")
    if store is None:
        raise LNLError("no committed benchmark grid found: clone the repository (benchmarks/results/reduced)")
    return load_results(store)


def verdict_rows(claims: Sequence[Claim], results: dict) -> list[dict[str, str]]:
    """One row per claim: what it says, the paper's report, what the miniature shows and the verdict."""
    rows = []
    for claim in claims:
        v = verdict(claim, results)
        shown = f"{v['diff']:+.1f} [{v['diff'] - v['half']:+.1f}, {v['diff'] + v['half']:+.1f}]"
        rows.append({"claim": claim.text, "paper (CIFAR)": claim.paper, "here: difference, 95% interval": shown,
                     "held?": v["held"]})  # fmt: skip
    return rows


def chapter_table(chapter: str, results: dict | None = None):
    """A chapter's verdict table (:func:`lnl_core.report.results_table`) from the store."""
    from .report import results_table

    results = load_store() if results is None else results
    claims = [c for c in CLAIMS if c.chapter == chapter]
    if not claims:
        raise LNLError(f"no claims for chapter {chapter!r}")
    return results_table(
        verdict_rows(claims, results),
        caption="Last-epoch test accuracy, points; the difference is paired over seeds 0-2 (same noisy labels)",
    )


def glance_rows(results: dict) -> list[dict[str, str]]:
    """The landing page's table: per method, its headline claim and what the miniature shows."""
    rows = []
    for method, setting, against in HEADLINES:
        claim = next(
            c
            for c in CLAIMS
            if (c.method, c.setting, c.against) == (method, setting, against) and not c.grows
        )
        v = verdict(claim, results)
        rows.append({
            "method": _name(method), "claim (paper, CIFAR)": f"{claim.text}: {claim.paper}",
            "miniature (3 seeds)": f"{v['diff']:+.1f} points [{v['diff'] - v['half']:+.1f}, {v['diff'] + v['half']:+.1f}]",
            "held?": v["held"],
        })  # fmt: skip
    return rows


def stability(results: dict, last: int = 5) -> dict[str, float]:
    """Per method, the spread (max - min) of the test accuracy over its last ``last`` epochs,
    averaged over its cells in ``results``: how much the headline depends on which epoch is last."""
    spans: dict[str, list[float]] = {}
    for cell, r in results.items():
        accs = [h["test_acc"] for h in r["history"][-last:]]
        spans.setdefault(cell.method, []).append(max(accs) - min(accs))
    return {m: float(np.mean(v)) for m, v in spans.items()}
