"""skft.training.tta: test-time augmentation views, averaged probabilities and predictions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from skft import FineTunedClassifier, FineTunedRegressor
from skft.data.adapters import adapt_input
from skft.training.tta import TTA_VIEWS, tta_views


@pytest.fixture(scope="module")
def fitted(digits, fast_settings):
    """A classifier fitted with augment="none" (the ``fast`` settings), shared by tests."""
    X, y = digits
    return FineTunedClassifier(**fast_settings, augment="none").fit(X, y)



def test_tta_views():
    X = torch.arange(2 * 3 * 16 * 16, dtype=torch.float32).view(2, 3, 16, 16)
    views = list(tta_views(X, len(TTA_VIEWS)))
    assert len(views) == 8 and all(v.shape == X.shape for v in views)
    assert torch.equal(views[0], X) and torch.equal(views[1], X.flip(-1))
    assert torch.equal(views[3], views[2].flip(-1))
    assert len({tuple(v.flatten().tolist()) for v in views}) == 8


@pytest.mark.parametrize("tta, n", [(True, 4), (2, 2), (8, 8)])
def test_tta_averages_the_views(tta, n, digits, fitted):
    X, y = digits
    clf = fitted.set_params(tta=False)
    Xt = adapt_input(clf, X, fitting=False)
    expected = np.mean([clf.predict_proba(v) for v in tta_views(Xt, n)], axis=0)
    got = clf.set_params(tta=tta).predict_proba(X)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(got, clf.set_params(tta=False).predict_proba(X))
    assert np.array_equal(clf.set_params(tta=tta).predict_proba(X), got)  # deterministic
    assert clf.set_params(tta=tta).score(X, y) == np.mean(clf.predict(X) == y)


def test_tta_regressor_averages_predictions(digits, fast):
    X, y = digits
    reg = FineTunedRegressor(**fast, augment="none").fit(X, y.astype(float))
    Xt = adapt_input(reg, X, fitting=False)
    expected = np.mean([reg.predict(v) for v in tta_views(Xt, 4)], axis=0)
    np.testing.assert_allclose(reg.set_params(tta=True).predict(X), expected, rtol=1e-5)
    np.testing.assert_array_equal(
        reg.set_params(tta=1).predict(X), reg.set_params(tta=False).predict(X)
    )
