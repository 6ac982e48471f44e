"""skft.params.setup: one frozen decision object per fit, read by augmentation, the cache
and the speed paths."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from skorch.callbacks import Callback

import skft.training.cache
from skft import FineTunedClassifier
from skft.augment import build_augmenter
from skft.params.setup import FitSetup


class CountAugmenterCalls(Callback):
    """Counts, per epoch, the training batches the augmenter changed (``count`` patched in)."""

    def __init__(self):
        self.calls = []

    def initialize(self):
        self.calls = []
        return self

    def on_epoch_begin(self, net, **kwargs):
        self.calls.append(0)

    def count(self):
        if self.calls:
            self.calls[-1] += 1


class StopAugmenting(Callback):
    """Sets ``augment_strength=0`` after the first epoch: a parameter changed mid-fit."""

    def on_epoch_end(self, net, **kwargs):
        net.set_params(augment_strength=0.0)


def test_a_fit_decides_once_into_a_frozen_setup(digits, fast):
    X, y = digits
    clf = FineTunedClassifier(**{**fast, "frozen_depth": "all", "augment": "none"}).fit(X, y)
    setup = clf.setup_
    assert isinstance(setup, FitSetup)
    assert setup.spec is clf.backbone_spec_ and setup.freeze_policy is clf.freeze_policy_
    assert setup.plan is clf.fit_plan_
    assert setup.device == "cpu" and setup.autocast is None and not setup.channels_last
    assert not setup.augmenting and setup.feature_cache and setup.cache_in_training
    with pytest.raises(dataclasses.FrozenInstanceError):
        setup.augmenting = True
    assert "augmenting" in str(setup) and "smallcnn" in str(setup)


def test_augmentation_and_cache_follow_the_setup(digits, fast, monkeypatch):
    X, y = digits
    used = []
    real = skft.training.cache.feature_cache.features
    monkeypatch.setattr(
        skft.training.cache.feature_cache,
        "features",
        lambda *a, **k: used.append(a[1]) or real(*a, **k),
    )
    settings = {**fast, "frozen_depth": 2, "augment": "basic", "augment_strength": 0.5}
    clf = FineTunedClassifier(**settings).fit(X, y)
    assert clf.setup_.augmenting and not clf.setup_.cache_in_training
    assert not used  # augmented inputs differ between epochs: no cached training features
    clf.set_params(augment_strength=0.0).fit(X, y)
    assert not clf.setup_.augmenting and clf.setup_.cache_in_training and used[0] == 2


def test_a_parameter_changed_during_a_fit_applies_to_the_next_fit(digits, fast, monkeypatch):
    X, y = digits
    counter = CountAugmenterCalls()
    aug_class = type(build_augmenter("basic", {}))
    real = aug_class.__call__
    monkeypatch.setattr(aug_class, "__call__", lambda *a, **k: counter.count() or real(*a, **k))
    settings = {**fast, "max_epochs": 3, "augment": "basic", "augment_strength": 0.5}
    clf = FineTunedClassifier(**settings, callbacks=[counter, StopAugmenting()]).fit(X, y)
    batches = -(-len(X) // fast["batch_size"])
    assert counter.calls == [batches] * 3  # decided at the start: augmented to the end
    assert clf.augment_strength == 0.0
    clf.fit(X, y)
    assert counter.calls == [0, 0, 0] and not clf.setup_.augmenting


def test_prediction_decides_its_own_precision(digits, fast):
    X, y = digits
    clf = FineTunedClassifier(**fast).fit(X, y)
    assert clf.setup_.autocast is None
    expected = clf.predict_proba(X)
    clf.set_params(precision="bf16")
    bf16 = clf.predict_proba(X)  # decided again at the prediction's start
    assert clf.setup_.autocast is torch.bfloat16 and not clf.setup_.grad_scaler
    assert (bf16.argmax(1) == expected.argmax(1)).mean() > 0.9
    assert dataclasses.replace(clf.setup_, autocast=torch.float16).grad_scaler


def test_skft_parameters_set_on_a_fitted_estimator_apply_at_the_next_fit(digits, fast):
    X, y = digits
    clf = FineTunedClassifier(**fast).fit(X, y)  # skorch would re-initialize "head", "augment"
    clf.set_params(head="mlp", head__hidden=8, augment_strength=0.25, freeze__lr_decay=0.5)
    assert clf.head == "mlp" and clf.get_params()["head__hidden"] == 8
    clf.fit(X, y)
    hidden = [m for m in clf.module_.head.modules() if isinstance(m, torch.nn.Linear)]
    assert hidden[0].out_features == 8 and clf.setup_.augment_strength == 0.25
    assert clf.freeze_policy_.lr_decay == 0.5
    with pytest.raises(ValueError, match="'augment_strenght'.*did you mean 'augment_strength'"):
        clf.set_params(augment_strenght=0.5)
    assert "augment_strenght" not in vars(clf)
