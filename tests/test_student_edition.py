"""The student edition (scripts/student_edition.py): what it keeps, what it removes, that the
committed files are exactly what the chapters give, and that they are plain Jupyter Markdown: each
MyST construct's conversion on small inputs, no MyST left in any student notebook, and a student
notebook rendered by nbconvert showing its exercises as headings."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("student_edition", ROOT / "scripts" / "student_edition.py")
edition = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = edition  # its dataclasses look their module up
_spec.loader.exec_module(edition)

CHAPTERS = edition.chapters()


def _solution_blocks(nb) -> list[str]:
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    return re.findall(r"^````\{solution\}.*?\n(.*?)^````\s*$", text, re.M | re.S)


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_committed_edition_is_what_the_chapter_gives(chapter):
    assert (edition.STUDENT / chapter.name).read_text() == edition.render(chapter), (
        "student/ is stale: run python scripts/student_edition.py"
    )
    assert edition.render(chapter) == edition.render(chapter)  # deterministic


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_no_solution_survives_and_every_exercise_and_code_cell_does(chapter):
    nb = nbformat.read(chapter, as_version=4)
    student = nbformat.read(edition.STUDENT / chapter.name, as_version=4)
    text = "\n".join(c.source for c in student.cells)
    blocks = _solution_blocks(nb)
    assert len(blocks) == sum(c.source.count("{solution}") for c in nb.cells) > 0
    assert "{solution}" not in text
    # a line that the chapter's own code or text (outside the solutions) has is no leak
    chapter_own = "\n".join(c.source for c in nb.cells)
    for block in blocks:
        chapter_own = chapter_own.replace(block, "")
    for block in blocks:  # no other line of a solution is left
        lines = [
            ln.strip() for ln in block.splitlines() if len(ln.strip()) > 25 and ln.strip() not in chapter_own
        ]
        leaked = [ln for ln in lines if ln in text]
        assert not leaked, leaked
    # every exercise is a heading "Exercise <chapter>.<n>: <title>", in the chapter's order
    titles = re.findall(r"^`{3,}\{exercise\} ?(.*)$", "\n".join(c.source for c in nb.cells), re.M)
    doc = f"notebooks/{chapter.stem}"
    expected = [
        f"### Exercise {edition.chapter_number(chapter.stem)}.{n}: {edition.convert_inline(t, edition.load_book(), doc)}"
        for n, t in enumerate(titles, 1)
    ]
    assert titles and re.findall(r"^### Exercise .*$", text, re.M) == expected
    # the code is the chapter's, cell for cell, without outputs: executing the edition executes the chapter
    code = [c for c in nb.cells if c.cell_type == "code"]
    student_code = [c for c in student.cells if c.cell_type == "code"]
    assert [c.source for c in student_code] == [c.source for c in code]
    assert all(not c.outputs and c.execution_count is None for c in student_code)
    assert "raise NotImplementedError" in text and "def self_check" in text


def test_strip_solutions_handles_fences_and_refuses_an_unclosed_one():
    text = "intro\n\n````{solution} ex\n:class: dropdown\n\nsecret\n```python\nx = 1\n```\n````\nafter\n:::{solution} b\nhidden\n:::\nend"
    assert edition.strip_solutions(text) == "intro\n\nafter\nend"
    with pytest.raises(ValueError, match="unclosed"):
        edition.strip_solutions("````{solution} ex\nsecret\n```")


def test_strip_solutions_removes_a_gated_solution_and_refuses_one_that_leaves_the_cell():
    text = "a\n```{solution-start} ex\n:class: dropdown\n```\nsecret\n```{solution-end}\n```\nb"
    assert edition.strip_solutions(text) == "a\nb"
    with pytest.raises(ValueError, match="solution-end"):
        edition.strip_solutions("```{solution-start} ex\n```\nsecret")


# --- No MyST in a student notebook ---------------------------------------------------------------------

# written here, apart from the converter's own check, so that the two cannot share a blind spot
MYST = {
    "directive fence": r"^\s*(`{3,}|~{3,}|:{3,})\s*\{[^{}\s]+\}",
    "role": r"\{[A-Za-z][\w:.+-]*\}`",
    "(label)= target": r"^\s*\([^()\s]+\)=\s*$",
    "equation label": r"\$\$\s*\([^()\s]+\)\s*$",
    "directive option": r"^\s*:(label|class|name|nonumber|alt|width):",
    "eq reference": r"\{eq\}",
}


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_no_student_markdown_cell_has_myst_syntax(chapter):
    student = nbformat.read(edition.STUDENT / chapter.name, as_version=4)
    found = [
        (i, what, m.group(0))
        for i, cell in enumerate(student.cells)
        if cell.cell_type == "markdown"
        for what, pattern in MYST.items()
        for m in re.finditer(pattern, cell.source, re.M)
    ]
    assert not found, found


def test_a_student_notebook_in_html_shows_each_exercise_as_a_heading_followed_by_its_statement():
    nbconvert = pytest.importorskip(
        "nbconvert", reason="nbconvert not installed (requirements.txt pins it: run scripts/setup.sh)"
    )
    bs4 = pytest.importorskip("bs4")
    chapter = CHAPTERS[0]
    student = nbformat.read(edition.STUDENT / chapter.name, as_version=4)
    html, _ = nbconvert.HTMLExporter().from_notebook_node(student)
    soup = bs4.BeautifulSoup(html, "html.parser")
    markdown = [m.get_text() for m in soup.select(".jp-MarkdownCell")]
    assert markdown and not [(w, t[:80]) for t in markdown for w, p in MYST.items() if re.search(p, t, re.M)]
    headings = {h.get_text().rstrip("¶").strip(): h for h in soup.find_all(["h2", "h3"])}
    source = "\n".join(c.source for c in nbformat.read(chapter, as_version=4).cells)
    exercises = re.findall(r"^`{3,}\{exercise\} ?(.*)\n(?::.*\n)*\n*(.+)$", source, re.M)
    assert exercises
    doc, book = f"notebooks/{chapter.stem}", edition.load_book()
    for n, (title, first_line) in enumerate(exercises, 1):
        name = (
            f"Exercise {edition.chapter_number(chapter.stem)}.{n}: {edition.convert_inline(title, book, doc)}"
        )
        assert name in headings, (name, list(headings))
        statement = headings[name].find_next_sibling()
        assert statement is not None and statement.name == "p", name
        # the statement's first words, as the reader sees them (emphasis and code marks gone)
        words = re.sub(r"[*`]", "", edition.convert_inline(first_line, book, doc)).split()[:6]
        assert " ".join(words) in " ".join(statement.get_text().split()), (name, words)


# --- Each MyST construct, converted --------------------------------------------------------------------

BIB = {
    "one": (("Krizhevsky",), "2009"),
    "two": (("Zhang", "Sabuncu"), "2018"),
    "three": (("Li", "Socher", "Hoi"), "2020"),
    "many": (("Chen", "Gan", "others"), "2022"),
}
TARGETS = {
    "fig-loss": edition.Target("figure", "notebooks/01_x", "3"),
    "sec-loss": edition.Target("section", "notebooks/01_x", title="3. The small-loss prior"),
    "ex-mae": edition.Target("exercise", "notebooks/01_x", "1.2", "Why MAE is robust"),
    "eq-risk": edition.Target("equation", "notebooks/01_x", "2"),
    "fig-other": edition.Target("figure", "notebooks/05_y", "1"),
    "bare": edition.Target("", "notebooks/01_x"),
}
TITLES = {"notebooks/01_x": "Noisy labels", "notebooks/05_y": "CPC", "book/deviations": "Deviations"}
BOOK = edition.Book(BIB, TARGETS, TITLES, {"profile": "reduced"}, lambda: "https://files/v1")
DOC = "notebooks/01_x"


def convert(text: str, chapter: str = "1") -> str:
    return edition.convert_markdown(text, edition.Page(BOOK, DOC, chapter))


def test_split_blocks_tells_directives_code_math_and_text_apart():
    text = (
        "intro\n````{exercise} Title\n:label: ex\n\nbody\n```python\nx = 1\n```\n````\n"
        ":::\nnot a fence\n:::\n```bash\nls\n```\n$$\na\n$$ (eq-a)\nend"
    )
    blocks = edition.split_blocks(text)
    assert [b.kind for b in blocks] == ["text", "directive", "text", "code", "math", "text"]
    ex = blocks[1]
    assert (ex.name, ex.arg, ex.options, ex.text) == (
        "exercise",
        "Title",
        (("label", "ex"),),
        "body\n```python\nx = 1\n```",
    )
    assert blocks[2].text == ":::\nnot a fence\n:::" and blocks[4].label == "eq-a"
    yaml_options = edition.split_blocks("```{figure} a.png\n---\nname: fig-a\nalt: A\n---\nCaption\n```")
    assert (
        dict(yaml_options[0].options) == {"name": "fig-a", "alt": "A"} and yaml_options[0].text == "Caption"
    )
    with pytest.raises(ValueError, match="unclosed"):
        edition.split_blocks("````{exercise}\nbody\n```")
    with pytest.raises(ValueError, match=r"\$\$"):
        edition.split_blocks("$$\na = b")


def test_term_becomes_its_text():
    assert edition.term_text("memorises <memorisation>") == "memorises"
    assert edition.term_text("AUC") == "AUC"
    assert convert("it {term}`memorises <memorisation>` the {term}`AUC`") == "it memorises the AUC"


def test_citations_are_author_year():
    assert edition.cite_text("cite:p", "one", BIB) == "(Krizhevsky, 2009)"
    assert edition.cite_text("cite:p", "two, three", BIB) == "(Zhang and Sabuncu, 2018; Li et al., 2020)"
    assert edition.cite_text("cite:t", "three", BIB) == "Li et al. (2020)"
    assert edition.cite_text("cite:t", "one,two", BIB) == "Krizhevsky (2009); Zhang and Sabuncu (2018)"
    assert edition.cite_text("cite:p", "many", BIB) == "(Chen et al., 2022)"
    assert edition.cite_text("cite:ts", "three", BIB) == "Li, Socher and Hoi (2020)"
    assert edition.cite_text("cite", "two", BIB) == "(Zhang and Sabuncu, 2018)"
    assert edition.cite_text("cite:year", "two", BIB) == "2018"
    with pytest.raises(ValueError, match="no entry 'nope'"):
        edition.cite_text("cite:p", "one,nope", BIB)
    with pytest.raises(ValueError, match="unknown citation role"):
        edition.cite_text("cite:empty", "one", BIB)


def test_the_bibliography_gives_last_names_with_their_von_part_and_accents(tmp_path):
    bib = tmp_path / "refs.bib"
    bib.write_text(
        "@article{a, author = {van der Maaten, Laurens and Hinton, Geoffrey}, year = {2008}}\n"
        '@article{b, author = {Nishi, Kento and H{\\"o}llerer, Tobias and Rich, Alex}, year = {2021}}\n'
    )
    entries = edition.load_bibliography(bib)
    assert entries == {
        "a": (("van der Maaten", "Hinton"), "2008"),
        "b": (("Nishi", "Höllerer", "Rich"), "2021"),
    }
    assert edition.cite_text("cite:t", "a", entries) == "van der Maaten and Hinton (2008)"


def test_ref_and_numref_become_their_text_or_what_they_point_to():
    r = lambda role, content: edition.ref_text(role, content, TARGETS, DOC, TITLES)  # noqa: E731
    assert r("ref", "the plot <fig-loss>") == "the plot"
    assert r("ref", "fig-loss") == "Figure 3"
    assert r("ref", "sec-loss") == "3. The small-loss prior"
    assert r("ref", "ex-mae") == "Exercise 1.2"
    assert r("ref", "fig-other") == "Figure 1 in “CPC”"
    assert r("numref", "Fig. %s <fig-loss>") == "Fig. 3"
    assert r("numref", "Exercise {number} <ex-mae>") == "Exercise 1.2"
    assert r("numref", "fig-loss") == "Figure 3"
    for content in ("bare", "missing"):
        with pytest.raises(ValueError, match="text <"):
            r("ref", content)
    with pytest.raises(ValueError, match="no number"):
        r("numref", "Figure %s <sec-loss>")


def test_doc_becomes_its_text_or_the_page_title():
    assert edition.doc_text("the benchmark <05_y>", DOC, TITLES) == "the benchmark"
    assert edition.doc_text("05_y", DOC, TITLES) == "“CPC”"
    assert edition.doc_text("../book/deviations", DOC, TITLES) == "“Deviations”"
    assert edition.doc_text("/book/deviations.md", DOC, TITLES) == "“Deviations”"
    with pytest.raises(ValueError, match="no such page"):
        edition.doc_text("nowhere", DOC, TITLES)


def test_eq_becomes_its_number_else_its_label():
    assert edition.eq_text("eq-risk", TARGETS) == "Eq. (2)"
    assert edition.eq_text("eq-unknown", TARGETS) == "eq-unknown"
    assert edition.eq_text("the risk <eq-risk>", TARGETS) == "the risk"


def test_other_roles_and_substitutions_and_an_unknown_role():
    assert convert("{math}`x^2`, H{sub}`2`O, {func}`~lnl_core.noise.symmetric`, {{ profile }}") == (
        "$x^2$, H<sub>2</sub>O, `lnl_core.noise.symmetric`, reduced"
    )
    with pytest.raises(ValueError, match=r"unknown MyST role \{py:nothing\}"):
        convert("{py:nothing}`x`")
    with pytest.raises(ValueError, match="unknown substitution"):
        convert("{{ nope }}")


def test_inline_code_math_and_code_blocks_are_left_alone():
    text = "``{term}`x` `` and $a_{b}$ and\n```python\nprint('{term}`y`')\n```"
    assert convert(text) == text


def test_collect_targets_numbers_as_the_book_does():
    sources = [
        "## 1. Intro\n(sec-intro)=\n## 2. Method\n\n$$\na\n$$ (eq-a)\n(fig-a)=\n*Figure 4: a caption.*",
        "```{math}\n:label: eq-b\nb\n```\n```{figure} x.png\n:name: fig-d\nCaption\n```\n(bare)=\nA paragraph.",
        "````{exercise} First\n:label: ex-1\n````\n(ex-2-target)=\n````{exercise} Second\n````",
    ]
    targets = edition.collect_targets(sources, DOC, "3")
    assert targets == {
        "sec-intro": edition.Target("section", DOC, title="2. Method"),
        "eq-a": edition.Target("equation", DOC, "1"),
        "fig-a": edition.Target("figure", DOC, "4"),
        "eq-b": edition.Target("equation", DOC, "2"),
        "fig-d": edition.Target("figure", DOC, "1"),
        "bare": edition.Target("", DOC),
        "ex-1": edition.Target("exercise", DOC, "3.1", "First"),
        "ex-2-target": edition.Target("exercise", DOC, "3.2", "Second"),
    }


def test_targets_comments_and_equation_labels_are_dropped():
    assert edition.drop_targets("(fig-1)=\n*Figure 1: x.*") == "*Figure 1: x.*"
    assert edition.drop_comments("a\n% a MyST comment\n+++\nb") == "a\nb"
    assert edition.drop_equation_label("$$\nx = 1\n$$ (eq-x)") == "$$\nx = 1\n$$"
    assert convert("(fig-1)=\n*Figure 1: x.*\n\n$$ y = 2 $$ (eq-y)") == "*Figure 1: x.*\n\n$$ y = 2 $$"


def test_an_exercise_becomes_a_heading_and_its_statement():
    assert edition.exercise_heading("Title", "1.2", "Do it.") == "### Exercise 1.2: Title\n\nDo it."
    text = (
        "## Exercises\n\n````{exercise} Why {term}`MAE <mean absolute error>` is robust\n:label: ex-mae\n\n"
        "Show it {cite:p}`one`.\n````\n\n````{solution} ex-mae\n:class: dropdown\n\nsecret\n````\n\n"
        "```{exercise}\n:nonumber:\nNo number.\n```\n\n```{exercise-start} Gated\n:label: ex-g\n```\n"
        "Gated statement.\n```{exercise-end}\n```\n\n```{exercise}\nUntitled.\n```"
    )
    assert convert(text) == (
        "## Exercises\n\n### Exercise 1.1: Why MAE is robust\n\nShow it (Krizhevsky, 2009).\n\n"
        "### Exercise\n\nNo number.\n\n### Exercise 1.2: Gated\nGated statement.\n\n### Exercise 1.3\n\nUntitled."
    )
    assert convert("```{exercise} T\nx\n```", chapter="") == "### Exercise 1: T\n\nx"


def test_admonitions_become_block_quotes_with_a_bold_title():
    assert convert(":::{admonition} Key takeaways\n:class: tip\n\n* one\n* two\n:::") == (
        "> **Key takeaways**\n>\n> * one\n> * two"
    )
    assert convert("```{note}\nRead {term}`this`.\n```") == "> **Note**\n>\n> Read this."
    assert convert("```{warning} Careful here.\nMore.\n```") == "> **Warning**\n>\n> Careful here.\n> More."
    assert convert(":::{seealso}\nx\n:::") == "> **See also**\n>\n> x"
    nested = convert("::::{tip}\n:::{note}\ninner\n:::\n::::")
    assert nested == "> **Tip**\n>\n> > **Note**\n> >\n> > inner"
    assert convert(":::{admonition} Hint\n:class: dropdown\nx\n:::") == (
        "<details>\n<summary><b>Hint</b></summary>\n\nx\n\n</details>"
    )


def test_a_formula_inside_a_block_quote_is_put_on_one_line():
    quoted = convert(":::{note}\nso $a +\nb$ and\n$$\nx = 1\n$$\nand `$not\nmath`\n:::")
    assert quoted == "> **Note**\n>\n> so $a + b$ and\n> $$ x = 1 $$\n> and `$not\n> math`"
    with pytest.raises(ValueError, match="TeX comment"):
        convert(":::{note}\n$$\nx % why\n= 1\n$$\n:::")


def test_figures_become_images_or_their_caption():
    assert (
        edition.image_url("img/a.png", DOC, lambda: "https://files/v1")
        == "https://files/v1/notebooks/img/a.png"
    )
    assert edition.image_url("https://x.org/a.png", DOC, lambda: 1 / 0) == "https://x.org/a.png"
    figure = "```{figure} ../book/img/a.png\n:name: fig-loss\n:alt: the losses\n\nThe losses.\n\nLegend.\n```"
    assert convert(figure) == (
        "![the losses](https://files/v1/book/img/a.png)\n\n*Figure 3: The losses.*\n\nLegend."
    )
    assert convert("```{figure} /a.png\nCaption.\n```") == "![Caption.](https://files/v1/a.png)\n\n*Caption.*"
    assert (
        convert("```{glue:figure} losses_fig\nDrawn by the cell above.\n```") == "*Drawn by the cell above.*"
    )


def test_math_code_and_raw_html_directives():
    assert convert("```{math}\n:label: eq-risk\nR = 1\n```") == "$$\nR = 1\n$$"
    assert convert("```{code-block} python\nx = 1\n```") == "```python\nx = 1\n```"
    assert convert("```{raw} html\n<b>x</b>\n```") == "<b>x</b>"


def test_an_unknown_directive_or_leftover_myst_fails_naming_the_cell(tmp_path):
    assert convert("```{solution} ex\nx\n```") == ""  # known: removed
    with pytest.raises(ValueError, match=r"unknown MyST directive \{list-table\}"):
        convert("```{list-table}\nx\n```")
    assert edition.find_myst("ok `{term}`x`` $a$\n```\n(x)=\n```") == []
    assert edition.find_myst("(x)=\n:label: y") == [
        "a (label)= target: '(x)='",
        "a directive option: ':label:'",
    ]
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell("# Title", id="title"),
            nbformat.v4.new_markdown_cell(":::{card}\nx\n:::", id="the-card"),
        ]
    )
    path = tmp_path / "09_new.ipynb"
    nbformat.write(nb, path)
    with pytest.raises(
        ValueError, match=r"09_new.ipynb, cell 1 \(id the-card\): unknown MyST directive \{card\}"
    ):
        edition.student_notebook(path, BOOK)
