"""Results as HTML tables that fit the book's column (688 CSS px), not as printed lines.

``results_table`` takes a list of row dicts or a pandas DataFrame and returns a
``ResultsTable``; a notebook displays it as an HTML table (``_repr_html_``), and ``str()`` gives
the same table as text for a terminal::

    rows = [{"method": "CE", "last": 61.234, "last10": 60.8}, ...]  # or a DataFrame
    results_table(
        rows,
        headers={"last": "last epoch (%)", "last10": "mean of the last 10 (%)"},
        formats={"last": ".1f", "last10": ".1f"},
        caption="Test accuracy under 50% symmetric noise",
    )

The HTML is static (no script, no ``<style>`` block): every rule is an inline ``style``, so the
table looks the same in the book, in JupyterLab (which keeps inline styles of untrusted
outputs) and on Colab. Numbers are right-aligned in tabular figures and never broken; headers
and text wrap; the table is at most the column's width, in a small font, so that a label column
and up to about eight numeric columns fit without scrolling. Text is escaped. pandas is not
needed (a DataFrame is read through ``to_dict``).
"""

from __future__ import annotations

import html
import math
import numbers
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MISSING = "\u2013"  # an en dash for a missing value (None, NaN)
Format = str | Callable[[Any], str]

_TABLE_STYLE = (
    "border-collapse:collapse;table-layout:auto;width:auto;max-width:100%;margin:0.5em 0;"
    "font-size:0.8125rem;line-height:1.35;color:inherit;background:transparent;border:none"
)
_CAPTION_STYLE = "caption-side:top;text-align:left;padding:0 0 0.4em;font-weight:normal"
_CELL_STYLE = "padding:0.25em 0.5em;border:none;vertical-align:top;max-width:none"
_HEAD_STYLE = (
    _CELL_STYLE + ";vertical-align:bottom;font-weight:600;white-space:normal;overflow-wrap:break-word;"
    "border-bottom:1px solid rgba(128,128,128,0.7)"
)
_NUMBER_STYLE = ";text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums"
_TEXT_STYLE = ";text-align:left;white-space:normal;overflow-wrap:break-word"
_ROW_STYLE = "background:transparent;border-bottom:1px solid rgba(128,128,128,0.25)"


@dataclass(frozen=True, repr=False)
class ResultsTable:
    """A formatted table: ``header`` per column, ``cells`` row by row (strings), ``numeric``
    per column (right-aligned, unbroken), an optional ``caption``."""

    header: tuple[str, ...]
    cells: tuple[tuple[str, ...], ...]
    numeric: tuple[bool, ...]
    caption: str | None = None

    def to_html(self) -> str:
        def cell(tag: str, text: str, j: int, style: str) -> str:
            align = _NUMBER_STYLE if self.numeric[j] else _TEXT_STYLE
            if tag == "th":  # headers wrap, numbers' headers too
                align = align.replace("white-space:nowrap", "white-space:normal")
            return f'<{tag} style="{style}{align}">{html.escape(text)}</{tag}>'

        head = "".join(cell("th", h, j, _HEAD_STYLE) for j, h in enumerate(self.header))
        body = "".join(
            f'<tr style="{_ROW_STYLE}">'
            + "".join(cell("td", c, j, _CELL_STYLE) for j, c in enumerate(row))
            + "</tr>"
            for row in self.cells
        )
        caption = (
            f'<caption style="{_CAPTION_STYLE}">{html.escape(self.caption)}</caption>' if self.caption else ""
        )
        return (
            f'<div class="lnl-results" style="max-width:100%">'
            f'<table class="lnl-results-table" style="{_TABLE_STYLE}">{caption}'
            f'<thead><tr style="background:transparent">{head}</tr></thead><tbody>{body}</tbody></table></div>'
        )

    def _repr_html_(self) -> str:
        return self.to_html()

    def __str__(self) -> str:
        widths = [max(len(s) for s in col) for col in zip(self.header, *self.cells)]

        def line(values: Sequence[str]) -> str:
            return "  ".join(
                v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, self.numeric)
            ).rstrip()

        lines = [self.caption] if self.caption else []
        lines += [line(self.header), "  ".join("-" * w for w in widths)]
        lines += [line(row) for row in self.cells]
        return "\n".join(lines)

    __repr__ = __str__  # Jupyter's text/plain: the table, not the dataclass's fields


def results_table(
    rows: Iterable[Mapping[str, Any]] | Any,
    *,
    columns: Sequence[str] | None = None,
    headers: Mapping[str, str] | None = None,
    formats: Mapping[str, Format] | None = None,
    caption: str | None = None,
) -> ResultsTable:
    """A ``ResultsTable`` of ``rows`` (dicts, or a DataFrame whose index is kept as leading
    columns unless it is the default 0..n-1).

    ``columns``: which keys, in order (default: every key, in order of first appearance).
    ``headers``: the text shown for a key (default: the key); long headers wrap.
    ``formats``: per key, a format spec (``".1f"``, ``"+.2f"``, ``"{:.1f}%"``) or a function of
    the value; other floats get ``".2f"`` and other values ``str``. A missing value (absent key,
    None, NaN) shows as an en dash. A column is numeric (right-aligned) if all its present
    values are numbers.
    """
    records = _records(rows)
    if columns is None:
        columns = list(dict.fromkeys(k for r in records for k in r))
    columns = list(columns)
    if not columns:
        raise ValueError("results_table needs at least one column")
    if len(set(columns)) != len(columns):
        raise ValueError(f"columns repeat: {columns}")
    unknown = set(formats or {}) - set(columns) | set(headers or {}) - set(columns)
    if unknown:
        raise ValueError(f"formats or headers name columns not in the table: {sorted(unknown)}")
    formats = dict(formats or {})
    numeric = []
    for key in columns:
        present = [r[key] for r in records if key in r and not _missing(r[key])]
        numeric.append(bool(present) and all(_is_number(v) for v in present))
    cells = tuple(tuple(_format(r.get(key), formats.get(key)) for key in columns) for r in records)
    header = tuple(str((headers or {}).get(key, key)) for key in columns)
    return ResultsTable(header=header, cells=cells, numeric=tuple(numeric), caption=caption)


def _records(rows: Any) -> list[Mapping[str, Any]]:
    if hasattr(rows, "to_dict") and hasattr(rows, "columns"):  # a pandas DataFrame
        index = getattr(rows, "index", None)
        if index is not None and not (type(index).__name__ == "RangeIndex" and index.name is None):
            rows = rows.reset_index()
        return rows.to_dict("records")
    if isinstance(rows, (str, bytes, Mapping)):
        raise ValueError("rows must be a list of dicts or a DataFrame")
    records = list(rows)
    bad = [type(r).__name__ for r in records if not isinstance(r, Mapping)]
    if bad:
        raise ValueError(f"every row must be a dict, got {sorted(set(bad))}")
    return records


def _missing(value: Any) -> bool:
    if value is None or type(value).__name__ in ("NAType", "NaTType"):  # pandas' pd.NA and pd.NaT
        return True
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isnan(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Number) and not isinstance(value, bool)


def _format(value: Any, fmt: Format | None) -> str:
    if _missing(value):
        return MISSING
    if callable(fmt):
        return str(fmt(value))
    if fmt is not None:
        return fmt.format(value) if "{" in fmt else format(value, fmt)
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, numbers.Integral)):
        return format(float(value), ".2f")
    return str(value)
