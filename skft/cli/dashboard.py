"""``skft dashboard``: Optuna's dashboard on the storage a search writes, served on 127.0.0.1.

The page (``optuna-dashboard``) shows a study's trials, their intermediate (per-epoch)
scores, the optimisation history and parameter importances, and reloads them while the
search runs. Storages are the strings ``skft tune --storage`` and
:class:`skft.OptunaSearch` take; a database or journal *file* must exist already (a
misspelt path would otherwise show an empty new storage).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["open_storage", "run_dashboard"]

SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
#: Seconds between optuna-dashboard's fetches on a study's trial-list page with Live Update
#: on (its code: 2 s under 100 trials, 5 s under 500, else 10 s, as its other pages)
LIVE_EVERY = 2


def _file_of(url: str) -> tuple[str, str | None]:
    """``(url, file)``: the storage URL (a bare ``.db`` path becomes ``sqlite:///``) and the
    file it reads (``None``: a server)."""
    from ..search.storage import JOURNAL_PREFIX, JOURNAL_SUFFIXES

    if url.startswith(JOURNAL_PREFIX):
        return url, url[len(JOURNAL_PREFIX) :]
    if "://" not in url:
        if url.endswith(JOURNAL_SUFFIXES):
            return url, url
        if url.endswith(SQLITE_SUFFIXES):
            return f"sqlite:///{url}", url
        return url, None  # make_storage names what it takes
    if url.startswith("sqlite"):
        from sqlalchemy.engine import make_url

        database = make_url(url).database
        return url, (database if database and database != ":memory:" else None)
    return url, None


def open_storage(url: str) -> Any:
    """The Optuna storage at ``url``, read once to check it answers.

    Raises
    ------
    FileNotFoundError
        For a SQLite or journal file that does not exist.
    ValueError
        For a storage that cannot be opened or read (the cause named, passwords hidden).
    """
    from ..search.storage import make_storage
    from .report import redact

    url, path = _file_of(os.fspath(url))
    if path is not None and not Path(path).is_file():
        raise FileNotFoundError(
            f"no storage file {path!r} (from {redact(url)}): start the search first "
            "(skft tune --storage ..., OptunaSearch(storage=...)), or check the path"
        )
    try:
        storage = make_storage(url, heartbeat_interval=None)
        storage.get_all_studies()
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy, journal and URL errors alike
        raise ValueError(
            f"cannot open the Optuna storage {redact(url)}: {type(exc).__name__}: "
            f"{redact(str(exc))}"
        ) from exc
    return storage


def run_dashboard(args) -> int:
    """Serve the dashboard for ``args.storage`` on ``args.host``:``args.port`` until Ctrl-C."""
    import sys

    try:
        from optuna_dashboard import run_server
    except ImportError:
        print(
            "skft dashboard: needs optuna-dashboard (pip install 'skft[dashboard]')",
            file=sys.stderr,
        )
        return 2
    from .report import redact

    storage = open_storage(args.storage)
    studies = storage.get_all_studies()
    names = ", ".join(s.study_name for s in studies[:5]) + (", ..." if len(studies) > 5 else "")
    root = f"http://{args.host}:{args.port}"
    print(
        f"skft dashboard: {len(studies)} {'study' if len(studies) == 1 else 'studies'} in "
        f"{redact(args.storage)}{f' ({names})' if studies else ''}; "
        f"open {root}/ (Ctrl-C stops)",
        flush=True,
    )
    if studies:  # the newest study's trial list: the page optuna-dashboard refreshes fastest
        study_id = storage.get_study_id_from_name(studies[-1].study_name)
        print(
            f"skft dashboard: live: {root}/dashboard/studies/{study_id}/trials (trials "
            f"refreshed every {LIVE_EVERY} s while under 100)",
            flush=True,
        )
    try:
        run_server(storage, host=args.host, port=args.port)
    except OSError as exc:
        raise ValueError(f"cannot serve on {args.host}:{args.port}: {exc}") from exc
    except KeyboardInterrupt:
        pass
    return 0
