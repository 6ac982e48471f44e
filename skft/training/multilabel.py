"""Multi-label targets: the indicator-matrix checks, the sigmoid criterion and its weights.

A classifier fitted on a 2-D 0/1 indicator matrix ``y`` of shape ``(n_samples,
n_labels)`` (what :class:`sklearn.preprocessing.MultiLabelBinarizer` gives) trains
one network with ``n_labels`` outputs and a binary cross-entropy on each
(:class:`MultiLabelLoss`, a :class:`torch.nn.BCEWithLogitsLoss`); its probabilities
are the sigmoids of the outputs, one per label, and a label is predicted where its
probability exceeds the estimator's ``threshold``. scikit-learn's own estimators
(``MLPClassifier``, ``OneVsRestClassifier``) follow the same conventions:
``classes_`` is ``[0, 1, ..., n_labels - 1]`` and ``predict`` returns the matrix.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = [
    "MultiLabelLoss",
    "balanced_label_weights",
    "check_indicator",
    "criterion_weights",
    "is_multilabel",
]


def is_multilabel(y: Any) -> bool:
    """Whether ``y`` is meant as multi-label targets: 2-D with more than one column.

    A column vector ``(n, 1)`` stays a 1-D label vector, as in scikit-learn.
    """
    shape = getattr(y, "shape", None)
    if shape is None:
        try:
            shape = np.asarray(y).shape  # not np.shape: array-likes may refuse array functions
        except (ValueError, TypeError):  # ragged lists: the label checks say what is wrong
            return False
    return len(shape) == 2 and shape[1] > 1


def check_indicator(y: Any, *, fitting: bool = True) -> np.ndarray:
    """``y`` as an ``(n_samples, n_labels)`` float32 0/1 matrix, or a ValueError naming the problem.

    Refused: values other than 0 and 1 (a multi-output multiclass or continuous
    target), missing values, and, when ``fitting``, a label column that is the same
    for every sample (all 0 or all 1: nothing to learn, and a constant column is
    most often a mistake in how the matrix was built or split).
    """
    from scipy import sparse
    from sklearn.utils.multiclass import type_of_target

    if sparse.issparse(y):
        y = y.toarray()  # MultiLabelBinarizer(sparse_output=True)
    Y = np.asarray(y)
    if Y.dtype.kind not in "biuf":
        raise ValueError(
            f"multi-label y must be a 0/1 indicator matrix of numbers (shape (n_samples, "
            f"n_labels), as sklearn.preprocessing.MultiLabelBinarizer makes); got dtype "
            f"{Y.dtype} of shape {Y.shape}"
        )
    if Y.dtype.kind == "f" and not np.isfinite(Y).all():
        bad = np.argwhere(~np.isfinite(Y))[0]
        raise ValueError(
            f"multi-label y has NaN or infinite entries (first at row {bad[0]}, column "
            f"{bad[1]}); fill them with 0 or 1 before fit"
        )
    kind = type_of_target(Y)  # says "multilabel-indicator" for any two integer values
    if kind != "multilabel-indicator" or not np.isin(Y, (0, 1)).all():
        values = np.unique(Y)
        shown = ", ".join(f"{v:g}" for v in values[:6]) + (", ..." if len(values) > 6 else "")
        why = "" if kind == "multilabel-indicator" else f" (sklearn's type_of_target: {kind!r})"
        raise ValueError(
            f"y of shape {Y.shape} is not a 0/1 indicator matrix: its values are {shown}"
            f"{why}. Multi-label y must hold only 0 and 1, "
            "one column per label (sklearn.preprocessing.MultiLabelBinarizer makes one); "
            "skft does not fit multi-output multiclass or continuous targets with a classifier"
        )
    if fitting:
        positives = Y.sum(axis=0)
        never = np.flatnonzero(positives == 0).tolist()
        always = np.flatnonzero(positives == len(Y)).tolist()
        if never or always:
            parts = []
            if never:
                parts.append(f"column(s) {never} are 0")
            if always:
                parts.append(f"column(s) {always} are 1")
            raise ValueError(
                f"multi-label y: label {' and '.join(parts)} in all {len(Y)} training "
                "samples; a label that never varies cannot be learnt. Drop the column, or "
                "split so that every label has positive and negative training samples"
            )
    return Y.astype(np.float32)


def balanced_label_weights(Y: np.ndarray) -> np.ndarray:
    """``class_weight="balanced"`` for each label column, as a binary problem.

    scikit-learn's balanced weights of a binary problem: ``n / (2 n_0)`` for the
    negatives and ``n / (2 n_1)`` for the positives. Returns an ``(n_labels, 2)``
    array, each row (negatives' weight, positives' weight); see
    :func:`criterion_weights` for the loss's arguments.
    """
    n = len(Y)
    n_pos = Y.sum(axis=0).astype(np.float64)
    return np.stack([n / (2 * (n - n_pos)), n / (2 * n_pos)], axis=1)


def criterion_weights(weights: np.ndarray) -> dict[str, torch.Tensor]:
    """``(n_labels, 2)`` class weights as ``BCEWithLogitsLoss``'s ``weight`` and ``pos_weight``.

    The loss of a label is ``weight * (pos_weight * y * -log p + (1 - y) * -log(1 - p))``:
    ``weight`` is the negatives' weight and ``pos_weight`` the positives' relative to it.
    """
    w = torch.as_tensor(weights, dtype=torch.float32)
    return {"weight": w[:, 0], "pos_weight": w[:, 1] / w[:, 0]}


class MultiLabelLoss(nn.BCEWithLogitsLoss):
    """Binary cross-entropy on each label's logit, with optional label smoothing.

    ``label_smoothing`` ``s`` moves the 0/1 targets to ``s/2`` and ``1 - s/2`` (each
    label is a two-class problem smoothed towards the uniform distribution, the
    meaning ``torch.nn.CrossEntropyLoss`` gives it). Targets mixed by mixup or cutmix
    (floats in [0, 1]) are taken as they are.
    """

    def __init__(self, *args: Any, label_smoothing: float = 0.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.label_smoothing = float(label_smoothing)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        target = target.to(input.dtype)
        if self.label_smoothing:
            target = target * (1.0 - self.label_smoothing) + 0.5 * self.label_smoothing
        return super().forward(input, target)
