"""class_weight on FineTunedClassifier: scikit-learn's meaning, in the order of classes_."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.utils._param_validation import InvalidParameterError
from torch import nn

from skft import FineTunedClassifier, FineTunedRegressor


def test_balanced_weights_follow_the_counts_and_the_columns(digits, fast):
    X, y = digits
    keep = np.r_[np.flatnonzero(y == 0)[:4], np.flatnonzero(y == 1), np.flatnonzero(y == 2)]
    X, y = X[keep], np.array(["zero", "one", "two"])[y[keep]]
    counts = {c: int(np.sum(y == c)) for c in np.unique(y)}
    clf = FineTunedClassifier(**fast, class_weight="balanced", classes=["two", "zero", "one"])
    clf.fit(X, y)
    expected = [len(y) / (3 * counts[c]) for c in clf.classes_]
    np.testing.assert_allclose(clf.class_weight_, expected)
    assert list(clf.classes_) == ["two", "zero", "one"]
    np.testing.assert_allclose(clf.criterion_.weight.cpu().numpy(), expected, rtol=1e-6)
    assert clf.class_weight_[1] == max(clf.class_weight_)  # "zero", the rare class


def test_the_loss_is_the_weighted_cross_entropy(digits, fast):
    X, y = digits
    weights = {0: 3.0, 2: 0.5}  # class 1 left out: weight 1
    clf = FineTunedClassifier(**fast, class_weight=weights).fit(X, y)
    np.testing.assert_allclose(clf.class_weight_, [3.0, 1.0, 0.5])
    logits = torch.as_tensor(np.log(clf.predict_proba(X)), dtype=torch.float32)
    target = torch.as_tensor(y)
    expected = nn.functional.cross_entropy(logits, target, weight=torch.tensor([3.0, 1.0, 0.5]))
    loss = clf.criterion_(logits, target).item()  # what the training steps minimise
    assert loss == pytest.approx(expected.item(), rel=1e-5)
    assert loss != pytest.approx(
        nn.functional.cross_entropy(logits, target).item(), rel=1e-3
    )


def test_a_heavy_class_takes_over_the_predictions(digits, fast):
    X, y = digits
    fast.update(max_epochs=6, lr=3e-3)
    plain = FineTunedClassifier(**fast).fit(X, y)
    heavy = FineTunedClassifier(**fast, class_weight={0: 1000.0, 1: 1e-3, 2: 1e-3}).fit(X, y)
    assert np.mean(heavy.predict(X) == 0) > np.mean(plain.predict(X) == 0)
    assert np.mean(heavy.predict(X) == 0) > 0.6


def test_unweighted_by_default_and_clone_keeps_the_setting(digits, fast):
    X, y = digits
    clf = FineTunedClassifier(**fast).fit(X, y)
    assert clf.class_weight_ is None and clf.criterion_.weight is None
    assert clone(FineTunedClassifier(class_weight="balanced")).class_weight == "balanced"
    assert "class_weight" not in FineTunedRegressor().get_params()


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"class_weight": "auto"}, InvalidParameterError, "class_weight must be None, 'balanced'"),
        (
            {"class_weight": {7: 2.0}},
            ValueError,
            r"class_weight names labels not in classes_ \[0, 1, 2\]: \[7\]",
        ),
        (
            {"class_weight": "balanced", "criterion": nn.NLLLoss},
            ValueError,
            "class_weight='balanced' needs criterion=torch.nn.CrossEntropyLoss",
        ),
    ],
)
def test_bad_class_weight(digits, fast, kwargs, error, match):
    X, y = digits
    with pytest.raises(error, match=match):
        FineTunedClassifier(**fast, **kwargs).fit(X, y)
