"""How good predictions are, for ``skft predict`` and ``skft evaluate``: scores, text, plot.

Classification: accuracy, macro F1, recall per class and the confusion matrix (rows: the
true class, columns: the predicted one). Multi-label: subset accuracy, F1 and Jaccard
averaged over samples, macro F1 and F1 per label. Regression: MSE, MAE and R².
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "classification_scores",
    "format_scores",
    "multilabel_scores",
    "plot_confusion",
    "regression_scores",
    "scores_for",
]

#: Confusion matrices with more classes than this are plotted, not printed.
PRINTED_CLASSES = 20


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def classification_scores(y_true: Any, y_pred: Any, classes: Any = ()) -> dict[str, Any]:
    """Accuracy, macro F1, recall and support per class, and the confusion matrix.

    The matrix's labels are ``classes`` (the model's, in its order) followed by any
    true label the model does not know.
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    labels = [_plain(c) for c in classes]
    labels += [_plain(c) for c in dict.fromkeys(y_true.tolist()) if _plain(c) not in labels]
    matrix = confusion_matrix(y_true, y_pred, labels=labels)
    support = matrix.sum(axis=1)
    recall = [
        float(matrix[i, i] / n) if n else None for i, n in enumerate(support)
    ]  # None: no sample of that class
    return {
        "task": "classification",
        "n": len(y_true),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "labels": labels,
        "recall": recall,
        "support": support.tolist(),
        "confusion_matrix": matrix.tolist(),
    }


def multilabel_scores(y_true: Any, y_pred: Any) -> dict[str, Any]:
    """Subset accuracy, F1 and Jaccard over samples, macro F1, and F1 and support per label."""
    from sklearn.metrics import accuracy_score, f1_score, jaccard_score

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.ndim != 2 or y_true.shape != y_pred.shape or not np.isin(y_true, (0, 1)).all():
        raise ValueError(
            f"a multi-label model predicts {y_pred.shape[1:]} label columns; the true labels "
            f"must be a 0/1 array of shape {y_pred.shape}, got {y_true.shape}"
        )
    y_true = y_true.astype(int)
    return {
        "task": "multilabel",
        "n": len(y_true),
        "subset_accuracy": float(accuracy_score(y_true, y_pred)),
        "f1_samples": float(f1_score(y_true, y_pred, average="samples", zero_division=0)),
        "jaccard_samples": float(jaccard_score(y_true, y_pred, average="samples", zero_division=0)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "f1_per_label": f1_score(y_true, y_pred, average=None, zero_division=0).tolist(),
        "support": y_true.sum(axis=0).tolist(),
    }


def regression_scores(y_true: Any, y_pred: Any) -> dict[str, Any]:
    """Mean squared error, mean absolute error and R² (averaged over outputs)."""
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float).reshape(y_true.shape)
    return {
        "task": "regression",
        "n": len(y_true),
        "mse": float(mean_squared_error(y_true, y_pred)),
        "mae": float(mean_absolute_error(y_true, y_pred)),
        "r2": float(r2_score(y_true, y_pred)) if len(y_true) > 1 else None,
    }


def scores_for(model: Any, y_true: Any, y_pred: Any) -> dict[str, Any]:
    """:func:`classification_scores` for a classifier (:func:`multilabel_scores` for a
    multi-label one), else :func:`regression_scores`."""
    if getattr(getattr(model, "estimator_", model), "multilabel_", False):
        return multilabel_scores(y_true, y_pred)
    if hasattr(model, "classes_"):
        return classification_scores(y_true, y_pred, model.classes_)
    return regression_scores(y_true, y_pred)


def format_scores(scores: dict[str, Any]) -> str:
    """The scores as a few lines of text (the confusion matrix for up to 20 classes)."""
    if scores["task"] == "regression":
        r2 = "-" if scores["r2"] is None else f"{scores['r2']:.4f}"
        return f"MSE {scores['mse']:.4g}  MAE {scores['mae']:.4g}  R² {r2}\n"
    if scores["task"] == "multilabel":
        pairs = enumerate(zip(scores["f1_per_label"], scores["support"]))
        per_label = ", ".join(f"{i} {f:.3f} ({n})" for i, (f, n) in pairs)
        return (
            f"subset accuracy {scores['subset_accuracy']:.4f}  F1 (samples) "
            f"{scores['f1_samples']:.4f}  Jaccard (samples) {scores['jaccard_samples']:.4f}  "
            f"macro F1 {scores['macro_f1']:.4f}\nF1 per label (positives): {per_label}\n"
        )
    lines = [f"accuracy {scores['accuracy']:.4f}  macro F1 {scores['macro_f1']:.4f}"]
    names = [str(c) for c in scores["labels"]]
    recall = [
        f"{name} {'-' if r is None else f'{r:.3f}'} ({n})"
        for name, r, n in zip(names, scores["recall"], scores["support"])
    ]
    lines.append("recall per class (samples): " + ", ".join(recall))
    matrix = scores["confusion_matrix"]
    if len(names) > PRINTED_CLASSES:
        lines.append(f"confusion matrix: {len(names)} classes, too many to print (see the plot)")
        return "\n".join(lines) + "\n"
    width = max([len(n) for n in names] + [len(str(v)) for row in matrix for v in row])
    lines.append("confusion matrix (rows: true class, columns: predicted):")
    lines.append(" " * (width + 2) + "".join(f"  {n:>{width}}" for n in names))
    for name, row in zip(names, matrix):
        lines.append(f"  {name:>{width}}" + "".join(f"  {v:>{width}}" for v in row))
    return "\n".join(lines) + "\n"


def plot_confusion(scores: dict[str, Any], path: str | Path, title: str) -> Path:
    """The confusion matrix of classification ``scores`` as a PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    names = [str(c) for c in scores["labels"]]
    side = min(4 + 0.5 * len(names), 20)
    fig, ax = plt.subplots(figsize=(side, side))
    ConfusionMatrixDisplay(np.asarray(scores["confusion_matrix"]), display_labels=names).plot(
        ax=ax,
        cmap="Blues",
        colorbar=False,
        xticks_rotation=45 if len(names) > 4 else "horizontal",
        include_values=len(names) <= 30,
    )
    ax.set_title(
        f"{title}\naccuracy {scores['accuracy']:.3f}, macro F1 {scores['macro_f1']:.3f}, "
        f"{scores['n']} samples"
    )
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
