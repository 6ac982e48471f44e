"""Image defaults with a decaying learning rate: ``lr_schedule="constant"`` vs ``"cosine"``.

Everything else at the image defaults (AdamW 1e-3, 10 epochs, batch 32, ``basic``
augmentation at 0.5), EfficientNet-Lite0:

* digits as in ``skft demo`` (200 train / 500 test, 64 px, no mirroring), seeds 0 1 2;
* ants vs bees (``../shared/data/hymenoptera``, 224 px, 245 train / 153 val), seed 0,
  unless ``--skip-hymenoptera`` (about 5 minutes a fit on 2 cores).

Run: ``flock /tmp/skft-cpu.lock python benchmarks/bench_schedule.py``
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from skft import FineTunedClassifier
from skft.data.datasets import load_digits_images, load_image_folder


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=Path("../shared/data/hymenoptera"))
    p.add_argument("--schedules", nargs="+", default=["constant", "cosine"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--skip-hymenoptera", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(2)
    Xtr, Xte, ytr, yte = load_digits_images(200, 500, random_state=0)
    scores: dict[str, list[float]] = {s: [] for s in args.schedules}
    for seed in args.seeds:
        for schedule in args.schedules:
            clf = FineTunedClassifier(
                "efficientnet_lite0", image_size=64, lr_schedule=schedule, random_state=seed,
                augment="basic", augment_strength=0.5, augment__flip=0.0,
            ).fit(Xtr, ytr)  # fmt: skip
            scores[schedule].append(clf.score(Xte, yte))
            print(f"digits seed {seed} {schedule:<8} test accuracy {scores[schedule][-1]:.3f}",
                  flush=True)  # fmt: skip
    for schedule, s in scores.items():
        print(f"digits {schedule:<8} mean {np.mean(s):.3f} over seeds {args.seeds}")
    if args.skip_hymenoptera:
        return
    Xtr, ytr, _ = load_image_folder(args.data / "train", image_size=224)
    Xva, yva, _ = load_image_folder(args.data / "val", image_size=224)
    for schedule in args.schedules:
        t0 = time.perf_counter()
        clf = FineTunedClassifier("efficientnet_lite0", lr_schedule=schedule, random_state=0)
        clf.fit(Xtr, np.asarray(ytr))
        acc = clf.score(Xva, np.asarray(yva))
        print(f"ants/bees {schedule:<8} val accuracy {acc:.3f} ({time.perf_counter() - t0:.0f} s)",
              flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
