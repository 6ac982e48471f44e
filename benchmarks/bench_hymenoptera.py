"""Ants vs bees (../shared/data/hymenoptera, 245 train / 153 val, 224 px): defaults vs search.

Prints the validation accuracy and wall time of

- ``defaults``: ``FineTunedClassifier(backbone)`` with every other parameter at its default;
- ``probe``: the linear probe (``frozen_depth="all"``, the head trains on cached features);
- ``search``: ``skft.OptunaSearch`` for at most ``--budget`` seconds (3-fold CV on the
  training images, then refitted on all of them), over a space chosen to fit 2 CPU cores:
  the upper layer groups and the head train on cached features of the frozen lower ones,
  so a trial costs one pass through the frozen part per fold plus cheap epochs.

References: PyTorch's transfer-learning tutorial 0.935 (fine-tune) / 0.948 (fixed
features), skorch's notebook 0.961.

    python benchmarks/bench_hymenoptera.py defaults probe search --budget 1800
    python benchmarks/bench_hymenoptera.py search --budget 1800 --image-size 260 \
        --search-backbones efficientnet_lite0 efficientnet_lite1 efficientnet_lite2
    python benchmarks/bench_hymenoptera.py search --budget 1800 --search-sizes 260 300 \
        --search-backbones efficientnet_lite0 efficientnet_lite1 efficientnet_lite2
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import optuna
import torch
from optuna.distributions import CategoricalDistribution, FloatDistribution

from skft import FineTunedClassifier, OptunaSearch
from skft.data.datasets import load_image_folder
from skft.plugins import get_backbone


def search_space(
    n_groups: int, backbones: list[str] | None = None, sizes: list[int] | None = None
) -> dict:
    """The space searched: the upper groups and the head train on cached features.

    With ``backbones`` (several names with the same number of groups, such as
    EfficientNet-Lite0/1/2), the backbone is searched too, each at its own input size
    unless ``sizes`` are given: then the input size (``image_size``) is searched as well.
    """
    space = {
        "lr": FloatDistribution(1e-4, 3e-2, log=True),
        "frozen_depth": CategoricalDistribution([n_groups - 3, n_groups - 2, n_groups - 1, "all"]),
        "augment_strength": CategoricalDistribution([0.0]),  # keeps the cache usable
        "head": CategoricalDistribution(["linear", "mlp"]),
        "label_smoothing": FloatDistribution(0.0, 0.2),
        "max_epochs": CategoricalDistribution([5, 10, 20]),
    }
    if backbones:
        space["backbone"] = CategoricalDistribution(backbones)
        space["lr_schedule"] = CategoricalDistribution(["constant", "cosine"])
    if sizes:
        space["image_size"] = CategoricalDistribution(sorted(sizes))
    if not backbones and not sizes:
        space["tta"] = CategoricalDistribution([0, 2])  # off; the image and its mirror
    return space


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", choices=["defaults", "probe", "search"])
    p.add_argument("--data", type=Path, default=Path("../shared/data/hymenoptera"))
    p.add_argument("--backbone", default="efficientnet_lite0")
    p.add_argument(
        "--search-backbones",
        nargs="+",
        default=None,
        help="search over these backbones too (e.g. efficientnet_lite0 efficientnet_lite1 "
        "efficientnet_lite2; load the images at the largest input size, --image-size 260)",
    )
    p.add_argument(
        "--search-sizes",
        nargs="+",
        type=int,
        default=None,
        help="search the network's input size too (e.g. 260 300; the images are loaded "
        "at the largest and resized)",
    )
    p.add_argument(
        "--scoring",
        default=None,
        help="the search's CV score (default: accuracy); neg_log_loss separates candidates "
        "that tie on accuracy",
    )
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--budget", type=float, default=1800, help="search time limit, seconds")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    t0 = time.perf_counter()
    if args.search_sizes:
        args.image_size = max(args.image_size, *args.search_sizes)
    Xtr, ytr, _ = load_image_folder(args.data / "train", image_size=args.image_size)
    Xva, yva, _ = load_image_folder(args.data / "val", image_size=args.image_size)
    ytr, yva = np.asarray(ytr), np.asarray(yva)
    print(
        f"hymenoptera: {len(Xtr)} train / {len(Xva)} val at {args.image_size} px, loaded in "
        f"{time.perf_counter() - t0:.0f} s; {args.backbone}; torch threads "
        f"{torch.get_num_threads()}",
        flush=True,
    )
    rows = []
    for run in args.runs:
        t0 = time.perf_counter()
        if run == "defaults":
            est = FineTunedClassifier(args.backbone, random_state=args.seed).fit(Xtr, ytr)
            detail = "every parameter at its default"
        elif run == "probe":
            est = FineTunedClassifier(
                args.backbone,
                frozen_depth="all",
                augment_strength=0.0,
                lr=1e-2,
                max_epochs=20,
                random_state=args.seed,
            ).fit(Xtr, ytr)
            detail = "frozen_depth='all', lr=1e-2, 20 epochs, no augmentation"
        else:
            clf = FineTunedClassifier(args.backbone, random_state=args.seed)
            n_groups = get_backbone(args.backbone).n_groups
            if args.search_backbones:
                sizes = {get_backbone(b).n_groups for b in args.search_backbones}
                if sizes != {n_groups}:
                    raise SystemExit("--search-backbones need as many groups as --backbone")
            done = []

            def log(study, trial, t=t0, done=done):
                done.append(trial)
                value = "-" if trial.value is None else f"{trial.value:.3f}"
                print(
                    f"  trial {trial.number:>3} {trial.state.name:<8} {value}  "
                    f"{trial.params}  t={time.perf_counter() - t:.0f} s",
                    flush=True,
                )

            est = OptunaSearch(
                clf,
                search_space(n_groups, args.search_backbones, args.search_sizes),
                n_trials=None,
                timeout=args.budget,
                cv=3,
                scoring=args.scoring,
                random_state=args.seed,
            ).fit(Xtr, ytr, callbacks=[log])
            detail = f"{len(done)} trials, best CV {est.best_score_:.3f}: {est.best_params_}"
        acc = float(np.mean(est.predict(Xva) == yva))  # accuracy, whatever the search scored
        rows.append((run, acc, time.perf_counter() - t0, detail))
        print(f"{run}: val accuracy {acc:.3f} in {rows[-1][2]:.0f} s ({detail})", flush=True)
    print(f"\n{'run':<10}{'val acc':>9}{'time s':>9}  settings")
    for run, acc, secs, detail in rows:
        print(f"{run:<10}{acc:>9.3f}{secs:>9.0f}  {detail}")


if __name__ == "__main__":
    main()
