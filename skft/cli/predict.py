"""``skft predict``: a saved model on new data, to CSV, scored when the data has labels."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .report import load_reporting_skips
from .scores import format_scores, plot_confusion, scores_for

__all__ = [
    "LabelledData",
    "is_multilabel_model",
    "load_model",
    "load_with_labels",
    "run_predict",
]


@dataclass(frozen=True)
class LabelledData:
    """Samples to predict, their ids, and their true labels when the data has them."""

    X: Any
    ids: list[str]
    #: ``None`` when the data has no labels; ``why_unlabelled`` then says why
    y: Any = None
    why_unlabelled: str = ""


def load_model(
    path: str | Path,
    trust_pickle: bool = False,
    trusted: Sequence[str] = (),
    command: str = "predict",
) -> Any:
    """A model folder (or a run folder holding ``model.skft``), or a trusted pickle.

    ``command`` names the ``skft`` command that refuses an untrusted pickle.
    """
    from ..io.loader import load

    path = Path(path)
    if path.is_dir() and not (path / "config.json").exists() and (path / "model.skft").is_dir():
        path = path / "model.skft"  # the folder skft fit or skft tune wrote
    if path.is_dir() or not path.exists():
        return load(path, trusted=list(trusted))
    if not trust_pickle:
        raise ValueError(
            f"{path} is a file, not a model.skft folder: if it is a pickle (.joblib/.pkl), "
            f"loading it can run any code it holds, so skft {command} refuses it. Pass "
            "--trust-pickle if you made the file or trust its source, or re-save the model "
            "with model.save('model.skft')"
        )
    import joblib

    return joblib.load(path)


def load_with_labels(
    model: Any,
    source: str,
    limit: int | None = None,
    text_column: str = "text",
    label_column: str = "label",
) -> LabelledData:
    """``source`` for ``model``: an image folder as paths (the model decodes them at its
    own size), texts, or arrays; labels from an ``.npz``'s ``y``, a table's label column,
    or class sub-folders named as the model's classes."""
    from ..data.text import is_table, table_columns

    labelled_table = is_table(source) and label_column in table_columns(source)
    X, y, ids = load_reporting_skips(
        source,
        None,
        labelled_table,
        limit,
        text_column,
        label_column,
        return_paths=True,
    )
    if is_multilabel_model(model):
        if y is not None and np.ndim(y) == 2:
            return LabelledData(X, ids, np.asarray(y))
        return LabelledData(
            X,
            ids,
            None,
            "a multi-label model is scored against a 2-D 0/1 array 'y' (an .npz), one "
            "column per label",
        )
    if y is not None:
        if not hasattr(model, "classes_"):
            try:
                y = np.asarray(y, dtype=float)
            except ValueError:
                return LabelledData(X, ids, None, "the labels are not numbers (regression)")
        return LabelledData(X, ids, y)
    if is_table(source):
        return LabelledData(X, ids, None, f"no column {label_column!r} (--label-column)")
    if not Path(source).is_dir():
        return LabelledData(X, ids, None, "no array 'y'")
    return _labels_from_folders(model, X, ids)


def _labels_from_folders(model: Any, X: Any, ids: list[str]) -> LabelledData:
    """Labels from class sub-folders, when every sample is in one named as a model class."""
    if not hasattr(model, "classes_"):
        return LabelledData(X, ids, None, "a regressor's targets cannot come from folders")
    loose = [i for i in ids if "/" not in i]
    if loose:
        return LabelledData(X, ids, None, f"{loose[0]} is not in a class sub-folder")
    by_name = {str(c): c for c in model.classes_}
    folders = [i.split("/", 1)[0] for i in ids]
    unknown = sorted(set(folders) - set(by_name))
    if unknown:
        return LabelledData(
            X,
            ids,
            None,
            f"sub-folder(s) {', '.join(unknown[:5])} are not classes of the model "
            f"({', '.join(by_name)})",
        )
    return LabelledData(X, ids, np.asarray([by_name[f] for f in folders], dtype=object))


def run_predict(args) -> int:
    """Run ``skft predict`` with parsed arguments (see ``skft predict --help``); 0 on success."""
    model = load_model(args.model, args.trust_pickle, args.trust or [])
    data = load_with_labels(model, args.data, args.limit, args.text_column, args.label_column)
    print(f"predicting {len(data.ids)} samples of {args.data}", flush=True)
    classes = list(getattr(model, "classes_", []))
    if hasattr(model, "predict_proba") and classes:  # one pass over the data, not two
        proba = model.predict_proba(data.X)
        decide = getattr(model, "labels_from_proba", None)
        pred = decide(proba) if decide else np.asarray(model.classes_)[proba.argmax(axis=1)]
    else:
        proba, pred = None, model.predict(data.X)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as fh:
        writer = csv.writer(fh)
        header = ["id", "prediction"]
        if proba is not None:
            header += [f"proba_{c}" for c in classes]
        writer.writerow(header)
        for i, sample in enumerate(data.ids):
            row = [sample, _label_cell(pred[i])]
            if proba is not None:
                row += [f"{p:.6f}" for p in proba[i]]
            writer.writerow(row)
    print(f"wrote {len(data.ids)} predictions to {out}")
    if data.y is None:
        print(f"not scored: {data.why_unlabelled}")
        return 0
    scores = scores_for(model, data.y, pred)
    print(format_scores(scores), end="")
    if scores["task"] == "classification":  # multi-label: no confusion matrix
        plot = Path(args.plot) if args.plot else out.with_name(f"{out.stem}_confusion.png")
        plot_confusion(scores, plot, f"{args.model} on {args.data}")
        print(f"wrote {plot}")
    return 0


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _label_cell(pred: Any) -> Any:
    """A prediction as a CSV cell; multi-label: the predicted label indices joined by ';'."""
    if isinstance(pred, np.ndarray) and pred.ndim == 1:
        return ";".join(str(i) for i in np.flatnonzero(pred))
    return _plain(pred)


def is_multilabel_model(model: Any) -> bool:
    """Whether ``model`` (an estimator or a :class:`skft.Compressed`) predicts label sets."""
    return bool(getattr(getattr(model, "estimator_", model), "multilabel_", False))
