"""scikit-learn's ``cv_results_`` from the trials of an Optuna study."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["cv_results"]


def cv_results(trials: Sequence[Any], n_splits: int) -> dict[str, Any]:
    """``cv_results_`` from the finished (complete or pruned) trials, in trial order.

    The keys of :class:`sklearn.model_selection.GridSearchCV`'s, plus
    ``trial_number``, ``state`` and ``epochs_trained``. Pruned trials have NaN
    split scores and rank last.
    """
    from optuna.trial import TrialState
    from scipy.stats import rankdata

    trials = sorted(
        (t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)),
        key=lambda t: t.number,
    )
    n = len(trials)
    results: dict[str, Any] = {}

    def per_split(key: str, trial: Any) -> list[float]:
        values = trial.user_attrs.get(key)
        if trial.state != TrialState.COMPLETE or not values or len(values) != n_splits:
            return [math.nan] * n_splits
        return [float(v) for v in values]

    fit = np.array([per_split("split_fit_time", t) for t in trials]).reshape(n, n_splits)
    score = np.array([per_split("split_score_time", t) for t in trials]).reshape(n, n_splits)
    test = np.array([per_split("split_test_scores", t) for t in trials]).reshape(n, n_splits)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows of pruned trials
        for name, arr in (("fit_time", fit), ("score_time", score)):
            results[f"mean_{name}"] = np.nanmean(arr, axis=1) if n else np.array([])
            results[f"std_{name}"] = np.nanstd(arr, axis=1) if n else np.array([])
    for name in sorted({k for t in trials for k in t.params}):
        column = np.ma.MaskedArray(np.empty(n, dtype=object), mask=True)
        for i, t in enumerate(trials):
            if name in t.params:
                column[i] = t.params[name]
        results[f"param_{name}"] = column
    results["params"] = [dict(t.params) for t in trials]
    for k in range(n_splits):
        results[f"split{k}_test_score"] = test[:, k]
    mean = test.mean(axis=1) if n else np.array([])
    results["mean_test_score"] = mean
    results["std_test_score"] = test.std(axis=1) if n else np.array([])
    order = np.where(np.isnan(mean), -np.inf, mean)
    results["rank_test_score"] = (
        rankdata(-order, method="min").astype(np.int32) if n else np.array([], dtype=np.int32)
    )
    results["trial_number"] = np.array([t.number for t in trials], dtype=int)
    results["state"] = np.array([t.state.name for t in trials], dtype=object)
    results["epochs_trained"] = np.array(
        [int(t.user_attrs.get("epochs_trained", 0)) for t in trials], dtype=int
    )
    return results
