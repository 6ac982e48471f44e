"""freeze="contrastive": SetFit's contrastive stage (tiny random BERT, one pair iteration)."""

from __future__ import annotations

import numpy as np
import pytest
import skft
import torch
from skft import FineTunedClassifier, FineTunedRegressor
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

from skft_transformers._contrastive import LOSSES, ContrastiveFreezer, sentence_pairs


@pytest.fixture
def stage(fast):
    """One pair iteration, one epoch of the head on the frozen encoder (SetFit's recipe)."""
    return {
        **fast,
        "freeze": "contrastive",
        "freeze__pair_iterations": 1,
        "frozen_depth": "all",
        "max_epochs": 1,
    }


def _no_stage(stage: dict) -> dict:
    """The same settings with the depth policy (no stage; the fit plan picks none)."""
    return {**{k: v for k, v in stage.items() if not k.startswith("freeze")}, "freeze": "depth"}


def _encoder_state(clf) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in clf.module_.groups.state_dict().items()}


def _changed(a: dict, b: dict) -> bool:
    return any(not torch.equal(a[k], b[k]) for k in a)


# --------------------------------------------------------------------------
# pairs
# --------------------------------------------------------------------------


def test_pairs_are_balanced_and_follow_the_seed():
    labels = np.array(["a"] * 5 + ["b"] * 3 + ["c"] * 4)
    pairs = sentence_pairs(labels, 3, np.random.default_rng(0))
    assert pairs.shape == (2 * 3 * len(labels), 3)
    same = pairs[:, 2] == 1
    assert same.sum() == (~same).sum()  # as many positive as negative pairs
    i, j = pairs[:, 0], pairs[:, 1]
    assert (labels[i[same]] == labels[j[same]]).all() and (i[same] != j[same]).all()
    assert (labels[i[~same]] != labels[j[~same]]).all()
    # every sample anchors one positive and one negative pair per round
    assert np.bincount(i[same], minlength=len(labels)).tolist() == [3] * len(labels)
    assert np.bincount(i[~same], minlength=len(labels)).tolist() == [3] * len(labels)
    again = sentence_pairs(labels, 3, np.random.default_rng(0))
    other = sentence_pairs(labels, 3, np.random.default_rng(1))
    assert np.array_equal(pairs, again) and not np.array_equal(pairs, other)


def test_pairs_need_two_classes_and_a_pair_of_one_class():
    with pytest.raises(ValueError, match="at least 2 classes, got 1"):
        sentence_pairs(np.zeros(6), 1, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"at least 2 training samples; 3 of 3 classes have 1"):
        sentence_pairs(np.array([0, 1, 2]), 1, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"1 of 2 classes have 1 \('spam'\)"):
        sentence_pairs(np.array([0, 0, 0, 1]), 2, np.random.default_rng(0), ["ham", "spam"])
    two = sentence_pairs(np.array([0, 0, 1, 1]), 2, np.random.default_rng(0))
    assert (two[:, 2] == 1).sum() == 2 * 4 and (two[:, 2] == 0).sum() == 2 * 4


# --------------------------------------------------------------------------
# the stage in a fit
# --------------------------------------------------------------------------


def test_stage_trains_the_encoder_then_freezes_it(stage, texts):
    X, y = texts
    probe = FineTunedClassifier(**_no_stage(stage))
    before = _encoder_state(probe.fit(X, y))  # a linear probe leaves the encoder as loaded
    clf = FineTunedClassifier(**stage).fit(X, y)
    assert _changed(before, _encoder_state(clf))
    log = clf.freeze_policy_.stage_log
    assert log["pairs"] == 2 * len(X) and log["positive"] == len(X)
    assert log["steps"] == int(np.ceil(2 * len(X) / 16)) and np.isfinite(log["loss"]).all()
    # after the stage, the epochs freeze as "depth" does: only the head trained
    assert not any(p.requires_grad for p in clf.module_.groups.parameters())
    assert all(p.grad is None for p in clf.module_.groups.parameters())
    assert clf.predict(X).shape == (len(X),)


def test_no_pair_iterations_is_the_depth_policy(stage, texts):
    X, y = texts
    off = FineTunedClassifier(**{**stage, "freeze__pair_iterations": 0}).fit(X, y)
    depth = FineTunedClassifier(**_no_stage(stage)).fit(X, y)
    assert not _changed(_encoder_state(off), _encoder_state(depth))
    np.testing.assert_allclose(off.predict_proba(X), depth.predict_proba(X), atol=1e-6)


