"""Multi-label targets: a 0/1 indicator matrix y, sigmoid outputs, binary cross-entropy."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.metrics import f1_score
from sklearn.model_selection import GridSearchCV
from sklearn.preprocessing import MultiLabelBinarizer
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.class_weight import compute_class_weight
from torch import nn

import skft
from skft import FineTunedClassifier
from skft.training.multilabel import MultiLabelLoss


def tags(y: np.ndarray) -> np.ndarray:
    """Three tags of digits 0, 1, 2: even, at least 1, and exactly 2 (every column varies)."""
    return np.stack([y % 2 == 0, y >= 1, y == 2], axis=1).astype(np.int64)


@pytest.fixture
def tagged(digits):
    X, y = digits
    return X, tags(y)


@pytest.fixture(scope="module")
def fitted(digits, fast_settings):
    X, y = digits
    return FineTunedClassifier(**fast_settings).fit(X, tags(y))


# --------------------------------------------------------------------------
# fit, predict, predict_proba
# --------------------------------------------------------------------------


def test_an_indicator_matrix_fits_one_sigmoid_network(fitted, digits):
    X, _ = digits
    assert fitted.multilabel_
    np.testing.assert_array_equal(fitted.classes_, [0, 1, 2])
    assert isinstance(fitted.criterion_, nn.BCEWithLogitsLoss)
    proba = fitted.predict_proba(X)
    assert proba.shape == (len(X), 3)
    assert ((proba > 0) & (proba < 1)).all()
    assert not np.allclose(proba.sum(axis=1), 1.0)  # independent labels, not a softmax
    pred = fitted.predict(X)
    assert pred.shape == (len(X), 3) and set(np.unique(pred)) <= {0, 1}
    np.testing.assert_array_equal(pred, (proba > 0.5).astype(int))


def test_the_probabilities_are_the_sigmoids_of_the_outputs(fitted, digits):
    X, _ = digits
    raw = pickle.loads(pickle.dumps(fitted)).set_params(predict_nonlinearity=None)
    logits = torch.as_tensor(raw.predict_proba(X[:8]))
    np.testing.assert_allclose(fitted.predict_proba(X[:8]), torch.sigmoid(logits), atol=1e-6)


def test_the_network_learns_the_tags(tagged, fast):
    X, Y = tagged
    fast.update(max_epochs=20, lr=3e-3)
    clf = FineTunedClassifier(**fast).fit(X, Y)
    losses = clf.history[:, "train_loss"]
    assert losses[-1] < 0.7 * losses[0]
    ones = f1_score(Y, np.ones_like(Y), average="samples")  # predict every tag
    assert f1_score(Y, clf.predict(X), average="samples") > ones


def test_threshold_changes_predict_without_a_refit(fitted, digits):
    X, _ = digits
    model = pickle.loads(pickle.dumps(fitted))
    proba = model.predict_proba(X)
    low = model.set_params(threshold=0.05).predict(X).sum()
    high = model.set_params(threshold=0.95).predict(X).sum()
    assert low >= high
    assert low == (proba > 0.05).sum() and high == (proba > 0.95).sum()
    np.testing.assert_array_equal(model.predict_proba(X), proba)


@pytest.mark.parametrize("bad", [0.0, 1.0, 1.5, -0.1, "high", True])
def test_threshold_is_checked_at_fit(tagged, fast, bad):
    X, Y = tagged
    with pytest.raises(InvalidParameterError, match=r"threshold must be a float in \(0, 1\)"):
        FineTunedClassifier(**fast, threshold=bad).fit(X, Y)


def test_single_label_fits_ignore_the_threshold(digits, fast):
    X, y = digits
    a = FineTunedClassifier(**fast).fit(X, y)
    b = FineTunedClassifier(**fast, threshold=0.9).fit(X, y)
    assert not a.multilabel_
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    assert a.predict(X).ndim == 1


def test_a_column_vector_is_still_one_label_per_sample(digits, fast):
    X, y = digits
    with pytest.warns(Warning, match="column-vector y"):
        clf = FineTunedClassifier(**fast).fit(X, y[:, None])
    assert not clf.multilabel_ and clf.predict_proba(X).shape == (len(X), 3)


def test_a_sparse_multilabel_binarizer_matrix_is_accepted(digits, fast):
    X, y = digits
    words = {"even": lambda v: v % 2 == 0, "big": lambda v: v >= 1, "two": lambda v: v == 2}
    names = [[w for w, has in words.items() if has(v)] for v in y]
    mlb = MultiLabelBinarizer(sparse_output=True)
    Y = mlb.fit_transform(names)
    clf = FineTunedClassifier(**fast).fit(X, Y)
    assert clf.multilabel_ and clf.predict(X).shape == (len(X), len(mlb.classes_))
    assert mlb.inverse_transform(clf.predict(X))[0] is not None  # the names come back


def test_a_search_scores_with_the_multilabel_scorers(tagged, fast):
    X, Y = tagged
    grid = {"threshold": [0.3, 0.6], "lr": [1e-3, 3e-3]}
    scoring = {"f1": "f1_samples", "jaccard": "jaccard_samples"}
    search = GridSearchCV(FineTunedClassifier(**fast), grid, cv=2, scoring=scoring, refit="f1")
    search.fit(X, Y)
    for name in ("f1", "jaccard"):
        scores = search.cv_results_[f"mean_test_{name}"]
        assert len(scores) == 4 and np.isfinite(scores).all()
        assert ((scores >= 0) & (scores <= 1)).all()
    assert search.best_params_["threshold"] in (0.3, 0.6)
    assert search.best_estimator_.predict(X).shape == Y.shape
    assert 0 <= search.score(X, Y) <= 1  # the refit scorer, f1_samples


def test_score_is_subset_accuracy(fitted, digits):
    X, y = digits
    Y = tags(y)
    assert fitted.score(X, Y) == pytest.approx(np.mean((fitted.predict(X) == Y).all(axis=1)))


def test_early_stopping_splits_without_stratifying(tagged, fast):
    X, Y = tagged
    fast.update(max_epochs=4, early_stopping=True, n_iter_no_change=2, scoring="f1_samples")
    clf = FineTunedClassifier(**fast).fit(X, Y)
    assert 1 <= clf.best_epoch_ <= clf.n_epochs_trained_ <= 4
    assert all(0 <= s <= 1 for s in clf.validation_scores_)


def test_tta_averages_per_label_probabilities(tagged, fast):
    X, Y = tagged
    clf = FineTunedClassifier(**fast, tta=2).fit(X, Y)
    proba = clf.predict_proba(X)
    assert proba.shape == Y.shape and ((proba > 0) & (proba < 1)).all()


# --------------------------------------------------------------------------
# the loss: class weights, label smoothing, mixup
# --------------------------------------------------------------------------


def test_balanced_class_weights_balance_each_label(tagged, fast):
    X, Y = tagged
    clf = FineTunedClassifier(**fast, class_weight="balanced").fit(X, Y)
    assert clf.class_weight_.shape == (3, 2)
    for j in range(3):
        expected = compute_class_weight("balanced", classes=np.array([0, 1]), y=Y[:, j])
        np.testing.assert_allclose(clf.class_weight_[j], expected)
    logits = torch.randn(len(Y), 3)
    target = torch.as_tensor(Y, dtype=torch.float32)
    w = torch.as_tensor(clf.class_weight_, dtype=torch.float32)
    per_term = torch.where(target == 1, w[:, 1], w[:, 0]) * nn.functional.binary_cross_entropy(
        torch.sigmoid(logits), target, reduction="none"
    )
    assert clf.criterion_(logits, target).item() == pytest.approx(per_term.mean().item(), rel=1e-5)


def test_class_weight_as_a_dict_is_refused_for_multilabel(tagged, fast):
    X, Y = tagged
    with pytest.raises(ValueError, match="class_weight='balanced'"):
        FineTunedClassifier(**fast, class_weight={0: 2.0}).fit(X, Y)


def test_label_smoothing_moves_the_targets_towards_one_half(tagged, fast):
    X, Y = tagged
    clf = FineTunedClassifier(**fast, label_smoothing=0.2).fit(X, Y)
    logits, target = torch.randn(len(Y), 3), torch.as_tensor(Y, dtype=torch.float32)
    expected = nn.functional.binary_cross_entropy_with_logits(logits, target * 0.8 + 0.1)
    assert clf.criterion_(logits, target).item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize("augment", ["mixup", "cutmix"])
def test_mixing_augmenters_mix_the_label_vectors(tagged, fast, monkeypatch, augment):
    X, Y = tagged
    seen = []
    forward = MultiLabelLoss.forward

    def recording(self, input, target):
        seen.append(target.detach().clone())
        return forward(self, input, target)

    monkeypatch.setattr(MultiLabelLoss, "forward", recording)
    fast.update(augment=augment, augment_strength=1.0, max_epochs=1)
    FineTunedClassifier(**fast).fit(X, Y)
    targets = torch.cat(seen)
    assert targets.shape == (len(Y), 3)
    assert ((targets >= 0) & (targets <= 1)).all()
    fractional = (targets > 0) & (targets < 1)
    assert fractional.any()  # mixed, not 0/1 any more


def test_a_users_criterion_gets_logits_and_float_targets(tagged, fast):
    X, Y = tagged
    clf = FineTunedClassifier(**fast, criterion=nn.MultiLabelSoftMarginLoss).fit(X, Y)
    assert isinstance(clf.criterion_, nn.MultiLabelSoftMarginLoss)
    assert clf.predict_proba(X).shape == Y.shape
    with pytest.raises(ValueError, match="label_smoothing=0.1 with multi-label y needs"):
        clone(clf).set_params(label_smoothing=0.1).fit(X, Y)


# --------------------------------------------------------------------------
# bad input: clear errors before training
# --------------------------------------------------------------------------


def _refused(clf, X, Y, match):
    with pytest.raises(ValueError, match=match):
        clf.fit(X, Y)
    assert not clf.initialized_  # refused before a module was built or trained


@pytest.mark.parametrize("value, word", [(0, "0"), (1, "1")])
def test_a_constant_label_column_is_refused(tagged, fast, value, word):
    X, Y = tagged
    Y = Y.copy()
    Y[:, 1] = value
    _refused(
        FineTunedClassifier(**fast),
        X,
        Y,
        rf"column\(s\) \[1\] are {word} in all 60 training samples",
    )


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda Y: Y * 2, "values are 0, 2"),
        (lambda Y: np.where(Y == 1, 2, Y) + (Y[:, :1] == 0), r"'multiclass-multioutput'"),
        (lambda Y: Y * 0.5, "'continuous-multioutput'"),
        (lambda Y: np.where(Y == 1, np.nan, 0.0), "NaN or infinite"),
        (lambda Y: Y.astype(str), "indicator matrix of numbers"),
    ],
)
def test_a_matrix_that_is_not_zero_one_is_refused(tagged, fast, make, match):
    X, Y = tagged
    _refused(FineTunedClassifier(**fast), X, make(Y), match)


def test_rows_must_match_the_samples(tagged, fast):
    X, Y = tagged
    with pytest.raises(ValueError):
        FineTunedClassifier(**fast).fit(X, Y[:-5])


def test_classes_other_than_the_column_indices_are_refused(tagged, fast):
    X, Y = tagged
    _refused(FineTunedClassifier(**fast, classes=["a", "b", "c"]), X, Y, "column")


def test_later_batches_must_keep_the_kind_and_width_of_y(tagged, digits, fast):
    X, Y = tagged
    clf = FineTunedClassifier(**fast).partial_fit(X, Y)
    with pytest.raises(ValueError, match="fitted with 3"):
        clf.partial_fit(X, Y[:, :2])
    with pytest.raises(ValueError, match="fitted on multi-label y"):
        clf.partial_fit(X, digits[1])
    single = FineTunedClassifier(**fast).partial_fit(X, digits[1])
    with pytest.raises(ValueError, match="fitted on single-label y"):
        single.partial_fit(X, Y)
    clf.partial_fit(X[:10], np.zeros((10, 3), dtype=int))  # a batch need not vary


def test_labels_from_proba_checks_the_shape(fitted):
    with pytest.raises(ValueError, match=r"shape \(n_samples, 3\)"):
        fitted.labels_from_proba(np.zeros((4, 2)))


# --------------------------------------------------------------------------
# the fit plan, persistence
# --------------------------------------------------------------------------


def test_the_fit_plan_counts_each_label(fitted, digits):
    _, y = digits
    Y = tags(y)
    profile = fitted.fit_plan_.profile
    assert profile.multilabel and profile.n_classes == 3
    rarer = np.minimum(Y.sum(axis=0), len(Y) - Y.sum(axis=0))
    assert profile.min_class_count == rarer.min()


def test_save_and_load_round_trip(fitted, digits, tmp_path):
    X, _ = digits
    model = pickle.loads(pickle.dumps(fitted)).set_params(threshold=0.4)
    model.save(tmp_path / "m.skft")
    loaded = skft.load(tmp_path / "m.skft")
    assert loaded.multilabel_ and loaded.threshold == 0.4
    np.testing.assert_array_equal(loaded.classes_, [0, 1, 2])
    np.testing.assert_allclose(loaded.predict_proba(X), model.predict_proba(X), atol=1e-6)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_pickle_and_clone(fitted, digits):
    X, _ = digits
    copy = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(copy.predict(X), fitted.predict(X))
    fresh = clone(fitted)
    assert not fresh.multilabel_ and fresh.threshold == fitted.threshold


def test_cli_predict_and_evaluate_score_label_sets(fitted, digits, tmp_path, capsys):
    from skft.cli.main import main

    X, y = digits
    fitted.save(tmp_path / "m.skft")
    np.savez(tmp_path / "data.npz", X=X, y=tags(y))
    np.savez(tmp_path / "single.npz", X=X, y=y)
    out = tmp_path / "p.csv"
    assert (
        main(["predict", str(tmp_path / "m.skft"), str(tmp_path / "data.npz"), "--out", str(out)])
        == 0
    )
    rows = out.read_text().splitlines()
    assert rows[0] == "id,prediction,proba_0,proba_1,proba_2"
    pred = fitted.predict(X)
    cells = [r.split(",")[1] for r in rows[1:]]
    assert cells == [";".join(str(i) for i in np.flatnonzero(p)) for p in pred]
    assert "F1 (samples)" in capsys.readouterr().out
    assert main(["evaluate", str(tmp_path / "m.skft"), str(tmp_path / "data.npz")]) == 0
    assert "Jaccard (samples)" in capsys.readouterr().out
    assert main(["evaluate", str(tmp_path / "m.skft"), str(tmp_path / "single.npz")]) == 2
    assert "2-D 0/1 array 'y'" in capsys.readouterr().err


def test_compressed_multilabel_predicts_label_sets(fitted, digits):
    from skft import Compressed

    X, y = digits
    Y = tags(y)
    model = pickle.loads(pickle.dumps(fitted))
    comp = Compressed(model, prune=0.3, quantize="int8", recover_epochs=1, prefit=True)
    comp.fit(X, Y)  # recovery with distillation from the unpruned model's sigmoids
    proba = comp.predict_proba(X)
    assert proba.shape == Y.shape and ((proba >= 0) & (proba <= 1)).all()
    np.testing.assert_array_equal(comp.predict(X), (proba > model.threshold).astype(int))
    assert comp.score(X, Y) == np.mean((comp.predict(X) == Y).all(axis=1))


def test_optuna_search_tunes_the_threshold(tagged, fast):
    from optuna.distributions import FloatDistribution

    from skft import OptunaSearch

    X, Y = tagged
    space = {"threshold": FloatDistribution(0.2, 0.8)}
    search = OptunaSearch(
        FineTunedClassifier(**fast), space, n_trials=2, cv=2, scoring="f1_samples",
        pruner=None, random_state=0,
    )  # fmt: skip
    search.fit(X, Y)  # folds train in lockstep through partial_fit
    assert 0.2 <= search.best_params_["threshold"] <= 0.8
    assert 0 <= search.best_score_ <= 1
    assert search.predict(X).shape == Y.shape

