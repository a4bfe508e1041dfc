"""One colour and one marker per method, the same in every chapter's figures.

The helper returns plain matplotlib keyword arguments, so the package does not depend on
matplotlib::

    ax.plot(epochs, acc, **method_style("dividemix"), label="DivideMix")
    ax.plot(epochs, acc, **method_style("pmnar", variant=2), label="PM + AR")  # an ablation

A variant of a method (an ablation, another setting) keeps the method's colour and changes the
line style and the marker, so that a reader who has learnt "orange is DivideMix" can trust it.

Figures that fit the book's column: ``column_figure`` is ``plt.subplots`` at the column's width,
at 96 dpi, so that the PNG is shown at its own size and a matplotlib point is a point on the
page (no text under 9 pt), with at most two panels a row::

    fig, (ax1, ax2) = column_figure(ncols=2)
    assert not small_text(fig)  # every visible text at least 9 pt

``BOOK_STYLE`` holds the font sizes (``plt.rcParams.update(BOOK_STYLE)`` in a notebook's hidden
setup cell applies them to every figure; ``column_figure`` uses them for the figure it makes).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

# method: (colour, marker). The first four match the order the chapters introduce them in.
METHOD_STYLES: dict[str, tuple[str, str]] = {
    "ce": ("C0", "o"),
    "dividemix": ("C1", "s"),
    "cpc": ("C2", "D"),
    "plremix": ("C3", "P"),
    "pemm": ("C4", "*"),
    "flywheel": ("C5", "X"),
    "pmnar": ("C6", "h"),
    "mae": ("C7", "x"),
    "gce": ("C8", "v"),
    "sce": ("C9", "^"),
}
METHOD_STYLES["dividemix-pe"] = METHOD_STYLES["dividemix"]  # DivideMix with PEMM's head: a variant

# Not methods: correctly labelled against mislabelled samples, in every figure that splits them.
CORRECT_COLOR = "0.6"  # grey
MISLABELLED_COLOR = "k"

VARIANT_LINESTYLES: tuple[Any, ...] = ("-", "--", ":", "-.", (0, (5, 1, 1, 1)), (0, (1, 1)))
VARIANT_MARKERS: tuple[str, ...] = ("", "<", ">", "p", "d", "8")  # none of them a method's marker


def method_color(method: str) -> str:
    """The method's colour (for bars, histograms, text)."""
    try:
        return METHOD_STYLES[method][0]
    except KeyError:
        raise ValueError(f"no style for method {method!r}; known: {', '.join(METHOD_STYLES)}") from None


def method_style(method: str, variant: int = 0) -> dict[str, Any]:
    """Keyword arguments for ``ax.plot``: the method's colour; ``variant`` 0 is the method
    itself (solid line, its marker), ``variant`` k > 0 an ablation or setting of it (another
    line style and marker, same colour)."""
    color = method_color(method)
    if not 0 <= variant < len(VARIANT_LINESTYLES):
        raise ValueError(f"variant must be in [0, {len(VARIANT_LINESTYLES)}), got {variant}")
    marker = METHOD_STYLES[method][1] if variant == 0 else VARIANT_MARKERS[variant]
    return {"color": color, "linestyle": VARIANT_LINESTYLES[variant], "marker": marker, "markersize": 4}


# The book's content column is 688 CSS px wide at a 1280x900 window (sphinx-book-theme 1.x;
# tests/book/test_layout.py measures it). At 96 dpi a figure's pixels are CSS px and its points
# are CSS points (1 pt = 96/72 px), so a PNG at most 688 px wide is shown unscaled and its text
# at the size it was drawn. The figure is 7 in = 672 px: the inline backend saves with
# bbox_inches="tight", which adds 0.1 in around the drawn area, and the PNG comes out about
# 683 px wide, still inside the column.
COLUMN_WIDTH_PX = 688
BOOK_DPI = 96
FIGURE_WIDTH_IN = 7.0
MAX_PANELS_PER_ROW = 2
ROW_HEIGHT_IN = {1: 3.2, 2: 2.8}  # default height of a row of one or of two panels
MIN_FONT_PT = 9.0

BOOK_STYLE: dict[str, Any] = {
    "figure.dpi": BOOK_DPI,
    "savefig.dpi": "figure",
    "font.size": 10,
    "axes.titlesize": 10.5,
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 9,
    "legend.title_fontsize": 9,
    "figure.titlesize": 11,
    "figure.labelsize": 10,
}


@contextlib.contextmanager
def book_style() -> Iterator[None]:
    """``with book_style(): ...``: matplotlib's settings for the book's figures (``BOOK_STYLE``),
    restored on exit. Keep the whole figure (labels, legend) inside the block."""
    import matplotlib

    with matplotlib.rc_context(BOOK_STYLE):
        yield


def column_figure(nrows: int = 1, ncols: int = 1, *, height: float | None = None, **subplots_kw: Any):
    """``plt.subplots`` for a figure as wide as the book's column: ``FIGURE_WIDTH_IN`` inches at
    ``BOOK_DPI``, constrained layout, ``BOOK_STYLE`` fonts (tick labels at least 9 pt).

    ``height`` is the figure's height in inches (default: 3.2 in a row of one panel, 2.8 in a
    row of two). At most two panels a row: ``ncols > 2`` is a ``ValueError`` (draw more panels
    as more rows, or make two figures). Other keywords (``sharex``, ``sharey``,
    ``gridspec_kw``, ``subplot_kw``, ``squeeze``) go to ``plt.subplots``; the return value is
    its ``(fig, axes)``. Labels and legends added later take the current rcParams, whose
    defaults are 10 pt; ``small_text(fig)`` lists any text under 9 pt.
    """
    if not isinstance(nrows, int) or not isinstance(ncols, int) or nrows < 1 or ncols < 1:
        raise ValueError(f"nrows and ncols must be positive integers, got {nrows!r} and {ncols!r}")
    if ncols > MAX_PANELS_PER_ROW:
        raise ValueError(
            f"at most {MAX_PANELS_PER_ROW} panels a row fit the book's column ({COLUMN_WIDTH_PX} px), got "
            f"ncols={ncols}: use more rows (nrows) or a second figure"
        )
    if height is None:
        height = nrows * ROW_HEIGHT_IN[ncols]
    elif not height > 0:
        raise ValueError(f"height must be positive (inches), got {height!r}")
    for key in ("figsize", "dpi", "layout"):
        if key in subplots_kw:
            raise ValueError(f"column_figure sets {key}; use plt.subplots for another one")
    import matplotlib.pyplot as plt

    with book_style():
        return plt.subplots(
            nrows, ncols, figsize=(FIGURE_WIDTH_IN, height), dpi=BOOK_DPI, layout="constrained", **subplots_kw
        )


def small_text(fig, min_pt: float = MIN_FONT_PT) -> list[str]:
    """The visible, non-empty texts of ``fig`` (titles, labels, tick labels, legends,
    annotations) smaller than ``min_pt`` points, as ``"<size> pt: <text>"``; draws the figure
    first so that tick labels exist. An empty list means every text is readable."""
    from matplotlib.text import Text

    fig.canvas.draw()
    hidden = set()  # the axes' own texts (ticks, axis labels) of panels drawn with axis("off")
    for ax in fig.axes:
        if not ax.axison:
            hidden.update(ax.xaxis.findobj(Text) + ax.yaxis.findobj(Text))
    found = []
    for text in fig.findobj(Text):
        if text in hidden or not text.get_visible() or not text.get_text().strip():
            continue
        if text.get_fontsize() < min_pt:
            found.append(f"{text.get_fontsize():g} pt: {text.get_text()!r}")
    return found
