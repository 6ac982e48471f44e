"""``skft tune`` and ``skft predict``: data loading, progress, report and plots."""

from __future__ import annotations

import csv
import json
import re
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["load_data", "run_predict", "run_tune"]

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"}


# --------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------


def _read_images(paths: list[Path], image_size: int):
    """Readable images as a uint8 array (N, S, S, C); the unreadable ones listed."""
    from PIL import Image

    from .data import adapt_images

    images, kept, bad = [], [], []
    for path in paths:
        try:
            with Image.open(path) as img:
                img.load()
                images.append(img.convert("RGB") if img.mode not in ("L", "RGB") else img.copy())
            kept.append(path)
        except Exception as exc:  # noqa: BLE001 - any file PIL cannot read is reported
            bad.append(f"{path} ({type(exc).__name__}: {exc})")
    if bad:
        print(
            f"warning: skipped {len(bad)} unreadable file(s):\n  " + "\n  ".join(bad),
            file=sys.stderr,
            flush=True,
        )
    if not images:
        raise ValueError("no readable images found")
    X = adapt_images(images, image_size=image_size).permute(0, 2, 3, 1).numpy()
    return X, kept


def _image_files(folder: Path) -> tuple[list[Path], list[Path]]:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    others = [p for p in files if p.suffix.lower() not in IMAGE_SUFFIXES]
    return images, others


def load_data(
    data: str, image_size: int, labelled: bool = True, limit: int | None = None
) -> tuple[Any, np.ndarray | None, list[str]]:
    """``(X, y, ids)`` from ``"digits"``, an ``.npz`` (X, y) or an image folder.

    A folder for training holds one sub-folder per class. Files that are not
    images, or that PIL cannot read, are skipped with a warning listing them.
    """
    if data == "digits":
        from sklearn.datasets import load_digits

        X, y = load_digits(return_X_y=True)
        X = (X.reshape(-1, 8, 8) / 16).astype(np.float32)
        if limit:
            X, y = X[:limit], y[:limit]
        return X, y, [str(i) for i in range(len(X))]
    path = Path(data)
    if path.suffix == ".npz" and path.is_file():
        with np.load(path, allow_pickle=False) as npz:
            if "X" not in npz:
                raise ValueError(f"{path}: an .npz needs an array 'X' (and 'y'); found {npz.files}")
            X = npz["X"]
            y = npz["y"] if "y" in npz.files else None
        if labelled and y is None:
            raise ValueError(f"{path}: no array 'y' for training")
        if limit:
            X, y = X[:limit], None if y is None else y[:limit]
        return X, y, [str(i) for i in range(len(X))]
    if not path.is_dir():
        raise FileNotFoundError(f"--data {data!r}: not 'digits', an .npz file or a folder")
    files, others = _image_files(path)
    if others:
        shown = ", ".join(str(p) for p in others[:20]) + (" ..." if len(others) > 20 else "")
        print(
            f"warning: skipped {len(others)} non-image file(s): {shown}",
            file=sys.stderr,
            flush=True,
        )
    if labelled:
        files = [p for p in files if p.parent != path]  # class sub-folders only
        if len({p.relative_to(path).parts[0] for p in files}) < 2:
            raise ValueError(f"{path}: need one sub-folder per class (at least 2) with images")
    if limit and limit < len(files):  # evenly spaced, so every class keeps some
        files = [files[i] for i in np.linspace(0, len(files) - 1, limit).round().astype(int)]
    X, kept = _read_images(files, image_size)
    y = np.array([p.relative_to(path).parts[0] for p in kept]) if labelled else None
    return X, y, [str(p.relative_to(path)) for p in kept]


# --------------------------------------------------------------------------
# tune
# --------------------------------------------------------------------------


def _redact(url: Any) -> Any:
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url) if isinstance(url, str) else url


class Progress:
    """One line per finished trial."""

    def __init__(self, total: int | None) -> None:
        self.total, self.t0 = total, time.perf_counter()

    def __call__(self, study, trial) -> None:
        try:
            best = f"{study.best_value:.4f}"
        except ValueError:
            best = "-"
        value = "-" if trial.value is None else f"{trial.value:.4f}"
        epochs = trial.user_attrs.get("epochs_trained", "?")
        dur = trial.duration.total_seconds() if trial.duration else 0.0
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in trial.params.items())
        of = f"/{self.total}" if self.total else ""
        print(
            f"trial {trial.number + 1:>3}{of}  {trial.state.name:<8} score {value}  best {best}  "
            f"epochs {epochs}  {dur:6.1f} s  {params}",
            flush=True,
        )


