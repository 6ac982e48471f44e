"""Shared-storage checks used by test_search_storage.py and test_search_postgres.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState

WORKER = Path(__file__).with_name("search_worker.py")
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def start_worker(storage: str, study: str, n_trials: int, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, str(WORKER), storage, study, str(n_trials), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def finish(proc: subprocess.Popen, timeout: float = 120) -> dict:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def load(storage: str, study: str) -> optuna.Study:
    from skft.search.storage import make_storage

    return optuna.load_study(
        study_name=study, storage=make_storage(storage, heartbeat_interval=None)
    )


def check_two_workers_share(storage: str, study: str, n_trials: int = 6) -> None:
    """Two processes on one study: together they run the study's n_trials, none twice."""
    procs = [start_worker(storage, study, n_trials) for _ in range(2)]
    results = [finish(p) for p in procs]
    trials = load(storage, study).get_trials(deepcopy=False)
    finished = [t for t in trials if t.state in FINISHED]
    # the last worker to stop may finish one trial that was running when the target was hit
    assert n_trials <= len(finished) <= n_trials + 1
    assert len(trials) == len(finished)  # nothing failed, nothing left running
    assert len({t.number for t in trials}) == len(trials)
    assert len({t.params["lr"] for t in trials}) == len(trials)  # no draw repeated
    assert max(r["seen"] for r in results) == len(finished)  # a worker sees the other's trials
    assert len({r["pid"] for r in results}) == 2


def check_killed_worker_is_retried(storage: str, study: str, tmp_path: Path, n_trials: int = 5):
    """SIGKILL one of two workers in mid-trial: its trial is failed (heartbeat) and retried."""
    marker = tmp_path / f"{study}.running"
    victim = start_worker(storage, study, n_trials, "--marker", str(marker), "--sleep", "0.4")
    deadline = time.time() + 90
    while not marker.exists():
        assert victim.poll() is None, victim.communicate()[1][-3000:]
        assert time.time() < deadline, "the victim never started a trial"
        time.sleep(0.05)
    survivor = start_worker(storage, study, n_trials, "--sleep", "0.4")
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    assert victim.returncode == -signal.SIGKILL
    finish(survivor, timeout=240)

    trials = load(storage, study).get_trials(deepcopy=False)
    states = [t.state for t in trials]
    finished = [t for t in trials if t.state in FINISHED]
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(finished) == n_trials, states  # the study reached its count ...
    assert TrialState.RUNNING not in states and TrialState.WAITING not in states  # ... lost none
    assert len(failed) == 1  # the killed worker's trial, marked failed by the heartbeat
    retried_number = failed[0].number
    from optuna.storages import RetryFailedTrialCallback

    retries = [t for t in trials if RetryFailedTrialCallback.retried_trial_number(t) is not None]
    assert [RetryFailedTrialCallback.retried_trial_number(t) for t in retries] == [retried_number]
    (retry,) = retries  # retried exactly once, with the same parameters, and finished
    assert retry.state in FINISHED and retry.params == failed[0].params
    assert len({t.number for t in trials}) == len(trials)
