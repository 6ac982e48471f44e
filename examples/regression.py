"""Regression: how far is this photo rotated? FineTunedRegressor trained with MSE and with MAE.
============================================================================================

No image set with a natural continuous label ships offline, so the target is one that
can be made exactly on real photos: each flower photo of ``../shared/data/flowers12`` is
rotated by an angle drawn uniformly from [-``--max-angle``, +``--max-angle``] degrees and
centre-cropped (no black corners), and the network regresses the angle. Orientation
estimation is a real task (straightening scans and photos), and a pretrained network
knows what upright flowers, stems and skies look like, which is what it has to use.

The same pretrained EfficientNet-Lite0 is fine-tuned twice, with
``criterion=torch.nn.MSELoss`` (the default) and ``torch.nn.L1Loss`` (MAE), and both are
scored with both metrics on held-out photos (other photos, other angles). Augmentation is
``"color"`` only: flips and rotations would change the target. ``FineTunedRegressor``
standardises the target while training and predicts in degrees. Saves
``regression_prediction_error.png`` (scikit-learn's ``PredictionErrorDisplay``: predicted
against true angle, one panel per loss).

Run: ``python examples/regression.py``; ``--quick`` is a smoke run on digits that needs no
data folder.

.. figure:: /regression_prediction_error.png
   :alt: predicted against true rotation angle, one panel per loss

   The plot of a full run, committed as ``docs/regression_prediction_error.png``;
   the command and the measured table are on the Benchmarks page of the documentation.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import mean_absolute_error, mean_squared_error

from skft import FineTunedRegressor
from skft.data.datasets import load_digits_images, load_image_folder

LOSSES = {"MSE loss": torch.nn.MSELoss, "MAE loss": torch.nn.L1Loss}


def rotated(images: np.ndarray, max_angle: float, size: int, seed: int):
    """Each image turned by a random angle, centre-cropped to ``size``; the angles."""
    from torchvision.transforms.v2 import functional as F

    rng = np.random.default_rng(seed)
    angles = rng.uniform(-max_angle, max_angle, len(images)).astype(np.float32)
    x = torch.as_tensor(images)
    x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)  # (N, C, H, W)
    out = [
        F.center_crop(F.rotate(img, float(a), F.InterpolationMode.BILINEAR), [size, size])
        for img, a in zip(x, angles)
    ]
    return torch.stack(out).numpy(), angles


def load(args):
    """Training and held-out images, at 1.5x the input size so that the crop has no corners."""
    big = int(args.image_size * 1.5)
    if args.quick:
        Xtr, Xte = load_digits_images(80, 40, image_size=big, random_state=args.seed)[:2]
    else:
        Xtr = load_image_folder(args.data / "train", image_size=big)[0]
        Xte = load_image_folder(args.data / "val", image_size=big)[0]
    Xtr, ytr = rotated(Xtr, args.max_angle, args.image_size, args.seed)
    Xte, yte = rotated(Xte, args.max_angle, args.image_size, args.seed + 1)
    return Xtr, Xte, ytr, yte


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/flowers12"))
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--max-angle", type=float, default=45.0)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("examples/out"))
    parser.add_argument("--quick", action="store_true", help="digits at 24 px, 1 epoch")
    args = parser.parse_args(argv)
    if args.quick:
        args.image_size, args.epochs = 24, 1

    Xtr, Xte, ytr, yte = load(args)
    print(
        f"{len(Xtr)} training and {len(Xte)} held-out images, {args.image_size} px, "
        f"angles in +-{args.max_angle:g} degrees"
    )
    results, predictions = {}, {}
    for name, criterion in LOSSES.items():
        t0 = time.perf_counter()
        reg = FineTunedRegressor(
            "efficientnet_lite0",
            criterion=criterion,
            augment="color",
            lr=args.lr,
            max_epochs=args.epochs,
            batch_size=32,
            image_size=args.image_size,
            random_state=args.seed,
        ).fit(Xtr, ytr)
        pred = reg.predict(Xte)
        predictions[name] = pred
        results[name] = {
            "MSE": mean_squared_error(yte, pred),
            "MAE": mean_absolute_error(yte, pred),
            "R2": reg.score(Xte, yte),
        }
        print(f"{name}: trained in {time.perf_counter() - t0:.0f} s", flush=True)
    baseline = np.full_like(yte, ytr.mean())
    results["predict the mean"] = {
        "MSE": mean_squared_error(yte, baseline),
        "MAE": mean_absolute_error(yte, baseline),
        "R2": 0.0,
    }
    print(f"\n{'trained with':<18}{'test MSE':>10}{'test MAE':>10}{'R2':>8}")
    for name, m in results.items():
        print(f"{name:<18}{m['MSE']:>10.1f}{m['MAE']:>10.2f}{m['R2']:>8.3f}")
    plot(yte, predictions, args.out / "regression_prediction_error.png")
    return results


def plot(y_true, predictions: dict[str, np.ndarray], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import PredictionErrorDisplay

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, len(predictions), figsize=(5 * len(predictions), 4.5))
    for ax, (name, pred) in zip(np.atleast_1d(axes), predictions.items()):
        PredictionErrorDisplay.from_predictions(
            y_true, pred, kind="actual_vs_predicted", ax=ax, scatter_kwargs={"alpha": 0.5}
        )
        ax.set_title(f"EfficientNet-Lite0, {name}")
        ax.set_xlabel("predicted angle (degrees)")
        ax.set_ylabel("true angle (degrees)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"saved {path}")


if __name__ == "__main__":
    main()

# sphinx_gallery_thumbnail_path = "regression_prediction_error.png"
