"""Optuna storages, pruners and study snapshots for :class:`skft.OptunaSearch`.

Storage strings:

* ``None``: in memory (one process);
* ``"journal:///path/study.log"`` or a path ending in ``.log``/``.journal``:
  a journal file (several processes on one machine; no heartbeat);
* any SQLAlchemy URL (``sqlite:///study.db``, ``postgresql://user:pw@host:5432/db``):
  Optuna's RDB storage with a heartbeat. A worker that dies in mid-trial stops
  beating; after ``grace_period`` seconds the next live worker marks its
  trial FAIL and enqueues a retry with the same parameters.
"""

from __future__ import annotations

import os
import time
import warnings
from typing import Any

__all__ = ["make_pruner", "make_storage", "study_from_snapshot", "study_snapshot"]

JOURNAL_PREFIX = "journal://"
JOURNAL_SUFFIXES = (".log", ".journal")


def make_storage(
    storage: Any,
    *,
    heartbeat_interval: int | None = 30,
    grace_period: int | None = None,
    max_retry: int | None = 3,
):
    """An Optuna storage from ``None``, a URL/path string or a storage object.

    Parameters
    ----------
    storage : None, str, os.PathLike or optuna.storages.BaseStorage
        See the module docstring.
    heartbeat_interval : int or None
        Seconds between heartbeats of a running trial (database URLs only).
    grace_period : int or None
        Seconds without a heartbeat before a trial counts as dead
        (``None``: twice the interval).
    max_retry : int or None
        How often a dead worker's trial is retried (``None``: without limit).
    """
    import optuna

    if storage is None:
        return optuna.storages.InMemoryStorage()
    if isinstance(storage, optuna.storages.BaseStorage):
        return storage
    if isinstance(storage, os.PathLike):
        storage = os.fspath(storage)
    if not isinstance(storage, str):
        raise TypeError(
            f"storage must be None, a URL, a journal path or an optuna storage, got {storage!r}"
        )
    if storage.startswith(JOURNAL_PREFIX) or (
        "://" not in storage and storage.endswith(JOURNAL_SUFFIXES)
    ):
        path = storage[len(JOURNAL_PREFIX) :] if storage.startswith(JOURNAL_PREFIX) else storage
        return _journal(path)
    if "://" not in storage:
        raise ValueError(
            f"storage={storage!r}: use a database URL (sqlite:///study.db, "
            "postgresql://user:password@host:5432/db) or a journal file "
            "(journal:///path/study.log, or a path ending in .log)"
        )
    storage = _postgres_driver(storage)
    engine_kwargs: dict[str, Any] = {}
    if storage.startswith("sqlite"):
        engine_kwargs["connect_args"] = {"timeout": 60}  # several processes take turns
    from optuna.storages import RDBStorage

    try:
        from optuna.storages import RetryHeartbeatStaleTrialCallback as Retry

        callback_arg = "heartbeat_stale_trial_callback"
    except ImportError:  # optuna < 4.9
        from optuna.storages import RetryFailedTrialCallback as Retry

        callback_arg = "failed_trial_callback"
    kwargs: dict[str, Any] = {}
    if heartbeat_interval is not None:
        with warnings.catch_warnings():  # chosen knowingly: retrying is what heartbeats are for
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            retry = Retry(max_retry=max_retry)
        kwargs = {
            "heartbeat_interval": int(heartbeat_interval),
            "grace_period": None if grace_period is None else int(grace_period),
            callback_arg: retry,
        }
    import sqlalchemy.exc

    for attempt in range(5):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # heartbeat_interval is marked experimental
                return RDBStorage(storage, engine_kwargs=engine_kwargs, **kwargs)
        except sqlalchemy.exc.SQLAlchemyError:
            # workers starting together race to create the tables ("already exists")
            if attempt == 4:
                raise
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")  # pragma: no cover


def _postgres_driver(url: str) -> str:
    """``postgresql://`` with whichever driver is installed (SQLAlchemy 2.1 defaults to
    psycopg 3, older versions to psycopg2; skft's ``postgres`` extra installs psycopg2)."""
    import importlib.util

    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            rest = url[len(prefix) :]
            for module, dialect in (("psycopg", "psycopg"), ("psycopg2", "psycopg2")):
                if importlib.util.find_spec(module) is not None:
                    return f"postgresql+{dialect}://{rest}"
    return url


def _journal(path: str):
    from optuna.storages import JournalStorage

    try:
        from optuna.storages.journal import JournalFileBackend as Backend
    except ImportError:  # optuna < 4.0
        from optuna.storages import JournalFileStorage as Backend
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    return JournalStorage(Backend(path))


def make_pruner(pruner: Any):
    """``"median"``, ``"none"``/``None`` or an Optuna pruner object."""
    import optuna

    if pruner is None or pruner == "none":
        return optuna.pruners.NopPruner()
    if pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
    if isinstance(pruner, optuna.pruners.BasePruner):
        return pruner
    raise ValueError(f"pruner must be 'median', 'none', None or an optuna pruner, got {pruner!r}")


# --------------------------------------------------------------------------
# pickling a study: the trials, not the connection
# --------------------------------------------------------------------------


def study_snapshot(study: Any) -> dict[str, Any]:
    """What :func:`study_from_snapshot` needs to rebuild ``study`` in memory."""
    return {
        "study_name": study.study_name,
        "directions": [d.name for d in study.directions],
        "trials": study.get_trials(deepcopy=True),
        "user_attrs": dict(study.user_attrs),
        "sampler": study.sampler,
        "pruner": study.pruner,
    }


def study_from_snapshot(snapshot: dict[str, Any]):
    """An in-memory study holding the snapshot's trials."""
    import optuna

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "new study created" line
    try:
        study = optuna.create_study(
            storage=optuna.storages.InMemoryStorage(),
            study_name=snapshot["study_name"],
            directions=[d.lower() for d in snapshot["directions"]],
            sampler=snapshot["sampler"],
            pruner=snapshot["pruner"],
        )
    finally:
        optuna.logging.set_verbosity(verbosity)
    for key, value in snapshot["user_attrs"].items():
        study.set_user_attr(key, value)
    study.add_trials(snapshot["trials"])
    return study
