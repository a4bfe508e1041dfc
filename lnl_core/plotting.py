"""One colour and one marker per method, the same in every chapter's figures.

The helper returns plain matplotlib keyword arguments, so the package does not depend on
matplotlib::

    ax.plot(epochs, acc, **method_style("dividemix"), label="DivideMix")
    ax.plot(epochs, acc, **method_style("pmnar", variant=2), label="PM + AR")  # an ablation

A variant of a method (an ablation, another setting) keeps the method's colour and changes the
line style and the marker, so that a reader who has learnt "orange is DivideMix" can trust it.
"""

from __future__ import annotations

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
