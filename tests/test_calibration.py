"""Calibrated probabilities through scikit-learn: CalibratedClassifierCV(FrozenEstimator(clf))."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.metrics import log_loss

from skft import FineTunedClassifier
from skft.data.datasets import load_digits_images

NAMES = np.array(["zero", "one", "two"])


@pytest.fixture(scope="module")
def split():
    """Digits 0-2 as tiny images with string labels: a training, a calibration and a test part."""
    X, y = load_digits_images(n_class=3)
    y = NAMES[y]
    return (X[:90], y[:90]), (X[90:240], y[90:240]), (X[240:340], y[240:340])


@pytest.fixture(scope="module")
def fitted(split, fast_settings):
    (X, y), _, _ = split
    # sorted classes_ (the default): scikit-learn 1.9's method="temperature" assumes them
    settings = {**fast_settings, "max_epochs": 4, "lr": 3e-3}
    return FineTunedClassifier(**settings).fit(X, y)


def _weights(clf):
    return {k: v.detach().clone() for k, v in clf.module_.state_dict().items()}


@pytest.fixture
def no_refit(monkeypatch):
    """Any fit, partial_fit or (re-)initialisation of a FineTunedClassifier fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("the network was fitted again")

    for name in ("fit", "partial_fit", "initialize"):
        monkeypatch.setattr(FineTunedClassifier, name, refuse)


@pytest.mark.parametrize("method", ["sigmoid", "isotonic", "temperature"])
def test_calibration_leaves_the_network_alone(fitted, split, no_refit, method):
    _, (Xc, yc), (Xt, _) = split
    model = pickle.loads(pickle.dumps(fitted))
    before, epochs = _weights(model), len(model.history)
    raw = model.predict_proba(Xt)
    calibrated = CalibratedClassifierCV(FrozenEstimator(model), method=method).fit(Xc, yc)
    after = _weights(model)
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert len(model.history) == epochs
    np.testing.assert_array_equal(model.predict_proba(Xt), raw)  # the model itself unchanged
    proba = calibrated.predict_proba(Xt)
    assert proba.shape == raw.shape
    assert ((proba >= 0) & (proba <= 1)).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    assert sorted(calibrated.classes_) == sorted(model.classes_)
    assert not np.allclose(np.sort(proba, 1), np.sort(raw, 1), atol=1e-3)  # they did change
    assert set(calibrated.predict(Xt)) <= set(NAMES)


def test_temperature_scaling_keeps_the_predicted_class(fitted, split, no_refit):
    """Dividing the logits by one temperature does not reorder a row's classes."""
    _, (Xc, yc), (Xt, _) = split
    cal = CalibratedClassifierCV(FrozenEstimator(fitted), method="temperature").fit(Xc, yc)
    np.testing.assert_array_equal(cal.predict(Xt), fitted.predict(Xt))


def test_temperature_scaling_does_not_worsen_the_log_loss_it_fits(fitted, split, no_refit):
    """Temperature 1 is the identity: on its own data, the fitted temperature cannot do worse."""
    _, (Xc, yc), _ = split
    cal = CalibratedClassifierCV(FrozenEstimator(fitted), method="temperature").fit(Xc, yc)
    proba = cal.predict_proba(Xc).astype(np.float64)  # float32 rows sum to 1 +- 1e-7
    proba /= proba.sum(axis=1, keepdims=True)
    assert list(cal.classes_) == list(fitted.classes_)
    raw = fitted.predict_proba(Xc)
    assert log_loss(yc, proba, labels=cal.classes_) <= log_loss(yc, raw, labels=cal.classes_) + 1e-4


def test_a_calibrated_model_pickles(fitted, split):
    _, (Xc, yc), (Xt, _) = split
    cal = CalibratedClassifierCV(FrozenEstimator(fitted), method="sigmoid").fit(Xc, yc)
    copy = pickle.loads(pickle.dumps(cal))
    np.testing.assert_allclose(copy.predict_proba(Xt), cal.predict_proba(Xt), atol=1e-6)
