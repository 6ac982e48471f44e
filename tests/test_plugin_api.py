"""skft.plugin_api: what a plugin may import, and the plugins under plugins/ import nothing else."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import skft
import skft.plugin_api as api

ROOT = Path(__file__).resolve().parents[1]
PUBLIC = {"skft", "skft.plugin_api", "skft.specs"}
PLUGIN_PACKAGES = sorted(
    p.parent for p in ROOT.glob("plugins/*/*/__init__.py") if p.parent.name != "tests"
)


def skft_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every import of an skft module in ``path``, functions included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text("utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
            if node.module == "skft":  # `from skft import x` may name a submodule
                names += [f"skft.{a.name}" for a in node.names if a.name[0].islower()]
        else:
            continue
        found += [(node.lineno, n) for n in names if n == "skft" or n.startswith("skft.")]
    return found


def test_every_public_name_resolves():
    for name in api.__all__:
        assert getattr(api, name) is not None, name


def test_plugin_packages_are_found():
    assert {p.name for p in PLUGIN_PACKAGES} >= {"skft_timm", "skft_transformers"}


@pytest.mark.parametrize("package", PLUGIN_PACKAGES, ids=lambda p: p.name)
def test_plugins_import_only_the_public_api(package):
    bad = []
    for path in sorted(package.rglob("*.py")):
        for line, module in skft_imports(path):
            if module in PUBLIC:
                continue
            if module.removeprefix("skft.") in skft.__all__:
                continue  # `from skft import hookimpl`: a public name, not a module
            bad.append(f"{path.relative_to(ROOT)}:{line}: {module}")
    assert not bad, "plugins import non-public skft modules:\n" + "\n".join(bad)


def test_the_checker_sees_a_private_import(tmp_path):
    """The check above can fail: a private import, even inside a function, is found."""
    bad = tmp_path / "plugin.py"
    bad.write_text("def f():\n    from skft.data.adapters import adapt_input\n")
    assert skft_imports(bad) == [(2, "skft.data.adapters")]


def test_import_is_light():
    """Importing the plugin API imports neither torch nor a backbone library."""
    code = (
        "import sys, skft.plugin_api; "
        "print(sorted(m for m in ('torch', 'torchvision', 'timm', 'transformers') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
