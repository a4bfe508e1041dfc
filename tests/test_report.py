"""Results tables for the notebooks: values formatted, text escaped, static HTML that fits."""

import math
import re

import numpy as np
import pandas as pd
import pytest

from lnl_core.report import MISSING, ResultsTable, results_table

ROWS = [
    {"method": "CE", "noise": "symmetric 50%", "last": 61.234, "last10": 60.81, "epochs": 30},
    {"method": "DivideMix", "noise": "symmetric 50%", "last": 88.0, "last10": float("nan"), "epochs": 30},
]


def _cells(html: str, tag: str) -> list[str]:
    return re.findall(rf"<{tag} [^>]*>(.*?)</{tag}>", html)


def test_values_headers_and_formats():
    t = results_table(
        ROWS,
        headers={"last": "last epoch (%)", "last10": "mean of the last 10 epochs (%)"},
        formats={"last": ".1f", "last10": "{:.1f}%"},
        caption="Test accuracy",
    )
    html = t._repr_html_()
    assert _cells(html, "th") == [
        "method",
        "noise",
        "last epoch (%)",
        "mean of the last 10 epochs (%)",
        "epochs",
    ]
    assert _cells(html, "td") == ["CE", "symmetric 50%", "61.2", "60.8%", "30"] + [
        "DivideMix", "symmetric 50%", "88.0", MISSING, "30"]  # fmt: skip
    assert "<caption" in html and "Test accuracy</caption>" in html
    assert t.numeric == (False, False, True, True, True)


def test_defaults_columns_order_and_missing_keys():
    t = results_table([{"a": 1.23456, "b": "x"}, {"c": None, "a": 2}], columns=None)
    assert t.header == ("a", "b", "c")  # order of first appearance
    assert t.cells == (("1.23", "x", MISSING), ("2", MISSING, MISSING))
    assert results_table(ROWS, columns=["last", "method"]).header == ("last", "method")
    assert results_table(ROWS, formats={"last": lambda v: f"{v:.0f} pts"}).cells[0][2] == "61 pts"


def test_text_is_escaped_and_the_html_is_static():
    t = results_table([{"<b>name</b>": "<script>alert(1)</script> & co", "x": 1.0}], caption="a < b")
    html = t.to_html()
    assert "<script" not in html and "<b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in html and "&lt;b&gt;name&lt;/b&gt;" in html
    assert "a &lt; b</caption>" in html
    assert (
        "<style" not in html
        and "javascript:" not in html.lower()
        and " on" not in re.sub(r'"[^"]*"', "", html)
    )


def test_wrapper_and_fitting_styles():
    html = results_table(ROWS).to_html()
    assert html.startswith('<div class="lnl-results" style="max-width:100%">')
    table = re.search(r'<table class="lnl-results-table" style="([^"]*)"', html).group(1)
    assert "max-width:100%" in table and "font-size:0.8125rem" in table and "table-layout:auto" in table
    assert "overflow:hidden" not in html
    th = re.findall(r'<th style="([^"]*)"', html)
    assert all("white-space:normal" in s for s in th)  # long headers wrap
    td = re.findall(r'<td style="([^"]*)"', html)
    assert "text-align:right" in td[2] and "white-space:nowrap" in td[2]  # numbers: right, unbroken
    assert "text-align:left" in td[0]


def test_dataframe_and_numpy_values():
    df = pd.DataFrame(ROWS)
    assert results_table(df).cells == results_table(ROWS).cells
    indexed = df.set_index("method")
    assert results_table(indexed).header[0] == "method"  # a named index is kept
    t = results_table([{"k": np.int64(3), "acc": np.float32(0.5), "n": pd.NA}])
    assert t.cells == (("3", "0.50", MISSING),) and t.numeric == (True, True, False)


def test_plain_text_for_a_terminal():
    t = results_table(ROWS, columns=["method", "last"], caption="acc")
    assert str(t) == repr(t) == "acc\nmethod      last\n---------  -----\nCE         61.23\nDivideMix  88.00"


@pytest.mark.parametrize(
    "rows, kwargs, match",
    [
        ({"a": 1}, {}, "list of dicts or a DataFrame"),
        (["a", "b"], {}, "every row must be a dict"),
        ([], {}, "at least one column"),
        (ROWS, {"columns": ["last", "last"]}, "columns repeat"),
        (ROWS, {"formats": {"acc": ".1f"}}, "not in the table"),
        (ROWS, {"headers": {"acc": "accuracy"}}, "not in the table"),
    ],
)
def test_rejects(rows, kwargs, match):
    with pytest.raises(ValueError, match=match):
        results_table(rows, **kwargs)


def test_is_a_value():
    t = results_table(ROWS)
    assert isinstance(t, ResultsTable) and t == results_table(ROWS)
    assert math.isnan(ROWS[1]["last10"])  # the input is not changed
