"""freeze="contrastive" on the packaged MiniLM-L6: a few sentences per class, one pair iteration,
one epoch of the head (the stage as users run it, on real pretrained weights, offline)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from skft import FineTunedClassifier

POSITIVE = [
    "a wonderful, moving film",
    "great acting and a clever story",
    "i loved every minute of it",
    "funny, warm and beautifully shot",
]
NEGATIVE = [
    "a dull and boring mess",
    "the plot makes no sense at all",
    "i wanted to leave after ten minutes",
    "flat, lifeless acting throughout",
]
X = POSITIVE + NEGATIVE
Y = ["pos"] * len(POSITIVE) + ["neg"] * len(NEGATIVE)


@pytest.fixture
def stage(offline):
    return dict(
        backbone="minilm", freeze="contrastive", freeze__pair_iterations=1, frozen_depth="all",
        max_epochs=1, random_state=0, verbose=0,
    )  # fmt: skip


def _encoder(clf) -> list[dict[str, torch.Tensor]]:
    """Each layer group's weights (embeddings, layer0 ... layer5)."""
    return [{k: v.clone() for k, v in g.state_dict().items()} for g in clf.module_.groups]


def _same(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def test_stage_tunes_every_layer_of_minilm_leaving_no_files(stage, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # sentence-transformers' trainers write checkpoints/ here
    loaded = FineTunedClassifier(**{**stage, "freeze__pair_iterations": 0}).fit(X, Y)  # no stage
    clf = FineTunedClassifier(**stage).fit(X, Y)
    before, after = _encoder(loaded), _encoder(clf)
    assert len(after) == 7 and not any(_same(a, b) for a, b in zip(before, after))
    log = clf.freeze_policy_.stage_log
    assert log["pairs"] == 2 * len(X) and log["positive"] == len(X)  # balanced
    assert log["steps"] == 1 and np.isfinite(log["loss"]).all()
    # the head trained on the tuned encoder's features (not features cached before the stage)
    assert not np.allclose(clf.predict_proba(X), loaded.predict_proba(X))
    assert not any(p.requires_grad for p in clf.module_.groups.parameters())  # frozen again
    assert os.listdir(tmp_path) == []


def test_same_seed_same_stage_on_minilm(stage):
    a = FineTunedClassifier(**stage).fit(X, Y)
    b = FineTunedClassifier(**stage).fit(X, Y)
    c = FineTunedClassifier(**{**stage, "random_state": 1}).fit(X, Y)
    assert all(_same(p, q) for p, q in zip(_encoder(a), _encoder(b)))
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    assert not all(_same(p, q) for p, q in zip(_encoder(a), _encoder(c)))  # other pairs


def test_stage_not_repeated_when_training_continues_on_minilm(stage):
    clf = FineTunedClassifier(**stage).fit(X, Y)
    tuned = _encoder(clf)
    clf.partial_fit(X, Y)
    clf.set_params(warm_start=True).fit(X, Y)
    assert all(_same(p, q) for p, q in zip(tuned, _encoder(clf)))  # only the head trained


def test_too_few_sentences_per_class_on_minilm(stage):
    with pytest.raises(ValueError, match=r"each class needs at least 2 training samples.*'neg'"):
        FineTunedClassifier(**stage).fit(POSITIVE + NEGATIVE[:1], ["pos"] * 4 + ["neg"])
    one = FineTunedClassifier(**stage)
    with pytest.raises(ValueError, match="at least 2 classes, got 1 \\('pos'\\)"):
        one.partial_fit(POSITIVE, ["pos"] * 4, classes=["neg", "pos"])
