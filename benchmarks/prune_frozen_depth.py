"""Pruning a model fitted with a frozen prefix: accuracy and speed against the frozen depth.

EfficientNet-Lite0 fine-tuned on ants vs bees (``/work/shared/data/hymenoptera``,
224x224, 245 train / 153 val, 3 epochs, batch 16, ``random_state=0``, 2 threads)
with the first ``DEPTH`` of its 9 layer groups frozen (the setting of
``bench_compress.py``), then ``Compressed(prune=0.3, prefit=True, **variant)``
for each variant on the command line (``key=value`` pairs joined by commas;
``lr=...`` sets the estimator's rate for the recovery epochs). Frozen groups
keep their width unless ``prune_frozen=True``. Latency: fp32 ONNX Runtime, 1
thread, batch 1 and 32, every model timed in the same interleaved rounds.

Run: ``DEPTH=3 python benchmarks/prune_frozen_depth.py distill=0.5``
(``DEPTH`` 0: fine-tuned fully, so every group is pruned and re-tuned).
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
from skft.data.adapters import adapt_input, as_float_images
from skft.data.datasets import load_image_folder

sys.path.insert(0, str(Path(__file__).parent))
from bench_compress import fp32_onnx, interleaved_latencies  # noqa: E402

HYMENOPTERA = Path("/work/shared/data/hymenoptera")


def value(text: str):
    if text in ("True", "False"):
        return text == "True"
    return float(text) if ("." in text or "e" in text) else int(text)


def main() -> None:
    torch.set_num_threads(int(os.environ.get("THREADS", "2")))
    depth, epochs = int(os.environ.get("DEPTH", "5")), int(os.environ.get("EPOCHS", "3"))
    X_train, y_train, _ = load_image_folder(HYMENOPTERA / "train", 224)
    X_test, y_test, _ = load_image_folder(HYMENOPTERA / "val", 224)
    path = Path(os.environ.get("CACHE", "/tmp")) / f"hym_base_d{depth}_e{epochs}.skft"
    if path.exists():  # the fitted base of an earlier run
        base = skft.load(path)
    else:
        start = time.perf_counter()
        base = FineTunedClassifier(
            "efficientnet_lite0",
            image_size=224,
            max_epochs=epochs,
            batch_size=16,
            frozen_depth=depth,
            random_state=0,
        ).fit(X_train, y_train)
        print(f"base fit {time.perf_counter() - start:.0f}s", flush=True)
        base.save(path)

    def accuracy(model) -> float:
        return float(np.mean(model.predict(X_test) == y_test))

    print(f"frozen_depth={depth}: base acc {accuracy(base):.3f}", flush=True)
    runners = {"fp32": fp32_onnx(base).run}
    for variant in sys.argv[1:]:
        est, settings = copy.deepcopy(base), {}
        for part in variant.split(","):
            key, _, text = part.partition("=")
            if key == "lr":
                est.lr = value(text)
            else:
                settings[key] = value(text)
        start = time.perf_counter()
        comp = Compressed(est, prune=0.3, prefit=True, **settings).fit(X_train, y_train)
        print(
            f"{variant}: pruned acc {accuracy(comp):.3f} params "
            f"{comp.compression_report_['params_after']:,} ({time.perf_counter() - start:.0f}s)",
            flush=True,
        )
        runners[variant] = fp32_onnx(comp.estimator_).run
    inputs = as_float_images(adapt_input(base, X_test, fitting=False)).numpy()
    torch.set_num_threads(1)
    for label, (b1, b32) in interleaved_latencies(runners, inputs[:1], inputs[:32], 40, 5).items():
        print(f"latency {label}: b1 {b1:.2f} ms b32 {b32:.1f} ms", flush=True)


if __name__ == "__main__":
    main()
