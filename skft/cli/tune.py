"""``skft tune`` (an Optuna search, the refitted model, a report, plots) and ``skft predict``."""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any

import numpy as np

from .report import (
    Progress,
    load_reporting_skips,
    redact,
    trial_rows,
    write_plots,
    write_report,
)

__all__ = ["SCORING", "run_predict", "run_tune"]

#: what ``skft tune`` optimises (the classifier's ``score``), as report.json and the plots name it
SCORING = "accuracy"


def run_tune(args) -> int:
    """Run ``skft tune`` with parsed arguments (see ``skft tune --help``); 0 on success."""
    import optuna

    from ..data.text import is_text_source
    from ..defaults import effective
    from ..estimators import FineTunedClassifier
    from ..plugins import get_backbone
    from ..search.optuna_search import OptunaSearch
    from ..search.storage import make_storage

    out = Path(args.out)
    backbone = args.backbone or ("minilm" if is_text_source(args.data) else "efficientnet_lite0")
    spec = get_backbone(backbone)
    pretrained = spec.has_pretrained if args.pretrained is None else args.pretrained
    X, y, _ = load_reporting_skips(
        args.data, args.image_size, True, args.limit, args.text_column, args.label_column
    )
    classes = np.unique(y)
    if len(classes) < 2:
        raise ValueError(f"--data {args.data}: need at least 2 classes, found {len(classes)}")
    out.mkdir(parents=True, exist_ok=True)
    clf = FineTunedClassifier(
        backbone,
        pretrained=pretrained,
        image_size=args.image_size,
        max_epochs=args.epochs,
        batch_size=args.batch_size,
        verbose=0,
        random_state=args.seed,
    )
    epochs = effective(clf, "max_epochs")
    size = f"{args.image_size}px" if spec.input_kind == "image" else spec.input_kind
    print(
        f"data {args.data}: {len(y)} samples, {len(classes)} classes; backbone {spec.name} "
        f"({'pretrained' if pretrained else 'random init'}), {size}, "
        f"{epochs} epochs, {args.cv}-fold CV, {args.trials} trials, pruner {args.pruner}",
        flush=True,
    )
    storage = args.storage
    if storage is not None and "://" in storage and not storage.startswith("journal://"):
        storage = make_storage(storage, heartbeat_interval=args.heartbeat)
    search = OptunaSearch(
        clf,
        n_trials=args.trials,
        cv=args.cv,
        storage=storage,
        study_name=args.study_name,
        pruner=args.pruner,
        timeout=args.timeout,
        n_jobs=args.jobs,
        random_state=args.seed,
    )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    t0 = time.perf_counter()
    search.fit(X, y, callbacks=[Progress(args.trials)])
    wall = time.perf_counter() - t0
    study = search.study_
    search.best_estimator_.save(out / "model.skft")
    rows = trial_rows(study)
    report = {
        "data": args.data,
        "backbone": spec.name,
        "pretrained": pretrained,
        "image_size": args.image_size,
        "epochs": epochs,
        "cv": args.cv,
        "scoring": SCORING,
        "storage": redact(args.storage) or "in-memory",
        "study_name": study.study_name,
        "best_params": search.best_params_,
        "best_score": search.best_score_,
        "best_trial": int(search.cv_results_["trial_number"][search.best_index_]) + 1,
        "n_complete": sum(r["state"] == "COMPLETE" for r in rows),
        "n_pruned": sum(r["state"] == "PRUNED" for r in rows),
        "n_failed": sum(r["state"] == "FAIL" for r in rows),
        "wall_seconds": wall,
        "trials": rows,
    }
    text = write_report(out, report)
    write_plots(study, out, f"CV {SCORING}")
    print(text, end="")
    print(f"wrote {out / 'model.skft'}, report.json, report.txt, history.png, importances.png")
    return 0


def run_predict(args) -> int:
    """Run ``skft predict`` with parsed arguments (see ``skft predict --help``); 0 on success."""
    model = _load_model(Path(args.model), args.trust_pickle, getattr(args, "trust", None) or [])
    X, _, ids = load_reporting_skips(
        args.data, _image_size(model), False, args.limit, args.text_column
    )
    pred = model.predict(X)
    proba = model.predict_proba(X) if hasattr(model, "predict_proba") else None
    classes = list(getattr(model, "classes_", []))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as fh:
        writer = csv.writer(fh)
        header = ["id", "prediction"]
        if proba is not None:
            header += [f"proba_{c}" for c in classes]
        writer.writerow(header)
        for i, sample in enumerate(ids):
            row = [sample, _plain(pred[i])]
            if proba is not None:
                row += [f"{p:.6f}" for p in proba[i]]
            writer.writerow(row)
    print(f"wrote {len(ids)} predictions to {out}")
    return 0


def _image_size(model: Any) -> int | None:
    """The side a model's images are resized to: the size it was fitted at (None: no images).

    A ``Compressed`` predicts with its estimator's input; an estimator's fit plan may have
    chosen the size (``image_size=None``), so the fitted input shape decides, not the parameter.
    """
    inner = getattr(model, "estimator_", model)
    kind = getattr(inner, "input_kind_", None)
    if kind is None:  # a deploy folder's model
        return getattr(inner, "image_size", None)
    return int(inner.input_shape_[-1]) if kind.name == "image" else None


def _load_model(path: Path, trust_pickle: bool, trusted: list[str]) -> Any:
    from ..io.loader import load

    if path.is_dir() or not path.exists():
        return load(path, trusted=trusted)
    if not trust_pickle:
        raise ValueError(
            f"{path} is a file, not a model.skft folder: if it is a pickle (.joblib/.pkl), "
            "loading it can run any code it holds, so skft predict refuses it. Pass "
            "--trust-pickle if you made the file or trust its source, or re-save the model "
            "with model.save('model.skft')"
        )
    import joblib

    return joblib.load(path)


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v
