"""What every chapter notebook promises about its runs, checked without training.

* Equal budgets under both profiles: each chapter builds the configs of its comparisons in
  cells tagged ``run-plan`` and checks them with ``check_equal_budgets``. Here those cells are
  executed under ``LNL_PROFILE=full`` (building configs needs no data), and every check they
  make must pass on the full profile's configs.
* One colour per method: the book-wide style helper.
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import nbformat
import pytest

from lnl_core import METHODS, LNLError, build_config, experiment
from lnl_core.plotting import METHOD_STYLES, VARIANT_MARKERS, method_color, method_style

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
CHAPTERS = sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb"))


def _plan_cells(chapter: str) -> tuple[str, list[str]]:
    nb = nbformat.read(NOTEBOOKS / f"{chapter}.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    setup = next(c.source for c in code if "PROFILE = os.environ" in c.source)
    return setup, [c.source for c in code if "run-plan" in c.metadata.get("tags", [])]


# Chapters whose run plan runs each method under its own paper's protocol, not one shared budget:
# the benchmark (its budgets are a column of its cost table).
OWN_PROTOCOLS = {"08_benchmark"}


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_comparison_has_equal_budgets_under_the_full_profile(chapter, monkeypatch):
    setup, plans = _plan_cells(chapter)
    assert plans, f"{chapter} has no cell tagged run-plan"
    checked = []
    original = experiment.check_equal_budgets

    def recording(configs, **kwargs):
        checked.append(dict(configs))
        return original(configs, **kwargs)

    monkeypatch.setenv("LNL_PROFILE", "full")
    monkeypatch.setattr(experiment, "check_equal_budgets", recording)
    namespace: dict = {}
    with contextlib.redirect_stdout(io.StringIO()), pytest.warns(UserWarning, match="full-profile runs"):
        exec("import sys\n" + setup, namespace)
        for cell in plans:
            exec(cell, namespace)  # raises LNLError on an unequal budget; warns with the run time
    assert namespace["PROFILE"] == "full"
    if chapter in OWN_PROTOCOLS:  # every registered method, each on its paper's protocol
        plan = namespace["plan"]
        assert {m.split("+")[0] for m in plan.methods} == set(METHODS) and plan.profile == "full"
        assert all(c.profile == "full" for c in namespace["configs"].values())
        return
    assert checked, f"{chapter}: its run-plan cells never call check_equal_budgets"
    for configs in checked:
        assert all(c.profile == "full" for c in configs.values()), chapter
        assert len({c.epochs for c in configs.values()}) == 1, chapter


def _cfg(method, **overrides):
    return build_config(method, profile="full", dataset="cifar10", overrides=overrides or None)


def test_check_equal_budgets_finds_unequal_and_stale_differences():
    pmnar = _cfg("pmnar")
    budget = {"epochs": pmnar.epochs, "milestones": pmnar.milestones, "batch_size": pmnar.batch_size}
    same = experiment.check_equal_budgets({"PMNAR": pmnar, "CE": _cfg("ce", **budget)})
    assert same["epochs"] == 300 and same["milestones"] == (120, 240)
    with pytest.raises(LNLError, match="epochs differs: PMNAR 300, CE 15"):
        experiment.check_equal_budgets({"PMNAR": pmnar, "CE": _cfg("ce", **dict(budget, epochs=15))})
    no_aug = _cfg("ce", **dict(budget, augment="none"))
    with pytest.raises(LNLError, match="augment differs"):
        experiment.check_equal_budgets({"PMNAR": pmnar, "CE": no_aug})
    named = experiment.check_equal_budgets({"PMNAR": pmnar, "CE": no_aug}, named={"CE": ("augment",)})
    assert named["augment"] == "weak"  # the budget of the runs that do not differ
    with pytest.raises(LNLError, match="said to differ in augment"):
        experiment.check_equal_budgets(
            {"PMNAR": pmnar, "CE": _cfg("ce", **budget)}, named={"CE": ("augment",)}
        )
    with pytest.raises(LNLError, match="unknown runs"):
        experiment.check_equal_budgets({"PMNAR": pmnar}, named={"CE": ("lr",)})


def test_notebook_run_dir_only_under_the_full_profile():
    assert experiment.notebook_run_dir("04_pmnar", "PM + AR", "reduced") is None
    assert experiment.notebook_run_dir("04_pmnar", "PM + AR", "full") == Path("runs/04_pmnar/pm---ar")


def test_full_profile_warning_counts_the_epochs():
    assert experiment.full_profile_warning("04_pmnar", {"CE": build_config("ce")}) is None
    configs = {"CE": _cfg("ce"), "PMNAR": _cfg("pmnar")}
    with pytest.warns(UserWarning, match="2 full-profile runs, 600 epochs in all.* 5-22 hours"):
        experiment.full_profile_warning("04_pmnar", configs)


def test_every_method_has_one_colour_and_variants_keep_it():
    assert set(METHODS) <= set(METHOD_STYLES)
    colours = {method_color(m) for m in METHODS if m != "dividemix-pe"}
    assert len(colours) == len(METHODS) - 1  # no two methods share a colour
    own = {marker for _, marker in METHOD_STYLES.values()}
    assert len(own) == len(set(METHOD_STYLES.values()))  # one marker, one method
    assert not own & set(VARIANT_MARKERS)
    base, ablation = method_style("pmnar"), method_style("pmnar", variant=2)
    assert base["color"] == ablation["color"] and base["linestyle"] != ablation["linestyle"]
    with pytest.raises(ValueError, match="no style for method"):
        method_color("mixup")


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_the_colab_install_cell_pins_this_version(chapter):
    from lnl_core import __version__

    nb = nbformat.read(NOTEBOOKS / f"{chapter}.ipynb", as_version=4)
    install = nb.cells[1]
    assert install.cell_type == "code" and "pip" in install.source, (
        f"{chapter}: cell 1 is not the install cell"
    )
    assert f'BOOK_VERSION = "{__version__}"' in install.source, (
        f"{chapter}: install cell not pinned to {__version__}"
    )
    assert "hide-input" in install.metadata.get("tags", [])


def test_no_control_characters_in_the_book_sources():
    # "\tau" written through a Python string once became a tab followed by "au" on a page
    bad = re.compile(r"[\x00-\x08\x0b-\x1f]")
    pages = {p.name: p.read_text() for p in (NOTEBOOKS.parent / "book").glob("*.md")}
    for chapter in CHAPTERS:
        nb = nbformat.read(NOTEBOOKS / f"{chapter}.ipynb", as_version=4)
        pages |= {f"{chapter} cell {i}": c.source for i, c in enumerate(nb.cells)}
    found = {name: bad.search(text).group(0) for name, text in pages.items() if bad.search(text)}
    assert not found, found


# ------------------------------------------------------------------------ one numbering (issue #30)

ROOT = NOTEBOOKS.parent
# the chapter a method's name refers to, wherever the text says "NAME (chapter N)" or "chapter N (NAME)"
CHAPTER_OF = {"DivideMix": 2, "PEMM": 3, "PMNAR": 4, "CPC": 5, "PLReMix": 6, "LNL-flywheel": 7}


def _number(stem: str) -> int:
    return int(stem.split("_", 1)[0])


def test_files_sidebar_titles_guide_and_text_agree_on_chapter_numbers():
    import yaml

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [c["file"] for part in toc["parts"] for c in part["chapters"]]
    chapters = [f.removeprefix("notebooks/") for f in files if f.startswith("notebooks/")]
    assert chapters == CHAPTERS  # the sidebar lists the chapters in file order
    assert [_number(c) for c in chapters] == list(range(1, len(chapters) + 1))
    for stem in chapters:
        nb = nbformat.read(NOTEBOOKS / f"{stem}.ipynb", as_version=4)
        title = nb.cells[0].source.splitlines()[0]
        assert title.startswith(f"# {_number(stem)}. "), f"{stem}: its title is {title!r}"
        assert (ROOT / "student" / f"{stem}.ipynb").is_file(), f"{stem} has no student edition"
    guide = (ROOT / "book" / "instructor-guide.md").read_text()
    headings = re.findall(r"^### (\d+)\. .*\{doc\}`\.\./notebooks/(\w+)`", guide, flags=re.M)
    assert [(int(n), stem) for n, stem in headings] == [(_number(c), c) for c in chapters]
    texts = [(p.name, p.read_text()) for p in sorted((ROOT / "book").glob("*.md"))]
    texts += [(f"{c}.ipynb", "\n".join(cell.source for cell in nbformat.read(NOTEBOOKS / f"{c}.ipynb", as_version=4).cells))
              for c in chapters]  # fmt: skip
    for name, text in texts:
        text = " ".join(text.split())
        for n in re.findall(r"\bchapters? (\d+)\b", text, flags=re.I):
            assert 1 <= int(n) <= len(chapters), f"{name} refers to a chapter {n}"
        for method, n in re.findall(r"\b([A-Za-z-]+) \(chapter (\d+)\)", text) + [
            (m, n) for n, m in re.findall(r"\bchapter (\d+) \(([A-Za-z-]+)\)", text)
        ]:
            if method in CHAPTER_OF:
                assert CHAPTER_OF[method] == int(n), (
                    f"{name}: {method} is chapter {CHAPTER_OF[method]}, not {n}"
                )
