"""The student edition: each chapter notebook with every solution removed, in plain Jupyter Markdown.

    python scripts/student_edition.py            # write student/<chapter>.ipynb for every chapter
    python scripts/student_edition.py --check    # exit 1 if student/ differs from what the chapters give

Generated, never edited by hand. From ``notebooks/<chapter>.ipynb`` it keeps every code cell (the
same source, tags and cell ids; outputs cleared, so a student runs the chapter) and every markdown
cell with its ``{solution}`` blocks cut out; a markdown cell that held only solutions is dropped.
The exercises, their code stubs and the self-check stay, and the self-check reports "not attempted
yet" on the untouched stubs. A note after the title says where the file comes from. The output
depends only on the chapters (and the book's bibliography and pages they refer to), so running
the command twice gives the same bytes; a test regenerates the editions and compares them with
the committed ones, and CI executes the committed ones under nbval.

MyST renders only in the book; a student opens the edition in JupyterLab or Colab, so every
markdown cell is turned into plain Jupyter Markdown, one small function per construct:

* ``{exercise}`` (and ``{exercise-start}``/``{exercise-end}``) -> a heading ``### Exercise c.n: title``
  and its statement (c the chapter's number, from its file name; n the exercise's number on the
  page, as the book and the instructor's guide count them);
* admonitions (``{note}``, ``{tip}``, ..., ``{admonition} Title``; backtick or colon fences) -> a
  block quote with a bold title line (a ``dropdown`` one -> an HTML ``<details>``);
* ``{term}`` -> its text; ``{cite:p}``/``{cite:t}`` (and ``cite``, ``cite:ps``, ``cite:ts``,
  ``cite:alp``, ``cite:author``, ``cite:year``) -> "(Author, year)"/"Author (year)" from
  references.bib;
* ``{ref}``/``{numref}`` -> their explicit text (``%s`` filled in); without one, the target's own
  text: "Figure n" for a caption that starts "Figure n" or a ``{figure}`` (numbered in page order,
  as Sphinx does), a section's title, "Exercise c.n", "Eq. (n)"; ``{doc}`` -> its text, else the
  page's title in quotes; ``{eq}`` -> "Eq. (n)" (labelled equations numbered in page order), else
  the label;
* ``(label)=`` targets and ``%`` comment lines are dropped, and so is the label of a ``$$ ... $$
  (label)`` equation; ``{math}`` -> ``$$ ... $$``; ``{figure}`` -> a Markdown image (from the
  repository at the release tag, so that it shows on Colab too) and its caption in italics;
  ``{glue:figure}`` (a figure drawn by a code cell) -> the caption in italics; ``{{ name }}``
  substitutions -> their value from _config.yml.

Code (fenced blocks, inline code) and math are never rewritten. A construct it does not know, or
MyST syntax left over after the conversion, stops the script with an error naming the chapter and
the cell, rather than leaving MyST for the student to read.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import posixpath
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = ROOT / "notebooks"
STUDENT = ROOT / "student"
_OPEN = re.compile(r"^(`{3,}|:{3,})\{solution(-start)?\}")

NOTE = (
    "**Student edition.** This notebook is generated from `notebooks/{stem}.ipynb` by "
    "`scripts/student_edition.py`, without the solutions (they are in the book). Run the cells in "
    "order; each exercise has a code stub to replace, and the self-check at the end reports "
    '"not attempted yet" until you do.'
)


def strip_solutions(text: str) -> str:
    """``text`` without its ``{solution}`` directive blocks (backtick or colon fences, closed by
    a fence of the same character at least as long), nor its gated ``{solution-start}`` ...
    ``{solution-end}`` spans, which must close in the same cell."""
    out, fence, gated = [], None, False
    for line in text.split("\n"):
        if fence is None:
            m = _OPEN.match(line)
            if m:
                fence, gated = m.group(1), bool(m.group(2))
                continue
            if not gated:
                out.append(line)
            elif re.match(r"^(`{3,}|:{3,})\{solution-end\}", line):
                fence, gated = re.match(r"[`:]+", line).group(0), False
        elif re.fullmatch(re.escape(fence[0]) + f"{{{len(fence)},}}\\s*", line):
            fence = None
    if fence is not None:
        raise ValueError(f"unclosed {{solution}} block (fence {fence})")
    if gated:
        raise ValueError("a {solution-start} without its {solution-end} in the same cell")
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip("\n")


# --- Reading MyST: blocks ------------------------------------------------------------------------------

_FENCE = re.compile(r"^\s*(?P<fence>`{3,}|~{3,}|:{3,})(?P<info>.*)$")
_DIRECTIVE = re.compile(r"^\{(?P<name>[^{}\s]+)\}\s*(?P<arg>.*)$")
_DISPLAY_CLOSE = re.compile(r"^(?P<math>.*\$\$)\s*(?:\((?P<label>[^()\s]+)\))?\s*$")


@dataclasses.dataclass(frozen=True)
class Block:
    """A piece of a markdown cell: ``text`` (paragraphs, lists, headings), ``code`` (a fenced code
    block, kept as it is), ``math`` (a ``$$`` display, ``label`` its equation label) or
    ``directive`` (``name``, ``arg``, ``options`` and the ``body`` between its fences)."""

    kind: str
    text: str = ""
    name: str = ""
    arg: str = ""
    options: tuple[tuple[str, str], ...] = ()
    label: str = ""

    def option(self, key: str, default: str = "") -> str:
        return dict(self.options).get(key, default)


def _options(lines: list[str]) -> tuple[tuple[tuple[str, str], ...], list[str]]:
    """A directive's options (``:key: value`` lines, or a ``---`` YAML block) and the rest of its
    body."""
    if lines and lines[0].strip() == "---":
        end = next((i for i, line in enumerate(lines[1:], 1) if line.strip() == "---"), None)
        if end is None:
            raise ValueError("a directive's YAML options are not closed by ---")
        options = yaml.safe_load("\n".join(lines[1:end])) or {}
        return tuple((str(k), "" if v is None else str(v)) for k, v in options.items()), lines[end + 1 :]
    options, i = [], 0
    while i < len(lines) and (m := re.match(r"^:([\w-]+):\s*(.*)$", lines[i])):
        options.append((m.group(1), m.group(2).strip()))
        i += 1
    return tuple(options), lines[i:]


def split_blocks(text: str) -> list[Block]:
    """``text`` cut into blocks. A fence (backticks, tildes or colons) closes at the first line of
    at least as many of its character and nothing else; its info string ``{name} arg`` makes it
    a directive. A ``$$`` display runs from a line that starts with ``$$`` to the line that ends
    with ``$$``, optionally followed by ``(label)``."""
    lines, blocks, para, i = text.split("\n"), [], [], 0

    def flush():
        if para:
            blocks.append(Block("text", "\n".join(para)))
            para.clear()

    while i < len(lines):
        line = lines[i]
        m = _FENCE.match(line)
        info = m.group("info").strip() if m else ""
        if m and not (m.group("fence")[0] == ":" and not info.startswith("{")):
            fence = m.group("fence")
            close = re.compile(rf"^\s*{re.escape(fence[0])}{{{len(fence)},}}\s*$")
            end = next((j for j in range(i + 1, len(lines)) if close.match(lines[j])), None)
            if end is None:
                raise ValueError(f"unclosed fence: {line.strip()!r}")
            flush()
            d = _DIRECTIVE.match(info)
            if d:
                options, body = _options(lines[i + 1 : end])
                blocks.append(
                    Block("directive", "\n".join(body).strip("\n"), d.group("name"), d.group("arg"), options)
                )
            else:
                blocks.append(Block("code", "\n".join(lines[i : end + 1])))
            i = end + 1
            continue
        if line.lstrip().startswith("$$"):
            rest = line.lstrip()[2:]
            end = i if "$$" in rest else next((j for j in range(i + 1, len(lines)) if "$$" in lines[j]), None)
            close = _DISPLAY_CLOSE.match(lines[end]) if end is not None else None
            if close is None:
                raise ValueError(f"a $$ display that does not close with $$: {line.strip()!r}")
            flush()
            blocks.append(Block("math", "\n".join(lines[i : end + 1]), label=close.group("label") or ""))
            i = end + 1
            continue
        para.append(line)
        i += 1
    flush()
    return blocks


def walk(text: str) -> Iterator[Block]:
    """Every block of ``text`` in page order, a directive's body's blocks right after it."""
    for block in split_blocks(text):
        yield block
        if block.kind == "directive":
            yield from walk(block.text)


# --- What a reference points to ------------------------------------------------------------------------

_TARGET = re.compile(r"^\s*\((?P<label>[^()\s]+)\)=\s*$")
_HEADING = re.compile(r"^(?P<hashes>#{1,6})\s+(?P<title>.+?)\s*#*\s*$")
_CAPTION = re.compile(r"^[*_]*(?P<kind>Figure|Fig\.|Table)\s+(?P<number>\d+)\b")
FIGURES = {"figure", "glue:figure"}
EXERCISES = {"exercise", "exercise-start"}


@dataclasses.dataclass(frozen=True)
class Target:
    """What a label names: ``kind`` is "section", "figure", "exercise", "equation", or "" (a
    target before a plain paragraph, which a reference must name in its own words)."""

    kind: str
    doc: str
    number: str = ""
    title: str = ""

    @property
    def text(self) -> str:
        return {
            "section": self.title,
            "figure": f"Figure {self.number}",
            "table": f"Table {self.number}",
            "exercise": f"Exercise {self.number}",
            "equation": f"Eq. ({self.number})",
        }.get(self.kind, "")


def chapter_number(stem: str) -> str:
    """The chapter's number as the book uses it ("chapter 5" is 05_cpc): its file name's prefix."""
    m = re.match(r"(\d+)_", stem)
    return str(int(m.group(1))) if m else ""


def exercise_number(chapter: str, n: int) -> str:
    return f"{chapter}.{n}" if chapter else str(n)


def collect_targets(sources: list[str], doc: str, chapter: str = "") -> dict[str, Target]:
    """The labels of one page (its markdown ``sources`` in order) and what each names, numbered
    as on the page: exercises and named figures by their directives, equations by their labels,
    a caption that starts "Figure n" by its own number, a section by its heading."""
    targets: dict[str, Target] = {}
    pending: list[str] = []
    count = {"exercise": 0, "figure": 0, "equation": 0}

    def resolve(target: Target) -> None:
        targets.update(dict.fromkeys(pending, target))
        pending.clear()

    def numbered(kind: str) -> str:
        count[kind] += 1
        return exercise_number(chapter, count[kind]) if kind == "exercise" else str(count[kind])

    for source in sources:
        for block in walk(source):
            if block.kind == "text":
                for line in block.text.split("\n"):
                    if m := _TARGET.match(line):
                        pending.append(m.group("label"))
                    elif not line.strip() or not pending:
                        continue
                    elif h := _HEADING.match(line):
                        resolve(Target("section", doc, title=h.group("title")))
                    elif c := _CAPTION.match(line):
                        kind = "table" if c.group("kind") == "Table" else "figure"
                        resolve(Target(kind, doc, c.group("number")))
                    else:
                        resolve(Target("", doc))
            elif block.kind == "math":
                target = Target("equation", doc, numbered("equation")) if block.label else Target("", doc)
                if block.label:
                    targets[block.label] = target
                resolve(target)
            elif block.kind == "directive":
                name, label = block.name, block.option("label") or block.option("name")
                if name in EXERCISES and "nonumber" not in dict(block.options):
                    target = Target("exercise", doc, numbered("exercise"), block.arg)
                elif name in FIGURES and label:
                    target = Target("figure", doc, numbered("figure"))
                elif name == "math" and label:
                    target = Target("equation", doc, numbered("equation"))
                else:
                    target = Target("", doc)
                if label:
                    targets[label] = target
                resolve(target)
    resolve(Target("", doc))
    return targets


def page_title(text: str) -> str:
    """The first ``# `` heading of a page's markdown."""
    for line in text.split("\n"):
        if line.startswith("# "):
            return line[2:].strip()
    return ""


