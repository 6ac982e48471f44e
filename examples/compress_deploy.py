"""Fine-tune, prune, quantize, compare: a fine-tuned model made small and fast for a CPU.
======================================================================================

The deployment scenario on scikit-learn's digits (64x64 grayscale by default):

1. fine-tune pretrained EfficientNet-Lite0 (``FineTunedClassifier``);
2. compress the fitted model four ways with ``skft.Compressed(prefit=True)``:
   float32 as is, 30% of the channels pruned (plus recovery epochs), static int8
   (ONNX Runtime), and pruned then int8;
3. compare test accuracy, model size (the ONNX file) and CPU latency in ONNX
   Runtime at batch 1 (median of repeated runs);

then prints a table and saves ``compress_deploy.png``: accuracy against size and
against latency, one point per variant.

Run: ``python examples/compress_deploy.py`` (about 2 minutes on 2 CPU cores);
``--quick`` is a smoke run of a few seconds (smallcnn, 16 px, 1 epoch).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from skft import Compressed, FineTunedClassifier
from skft.data.adapters import adapt_input, as_float_images
from skft.data.datasets import load_digits_images
from skft.deploy.onnx_export import OnnxModel, export_onnx


def latency_ms(model: OnnxModel, x: np.ndarray, repeats: int) -> float:
    """Median milliseconds of ``model.run(x)`` after three warm-up runs."""
    for _ in range(3):
        model.run(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.run(x)
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--n-train", type=int, default=300)
    parser.add_argument("--n-test", type=int, default=500)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--prune", type=float, default=0.3)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--out", type=Path, default=Path("examples/out"))
    parser.add_argument("--quick", action="store_true", help="smallcnn, 16 px, 1 epoch")
    args = parser.parse_args(argv)
    if args.quick:
        args.backbone, args.n_train, args.n_test, args.image_size = "smallcnn", 60, 60, 16
        args.epochs, args.repeats = 1, 3

    X_train, X_test, y_train, y_test = load_digits_images(
        args.n_train, args.n_test, image_size=args.image_size, random_state=0
    )
    start = time.perf_counter()
    clf = FineTunedClassifier(
        args.backbone,
        pretrained=args.backbone != "smallcnn",
        image_size=args.image_size,
        max_epochs=args.epochs,
        batch_size=32,
        random_state=0,
    ).fit(X_train, y_train)
    print(f"fine-tuned {args.backbone} in {time.perf_counter() - start:.0f} s")

    pruned = Compressed(clf, prune=args.prune, prefit=True).fit(X_train, y_train)
    variants = {
        "float32": Compressed(clf, prefit=True).fit(X_train, y_train),
        f"pruned {args.prune}": pruned,
        "int8": Compressed(clf, quantize="int8", prefit=True, random_state=0),
        f"pruned {args.prune} + int8": Compressed(
            pruned.estimator_, quantize="int8", prefit=True, random_state=0
        ),
    }
    inputs = as_float_images(adapt_input(clf, X_test[:1], fitting=False)).numpy()
    results: dict[str, dict[str, float]] = {}
    for name, comp in variants.items():
        if not hasattr(comp, "estimator_"):
            comp.fit(X_train, y_train)
        est = comp.estimator_
        model = comp.onnx_model_ or OnnxModel(
            export_onnx(est.module_, est.input_shape_, str(est.backbone))
        )
        results[name] = {
            "accuracy": comp.score(X_test, y_test),
            "size_mb": model.nbytes / 1e6,
            "latency_ms": latency_ms(model, inputs, args.repeats),
            "params": comp.compression_report_["params_after"],
        }

    base = results["float32"]
    print(f"\n{'variant':<22}{'accuracy':>10}{'size (MB)':>11}{'batch 1 (ms)':>14}{'params':>11}")
    for name, r in results.items():
        print(
            f"{name:<22}{r['accuracy']:>10.3f}{r['size_mb']:>11.2f}{r['latency_ms']:>14.2f}"
            f"{r['params']:>11,}  ({base['size_mb'] / r['size_mb']:.1f}x smaller, "
            f"{base['latency_ms'] / r['latency_ms']:.1f}x faster)"
        )
    plot(results, args.out / "compress_deploy.png", args.backbone)
    return results


def plot(results: dict[str, dict[str, float]], path: Path, backbone: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), sharey=True)
    for ax, key, label in (
        (axes[0], "size_mb", "model size (MB, ONNX)"),
        (axes[1], "latency_ms", "CPU latency at batch 1 (ms, ONNX Runtime)"),
    ):
        for name, r in results.items():
            ax.scatter(r[key], r["accuracy"], s=60)
            ax.annotate(name, (r[key], r["accuracy"]), textcoords="offset points", xytext=(5, 5))
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy")
    fig.suptitle(f"{backbone} on digits: accuracy against size and latency")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"saved {path}")


if __name__ == "__main__":
    main()
