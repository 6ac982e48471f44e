"""How much data do I need? A learning curve on digits, pretrained vs from scratch vs pixels.
==========================================================================================

For training sets of 25 to 1,000 of scikit-learn's 8x8 digits (stratified; the same 500
held-out digits for every point), trains

- the pretrained EfficientNet-Lite0, fully fine-tuned;
- the same network as a linear probe (backbone frozen, only the head trains);
- the same network from random weights (``pretrained=False``), trained the same way;
- an SVC (RBF kernel) on the raw 64 pixels, the classical baseline,

then prints test accuracy per size and method and saves ``learning_curve.png`` (accuracy
against training-set size, log scale, in the style of scikit-learn's
``LearningCurveDisplay``). The question it answers: does pretraining help most when data
is scarce, and does the gap to training from scratch shrink as data grows?

Run: ``python examples/learning_curve.py`` (several minutes on 2 CPU cores at 32 px);
``--quick`` is a smoke run of a few seconds.

.. figure:: /learning_curve.png
   :alt: test accuracy against the number of training digits, four methods

   The plot of a full run, committed as ``docs/learning_curve.png``;
   the command and the measured table are on the Benchmarks page of the documentation.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from sklearn.svm import SVC

from skft import FineTunedClassifier
from skft.data.datasets import load_digits_images

METHODS = {
    "fine-tune (pretrained)": dict(pretrained=True, frozen_depth=0, lr=1e-3),
    "linear probe (pretrained)": dict(pretrained=True, frozen_depth="all", lr=1e-2),
    "from scratch": dict(pretrained=False, frozen_depth=0, lr=1e-3),
}


def main(argv: list[str] | None = None) -> dict[str, list[float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[25, 50, 100, 200, 500, 1000])
    parser.add_argument("--n-test", type=int, default=500)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("examples/out"))
    parser.add_argument("--quick", action="store_true", help="two small sizes, 1 epoch")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.n_test, args.epochs, args.image_size = [20, 40], 60, 1, 16

    results: dict[str, list[float]] = {name: [] for name in [*METHODS, "SVC on pixels"]}
    for n in args.sizes:
        Xtr, Xte, ytr, yte = load_digits_images(
            n, args.n_test, image_size=args.image_size, random_state=args.seed
        )
        for name, params in METHODS.items():
            t0 = time.perf_counter()
            clf = FineTunedClassifier(
                "efficientnet_lite0",
                **params,
                augment="basic",
                augment_strength=0.5,
                augment__flip=0.0,
                image_size=args.image_size,
                max_epochs=args.epochs,
                batch_size=32,
                random_state=args.seed,
            ).fit(Xtr, ytr)
            results[name].append(clf.score(Xte, yte))
            print(
                f"n={n:>5}  {name:<26} accuracy {results[name][-1]:.3f}"
                f"  ({time.perf_counter() - t0:.0f} s)",
                flush=True,
            )
        pixels, test = load_digits_images(n, args.n_test, random_state=args.seed)[:2]
        svc = SVC().fit(pixels.reshape(n, -1), ytr)
        results["SVC on pixels"].append(svc.score(test.reshape(len(test), -1), yte))
        print(f"n={n:>5}  {'SVC on pixels':<26} accuracy {results['SVC on pixels'][-1]:.3f}")

    print()
    print(f"{'training images':<26}" + "".join(f"{n:>8}" for n in args.sizes))
    for name, scores in results.items():
        print(f"{name:<26}" + "".join(f"{s:>8.3f}" for s in scores))
    gap = np.subtract(results["fine-tune (pretrained)"], results["from scratch"])
    print(f"{'gap: pretrained - scratch':<26}" + "".join(f"{g:>+8.3f}" for g in gap))
    plot(args.sizes, results, args.out / "learning_curve.png")
    return results


def plot(sizes: list[int], results: dict[str, list[float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, scores in results.items():
        ax.plot(sizes, scores, marker="o", label=name)
    ax.set_xscale("log")
    ax.set_xticks(sizes, [str(n) for n in sizes])
    ax.set_xlabel("training images (digits, stratified)")
    ax.set_ylabel("test accuracy (500 held-out digits)")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.set_title("Learning curve: pretrained EfficientNet-Lite0 vs from scratch vs pixels")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"saved {path}")


if __name__ == "__main__":
    main()

# sphinx_gallery_thumbnail_path = "learning_curve.png"
