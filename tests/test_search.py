"""skft.OptunaSearch: the meta-estimator, the plugin-driven default space, CV-aware pruning."""

from __future__ import annotations

import pickle
import threading

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.metrics import accuracy_score
from skorch import NeuralNetClassifier
from skorch.callbacks import Callback
from torch import nn

import skft
from skft import BackboneSpec, FineTunedClassifier, FineTunedRegressor, OptunaSearch, hookimpl
from skft.builtin.search_space import layer_group_count
from skft.plugins import pm
from skft.search.objective import trains_in_lockstep
from skft.search.space import chosen_augmenters, default_search_space, merge_search_space
from skft.training.device import DevicePool, trial_devices

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


# --------------------------------------------------------------------------
# the default search space
# --------------------------------------------------------------------------


@pytest.mark.parametrize("backbone", ["smallcnn", "mlp", "resnet18", "mobilenet_v3_small"])
def test_default_space_per_backbone(backbone):
    est = FineTunedClassifier(backbone, pretrained=False)
    space = default_search_space(est)
    assert space["lr"] == FloatDistribution(1e-5, 1e-1, log=True)
    n_groups = len(
        skft.get_backbone(backbone).build(False, (3, 64, 64) if backbone != "mlp" else (4,)).groups
    )
    assert layer_group_count(skft.get_backbone(backbone)) == n_groups
    assert space["frozen_depth"].choices == (*range(n_groups), "all")
    assert space["augment_strength"] == FloatDistribution(0.0, 1.0)
    assert "augment_strength" not in default_search_space(est.set_params(augment="none"))


def test_group_counts_differ_between_backbones():
    counts = {b: layer_group_count(skft.get_backbone(b)) for b in ("smallcnn", "mlp", "resnet18")}
    assert counts == {"smallcnn": 3, "mlp": 2, "resnet18": 5}


def _build_fails(pretrained, input_shape):
    raise AssertionError("built although the spec declares n_groups")


def test_layer_group_count_reads_the_declared_field_only():
    declared = BackboneSpec(name="declared-7", build=_build_fails, n_groups=7)
    assert layer_group_count(declared) == 7  # not built
    # ``extra`` is free-form metadata: never read for behaviour
    mlp = skft.get_backbone("mlp")
    extra_only = BackboneSpec(
        name="extra-only", build=mlp.build, input_kind="tabular", extra={"n_groups": 7}
    )
    assert layer_group_count(extra_only) == 2


@pytest.mark.parametrize(
    ("augment", "prefixes", "num_ops"),
    [
        ("basic+mixup", ["augment__basic__", "augment__mixup__"], []),
        (["basic", "mixup"], ["augment__basic__", "augment__mixup__"], []),
        (
            "basic+randaugment",
            ["augment__basic__", "augment__randaugment__"],
            ["augment__randaugment__num_ops"],
        ),
        (["rand"], ["augment__rand__"], ["augment__rand__num_ops"]),
        ("randaugment", ["augment__"], ["augment__num_ops"]),
    ],
)
def test_default_space_for_composed_augment(augment, prefixes, num_ops):
    """Regression: a composition was looked up as one augmenter name."""
    est = FineTunedClassifier("smallcnn", pretrained=False, augment=augment)
    assert [prefix for prefix, _ in chosen_augmenters(est)] == prefixes
    space = default_search_space(est)
    assert space["augment_strength"] == FloatDistribution(0.0, 1.0)
    assert {"lr", "frozen_depth", "freeze__lr_decay"} <= set(space)
    assert [k for k in space if k.endswith("num_ops")] == num_ops
    assert "augment_strength" not in default_search_space(est.set_params(augment="none+none"))


def test_search_with_composed_augment_reaches_the_components(fast, digits):
    X, y = digits
    est = FineTunedClassifier(**{**fast, "max_epochs": 1}, augment="basic+randaugment")
    search = OptunaSearch(est, {"freeze__lr_decay": None}, n_trials=2, cv=2, random_state=0).fit(
        X, y
    )
    assert "augment__randaugment__num_ops" in search.best_params_
    _, randaugment = search.best_estimator_.augmenter_.augmenters
    assert randaugment.num_ops == search.best_params_["augment__randaugment__num_ops"]


def test_param_distributions_override_and_extend(clf):
    space = merge_search_space(
        clf,
        {
            "lr": FloatDistribution(1e-3, 1e-2, log=True),
            "batch_size": [8, 16],
            "augment_strength": None,
        },
    )
    assert space["lr"] == FloatDistribution(1e-3, 1e-2, log=True)
    assert space["batch_size"] == CategoricalDistribution([8, 16])
    assert "augment_strength" not in space and "frozen_depth" in space
    with pytest.raises(TypeError, match="optuna distribution"):
        merge_search_space(clf, {"lr": 0.1})


