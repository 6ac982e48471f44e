"""The same Optuna search with and without pruning (skft.OptunaSearch).

Digits (8x8 upscaled), pretrained EfficientNet-Lite0 (skft-timm plugin),
20 trials, 10 epochs, 3-fold CV, the default search space (lr, frozen_depth,
augment_strength and the policies' own parameters), TPE with a fixed seed.
Prints wall time, best CV score and the refitted model's held-out accuracy
for each run.

    python benchmarks/bench_search.py            # ~15 min on 2 CPU cores
    python benchmarks/bench_search.py --n-train 100 --trials 4 --epochs 3   # smoke run
"""

from __future__ import annotations

import argparse
import time

import optuna
import torch

from skft import FineTunedClassifier, OptunaSearch
from skft.data.datasets import load_digits_images


def progress(label: str, t0: float):
    def callback(study, trial) -> None:
        value = "-" if trial.value is None else f"{trial.value:.3f}"
        print(
            f"  [{label}] trial {trial.number + 1:>2} {trial.state.name:<8} {value}  "
            f"epochs {trial.user_attrs.get('epochs_trained')}  t={time.perf_counter() - t0:.0f} s",
            flush=True,
        )

    return callback


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--backbone", default="efficientnet_lite0")
    p.add_argument("--n-train", type=int, default=300)
    p.add_argument("--n-test", type=int, default=500)
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--cv", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    Xtr, Xte, ytr, yte = load_digits_images(args.n_train, args.n_test, random_state=args.seed)
    print(
        f"digits: {len(Xtr)} train / {len(Xte)} held-out images at {args.image_size}px; "
        f"backbone {args.backbone} (pretrained); {args.trials} trials x {args.cv}-fold CV x "
        f"{args.epochs} epochs; TPE seed {args.seed}; torch threads {torch.get_num_threads()}",
        flush=True,
    )
    clf = FineTunedClassifier(
        args.backbone,
        pretrained=True,
        image_size=args.image_size,
        max_epochs=args.epochs,
        batch_size=32,
        verbose=0,
        random_state=args.seed,
    )
    rows = []
    for pruner in ("median", "none"):
        search = OptunaSearch(
            clf, n_trials=args.trials, cv=args.cv, pruner=pruner, random_state=args.seed
        )
        t0 = time.perf_counter()
        search.fit(Xtr, ytr, callbacks=[progress(pruner, t0)])
        wall = time.perf_counter() - t0
        res = search.cv_results_
        n_pruned = int(sum(s == "PRUNED" for s in res["state"]))
        epochs = int(res["epochs_trained"].sum()) * search.n_splits_
        test_acc = search.score(Xte, yte)
        rows.append(
            (pruner, wall, search.refit_time_, search.best_score_, test_acc, n_pruned, epochs)
        )
        print(
            f"pruner={pruner:<6} wall {wall:7.1f} s (refit {search.refit_time_:5.1f} s)  "
            f"best CV accuracy {search.best_score_:.3f}  held-out accuracy {test_acc:.3f}  "
            f"pruned {n_pruned}/{len(res['state'])}  fold-epochs trained {epochs}",
            flush=True,
        )
        print(f"  best params: {search.best_params_}", flush=True)
    (_, w1, *_), (_, w0, *_) = rows
    print(f"pruning saved {100 * (1 - w1 / w0):.0f}% of the wall time ({w1:.0f} s vs {w0:.0f} s)")


if __name__ == "__main__":
    main()
