"""Text benchmark: SMS spam with 50 and 200 training messages, 1,000 held out (issue 10).

Macro F1 on the held-out messages for

* ``skft fine-tune``: ``FineTunedClassifier(backbone="minilm")`` with every other setting
  at its default (the backbone's training defaults: AdamW, encoder 5e-5, head 1e-3,
  batch 16, 20 epochs with a linear warm-up and decay, max_length 128, mean pooling);
* ``skft fine-tune + EDA``: the same with ``augment="eda"`` (``augment_strength=0.5``);
* ``skft fine-tune, balanced``: the defaults with ``class_weight="balanced"`` (13% spam);
* ``skft linear probe``: ``frozen_depth="all"`` (the encoder runs once, cached), 100 epochs
  of the head at 1e-2;
* ``TF-IDF + LR``: scikit-learn's ``TfidfVectorizer`` and ``LogisticRegression``
  (``class_weight="balanced"``).

Then fine-tuning throughput (sentences per second, 2 CPU threads, ``max_length=64``,
batch 16) of skft and of a plain PyTorch loop over the same ``transformers`` model (mean
pooling, linear head, AdamW, each batch padded to its longest message), in one run, and
the cost of EDA augmentation per epoch.

Run: ``flock /tmp/skft-cpu.lock python benchmarks/bench_text.py [--data PATH] [--seeds 0 1]``
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time

import numpy as np
import skft_transformers
import torch
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.model_selection import train_test_split

from skft import FineTunedClassifier
from skft.plugins import load_plugins, pm

load_plugins()
if not any(p is skft_transformers for p in pm.get_plugins()):  # not pip-installed
    pm.register(skft_transformers, "transformers")

DEFAULT_DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "sms_spam",
                            "sms_spam.tsv")  # fmt: skip


def load(path: str) -> tuple[list[str], np.ndarray]:
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [r["SMS"] for r in rows], np.array([r["Label"] for r in rows])


def splits(X: list[str], y: np.ndarray, n_train: int, seed: int):
    """1,000 held-out messages and ``n_train`` training messages, both stratified."""
    idx = np.arange(len(X))
    rest, test = train_test_split(idx, test_size=1000, stratify=y, random_state=seed)
    train, _ = train_test_split(rest, train_size=n_train, stratify=y[rest], random_state=seed)
    pick = lambda ids: ([X[i] for i in ids], y[ids])  # noqa: E731
    return pick(train), pick(test)


def macro_f1(model, Xte, yte) -> float:
    return f1_score(yte, model.predict(Xte), average="macro")


def methods(seed: int, settings: dict | None = None):
    """(name, factory) pairs; ``settings`` go to the ``skft fine-tune`` row (``--settings``)."""
    yield (
        "skft fine-tune",
        lambda: FineTunedClassifier("minilm", random_state=seed, **(settings or {})),
    )
    yield (
        "skft fine-tune + EDA",
        lambda: FineTunedClassifier(
            "minilm", augment="eda", augment_strength=0.5, random_state=seed
        ),
    )
    yield (
        "skft fine-tune, balanced",
        lambda: FineTunedClassifier("minilm", class_weight="balanced", random_state=seed),
    )
    yield (
        "skft linear probe",
        lambda: FineTunedClassifier(
            "minilm", frozen_depth="all", lr=5e-4, max_epochs=100, random_state=seed
        ),
    )  # head at 5e-4 * 20 = 1e-2

    class Tfidf:
        def fit(self, X, y):
            self.vec = TfidfVectorizer()
            # balanced class weights: with 13% spam, the unweighted model predicts all ham
            model = LogisticRegression(max_iter=1000, class_weight="balanced")
            self.lr = model.fit(self.vec.fit_transform(X), y)
            return self

        def predict(self, X):
            return self.lr.predict(self.vec.transform(X))

    yield "TF-IDF + LR", Tfidf


def quality(X, y, sizes, seeds, only=None, settings=None) -> None:
    results: dict[tuple[str, int], list[float]] = {}
    times: dict[tuple[str, int], list[float]] = {}
    for seed in seeds:
        for n in sizes:
            (Xtr, ytr), (Xte, yte) = splits(X, y, n, seed)
            for name, make in methods(seed, settings):
                if only and name not in only:
                    continue
                t0 = time.perf_counter()
                model = make().fit(Xtr, ytr)
                fit_s = time.perf_counter() - t0
                f1 = macro_f1(model, Xte, yte)
                results.setdefault((name, n), []).append(f1)
                times.setdefault((name, n), []).append(fit_s)
                print(f"  seed {seed} n={n:>3} {name:<22} macro F1 {f1:.3f}  fit {fit_s:6.1f} s",
                      flush=True)  # fmt: skip
    print(f"\nmacro F1 on 1,000 held-out messages (mean over seeds {list(seeds)})")
    print(f"{'method':<24}" + "".join(f"{f'n={n}':>10}{'fit s':>8}" for n in sizes))
    for name, _ in methods(0):
        if only and name not in only:
            continue
        cells = "".join(
            f"{np.mean(results[name, n]):>10.3f}{np.mean(times[name, n]):>8.1f}" for n in sizes
        )
        print(f"{name:<24}{cells}")


def plain_loop(Xtr, ytr, epochs: int, batch_size: int, max_length: int, seed: int) -> float:
    """A hand-written fine-tuning loop over the same model: sentences per second."""
    from skft_transformers import minilm_folder
    from transformers import AutoModel, AutoTokenizer

    torch.manual_seed(seed)
    folder = minilm_folder()
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder)
    classes = sorted(set(ytr))
    target = torch.tensor([classes.index(v) for v in ytr])
    head = torch.nn.Linear(model.config.hidden_size, len(classes))
    opt = torch.optim.AdamW(
        [{"params": model.parameters(), "lr": 5e-5}, {"params": head.parameters(), "lr": 1e-3}]
    )
    enc = tok(list(Xtr), truncation=True, max_length=max_length)  # tokenised once
    model.train()
    t0 = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(len(Xtr))
        for start in range(0, len(Xtr), batch_size):
            sel = order[start : start + batch_size].tolist()
            batch = tok.pad({"input_ids": [enc["input_ids"][i] for i in sel]}, return_tensors="pt")
            out = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).float()
            pooled = (out * mask).sum(1) / mask.sum(1)
            loss = torch.nn.functional.cross_entropy(head(pooled), target[sel])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return epochs * len(Xtr) / (time.perf_counter() - t0)


def skft_rate(Xtr, ytr, epochs: int, seed: int, **params) -> float:
    clf = FineTunedClassifier(
        "minilm", max_length=64, batch_size=16, max_epochs=epochs, random_state=seed, **params
    ).fit(Xtr, ytr)
    seconds = sum(h["dur"] for h in clf.history)  # training epochs only (not tokenising/loading)
    return epochs * len(Xtr) / seconds


def throughput(X, y, seed: int, epochs: int = 2, rounds: int = 2) -> None:
    (Xtr, ytr), _ = splits(X, y, 200, seed)
    rates: dict[str, list[float]] = {"plain": [], "skft": [], "skft+eda": []}
    for _ in range(rounds):  # interleaved, so that load changes on the machine hit both
        rates["plain"].append(plain_loop(Xtr, ytr, epochs, 16, 64, seed))
        rates["skft"].append(skft_rate(Xtr, ytr, epochs, seed))
        rates["skft+eda"].append(skft_rate(Xtr, ytr, epochs, seed, augment="eda",
                                           augment_strength=0.5))  # fmt: skip
    best = {k: max(v) for k, v in rates.items()}
    print(f"\nfine-tuning throughput, 200 messages x {epochs} epochs, batch 16, max_length 64, "
          f"{torch.get_num_threads()} threads (best of {rounds})")  # fmt: skip
    print(f"  plain PyTorch loop  {best['plain']:7.1f} sentences/s")
    print(f"  skft                {best['skft']:7.1f} sentences/s  "
          f"({100 * (best['skft'] / best['plain'] - 1):+.1f}% vs plain)")  # fmt: skip
    print(
        f"  skft + EDA (0.5)    {best['skft+eda']:7.1f} sentences/s  "
        f"(augmentation costs {100 * (best['skft'] / best['skft+eda'] - 1):.1f}% of epoch time)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 200])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--only", nargs="+", default=None, help="method names to run")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument(
        "--settings",
        type=json.loads,
        default=None,
        help='JSON estimator settings for the "skft fine-tune" row, e.g. \'{"lr": 1e-4}\'',
    )
    args = parser.parse_args()
    torch.set_num_threads(2)
    X, y = load(args.data)
    print(f"{len(X)} messages, {np.mean(y == 'spam'):.1%} spam; threads={torch.get_num_threads()}")
    if not args.skip_quality:
        if args.settings:
            print(f"skft fine-tune settings: {args.settings}")
        quality(X, y, args.sizes, args.seeds, args.only, args.settings)
    if not args.skip_throughput:
        throughput(X, y, args.seeds[0])


if __name__ == "__main__":
    main()
