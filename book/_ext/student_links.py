"""A "student edition" box under the title of every chapter page.

The student edition of a chapter (``student/<chapter>.ipynb``, made by
``scripts/student_edition.py``) is copied into the site's ``student-edition/`` by ``scripts/build_book.sh`` (not ``student/``:
Jupyter Book excludes that path, which holds notebooks outside the table of contents); this adds,
below each chapter's title, a link to download it and a link that opens it in Colab from the
release tag the book was built from (``v`` + ``lnl_core.__version__``, as the chapters' install
cells use). The version is imported, not read from a file: importing ``lnl_core`` brings in torch
(a few seconds), but the build imports it anyway for the API page's autodoc, so it costs nothing
more here.
"""

from __future__ import annotations

import html
from pathlib import Path

from docutils import nodes

import lnl_core


def _insert(app, doctree):
    docname = app.env.docname
    if not docname.startswith("notebooks/"):
        return
    root = Path(app.srcdir)
    stem = docname.split("/", 1)[1]
    if not (root / "student" / f"{stem}.ipynb").is_file():
        return
    repo = app.config.html_theme_options.get("repository_url", "").rstrip("/")
    colab = f"https://colab.research.google.com/github/{repo.removeprefix('https://github.com/')}/blob/v{lnl_core.__version__}/student/{stem}.ipynb"
    box = (
        '<div class="admonition tip student-edition"><p class="admonition-title">Student edition</p>'
        f'<p>This chapter without its solutions, for coursework: <a class="student-download" href="../student-edition/{stem}.ipynb" '
        f'download>download the notebook</a> or <a class="student-colab" href="{html.escape(colab)}">open it in Colab</a>. '
        "The solutions are in this book (the instructor edition).</p></div>"
    )
    section = next(iter(doctree.findall(nodes.section)), None)
    if section is None:
        return
    title = next(iter(section.findall(nodes.title)), None)
    index = section.index(title) + 1 if title is not None else 0
    section.insert(index, nodes.raw("", box, format="html"))


def setup(app):
    app.connect("doctree-read", _insert)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
