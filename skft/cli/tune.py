"""``skft tune``: an Optuna search, the refitted model, a report, plots."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .report import (
    Progress,
    load_reporting_skips,
    redact,
    trial_rows,
    write_plots,
    write_report,
)

__all__ = ["SCORING", "run_tune"]

#: what ``skft tune`` optimises (the classifier's ``score``), as report.json and the plots name it
SCORING = "accuracy"


def run_tune(args) -> int:
    """Run ``skft tune`` with parsed arguments (see ``skft tune --help``); 0 on success."""
    import optuna

    from ..data.text import is_text_source
    from ..estimators import FineTunedClassifier
    from ..params.defaults import effective
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
