"""Everything fits the column (issue #30): a browser check of every page of the built book.

Run after `scripts/build_book.sh`, on its own with `pytest tests/book/test_layout.py` (or
`-k layout`). Every page of the table of contents is opened at 1280x900 in one headless
Chromium page, after MathJax has typeset and the fonts and images have loaded, and these
visible elements of the article are measured:

- ``pre`` (code cells, cell outputs, code blocks): the ``pre`` is the box that scrolls, so its
  content (``scrollWidth``) must fit its ``clientWidth``;
- MathJax displays (``mjx-container[display="true"]``): the theme makes the container scroll,
  so its ``scrollWidth`` must fit its ``clientWidth``, and the container must lie inside the
  content column;
- tables: the table's width must fit the box that holds it (the theme's scrolling wrapper or
  the cell output), and that box must not scroll;
- other HTML outputs of cells (not a ``pre`` or a table): they must not scroll either;
- images: shown at no less than 80% of their natural width (a figure drawn wider than the
  column is scaled down, and so is its text).

Hidden elements (a collapsed "show code" cell, ``display: none``) are skipped. The failure
lists, per page, each offending element with its kind, an excerpt, its widths and the heading
above it. ``lnl_core.plotting.column_figure`` and ``lnl_core.report.results_table`` draw
figures and tables that pass.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.book

ROOT = Path(__file__).resolve().parents[2]
HTML = ROOT / "_build" / "html"
VIEWPORT = {"width": 1280, "height": 900}
MIN_IMAGE_SCALE = 0.8  # an image shown at less than this fraction of its natural width fails


def toc_pages(toc_path: Path = ROOT / "_toc.yml") -> list[str]:
    """The HTML page of every file in the table of contents, in reading order."""
    toc = yaml.safe_load(toc_path.read_text())
    pages = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                pages.append(entry["file"])
            walk(entry.get("sections"))
            walk(entry.get("chapters"))

    walk(toc.get("chapters"))
    for part in toc.get("parts") or []:
        walk(part.get("chapters"))
    return [f"{page}.html" for page in pages]


# Resolves when the page can be measured: MathJax (loaded only on pages with math) has
# typeset, the fonts are in, and every image in the article has loaded or failed.
_SETTLE = """async () => {
  if (document.querySelector('script[src*="mathjax"]')) {
    const t0 = Date.now();
    while (!(window.MathJax && MathJax.startup && MathJax.startup.promise)) {
      if (Date.now() - t0 > 20000) throw new Error("MathJax did not start");
      await new Promise(r => setTimeout(r, 50));
    }
    await MathJax.startup.promise;
  }
  await document.fonts.ready;
  const pending = [...document.querySelectorAll("article img")].filter(img => !img.complete);
  await Promise.all(pending.map(img => new Promise(r => {
    img.loading = "eager";
    img.addEventListener("load", r);
    img.addEventListener("error", r);
  })));
}"""

# Returns the column's width and a list of offending elements:
# {kind, excerpt, content, box, unit, heading}; content > box for overflow, and for images
# content is the displayed width and box the natural width.
_MEASURE = """(minScale) => {
  const article = document.querySelector("article.bd-article") || document.querySelector("article");
  const acs = getComputedStyle(article), arect = article.getBoundingClientRect();
  const colLeft = arect.left + parseFloat(acs.paddingLeft);
  const colRight = arect.right - parseFloat(acs.paddingRight), colWidth = colRight - colLeft;
  // headings, and on the API page autodoc's modules and entries (their ids name them)
  const headings = [...article.querySelectorAll('h1, h2, h3, h4, h5, h6, dt.sig[id], [id^="module-"]')];
  const headingOf = el => {
    let h = null;
    for (const x of headings) {
      if (x.compareDocumentPosition(el) & Node.DOCUMENT_POSITION_FOLLOWING) h = x; else break;
    }
    if (!h) return "(top of the page)";
    if (!/^H\\d$/.test(h.tagName)) return h.id.replace(/^module-/, "");
    return h.textContent.replace(/[#\\u00b6]\\s*$/, "").trim();
  };
  // not display:none, not visibility:hidden, not inside a closed <details> (a hidden cell)
  const shown = el => el.getClientRects().length > 0
    && el.checkVisibility({visibilityProperty: true, checkVisibilityCSS: true});
  const short = (s, n = 70) => {
    s = s.replace(/\\s+/g, " ").trim();
    return s.length > n ? s.slice(0, n - 1) + "\\u2026" : s;
  };
  const scrolls = el => el.scrollWidth > el.clientWidth + 1;
  const width = el => el.getBoundingClientRect().width;
  const outside = el => {
    const r = el.getBoundingClientRect();
    return r.left < colLeft - 1 || r.right > colRight + 1;
  };
  const found = [];
  const add = (el, kind, excerpt, content, box, unit = "px") => found.push(
    {kind, excerpt, content: Math.round(content), box: Math.round(box), unit, heading: headingOf(el)});

  // code cells, outputs, code blocks: the pre is the box that scrolls
  for (const pre of article.querySelectorAll("pre")) {
    if (!shown(pre)) continue;
    const kind = pre.closest(".cell_input") ? "code cell"
      : pre.closest(".cell_output") ? "cell output" : "code block";
    const longest = pre.textContent.split("\\n").reduce((a, b) => (b.length > a.length ? b : a), "");
    const excerpt = `longest line (${longest.length} chars): ${short(longest, 60)}`;
    if (scrolls(pre)) add(pre, kind, excerpt, pre.scrollWidth, pre.clientWidth);
    else if (outside(pre)) add(pre, kind + " (past the column)", excerpt, width(pre), colWidth);
  }

  // MathJax 3 displays: the theme makes the container scroll
  const tex = c => {
    try {
      const item = MathJax.startup.document.getMathItemsWithin(c)[0];
      if (item) return item.math;
    } catch (e) {}
    return c.textContent;
  };
  for (const c of article.querySelectorAll('mjx-container[display="true"]')) {
    if (!shown(c)) continue;
    if (scrolls(c)) add(c, "math display", short(tex(c)), c.scrollWidth, c.clientWidth);
    else if (outside(c)) add(c, "math display (past the column)", short(tex(c)), width(c), colWidth);
  }

  // tables, against the nearest box that scrolls or clips them (else the column)
  const clips = el => ["auto", "scroll", "hidden", "clip"].includes(getComputedStyle(el).overflowX);
  for (const t of article.querySelectorAll("table")) {
    if (!shown(t)) continue;
    let box = t.parentElement;
    while (box !== article && !clips(box)) box = box.parentElement;
    const boxWidth = box === article ? colWidth : box.clientWidth;
    const row = t.querySelector("tr"), caption = t.querySelector("caption");
    const head = row ? [...row.cells].map(c => c.textContent.trim()).join(" | ") : t.textContent;
    const excerpt = short(caption ? `${caption.textContent.trim()}: ${head}` : head);
    const tableWidth = Math.max(t.scrollWidth, width(t));
    if (tableWidth > boxWidth + 1) add(t, "table", excerpt, tableWidth, boxWidth);
    else if (box !== article && scrolls(box)) {
      add(t, "table (its box scrolls)", excerpt, box.scrollWidth, box.clientWidth);
    }
    else if (outside(t)) add(t, "table (past the column)", excerpt, width(t), colWidth);
  }

  // any other rich output of a cell (HTML without a pre or a table)
  for (const out of article.querySelectorAll(".cell_output > .output")) {
    if (!shown(out) || out.querySelector("pre, table")) continue;
    if (scrolls(out)) add(out, "cell output (html)", short(out.textContent),
      out.scrollWidth, out.clientWidth);
  }

  // figures: shown at no less than minScale of their natural width
  for (const img of article.querySelectorAll("img")) {
    if (!shown(img) || !img.naturalWidth) continue;  // a broken image is test_book's business
    if (width(img) < minScale * img.naturalWidth) {
      const src = decodeURI(new URL(img.src).pathname.split("/").pop());
      // MyST-NB's alt text is the image's path: not worth repeating
      const alt = img.alt && !img.alt.includes(src) ? ` (alt: ${short(img.alt, 40)})` : "";
      add(img, "figure", src + alt, width(img), img.naturalWidth, "natural px");
    }
  }
  return {column: colWidth, found};
}"""


def _describe(v: dict) -> str:
    if v["unit"] == "natural px":
        widths = f"shown {v['content']} px of {v['box']} natural ({v['content'] / v['box']:.0%})"
    else:
        widths = f"{v['content']} px in {v['box']} px"
    return f"  - {v['kind']} under {v['heading']!r}: {widths}; {v['excerpt']}"


def measure_pages(browser, server: str, pages: list[str]) -> dict[str, dict]:
    """{page: {"column": width in CSS px, "found": [offending elements]}} for the given pages,
    opened one after the other in one browser page at 1280x900."""
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    results = {}
    try:
        for rel in pages:
            page.goto(f"{server}/{rel}", wait_until="load")
            page.evaluate(_SETTLE)
            results[rel] = page.evaluate(_MEASURE, MIN_IMAGE_SCALE)
    finally:
        context.close()
    return results


def test_toc_pages_are_built():
    pages = toc_pages()
    assert len(pages) == len(set(pages)) > 10
    missing = [p for p in pages if not (HTML / p).exists()]
    assert not missing, f"not built (run scripts/build_book.sh): {missing}"


def test_layout_everything_fits_the_column(browser, server):
    pages = toc_pages()
    t0 = time.perf_counter()
    results = measure_pages(browser, server, pages)
    seconds = time.perf_counter() - t0
    columns = sorted({round(r["column"]) for r in results.values()})
    print(f"\nlayout: {len(pages)} pages measured in {seconds:.1f} s; content column {columns} px")
    report = []
    for rel, r in results.items():
        if r["found"]:
            report.append(f"{rel}: {len(r['found'])}")
            report.extend(_describe(v) for v in r["found"])
    total = sum(len(r["found"]) for r in results.values())
    assert not report, (
        f"{total} elements wider than their box or figures scaled down, on {len(report) - total} of "
        f"{len(pages)} pages ({seconds:.0f} s):\n" + "\n".join(report)
    )
