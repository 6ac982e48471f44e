"""Augmentation inside the estimators: strength 0, seeds, training batches only, mixing targets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.model_selection import GridSearchCV
from skorch.callbacks import EpochScoring
from skorch.dataset import ValidSplit

import skft
from skft import FineTunedClassifier, FineTunedRegressor, hookimpl
from skft.plugins import pm

AUGMENTERS = ["basic", "affine", "color", "randaugment", "mixup", "cutmix"]


@pytest.fixture(scope="module")
def fitted(digits, fast_settings):
    """A classifier fitted with augment="none" (the ``fast`` settings), shared by tests."""
    X, y = digits
    return FineTunedClassifier(**fast_settings, augment="none").fit(X, y)


@pytest.mark.parametrize("augment", [*AUGMENTERS, "basic+mixup"])
def test_strength_zero_is_augment_none(augment, digits, fast, fitted):
    X, y = digits
    ref = fitted.set_params(tta=False).predict_proba(X)
    zero = FineTunedClassifier(**fast, augment=augment).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(zero, ref)
    strong = FineTunedClassifier(**{**fast, "augment_strength": 1.0}, augment=augment)
    assert not np.array_equal(strong.fit(X, y).predict_proba(X), ref)


def test_same_seed_same_augmentation(digits, fast):
    X, y = digits
    settings = {**fast, "augment_strength": 0.8, "augment": "randaugment+cutmix"}
    a = FineTunedClassifier(**settings).fit(X, y).predict_proba(X)
    b = FineTunedClassifier(**settings).fit(X, y).predict_proba(X)
    c = FineTunedClassifier(**{**settings, "random_state": 1}).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


class Recording:
    """Records what it is handed; ``mixes_targets`` so it sees the targets too."""

    input_kinds = ("image",)
    mixes_targets = True
    seen: list[tuple[int, tuple[int, ...], torch.dtype]] = []

    def __call__(self, X, strength, generator, y=None):
        Recording.seen.append((len(X), tuple(y.shape), y.dtype))
        return X if y is None else (X, y)


class RecordingPlugin:
    @hookimpl
    def register_augmenters(self, register):
        register("recording_mix", Recording)


@pytest.fixture
def recording():
    plugin = RecordingPlugin()
    skft.plugins.load_plugins()
    pm.register(plugin, "recording_mix")
    Recording.seen = []
    try:
        yield Recording
    finally:
        pm.unregister(plugin)


def test_only_training_batches_are_augmented(recording, digits, fast):
    X, y = digits
    clf = FineTunedClassifier(
        **{**fast, "augment_strength": 0.5, "batch_size": 20},
        augment="recording_mix",
        train_split=ValidSplit(4),  # 15 held out, 45 train: batches of 20, 20, 5
        callbacks=[EpochScoring("accuracy", on_train=True, name="train_acc")],
    ).fit(X, y)
    assert [n for n, _, _ in recording.seen] == [20, 20, 5] * 2
    assert {(shape, dtype) for n, shape, dtype in recording.seen} == {
        ((20, 3), torch.float32),
        ((5, 3), torch.float32),
    }
    assert {"train_acc", "valid_acc"} <= set(clf.history[-1])  # scoring saw hard labels
    before = list(recording.seen)
    clf.predict(X)
    clf.predict_proba(X)
    clf.score(X, y)
    clf.set_params(tta=True).predict(X)
    assert recording.seen == before  # never at predict time


def test_regressor_mixes_standardised_targets(recording, digits, fast):
    X, y = digits
    reg = FineTunedRegressor(**{**fast, "augment_strength": 0.5}, augment="recording_mix")
    reg.fit(X, y.astype(float))
    assert {shape[1:] for _, shape, _ in recording.seen} == {(1,)}
    mixed = FineTunedRegressor(**{**fast, "augment_strength": 0.8}, augment="basic+mixup")
    pred = mixed.fit(X, y.astype(float)).predict(X)
    assert pred.shape == (60,) and np.isfinite(pred).all()


def test_mixup_on_tabular_input(fast):
    X = np.random.default_rng(0).normal(size=(40, 5)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    settings = {**fast, "backbone": "mlp", "image_size": None, "augment_strength": 0.5}
    mixed = FineTunedClassifier(**settings, augment="mixup").fit(X, y).predict_proba(X)
    plain = FineTunedClassifier(**settings, augment="none").fit(X, y).predict_proba(X)
    assert not np.array_equal(mixed, plain)
    with pytest.raises(ValueError, match="works on image input but backbone 'mlp'"):
        FineTunedClassifier(**settings, augment="basic+mixup").fit(X, y)


def test_mixing_augmenters_inside_grid_search(digits, fast):
    X, y = digits
    grid = GridSearchCV(
        FineTunedClassifier(**fast, augment="mixup"),
        {"augment": ["mixup", "basic+cutmix"], "augment_strength": [0.8]},
        cv=2,
        scoring=["accuracy", "neg_log_loss"],
        refit="neg_log_loss",
    ).fit(X, y)
    for key in ("mean_test_accuracy", "mean_test_neg_log_loss"):
        assert np.isfinite(grid.cv_results_[key]).all()
    proba = grid.predict_proba(X)
    assert proba.shape == (60, 3) and np.allclose(proba.sum(1), 1)
    assert set(grid.predict(X)) <= set(y)
