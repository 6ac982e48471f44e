"""Heads as plugins (head=, head__*), and label smoothing for the classifier."""

from __future__ import annotations

import pytest
from sklearn.model_selection import GridSearchCV
from torch import nn

import skft
from skft import FineTunedClassifier, FineTunedRegressor, UnknownNameError, hookimpl
from skft.plugins import pm
from skft.search.space import default_search_space


def test_builtin_heads_are_registered():
    assert {"linear", "mlp"} <= set(skft.plugins.heads().names())


def test_mlp_head_shape_and_training(digits, fast):
    X, y = digits
    clf = FineTunedClassifier(**fast, head="mlp", head__hidden=32, head__layers=2).fit(X, y)
    linears = [m for m in clf.module_.head.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(64, 32), (32, 32), (32, 3)]
    assert any(isinstance(m, nn.Dropout) and m.p == 0.5 for m in clf.module_.head.modules())
    groups = {g["name"]: g for g in clf.optimizer_.param_groups}
    assert len(groups["head"]["params"]) == 6  # the whole head trains, at the base rate
    assert clf.predict_proba(X).shape == (len(X), 3)


def test_default_head_is_a_linear_layer(digits, fast):
    X, y = digits
    clf = FineTunedRegressor(**fast).fit(X, y.astype(float))
    assert isinstance(clf.module_.head, nn.Linear) and clf.module_.head.out_features == 1


def test_head_parameters_are_searchable(digits, fast):
    X, y = digits
    clf = FineTunedClassifier(**fast, head="mlp", head__hidden=16)
    search = GridSearchCV(clf, {"head__dropout": [0.0, 0.3]}, cv=2).fit(X, y)
    best = search.best_estimator_
    assert best.module_.head[2].p == search.best_params_["head__dropout"]
    space = default_search_space(clf)
    assert {"head__hidden", "head__dropout"} <= set(space)
    assert "head__hidden" not in default_search_space(FineTunedClassifier(**fast))


def test_third_party_head(digits, fast):
    X, y = digits

    class Plugin:
        @hookimpl
        def register_heads(self, register):
            register("bilinear_free", lambda d, k, scale=2.0: nn.Sequential(nn.Linear(d, k)))

    pm.register(Plugin(), "head-plugin")
    try:
        clf = FineTunedClassifier(**fast, head="bilinear_free", head__scale=3.0).fit(X, y)
        assert isinstance(clf.module_.head, nn.Sequential)
    finally:
        pm.unregister(name="head-plugin")


@pytest.mark.parametrize(
    ("params", "exc", "words"),
    [
        ({"head": "mpl"}, UnknownNameError, "Did you mean 'mlp'"),
        ({"head": "mlp", "head__width": 3}, TypeError, "head__width"),
        ({"head": "mlp", "head__dropout": 1.5}, ValueError, "head__dropout"),
        ({"label_smoothing": 1.0}, ValueError, r"label_smoothing must be a float in \[0, 1\)"),
    ],
)
def test_bad_head_settings_fail_before_work(digits, fast, params, exc, words):
    X, y = digits
    with pytest.raises(exc, match=words):
        FineTunedClassifier(**fast, **params).fit(X, y)


def test_label_smoothing_reaches_the_loss(digits, fast):
    X, y = digits
    plain = FineTunedClassifier(**fast).fit(X, y)
    smooth = FineTunedClassifier(**fast, label_smoothing=0.2).fit(X, y)
    assert smooth.criterion_.label_smoothing == pytest.approx(0.2)
    assert plain.criterion_.label_smoothing == 0.0
    # same seed, same data: only the loss differs, and smoothing raises it
    assert smooth.history[0, "train_loss"] > plain.history[0, "train_loss"]
    assert "label_smoothing" not in FineTunedRegressor().get_params()
    with pytest.raises(ValueError, match="needs criterion"):
        FineTunedClassifier(**fast, label_smoothing=0.1, criterion=nn.NLLLoss).fit(X, y)
