"""``OptunaSearch``: Optuna hyperparameter search with CV-aware pruning and shared storages.

The folds of a trial train in lockstep, one epoch each per step
(``partial_fit`` trains exactly one epoch in skft), and the mean validation
score over the folds is reported to Optuna after every epoch, so a pruner
compares trials on one value per step and a pruned trial stops at once.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import os
import queue
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.base import clone, is_classifier
from sklearn.metrics import check_scoring
from sklearn.model_selection import check_cv
from sklearn.model_selection._search import BaseSearchCV
from sklearn.utils import _safe_indexing, check_random_state

from .search_space import merge_search_space, suggest
from .search_storage import make_pruner, make_storage, study_from_snapshot, study_snapshot

__all__ = ["OptunaSearch", "DevicePool", "trial_devices"]


# --------------------------------------------------------------------------
# devices for parallel trials
# --------------------------------------------------------------------------


def trial_devices(device: Any, n_jobs: int, n_cuda: int) -> list[str | None]:
    """One device per parallel-trial slot; ``None`` keeps the estimator's own ``device``.

    With ``n_jobs > 1`` parallel trials, several visible CUDA devices, and an
    estimator device of ``"auto"`` or ``"cuda"`` (no index), slot ``i`` gets
    ``cuda:{i % n_cuda}``, so each parallel trial trains on its own device
    (as long as ``n_jobs <= n_cuda``). A device the user pinned (``"cpu"``,
    ``"cuda:1"``) is left alone.
    """
    n_jobs = max(int(n_jobs), 1)
    if n_jobs == 1 or n_cuda <= 1 or device not in ("auto", "cuda"):
        return [None] * n_jobs
    return [f"cuda:{i % n_cuda}" for i in range(n_jobs)]


class DevicePool:
    """Slots handed to trials running at the same time; a trial holds one while it runs."""

    def __init__(self, devices: Sequence[str | None]) -> None:
        self._free: queue.Queue = queue.Queue()
        for device in devices:
            self._free.put(device)

    @contextlib.contextmanager
    def take(self) -> Iterator[str | None]:
        device = self._free.get()
        try:
            yield device
        finally:
            self._free.put(device)


def _cuda_count() -> int:
    import sys

    torch = sys.modules.get("torch")
    if torch is None:
        import torch
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


# --------------------------------------------------------------------------
# the objective: CV folds trained in lockstep
# --------------------------------------------------------------------------


class _Objective:
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
        self.fit_params, self.report_every_epoch, self.devices = (
            dict(fit_params),
            report_every_epoch,
            devices,
        )
        self.folds = [
            (
                _safe_indexing(X, train),
                None if y is None else _safe_indexing(y, train),
                _safe_indexing(X, test),
                None if y is None else _safe_indexing(y, test),
            )
            for train, test in splits
        ]
        self.classes = np.unique(y) if is_classifier(estimator) and y is not None else None

    def __call__(self, trial: Any) -> float:
        params = {name: suggest(trial, name, d) for name, d in self.space.items()}
        with self.devices.take() as device:
            est = clone(self.estimator).set_params(**params)
            if device is not None:
                est.set_params(device=device)
            if hasattr(est, "partial_fit") and "max_epochs" in est.get_params(deep=False):
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

        n_epochs = int(est.max_epochs)
        models = [clone(est) for _ in self.folds]
        k = len(models)
        fit_time, score_time = np.zeros(k), np.zeros(k)
        kwargs = dict(self.fit_params)
        if self.classes is not None:
            kwargs["classes"] = self.classes  # a fold may lack a class
        scores: list[float] = []
        for epoch in range(n_epochs):
            for i, (model, (X_train, y_train, _, _)) in enumerate(zip(models, self.folds)):
                t0 = time.perf_counter()
                model.partial_fit(X_train, y_train, **kwargs)
                fit_time[i] += time.perf_counter() - t0
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


# --------------------------------------------------------------------------
# the search
# --------------------------------------------------------------------------


class OptunaSearch(BaseSearchCV):
    """Optuna search over an estimator's hyperparameters, a scikit-learn meta-estimator.

    Parameters
    ----------
    estimator : estimator
        The estimator to tune (usually a :class:`skft.FineTunedClassifier` or
        ``FineTunedRegressor``; any scikit-learn estimator works with
        ``param_distributions``).
    param_distributions : dict or None
        ``{name: optuna distribution or list of choices}``. Overrides or
        extends the default space that plugins contribute through the
        ``search_space`` hook (skft: ``lr``, ``frozen_depth``,
        ``augment_strength``, plus the freezing policy's and augmenter's own
        parameters). A value of ``None`` removes a default entry.
    n_trials : int or None
        Stop once this many trials of the study have finished (complete or
        pruned), counting every worker that shares the study. Trials already
        running in other workers at that moment still finish, so a study with
        ``w`` workers may end with up to ``w - 1`` more. ``None``: until ``timeout``.
    cv : int, cross-validation generator or iterable
        As in scikit-learn (stratified k-fold for classifiers).
    scoring : str, callable or None
        A single scikit-learn scorer; ``None``: the estimator's ``score``.
    storage : None, str or optuna storage
        ``None``: in memory. A database URL (``sqlite:///s.db``,
        ``postgresql://user:pw@host/db``): Optuna's RDB storage with a
        heartbeat, so a killed worker's trial is marked failed and retried.
        ``journal:///path/s.log`` or a path ending in ``.log``/``.journal``:
        a journal file. Or any Optuna storage object
        (see :func:`skft.search_storage.make_storage`).
    study_name : str or None
        Workers started with the same ``study_name`` and ``storage`` share
        the study (it is created by the first, loaded by the others).
    pruner : "median", "none", None or an optuna pruner
        "median": ``MedianPruner(n_startup_trials=5, n_warmup_steps=1)``.
        With no pruner, folds are scored only after their last epoch.
    timeout : float or None
        Seconds; stop starting new trials after that.
    n_jobs : int
        Trials run in parallel threads in this process. With several CUDA
        devices visible and ``device="auto"``/``"cuda"``, each parallel trial
        takes its own device.
    refit : bool
        Refit the best parameters on all of X, y (``best_estimator_``).
    random_state : int, RandomState or None
        Seeds the TPE sampler. With a shared storage each worker mixes in its
        process id, so workers do not draw the same parameters.

    Attributes
    ----------
    study_ : optuna.Study
        After unpickling: an in-memory snapshot of the trials.
    best_params_, best_score_, best_index_, best_estimator_, cv_results_,
    n_splits_, scorer_, refit_time_, search_space_ : as their names say.
    """

    #: Heartbeat settings used when ``storage`` is a database URL.
    heartbeat_interval = 30
    grace_period = None
    max_retry = 3

    def __init__(
        self,
        estimator,
        param_distributions=None,
        n_trials=20,
        cv=3,
        scoring=None,
        storage=None,
        study_name=None,
        pruner="median",
        timeout=None,
        n_jobs=1,
        refit=True,
        random_state=None,
    ):
        self.estimator = estimator
        self.param_distributions = param_distributions
        self.n_trials = n_trials
        self.cv = cv
        self.scoring = scoring
        self.storage = storage
        self.study_name = study_name
        self.pruner = pruner
        self.timeout = timeout
        self.n_jobs = n_jobs
        self.refit = refit
        self.random_state = random_state

    def _run_search(self, evaluate_candidates):  # pragma: no cover - fit is our own
        raise NotImplementedError

    # ------------------------------------------------------------------

    def _check(self) -> None:
        if self.n_trials is None and self.timeout is None:
            raise ValueError("give n_trials or timeout (or both)")
        if self.n_trials is not None and (
            not isinstance(self.n_trials, numbers.Integral) or self.n_trials < 1
        ):
            raise ValueError(f"n_trials must be an int >= 1 or None, got {self.n_trials!r}")
        if not isinstance(self.refit, bool):
            raise ValueError(f"refit must be True or False, got {self.refit!r}")
        if isinstance(self.scoring, (dict, list, tuple, set)):
            raise ValueError("OptunaSearch optimises one score: give a single scoring")

    def _sampler(self, shared: bool):
        import optuna

        seed = self.random_state
        if seed is not None and not isinstance(seed, numbers.Integral):
            seed = int(check_random_state(seed).randint(2**31 - 1))
        if seed is not None and shared:
            seed = int(np.random.SeedSequence([int(seed), os.getpid()]).generate_state(1)[0])
        return optuna.samplers.TPESampler(seed=seed)

    def fit(self, X, y=None, *, groups=None, callbacks=None, **fit_params):
        """Run the search, then refit the best parameters on all of X, y.

        Parameters
        ----------
        X, y : training data, as the estimator takes them.
        groups : array-like or None
            Group labels for a group-aware ``cv``.
        callbacks : list of callables or None
            Optuna callbacks ``f(study, frozen_trial)``, called after each trial.
        **fit_params
            Passed to every ``fit``/``partial_fit`` of the estimator.
        """
        import optuna

        self._check()
        estimator = self.estimator
        space = merge_search_space(estimator, self.param_distributions)
        cv = check_cv(self.cv, y, classifier=is_classifier(estimator))
        splits = list(cv.split(X, y, groups))
        scorer = check_scoring(estimator, self.scoring)
        storage = make_storage(
            self.storage,
            heartbeat_interval=self.heartbeat_interval,
            grace_period=self.grace_period,
            max_retry=self.max_retry,
        )
        shared = not isinstance(storage, optuna.storages.InMemoryStorage)
        pruner = make_pruner(self.pruner)
        study = optuna.create_study(
            storage=storage,
            study_name=self.study_name,
            direction="maximize",
            sampler=self._sampler(shared),
            pruner=pruner,
            load_if_exists=True,
        )
        n_jobs = (os.cpu_count() or 1) if self.n_jobs == -1 else int(self.n_jobs)
        base_device = estimator.get_params(deep=False).get("device")
        n_cuda = _cuda_count() if n_jobs > 1 and base_device in ("auto", "cuda") else 0
        objective = _Objective(
            estimator,
            space,
            X,
            y,
            splits,
            scorer,
            fit_params,
            report_every_epoch=not isinstance(pruner, optuna.pruners.NopPruner),
            devices=DevicePool(trial_devices(base_device, n_jobs, n_cuda)),
        )
        finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
        remaining = None
        if self.n_trials is not None:
            remaining = self.n_trials - len(study.get_trials(deepcopy=False, states=finished))
        if remaining is None or remaining > 0:
            stop = [] if self.n_trials is None else [_max_trials(self.n_trials, finished)]
            study.optimize(
                objective,
                n_trials=remaining,
                timeout=self.timeout,
                n_jobs=n_jobs,
                callbacks=[*stop, *(callbacks or [])],
            )

        self.study_ = study
        self.search_space_ = space
        self.scorer_ = scorer
        self.multimetric_ = False
        self.n_splits_ = len(splits)
        self.cv_results_ = _cv_results(study.get_trials(deepcopy=False), self.n_splits_)
        numbers_ = self.cv_results_["trial_number"]
        if not any(s == "COMPLETE" for s in self.cv_results_["state"]):
            raise ValueError(f"no trial of study {study.study_name!r} completed")
        best = study.best_trial
        self.best_index_ = int(np.flatnonzero(numbers_ == best.number)[0])
        self.best_params_ = dict(best.params)
        self.best_score_ = float(best.value)
        if self.refit:
            t0 = time.perf_counter()
            best_est = clone(estimator).set_params(**self.best_params_)
            self.best_estimator_ = best_est.fit(X, y, **fit_params)
            self.refit_time_ = time.perf_counter() - t0
        return self

    # ------------------------------------------------------------------
    # pickling: a study in a shared database is kept as an in-memory snapshot
    # ------------------------------------------------------------------

    def __getstate__(self):
        state = dict(super().__getstate__())  # object.__getstate__ is not a copy
        if "study_" in state:
            state["study_"] = study_snapshot(state["study_"])
        return state

    def __setstate__(self, state):
        if "study_" in state:
            state = dict(state, study_=study_from_snapshot(state["study_"]))
        super().__setstate__(state)


def _max_trials(n_trials: int, states: tuple):
    from optuna.study import MaxTrialsCallback

    return MaxTrialsCallback(n_trials, states=states)


def _cv_results(trials: Sequence[Any], n_splits: int) -> dict[str, Any]:
    """scikit-learn's ``cv_results_`` from the finished (complete or pruned) trials."""
    from optuna.trial import TrialState

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
    names = sorted({k for t in trials for k in t.params})
    for name in names:
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
    from scipy.stats import rankdata

    results["rank_test_score"] = (
        rankdata(-order, method="min").astype(np.int32) if n else np.array([], dtype=np.int32)
    )
    results["trial_number"] = np.array([t.number for t in trials], dtype=int)
    results["state"] = np.array([t.state.name for t in trials], dtype=object)
    results["epochs_trained"] = np.array(
        [int(t.user_attrs.get("epochs_trained", 0)) for t in trials], dtype=int
    )
    return results
