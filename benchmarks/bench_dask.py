"""The same GridSearchCV three ways: n_jobs=1, joblib's process backend (loky), a Dask cluster.

A tiny CNN (``smallcnn``, random init) on digits upscaled to 32 px; a grid over ``lr`` and
``frozen_depth``, k-fold CV, no refit (the search alone is timed). The three runs:

* ``n_jobs=1``: every fit in this process, with ``--serial-threads`` torch threads (1 by
  default, as in each worker below: with 2 threads, float sums run in another order, and
  after a few epochs a few test predictions may differ);
  each run first fits a tiny grid on 32 images to start and warm its processes (imports,
  the plugin registry), timed apart as "start" (for Dask: the cluster's start too);
* ``loky``: ``GridSearchCV(n_jobs=2)``, joblib's default process backend (2 processes, 1
  torch thread each: loky limits the threads of its workers);
* ``dask``: ``joblib.parallel_backend("dask", scatter=[X, y])`` on a
  ``distributed.LocalCluster`` of 2 worker processes with 1 thread each (the nanny sets
  ``OMP_NUM_THREADS=1``).

Prints each run's wall time and whether its ``best_params_`` and every candidate's fold
scores equal the ``n_jobs=1`` run's (within 1e-6: float noise between thread counts).

    python benchmarks/bench_dask.py           # 6 candidates x 3 folds x 4 epochs, 300 images
    python benchmarks/bench_dask.py --quick   # 4 x 2 x 2, 90 images: a smoke run
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np
import torch
from joblib import parallel_backend
from sklearn.model_selection import GridSearchCV

from skft import FineTunedClassifier
from skft.data.datasets import load_digits_images


def _freed_memory_kept():
    import os

    from skft.training.cpu_memory import keeps_freed_memory

    return os.environ.get("MALLOC_TRIM_THRESHOLD_"), keeps_freed_memory()


def search(clf, grid, cv, X, y, n_jobs):
    return GridSearchCV(clf, grid, cv=cv, n_jobs=n_jobs, refit=False, error_score="raise").fit(X, y)


def compare(result, reference) -> tuple[bool, float]:
    """(same best_params_, largest fold-score difference) against ``reference``."""
    keys = [k for k in reference.cv_results_ if k.startswith("split") and k.endswith("_score")]
    diff = max(
        float(np.max(np.abs(result.cv_results_[k] - reference.cv_results_[k]))) for k in keys
    )
    return result.best_params_ == reference.best_params_, diff


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a smoke run (seconds)")
    p.add_argument("--n", type=int, default=300, help="images")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--cv", type=int, default=3)
    p.add_argument(
        "--serial-threads",
        type=int,
        default=1,
        help="torch threads of the n_jobs=1 run (default 1, as each worker has: float sums "
        "then run in the same order, so the scores can be compared exactly)",
    )
    p.add_argument(
        "--skft-memory-off",
        action="store_true",
        help="SKFT_KEEP_FREED_MEMORY=0 in the Dask workers: glibc as the nanny's "
        "MALLOC_TRIM_THRESHOLD_=65536 leaves it (every activation block mapped afresh)",
    )
    args = p.parse_args()
    torch.set_num_threads(args.serial_threads)
    if args.quick:
        args.n, args.epochs, args.cv = 90, 2, 2
    grid = {"lr": [1e-3, 3e-3, 1e-2], "frozen_depth": [0, 1]}
    if args.quick:
        grid["lr"] = grid["lr"][:2]
    X, y = load_digits_images(n_class=10)
    X, y = X[: args.n], y[: args.n]
    clf = FineTunedClassifier(
        "smallcnn",
        pretrained=False,
        image_size=32,
        max_epochs=args.epochs,
        batch_size=32,
        augment_strength=0.0,
        verbose=0,
        random_state=0,
    )
    n_candidates = int(np.prod([len(v) for v in grid.values()]))
    print(
        f"digits: {len(y)} images at 32 px, smallcnn (random init), {n_candidates} candidates "
        f"x {args.cv} folds x {args.epochs} epochs; this process: "
        f"{torch.get_num_threads()} torch threads",
        flush=True,
    )
    # warm-up of each run's processes (imports, plugin registry): timed apart as "start"
    tiny = ({"lr": [1e-3, 1e-2]}, 2, X[:32], y[:32])
    search(clf, *tiny, 1)

    rows = []
    t0 = time.perf_counter()
    reference = search(clf, grid, args.cv, X, y, 1)
    rows.append(("n_jobs=1", time.perf_counter() - t0, None, reference))

    t0 = time.perf_counter()
    search(clf, *tiny, 2)  # loky keeps its 2 worker processes for the next search
    started = time.perf_counter() - t0
    t0 = time.perf_counter()
    loky = search(clf, grid, args.cv, X, y, 2)
    rows.append(("loky, n_jobs=2", time.perf_counter() - t0, started, loky))

    import dask
    import distributed

    if args.skft_memory_off:
        environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ"))
        dask.config.set(
            {"distributed.nanny.pre-spawn-environ": {**environ, "SKFT_KEEP_FREED_MEMORY": "0"}}
        )
    t0 = time.perf_counter()
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        with parallel_backend("dask", client=client):
            search(clf, *tiny, -1)
        started = time.perf_counter() - t0
        t0 = time.perf_counter()
        with parallel_backend("dask", client=client, scatter=[X, y]):
            dask_result = search(clf, grid, args.cv, X, y, -1)
        rows.append(("dask, 2 workers", time.perf_counter() - t0, started, dask_result))
        kept = client.run(_freed_memory_kept)
        print(f"Dask workers (MALLOC_TRIM_THRESHOLD_, skft's malloc thresholds set): {kept}")

    serial = rows[0][1]
    print(f"\n{'run':<16} {'wall s':>7} {'vs n_jobs=1':>11}  same best_params_  max |d score|")
    for name, wall, started, result in rows:
        same, diff = compare(result, reference)
        extra = f"  (+{started:.1f} s start)" if started is not None else ""
        print(f"{name:<16} {wall:7.1f} {wall / serial:10.2f}x  {str(same):<17}  {diff:.2g}{extra}")
    print(f"best_params_ (n_jobs=1): {reference.best_params_}")
    print("wall times measured on a shared, loaded 2-core machine: not authoritative")


if __name__ == "__main__":
    main()