def test_non_skft_estimator_needs_param_distributions(digits):
    from sklearn.linear_model import LogisticRegression

    X, y = digits
    with pytest.raises(ValueError, match="search space .* is empty"):
        OptunaSearch(LogisticRegression(), n_trials=1).fit(X.reshape(60, -1), y)
    search = OptunaSearch(
        LogisticRegression(max_iter=200),
        {"C": FloatDistribution(0.01, 10, log=True)},
        n_trials=3,
        cv=2,
        random_state=0,
    ).fit(X.reshape(60, -1), y)
    assert set(search.best_params_) == {"C"} and search.score(X.reshape(60, -1), y) > 0.8


class MagnitudeAugment:
    """A third-party augmenter with its own parameter and search space."""

    input_kinds = ("image",)
    seen: list[int] = []

    def __init__(self, magnitude: int = 1) -> None:
        self.magnitude = magnitude
        MagnitudeAugment.seen.append(magnitude)

    def __call__(self, X, strength, generator):
        return X


class ThirdParty:
    @hookimpl
    def register_augmenters(self, register):
        register("magnitude", MagnitudeAugment)

    @hookimpl
    def search_space(self, estimator):
        params = estimator.get_params(deep=False)
        if "backbone" not in params:
            return None
        space = {
            "batch_size": CategoricalDistribution([8, 16]),
            "lr": FloatDistribution(1e-4, 1e-2, log=True),  # refines the core's range
        }
        for prefix, factory in chosen_augmenters(estimator):  # the augmenter it registered
            if factory is MagnitudeAugment:
                space[prefix + "magnitude"] = IntDistribution(1, 9)
        return space


@pytest.fixture
def third_party():
    plugin = ThirdParty()
    skft.plugins.load_plugins()
    pm.register(plugin, "third-party-search")
    MagnitudeAugment.seen = []
    try:
        yield plugin
    finally:
        pm.unregister(plugin)


def test_third_party_plugin_parameters_in_default_space(third_party, fast, digits):
    X, y = digits
    est = FineTunedClassifier(**{**fast, "augment": "magnitude", "augment_strength": 0.5})
    space = default_search_space(est)
    assert space["batch_size"] == CategoricalDistribution([8, 16])  # the plugin's hook
    assert space["augment__magnitude"] == IntDistribution(1, 9)  # for the augmenter it registered
    assert space["lr"] == FloatDistribution(1e-4, 1e-2, log=True)  # later plugin wins
    search = OptunaSearch(est, n_trials=2, cv=2, random_state=0).fit(X, y)
    for trial in search.study_.trials:
        assert {"batch_size", "augment__magnitude"} <= set(trial.params)
        assert trial.params["augment__magnitude"] in MagnitudeAugment.seen  # reached the factory
    pm.unregister(third_party)
    assert "augment__magnitude" not in default_search_space(FineTunedClassifier(**fast))
    pm.register(third_party, "third-party-search")


# --------------------------------------------------------------------------
# pruning with cross-validation
# --------------------------------------------------------------------------


