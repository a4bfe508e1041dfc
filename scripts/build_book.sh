#!/usr/bin/env bash
# Build the book into _build/html from the notebooks' committed outputs (no execution),
# with warnings as errors, printing the warnings and little else. MathJax 3 is fetched once from
# the npm registry into _extra/mathjax (copied to the site's root), so the built pages render
# math without any other network access.
set -euo pipefail
cd "$(dirname "$0")/.."
MJ=_extra/mathjax
MJ_VERSION=3.2.2
if [ ! -f "$MJ/tex-mml-chtml.js" ]; then
  echo "book: fetching MathJax $MJ_VERSION from the npm registry (a few MB)..."
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "mathjax@$MJ_VERSION" >/dev/null)
  tar -xzf "$tmp/mathjax-$MJ_VERSION.tgz" -C "$tmp" package/es5/tex-mml-chtml.js package/es5/output/chtml/fonts/woff-v2
  mkdir -p "$MJ/output/chtml/fonts"
  cp "$tmp/package/es5/tex-mml-chtml.js" "$MJ/"
  cp -r "$tmp/package/es5/output/chtml/fonts/woff-v2" "$MJ/output/chtml/fonts/"
  rm -rf "$tmp"
fi
# the student editions (scripts/student_edition.py) are offered for download from every chapter page
rm -rf _extra/student-edition && mkdir -p _extra/student-edition && cp student/*.ipynb _extra/student-edition/
# the equation-to-code page is generated from lnl_core's "Eq. (n)" citations at every build
.venv/bin/python scripts/equation_index.py
rm -rf _build/html _build/.doctrees
# -q: no Sphinx status lines (reading, writing, copying, ... for every page); its warnings, which
# -W turns into errors, still print, each with its file and line
echo "book: building _build/html with Jupyter Book (warnings are errors)..."
.venv/bin/jupyter-book build . -W -n --keep-going -q
