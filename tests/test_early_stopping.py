"""Early stopping, scikit-learn style: a split of the fit data, a cap on epochs, the best kept."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.model_selection import GridSearchCV
from skorch.callbacks import Callback

from skft import FineTunedClassifier, FineTunedRegressor, OptunaSearch
from skft.training.early_stopping import AUTO_MIN_SAMPLES, validation_split


class SeenSamples(Callback):
    """Record the number of training and validation samples skorch got."""

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        self.n = None

    def on_epoch_begin(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        self.n = (len(dataset_train), None if dataset_valid is None else len(dataset_valid))


class Snapshots(Callback):
    """The head's weights after every epoch."""

    def on_train_begin(self, net, **kwargs):
        self.weights = []

    def on_epoch_end(self, net, **kwargs):
        self.weights.append(net.module_.head.weight.detach().clone())


def test_stops_early_and_restores_the_best_epoch(digits, fast):
    X, y = digits
    snaps = Snapshots()
    settings = {**fast, "max_epochs": 40, "lr": 0.05, "batch_size": 8, "callbacks": [snaps]}
    clf = FineTunedClassifier(
        **settings, early_stopping=True, n_iter_no_change=2, tol=0.0, validation_fraction=0.25
    ).fit(X, y)
    assert clf.n_epochs_trained_ < 40  # stopped before the cap
    scores = clf.validation_scores_
    assert len(scores) == clf.n_epochs_trained_
    # early stopping ends the last epoch before later callbacks: one snapshot fewer
    assert len(snaps.weights) == clf.n_epochs_trained_ - 1
    best = clf.best_epoch_
    # patience 2: the last two epochs did not beat the best one
    assert clf.n_epochs_trained_ == best + 2 and max(scores[best:]) <= scores[best - 1]
    # the weights are the best epoch's, not the last one's
    assert torch.equal(clf.module_.head.weight, snaps.weights[best - 1])
    assert not torch.equal(snaps.weights[-1], snaps.weights[best - 1])
    # and scored now, the validation part gives the best epoch's score
    Xt, yt = clf._prepare(X, y, initial=False)
    _, valid = validation_split(clf)(clf.get_dataset(Xt, yt), yt)
    idx = np.asarray(valid.indices)
    assert clf.score(X[idx], y[idx]) == pytest.approx(scores[best - 1])


def test_split_comes_from_the_fit_data_stratified(digits, fast):
    X, y = digits
    seen = SeenSamples()
    clf = FineTunedClassifier(
        **fast, early_stopping=True, validation_fraction=0.2, callbacks=[seen]
    ).fit(X, y)
    assert seen.n == (48, 12)
    assert clf.n_epochs_trained_ == fast["max_epochs"]  # 2 epochs: never 5 misses


def test_off_by_default_and_auto_by_size(digits, fast):
    X, y = digits
    seen = SeenSamples()
    clf = FineTunedClassifier(**fast, callbacks=[seen]).fit(X, y)
    assert seen.n == (60, None) and clf.n_epochs_trained_ == 2
    assert not hasattr(clf, "validation_scores_")
    FineTunedClassifier(**fast, early_stopping="auto", callbacks=[seen]).fit(X, y)
    assert seen.n == (60, None)  # fewer than AUTO_MIN_SAMPLES
    Xb = np.repeat(X, AUTO_MIN_SAMPLES // len(X) + 1, axis=0)
    yb = np.repeat(y, AUTO_MIN_SAMPLES // len(y) + 1)
    settings = {**fast, "max_epochs": 1, "batch_size": 256}
    FineTunedClassifier(**settings, early_stopping="auto", callbacks=[seen]).fit(Xb, yb)
    assert seen.n[1] == round(0.1 * len(Xb))


def test_regressor_scores_r2_and_custom_scoring(digits, fast):
    X, y = digits
    reg = FineTunedRegressor(**fast, early_stopping=True).fit(X, y.astype(float))
    assert len(reg.validation_scores_) == 2 and all(s <= 1.0 for s in reg.validation_scores_)
    clf = FineTunedClassifier(**fast, early_stopping=True, scoring="neg_log_loss").fit(X, y)
    assert all(s < 0 for s in clf.validation_scores_)


def test_inside_grid_search_and_optuna(digits, fast):
    X, y = digits
    clf = FineTunedClassifier(**fast, early_stopping=True, validation_fraction=0.2)
    grid = GridSearchCV(clf, {"n_iter_no_change": [1, 3]}, cv=2).fit(X, y)
    assert grid.best_estimator_.n_epochs_trained_ >= 1
    search = OptunaSearch(clf, {"lr": [1e-3, 1e-2]}, n_trials=2, cv=2, random_state=0)
    search.fit(X, y)
    assert len(search.cv_results_["params"]) == 2


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"validation_fraction": 0.0}, r"validation_fraction must be a float in \(0, 1\)"),
        ({"validation_fraction": 1.0}, r"validation_fraction must be a float in \(0, 1\)"),
        ({"n_iter_no_change": 0}, "n_iter_no_change must be an int >= 1"),
        ({"early_stopping": "yes"}, "early_stopping must be True, False or 'auto'"),
        ({"tol": -1.0}, "tol must be a float >= 0"),
    ],
)
def test_bad_early_stopping_params(digits, fast, params, words):
    X, y = digits
    with pytest.raises(ValueError, match=words):
        FineTunedClassifier(**fast, **params).fit(X, y)
