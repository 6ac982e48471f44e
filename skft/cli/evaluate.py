"""``skft evaluate``: how good a saved model is on labelled data."""

from __future__ import annotations

import json
from pathlib import Path

from .predict import load_model, load_with_labels
from .scores import format_scores, plot_confusion, scores_for

__all__ = ["run_evaluate"]


def run_evaluate(args) -> int:
    """Run ``skft evaluate`` with parsed arguments (see ``skft evaluate --help``); 0 on success."""
    model = load_model(args.model, args.trust_pickle, args.trust or [], "evaluate")
    data = load_with_labels(model, args.data, args.limit, args.text_column, args.label_column)
    if data.y is None:
        raise ValueError(
            f"{args.data} has no labels to score against: {data.why_unlabelled} "
            "(skft predict writes predictions for unlabelled data)"
        )
    kind = type(model).__name__
    backbone = getattr(model, "backbone", "?")
    print(f"model {args.model} ({kind}, {backbone}); data {args.data}: {len(data.y)} samples")
    scores = scores_for(model, data.y, model.predict(data.X))
    print(format_scores(scores), end="")
    if args.plot and scores["task"] == "classification":
        plot_confusion(scores, args.plot, f"{args.model} on {args.data}")
        print(f"wrote {args.plot}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(
            json.dumps(
                {"model": str(args.model), "data": args.data, **scores}, indent=2, default=str
            )
        )
        print(f"wrote {args.json}")
    return 0
