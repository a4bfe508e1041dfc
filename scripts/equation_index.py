"""Generate book/equations.md: every paper equation that lnl_core cites, and the code that implements it.

    python scripts/equation_index.py            # writes book/equations.md (scripts/build_book.sh runs it)

The index is read from the code, so it cannot go stale: every ``Eq. (n)`` in a comment or
docstring of ``lnl_core`` (also ``Eq. (8)-(10)``, ``Eq. (5) and (9)``) is attributed to the function
or class around it, and to a paper: the paper named on the same line, else in the docstring of the
innermost enclosing definition that names one, else in the nearest comment above that names one, else the paper of the
trainer module the line is in. A citation that none of these attributes stops the script with its
file and line, so that no equation is filed under the wrong paper.
"""

from __future__ import annotations

import ast
import re
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "lnl_core"
OUT = ROOT / "book" / "equations.md"

# paper -> (how the code names it, bibliography key, chapter)
PAPERS = {
    "CPC": (r"\bCPC\b", "cpc2022", "05_cpc"),
    "PLReMix": (r"\bPLReMix\b", "liu2024plremix", "06_plremix"),
    "LNL-flywheel": (r"\b(?:LNL-)?flywheel\b", "kim2024flywheel", "07_flywheel"),
    "PEMM": (r"\bPEMM\b", "wang2024pemm", "03_pemm"),
    "PMNAR": (r"\bPMNAR\b", "pmnar", "04_pmnar"),
    "DivideMix": (r"\bDivideMix\b", "li2020dividemix", "02_dividemix"),
}
MODULE_PAPER = {
    "trainers/cpc.py": "CPC", "trainers/plremix.py": "PLReMix", "trainers/flywheel.py": "LNL-flywheel",
    "trainers/pemm.py": "PEMM", "trainers/pmnar.py": "PMNAR", "trainers/dividemix.py": "DivideMix",
}  # fmt: skip
CITATION = re.compile(r"Eqs?\.\s*(\(\d+\)(?:\s*(?:-|–|and|,|or)\s*\(\d+\))*)")


def equations(cited: str) -> list[int]:
    """``"(8)-(10)"`` -> [8, 9, 10]; ``"(5) and (9)"`` -> [5, 9]."""
    nums = [int(n) for n in re.findall(r"\((\d+)\)", cited)]
    out = [nums[0]]
    for sep, n in zip(re.findall(r"\)\s*(-|–|and|,|or)\s*\(", cited), nums[1:]):
        out += list(range(out[-1] + 1, n + 1)) if sep in "-–" else [n]
    return out


def _paper_in(text: str | None) -> str | None:
    for paper, (pattern, _, _) in PAPERS.items():
        if text and re.search(pattern, text):
            return paper
    return None


def citations(path: Path) -> list[dict]:
    """Every (equation, paper, definition, line) cited in one source file."""
    rel = path.relative_to(PACKAGE).as_posix()
    source = path.read_text()
    lines = source.splitlines()
    defs = []  # (first line, last line, qualified name, docstring)

    def visit(node, prefix=""):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                defs.append((child.lineno, child.end_lineno, name, ast.get_docstring(child)))
                visit(child, name + ".")

    visit(ast.parse(source))
    module = "lnl_core." + rel.removesuffix(".py").replace("/", ".")
    found = []
    for number, line in enumerate(lines, 1):
        for m in CITATION.finditer(line):
            around = [d for d in defs if d[0] <= number <= d[1]]
            inner = max(around, key=lambda d: d[0]) if around else None
            paper = _paper_in(line)
            for d in sorted(around, key=lambda d: -d[0]):  # the innermost definition that names one
                paper = paper or _paper_in(d[3])
            if not paper:  # the nearest comment above that names a paper
                for above in reversed(lines[: number - 1]):
                    if above.lstrip().startswith("#") and _paper_in(above):
                        paper = _paper_in(above)
                        break
            paper = paper or MODULE_PAPER.get(rel)
            if paper is None:
                raise SystemExit(f"{path}:{number}: cannot tell which paper's {m.group(0)} this is")
            where = f"{module}.{inner[2]}" if inner else module
            for eq in equations(m.group(1)):
                found.append({"paper": paper, "eq": eq, "where": where, "file": rel, "line": number})
    return found


def collect() -> list[dict]:
    return [c for path in sorted(PACKAGE.rglob("*.py")) for c in citations(path)]


def render(found: list[dict]) -> str:
    by = defaultdict(lambda: defaultdict(dict))
    for c in found:
        by[c["paper"]][c["eq"]].setdefault(c["where"], []).append(f"{c['file']}:{c['line']}")
    out = [
        "# Equations and code",
        "",
        "Every numbered equation of the papers that `lnl_core` cites in a comment or docstring (`# Eq. (n)`), "
        "and where: the function or class around the citation, with file and line. This page is generated from "
        "the code by `scripts/equation_index.py` each time the book is built, so it lists what the code cites "
        "now. Equation numbers are the papers' own; the chapters derive each equation and their tests check "
        "the code against an independent computation.",
        "",
    ]
    for paper in PAPERS:
        if paper not in by:
            continue
        _, key, chapter = PAPERS[paper]
        out += [f"## {paper}", "", f"{{cite:t}}`{key}`; chapter {{doc}}`../notebooks/{chapter}`.", ""]
        out += ["| equation | implemented or used in | at |", "|---|---|---|"]
        for eq in sorted(by[paper]):
            for where, places in sorted(by[paper][eq].items()):
                out.append(f"| ({eq}) | `{where}` | {', '.join(sorted(set(places), key=_line_key))} |")
        out.append("")
    n = len({(c["paper"], c["eq"]) for c in found})
    out.append(f"{n} equations of {len(by)} papers, cited {len(found)} times in `lnl_core`.")
    return "\n".join(out) + "\n"


def _line_key(place: str):
    file, line = place.rsplit(":", 1)
    return file, int(line)


def main() -> int:
    OUT.write_text(render(collect()))
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
