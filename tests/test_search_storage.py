"""Shared storages on one machine: SQLite and a journal file, two worker processes each."""

from __future__ import annotations

import pytest
from search_storage_checks import check_killed_worker_is_retried, check_two_workers_share

from skft.search.storage import make_pruner, make_storage


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_two_processes_share_a_study(tmp_path, kind):
    storage = (
        f"sqlite:///{tmp_path}/study.db" if kind == "sqlite" else f"journal://{tmp_path}/s.log"
    )
    check_two_workers_share(storage, f"shared-{kind}")


def test_killed_worker_trial_is_failed_and_retried_sqlite(tmp_path):
    check_killed_worker_is_retried(f"sqlite:///{tmp_path}/study.db", "killed", tmp_path)


def test_make_storage_kinds(tmp_path):
    import optuna

    assert isinstance(make_storage(None), optuna.storages.InMemoryStorage)
    journal = make_storage(str(tmp_path / "a" / "s.log"))
    assert isinstance(journal, optuna.storages.JournalStorage)
    assert isinstance(
        make_storage(f"journal://{tmp_path}/b.journal"), optuna.storages.JournalStorage
    )
    rdb = make_storage(f"sqlite:///{tmp_path}/s.db", heartbeat_interval=5, grace_period=12)
    assert isinstance(rdb, optuna.storages.RDBStorage)
    assert (rdb.heartbeat_interval, rdb.grace_period) == (5, 12)
    assert rdb.heartbeat_stale_trial_callback is not None
    assert make_storage(rdb) is rdb
    with pytest.raises(ValueError, match="database URL"):
        make_storage("study.db")
    assert isinstance(make_pruner("median"), optuna.pruners.MedianPruner)
    assert isinstance(make_pruner(None), optuna.pruners.NopPruner)
