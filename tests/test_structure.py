"""Behaviour the structure work added: checks before any work, export, quiet fits, cache keys."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision

import skft.base
from skft import FineTunedClassifier, FineTunedRegressor
from skft.data.adapters import adapt_images


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"max_epochs": 0}, "max_epochs must be an int >= 1"),
        ({"max_epochs": 2.5}, "max_epochs must be an int >= 1"),
        ({"batch_size": 0}, "batch_size must be an int >= 1"),
        ({"batch_size": -3}, "batch_size must be an int >= 1"),
        ({"lr": 0.0}, "lr must be a float > 0"),
        ({"feature_cache": "yes"}, "feature_cache must be True or False"),
        ({"frozen_depth": True}, "frozen_depth must be an int >= 0, 'all' or None"),
    ],
)
def test_bad_scalars_fail_before_any_work(digits, fast, params, words, monkeypatch):
    X, y = digits
    clf = FineTunedClassifier(**{**fast, **params})
    monkeypatch.setattr(FineTunedClassifier, "initialize", lambda self: pytest.fail("worked"))
    with pytest.raises(ValueError, match=words):
        clf.fit(X, y)


def test_batch_size_minus_one_is_one_batch(digits, fast):
    X, y = digits
    clf = FineTunedClassifier(**{**fast, "batch_size": -1, "max_epochs": 1}).fit(X, y)
    assert clf.history[-1, "batches", -1, "train_batch_size"] == len(X)
    assert clf.predict(X).shape == (len(X),)


def test_export_backbone_loads_into_torchvision(digits, fast):
    X, y = digits
    clf = FineTunedClassifier(**{**fast, "backbone": "resnet18", "max_epochs": 1}).fit(X, y)
    exported = clf.export_backbone()
    fresh = torchvision.models.resnet18(weights=None)
    fresh.fc = torch.nn.Identity()
    fresh.conv1 = torch.nn.Conv2d(1, 64, 7, 2, 3, bias=False)  # digits are grayscale
    fresh.load_state_dict(exported.state_dict())  # strict: torchvision's own names
    fresh.eval()
    module = clf.module_.eval()
    x = module.preprocess(adapt_images(X[:5], 16))
    with torch.no_grad():
        skft_features = module.neck(_through(module.groups, x))
        np.testing.assert_allclose(fresh(x).numpy(), skft_features.numpy(), atol=1e-5)
    # the tuned weights, not the initial ones: the export follows training
    assert torch.equal(exported.layer4[1].conv2.weight, module.groups[4][1].conv2.weight.cpu())


def _through(groups, x):
    for group in groups:
        x = group(x)
    return x


def test_export_backbone_without_original_architecture(digits, fast):
    X, y = digits
    clf = FineTunedClassifier(**{**fast, "max_epochs": 1}).fit(X, y)  # smallcnn
    with pytest.raises(ValueError, match="original architecture"):
        clf.export_backbone()


def test_model_key_once_per_fit_not_per_partial_fit(digits, fast, monkeypatch):
    X, y = digits
    calls = []
    real = skft.base.model_key  # the estimator's prefix_key computes it
    monkeypatch.setattr(skft.base, "model_key", lambda *a: calls.append(a[1]) or real(*a))
    clf = FineTunedClassifier(**{**fast, "frozen_depth": "all"})
    for _ in range(4):
        clf.partial_fit(X, y)
    clf.predict(X)
    assert calls == [3]  # smallcnn: three groups, all frozen; one hash for all calls


def test_silent_by_default_and_one_line_per_epoch_when_verbose(digits, fast, capsys):
    X, y = digits
    settings = {k: v for k, v in fast.items() if k != "verbose"}
    FineTunedClassifier(**settings).fit(X, y)
    assert capsys.readouterr().out == ""
    FineTunedRegressor(**settings, verbose=1).fit(X, y.astype(float))
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == settings["max_epochs"]
    assert lines[0].startswith("epoch   1/2") and "train_loss" in lines[0]
    assert "\x1b[" not in "".join(lines)  # no colour codes