def load_bibliography(path: Path) -> dict[str, tuple[tuple[str, ...], str]]:
    """Each key's authors' last names (with their "von" part, LaTeX decoded: "van der Maaten",
    "Jastrzębski") and year, as the book's author-year citations show them."""
    from pybtex.database import parse_file  # the book's own bibliography reader (sphinxcontrib-bibtex)
    from pybtex.richtext import Text

    def last(person) -> str:
        return Text.from_latex(" ".join(person.prelast_names + person.last_names)).render_as("text")

    entries = {}
    for key, entry in parse_file(str(path)).entries.items():
        people = entry.persons.get("author") or entry.persons.get("editor") or []
        names = tuple(last(p) for p in people) or (entry.fields.get("organization", key),)
        entries[key] = (names, entry.fields.get("year", "n.d."))
    return entries


@dataclasses.dataclass(frozen=True)
class Book:
    """What a chapter's references resolve against: the bibliography, every page's labels and
    title (by docname, "notebooks/08_benchmark"), the substitutions, and the base URL of the
    repository's files at the release tag (called only when a figure needs it)."""

    bib: Mapping[str, tuple[tuple[str, ...], str]] = dataclasses.field(default_factory=dict)
    targets: Mapping[str, Target] = dataclasses.field(default_factory=dict)
    titles: Mapping[str, str] = dataclasses.field(default_factory=dict)
    substitutions: Mapping[str, str] = dataclasses.field(default_factory=dict)
    files_url: Callable[[], str] = lambda: ""


