"""checkpoint=: every epoch saved atomically, a killed fit resumed to the same weights."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from skft import FineTunedClassifier
from skft.training.checkpoint import checkpoint_path

WORKER = Path(__file__).with_name("checkpoint_worker.py")
ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str, wait: bool = True) -> subprocess.Popen:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.Popen([sys.executable, str(WORKER), *args], env=env)
    if wait:
        assert proc.wait(timeout=120) == 0
    return proc


@pytest.mark.slow
def test_sigkilled_fit_resumes_to_the_same_weights(tmp_path):
    _run(str(tmp_path / "straight"), str(tmp_path / "straight.pt"))
    marker = tmp_path / "hanging"
    victim = _run(
        str(tmp_path / "killed"), str(tmp_path / "never.pt"), "--hang-at", "3", str(marker),
        wait=False,
    )  # fmt: skip
    deadline = time.time() + 120
    while not marker.exists():
        assert victim.poll() is None and time.time() < deadline, "worker ended early"
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)  # in the middle of epoch 4
    victim.wait(timeout=30)
    assert not (tmp_path / "never.pt").exists()
    (saved,) = list((tmp_path / "killed").glob("fit-*.pt"))
    history = json.loads(torch.load(saved, weights_only=True)["history"])
    assert len(history) == 3  # 3 whole epochs kept
    _run(str(tmp_path / "killed"), str(tmp_path / "resumed.pt"))
    straight = torch.load(tmp_path / "straight.pt", weights_only=True)
    resumed = torch.load(tmp_path / "resumed.pt", weights_only=True)
    assert straight["epochs"] == resumed["epochs"] == 6
    for key, value in straight["state"].items():
        assert torch.equal(value, resumed["state"][key]), key


def test_files_are_unique_per_fit_and_a_finished_fit_returns_at_once(digits, fast, tmp_path):
    X, y = digits
    clf = FineTunedClassifier(**fast, checkpoint=tmp_path)
    clf.fit(X, y)
    clf.fit(X[:30], y[:30])  # other data (a CV fold): another file
    FineTunedClassifier(**{**fast, "lr": 0.01}, checkpoint=tmp_path).fit(X, y)  # other params
    assert len(list(tmp_path.glob("fit-*.pt"))) == 3
    assert not list(tmp_path.glob("*.tmp*"))  # written atomically: no leftovers
    again = FineTunedClassifier(**fast, checkpoint=tmp_path).fit(X, y)
    assert len(again.history) == fast["max_epochs"]  # resumed at the end: nothing left to train
    np.testing.assert_allclose(again.predict_proba(X), clf.fit(X, y).predict_proba(X), rtol=1e-6)


def test_damaged_checkpoint_is_named(digits, fast, tmp_path):
    X, y = digits
    clf = FineTunedClassifier(**fast, checkpoint=tmp_path)
    Xt, yt = clf._prepare(X, y, initial=True)
    path = checkpoint_path(clf, Xt, yt)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"(?s)checkpoint .*fit-.*\.pt cannot be read.*delete it"):
        clf.fit(X, y)
