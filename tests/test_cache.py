"""The frozen-prefix feature cache: invisible to results, shared across a search, bounded."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.model_selection import GridSearchCV

from skft import FineTunedClassifier, FineTunedRegressor
from skft.network import FineTuneModule
from skft.specs import BackboneParts
from skft.training.cache import FeatureCache, feature_cache, model_key, row_keys


@pytest.fixture(autouse=True)
def empty_cache():
    feature_cache.clear()
    yield
    feature_cache.clear()


def n_distinct(X):
    return len(np.unique(X.reshape(len(X), -1), axis=0))


@pytest.mark.parametrize("depth", [1, 2, "all"])
def test_predictions_equal_with_and_without_cache(digits, fast, depth):
    X, y = digits
    settings = {**fast, "frozen_depth": depth, "max_epochs": 3}
    on = FineTunedClassifier(**settings, feature_cache=True).fit(X, y)
    assert feature_cache.stats.misses == n_distinct(X)
    off = FineTunedClassifier(**settings, feature_cache=False).fit(X, y)
    np.testing.assert_allclose(on.predict_proba(X), off.predict_proba(X), atol=1e-5)
    for a, b in zip(on.module_.parameters(), off.module_.parameters()):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_regressor_with_cache_matches(digits, fast):
    X, y = digits
    settings = {**fast, "frozen_depth": "all", "max_epochs": 3}
    on = FineTunedRegressor(**settings).fit(X, y.astype(float))
    off = FineTunedRegressor(**settings, feature_cache=False).fit(X, y.astype(float))
    np.testing.assert_allclose(on.predict(X), off.predict(X), atol=1e-4)


def test_cache_off_never_touches_the_cache(digits, fast):
    X, y = digits
    clf = FineTunedClassifier(**fast, frozen_depth="all", feature_cache=False).fit(X, y)
    clf.predict(X)
    assert feature_cache.stats.lookups == 0 and len(feature_cache) == 0


def test_hits_and_misses_across_a_grid_search(digits, fast):
    X, y = digits
    clf = FineTunedClassifier(**fast, frozen_depth="all")
    search = GridSearchCV(clf, {"lr": [1e-3, 1e-2]}, cv=3).fit(X, y)
    stats = feature_cache.stats
    # every distinct sample goes through the backbone once, in the first fit that sees it
    assert stats.misses == n_distinct(X)
    # 2 candidates x 3 folds x (fit on 2/3 + score on 1/3) + the refit on all
    assert stats.hits + stats.misses == 2 * 3 * len(X) + len(X)
    assert stats.lookups == 2 * 3 * 2 + 1
    assert search.best_estimator_.predict(X).shape == y.shape


def test_candidates_with_other_depths_or_weights_miss(digits, fast):
    X, y = digits
    FineTunedClassifier(**fast, frozen_depth=2).fit(X, y)
    assert feature_cache.stats.misses == n_distinct(X)
    FineTunedClassifier(**fast, frozen_depth=1).fit(X, y)  # another prefix
    assert feature_cache.stats.misses == 2 * n_distinct(X)
    FineTunedClassifier(**{**fast, "random_state": 1}, frozen_depth=1).fit(X, y)  # other weights
    assert feature_cache.stats.misses == 3 * n_distinct(X)
    FineTunedClassifier(**{**fast, "image_size": 20}, frozen_depth=1).fit(X, y)  # other input
    assert feature_cache.stats.misses == 4 * n_distinct(X)


def test_changed_data_is_recomputed_not_served_stale(digits, fast):
    X, y = digits
    clf = FineTunedClassifier(**fast, frozen_depth="all").fit(X, y)
    before = feature_cache.stats.misses
    X2 = X.copy()
    X2[0] = 1.0 - X2[0]  # same object shape, new content in one sample
    clf.fit(X2, y)
    assert feature_cache.stats.misses == before + 1
    X2 += 0.0  # in place, same identity: content decides, not the object
    X2[1, 0, 0] = 0.5
    clf.fit(X2, y)
    assert feature_cache.stats.misses == before + 2


def test_augmentation_bypasses_the_cache_during_fit(digits, fast):
    X, y = digits
    FineTunedClassifier(**{**fast, "augment_strength": 0.5}, frozen_depth="all").fit(X, y)
    assert feature_cache.stats.lookups == 0
    # augment="none" leaves inputs unchanged whatever the strength: cached
    FineTunedClassifier(**{**fast, "augment_strength": 0.5}, augment="none", frozen_depth=2).fit(
        X, y
    )
    assert feature_cache.stats.lookups == 1


def test_bn_train_and_full_fine_tuning_do_not_cache_the_fit(digits, fast):
    X, y = digits
    FineTunedClassifier(**fast, frozen_depth=2, freeze__bn="train").fit(X, y)
    FineTunedClassifier(**fast, frozen_depth=0).fit(X, y)
    assert feature_cache.stats.lookups == 0


def test_gradual_caches_what_stays_frozen(digits, fast):
    X, y = digits
    clf = FineTunedClassifier(**{**fast, "max_epochs": 3}, freeze="gradual", frozen_depth=1)
    clf.fit(X, y)  # block1 is frozen in every epoch: cached
    assert feature_cache.stats.lookups == 1
    clf.set_params(feature_cache=False)
    off = clf.fit(X, y).predict_proba(X)
    clf.set_params(feature_cache=True)
    np.testing.assert_allclose(clf.fit(X, y).predict_proba(X), off, atol=1e-5)


def test_validation_split_scores_on_cached_features(digits, fast):
    from skorch.dataset import ValidSplit

    X, y = digits
    params = {**fast, "frozen_depth": "all", "train_split": ValidSplit(4), "max_epochs": 2}
    on = FineTunedClassifier(**params).fit(X, y)
    off = FineTunedClassifier(**params, feature_cache=False).fit(X, y)
    np.testing.assert_allclose(on.history[:, "valid_loss"], off.history[:, "valid_loss"], rtol=1e-4)


def test_cache_is_bounded_in_bytes():
    torch.manual_seed(0)
    parts = BackboneParts([("g", torch.nn.Linear(4, 8))], torch.nn.Identity(), 8)
    module = FineTuneModule(parts, torch.nn.Identity(), torch.nn.Identity())
    row_bytes = 8 * 4
    cache = FeatureCache(max_bytes=10 * row_bytes)
    X = torch.randn(25, 4)
    out = cache.features(module, 1, X, "cpu")
    torch.testing.assert_close(out, module.groups[0](X).detach())
    assert len(cache) == 10 and cache.nbytes <= cache.max_bytes
    assert cache.stats.evictions == 15
    cache.features(module, 1, X[-10:], "cpu")  # the most recent rows stayed
    assert cache.stats.hits == 10
    cache.clear()
    assert len(cache) == 0 and cache.nbytes == 0 and cache.stats.hits == 0


def test_keys_follow_content():
    a = torch.zeros(3, 1, 4, 4)
    b = a.clone()
    b[2, 0, 0, 0] = 1
    ka, kb = row_keys(a), row_keys(b)
    assert ka[0] == ka[1] == kb[0] and ka[2] != kb[2]
    assert row_keys(a.to(torch.uint8)) != ka  # dtype is part of the key
    module = torch.nn.Module()
    module.preprocess = torch.nn.Identity()
    module.groups = torch.nn.ModuleList([torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)])
    k1 = model_key(module, 1, "cpu")
    assert model_key(module, 1, "cpu") == k1
    with torch.no_grad():
        module.groups[1].weight += 1  # outside the prefix: same key
    assert model_key(module, 1, "cpu") == k1
    with torch.no_grad():
        module.groups[0].weight += 1
    assert model_key(module, 1, "cpu") != k1
    assert model_key(module, 2, "cpu") != model_key(module, 1, "cpu")