def _markdown_sources(path: Path) -> list[str]:
    if path.suffix == ".md":
        return [path.read_text()]
    nb = nbformat.read(path, as_version=4)
    return [c.source for c in nb.cells if c.cell_type == "markdown"]


@functools.cache
def _files_url(root: Path) -> str:
    import lnl_core  # heavy (torch), so only when a figure needs the release tag

    config = yaml.safe_load((root / "_config.yml").read_text())
    repo = config["repository"]["url"].rstrip("/").removeprefix("https://github.com/")
    return f"https://raw.githubusercontent.com/{repo}/v{lnl_core.__version__}"


@functools.cache
def load_book(root: Path = ROOT) -> Book:
    config = yaml.safe_load((root / "_config.yml").read_text())
    bib: dict = {}
    for name in config.get("bibtex_bibfiles", []):
        bib.update(load_bibliography(root / name))
    targets, titles = {}, {}
    pages = [
        *sorted(root.glob("notebooks/*.ipynb")),
        *sorted(root.glob("book/*.md")),
        *sorted(root.glob("book/*.ipynb")),
    ]
    for path in pages:
        doc = path.relative_to(root).with_suffix("").as_posix()
        sources = _markdown_sources(path)
        titles[doc] = next((t for t in map(page_title, sources) if t), path.stem)
        targets.update(
            collect_targets(sources, doc, chapter_number(path.stem) if doc.startswith("notebooks/") else "")
        )
    substitutions = config.get("parse", {}).get("myst_substitutions", {}) or {}
    return Book(bib, targets, titles, {k: str(v) for k, v in substitutions.items()}, lambda: _files_url(root))


