"""skft.search.objective: CV folds trained in lockstep, pruning from the mean over folds."""

from __future__ import annotations

import numpy as np
import optuna
import pytest
from optuna.distributions import FloatDistribution
from sklearn.metrics import accuracy_score
from skorch import NeuralNetClassifier
from skorch.callbacks import Callback
from torch import nn

from skft import FineTunedClassifier, OptunaSearch
from skft.search.objective import trains_in_lockstep

optuna.logging.set_verbosity(optuna.logging.WARNING)





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