def test_same_random_state_same_pairs_and_weights(stage, texts):
    X, y = texts
    a = FineTunedClassifier(**stage).fit(X, y)
    b = FineTunedClassifier(**stage).fit(X, y)
    c = FineTunedClassifier(**{**stage, "random_state": 1}).fit(X, y)
    assert not _changed(_encoder_state(a), _encoder_state(b))
    assert a.freeze_policy_.stage_log["loss"] == b.freeze_policy_.stage_log["loss"]
    assert _changed(_encoder_state(a), _encoder_state(c))


def test_stage_runs_once_per_fit_not_when_training_continues(stage, texts):
    X, y = texts
    clf = FineTunedClassifier(**stage).fit(X, y)  # frozen_depth="all": only the stage moves it
    tuned, log = _encoder_state(clf), clf.freeze_policy_.stage_log
    clf.partial_fit(X, y)  # one more epoch of the head
    assert not _changed(tuned, _encoder_state(clf)) and clf.freeze_policy_.stage_log is log
    clf.set_params(warm_start=True).fit(X, y)  # continues too
    assert not _changed(tuned, _encoder_state(clf)) and clf.freeze_policy_.stage_log is log
    clf.set_params(warm_start=False).fit(X, y)  # a new fit: fresh weights, the stage again
    assert clf.freeze_policy_.stage_log is not log
    assert not _changed(tuned, _encoder_state(clf))  # same seed, same stage
    first = FineTunedClassifier(**stage).partial_fit(X, y)  # the first partial_fit: the stage
    assert not _changed(tuned, _encoder_state(first))


def test_stage_then_fine_tuning_and_other_policies(stage, texts):
    X, y = texts
    clf = FineTunedClassifier(**{**stage, "frozen_depth": 0, "freeze__then": "lp_ft"}).fit(X, y)
    assert "probe_epochs=3" in repr(clf.freeze_policy_)  # lp_ft after the stage: head first
    assert not any(p.requires_grad for p in clf.module_.groups.parameters())
    tuned = FineTunedClassifier(**{**stage, "frozen_depth": 1, "max_epochs": 2}).fit(X, y)
    trainable = [all(p.requires_grad for p in g.parameters()) for g in tuned.module_.groups]
    assert trainable == [False, True, True]


@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_every_loss_trains(stage, texts, loss):
    X, y = texts
    clf = FineTunedClassifier(**{**stage, "freeze__loss": loss}).fit(X, y)
    assert np.isfinite(clf.freeze_policy_.stage_log["loss"]).all()