# --- Roles ---------------------------------------------------------------------------------------------


def split_title(content: str) -> tuple[str | None, str]:
    """``text <target>`` -> (text, target); ``target`` -> (None, target)."""
    m = re.fullmatch(r"(?P<text>.*?)\s*<(?P<target>[^<>]+)>", content.strip(), re.S)
    return (m.group("text"), m.group("target").strip()) if m else (None, content.strip())


def term_text(content: str) -> str:
    """``{term}`memorises <memorisation>``` -> "memorises"; ``{term}`AUC``` -> "AUC"."""
    text, target = split_title(content)
    return target if text is None else text


def _authors(names: tuple[str, ...], full: bool = False) -> str:
    if len(names) == 1:
        return names[0]
    if not full and (len(names) > 2 or names[-1] == "others"):
        return f"{names[0]} et al."
    if names[-1] == "others":
        return ", ".join(names[:-1]) + " et al."
    return ", ".join(names[:-1]) + " and " + names[-1]


_CITE_FORMS = {
    "cite": ("({})", "{a}, {y}"),
    "cite:p": ("({})", "{a}, {y}"),
    "cite:ps": ("({})", "{a}, {y}"),
    "cite:t": ("{}", "{a} ({y})"),
    "cite:ts": ("{}", "{a} ({y})"),
    "cite:alp": ("{}", "{a}, {y}"),
    "cite:author": ("{}", "{a}"),
    "cite:authors": ("{}", "{a}"),
    "cite:year": ("{}", "{y}"),
}


