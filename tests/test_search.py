"""skft.OptunaSearch as a meta-estimator: fit, score, clone, pickle, cv_results_, best trial."""

from __future__ import annotations

import pickle

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from sklearn.base import clone
from sklearn.metrics import accuracy_score

from skft import FineTunedClassifier, FineTunedRegressor, OptunaSearch

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture
def clf(fast):
    return FineTunedClassifier(**fast)


# --------------------------------------------------------------------------
# the meta-estimator
# --------------------------------------------------------------------------


def test_fit_predict_score_and_cv_results(clf, digits):
    X, y = digits
    search = OptunaSearch(
        clf, param_distributions={"freeze__lr_decay": None}, n_trials=3, cv=2, random_state=0
    )
    assert search.fit(X, y) is search
    res = search.cv_results_
    n = 3
    for key in (
        "mean_fit_time",
        "std_fit_time",
        "mean_score_time",
        "std_score_time",
        "split0_test_score",
        "split1_test_score",
        "mean_test_score",
        "std_test_score",
        "rank_test_score",
        "param_lr",
        "param_frozen_depth",
        "param_augment_strength",
    ):
        assert len(res[key]) == n, key
    assert len(res["params"]) == n and "split2_test_score" not in res
    assert isinstance(res["param_lr"], np.ma.MaskedArray)
    np.testing.assert_allclose(
        res["mean_test_score"], (res["split0_test_score"] + res["split1_test_score"]) / 2
    )
    best = int(np.argmin(res["rank_test_score"]))
    assert search.best_index_ == best and res["rank_test_score"][best] == 1
    assert search.best_params_ == res["params"][best]
    assert search.best_score_ == pytest.approx(res["mean_test_score"].max())
    assert search.best_score_ == pytest.approx(search.study_.best_value)
    assert len(search.study_.trials) == n and search.n_splits_ == 2
    best_est = search.best_estimator_
    assert best_est.get_params()["lr"] == search.best_params_["lr"]
    assert best_est.history[-1]["epoch"] == clf.max_epochs  # refit on all of X
    pred = search.predict(X)
    assert pred.shape == (len(X),) and set(pred) <= set(y)
    assert search.predict_proba(X).shape == (len(X), 3)
    assert search.score(X, y) == pytest.approx(accuracy_score(y, pred))
    np.testing.assert_array_equal(search.classes_, [0, 1, 2])


def test_delegation_follows_the_estimator(fast, digits):
    reg = OptunaSearch(FineTunedRegressor(**fast))
    assert not hasattr(reg, "predict_proba") and hasattr(reg, "predict")
    assert hasattr(OptunaSearch(FineTunedClassifier(**fast)), "predict_proba")
    assert not hasattr(OptunaSearch(FineTunedClassifier(**fast), refit=False), "predict")


def test_clone_and_pickle(clf, digits):
    X, y = digits
    search = OptunaSearch(clf, n_trials=2, cv=2, pruner=None, random_state=0)
    unfitted = clone(search)
    assert unfitted.get_params(deep=False).keys() == search.get_params(deep=False).keys()
    assert pickle.loads(pickle.dumps(search)).n_trials == 2
    search.fit(X, y)
    again = pickle.loads(pickle.dumps(search))
    np.testing.assert_array_equal(again.predict_proba(X), search.predict_proba(X))
    assert [t.value for t in again.study_.trials] == [t.value for t in search.study_.trials]
    assert again.study_.best_params == search.best_params_
    fresh = clone(search)
    assert not hasattr(fresh, "study_") and not hasattr(fresh, "best_estimator_")


def test_refit_false_and_validation(clf, digits):
    X, y = digits
    search = OptunaSearch(clf, n_trials=1, cv=2, refit=False).fit(X, y)
    assert not hasattr(search, "best_estimator_") and search.best_params_
    with pytest.raises(ValueError, match="n_trials"):
        OptunaSearch(clf, n_trials=0).fit(X, y)
    with pytest.raises(ValueError, match="pruner"):
        OptunaSearch(clf, n_trials=1, pruner="sometimes").fit(X, y)
    with pytest.raises(ValueError, match="one score"):
        OptunaSearch(clf, n_trials=1, scoring=["accuracy", "f1"]).fit(X, y)


def test_n_trials_counts_the_whole_study(clf, digits):
    X, y = digits
    study_name, storage = "resume", optuna.storages.InMemoryStorage()
    kw = dict(n_trials=2, cv=2, storage=storage, study_name=study_name, refit=False)
    OptunaSearch(clf, **kw).fit(X, y)
    second = OptunaSearch(clf, **kw).fit(X, y)  # target already reached: no new trial
    assert len(second.study_.trials) == 2 and len(second.cv_results_["params"]) == 2
    third = OptunaSearch(clf, **{**kw, "n_trials": 3}).fit(X, y)
    assert len(third.study_.trials) == 3


def test_best_comes_from_the_trials_in_cv_results(clf, digits, monkeypatch):
    """Another worker on a shared study may finish a better trial right after this one
    reads the trials: the best is chosen among the trials cv_results_ holds."""
    X, y = digits
    real_optimize, real_get_trials = optuna.Study.optimize, optuna.Study.get_trials
    done = {"optimized": False}

    def optimize(self, *args, **kwargs):
        real_optimize(self, *args, **kwargs)
        done["optimized"] = True

    def get_trials(self, *args, **kwargs):
        trials = real_get_trials(self, *args, **kwargs)
        if done["optimized"]:  # the other worker's better trial lands after the read
            done["optimized"] = False
            self.add_trial(
                optuna.trial.create_trial(
                    params=trials[0].params, distributions=trials[0].distributions, value=2.0
                )
            )
        return trials

    monkeypatch.setattr(optuna.Study, "optimize", optimize)
    monkeypatch.setattr(optuna.Study, "get_trials", get_trials)
    search = OptunaSearch(clf, n_trials=2, cv=2, refit=False, random_state=0).fit(X, y)
    res = search.cv_results_
    assert len(res["params"]) == 2 and len(search.study_.trials) == 3
    assert search.best_score_ == pytest.approx(res["mean_test_score"].max())
    assert search.best_score_ <= 1.0 < search.study_.best_value  # not the late trial
    assert res["rank_test_score"][search.best_index_] == 1



# the optuna-integration searcher on skft's estimators


def test_optuna_integration_search_cv_runs_on_fine_tuned_classifier(clf, digits):
    optuna_integration = pytest.importorskip("optuna_integration")
    X, y = digits
    search = optuna_integration.OptunaSearchCV(
        clf,
        {
            "lr": FloatDistribution(1e-3, 1e-1, log=True),
            "frozen_depth": CategoricalDistribution([0, "all"]),
        },
        n_trials=2,
        cv=2,
        random_state=0,
        verbose=0,
    ).fit(X, y)
    assert set(search.best_params_) == {"lr", "frozen_depth"}
    assert search.predict(X).shape == (60,)
    assert 0 <= search.score(X, y) <= 1
