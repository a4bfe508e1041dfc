"""Drop repeated <script> entries from every page.

With Jupyter Book 1.0.4 and sphinx-thebe 0.3.1, the inline script that declares
``THEBE_JS_URL`` is registered twice, and the second copy is a JavaScript error
("Identifier 'THEBE_JS_URL' has already been declared") on every page. This keeps the
first of identical script entries (an inline script is registered once with filename
None and once with "", so both count as "no file").
"""


def _dedupe(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for js in scripts:
        key = (getattr(js, "filename", None) or "", repr(sorted(getattr(js, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(js)
    context["script_files"] = unique


def setup(app):
    app.connect("html-page-context", _dedupe)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