def cite_text(role: str, content: str, bib: Mapping[str, tuple[tuple[str, ...], str]]) -> str:
    """``{cite:p}`a,b``` -> "(A et al., 2020; B and C, 2019)"; ``{cite:t}`a``` -> "A et al. (2020)".
    "A et al." for three or more authors, "A and B" for two; the ``s`` forms list them all."""
    if role not in _CITE_FORMS:
        raise ValueError(f"unknown citation role {{{role}}}")
    outer, each = _CITE_FORMS[role]
    parts = []
    for key in (k.strip() for k in content.split(",")):
        if key not in bib:
            raise ValueError(f"{{{role}}}: no entry {key!r} in the bibliography")
        names, year = bib[key]
        parts.append(
            each.format(a=_authors(names, full=role in ("cite:ps", "cite:ts", "cite:authors")), y=year)
        )
    return outer.format("; ".join(parts))


def ref_text(
    role: str, content: str, targets: Mapping[str, Target], doc: str, titles: Mapping[str, str]
) -> str:
    """``{ref}``/``{numref}``: the explicit text (``%s``/``{number}`` filled in for numref), else
    what the target is ("Figure 3", a section's title), "in <page>" when it is on another page."""
    text, label = split_title(content)
    target = targets.get(label)
    if role == "numref" and text is not None and re.search(r"%s|\{number\}|\{name\}", text):
        if target is None or not target.number:
            raise ValueError(f"{{numref}} to {label!r}, which has no number")
        return (
            text.replace("%s", target.number)
            .replace("{number}", target.number)
            .replace("{name}", target.title)
        )
    if text is not None:
        return text
    if target is None or not target.text:
        raise ValueError(f"{{{role}}} to {label!r}, whose text is unknown: write {{{role}}}`text <{label}>`")
    if target.doc != doc:
        return f"{target.text} in “{titles.get(target.doc, target.doc)}”"
    return target.text


def doc_text(content: str, doc: str, titles: Mapping[str, str]) -> str:
    """``{doc}`text <page>``` -> "text"; ``{doc}`../book/deviations``` -> the page's title, quoted."""
    text, target = split_title(content)
    if text is not None:
        return text
    base = target.lstrip("/") if target.startswith("/") else posixpath.join(posixpath.dirname(doc), target)
    name = re.sub(r"\.(md|ipynb)$", "", posixpath.normpath(base))
    if name not in titles:
        raise ValueError(f"{{doc}} to {target!r}: no such page")
    return f"“{titles[name]}”"


def eq_text(content: str, targets: Mapping[str, Target]) -> str:
    """``{eq}`label``` -> "Eq. (n)" (the page's numbering), else the label; explicit text wins."""
    text, label = split_title(content)
    if text is not None:
        return text
    target = targets.get(label)
    return target.text if target is not None and target.kind == "equation" else label


_CODE_ROLES = {"code", "literal", "samp", "file", "command", "envvar", "option", "program"}
_PY_ROLES = {"func", "class", "meth", "mod", "attr", "obj", "data", "exc", "const", "any"}


