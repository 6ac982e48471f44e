"""Recovery after 30% pruning: the rate schedule and distillation, on digits or on MiniLM.

``python benchmarks/recovery_variants.py digits``: EfficientNet-Lite0 fine-tuned on
bench_compress.py's digits split (300 train / 500 test, 64 px, 5 epochs, 2 threads),
then ``Compressed(prune=0.3, distill=d)`` for d in 0, 0.5, 1.

``python benchmarks/recovery_variants.py text VARIANT ...``: MiniLM with its defaults
fine-tuned on 200 SMS messages (bench_text.py's seed-0 split; the fitted model is kept
in ``$CACHE``, /tmp by default), then ``Compressed(prune=0.3, **VARIANT)`` per
variant, macro F1 on the 1,000 held-out messages. A variant is ``key=value`` pairs
joined by commas; ``constant`` recovers at a constant rate (the estimator's
``lr_schedule`` set to "constant"), ``linear`` with the estimator's own schedule (the
default). Example: ``... text constant linear distill=0.0 constant,distill=0.5``.
"""

from __future__ import annotations

import copy
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

import skft
from skft import Compressed, FineTunedClassifier

sys.path.insert(0, str(Path(__file__).parent))
from prune_frozen_depth import value  # noqa: E402


def digits() -> None:
    from skft.data.datasets import load_digits_images

    X, y = load_digits_images()
    X_train, y_train, X_test, y_test = X[:300], y[:300], X[300:800], y[300:800]
    base = FineTunedClassifier(
        "efficientnet_lite0", image_size=64, max_epochs=5, batch_size=32, random_state=0
    ).fit(X_train, y_train)
    print(f"digits base {np.mean(base.predict(X_test) == y_test):.3f}", flush=True)
    for d in (0.0, 0.5, 1.0):
        comp = Compressed(base, prune=0.3, distill=d, prefit=True).fit(X_train, y_train)
        print(f"digits distill={d}: {np.mean(comp.predict(X_test) == y_test):.3f}", flush=True)


def text(variants: list[str]) -> None:
    from bench_text import DEFAULT_DATA, load, splits
    from sklearn.metrics import f1_score

    (X_train, y_train), (X_test, y_test) = splits(*load(DEFAULT_DATA), 200, 0)
    path = Path(os.environ.get("CACHE", "/tmp")) / "minilm_base.skft"
    if path.exists():
        base = skft.load(path)
    else:
        start = time.perf_counter()
        base = FineTunedClassifier("minilm", random_state=0).fit(X_train, y_train)
        print(f"base fit {time.perf_counter() - start:.0f}s", flush=True)
        base.save(path)

    def f1(model) -> float:
        return f1_score(y_test, model.predict(X_test), average="macro")

    print(f"base f1 {f1(base):.3f}", flush=True)
    for variant in variants:
        est, settings = copy.deepcopy(base), {}
        for part in variant.split(","):
            key, _, text_value = part.partition("=")
            if key == "constant":
                est.lr_schedule = "constant"
            elif key != "linear":
                settings[key] = value(text_value)
        start = time.perf_counter()
        comp = Compressed(est, prune=0.3, prefit=True, **settings).fit(X_train, y_train)
        print(f"{variant}: pruned f1 {f1(comp):.3f} ({time.perf_counter() - start:.0f}s)",
              flush=True)  # fmt: skip


if __name__ == "__main__":
    torch.set_num_threads(2)
    if sys.argv[1:2] == ["digits"]:
        digits()
    else:
        text(sys.argv[2:])
