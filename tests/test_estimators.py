"""The scikit-learn contract of FineTunedClassifier / FineTunedRegressor."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from skft import FineTunedClassifier, FineTunedRegressor

LETTERS = np.array(["zero", "one", "two"])


def test_string_labels_roundtrip(digits, fast):
    X, y = digits
    clf = FineTunedClassifier(**fast, lr=1e-2).fit(X, LETTERS[y])
    assert list(clf.classes_) == ["one", "two", "zero"]
    pred = clf.predict(X)
    assert set(pred) <= set(LETTERS)
    assert clf.score(X, LETTERS[y]) == np.mean(pred == LETTERS[y])


def test_predict_proba_columns_follow_classes(digits, fast):
    X, y = digits
    order = ["two", "zero", "one"]
    clf = FineTunedClassifier(**{**fast, "max_epochs": 15}, lr=1e-2, classes=order)
    clf.fit(X, LETTERS[y])
    assert list(clf.classes_) == order
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 3)
    np.testing.assert_allclose(proba.sum(1), 1, atol=1e-5)
    np.testing.assert_array_equal(clf.predict(X), np.asarray(order)[proba.argmax(1)])
    # the column of each sample's true label carries the most mass on the training data
    true_col = [order.index(label) for label in LETTERS[y]]
    assert proba[np.arange(len(X)), true_col].mean() > 0.5


def test_clone_and_pickle(digits, fast):
    X, y = digits
    clf = FineTunedClassifier(**fast, freeze__bn="train", augment="basic")
    params = clf.get_params()
    assert params["device"] == "auto" and params["freeze__bn"] == "train"
    twin = clone(clf)
    assert twin.get_params()["freeze__bn"] == "train"
    clf.fit(X, y)
    restored = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(restored.predict_proba(X), clf.predict_proba(X))
    assert restored.get_params()["device"] == "auto"
    assert not hasattr(clone(clf), "module_")


def test_random_state_repeats(digits, fast):
    X, y = digits
    kw = {**fast, "augment_strength": 0.5}
    a = FineTunedClassifier(**kw).fit(X, y).predict_proba(X)
    b = FineTunedClassifier(**kw).fit(X, y).predict_proba(X)
    c = FineTunedClassifier(**{**kw, "random_state": 1}).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_fit_leaves_global_rng_alone(digits, fast):
    X, y = digits
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    FineTunedClassifier(**fast).fit(X, y)
    np.testing.assert_array_equal(torch.rand(3), expected)


def test_partial_fit_trains_one_epoch(digits, fast):
    X, y = digits
    clf = FineTunedClassifier(**fast)
    clf.partial_fit(X, y, classes=[0, 1, 2])
    assert len(clf.history) == 1
    clf.partial_fit(X, y)
    assert len(clf.history) == 2
    clf.fit(X, y)  # fit starts over with max_epochs
    assert len(clf.history) == fast["max_epochs"]


def test_no_hidden_validation_split(digits, fast):
    X, y = digits
    clf = FineTunedClassifier(**fast).fit(X, y)
    assert clf.train_split is None
    assert sum(clf.history[-1, "batches", :, "train_batch_size"]) == len(X)


def test_grid_search_over_lr_depth_strength(digits, fast):
    X, y = digits
    grid = {"lr": [1e-3, 1e-2], "frozen_depth": [0, 2, "all"], "augment_strength": [0.0, 0.5]}
    search = GridSearchCV(FineTunedClassifier(**{**fast, "max_epochs": 1}), grid, cv=2)
    search.fit(X, y)
    assert len(search.cv_results_["params"]) == 12
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.best_estimator_.predict(X).shape == (len(X),)


def test_cross_val_score_in_parallel(digits, fast):
    X, y = digits
    scores = cross_val_score(FineTunedClassifier(**fast), X, y, cv=2, n_jobs=2)
    assert scores.shape == (2,) and np.all((0 <= scores) & (scores <= 1))


def test_inside_pipeline(digits, fast):
    X, y = digits
    flat = X.reshape(len(X), -1)
    to_images = FunctionTransformer(lambda a: a.reshape(-1, 8, 8))
    pipe = make_pipeline(to_images, FineTunedClassifier(**fast)).fit(flat, y)
    assert pipe.predict(flat).shape == (len(X),)


def test_frozen_groups_keep_weights_and_bn_statistics(digits, fast):
    X, y = digits
    clf = FineTunedClassifier(**{**fast, "frozen_depth": 2, "augment_strength": 0.5}, lr=1e-2)
    clf.fit(X, y)
    before = {k: v.clone() for k, v in clf.module_.groups[:2].state_dict().items()}
    trainable_before = {k: v.clone() for k, v in clf.module_.groups[2].state_dict().items()}
    clf.partial_fit(X, y)
    for k, v in clf.module_.groups[:2].state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)
    changed = [
        not torch.equal(v, trainable_before[k])
        for k, v in clf.module_.groups[2].state_dict().items()
    ]
    assert any(changed)
    assert all(not p.requires_grad for p in clf.module_.groups[:2].parameters())


def test_linear_probe_trains_head_only(digits, fast):
    X, y = digits
    clf = FineTunedClassifier(**{**fast, "frozen_depth": "all"}).fit(X, y)
    assert clf.frozen_depth_ == 3
    trainable = [n for n, p in clf.module_.named_parameters() if p.requires_grad]
    assert trainable and all(n.startswith("head.") for n in trainable)


def test_regressor_1d_and_2d_targets(digits, fast):
    X, y = digits
    target = y.astype(float) * 10 + 5
    reg = FineTunedRegressor(**{**fast, "max_epochs": 10}, lr=1e-2).fit(X, target)
    pred = reg.predict(X)
    assert pred.shape == (len(X),)
    assert abs(pred.mean() - target.mean()) < 5  # predictions on the original scale
    two = np.c_[target, -target]
    reg2 = FineTunedRegressor(**fast, criterion="mae").fit(X, two)
    assert reg2.predict(X).shape == (len(X), 2)
    assert isinstance(reg2.criterion_, torch.nn.L1Loss)
    assert not hasattr(reg2, "predict_proba")


def test_regressor_mlp_learns(fast):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5)).astype(np.float32)
    y = X @ np.arange(1, 6) + 3
    reg = FineTunedRegressor(
        "mlp", pretrained=False, augment="none", max_epochs=60, lr=1e-2, verbose=0, random_state=0
    ).fit(X, y)
    assert reg.score(X, y) > 0.9
    assert reg.n_features_in_ == 5


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"lrr": 0.1}, "'lrr'.*did you mean 'lr'\\?"),
        # skorch alone would suggest the plugin parameter augment__strenght
        ({"augment_strenght": 0.1}, "did you mean 'augment_strength' or 'augment__strenght'\\?"),
        ({"optimizer_weight_decay": 0.1}, "did you mean 'optimizer__weight_decay'\\?"),
        ({"iterator_train_shuffle": True}, "did you mean 'iterator_train__shuffle'\\?"),
        ({"zzz": 1}, "Invalid parameter 'zzz' for FineTunedClassifier \\(its parameters"),
    ],
)
def test_a_misspelt_parameter_is_named_with_the_close_ones(digits, fast, given, expected):
    X, y = digits
    with pytest.raises(ValueError, match=expected):  # in __init__: at fit, as scikit-learn
        FineTunedClassifier(**fast, **given).fit(X, y)
    clf = FineTunedClassifier(**fast)
    with pytest.raises(ValueError, match=expected):
        clf.set_params(**given)
    assert not set(given) & set(vars(clf))
    clf.set_params(optimizer__weight_decay=0.1, iterator_train__shuffle=True)  # right forms


def test_a_plugin_parameter_it_does_not_take_lists_the_ones_it_takes(digits, fast):
    X, y = digits
    clf = FineTunedClassifier(**fast, freeze="depth", freeze__rr=1)
    with pytest.raises(TypeError, match="freeze__rr.*it takes freeze__bn, freeze__lr_decay"):
        clf.fit(X, y)
