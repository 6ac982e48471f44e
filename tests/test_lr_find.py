"""The learning-rate range test: skft.lr_find and lr="find"."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest

import skft
from skft import FineTunedClassifier, FineTunedRegressor
from skft.training import lr_finder

matplotlib.use("Agg")


def test_lr_find_returns_a_rate_inside_its_range_and_the_curve(digits, fast):
    X, y = digits
    clf = FineTunedClassifier(**{**fast, "batch_size": 8})
    result = skft.lr_find(clf, X, y, start_lr=1e-5, end_lr=10.0, num_iter=40)
    assert 1e-5 <= result.suggestion <= 10.0
    assert len(result.lrs) == len(result.losses) == len(result.smoothed) <= 40
    assert np.all(np.diff(result.lrs) > 0)  # rising geometrically
    # the huge rates at the end blow the loss up: the test stops before trying them all
    assert len(result.losses) < 40 or max(result.losses) > 2 * min(result.losses)
    assert result.suggestion < result.lrs[-1]
    assert not hasattr(clf, "module_")  # the estimator itself is untouched
    ax = result.plot()
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "learning rate"


def test_lr_find_spans_several_epochs_when_batches_are_few(digits, fast):
    X, y = digits
    result = skft.lr_find(FineTunedClassifier(**fast), X, y, end_lr=1e-3, num_iter=12)
    assert len(result.losses) == 12  # 60 samples / batch 16 = 4 batches an epoch: 3 epochs


def test_lr_find_keeps_the_policy_lr_factors(digits, fast, monkeypatch):
    X, y = digits
    clf = FineTunedClassifier(**fast, freeze__lr_decay=0.5)
    seen = []

    class Spy(lr_finder.LRFinder):
        def on_batch_begin(self, net, training=False, **kwargs):
            super().on_batch_begin(net, training=training, **kwargs)
            if training:
                seen.append({g["name"]: g["lr"] for g in net.optimizer_.param_groups})

    monkeypatch.setattr(lr_finder, "LRFinder", Spy)
    result = skft.lr_find(clf, X, y, end_lr=1e-2, num_iter=8)
    first = seen[0]
    assert first["head"] == pytest.approx(result.lrs[0])
    assert first["block3"] == pytest.approx(result.lrs[0] * 0.5)  # one group below the head


def test_lr_find_fits_with_the_rate_found(digits, fast):
    X, y = digits
    clf = FineTunedRegressor(**{**fast, "lr": "find"}).fit(X, y.astype(float))
    assert 1e-6 <= clf.lr_found_ <= 1.0
    assert {g["lr"] for g in clf.optimizer_.param_groups} == {clf.lr_found_}
    assert clf.get_params()["lr"] == "find"  # the parameter is kept as given
    assert np.isfinite(clf.predict(X)).all()


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"start_lr": 0.0}, "0 < start_lr < end_lr"),
        ({"start_lr": 1.0, "end_lr": 0.1}, "0 < start_lr < end_lr"),
        ({"num_iter": 2}, "num_iter must be an int >= 5"),
    ],
)
def test_lr_find_bad_arguments(digits, fast, kwargs, words):
    X, y = digits
    with pytest.raises(ValueError, match=words):
        skft.lr_find(FineTunedClassifier(**fast), X, y, **kwargs)


def test_lr_bad_string(digits, fast):
    X, y = digits
    with pytest.raises(ValueError, match="lr must be a float > 0 or 'find'"):
        FineTunedClassifier(**{**fast, "lr": "auto"}).fit(X, y)
