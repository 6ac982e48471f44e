"""``OptunaSearch``: Optuna hyperparameter search with CV-aware pruning and shared storages.

The trial objective (CV folds trained in lockstep) lives in
:mod:`skft.search.objective`, ``cv_results_`` in :mod:`skft.search.results`,
the default space in :mod:`skft.search.space`, storages and pruners in
:mod:`skft.search.storage`, devices for parallel trials in :mod:`skft.training.device`.
"""

from __future__ import annotations

import numbers
import os
import time

import numpy as np
from sklearn.base import clone, is_classifier
from sklearn.metrics import check_scoring
from sklearn.model_selection import check_cv
from sklearn.model_selection._search import BaseSearchCV
from sklearn.utils import check_random_state

from ..training import device
from .objective import CVObjective
from .results import cv_results
from .space import merge_search_space
from .storage import make_pruner, make_storage, study_from_snapshot, study_snapshot

__all__ = ["OptunaSearch"]


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
        (see :func:`skft.search.storage.make_storage`).
    study_name : str or None
        Workers started with the same ``study_name`` and ``storage`` share
        the study (it is created by the first, loaded by the others).
    pruner : "median", "none", None or an optuna pruner
        "median": ``MedianPruner(n_startup_trials=5, n_warmup_steps=1)``.
        Pruning needs per-epoch scores: it applies to estimators whose
        ``partial_fit`` trains one epoch (``partial_fit_is_one_epoch = True``,
        as skft's), whose folds train in lockstep; others get plain
        cross-validation. With no pruner, folds are scored only after their
        last epoch.
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
        n_cuda = device.cuda_count() if n_jobs > 1 and base_device in ("auto", "cuda") else 0
        objective = CVObjective(
            estimator,
            space,
            X,
            y,
            splits,
            scorer,
            fit_params,
            report_every_epoch=not isinstance(pruner, optuna.pruners.NopPruner),
            devices=device.DevicePool(device.trial_devices(base_device, n_jobs, n_cuda)),
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
        # one snapshot of the trials for the results and the best: with shared storage
        # another worker may finish a better trial between two reads of the study
        trials = study.get_trials(deepcopy=False)
        self.cv_results_ = cv_results(trials, self.n_splits_)
        numbers_ = self.cv_results_["trial_number"]
        best = _best_trial(trials)
        if best is None:
            raise ValueError(f"no trial of study {study.study_name!r} completed")
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

    def save(self, path):
        """The refitted best model and the results, safely (:func:`skft.io.persist.save_search`)."""
        from ..io.persist import save_search

        return save_search(self, path)

    def __getstate__(self):
        state = dict(super().__getstate__())  # object.__getstate__ is not a copy
        if "study_" in state:
            state["study_"] = study_snapshot(state["study_"])
        return state

    def __setstate__(self, state):
        if "study_" in state:
            state = dict(state, study_=study_from_snapshot(state["study_"]))
        super().__setstate__(state)


def _best_trial(trials):
    """The complete trial with the highest value, the earliest among equals (as Optuna's)."""
    from optuna.trial import TrialState

    done = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    if not done:
        return None
    return min(done, key=lambda t: (-t.value, t.number))


def _max_trials(n_trials: int, states: tuple):
    from optuna.study import MaxTrialsCallback

    return MaxTrialsCallback(n_trials, states=states)
