"""The text rule of the fit plan (skft_transformers._plan): decisions on synthetic sizes."""

from __future__ import annotations

import numpy as np
import pytest
import skft
from skft import FineTunedClassifier, FineTunedRegressor
from skft.params.plan import DataProfile, plan_fit
from skft.plugins import get_backbone

from skft_transformers import TEXT_DEFAULTS
from skft_transformers._contrastive import ContrastiveFreezer
from skft_transformers._plan import (
    BALANCED_FEW_SHOT_PER_CLASS,
    FEW_SHOT_PER_CLASS,
    HEAD_EPOCHS,
    HEAD_LR,
    MAX_PAIR_ITERATIONS,
    PAIR_BUDGET,
    pair_iterations,
)


def _plan(profile: DataProfile, **params):
    return plan_fit(get_backbone("minilm"), profile, {"pretrained": True, **params})


def sentences(per_class: int, classes: int = 2, smallest: int | None = None) -> DataProfile:
    smallest = per_class if smallest is None else smallest
    n = per_class * (classes - 1) + smallest
    return DataProfile("text", n, classes, smallest)


@pytest.mark.parametrize("per_class", [2, 8, FEW_SHOT_PER_CLASS])
def test_few_sentences_per_class_get_the_contrastive_stage_and_a_head(per_class):
    plan = _plan(sentences(per_class))
    v = plan.values
    assert v["freeze"] == "contrastive" and v["frozen_depth"] == "all"
    assert v["lr"] == HEAD_LR and v["max_epochs"] == HEAD_EPOCHS
    assert v["freeze__pair_iterations"] == pair_iterations(2 * per_class)
    assert "contrastive stage" in plan.reasons["freeze"]
    assert v["batch_size"] == TEXT_DEFAULTS["batch_size"]  # the declared defaults stand


@pytest.mark.parametrize(
    "profile",
    [
        sentences(BALANCED_FEW_SHOT_PER_CLASS + 1),
        sentences(30, smallest=4),  # 17 per class on average, not balanced
        sentences(43, smallest=7),  # SMS spam at 50: a few spam among many ham
        sentences(5, smallest=1),  # a class of one sentence has no pair of its own class
        DataProfile("text", 12, None, None),  # regression
        DataProfile("text", 12, 3, 4, multilabel=True),
    ],
    ids=["65-per-class", "4-among-30", "7-among-43", "a-lone-sentence", "regression", "multilabel"],
)
def test_otherwise_the_declared_text_defaults_stand(profile):
    v = _plan(profile).values
    assert v["freeze"] == "depth" and v["frozen_depth"] == 0
    assert "freeze__pair_iterations" not in v
    for name in ("lr", "batch_size", "max_epochs", "lr_schedule"):
        assert v[name] == TEXT_DEFAULTS[name]


def test_sentences_per_class_on_average_decide():
    plan = _plan(sentences(FEW_SHOT_PER_CLASS + 4, classes=5, smallest=2))  # 82 / 5 = 16.4
    assert plan.values["freeze"] == "depth"
    plan = _plan(sentences(FEW_SHOT_PER_CLASS, classes=10, smallest=3))  # 147 / 10
    assert plan.values["freeze"] == "contrastive"
    assert plan.values["freeze__pair_iterations"] == pair_iterations(147) == 17


@pytest.mark.parametrize("per_class", [FEW_SHOT_PER_CLASS + 1, 32, BALANCED_FEW_SHOT_PER_CLASS])
def test_balanced_classes_get_the_stage_up_to_64_per_class(per_class):
    plan = _plan(sentences(per_class))
    assert plan.values["freeze"] == "contrastive" and "balanced" in plan.reasons["freeze"]
    assert plan.values["freeze__pair_iterations"] == MAX_PAIR_ITERATIONS  # up to 128 sentences


@pytest.mark.parametrize("k", [9, 16, 24])
def test_balanced_means_the_smallest_class_holds_half_the_average(k):
    """Two classes of 3k and k sentences: average 2k, smallest k: balanced; 3k + 1: not."""
    assert _plan(sentences(3 * k, smallest=k)).values["freeze"] == "contrastive"
    assert _plan(sentences(3 * k + 1, smallest=k)).values["freeze"] == "depth"


def test_pair_rounds_fall_as_the_data_grows():
    rounds = [pair_iterations(n) for n in (4, 16, 32, 50, 128, 640, 5000)]
    assert rounds == sorted(rounds, reverse=True)
    assert rounds[:5] == [MAX_PAIR_ITERATIONS] * 5  # SetFit's 20 up to 128 sentences
    assert pair_iterations(640) == PAIR_BUDGET // 640 == 4 and rounds[-1] == 1


def test_a_policy_the_user_names_keeps_the_text_defaults():
    plan = _plan(sentences(8), freeze="depth")
    assert plan.values["freeze"] == "depth" and plan.values["frozen_depth"] == 0
    assert plan.values["lr"] == TEXT_DEFAULTS["lr"] and "freeze__pair_iterations" not in plan.values
    lora = _plan(sentences(8), freeze="lora")
    assert lora.values["frozen_depth"] == 0 and "adapters" in lora.reasons["frozen_depth"]


def test_user_values_win_over_the_rule():
    plan = _plan(sentences(8), lr=1e-3, max_epochs=3, frozen_depth="all", freeze__pair_iterations=2)
    v, why = plan.values, plan.reasons
    assert v["freeze"] == "contrastive"
    assert (v["lr"], v["max_epochs"], v["frozen_depth"], v["freeze__pair_iterations"]) == (
        1e-3,
        3,
        "all",
        2,
    )
    assert all(why[k] == "set by the user" for k in ("lr", "max_epochs", "frozen_depth"))


@pytest.mark.parametrize("depth", [0, 2])
def test_a_depth_the_user_chose_to_train_keeps_the_fine_tuning_defaults(depth):
    plan = _plan(sentences(8), frozen_depth=depth)
    v = plan.values
    assert v["freeze"] == "depth" and v["frozen_depth"] == depth
    assert v["lr"] == TEXT_DEFAULTS["lr"] and v["max_epochs"] == TEXT_DEFAULTS["max_epochs"]
    assert "freeze__pair_iterations" not in v


def test_a_few_shot_fit_runs_the_planned_stage(fast, texts, tmp_path):
    X, y = texts  # 12 per class
    settings = {k: v for k, v in fast.items() if k not in ("lr", "max_epochs", "freeze")}
    clf = FineTunedClassifier(**settings, max_epochs=1).fit(X, y)
    assert clf.get_params()["freeze"] is None
    policy = clf.freeze_policy_
    assert isinstance(policy, ContrastiveFreezer)
    assert policy.pair_iterations == pair_iterations(len(X))
    assert policy.stage_log["pairs"] == 2 * pair_iterations(len(X)) * len(X)
    assert not any(p.requires_grad for p in clf.module_.groups.parameters())  # head only
    assert clf.resolved_params_["lr"] == HEAD_LR
    loaded = skft.load(clf.save(tmp_path / "few.skft"))
    assert loaded.resolved_params_ == clf.resolved_params_
    assert loaded.freeze_policy_.pair_iterations == policy.pair_iterations
    np.testing.assert_allclose(loaded.predict_proba(X), clf.predict_proba(X), atol=1e-5)
    regressor = FineTunedRegressor(**settings).fit(X, [float(len(t)) for t in X])
    assert clf.resolved_params_ != regressor.resolved_params_
    assert regressor.resolved_params_["freeze"] == "depth"
