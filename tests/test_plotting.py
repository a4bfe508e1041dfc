"""The book's figure helpers: one style per method, and figures that fit the column."""

import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from lnl_core.plotting import (  # noqa: E402
    BOOK_DPI,
    BOOK_STYLE,
    COLUMN_WIDTH_PX,
    FIGURE_WIDTH_IN,
    MIN_FONT_PT,
    book_style,
    column_figure,
    small_text,
)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def _png_width(fig, **savefig_kw) -> int:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", **savefig_kw)
    buf.seek(0)
    return Image.open(buf).size[0]


def _typical(fig, axes):
    """A figure as the chapters draw them: curves, labels, a legend, titles."""
    for i, ax in enumerate(np.atleast_1d(axes).ravel()):
        epochs = np.arange(1, 101)
        ax.plot(epochs, 50 + 40 * (1 - np.exp(-epochs / 20)), label="DivideMix")
        ax.plot(epochs, 45 + 30 * (1 - np.exp(-epochs / 10)), label="CE")
        ax.set(xlabel="epoch", ylabel="test accuracy (%)", title=f"panel {i + 1}")
        ax.legend()
    fig.suptitle("accuracy under 40% asymmetric noise")


@pytest.mark.parametrize("nrows, ncols", [(1, 1), (1, 2), (2, 2), (3, 1)])
def test_column_figure_is_the_column_wide_and_shown_unscaled(nrows, ncols):
    fig, axes = column_figure(nrows, ncols)
    assert fig.get_figwidth() == FIGURE_WIDTH_IN and fig.dpi == BOOK_DPI
    assert np.shape(axes) == (
        () if nrows == ncols == 1 else (nrows, ncols) if nrows > 1 and ncols > 1 else (nrows * ncols,)
    )
    _typical(fig, axes)
    assert _png_width(fig) == round(FIGURE_WIDTH_IN * BOOK_DPI) <= COLUMN_WIDTH_PX
    # as the inline backend saves it (bbox_inches="tight" adds 0.1 in a side): still inside the
    # column, and so shown at its natural width, and wide enough to fill most of it
    assert 0.95 * COLUMN_WIDTH_PX <= _png_width(fig, bbox_inches="tight") <= COLUMN_WIDTH_PX


def test_column_figure_height():
    assert column_figure()[0].get_figheight() == pytest.approx(3.2)
    assert column_figure(2, 2)[0].get_figheight() == pytest.approx(5.6)
    fig, _ = column_figure(ncols=2, height=2.0, sharey=True)
    assert fig.get_figheight() == pytest.approx(2.0)


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        ((1, 3), {}, "at most 2 panels a row"),
        ((0, 1), {}, "positive integers"),
        ((1, 1.5), {}, "positive integers"),
        ((1, 1), {"height": 0}, "height must be positive"),
        ((1, 1), {"figsize": (12, 4)}, "sets figsize"),
        ((1, 1), {"dpi": 200}, "sets dpi"),
    ],
)
def test_column_figure_rejects(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        column_figure(*args, **kwargs)


@pytest.mark.parametrize("ncols", [1, 2])
def test_no_text_under_9_points(ncols):
    fig, axes = column_figure(ncols=ncols)
    _typical(fig, axes)
    assert small_text(fig) == []
    sizes = {
        t.get_fontsize() for ax in np.atleast_1d(axes) for t in ax.get_xticklabels() + ax.get_yticklabels()
    }
    assert sizes == {BOOK_STYLE["xtick.labelsize"]}  # the style's size, read when the axes were made
    assert min(v for k, v in BOOK_STYLE.items() if k.endswith("size")) >= MIN_FONT_PT


def test_small_text_finds_small_text_and_skips_hidden_axes():
    fig, (ax1, ax2) = column_figure(ncols=2)
    ax1.plot([0, 1], [0, 1])
    ax1.set_xlabel("epoch", fontsize=7)
    ax1.annotate("peak", (0.5, 0.5), fontsize="x-small")  # 0.694 of 10 pt
    ax2.tick_params(labelsize=6)
    ax2.axis("off")  # its tick labels are not drawn
    found = small_text(fig)
    assert sorted(found) == ["6.94 pt: 'peak'", "7 pt: 'epoch'"]
    assert small_text(fig, min_pt=6) == []


def test_column_figure_leaves_the_global_style_alone():
    before = dict(plt.rcParams)
    column_figure(ncols=2)
    with book_style():
        assert plt.rcParams["xtick.labelsize"] == BOOK_STYLE["xtick.labelsize"]
    assert dict(plt.rcParams) == before
