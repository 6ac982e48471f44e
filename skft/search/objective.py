"""The objective of :class:`skft.OptunaSearch`: one trial's cross-validation.

Estimators whose ``partial_fit`` trains exactly one epoch (they declare
``partial_fit_is_one_epoch = True``, as skft's do) train their folds in
lockstep: each step trains every fold's model one more epoch, and the mean
validation score over the folds is reported to Optuna, so a pruner compares
trials on one value per step and a pruned trial stops at once. Any other
estimator (a plain skorch net's ``partial_fit`` trains ``max_epochs`` epochs)
gets plain cross-validation: one ``fit`` per fold, scored once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from sklearn.base import clone, is_classifier
from sklearn.utils import _safe_indexing

from ..params.defaults import effective
from ..training.device import DevicePool
from ..training.multilabel import is_multilabel
from ..training.progress import in_search
from .space import suggest

__all__ = ["CVObjective", "trains_in_lockstep"]


def trains_in_lockstep(estimator: Any) -> bool:
    """Whether the folds of ``estimator`` can train one epoch at a time through ``partial_fit``.

    Only estimators that declare ``partial_fit_is_one_epoch = True`` on their
    class: skorch's own ``partial_fit`` trains ``max_epochs`` epochs per call,
    so lockstep would train ``max_epochs**2``.
    """
    declared = getattr(type(estimator), "partial_fit_is_one_epoch", False) is True
    return (
        declared
        and hasattr(estimator, "partial_fit")
        and "max_epochs" in estimator.get_params(deep=False)
    )


class CVObjective:
    """``objective(trial)``: suggest parameters, cross-validate, return the mean test score.

    Per-fold scores and times go to the trial's user attributes
    (``split_test_scores``, ``split_fit_time``, ``split_score_time``,
    ``epochs_trained``), from which :mod:`skft.search.results` builds ``cv_results_``.
    """

    def __init__(
        self,
        estimator: Any,
        space: Mapping[str, Any],
        X: Any,
        y: Any,
        splits: list[tuple[np.ndarray, np.ndarray]],
        scorer: Callable[..., float],
        fit_params: Mapping[str, Any],
        report_every_epoch: bool,
        devices: DevicePool,
    ) -> None:
        self.estimator, self.space, self.scorer = estimator, dict(space), scorer
        self.fit_params = dict(fit_params)
        self.report_every_epoch = report_every_epoch
        self.devices = devices
        self.folds = [
            (
                _safe_indexing(X, train),
                None if y is None else _safe_indexing(y, train),
                _safe_indexing(X, test),
                None if y is None else _safe_indexing(y, test),
            )
            for train, test in splits
        ]
        single_label = y is not None and not is_multilabel(y)  # multi-label: classes_ are columns
        self.classes = np.unique(y) if is_classifier(estimator) and single_label else None

    def __call__(self, trial: Any) -> float:
        params = {name: suggest(trial, name, d) for name, d in self.space.items()}
        with self.devices.take() as slot, in_search():  # no progress bars (skft.training.progress)
            est = clone(self.estimator).set_params(**params)
            if slot is not None:
                est.set_params(device=slot)
            if trains_in_lockstep(est):
                return self._lockstep(trial, est)
            return self._plain(trial, est)

    def _record(self, trial: Any, scores, fit_time, score_time, epochs: int) -> None:
        trial.set_user_attr("split_test_scores", [float(s) for s in scores])
        trial.set_user_attr("split_fit_time", [float(t) for t in fit_time])
        trial.set_user_attr("split_score_time", [float(t) for t in score_time])
        trial.set_user_attr("epochs_trained", int(epochs))

    def _score_folds(self, models, score_time) -> list[float]:
        scores = []
        for i, (model, (_, _, X_test, y_test)) in enumerate(zip(models, self.folds)):
            t0 = time.perf_counter()
            scores.append(float(self.scorer(model, X_test, y_test)))
            score_time[i] += time.perf_counter() - t0
        return scores

    def _lockstep(self, trial: Any, est: Any) -> float:
        import optuna

        n_epochs = int(effective(est, "max_epochs"))  # None: the fit plan's, known after epoch 1
        models = [clone(est) for _ in self.folds]
        k = len(models)
        fit_time, score_time = np.zeros(k), np.zeros(k)
        kwargs = dict(self.fit_params)
        if self.classes is not None:
            kwargs["classes"] = self.classes  # a fold may lack a class
        scores: list[float] = []
        epoch = -1
        while epoch + 1 < n_epochs:
            epoch += 1
            for i, (model, (X_train, y_train, _, _)) in enumerate(zip(models, self.folds)):
                t0 = time.perf_counter()
                model.partial_fit(X_train, y_train, **kwargs)
                fit_time[i] += time.perf_counter() - t0
            if epoch == 0:  # the first partial_fit made the plan: its epochs (fold 1's data)
                n_epochs = int(effective(models[0], "max_epochs"))
            last = epoch == n_epochs - 1
            if not (self.report_every_epoch or last):
                continue
            scores = self._score_folds(models, score_time)
            if self.report_every_epoch:
                trial.report(float(np.mean(scores)), epoch)
                if not last and trial.should_prune():
                    self._record(trial, scores, fit_time, score_time, epoch + 1)
                    raise optuna.TrialPruned(f"pruned after epoch {epoch + 1}/{n_epochs}")
        self._record(trial, scores, fit_time, score_time, n_epochs)
        return float(np.mean(scores))

    def _plain(self, trial: Any, est: Any) -> float:
        k = len(self.folds)
        fit_time, score_time = np.zeros(k), np.zeros(k)
        models = []
        for i, (X_train, y_train, _, _) in enumerate(self.folds):
            t0 = time.perf_counter()
            models.append(clone(est).fit(X_train, y_train, **self.fit_params))
            fit_time[i] = time.perf_counter() - t0
        scores = self._score_folds(models, score_time)
        self._record(trial, scores, fit_time, score_time, 0)
        return float(np.mean(scores))
