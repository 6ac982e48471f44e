"""CPU fits with glibc's default thresholds against skft's (freed activations reused).

Each case runs in a fresh process twice, with ``SKFT_KEEP_FREED_MEMORY=0`` (glibc's
defaults: every large block mapped afresh and returned when freed) and without (skft's
default: :func:`skft.training.cpu_memory.keep_freed_memory`), alternating over
``--rounds``; it prints wall time, kernel (system) time, minor page faults and peak
resident size of the timed part, medians over the rounds, and the wall-time ratio.

Cases (random images, nothing downloaded but the Lite0 weights package):

- ``fine-tune``: EfficientNet-Lite0 at 224 px, batch 32, every layer training, one
  epoch over 128 images (after a warm-up fit on one batch);
- ``probe features``: the frozen network's features of 256 images at 288 px (the
  ants/bees probe's size), what a linear probe's first epoch computes;
- ``demo``: ``skft demo``'s three fits (wall time of the whole command).

Run: ``python benchmarks/bench_cpu_memory.py [--rounds 3] [--cases fine-tune,probe,demo]``,
alone on the machine (about 6 minutes on 2 cores with the defaults).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

CASE = r"""
import json, resource, sys, time
import numpy as np
import torch
from skft import FineTunedClassifier

case = sys.argv[1]
rng = np.random.default_rng(0)
if case == "fine-tune":
    X = rng.random((128, 224, 224, 3), dtype=np.float32)
    y = np.arange(128) % 2
    est = FineTunedClassifier(
        "efficientnet_lite0", max_epochs=1, frozen_depth=0, augment="none", batch_size=32,
        lr=1e-3, feature_cache=False, device="cpu",
    )
    est.fit(X[:32], y[:32])
    run = lambda: est.partial_fit(X, y)
else:
    X = rng.random((256, 288, 288, 3), dtype=np.float32)
    y = np.arange(256) % 2
    est = FineTunedClassifier(
        "efficientnet_lite0", max_epochs=1, frozen_depth="all", augment="none",
        image_size=288, feature_cache=False, device="cpu",
    )
    est.fit(X[:8], y[:8])
    run = lambda: est.predict_proba(X)
r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
run()
wall, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"wall": wall, "sys": r1.ru_stime - r0.ru_stime,
                  "faults": r1.ru_minflt - r0.ru_minflt, "rss_mb": r1.ru_maxrss / 1024}))
"""


def _run(case: str, keep: bool) -> dict:
    env = {**os.environ, "SKFT_KEEP_FREED_MEMORY": "1" if keep else "0"}
    if case == "demo":
        with tempfile.TemporaryDirectory() as out:
            t0 = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "skft.cli.main", "demo", "--out", out],
                env=env,
                check=True,
                capture_output=True,
            )
            return {"wall": time.perf_counter() - t0}
    out = subprocess.run(
        [sys.executable, "-c", CASE, case], env=env, check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cases", default="fine-tune,probe,demo")
    args = parser.parse_args()
    cases = [c.strip() for c in args.cases.split(",")]
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {args.rounds} rounds")
    header = f"{'case':<16}{'allocator':<22}{'wall s':>8}{'sys s':>8}{'faults':>11}{'peak MB':>9}"
    print(header)
    print("-" * len(header))
    for case in cases:
        name = "probe features" if case == "probe" else case
        runs: dict[bool, list[dict]] = {False: [], True: []}
        for _ in range(args.rounds):
            for keep in (False, True):
                runs[keep].append(_run(case, keep))
        med = {
            keep: {k: statistics.median(r[k] for r in rs) for k in rs[0]}
            for keep, rs in runs.items()
        }
        for keep in (False, True):
            m = med[keep]
            label = "skft (kept, reused)" if keep else "glibc defaults"
            extra = f"{m['sys']:>8.2f}{m['faults']:>11.0f}{m['rss_mb']:>9.0f}" if "sys" in m else ""
            print(f"{name:<16}{label:<22}{m['wall']:>8.2f}{extra}")
        print(f"{'':<16}{'speed-up (wall)':<22}{med[False]['wall'] / med[True]['wall']:>7.2f}x")


if __name__ == "__main__":
    main()