def test_validation_split_stays_out_of_the_stage(stage, texts):
    X, y = texts
    params = {**stage, "early_stopping": True, "validation_fraction": 0.25}
    codes = [int(v == "spam") for v in y]  # early stopping fails on str labels (skft, not this)
    clf = FineTunedClassifier(**params).fit(X, codes)
    assert clf.freeze_policy_.stage_log["pairs"] == 2 * (len(X) - len(X) // 4)


def test_verbose_prints_the_stage(stage, texts, capsys):
    X, y = texts
    FineTunedClassifier(**{**stage, "verbose": 1}).fit(X, y)
    out = capsys.readouterr().out
    assert "contrastive 1/1" in out and "48 pairs" in out and "epoch   1/1" in out


# --------------------------------------------------------------------------
# parameters, search, persistence
# --------------------------------------------------------------------------


def test_searchable_through_set_params_clone_and_grid_search(fast, texts):
    X, y = texts
    clf = FineTunedClassifier(**{**fast, "frozen_depth": "all", "max_epochs": 1})
    clf.set_params(freeze="contrastive", freeze__pair_iterations=1)
    twin = clone(clf)
    assert twin.get_params()["freeze"] == "contrastive"
    assert twin.get_params()["freeze__pair_iterations"] == 1
    grid = GridSearchCV(
        FineTunedClassifier(**{**fast, "frozen_depth": "all", "max_epochs": 1}),
        [{"freeze": ["depth"]}, {"freeze": ["setfit"], "freeze__pair_iterations": [0, 1]}],
        cv=2,
    ).fit(X, y)
    assert len(grid.cv_results_["params"]) == 3
    best = grid.best_estimator_
    assert isinstance(best.freeze_policy_, ContrastiveFreezer) == (best.freeze == "setfit")


def test_search_space_offers_the_stage_parameters(fast):
    pytest.importorskip("optuna")
    from skft.search.space import default_search_space

    space = default_search_space(FineTunedClassifier(**{**fast, "freeze": "contrastive"}))
    assert space["freeze__pair_iterations"].low == 0  # 0: the stage off
    assert "freeze__lr" in space
    assert "freeze__pair_iterations" not in default_search_space(FineTunedClassifier(**fast))


def test_search_with_the_stage_entries(fast, texts, monkeypatch):
    pytest.importorskip("optuna")
    from optuna.distributions import IntDistribution
    from skft.search import OptunaSearch

    from skft_transformers import _contrastive

    runs = []
    stage = _contrastive.contrastive_stage

    def counted(estimator, X, y):
        runs.append(estimator.freeze_policy_.pair_iterations)
        stage(estimator, X, y)

    monkeypatch.setattr(_contrastive, "contrastive_stage", counted)
    X, y = texts
    est = FineTunedClassifier(
        **{**fast, "freeze": "contrastive", "frozen_depth": "all", "max_epochs": 1}
    )
    few = IntDistribution(1, 2)  # the plugin's range (0 .. 40) made short for a test
    only_stage = {"lr": None, "frozen_depth": None, "augment_strength": None,
                  "freeze__pair_iterations": few}  # fmt: skip
    search = OptunaSearch(est, only_stage, n_trials=2, cv=2, random_state=0).fit(X, y)
    assert {"freeze__pair_iterations", "freeze__lr"} <= set(search.search_space_)
    for params in search.cv_results_["params"]:
        assert params["freeze__pair_iterations"] in (1, 2) and 5e-6 <= params["freeze__lr"] <= 1e-4
    # every fold trains epoch by epoch (lockstep partial_fit): one stage per fold, one refit
    assert len(runs) == 2 * 2 + 1
    assert runs[-1] == search.best_params_["freeze__pair_iterations"]
    assert search.best_estimator_.freeze_policy_.lr == search.best_params_["freeze__lr"]


def test_bad_stage_parameters_are_named(stage, texts):
    X, y = texts
    for name, value in [("pair_iterations", -1), ("lr", 0.0), ("loss", "triplet"), ("then", "x")]:
        with pytest.raises(ValueError, match=name if name != "then" else "Unknown freezing"):
            FineTunedClassifier(**{**stage, f"freeze__{name}": value}).fit(X, y)


def test_save_and_load_keep_the_tuned_encoder(stage, texts, tmp_path):
    X, y = texts
    clf = FineTunedClassifier(**stage).fit(X, y)
    clf.save(tmp_path / "m.skft")
    back = skft.load(tmp_path / "m.skft")
    assert back.get_params()["freeze"] == "contrastive"
    assert back.get_params()["freeze__pair_iterations"] == 1
    np.testing.assert_allclose(back.predict_proba(X), clf.predict_proba(X), atol=1e-6)


# --------------------------------------------------------------------------
# clear refusals
# --------------------------------------------------------------------------


def test_one_class_is_refused(stage, texts):
    X, _ = texts
    with pytest.raises(ValueError, match="at least 2 classes"):
        FineTunedClassifier(**stage).fit(X, ["ham"] * len(X))  # the classifier's own check
    with pytest.raises(ValueError, match="freeze='contrastive'.*at least 2 classes, got 1"):
        FineTunedClassifier(**stage).partial_fit(X, ["ham"] * len(X), classes=["ham", "spam"])


def test_a_class_of_one_sentence_is_refused_before_training(stage, texts, monkeypatch):
    X, y = texts
    X, y = X[:13], y[:13]  # 12 ham, 1 spam
    clf = FineTunedClassifier(**stage)
    monkeypatch.setattr(type(clf), "train_step", lambda *a, **k: pytest.fail("trained"))
    message = r"at least 2 training samples; 1 of 2 classes have 1 \('spam'\)"
    with pytest.raises(ValueError, match=message):
        clf.fit(X, y)


def test_non_text_backbone_is_refused():
    X = np.random.default_rng(0).random((8, 4)).astype(np.float32)
    clf = FineTunedClassifier(
        "mlp", pretrained=False, freeze="contrastive", augment="none", max_epochs=1
    )
    with pytest.raises(ValueError, match="trains a text encoder.*'mlp' takes tabular"):
        clf.fit(X, [0, 1] * 4)


def test_regressor_is_refused(stage, texts):
    X, _ = texts
    reg = FineTunedRegressor(**stage)
    with pytest.raises(ValueError, match="needs FineTunedClassifier"):
        reg.fit(X, np.arange(len(X), dtype=float))
