"""Early stopping the scikit-learn way: a validation split of the fit data, the best epoch kept.

``early_stopping=True`` holds out ``validation_fraction`` of the data given to
``fit`` (stratified for single-label classifiers, the same samples at every call for one
``random_state``), scores it after every epoch with ``scoring`` (default: the
estimator's own metric, accuracy or R²), stops once the score has not improved
by more than ``tol`` for ``n_iter_no_change`` epochs, and restores the weights of
the best epoch; ``max_epochs`` is then a cap. ``"auto"`` does so from
:data:`AUTO_MIN_SAMPLES` training samples on (a 10% split then holds 100 or
more). Inside a CV fold the split comes from the fold's training part only.

Every fit records ``n_epochs_trained_``; with early stopping also
``validation_scores_`` (one per epoch) and ``best_epoch_``.
"""

from __future__ import annotations

from typing import Any

from sklearn.base import is_classifier
from skorch.callbacks import Callback, EarlyStopping, EpochScoring
from skorch.dataset import ValidSplit

__all__ = ["AUTO_MIN_SAMPLES", "early_stopping_callbacks", "stopping_record", "validation_split"]

#: ``early_stopping="auto"`` turns early stopping on from this many training samples.
AUTO_MIN_SAMPLES = 1000
SCORE = "valid_score"


def active(net: Any) -> bool:
    """Whether ``net``'s current fit stops early (``"auto"``: by its number of samples)."""
    if net.early_stopping == "auto":
        return getattr(net, "n_samples_fit_", 0) >= AUTO_MIN_SAMPLES
    return bool(net.early_stopping)


def validation_split(net: Any) -> ValidSplit | None:
    """The split early stopping uses (``None``: none, or the user's own ``train_split``)."""
    if not active(net) or net.train_split is not None:
        return None
    seed = net.random_state if isinstance(net.random_state, int) else 0
    stratified = is_classifier(net) and not getattr(net, "multilabel_", False)  # 1-D labels only
    return ValidSplit(net.validation_fraction, stratified=stratified, random_state=seed)


def early_stopping_callbacks(net: Any) -> list[tuple[str, Callback]]:
    """The scoring and stopping callbacks (none when early stopping is off)."""
    if not active(net):
        return []
    default = "accuracy" if is_classifier(net) else "r2"
    scoring = EpochScoring(net.scoring or default, lower_is_better=False, name=SCORE)
    stop = EarlyStopping(
        monitor=SCORE,
        patience=net.n_iter_no_change,
        threshold=net.tol,
        threshold_mode="abs",
        lower_is_better=False,
        load_best=True,
    )
    return [("valid_score", scoring), ("early_stopping", stop)]


def stopping_record(net: Any) -> tuple[list[float | None], int] | None:
    """``(validation_scores, best_epoch)`` of ``net``'s fit, read from its history and
    its early-stopping callback; ``None`` when it did not stop early."""
    stop = dict(getattr(net, "callbacks_", None) or []).get("early_stopping")
    if stop is None or getattr(stop, "best_epoch_", None) is None:
        return None
    return [row.get(SCORE) for row in net.history], int(stop.best_epoch_)
