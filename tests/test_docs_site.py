"""The built documentation renders in a real browser (``docs/check_site.py``).

Skipped when there is no built site (``make docs``) or no Chromium; ``make docs-check``
builds the site and runs the same check, failing instead of skipping.
"""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "docs" / "_build" / "html"
CHECK = runpy.run_path(str(ROOT / "docs" / "check_site.py"), run_name="check_site")


@pytest.fixture(scope="module")
def chromium() -> str:
    found = CHECK["find_chromium"]()
    if found is None:
        pytest.skip("no Chromium (apt-get install chromium)")
    if not (SITE / "index.html").is_file():
        pytest.skip("no built documentation (make docs)")
    return found


def test_built_pages_render_with_theme_images_and_no_errors(chromium):
    assert CHECK["check_site"](SITE, chromium) == []


def test_the_check_catches_a_missing_image_and_an_error_on_the_page(chromium, tmp_path):
    page = tmp_path / "broken.html"
    theme = (SITE / "_static").as_uri()
    page.write_text(
        f'<html><head><link rel="stylesheet" href="{theme}/styles/pydata-sphinx-theme.css">'
        '</head><body><header class="bd-header"><ul class="navbar-nav"></ul></header>'
        '<img src="missing.png"><p>Traceback (most recent call last): Error</p></body></html>'
    )
    report, console = CHECK["render"](chromium, page)
    found = CHECK["problems"]("broken.html", report, console)
    assert any("image not shown: missing.png" in line for line in found)
    assert any("'Traceback'" in line for line in found)
    assert any("'Error'" in line for line in found)


def test_problem_text_spares_class_names():
    report = {"navbar": True, "header_position": "sticky", "images": [], "text": ""}
    report["text"] = "raises ModelFileError or UnknownNameError, a ValueError"
    assert CHECK["problems"]("page.html", report, "") == []
