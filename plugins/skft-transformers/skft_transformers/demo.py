"""``skft demo --text``: fine-tuned MiniLM vs a linear probe vs TF-IDF + logistic regression.

On the 1,000 SMS Spam Collection messages shipped in ``data/sms_spam_1000.tsv`` (CC BY 4.0,
see ``data/README.md``): a stratified split into ``n_train`` training and the rest held out,
macro F1 and fit time per method, a table on stdout and ``text_demo.png`` / ``results.json``
in ``out``. Offline.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import numpy as np

__all__ = ["DATA", "load_sms", "run_text_demo"]

DATA = Path(__file__).parent / "data" / "sms_spam_1000.tsv"


def load_sms() -> tuple[list[str], np.ndarray]:
    """The shipped messages and their labels (``"ham"``/``"spam"``)."""
    with DATA.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [r["text"] for r in rows], np.array([r["label"] for r in rows])


def _methods(seed: int):
    from skft import FineTunedClassifier
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    yield "fine-tuned MiniLM", FineTunedClassifier("minilm", random_state=seed)
    yield "linear probe", FineTunedClassifier(
        "minilm", frozen_depth="all", lr=5e-4, max_epochs=100, random_state=seed
    )
    balanced = LogisticRegression(max_iter=1000, class_weight="balanced")
    yield "TF-IDF + LR", make_pipeline(TfidfVectorizer(), balanced)


def run_text_demo(n_train: int = 200, out: str | Path = "skft-demo-text", seed: int = 0):
    """Run the comparison; returns ``[(method, macro F1, fit seconds), ...]``."""
    import torch
    from sklearn.metrics import f1_score
    from sklearn.model_selection import train_test_split

    X, y = load_sms()
    if not 10 <= n_train <= len(X) - 100:
        raise ValueError(f"n_train must be in 10..{len(X) - 100}, got {n_train}")
    idx_tr, idx_te = train_test_split(
        np.arange(len(X)), train_size=n_train, stratify=y, random_state=seed
    )
    Xtr, ytr = [X[i] for i in idx_tr], y[idx_tr]
    Xte, yte = [X[i] for i in idx_te], y[idx_te]
    print(f"SMS spam (CC BY 4.0, 1,000 messages shipped): {n_train} training, {len(Xte)} "
          f"held out; torch threads {torch.get_num_threads()}", flush=True)  # fmt: skip
    results = []
    for name, model in _methods(seed):
        t0 = time.perf_counter()
        model.fit(Xtr, ytr)
        seconds = time.perf_counter() - t0
        f1 = f1_score(yte, model.predict(Xte), average="macro")
        results.append((name, float(f1), seconds))
        print(f"  {name:<18} macro F1 {f1:.3f}  fit {seconds:5.1f} s", flush=True)
    print(f"\n{'method':<20}{'macro F1':>10}{'fit s':>8}")
    for name, f1, seconds in results:
        print(f"{name:<20}{f1:>10.3f}{seconds:>8.1f}")
    _save(results, Path(out))
    return results


def _save(results, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    rows = [{"method": m, "macro_f1": f, "fit_seconds": s} for m, f, s in results]
    (out / "results.json").write_text(json.dumps(rows, indent=2))
    fig, ax = plt.subplots(figsize=(6, 4))
    bars = ax.bar([m for m, _, _ in results], [f for _, f, _ in results], color=["C0", "C1", "C2"])
    for bar, (_, f, s) in zip(bars, results):
        ax.text(bar.get_x() + bar.get_width() / 2, f + 0.01, f"{f:.3f}\n{s:.0f} s", ha="center")
    ax.set_ylim(0, 1.15)
    ax.set_ylabel("macro F1 (held out)")
    ax.set_title("SMS spam: macro F1 (label: F1, fit time)")
    fig.tight_layout()
    fig.savefig(out / "text_demo.png", dpi=110)
    plt.close(fig)
    print(f"saved {out / 'results.json'} and {out / 'text_demo.png'}")
