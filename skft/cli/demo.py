"""``skft demo``: pretrained fine-tuning vs training from scratch vs a linear probe, on digits."""

from __future__ import annotations

import csv
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from skorch.callbacks import Callback

__all__ = ["EpochProgress", "environment", "run_demo"]


class EpochProgress(Callback):
    """One short line per epoch: ``[label] epoch 3/10  loss 0.512  2.1 s``."""

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total = label, total

    def on_epoch_end(self, net, **kwargs) -> None:
        row = net.history[-1]
        print(
            f"  [{self.label}] epoch {row['epoch']:>2}/{self.total}  "
            f"loss {row['train_loss']:.3f}  {row['dur']:.1f} s",
            flush=True,
        )


@dataclass
class Result:
    method: str
    pretrained: bool | str
    frozen_depth: str
    lr: float
    accuracy: float
    macro_f1: float
    fit_seconds: float
    losses: list[float]


def environment() -> str:
    """Versions and torch's thread count: results differ a little between machines.

    Thread count and CPU kernels change the order of float reductions, so the
    same seed gives slightly different losses (and sometimes accuracies)
    elsewhere; this line says what a run used.
    """
    import importlib
    import platform

    import torch

    from .. import __version__

    parts = [f"skft {__version__}"]
    for name, module in (
        ("torch", "torch"),
        ("torchvision", "torchvision"),
        ("timm", "timm"),
        ("scikit-learn", "sklearn"),
        ("numpy", "numpy"),
    ):
        try:  # the module's own version: torch's says which build (+cpu, +cu130)
            parts.append(f"{name} {importlib.import_module(module).__version__}")
        except ImportError:
            if name != "timm":  # timm is optional (the skft-timm plugin)
                parts.append(f"{name} (not installed)")
    return (
        ", ".join(parts)
        + f"; python {platform.python_version()}; torch threads {torch.get_num_threads()}"
    )


def run_demo(
    backbone: str = "efficientnet_lite0",
    n_train: int = 200,
    n_test: int = 500,
    epochs: int = 10,
    image_size: int = 64,
    out: str | Path = "skft-demo",
    seed: int = 0,
    *,
    pretrained: bool | str = True,
) -> list[Result]:
    """Fit the three runs, print a table and save results.csv/.json and demo.png in ``out``.

    ``pretrained`` is what the fine-tune and linear-probe runs start from
    (the from-scratch run always starts from random weights); ``False``
    only makes sense for a smoke test or a backbone without weights.
    """
    from sklearn.metrics import accuracy_score, f1_score

    from ..data.datasets import load_digits_images
    from ..estimators import FineTunedClassifier

    print(environment(), flush=True)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    Xtr, Xte, ytr, yte = load_digits_images(n_train, n_test, random_state=seed)
    print(
        f"digits: {len(Xtr)} training and {len(Xte)} test images, 8x8 upscaled to "
        f"{image_size}x{image_size}; backbone {backbone}, {epochs} epochs each",
        flush=True,
    )
    common = dict(
        image_size=image_size,
        max_epochs=epochs,
        random_state=seed,
        verbose=0,
        augment="basic",
        augment_strength=0.5,
        augment__flip=0.0,
        lr_schedule="constant",  # the three runs alike, whatever the fit plan would pick
        batch_size=32,
    )  # digits: no mirror
    runs = [
        ("fine-tune", dict(pretrained=pretrained, frozen_depth=0, lr=1e-3)),
        ("from scratch", dict(pretrained=False, frozen_depth=0, lr=1e-3)),
        ("linear probe", dict(pretrained=pretrained, frozen_depth="all", lr=1e-2)),
    ]
    results = []
    for i, (label, params) in enumerate(runs, 1):
        print(
            f"[{i}/{len(runs)}] {label}: pretrained={params['pretrained']}, "
            f"frozen_depth={params['frozen_depth']!r}, lr={params['lr']}",
            flush=True,
        )
        clf = FineTunedClassifier(
            backbone, **common, **params, callbacks=[("progress", EpochProgress(label, epochs))]
        )
        start = time.perf_counter()
        clf.fit(Xtr, ytr)
        seconds = time.perf_counter() - start
        pred = clf.predict(Xte)
        results.append(
            Result(
                label,
                params["pretrained"],
                str(params["frozen_depth"]),
                params["lr"],
                accuracy_score(yte, pred),
                f1_score(yte, pred, average="macro"),
                seconds,
                [float(v) for v in clf.history[:, "train_loss"]],
            )
        )
    print()
    print(format_table(results))
    _save(results, out)
    print(f"\nsaved {out / 'results.csv'}, {out / 'results.json'} and {out / 'demo.png'}")
    return results


def format_table(results: list[Result]) -> str:
    header = (
        f"{'method':<14} {'pretrained':>10} {'frozen':>7} {'lr':>7} {'accuracy':>9} "
        f"{'macro F1':>9} {'fit time':>9}"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        lines.append(
            f"{r.method:<14} {str(r.pretrained):>10} {r.frozen_depth:>7} {r.lr:>7g} "
            f"{r.accuracy:>9.3f} {r.macro_f1:>9.3f} {r.fit_seconds:>8.1f}s"
        )
    return "\n".join(lines)


def _save(results: list[Result], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [asdict(r) for r in results]
    (out / "results.json").write_text(json.dumps(rows, indent=2))
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[k for k in rows[0] if k != "losses"])
        writer.writeheader()
        writer.writerows({k: v for k, v in row.items() if k != "losses"} for row in rows)

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    names = [r.method for r in results]
    bars = left.bar(names, [r.accuracy for r in results], color=["C0", "C1", "C2"])
    for bar, r in zip(bars, results):
        left.text(
            bar.get_x() + bar.get_width() / 2,
            bar.get_height() + 0.01,
            f"{r.accuracy:.3f}\n{r.fit_seconds:.0f} s",
            ha="center",
            va="bottom",
        )
    left.set_ylim(0, 1.15)
    left.set_ylabel("test accuracy")
    left.set_title("Accuracy on held-out digits (label: accuracy, fit time)")
    for r in results:
        right.plot(range(1, len(r.losses) + 1), r.losses, marker="o", label=r.method)
    right.set_xlabel("epoch")
    right.set_ylabel("training loss")
    right.set_title("Training loss")
    right.legend()
    fig.tight_layout()
    fig.savefig(out / "demo.png", dpi=110)
    plt.close(fig)
