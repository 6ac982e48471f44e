"""Freezing policies compared on small real data, pretrained EfficientNet-Lite0.
=============================================================================

Policies (all with augment="none", so the frozen-prefix cache applies where it can):

- full fine-tune: ``frozen_depth=0``
- linear probe: ``frozen_depth="all"`` (lr 1e-2: only a head trains)
- partial: ``frozen_depth=4`` (stem and the first three stages frozen)
- gradual: ``freeze="gradual", freeze__every=2`` (head first, one group more every 2 epochs)
- LP-FT: ``freeze="lp_ft", freeze__probe_epochs=3``
- discriminative LRs: ``frozen_depth=0, freeze__lr_decay=0.7``

on digits (100 training images, 500 test) and, when ../shared/data/hymenoptera
exists, the ants/bees train/val split, for 3 seeds. Prints a table (test
accuracy mean ± std over seeds, fit time) and saves a plot and a CSV to ``--out``.

Run: ``python examples/freezing_policies.py`` (about 10 minutes on 2 CPU cores
at 64 px; ``--quick`` is a smoke run).

.. figure:: /freezing_policies.png
   :alt: test accuracy of six freezing policies on digits and ants/bees

   The plot of a full run, committed as ``docs/freezing_policies.png``;
   the command and the measured table are on the Benchmarks page of the documentation.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np
import torch

from skft import FineTunedClassifier
from skft.data.datasets import load_digits_images, load_image_folder

HERE = Path(__file__).resolve().parent
#: the ants/bees images beside the checkout (absent on a user's clone: the example skips them)
HYMENOPTERA = HERE.parents[1] / "shared" / "data" / "hymenoptera"

DEFAULT_DATA = HYMENOPTERA

POLICIES = {
    "full fine-tune": dict(frozen_depth=0),
    "linear probe": dict(frozen_depth="all", lr=1e-2),
    "partial (depth 4)": dict(frozen_depth=4),
    "gradual (every 2)": dict(freeze="gradual", freeze__every=2, frozen_depth=0),
    "LP-FT (probe 3)": dict(freeze="lp_ft", freeze__probe_epochs=3, frozen_depth=0),
    "LR decay 0.7": dict(frozen_depth=0, freeze__lr_decay=0.7),
}


def run(name: str, data, seeds, args) -> list[dict]:
    Xtr, Xte, ytr, yte = data  # as train_test_split orders them
    rows = []
    for policy, params in POLICIES.items():
        for seed in seeds:
            settings = dict(
                pretrained=True,
                augment="none",
                image_size=args.image_size,
                lr=args.lr,
                max_epochs=args.epochs,
                batch_size=32,
                device="cpu",
                random_state=seed,
                verbose=0,
            )
            settings.update(params)
            start = time.perf_counter()
            clf = FineTunedClassifier("efficientnet_lite0", **settings).fit(Xtr, ytr)
            secs = time.perf_counter() - start
            acc = clf.score(Xte, yte)
            print(f"  {name:<9} {policy:<18} seed {seed}: accuracy {acc:.3f} ({secs:.0f} s)")
            rows.append(dict(dataset=name, policy=policy, seed=seed, accuracy=acc, seconds=secs))
    return rows


def summarize(rows: list[dict]) -> list[tuple[str, str, float, float, float]]:
    out = []
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        for policy in POLICIES:
            sel = [r for r in rows if r["dataset"] == dataset and r["policy"] == policy]
            accs = np.array([r["accuracy"] for r in sel])
            secs = float(np.mean([r["seconds"] for r in sel]))
            out.append((dataset, policy, float(accs.mean()), float(accs.std()), secs))
    return out


def plot(summary, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(s[0] for s in summary))
    policies = list(POLICIES)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.8 / len(datasets)
    x = np.arange(len(policies))
    for k, dataset in enumerate(datasets):
        sel = {s[1]: s for s in summary if s[0] == dataset}
        means = [sel[p][2] for p in policies]
        stds = [sel[p][3] for p in policies]
        secs = [sel[p][4] for p in policies]
        axes[0].bar(x + k * width, means, width, yerr=stds, capsize=3, label=dataset)
        axes[1].bar(x + k * width, secs, width, label=dataset)
    for ax, title in zip(axes, ("test accuracy (mean ± std, 3 seeds)", "fit time (s)")):
        ax.set_xticks(x + width * (len(datasets) - 1) / 2, policies, rotation=25, ha="right")
        ax.set_title(title)
        ax.legend()
    axes[0].set_ylim(0, 1)
    fig.suptitle("Freezing policies, pretrained EfficientNet-Lite0")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="ants/bees folder")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=HERE / "out")
    parser.add_argument("--quick", action="store_true", help="2 epochs, 1 seed, small sets")
    args = parser.parse_args()
    if args.quick:
        args.epochs, args.seeds = 2, [0]
    torch.set_num_threads(max(1, torch.get_num_threads()))
    args.out.mkdir(parents=True, exist_ok=True)

    start = time.perf_counter()
    n_test = 100 if args.quick else 500
    digits = load_digits_images(100, n_test, image_size=args.image_size)
    rows = run("digits", digits, args.seeds, args)
    if (args.data / "train").is_dir():
        train, val = (
            load_image_folder(args.data / split, args.image_size, limit=20 if args.quick else None)
            for split in ("train", "val")
        )
        data = (train.images, val.images, train.labels, val.labels)
        rows += run("ants/bees", data, args.seeds, args)
    else:
        print(f"(no {args.data}/train: ants/bees skipped)")

    summary = summarize(rows)
    print(f"\n{args.image_size} px, {args.epochs} epochs, seeds {args.seeds}\n")
    print("| dataset | policy | accuracy (mean ± std) | fit time (s) |")
    print("|---|---|---:|---:|")
    for dataset, policy, mean, std, secs in summary:
        print(f"| {dataset} | {policy} | {mean:.3f} ± {std:.3f} | {secs:.1f} |")
    with open(args.out / "freezing_policies.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plot(summary, args.out / "freezing_policies.png")
    print(f"\nplot: {args.out / 'freezing_policies.png'}  ({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()

# sphinx_gallery_thumbnail_path = "freezing_policies.png"