def role_text(name: str, content: str, book: Book, doc: str) -> str:
    """One role in plain Markdown (see the module's docstring); an unknown role raises."""
    if name == "term":
        return term_text(content)
    if name == "cite" or name.startswith("cite:"):
        return cite_text(name, content, book.bib)
    if name in ("ref", "numref"):
        return ref_text(name, content, book.targets, doc, book.titles)
    if name == "doc":
        return doc_text(content, doc, book.titles)
    if name == "eq":
        return eq_text(content, book.targets)
    if name == "math":
        return f"${content}$"
    if name in ("sub", "sup", "kbd"):
        return f"<{name}>{content}</{name}>"
    if name == "abbr":
        m = re.fullmatch(r"(?P<abbr>.*?)\s*\((?P<title>[^()]*)\)", content.strip(), re.S)
        return f'<abbr title="{m.group("title")}">{m.group("abbr")}</abbr>' if m else content
    if name == "download":
        return term_text(content)
    if name in _CODE_ROLES or name.removeprefix("py:") in _PY_ROLES:
        text, target = split_title(content)
        return f"`{text if text is not None else target.lstrip('~!')}`"
    raise ValueError(f"unknown MyST role {{{name}}}")


_INLINE = re.compile(
    r"(?P<role>\{(?P<name>[A-Za-z][\w:.+-]*)\}(?P<rt>`+)(?P<content>.+?)(?P=rt)(?!`))"
    r"|(?P<code>(?P<ct>`+).+?(?P=ct)(?!`))"
    r"|(?P<math>\$\$.+?\$\$|(?<![\\$])\$(?:\\.|[^$\\])+?\$)"
    r"|(?P<sub>\{\{\s*(?P<subname>[\w.-]+)\s*\}\})",
    re.S,
)


def convert_inline(text: str, book: Book, doc: str) -> str:
    """Roles and substitutions in ``text`` replaced; inline code and math left as they are."""

    def one(m: re.Match) -> str:
        if m.group("role"):
            return convert_inline(role_text(m.group("name"), m.group("content"), book, doc), book, doc)
        if m.group("sub"):
            if m.group("subname") not in book.substitutions:
                raise ValueError(f"unknown substitution {m.group(0)}")
            return book.substitutions[m.group("subname")]
        return m.group(0)

    return _INLINE.sub(one, text)


# --- Line constructs -----------------------------------------------------------------------------------


def drop_targets(text: str) -> str:
    """``(label)=`` lines removed."""
    return "\n".join(line for line in text.split("\n") if not _TARGET.match(line))


def drop_comments(text: str) -> str:
    """MyST's ``%`` comment lines and ``+++`` block breaks removed."""
    return "\n".join(line for line in text.split("\n") if not re.match(r"^%|^\+\+\+\s*$", line))


def drop_equation_label(math: str) -> str:
    """``$$ ... $$ (label)`` -> ``$$ ... $$``."""
    return re.sub(r"\$\$\s*\([^()\s]+\)\s*$", "$$", math)


# --- Directives ----------------------------------------------------------------------------------------


def exercise_heading(title: str, number: str, body: str, level: int = 3) -> str:
    """An exercise as a heading and its statement: ``### Exercise 1.2: title``."""
    name = f"Exercise {number}" if number else "Exercise"
    heading = f"{'#' * level} {name}: {title}" if title else f"{'#' * level} {name}"
    return f"{heading}\n\n{body}".rstrip()


def join_math_lines(text: str) -> str:
    """Each formula in ``text`` on one line, so that a block quote's ``>`` cannot fall inside it
    (Jupyter takes the math out before it reads the Markdown). Code is left alone."""

    def one(m: re.Match) -> str:
        math = m.group(0)
        if math.startswith("`") or "\n" not in math:
            return math
        if re.search(r"(?<!\\)%", math):
            raise ValueError("a TeX comment (%) in a formula of several lines inside a block quote")
        return " ".join(line.strip() for line in math.split("\n") if line.strip())

    return re.sub(r"(`{3,}).*?\1|(`+).+?\2|\$\$.+?\$\$|(?<![\\$])\$(?:\\.|[^$\\])+?\$", one, text, flags=re.S)


def block_quote(title: str, body: str) -> str:
    """An admonition as a block quote: its title in bold, then its body."""
    lines = (
        [f"**{title}**", "", *join_math_lines(body).split("\n")]
        if title
        else join_math_lines(body).split("\n")
    )
    return "\n".join(f"> {line}".rstrip() for line in lines)


