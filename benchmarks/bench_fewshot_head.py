"""After the contrastive stage: skft's linear head against SetFit's logistic regression (issue 29).

skft and SetFit 1.2 share the stage's recipe (20 pair rounds, cosine loss, lr 2e-5, batch
16, one epoch) and differ in the head: skft trains a linear layer (AdamW, 100 epochs) on
the pooled embeddings; SetFit fits scikit-learn's ``LogisticRegression`` on the
sentence-transformers output, which a folder whose ``modules.json`` ends in ``Normalize``
(all-MiniLM-L6-v2, all-mpnet-base-v2) scales to unit length. This fits skft's defaults once
on SST-2 (``n`` sentences per class drawn with ``default_rng(seed)``, as
``bench_defaults.py``), then fits both logistic regressions on the *same* tuned encoder's
embeddings and prints the dev accuracy of the three heads.

Run::

    python benchmarks/bench_fewshot_head.py --per-class 64 --seed 0 \\
        --backbone hf:/work/bench/mpnet/all-mpnet-base-v2
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import normalize

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_defaults  # noqa: E402  (a sibling script)

from skft import FineTunedClassifier  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--per-class", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backbone", default="minilm")
    p.add_argument("--quick", action="store_true", help="a quarter of dev (a smoke run)")
    args = p.parse_args()
    torch.set_num_threads(2)
    bench_defaults.SIZES["sst2"] = (args.per_class,)
    name, Xtr, ytr, Xte, yte, _ = next(bench_defaults.sst2(args.seed, args.quick))
    t0 = time.perf_counter()
    clf = FineTunedClassifier(args.backbone, random_state=args.seed).fit(Xtr, ytr)
    print(f"{name}, {args.backbone}, seed {args.seed}: fit {time.perf_counter() - t0:.0f} s; "
          f"plan: freeze={clf.resolved_params_['freeze']!r}, "
          f"frozen_depth={clf.resolved_params_['frozen_depth']!r}")  # fmt: skip
    Ftr, Fte = bench_defaults.pooled(clf, Xtr), bench_defaults.pooled(clf, Xte)
    print(f"  skft's linear head (the defaults): {clf.score(Xte, yte):.3f}")
    for label, (A, B) in (
        ("LogisticRegression on the pooled embeddings", (Ftr, Fte)),
        (
            "LogisticRegression on unit-length embeddings (SetFit's)",
            (normalize(Ftr), normalize(Fte)),
        ),
    ):
        lr = LogisticRegression(max_iter=1000).fit(A, ytr)
        print(f"  {label}: {np.mean(lr.predict(B) == np.asarray(yte)):.3f}", flush=True)
    norms = np.linalg.norm(Ftr, axis=1)
    print(f"  pooled embedding norms: {norms.min():.2f} to {norms.max():.2f}")


if __name__ == "__main__":
    main()
