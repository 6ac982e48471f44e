"""Sphinx configuration of the skft documentation (``make docs`` builds it offline)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# document the checkout being built, not whatever skft the environment has installed
for path in (ROOT, ROOT / "plugins" / "skft-timm", ROOT / "plugins" / "skft-transformers"):
    sys.path.insert(0, str(path))

import skft  # noqa: E402

project = "skft"
author = "the skft authors"
copyright = "the skft authors"
release = version = skft.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = [
    "_build",
    "auto_examples/*.ipynb",
    "generated/cli_options.md",  # included by guide/cli.md
]
templates_path = ["_templates"]

# -- MyST: the guide is markdown; headings up to ### get anchors (page.md#anchor links)
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence", "deflist"]

# -- autodoc / autosummary / numpydoc -----------------------------------------------------
autosummary_generate = True
autosummary_imported_members = True
autodoc_default_options = {"members": True, "inherited-members": False}
autodoc_typehints = "none"  # numpydoc's Parameters sections say the types
autodoc_member_order = "bysource"
# skorch's own methods (set_params, load_params, ...) are documented by skorch
# classes list their members through docs/_templates/autosummary/ (estimators: the
# methods a user calls, named below; skorch's and scikit-learn's own are theirs to document)
numpydoc_show_class_members = False
autosummary_context = {
    "user_methods": {
        "FineTunedClassifier": [
            "fit",
            "partial_fit",
            "predict",
            "predict_proba",
            "save",
            "to_onnx",
            "export_backbone",
        ],
        "FineTunedRegressor": [
            "fit",
            "partial_fit",
            "predict",
            "save",
            "to_onnx",
            "export_backbone",
        ],
        "OptunaSearch": ["fit", "save"],
        "Compressed": ["fit", "predict", "predict_proba", "score", "save"],
    },
}
# modest checks: sections that exist must be well formed; not every section is demanded
numpydoc_validation_checks = {
    "GL06",  # unknown section
    "GL07",  # sections in the wrong order
    "PR06",  # types: "int", not "integer"
    "PR10",  # "name : type", with spaces around the colon
    "RT03",  # a Returns entry has a description
}

# -- sphinx-gallery: the examples are read, not run ---------------------------------------
# Every example trains for minutes on a CPU, so the gallery is built from the scripts'
# source only (plot_gallery False, and a filename_pattern that matches no file). The
# pictures on the example pages are the committed outputs of full runs (docs/*.png),
# placed by each example's docstring; docs/benchmarks.md has the commands and figures.
sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"^$",
    "plot_gallery": "False",
    "ignore_pattern": r"__init__\.py|/out/",
    "download_all_examples": False,
    "write_computation_times": False,
    "show_signature": False,
    "within_subsection_order": "FileNameSortKey",
    "remove_config_comments": True,
}

# -- HTML -----------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"skft {release}"
html_theme_options = {
    "navbar_align": "left",
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "use_edit_page_button": False,
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_show_sourcelink = False
# pages without sub-pages: no empty "Section Navigation" column
html_sidebars = {
    page: [] for page in ("index", "install", "quickstart", "benchmarks", "plugins", "architecture")
}


# -- the command line's options, read from its parser at every build ----------------------


def write_cli_reference(path: Path) -> None:
    """One table per ``skft`` command (option, default, help), from ``build_parser()``."""
    from skft.cli.main import build_parser

    def cell(text: object) -> str:
        return str(text).replace("|", "\\|").replace("<", "&lt;").replace("\n", " ")

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    lines = []
    for name, command in commands.choices.items():
        lines += [f"### `skft {name}`", "", cell(command.description or ""), ""]
        rows = [a for a in command._actions if not isinstance(a, argparse._HelpAction)]
        if not rows:
            lines += ["No options.", ""]
            continue
        lines += ["| option | default | meaning |", "|---|---|---|"]
        for action in rows:
            flag = ", ".join(f"`{f}`" for f in action.option_strings) or f"`{action.dest}`"
            shown = action.option_strings and action.default not in (None, False, [])
            default = f"`{action.default}`" if shown else ""
            lines.append(f"| {flag} | {default} | {cell((action.help or '').replace('%%', '%'))} |")
        lines.append("")
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(lines)
    if not path.is_file() or path.read_text() != text:  # unchanged: no rebuild of the page
        path.write_text(text)


write_cli_reference(Path(__file__).resolve().parent / "generated" / "cli_options.md")