def dropdown(title: str, body: str) -> str:
    """A dropdown (collapsed) admonition as HTML ``<details>``, which Jupyter renders."""
    return f"<details>\n<summary><b>{title or 'Details'}</b></summary>\n\n{body}\n\n</details>"


def figure_markdown(src: str, caption: str, legend: str, *, alt: str = "", number: str = "") -> str:
    """A figure as a Markdown image and its caption in italics (``src`` empty: a figure drawn by
    a code cell, only the caption)."""
    cap = f"Figure {number}: {caption}" if number else caption
    parts = [f"![{alt or caption}]({src})"] if src else []
    parts += [f"*{cap}*"] if cap else []
    parts += [legend] if legend else []
    return "\n\n".join(parts)


def image_url(path: str, doc: str, files_url: Callable[[], str]) -> str:
    """A figure's image: a URL as it is; a file of the repository from ``files_url()`` (the
    repository at the release tag), so that it shows wherever the notebook is opened."""
    if re.match(r"^[a-z][a-z0-9+.-]*:", path):
        return path
    repo_path = path.lstrip("/") if path.startswith("/") else posixpath.join(posixpath.dirname(doc), path)
    return f"{files_url()}/{posixpath.normpath(repo_path)}"


def math_block(body: str) -> str:
    """``{math}`` -> ``$$ ... $$`` (its label dropped)."""
    return f"$$\n{body}\n$$"


ADMONITIONS = {
    "note": "Note",
    "tip": "Tip",
    "hint": "Hint",
    "important": "Important",
    "warning": "Warning",
    "caution": "Caution",
    "attention": "Attention",
    "danger": "Danger",
    "error": "Error",
    "seealso": "See also",
    "admonition": "",
    "margin": "",
    "sidebar": "",
    "topic": "",
    "epigraph": "",
    "pull-quote": "",
}


@dataclasses.dataclass
class Page:
    """One chapter being converted: the book it refers to, its docname and number, and how many
    exercises it has shown so far."""

    book: Book
    doc: str
    chapter: str = ""
    exercises: int = 0


def convert_directive(block: Block, page: Page) -> str:
    """One directive in plain Markdown; an unknown directive raises."""
    name, book = block.name, page.book

    def inline(text: str) -> str:
        return convert_inline(text, book, page.doc)

    if name in ("solution", "solution-start", "solution-end", "exercise-end"):
        return ""
    body = convert_markdown(block.text, page)
    if name in EXERCISES:
        number = ""
        if "nonumber" not in dict(block.options):
            page.exercises += 1
            number = exercise_number(page.chapter, page.exercises)
        return exercise_heading(inline(block.arg), number, body)
    if name in ADMONITIONS:
        title = ADMONITIONS[name] or inline(block.arg)
        if ADMONITIONS[name] and block.arg:  # a named admonition's argument is its first line
            body = convert_markdown(f"{block.arg}\n{block.text}", page)
        if "dropdown" in block.option("class").split():
            return dropdown(title, body)
        return block_quote(title, body)
    if name == "dropdown":
        return dropdown(inline(block.arg), body)
    if name in FIGURES or name == "image":
        caption, _, legend = body.partition("\n\n")
        label = block.option("name") or block.option("label")
        target = book.targets.get(label) if label else None
        number = target.number if target is not None and target.kind == "figure" else ""
        src = "" if name == "glue:figure" else image_url(block.arg, page.doc, book.files_url)
        return figure_markdown(src, caption.strip(), legend.strip(), alt=block.option("alt"), number=number)
    if name == "math":
        return math_block(block.text)
    if name in ("code", "code-block", "sourcecode"):
        return f"```{block.arg}\n{block.text}\n```"
    if name == "raw" and block.arg.strip() == "html":
        return block.text
    raise ValueError(f"unknown MyST directive {{{name}}}")


