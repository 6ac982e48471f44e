"""Frozen-prefix feature cache: linear-probe and frozen-depth searches, timed.

1. A linear-probe GridSearchCV (lr in {1e-3, 3e-3, 1e-2, 3e-2}, cv=3, refit,
   10 epochs) on 300 digits at 64x64 with the pretrained EfficientNet-Lite0:
   skft (frozen_depth="all", cache on) against the same search written by
   hand with skorch's ``Freezer`` callback on the same timm model and weights.
2. A frozen_depth search (0, 2, 4, "all") with the cache on and off.

Both report test accuracy of the refitted best model on 500 other digits.
Run: ``python benchmarks/bench_cache.py`` (about 8 minutes on 2 CPU cores;
``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.model_selection import GridSearchCV
from skorch import NeuralNetClassifier
from skorch.callbacks import Freezer

from skft import FineTunedClassifier
from skft.data.datasets import load_digits_images
from skft.training.cache import feature_cache

LRS = [1e-3, 3e-3, 1e-2, 3e-2]


def digits(n_train: int, n_test: int):
    """The first ``n_train`` digits for training, the next ``n_test`` for testing."""
    X, y = load_digits_images()
    return X[:n_train], y[:n_train], X[n_train : n_train + n_test], y[n_train : n_train + n_test]


def by_hand_inputs(X: np.ndarray, size: int) -> np.ndarray:
    """What a skorch user writes: upsample, grey to RGB, the model's normalisation (0.5/0.5)."""
    x = torch.from_numpy(X)[:, None]
    x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=False, align_corners=False)
    x = x.clamp(0, 1).repeat(1, 3, 1, 1)
    return ((x - 0.5) / 0.5).numpy()


def by_hand_module():
    """timm's tf_efficientnet_lite0 with the packaged ImageNet weights and a 10-class head."""
    import timm
    from skft_timm._build import lite0_package_file, load_efficientnet_lite0_file

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=0)
    load_efficientnet_lite0_file(model, lite0_package_file())
    model.reset_classifier(10)
    return model


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 epochs, 90 digits")
    parser.add_argument("--skip-by-hand", action="store_true")
    parser.add_argument("--skip-depth", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    n_train, epochs = (90, 2) if args.quick else (300, 10)
    size = 64
    X, y, X_test, y_test = digits(n_train, 500)
    print(f"{n_train} train / {len(X_test)} test digits at {size}x{size}, {epochs} epochs, cv=3, ")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device cpu\n")
    by_hand_module()  # imports and first-use costs are paid before any clock starts

    rows = []

    # -- 1. linear probe: skorch + Freezer by hand ------------------------------------------
    if not args.skip_by_hand:
        net = NeuralNetClassifier(
            by_hand_module(),
            criterion=torch.nn.CrossEntropyLoss,
            optimizer=torch.optim.AdamW,
            max_epochs=epochs,
            batch_size=32,
            train_split=None,
            callbacks=[("freeze", Freezer(lambda name: not name.startswith("classifier")))],
            verbose=0,
            device="cpu",
        )
        Xh, Xh_test = by_hand_inputs(X, size), by_hand_inputs(X_test, size)
        torch.manual_seed(0)
        search, secs = timed(lambda: GridSearchCV(net, {"lr": LRS}, cv=3).fit(Xh, y))
        acc = float((search.predict(Xh_test) == y_test).mean())
        rows.append(("linear probe", "skorch + Freezer (by hand)", secs, search, acc))

    # -- 1. linear probe: skft ----------------------------------------------------------------
    clf = FineTunedClassifier(
        "efficientnet_lite0",
        frozen_depth="all",
        augment="none",
        image_size=size,
        max_epochs=epochs,
        batch_size=32,
        random_state=0,
        verbose=0,
        device="cpu",
    )
    feature_cache.clear()
    search, secs = timed(lambda: GridSearchCV(clf, {"lr": LRS}, cv=3).fit(X, y))
    stats = feature_cache.stats
    acc = float((search.predict(X_test) == y_test).mean())
    rows.append(("linear probe", "skft, frozen_depth='all'", secs, search, acc))
    cache_note = f"cache: {stats.misses} samples computed, {stats.hits} reused"

    # -- 2. frozen-depth search, cache on and off ------------------------------------------
    if not args.skip_depth:
        grid = {"frozen_depth": [0, 2, 4, "all"]}
        for cache in (True, False):
            feature_cache.clear()
            est = clf.set_params(lr=3e-3, feature_cache=cache)
            search, secs = timed(lambda est=est: GridSearchCV(est, grid, cv=3).fit(X, y))
            acc = float((search.predict(X_test) == y_test).mean())
            impl = f"skft, cache {'on' if cache else 'off'}"
            rows.append(("frozen_depth search", impl, secs, search, acc))

    print("| search | implementation | wall time (s) | best params | CV score | test acc |")
    print("|---|---|---:|---|---:|---:|")
    for task, impl, secs, search, acc in rows:
        print(
            f"| {task} | {impl} | {secs:.1f} | {search.best_params_} | "
            f"{search.best_score_:.3f} | {acc:.3f} |"
        )
    print()
    print(cache_note)
    times = {(t, i): s for t, i, s, _, _ in rows}
    hand = times.get(("linear probe", "skorch + Freezer (by hand)"))
    if hand:
        ours = times[("linear probe", "skft, frozen_depth='all'")]
        print(f"linear probe speed-up over skorch + Freezer: {hand / ours:.1f}x")
    on = times.get(("frozen_depth search", "skft, cache on"))
    if on:
        off = times[("frozen_depth search", "skft, cache off")]
        print(f"frozen_depth search speed-up from the cache: {off / on:.2f}x")


if __name__ == "__main__":
    main()
