"""Sphinx configuration of the atomforge documentation.

Build (warnings are errors, as in the test suite):  python -m sphinx -W --keep-going -b html docs docs/_build/html
API pages are generated from the package's docstrings for every public module (autosummary,
recursive), so new modules appear without editing these files.
"""
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

project = "atomforge"
author = "the atomforge developers"
copyright = "2025, the atomforge developers (MIT License)"
try:
    from importlib.metadata import version as _v

    release = _v("atomforge")
except Exception:  # not installed: the docs still build from the sources' docstrings if importable
    release = "0.1.0"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "tutorials/*.py"]
myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3

autosummary_generate = True
autosummary_imported_members = False
templates_path = ["_templates"]  # autosummary/module.rst: members defined in each module; no compiled plugins
autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": True,
                           "ignore-module-all": True}
autodoc_typehints = "description"
autodoc_member_order = "bysource"
napoleon_google_docstring = True
napoleon_numpy_docstring = True
napoleon_use_ivar = True  # "Attributes:" sections as fields, not second descriptions of dataclass fields
# Ambiguous short names (e.g. "G", a field of several classes) resolve to one of their targets;
# a missing target is not a warning either (nitpicky off). Every other warning is an error.
suppress_warnings = ["ref.python"]

html_theme = "alabaster"
html_title = f"atomforge {release}"
nitpicky = False


# Docstrings are reStructuredText (Google/NumPy sections via napoleon). Some older ones are plain
# text that docutils cannot parse (e.g. "|r_j - r_i|" reads as a substitution); rather than render
# them mangled, such a docstring is shown verbatim, as a literal block, and listed at build time
# (sphinx -v). Everything else (pages, cross-references, valid docstrings) stays under -W.
import re as _re

from sphinx.util import logging as _logging

_log = _logging.getLogger("atomforge.docs")
_ROLE = _re.compile(r":(?:[a-z]+:)*[a-z]+:`([^`]*)`")


def _rst_problems(lines):
    import io

    import docutils.frontend
    import docutils.parsers.rst
    import docutils.utils

    text = _ROLE.sub(lambda m: "``" + m.group(1).replace("`", "") + "``", "\n".join(lines))
    text = text.replace(".. code-block::", ".. code::")
    if _re.search(r"(?<![|\\`\w])\|[^|\s`][^|`\n]*\|(?![|`_\w])", text):  # plain-text |x| (substitution)
        return "substitution reference"
    parser = docutils.parsers.rst.Parser()
    settings = docutils.frontend.get_default_settings(docutils.parsers.rst.Parser)
    settings.report_level, settings.halt_level = 2, 5
    settings.warning_stream = io.StringIO()
    doc = docutils.utils.new_document("<docstring>", settings)
    try:
        parser.parse(text, doc)
    except Exception:  # a Sphinx directive that needs the build environment: leave it to Sphinx
        return ""
    return settings.warning_stream.getvalue()


def _verbatim_if_invalid(app, what, name, obj, options, lines):
    if not lines or not _rst_problems(lines):
        return
    _log.verbose("docstring of %s is not valid reStructuredText: shown verbatim", name)
    body = ["    " + line if line.strip() else "" for line in lines]
    lines[:] = ["::", ""] + body + [""]


def setup(app):
    app.connect("autodoc-process-docstring", _verbatim_if_invalid, priority=900)
