"""A worker process for the shared-storage tests: one OptunaSearch on a shared study.

    python search_worker.py STORAGE STUDY N_TRIALS [--marker PATH] [--sleep S]

Prints one JSON line: this process's id and how many trials it saw at the end.
``--marker`` is touched when an epoch begins (so a test knows a trial is
running); ``--sleep`` makes every epoch last at least that long.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import optuna
from optuna.distributions import FloatDistribution
from skorch.callbacks import Callback

from skft import FineTunedClassifier, OptunaSearch
from skft.data.datasets import load_digits_images
from skft.search.storage import make_storage


class SlowMarker(Callback):
    def __init__(self, marker=None, sleep=0.0):
        self.marker, self.sleep = marker, sleep

    def on_epoch_begin(self, net, **kwargs):
        if self.marker:
            Path(self.marker).touch()
        if self.sleep:
            time.sleep(self.sleep)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("storage")
    p.add_argument("study")
    p.add_argument("n_trials", type=int)
    p.add_argument("--marker", default=None)
    p.add_argument("--sleep", type=float, default=0.0)
    args = p.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    X, y = load_digits_images(n_class=3)
    X, y = X[:40], y[:40]
    clf = FineTunedClassifier(
        "smallcnn",
        pretrained=False,
        image_size=16,
        max_epochs=2,
        batch_size=20,
        augment_strength=0.0,
        verbose=0,
        random_state=0,
        callbacks=[SlowMarker(args.marker, args.sleep)],
    )
    storage = args.storage
    if "://" in storage and not storage.startswith("journal://"):
        storage = make_storage(storage, heartbeat_interval=1, grace_period=2, max_retry=2)
    search = OptunaSearch(
        clf,
        {"lr": FloatDistribution(1e-3, 1e-1, log=True)},
        n_trials=args.n_trials,
        cv=2,
        storage=storage,
        study_name=args.study,
        pruner=None,
        refit=False,
        random_state=0,
    ).fit(X, y)
    print(json.dumps({"pid": os.getpid(), "seen": len(search.cv_results_["params"])}), flush=True)


if __name__ == "__main__":
    main()
