"""Open pages of the built documentation in headless Chromium and fail on a broken page.

Usage: ``python docs/check_site.py [docs/_build/html]`` (``make docs-check`` builds the
site first). Each page is loaded in an iframe of a small harness page, so the browser
itself reports what it rendered: the theme's navbar (and that its stylesheet applied),
every image decoded (``naturalWidth > 0``), the text free of "Traceback", a standalone
"Error" and docutils' "System Message", and no uncaught script error or failed resource
load on the console. Exit status 0: every page is fine; 1: a page is broken (each problem
is printed); 2: no Chromium or no built site.

Chromium comes from Debian's ``chromium`` package (``apt-get install chromium``);
``SKFT_CHROMIUM`` names another binary.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

#: the pages checked, relative to the built site: the index and one gallery page with its
#: plot, plus the gallery's index (thumbnails) and the API reference
PAGES = (
    "index.html",
    "auto_examples/index.html",
    "auto_examples/learning_curve.html",
    "api.html",
)

#: words that mark a page broken: a Python traceback, an error shown on the page (a
#: standalone "Error", not a class name such as ModelFileError), a docutils failure
BROKEN_TEXT = re.compile(r"Traceback|(?<![A-Za-z])Error(?![A-Za-z])|System Message")

#: console lines that mark a page broken (Chromium's --enable-logging=stderr)
BROKEN_CONSOLE = re.compile(r"Uncaught|Failed to load resource|ERR_FILE_NOT_FOUND")

HARNESS = """<!doctype html><html><body><pre id="report">not loaded</pre>
<iframe id="page" src="{url}" style="width:1280px;height:1000px"></iframe>
<script>
document.getElementById("page").addEventListener("load", function () {{
  var out = {{}};
  try {{
    var d = this.contentDocument;
    var header = d.querySelector(".bd-header");
    out.title = d.title;
    out.navbar = !!(header && header.querySelector(".navbar-nav, .navbar-header-items"));
    out.header_position = header ? getComputedStyle(header).position : null;
    out.images = Array.from(d.images).map(function (i) {{
      return {{src: i.getAttribute("src"), ok: i.complete && i.naturalWidth > 0}};
    }});
    out.code_blocks = d.querySelectorAll("div.highlight pre").length;
    out.text = d.body ? d.body.innerText : "";
  }} catch (e) {{
    out.error = String(e);
  }}
  document.getElementById("report").textContent = JSON.stringify(out);
}});
</script></body></html>
"""


def find_chromium() -> str | None:
    """The Chromium binary: ``SKFT_CHROMIUM``, else the first of the usual names on PATH."""
    named = os.environ.get("SKFT_CHROMIUM")
    if named:
        return shutil.which(named) or (named if Path(named).is_file() else None)
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def render(chromium: str, page: Path, timeout: float = 60.0) -> tuple[dict, str]:
    """What Chromium rendered for ``page`` (the harness's report) and its console log."""
    with tempfile.TemporaryDirectory(prefix="skft-docs-check-") as tmp:
        harness = Path(tmp) / "harness.html"
        harness.write_text(HARNESS.format(url=page.resolve().as_uri()))
        command = [
            chromium,
            "--headless",
            "--no-sandbox",  # Chromium refuses to run as root with its sandbox
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={tmp}/profile",
            "--allow-file-access-from-files",  # the harness reads the page's document
            "--virtual-time-budget=5000",  # let the theme's scripts run
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
            harness.as_uri(),
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    match = re.search(r'<pre id="report">(.*?)</pre>', done.stdout, re.S)
    if match is None:
        raise RuntimeError(
            f"Chromium printed no page report (exit status {done.returncode}):\n"
            f"{done.stderr[-2000:]}"
        )
    text = match.group(1).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    if text == "not loaded":
        return {"error": "the page did not load"}, done.stderr
    return json.loads(text), done.stderr


def problems(page: str, report: dict, console: str) -> list[str]:
    """What is broken on one page, as readable lines (empty: the page is fine)."""
    found = []
    if "error" in report:
        return [f"{page}: {report['error']}"]
    if not report.get("navbar"):
        found.append(f"{page}: no theme navbar (.bd-header with its nav items)")
    if report.get("header_position") != "sticky":
        found.append(
            f"{page}: the theme's stylesheet did not apply (header position "
            f"{report.get('header_position')!r}, expected 'sticky')"
        )
    for image in report.get("images", []):
        if not image["ok"]:
            found.append(f"{page}: image not shown: {image['src']}")
    for match in BROKEN_TEXT.finditer(report.get("text", "")):
        start = max(match.start() - 60, 0)
        context = report["text"][start : match.end() + 60].replace("\n", " ")
        found.append(f"{page}: {match.group(0)!r} on the page: ...{context}...")
    for line in console.splitlines():
        if "CONSOLE" in line and BROKEN_CONSOLE.search(line):
            found.append(f"{page}: console: {line.strip()}")
    return found


def check_site(site: Path, chromium: str, pages: tuple[str, ...] = PAGES) -> list[str]:
    """Every problem on ``pages`` of the built ``site`` (also gallery pages without plot or
    code, and missing pages)."""
    found = []
    for page in pages:
        path = site / page
        if not path.is_file():
            found.append(f"{page}: missing from {site}")
            continue
        report, console = render(chromium, path)
        found += problems(page, report, console)
        if page.startswith("auto_examples/") and page != "auto_examples/index.html":
            if not report.get("code_blocks"):
                found.append(f"{page}: the example's code is not on the page")
            if not report.get("images"):
                found.append(f"{page}: the example's plot is not on the page")
        if page == "auto_examples/index.html" and len(report.get("images", [])) < 2:
            found.append(f"{page}: the gallery shows no thumbnails")
    return found


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    site = Path(args[0] if args else Path(__file__).resolve().parent / "_build" / "html")
    chromium = find_chromium()
    if chromium is None:
        print("docs check: no Chromium (apt-get install chromium, or set SKFT_CHROMIUM)")
        return 2
    if not (site / "index.html").is_file():
        print(f"docs check: no built site in {site} (run make docs)")
        return 2
    found = check_site(site, chromium)
    for line in found:
        print(f"docs check: {line}")
    if not found:
        print(f"docs check: {len(PAGES)} pages of {site} render in {Path(chromium).name}: ok")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
