"""``skft dashboard``: storages it cannot open are named; a search's trials show in a browser.

The browser test runs ``docs/dashboard_check.py``'s pieces: a small search into a journal
file, ``skft dashboard`` on it, the page loaded in headless Chromium (skipped without one).
"""

from __future__ import annotations

import runpy
import time
from pathlib import Path

import pytest

from skft.cli.dashboard import open_storage
from skft.cli.main import build_parser, main

pytest.importorskip("optuna_dashboard")

ROOT = Path(__file__).resolve().parents[1]
CHECK = runpy.run_path(str(ROOT / "docs" / "dashboard_check.py"), run_name="dashboard_check")


def test_serves_on_localhost_by_default():
    args = build_parser().parse_args(["dashboard", "sqlite:///s.db"])
    assert (args.storage, args.host, args.port) == ("sqlite:///s.db", "127.0.0.1", 8080)


@pytest.mark.parametrize(
    "storage",
    ["sqlite:///{tmp}/missing.db", "{tmp}/missing.db", "journal:///{tmp}/missing.log"],
)
def test_missing_storage_file_is_named_and_not_created(storage, tmp_path, capsys):
    assert main(["dashboard", storage.format(tmp=tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "skft dashboard: no storage file" in err and "missing." in err
    assert list(tmp_path.iterdir()) == []  # no empty storage made in its place


@pytest.mark.parametrize(
    "storage, cause",
    [
        ("postgresql://skft:secret@127.0.0.1:1/none", "OperationalError"),
        ("nosuchdb://host/db", "NoSuchModuleError"),
        ("study.txt", "use a database URL"),
    ],
)
def test_storage_that_cannot_be_opened_names_the_cause(storage, cause, capsys):
    assert main(["dashboard", storage]) == 2
    err = capsys.readouterr().err
    assert "cannot open the Optuna storage" in err and cause in err
    assert "secret" not in err  # the password is hidden


def test_not_a_storage_file(tmp_path):
    bad = tmp_path / "notes.db"
    bad.write_text("not a database")
    with pytest.raises(ValueError, match="cannot open the Optuna storage.*DatabaseError"):
        open_storage(str(bad))


@pytest.fixture(scope="module")
def chromium() -> str:
    found = CHECK["find_chromium"]()
    if found is None:
        pytest.skip("no Chromium (apt-get install chromium)")
    return found


@pytest.mark.slow  # two small searches and two page loads: about 30 s on 2 cores
def test_trials_of_a_running_search_show_in_the_browser(chromium, tmp_path):
    storage = f"journal://{tmp_path}/study.log"
    CHECK["small_search"](storage, 2)
    with CHECK["Dashboard"](storage) as dashboard:
        url = dashboard.page()
        assert CHECK["missing_trials"](CHECK["page_text"](chromium, url), 2) == []
        CHECK["small_search"](storage, 3)  # the search goes on while the dashboard runs
        # optuna-dashboard may serve its cached study for a few seconds: reload until the
        # new trial shows (the docs say how long it took; here, any time within a minute)
        deadline = time.monotonic() + 60
        while True:
            text = CHECK["page_text"](chromium, url)
            missing = CHECK["missing_trials"](text, 3)
            if not missing or time.monotonic() > deadline:
                break
            time.sleep(2)
        assert missing == []
        assert "trial #3" not in text  # what it shows is the study's, not made up


@pytest.mark.slow  # a small search, Chromium left open on the trial list: about 20 s
def test_an_open_trial_list_shows_a_new_trial_without_reload(chromium, tmp_path):
    storage = f"sqlite:///{tmp_path}/study.db"
    CHECK["small_search"](storage, 2)
    with CHECK["Dashboard"](storage) as dashboard:
        number, delay = CHECK["live_delay"](chromium, dashboard, storage, timeout=60)
        live_url = dashboard.page() + "/trials"
    printed = dashboard.process.stdout.read()
    assert f"live: {live_url} " in printed  # skft dashboard names the page it refreshes fastest
    assert number == 2
    assert delay is not None  # shown by the page itself (the docs give the measured delay)
