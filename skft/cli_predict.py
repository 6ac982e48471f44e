"""``skft predict``: a saved model's predictions for a data set, as CSV."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from .cli_report import load_reporting_skips

__all__ = ["run_predict"]


def run_predict(args) -> int:
    """Run ``skft predict`` with parsed arguments (see ``skft predict --help``); 0 on success."""
    import joblib

    model = joblib.load(args.model)
    size = model.image_size or getattr(model.backbone_spec_, "default_image_size", None) or 224
    X, _, ids = load_reporting_skips(args.data, size, labelled=False, limit=args.limit)
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
