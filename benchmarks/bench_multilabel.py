"""Multi-label digits, and calibrated probabilities (issue 27, items 3 and 4).

A multi-tag image task built from scikit-learn's 8x8 digits: each image gets the tags
of its digit (one to three of them; every digit has at least one, so that
``f1_samples`` has no empty rows, which it would count as 0):

=========  ====================
tag        digits
=========  ====================
even       0, 2, 4, 6, 8
ge5        5, 6, 7, 8, 9
prime      2, 3, 5, 7
loop       0, 6, 8, 9
straight   1, 4, 7
=========  ====================

Printed, in one run (stratified by digit, seeded; the test digits are never seen before
scoring):

* multi-label, ``f1_samples`` (and ``jaccard_samples``, subset accuracy) on the test
  digits: skft ``FineTunedClassifier(backbone)`` fitted on the 0/1 tag matrix with its
  defaults (the fit plan decides; a sigmoid head and binary cross-entropy), against
  one-vs-rest logistic regression on the same pretrained backbone's frozen pooled
  features, at the same input size;
* calibration: a single-label skft classifier of the ten digits (defaults, or with
  ``--overconfident`` a linear probe trained long at a constant rate), then
  ``CalibratedClassifierCV(FrozenEstimator(clf), method=...)`` fitted on a separate
  calibration split (the network is not refitted), and on the test digits the expected
  calibration error (top-label, 15 equal-width bins, Guo et al. 2017), log loss and
  accuracy before and after, for ``sigmoid``, ``isotonic`` and ``temperature``;
* the same for the multi-label model, each tag a binary problem: the mean over tags of
  the binary ECE of its probability, before and after sklearn calibration of each tag.

Run alone on the machine (trainings on 2 cores slow each other down):

    python benchmarks/bench_multilabel.py            # 200 train / 200 calibration / 500 test
    python benchmarks/bench_multilabel.py --quick    # a smoke run: 60 / 100 / 200, 5 epochs
    python benchmarks/bench_multilabel.py --only calibration --overconfident
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, jaccard_score, log_loss
from sklearn.model_selection import train_test_split
from sklearn.multiclass import OneVsRestClassifier

from skft import FineTunedClassifier
from skft.data.datasets import load_digits_images

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_defaults import pooled  # noqa: E402  (a sibling script)

TAGS = {
    "even": (0, 2, 4, 6, 8),
    "ge5": (5, 6, 7, 8, 9),
    "prime": (2, 3, 5, 7),
    "loop": (0, 6, 8, 9),
    "straight": (1, 4, 7),
}
METHODS = ("sigmoid", "isotonic", "temperature")
#: ``--overconfident``: a linear probe (frozen features, cached: cheap) trained long at a
#: constant rate, far past the point where it fits every training image
OVERCONFIDENT = {
    "frozen_depth": "all",
    "augment": "none",
    "lr": 3e-2,
    "lr_schedule": "constant",
    "max_epochs": 300,
}


def tag_matrix(digits: np.ndarray) -> np.ndarray:
    """The 0/1 tags of each digit, one column per entry of :data:`TAGS`."""
    return np.stack([np.isin(digits, d) for d in TAGS.values()], axis=1).astype(np.int64)


def expected_calibration_error(y_true, proba, classes=None, bins: int = 15) -> float:
    """Top-label ECE: the bin-weighted gap between confidence and accuracy (equal-width bins).

    ``proba`` of shape (n, k) with columns in the order of ``classes``; for a binary
    problem pass (n, 2) probabilities.
    """
    proba = np.asarray(proba, dtype=np.float64)
    classes = np.arange(proba.shape[1]) if classes is None else np.asarray(classes)
    confidence = proba.max(axis=1)
    correct = classes[proba.argmax(axis=1)] == np.asarray(y_true)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            ece += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(ece)


def frozen_features(backbone: str, Xtr, Ytr, Xte, seed: int):
    """Pooled features of the pretrained backbone (frozen), at the size the fit plan picks."""
    probe = FineTunedClassifier(backbone, frozen_depth="all", max_epochs=1, random_state=seed)
    probe.fit(Xtr, Ytr)
    return pooled(probe, Xtr), pooled(probe, Xte), probe.resolved_params_["image_size"]


class OneTag(ClassifierMixin, BaseEstimator):
    """One column of a fitted multi-label model as a binary classifier (for the calibrator)."""

    def __init__(self, model=None, column: int = 0):
        self.model, self.column = model, column

    def fit(self, X, y):  # never called: the calibrator gets it frozen
        raise NotImplementedError

    @property
    def classes_(self):
        return np.array([0, 1])

    def __sklearn_is_fitted__(self):
        return True

    def predict_proba(self, X):
        p = self.model.predict_proba(X)[:, self.column]
        return np.stack([1 - p, p], axis=1)

    def predict(self, X):
        return self.model.predict(X)[:, self.column]


def multilabel_rows(args, data, seed):
    Xtr, Ytr, Xcal, Ycal, Xte, Yte = data
    rows = []
    t0 = time.perf_counter()
    clf = FineTunedClassifier(args.backbone, random_state=seed, **args.extra).fit(Xtr, Ytr)
    fit_s = time.perf_counter() - t0
    P = clf.predict_proba(Xte)
    pred = clf.predict(Xte)
    rows.append(("skft multi-label (defaults)", Yte, pred, fit_s))
    plan = clf.fit_plan_.values
    print(
        "  skft plan: "
        + ", ".join(f"{k}={plan[k]!r}" for k in ("frozen_depth", "image_size", "lr", "max_epochs"))
    )
    t0 = time.perf_counter()
    Ftr, Fte, size = frozen_features(args.backbone, Xtr, Ytr, Xte, seed)
    ovr = OneVsRestClassifier(LogisticRegression(max_iter=5000)).fit(Ftr, Ytr)
    rows.append(
        (
            f"one-vs-rest LR on frozen features ({size} px)",
            Yte,
            ovr.predict(Fte),
            time.perf_counter() - t0,
        )
    )
    print("\n| method | f1_samples | jaccard_samples | subset accuracy | fit s* |")
    print("|---|---:|---:|---:|---:|")
    for name, Y, pred_, secs in rows:
        f1 = f1_score(Y, pred_, average="samples", zero_division=0)
        jac = jaccard_score(Y, pred_, average="samples", zero_division=0)
        print(f"| {name} | {f1:.3f} | {jac:.3f} | {accuracy_score(Y, pred_):.3f} | {secs:.0f} |")
    # per-tag calibration of the multi-label model
    print("\n| multi-label probabilities | mean binary ECE over tags | mean log loss over tags |")
    print("|---|---:|---:|")
    before = [
        (expected_calibration_error(Yte[:, j], np.stack([1 - P[:, j], P[:, j]], 1)),
         log_loss(Yte[:, j], P[:, j], labels=[0, 1]))
        for j in range(Yte.shape[1])
    ]  # fmt: skip
    ece, ll = np.mean(before, axis=0)
    print(f"| uncalibrated | {ece:.4f} | {ll:.4f} |")
    for method in ("sigmoid", "isotonic"):
        after = []
        for j in range(Yte.shape[1]):
            cal = CalibratedClassifierCV(FrozenEstimator(OneTag(clf, j)), method=method)
            Pj = cal.fit(Xcal, Ycal[:, j]).predict_proba(Xte)
            after.append((expected_calibration_error(Yte[:, j], Pj, cal.classes_),
                          log_loss(Yte[:, j], Pj, labels=cal.classes_)))  # fmt: skip
        print(
            f"| {method}, each tag | {np.mean([a[0] for a in after]):.4f} | "
            f"{np.mean([a[1] for a in after]):.4f} |"
        )


def calibration_rows(args, data, seed):
    Xtr, ytr, Xcal, ycal, Xte, yte = data
    extra = dict(args.extra)
    if args.overconfident:  # train past the point of good probabilities
        extra.update(OVERCONFIDENT)
    clf = FineTunedClassifier(args.backbone, random_state=seed, **extra).fit(Xtr, ytr)
    weights = {k: v.clone() for k, v in clf.module_.state_dict().items()}
    what = f"overconfident: {OVERCONFIDENT}" if args.overconfident else "defaults"
    print(f"\n| ten digits, single-label ({what}) | ECE (15 bins) | log loss | accuracy |")
    print("|---|---:|---:|---:|")

    def row(name, proba, classes):
        proba = np.asarray(proba, dtype=np.float64)
        proba /= proba.sum(axis=1, keepdims=True)
        ece = expected_calibration_error(yte, proba, classes)
        ll = log_loss(yte, proba, labels=classes)
        acc = accuracy_score(yte, np.asarray(classes)[proba.argmax(1)])
        print(f"| {name} | {ece:.4f} | {ll:.4f} | {acc:.3f} |")

    row("uncalibrated", clf.predict_proba(Xte), clf.classes_)
    for method in METHODS:
        cal = CalibratedClassifierCV(FrozenEstimator(clf), method=method).fit(Xcal, ycal)
        row(f"CalibratedClassifierCV(FrozenEstimator(clf), method={method!r})",
            cal.predict_proba(Xte), cal.classes_)  # fmt: skip
    unchanged = all(torch.equal(weights[k], v) for k, v in clf.module_.state_dict().items())
    print(f"\nnetwork weights unchanged by the three calibrations: {unchanged}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run (small, 5 epochs)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--train", type=int, default=200)
    parser.add_argument("--calibration", type=int, default=200)
    parser.add_argument("--test", type=int, default=500)
    parser.add_argument(
        "--only", choices=["multilabel", "calibration"], help="run one of the two parts"
    )
    parser.add_argument(
        "--overconfident",
        action="store_true",
        help=f"calibration part: train the single-label model with {OVERCONFIDENT}",
    )
    args = parser.parse_args()
    args.extra = {}
    if args.quick:
        args.train, args.calibration, args.test = 60, 100, 200
        args.extra = {"max_epochs": 5}
    torch.manual_seed(args.seed)
    X, y = load_digits_images()
    seed = args.seed
    Xtr, Xrest, ytr, yrest = train_test_split(
        X, y, train_size=args.train, stratify=y, random_state=seed
    )
    Xcal, Xte, ycal, yte = train_test_split(
        Xrest, yrest, train_size=args.calibration, test_size=args.test, stratify=yrest,
        random_state=seed,
    )  # fmt: skip
    print(
        f"digits: {len(Xtr)} train / {len(Xcal)} calibration / {len(Xte)} test, seed {seed}, "
        f"backbone {args.backbone}; tags {', '.join(TAGS)}"
        + (" (--quick: 5 epochs)" if args.quick else "")
    )
    t0 = time.perf_counter()
    if args.only != "calibration":
        tagged = (Xtr, tag_matrix(ytr), Xcal, tag_matrix(ycal), Xte, tag_matrix(yte))
        multilabel_rows(args, tagged, seed)
    if args.only != "multilabel":
        calibration_rows(args, (Xtr, ytr, Xcal, ycal, Xte, yte), seed)
    print(
        f"\n* fit seconds and the total ({time.perf_counter() - t0:.0f} s) measured under load "
        "(2 shared CPU cores), not authoritative"
    )


if __name__ == "__main__":
    main()