def _fmt(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _trial_rows(study) -> list[dict[str, Any]]:
    return [
        {
            "number": t.number,
            "state": t.state.name,
            "value": t.value,
            "params": t.params,
            "epochs_trained": t.user_attrs.get("epochs_trained"),
            "split_test_scores": t.user_attrs.get("split_test_scores"),
            "duration_s": t.duration.total_seconds() if t.duration else None,
        }
        for t in study.get_trials(deepcopy=False)
    ]


def _plots(study, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # optuna marks its matplotlib module experimental
        for name, plot in (
            ("history", ovm.plot_optimization_history),
            ("importances", ovm.plot_param_importances),
        ):
            try:
                ax = plot(study)
                fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
            except Exception as exc:  # noqa: BLE001 - e.g. too few complete trials
                fig, ax = plt.subplots(figsize=(6, 2))
                ax.axis("off")
                ax.text(0.5, 0.5, f"{name}: not available\n({exc})", ha="center", wrap=True)
            fig.set_size_inches(8, 5)
            fig.tight_layout()
            fig.savefig(out / f"{name}.png", dpi=100)
            plt.close(fig)


def run_tune(args) -> int:
    import joblib
    import optuna

    from .estimators import FineTunedClassifier
    from .plugins import get_backbone
    from .search import OptunaSearch
    from .search_storage import make_storage

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    spec = get_backbone(args.backbone)
    pretrained = spec.has_pretrained if args.pretrained is None else args.pretrained
    X, y, _ = load_data(args.data, args.image_size, labelled=True, limit=args.limit)
    classes = np.unique(y)
    print(
        f"data {args.data}: {len(y)} samples, {len(classes)} classes; backbone {spec.name} "
        f"({'pretrained' if pretrained else 'random init'}), {args.image_size}px, "
        f"{args.epochs} epochs, {args.cv}-fold CV, {args.trials} trials, pruner {args.pruner}",
        flush=True,
    )
    clf = FineTunedClassifier(
        spec.name,
        pretrained=pretrained,
        image_size=args.image_size,
        max_epochs=args.epochs,
        batch_size=args.batch_size,
        verbose=0,
        random_state=args.seed,
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
    joblib.dump(search.best_estimator_, out / "model.joblib")
    rows = _trial_rows(study)
    report = {
        "data": args.data,
        "backbone": spec.name,
        "pretrained": pretrained,
        "image_size": args.image_size,
        "epochs": args.epochs,
        "cv": args.cv,
        "scoring": "accuracy",
        "storage": _redact(args.storage) or "in-memory",
        "study_name": study.study_name,
        "best_params": search.best_params_,
        "best_score": search.best_score_,
        "best_trial": int(search.cv_results_["trial_number"][search.best_index_]),
        "n_complete": sum(r["state"] == "COMPLETE" for r in rows),
        "n_pruned": sum(r["state"] == "PRUNED" for r in rows),
        "n_failed": sum(r["state"] == "FAIL" for r in rows),
        "wall_seconds": wall,
        "trials": rows,
    }
    (out / "report.json").write_text(json.dumps(report, indent=2, default=str))
    lines = [
        f"study {study.study_name} ({report['storage']}): {report['n_complete']} complete, "
        f"{report['n_pruned']} pruned, {report['n_failed']} failed, {wall:.1f} s",
        f"best CV accuracy {search.best_score_:.4f} (trial {report['best_trial']}): "
        + ", ".join(f"{k}={_fmt(v)}" for k, v in search.best_params_.items()),
        "",
        f"{'trial':>5}  {'state':<8}  {'score':>7}  {'epochs':>6}  params",
    ]
    for r in rows:
        score = "-" if r["value"] is None else f"{r['value']:.4f}"
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in r["params"].items())
        lines.append(
            f"{r['number']:>5}  {r['state']:<8}  {score:>7}  {r['epochs_trained'] or '-':>6}  "
            f"{params}"
        )
    text = "\n".join(lines) + "\n"
    (out / "report.txt").write_text(text)
    _plots(study, out)
    print(text, end="")
    print(f"wrote {out / 'model.joblib'}, report.json, report.txt, history.png, importances.png")
    return 0


# --------------------------------------------------------------------------
# predict
# --------------------------------------------------------------------------


def run_predict(args) -> int:
    import joblib

    model = joblib.load(args.model)
    size = model.image_size or getattr(model.backbone_spec_, "default_image_size", None) or 224
    X, _, ids = load_data(args.data, size, labelled=False, limit=args.limit)
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


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v
