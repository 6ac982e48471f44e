"""Trial devices: a pool of devices handed out to parallel trials."""

from __future__ import annotations

import threading

import numpy as np
import optuna
from optuna.distributions import FloatDistribution
from sklearn.base import BaseEstimator, ClassifierMixin

from skft import OptunaSearch
from skft.training.device import DevicePool, trial_devices

optuna.logging.set_verbosity(optuna.logging.WARNING)





def test_trial_devices():
    assert trial_devices("auto", 2, 2) == ["cuda:0", "cuda:1"]
    assert trial_devices("cuda", 4, 2) == ["cuda:0", "cuda:1", "cuda:0", "cuda:1"]
    assert trial_devices("auto", 1, 4) == [None]  # one trial at a time: keep "auto"
    assert trial_devices("auto", 3, 1) == [None] * 3  # one device: nothing to spread
    assert trial_devices("cpu", 2, 2) == [None, None]  # pinned by the user
    assert trial_devices("cuda:1", 2, 2) == [None, None]


class DeviceRecorder(ClassifierMixin, BaseEstimator):
    """Records the device each fit ran with, and which fits overlapped."""

    lock = threading.Lock()
    running: dict[int, str] = {}
    overlaps: list[tuple[str, str]] = []
    seen: list[str] = []

    def __init__(self, device="auto", c=1.0):
        self.device, self.c = device, c

    def fit(self, X, y):
        import time

        me = threading.get_ident()
        with self.lock:
            self.seen.append(self.device)
            for other in self.running.values():
                self.overlaps.append((self.device, other))
            self.running[me] = self.device
        time.sleep(0.05)
        with self.lock:
            del self.running[me]
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        return np.full(len(X), self.classes_[0])


def test_parallel_trials_each_take_their_own_device(monkeypatch, digits):
    X, y = digits
    monkeypatch.setattr("skft.training.device.cuda_count", lambda: 2)
    DeviceRecorder.seen, DeviceRecorder.overlaps = [], []
    search = OptunaSearch(
        DeviceRecorder(),
        {"c": FloatDistribution(0.1, 1.0)},
        n_trials=6,
        cv=2,
        n_jobs=2,
        refit=False,
    ).fit(X.reshape(60, -1), y)
    assert len(search.study_.trials) == 6
    assert set(DeviceRecorder.seen) == {"cuda:0", "cuda:1"}
    assert DeviceRecorder.overlaps  # trials did run at the same time ...
    assert all(a != b for a, b in DeviceRecorder.overlaps)  # ... never on one device


def test_device_pool_hands_out_distinct_slots():
    pool = DevicePool(["cuda:0", "cuda:1"])
    with pool.take() as a, pool.take() as b:
        assert {a, b} == {"cuda:0", "cuda:1"}
    with pool.take() as c:
        assert c in ("cuda:0", "cuda:1")


