"""The defaults against a linear probe, a small search and scikit-learn anchors (issue 29).

For each data set and training size, in one run, prints:

* ``skft defaults``: ``FineTunedClassifier(backbone)``, nothing else set (the fit plan,
  :mod:`skft.params.plan`, decides from the data); the plan's decisions are printed too;
* ``skft linear probe``: ``frozen_depth="all"``, lr 1e-2 (text: 5e-4 with the head at 20x),
  20 epochs (text: 100), no augmentation;
* ``skft search`` (``--search``): ``GridSearchCV`` (3-fold) over ``frozen_depth`` in
  {None (the plan), "all", 0}, refitted on the whole training set;
* the anchor: logistic regression on the frozen backbone's pooled features (images),
  an RBF SVC on the raw pixels (digits), TF-IDF + logistic regression (text).

Data (``../shared/data``, see its README; digits come with scikit-learn):

* ``antsbees``: hymenoptera train (245) / val (153), EfficientNet-Lite0;
* ``flowers``: flowers12, 10 training images per class (seeded) / the 240 val images;
* ``digits``: scikit-learn's 8x8 digits, 50 / 100 / 200 / 500 training images, 500 test
  (stratified, seeded);
* ``sms``: SMS spam macro F1, 50 / 200 messages, 1,000 held out (five seeded splits);
* ``sst2``: SST-2 accuracy on dev (872), 8 / 64 sentences per class drawn with
  ``numpy.random.default_rng(seed)`` from train.tsv, MiniLM-L6.

Run alone on the machine (trainings on 2 cores slow each other many times over):

    python benchmarks/bench_defaults.py                       # every set, seeds as above
    python benchmarks/bench_defaults.py --sets digits --seeds 0 1 2
    python benchmarks/bench_defaults.py --quick               # a smoke run (minutes)
    python benchmarks/bench_defaults.py --sets digits --sizes 200 500 --only "skft defaults"
    python benchmarks/bench_defaults.py --sets antsbees --variant "probe 288" '{"image_size": 288}'
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold, train_test_split
from sklearn.svm import SVC

from skft import FineTunedClassifier
from skft.data.datasets import load_digits_images, load_image_folder

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
IMAGE_BACKBONE = "efficientnet_lite0"
TEXT_BACKBONE = "minilm"


# --------------------------------------------------------------------------
# data: (name, X_train, y_train, X_test, y_test, metric)
# --------------------------------------------------------------------------


def antsbees(seed: int, quick: bool):
    root = DATA / "hymenoptera"
    tr = load_image_folder(root / "train", return_paths=True)
    te = load_image_folder(root / "val", return_paths=True)
    Xtr, ytr = list(tr.images), np.asarray(tr.labels)
    if quick:
        Xtr, _, ytr, _ = train_test_split(Xtr, ytr, train_size=40, stratify=ytr, random_state=seed)
    yield "ants/bees", Xtr, ytr, list(te.images), np.asarray(te.labels), "accuracy"


def flowers(seed: int, quick: bool, per_class: int = 10):
    root = DATA / "flowers12"
    tr = load_image_folder(root / "train", return_paths=True)
    te = load_image_folder(root / "val", return_paths=True)
    X, y = np.asarray(tr.images), np.asarray(tr.labels)
    rng = np.random.default_rng(seed)
    keep = np.concatenate(
        [rng.permutation(np.flatnonzero(y == c))[:per_class] for c in np.unique(y)]
    )
    Xte, yte = list(te.images), np.asarray(te.labels)
    if quick:
        Xte, yte = Xte[::4], yte[::4]
    yield f"flowers12 {per_class}/class", list(X[keep]), y[keep], Xte, yte, "accuracy"


SIZES: dict[str, tuple[int, ...]] = {}  # --sizes: training sizes of digits / sms / sst2


def digits(seed: int, quick: bool):
    for n in (50,) if quick else SIZES.get("digits", (50, 100, 200, 500)):
        Xtr, Xte, ytr, yte = load_digits_images(n, 500, random_state=seed)
        yield f"digits n={n}", Xtr, ytr, Xte, yte, "accuracy"


def _tsv(path: Path, text: str, label: str):
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [r[text] for r in rows], np.array([r[label] for r in rows])


def sms(seed: int, quick: bool):
    X, y = _tsv(DATA / "sms_spam" / "sms_spam.tsv", "SMS", "Label")
    idx = np.arange(len(X))
    rest, test = train_test_split(idx, test_size=1000, stratify=y, random_state=seed)
    for n in (50,) if quick else SIZES.get("sms", (50, 200)):
        train, _ = train_test_split(rest, train_size=n, stratify=y[rest], random_state=seed)
        pick = lambda ids: [X[i] for i in ids]  # noqa: E731
        yield f"sms n={n}", pick(train), y[train], pick(test), y[test], "macro F1"


def sst2(seed: int, quick: bool):
    X, y = _tsv(DATA / "sst2" / "train.tsv", "text", "label")
    Xte, yte = _tsv(DATA / "sst2" / "dev.tsv", "text", "label")
    if quick:
        Xte, yte = Xte[::4], yte[::4]
    for per_class in (8,) if quick else SIZES.get("sst2", (8, 64)):
        rng = np.random.default_rng(seed)
        keep = np.concatenate(
            [rng.permutation(np.flatnonzero(y == c))[:per_class] for c in np.unique(y)]
        )
        yield f"sst2 {per_class}/class", [X[i] for i in keep], y[keep], Xte, yte, "accuracy"


SETS = {"antsbees": antsbees, "flowers": flowers, "digits": digits, "sms": sms, "sst2": sst2}
TEXT_SETS = {"sms", "sst2"}


# --------------------------------------------------------------------------
# methods
# --------------------------------------------------------------------------


def pooled(clf, X) -> np.ndarray:
    """A fitted estimator's pooled features (the head's input) of ``X``."""
    from skft.data.adapters import adapt_input

    module = clf.module_.eval()
    with clf.holding_resolved(), torch.no_grad():
        Xt = adapt_input(clf, X, fitting=False)
        out = []
        for i in range(0, len(Xt), 64):
            x = Xt[i : i + 64].to(clf.device)
            out.append(module.neck(module.prefix(x, len(module.groups))).float().cpu())
    return torch.cat(out).numpy()


def frozen_features(backbone: str, Xtr, ytr, Xte, seed: int):
    """Pooled features of the pretrained backbone (frozen) for train and test."""
    probe = FineTunedClassifier(backbone, frozen_depth="all", max_epochs=1, random_state=seed)
    probe.fit(Xtr, ytr)
    return pooled(probe, Xtr), pooled(probe, Xte)


class FrozenFeaturesLR:
    def __init__(self, backbone: str, seed: int):
        self.backbone, self.seed = backbone, seed

    def fit_score(self, Xtr, ytr, Xte, yte, metric):
        Ftr, Fte = frozen_features(self.backbone, Xtr, ytr, Xte, self.seed)
        model = LogisticRegression(max_iter=5000).fit(Ftr, ytr)
        return score(yte, model.predict(Fte), metric)


def score(y_true, y_pred, metric: str) -> float:
    if metric == "macro F1":
        return float(f1_score(y_true, y_pred, average="macro"))
    return float(accuracy_score(y_true, y_pred))


VARIANTS: dict[str, dict] = {}  # --variant NAME JSON: extra skft rows


def methods(set_name: str, seed: int, search: bool):
    text = set_name in TEXT_SETS
    backbone = TEXT_BACKBONE if text else IMAGE_BACKBONE
    yield "skft defaults", lambda: FineTunedClassifier(backbone, random_state=seed)
    for name, settings in VARIANTS.items():
        yield name, lambda s=settings: FineTunedClassifier(backbone, random_state=seed, **s)
    probe = dict(lr=5e-4, max_epochs=100) if text else dict(lr=1e-2, max_epochs=20)
    yield (
        "skft linear probe",
        lambda: FineTunedClassifier(
            backbone, frozen_depth="all", augment="none", random_state=seed, **probe
        ),
    )
    if search:
        grid = {"frozen_depth": [None, "all", 0]}
        cv = StratifiedKFold(3, shuffle=True, random_state=seed)
        yield (
            "skft search (3 x 3-fold)",
            lambda: GridSearchCV(FineTunedClassifier(backbone, random_state=seed), grid, cv=cv),
        )
    if text:

        class Tfidf:
            def fit(self, X, y):
                self.vec = TfidfVectorizer()
                model = LogisticRegression(max_iter=1000, class_weight="balanced")
                self.lr = model.fit(self.vec.fit_transform(X), y)
                return self

            def predict(self, X):
                return self.lr.predict(self.vec.transform(X))

        yield "TF-IDF + LR", Tfidf
    else:
        yield "LR on frozen features", lambda: FrozenFeaturesLR(backbone, seed)
    if set_name == "digits":

        class PixelSVC:
            def fit(self, X, y):
                self.svc = SVC().fit(X.reshape(len(X), -1), y)
                return self

            def predict(self, X):
                return self.svc.predict(X.reshape(len(X), -1))

        yield "SVC on pixels", PixelSVC


def run(sets, seeds, quick: bool, search: bool, only=None) -> None:
    rows: dict[tuple[str, str], list[tuple[float, float]]] = {}
    order: list[str] = []
    for set_name in sets:
        for seed in seeds:
            for name, Xtr, ytr, Xte, yte, metric in SETS[set_name](seed, quick):
                if name not in order:
                    order.append(name)
                for method, make in methods(set_name, seed, search):
                    if only and method not in only:
                        continue
                    t0 = time.perf_counter()
                    model = make()
                    if hasattr(model, "fit_score"):
                        value = model.fit_score(Xtr, ytr, Xte, yte, metric)
                    else:
                        model.fit(Xtr, ytr)
                        value = score(yte, model.predict(Xte), metric)
                    secs = time.perf_counter() - t0
                    rows.setdefault((name, method), []).append((value, secs))
                    print(f"{name:<18} seed {seed} {method:<26} {metric} {value:.3f}  "
                          f"{secs:7.1f} s", flush=True)  # fmt: skip
                    if hasattr(model, "resolved_params_"):
                        print("    plan: " + ", ".join(
                            f"{k}={v!r}" for k, v in model.resolved_params_.items()
                        ), flush=True)  # fmt: skip
    print(f"\nmean over seeds {list(seeds)} (time: fit + predict, seconds)")
    print(f"{'data':<20}{'method':<28}{'score':>7}{'sd':>7}{'time':>8}")
    for name in order:
        for (data, method), values in rows.items():
            if data != name:
                continue
            scores = [v for v, _ in values]
            secs = np.mean([s for _, s in values])
            sd = np.std(scores) if len(scores) > 1 else float("nan")
            print(f"{name:<20}{method:<28}{np.mean(scores):>7.3f}{sd:>7.3f}{secs:>8.1f}")


def main() -> None:
    global TEXT_BACKBONE
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sets", nargs="+", choices=list(SETS), default=list(SETS))
    p.add_argument("--seeds", nargs="+", type=int, default=None,
                   help="default: 0 for images and SST-2, 0-4 for SMS spam")  # fmt: skip
    p.add_argument("--search", action="store_true", help="add the GridSearchCV row")
    p.add_argument("--quick", action="store_true", help="small sizes, one seed")
    p.add_argument(
        "--sizes",
        nargs="+",
        type=int,
        default=None,
        help="training sizes of digits and sms, per class of sst2 (default: all)",
    )
    p.add_argument("--only", nargs="+", default=None, help="method names to run")
    p.add_argument(
        "--text-backbone",
        default="minilm",
        help="backbone of the text sets, e.g. hf:/path/to/all-mpnet-base-v2 (default: minilm)",
    )
    p.add_argument(
        "--variant",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "JSON"),
        help='an extra skft row: --variant "probe 288" \'{"image_size": 288}\'',
    )
    args = p.parse_args()
    if args.sizes:
        SIZES.update(digits=tuple(args.sizes), sms=tuple(args.sizes), sst2=tuple(args.sizes))
    VARIANTS.update({name: json.loads(settings) for name, settings in args.variant})
    TEXT_BACKBONE = args.text_backbone
    if TEXT_BACKBONE != "minilm":
        print(f"text backbone: {TEXT_BACKBONE}")
    t0 = time.perf_counter()
    for set_name in args.sets:
        seeds = args.seeds or ([0, 1, 2, 3, 4] if set_name == "sms" and not args.quick else [0])
        run([set_name], seeds, args.quick, args.search, args.only)
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