class RecordingScorer:
    """accuracy, remembering (fold model, epochs trained, score) for every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int, float]] = []

    def __call__(self, est, X, y):
        score = accuracy_score(y, est.predict(X))
        self.calls.append((id(est), len(est.history), score))
        return score


class NeverPrune(optuna.pruners.BasePruner):
    def prune(self, study, trial):
        return False


def test_mean_over_folds_is_reported_every_epoch(fast, digits):
    X, y = digits
    scorer = RecordingScorer()
    est = FineTunedClassifier(**{**fast, "max_epochs": 3})
    search = OptunaSearch(
        est,
        {"lr": FloatDistribution(1e-3, 1e-1, log=True)},
        n_trials=2,
        cv=3,
        scoring=scorer,
        pruner=NeverPrune(),
        refit=False,
    ).fit(X, y)
    calls = iter(scorer.calls)  # n_jobs=1: trials, epochs and folds in order
    for trial in search.study_.trials:
        assert sorted(trial.intermediate_values) == [0, 1, 2]  # one value per epoch
        models = set()
        for epoch in range(3):
            step = [next(calls) for _ in range(3)]
            assert [epochs for _, epochs, _ in step] == [epoch + 1] * 3  # lockstep
            models |= {model for model, _, _ in step}
            expected = np.mean([score for _, _, score in step])
            assert trial.intermediate_values[epoch] == pytest.approx(expected)
        assert len(models) == 3  # three fold models, each trained one epoch per step
        assert trial.value == pytest.approx(trial.intermediate_values[2])
        assert trial.value == pytest.approx(np.mean(trial.user_attrs["split_test_scores"]))


class EpochCounter(Callback):
    epochs = 0

    def on_epoch_end(self, net, **kwargs):
        EpochCounter.epochs += 1


class PruneAfterFirstTrial(optuna.pruners.BasePruner):
    def prune(self, study, trial):
        return trial.number >= 1


def test_pruned_trial_stops_at_once(fast, digits):
    X, y = digits
    EpochCounter.epochs = 0
    est = FineTunedClassifier(**{**fast, "max_epochs": 4}, callbacks=[EpochCounter()])
    search = OptunaSearch(
        est,
        {"lr": FloatDistribution(1e-3, 1e-1, log=True)},
        n_trials=3,
        cv=2,
        pruner=PruneAfterFirstTrial(),
        refit=False,
    ).fit(X, y)
    states = [t.state.name for t in search.study_.trials]
    assert states == ["COMPLETE", "PRUNED", "PRUNED"]
    assert [len(t.intermediate_values) for t in search.study_.trials] == [4, 1, 1]
    # trial 0: 2 folds x 4 epochs; trials 1-2: 2 folds x 1 epoch, then stopped
    assert EpochCounter.epochs == 8 + 2 + 2
    res = search.cv_results_
    assert list(res["state"]) == states and list(res["epochs_trained"]) == [4, 1, 1]
    assert np.isnan(res["mean_test_score"][1]) and list(res["rank_test_score"]) == [1, 2, 2]


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(64, 3)

    def forward(self, X):
        return self.linear(X.reshape(len(X), -1))


def test_plain_skorch_net_trains_max_epochs_per_fold(digits):
    """Regression: skorch's partial_fit trains max_epochs epochs, so no lockstep for it."""
    X, y = digits
    epochs_scored = []

    def scorer(est, X_test, y_test):
        epochs_scored.append(len(est.history))
        return accuracy_score(y_test, est.predict(X_test))

    net = NeuralNetClassifier(TinyNet, max_epochs=3, lr=0.1, train_split=None, verbose=0)
    assert not trains_in_lockstep(net)
    assert trains_in_lockstep(FineTunedClassifier())  # declares partial_fit_is_one_epoch
    search = OptunaSearch(
        net,
        {"lr": FloatDistribution(1e-3, 1e-1, log=True)},
        n_trials=2,
        cv=2,
        scoring=scorer,
        pruner=NeverPrune(),
    ).fit(X.reshape(60, -1), y.astype(np.int64))
    assert epochs_scored == [3, 3] * 2  # each fold: exactly max_epochs, scored once
    assert all(not t.intermediate_values for t in search.study_.trials)  # nothing to prune on
    assert len(search.best_estimator_.history) == 3


# --------------------------------------------------------------------------
# parallel trials and devices
# --------------------------------------------------------------------------


def test_trial_devices():
    assert trial_devices("auto", 2, 2) == ["cuda:0", "cuda:1"]
    assert trial_devices("cuda", 4, 2) == ["cuda:0", "cuda:1", "cuda:0", "cuda:1"]
    assert trial_devices("auto", 1, 4) == [None]  # one trial at a time: keep "auto"
    assert trial_devices("auto", 3, 1) == [None] * 3  # one device: nothing to spread
    assert trial_devices("cpu", 2, 2) == [None, None]  # pinned by the user
    assert trial_devices("cuda:1", 2, 2) == [None, None]


class DeviceRecorder(ClassifierMixin, BaseEstimator):
    """Records the device each fit ran with, and which fits overlapped."""

    lock = threading.Lock()
    running: dict[int, str] = {}
    overlaps: list[tuple[str, str]] = []
    seen: list[str] = []

    def __init__(self, device="auto", c=1.0):
        self.device, self.c = device, c

    def fit(self, X, y):
        import time

        me = threading.get_ident()
        with self.lock:
            self.seen.append(self.device)
            for other in self.running.values():
                self.overlaps.append((self.device, other))
            self.running[me] = self.device
        time.sleep(0.05)
        with self.lock:
            del self.running[me]
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        return np.full(len(X), self.classes_[0])


def test_parallel_trials_each_take_their_own_device(monkeypatch, digits):
    X, y = digits
    monkeypatch.setattr("skft.training.device.cuda_count", lambda: 2)
    DeviceRecorder.seen, DeviceRecorder.overlaps = [], []
    search = OptunaSearch(
        DeviceRecorder(),
        {"c": FloatDistribution(0.1, 1.0)},
        n_trials=6,
        cv=2,
        n_jobs=2,
        refit=False,
    ).fit(X.reshape(60, -1), y)
    assert len(search.study_.trials) == 6
    assert set(DeviceRecorder.seen) == {"cuda:0", "cuda:1"}
    assert DeviceRecorder.overlaps  # trials did run at the same time ...
    assert all(a != b for a, b in DeviceRecorder.overlaps)  # ... never on one device


def test_device_pool_hands_out_distinct_slots():
    pool = DevicePool(["cuda:0", "cuda:1"])
    with pool.take() as a, pool.take() as b:
        assert {a, b} == {"cuda:0", "cuda:1"}
    with pool.take() as c:
        assert c in ("cuda:0", "cuda:1")


# --------------------------------------------------------------------------
# a peer's API: optuna-integration's OptunaSearchCV
# --------------------------------------------------------------------------


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
