"""Checks of the built book (run after `scripts/build_book.sh`; marker `book`).

Static checks read the HTML; the browser check opens pages in headless Chromium (Debian's
`chromium`, driven by Playwright; the fixtures are in conftest.py) served from localhost,
waits for MathJax, and asserts that math and figures rendered and that no error text shows.
Screenshots land in `_build/`.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.book

ROOT = Path(__file__).resolve().parents[2]
HTML = ROOT / "_build" / "html"
PAGES = {
    "intro": "book/preface.html",
    "notation": "book/notation.html",
    "chapter1": "notebooks/01_noisy_labels.html",
    "chapter2": "notebooks/02_dividemix.html",
    "chapter3": "notebooks/03_pemm.html",
    "chapter4": "notebooks/04_pmnar.html",
    "chapter5": "notebooks/05_cpc.html",
    "chapter6": "notebooks/06_plremix.html",
    "chapter7": "notebooks/07_flywheel.html",
    "benchmark": "notebooks/08_benchmark.html",
    "instructor-guide": "book/instructor-guide.html",
    "glossary": "book/glossary.html",
    "equations": "book/equations.html",
    "own-data": "book/own-data.html",
}
NO_MATH = {"equations", "own-data"}  # a table of equation numbers and code; a how-to page without formulas
NOTEBOOKS = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))
ERROR_TEXT = re.compile(r"Traceback \(most recent call last\)|\b[A-Z]\w*Error: |\?\?\?")


@pytest.fixture(scope="module", autouse=True)
def built():
    if not (HTML / "index.html").exists():
        pytest.fail("the book is not built: run scripts/build_book.sh first")


def _read(rel: str) -> str:
    return (HTML / rel).read_text(encoding="utf-8")


def test_table_of_contents_has_every_part():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    html = _read(PAGES["intro"])
    for part in toc["parts"]:
        assert part["caption"] in html, part["caption"]
        for chapter in part["chapters"]:
            assert (HTML / (chapter["file"] + ".html")).exists(), chapter["file"]


@pytest.mark.parametrize("stem", NOTEBOOKS)
def test_colab_launch_link_points_at_the_notebook(stem):
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    repo = cfg["repository"]["url"].removeprefix("https://github.com/")
    html = _read(f"notebooks/{stem}.html")
    link = f"https://colab.research.google.com/github/{repo}/blob/{cfg['repository']['branch']}/notebooks/{stem}.ipynb"
    assert link in html
    # the notebook's install cell installs from the same repository
    assert f"git+{cfg['repository']['url']}" in (ROOT / "notebooks" / f"{stem}.ipynb").read_text()


@pytest.mark.parametrize("stem", NOTEBOOKS)
def test_chapter_page_offers_its_student_edition(stem):
    from lnl_core import __version__

    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    repo = cfg["repository"]["url"].removeprefix("https://github.com/")
    html = _read(f"notebooks/{stem}.html")
    assert f'href="../student-edition/{stem}.ipynb"' in html
    assert f"https://colab.research.google.com/github/{repo}/blob/v{__version__}/student/{stem}.ipynb" in html
    served = HTML / "student-edition" / f"{stem}.ipynb"
    assert served.read_bytes() == (ROOT / "student" / f"{stem}.ipynb").read_bytes()


def test_equation_index_and_glossary_pages():
    equations = _read("book/equations.html")
    assert "lnl_core.losses.pm_loss" in equations and "cited" in equations
    glossary = _read("book/glossary.html")
    assert 'id="term-small-loss-criterion"' in glossary
    linked = sum("glossary.html#term-" in _read(f"notebooks/{stem}.html") for stem in NOTEBOOKS)
    assert linked == len(NOTEBOOKS), "every chapter links the glossary"


def test_bibliography_and_api_reference():
    bib = _read("book/bibliography.html").lower()
    for title in ("dividemix", "symmetric cross entropy", "potential energy based mixture model"):
        assert title in bib, title
    api = _read("book/api.html")
    for name in (
        "lnl_core.noise.symmetric",
        "lnl_core.losses.sce",
        "lnl_core.engine.Run",
        "lnl_core.data.DeviceData",
    ):
        assert f'id="{name}"' in api, name
    assert "Li <em>et al.</em>, 2020" in _read("book/preface.html")  # citations resolved


@pytest.mark.parametrize("name", PAGES)
def test_page_renders_math_and_figures(browser, server, name):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    js_errors, failed = [], []
    page.on("pageerror", lambda e: js_errors.append(str(e)))
    page.on("requestfailed", lambda r: failed.append(r.url))
    page.goto(f"{server}/{PAGES[name]}", wait_until="load")
    if name not in NO_MATH:  # MathJax is loaded only on pages with math
        page.wait_for_function(
            "() => window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=20000
        )
        page.evaluate("() => MathJax.startup.promise")
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(HTML.parent / f"screenshot-{name}.png"), full_page=True)

    math = page.locator("mjx-container").count()
    math_errors = page.locator("mjx-merror").count()
    images = page.evaluate(
        "() => Array.from(document.querySelectorAll('article img')).map(i => [i.src, i.complete && i.naturalWidth > 0])"
    )
    text = page.inner_text("article")
    page.close()

    assert math > 0 or name in NO_MATH, "no rendered math"
    assert math_errors == 0
    assert all(ok for _, ok in images), [src for src, ok in images if not ok]
    if name.startswith("chapter"):
        assert len(images) >= 2, f"only {len(images)} figures"
    assert not ERROR_TEXT.search(text), ERROR_TEXT.search(text).group(0)
    assert not js_errors, js_errors
    assert not [u for u in failed if u.startswith(server)], failed