def convert_markdown(text: str, page: Page) -> str:
    """A markdown cell's MyST in plain Jupyter Markdown: each block by its kind."""
    parts = []
    for block in split_blocks(text):
        if block.kind == "code":
            parts.append(block.text)
        elif block.kind == "math":
            parts.append(drop_equation_label(block.text))
        elif block.kind == "text":
            parts.append(convert_inline(drop_comments(drop_targets(block.text)), page.book, page.doc))
        else:
            parts.append(convert_directive(block, page))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(parts)).strip("\n")


MYST_SYNTAX = {
    "a directive fence": r"^\s*(`{3,}|~{3,}|:{3,})\s*\{[^{}\s]+\}",
    "a role": r"\{[A-Za-z][\w:.+-]*\}`",
    "a (label)= target": r"^\s*\([^()\s]+\)=\s*$",
    "an equation label": r"\$\$\s*\([^()\s]+\)\s*$",
    "a directive option": r"^:[\w-]+:(\s|$)",
}


def find_myst(text: str) -> list[str]:
    """The MyST syntax left in ``text`` (outside code), as a list of descriptions."""
    found = []
    for block in split_blocks(text):
        if block.kind == "directive":
            found.append(f"a {{{block.name}}} directive")
        elif block.kind == "math" and block.label:
            found.append(f"an equation label: {block.label!r}")
        elif block.kind == "text":  # inline code and math blanked out, roles kept
            prose = _INLINE.sub(lambda m: m.group(0) if m.group("role") else " ", block.text)
            for what, pattern in MYST_SYNTAX.items():
                found += [f"{what}: {m.group(0).strip()!r}" for m in re.finditer(pattern, prose, re.M)]
    return found


# --- The notebook --------------------------------------------------------------------------------------


def student_notebook(chapter: Path, book: Book | None = None) -> nbformat.NotebookNode:
    nb = nbformat.read(chapter, as_version=4)
    page = Page(book or load_book(), f"notebooks/{chapter.stem}", chapter_number(chapter.stem))
    cells = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            try:
                source = convert_markdown(strip_solutions(cell.source), page)
                if left := find_myst(source):
                    raise ValueError("MyST left after the conversion: " + "; ".join(left))
            except ValueError as err:
                raise ValueError(f"{chapter.name}, cell {index} (id {cell.get('id')}): {err}") from err
            if not source.strip():
                continue
            cells.append(
                nbformat.v4.new_markdown_cell(source, metadata=dict(cell.metadata), id=cell.get("id"))
            )
        elif cell.cell_type == "code":
            cells.append(
                nbformat.v4.new_code_cell(cell.source, metadata=dict(cell.metadata), id=cell.get("id"))
            )
        else:
            cells.append(cell)
    note = nbformat.v4.new_markdown_cell(NOTE.format(stem=chapter.stem), id="student-edition-note")
    cells.insert(1, note)
    out = nbformat.v4.new_notebook(cells=cells, metadata=dict(nb.metadata))
    out.nbformat, out.nbformat_minor = nb.nbformat, nb.nbformat_minor
    return out


def render(chapter: Path) -> str:
    return nbformat.writes(student_notebook(chapter)) + "\n"


def chapters() -> list[Path]:
    return sorted(CHAPTERS.glob("*.ipynb"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="compare with student/ instead of writing")
    args = p.parse_args(argv)
    stale = []
    try:
        expected = {STUDENT / c.name: render(c) for c in chapters()}
    except ValueError as err:
        print(f"student edition: {err}", file=sys.stderr)
        return 1
    if args.check:
        present = set(STUDENT.glob("*.ipynb"))
        stale = [str(p) for p, text in expected.items() if not p.is_file() or p.read_text() != text]
        stale += [str(p) for p in present - set(expected)]
        for path in stale:
            print(f"stale: {path} (run python scripts/student_edition.py)", file=sys.stderr)
        return 1 if stale else 0
    STUDENT.mkdir(exist_ok=True)
    for path in set(STUDENT.glob("*.ipynb")) - set(expected):
        path.unlink()  # a chapter that no longer exists
    for path, text in expected.items():
        path.write_text(text)
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
