"""``skft fit``: one fine-tune with fixed settings, a model folder and a short report."""

from __future__ import annotations

import ast
import difflib
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from .report import load_reporting_skips

__all__ = ["OPTION_PARAMS", "estimator_params", "parse_value", "run_fit"]

#: ``skft fit`` options that set an estimator parameter: option dest -> parameter
OPTION_PARAMS = {
    "epochs": "max_epochs",
    "lr": "lr",
    "batch_size": "batch_size",
    "image_size": "image_size",
    "frozen_depth": "frozen_depth",
    "pretrained": "pretrained",
}

_BOOLS = {"true": True, "false": False}


def parse_value(text: str) -> Any:
    """A ``--set`` value: a Python literal (``3e-4``, ``True``, ``None``, ``[1, 2]``),
    ``true`` or ``false`` in any case, else the text itself (``all``, ``cosine``, and
    ``none``, the augmenter that does nothing)."""
    if text.lower() in _BOOLS:
        return _BOOLS[text.lower()]
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def estimator_params(args, backbone: str, spec) -> dict[str, Any]:
    """The estimator's keyword arguments from the options and ``--set`` (``spec``:
    ``backbone``'s); a parameter given both ways, or a name neither estimator has, is a
    ValueError."""
    from ..estimators import FineTunedClassifier, FineTunedRegressor

    params: dict[str, Any] = {"backbone": backbone}
    for dest, name in OPTION_PARAMS.items():
        if getattr(args, dest) is not None:
            params[name] = getattr(args, dest)
    known = set(FineTunedClassifier().get_params()) | set(FineTunedRegressor().get_params())
    for name, value in args.set or []:
        if name in params:
            option = next((d for d, n in OPTION_PARAMS.items() if n == name), name)
            raise ValueError(
                f"--set {name}=...: {name} is given twice (use --{option.replace('_', '-')} "
                "or --set, not both)"
            )
        if "__" not in name and name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"--set {name}=...: not a parameter of the estimators{hint}")
        params[name] = parse_value(value)
    if "pretrained" not in params:
        params["pretrained"] = spec.has_pretrained  # backbones without weights start random
    params.setdefault("random_state", args.seed)
    params.setdefault("verbose", 0 if args.quiet else 1)
    return params


def _check(estimator) -> None:
    """The estimator's own parameter checks, before any data is read."""
    from ..params.checks import check_params

    estimator._validate_params()
    check_params(estimator)


def _is_regression(y: Any, task: str) -> bool:
    if task != "auto":
        return task == "regression"
    from sklearn.utils.multiclass import type_of_target

    try:
        values = np.asarray(y, dtype=float)
    except (TypeError, ValueError):
        return False  # labels that are not numbers: classes
    return type_of_target(values) in ("continuous", "continuous-multioutput")


def _describe(y: Any, regression: bool) -> str:
    if regression:
        values = np.asarray(y, dtype=float)
        return f"targets from {values.min():.4g} to {values.max():.4g}"
    counts = Counter(str(v) for v in np.asarray(y).tolist())
    shown = ", ".join(f"{c} {n}" for c, n in sorted(counts.items())[:10])
    more = f", ... ({len(counts) - 10} more)" if len(counts) > 10 else ""
    return f"{len(counts)} classes ({shown}{more})"


def _fmt(params: dict[str, Any]) -> str:
    return "{" + ", ".join(f"{k!r}: {_short(v)}" for k, v in params.items()) + "}"


def _short(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else repr(v)


def run_fit(args) -> int:
    """Run ``skft fit`` with parsed arguments (see ``skft fit --help``); 0 on success."""
    from ..data.text import is_text_source
    from ..estimators import FineTunedClassifier, FineTunedRegressor
    from ..plugins import get_backbone

    backbone = args.backbone or ("minilm" if is_text_source(args.data) else "efficientnet_lite0")
    spec = get_backbone(backbone)
    params = estimator_params(args, backbone, spec)
    Estimator = FineTunedRegressor if args.task == "regression" else FineTunedClassifier
    _check(Estimator(**params))  # bad values fail here, before the data is read

    X, y, _ = load_reporting_skips(
        args.data,
        None,
        True,
        args.limit,
        args.text_column,
        args.label_column,
        return_paths=True,  # images decoded by the estimator, at the size its plan picks
    )
    regression = _is_regression(y, args.task)
    if regression:
        y = np.asarray(y, dtype=float)
        Estimator = FineTunedRegressor
    elif len(np.unique(np.asarray(y).astype(str))) < 2:
        raise ValueError(f"{args.data}: need at least 2 classes, found 1")
    estimator = Estimator(**params)
    weights = "pretrained" if params["pretrained"] else "random init"
    print(
        f"data {args.data}: {len(y)} samples, {_describe(y, regression)}; "
        f"{Estimator.__name__}({spec.name!r}, {weights})",
        flush=True,
    )
    t0 = time.perf_counter()
    estimator.fit(X, y)
    fit_seconds = time.perf_counter() - t0
    train_score = float(estimator.score(X, y))
    metric = "R²" if regression else "accuracy"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    estimator.save(out / "model.skft")
    report = {
        "data": args.data,
        "n_samples": len(y),
        "classes": None if regression else [_plain(c) for c in estimator.classes_],
        "estimator": Estimator.__name__,
        "backbone": spec.name,
        "params": {k: v for k, v in params.items() if k != "verbose"},
        "resolved_params": estimator.resolved_params_,
        "epochs_trained": estimator.n_epochs_trained_,
        "fit_seconds": fit_seconds,
        "train_metric": metric,
        "train_score": train_score,
    }
    lines = [
        f"fitted in {fit_seconds:.1f} s ({estimator.n_epochs_trained_} epochs)",
        f"resolved_params_: {_fmt(estimator.resolved_params_)}",
        f"training {metric} {train_score:.4f} (on the data it was fitted on)",
    ]
    last = estimator.history_[-1] if len(estimator.history_) else {}
    held_out = {k: last[k] for k in ("valid_acc", "valid_loss", "valid_score") if k in last}
    if held_out:
        lines.append("held-out split, last epoch: " + _fmt(held_out))
    text = "\n".join(lines) + "\n"
    (out / "report.json").write_text(json.dumps(report, indent=2, default=str))
    (out / "report.txt").write_text(text)
    print(text, end="")
    print(f"wrote {out / 'model.skft'}, report.json, report.txt")
    return 0


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v
