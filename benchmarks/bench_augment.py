"""Augmenter throughput: skft's batched augmenters vs torchvision.transforms.v2 per sample.

Part 1 - images/s of each augmenter at strength 1 on a batch of 3x64x64
images: skft's vectorised augmenter (per-sample random parameters, one call
per batch) on CPU (and CUDA when available), against the same
torchvision.transforms.v2 operations applied per sample in a DataLoader
(0 and 2 workers) and, for reference, v2 applied to the whole batch tensor
(one set of random parameters for the whole batch, so not the same thing).
MixUp/CutMix are batch-level in torchvision: they run in the collate_fn.

Part 2 - the share of epoch time spent augmenting when fine-tuning resnet18
(pretrained=False) at 64x64 with batch 32 on this machine's CPU threads.

Run: ``python benchmarks/bench_augment.py [--quick]`` (wrap it in
``flock /tmp/skft-bench.lock`` on a shared machine).
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, default_collate

import skft
from skft import FineTunedClassifier, hookimpl
from skft.augment import build_augmenter
from skft.plugins import pm

NAMES = ["basic", "color", "randaugment", "mixup", "cutmix", "basic+mixup"]
N_CLASSES = 10


def torchvision_ops(name: str):
    """The torchvision.transforms.v2 counterpart of ``name`` at strength 1: (per sample, batch)."""
    from torchvision.transforms import v2

    basic = v2.Compose(
        [
            v2.RandomHorizontalFlip(0.5),
            v2.RandomAffine(degrees=20, translate=(0.15, 0.15), scale=(1.0, 1 / math.sqrt(0.5))),
        ]
    )
    per_sample = {
        "basic": basic,
        "color": v2.ColorJitter(0.4, 0.4, 0.4, 0.1),
        "randaugment": v2.RandAugment(num_ops=2, magnitude=30, num_magnitude_bins=31),
        "mixup": None,
        "cutmix": None,
        "basic+mixup": basic,
    }[name]
    batch = {
        "mixup": v2.MixUp(alpha=1.0, num_classes=N_CLASSES),
        "cutmix": v2.CutMix(alpha=1.0, num_classes=N_CLASSES),
        "basic+mixup": v2.MixUp(alpha=1.0, num_classes=N_CLASSES),
    }.get(name)
    return per_sample, batch


class Images(Dataset):
    def __init__(self, X, y, transform):
        self.X, self.y, self.transform = X, y, transform

    def __len__(self):
        return len(self.X)

    def __getitem__(self, i):
        x = self.X[i]
        return (self.transform(x) if self.transform else x), self.y[i]


def _rate(fn, n_images: int, repeats: int, sync=lambda: None) -> float:
    fn()  # warm-up
    sync()
    best = math.inf
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - t)
    return n_images / best


def bench_ours(name, X, y, repeats):
    aug = build_augmenter(name, {})
    gen = torch.Generator(device=X.device).manual_seed(0)
    onehot = torch.nn.functional.one_hot(y, N_CLASSES).float()
    if getattr(aug, "mixes_targets", False):
        fn = lambda: aug(X, 1.0, gen, y=onehot)  # noqa: E731
    else:
        fn = lambda: aug(X, 1.0, gen)  # noqa: E731
    sync = torch.cuda.synchronize if X.device.type == "cuda" else (lambda: None)
    return _rate(fn, len(X), repeats, sync)


def bench_loader(name, X, y, batch, workers, repeats):
    per_sample, batch_op = torchvision_ops(name)

    def collate(items):
        xb, yb = default_collate(items)
        return batch_op(xb, yb) if batch_op is not None else (xb, yb)

    loader = DataLoader(
        Images(X, y, per_sample),
        batch_size=batch,
        num_workers=workers,
        collate_fn=collate,
        persistent_workers=workers > 0,
    )
    return _rate(lambda: [b for b in loader], len(X), repeats)


def bench_batched(name, X, y, repeats):
    per_sample, batch_op = torchvision_ops(name)

    def fn():
        xb = per_sample(X) if per_sample is not None else X
        return batch_op(xb, y) if batch_op is not None else xb

    return _rate(fn, len(X), repeats)


# --------------------------------------------------------------------------
# part 2: share of an epoch
# --------------------------------------------------------------------------


class Timed:
    """Wraps a built augmenter and adds up the time spent in it."""

    times: list[float] = []

    def __init__(self, inner: str = "basic") -> None:
        self.inner = build_augmenter(inner, {})
        self.mixes_targets = getattr(self.inner, "mixes_targets", False)
        self.input_kinds = self.inner.input_kinds

    def __call__(self, X, strength, generator, y=None):
        t = time.perf_counter()
        out = (
            self.inner(X, strength, generator, y=y)
            if y is not None
            else self.inner(X, strength, generator)
        )
        if X.device.type == "cuda":
            torch.cuda.synchronize()
        Timed.times.append(time.perf_counter() - t)
        return out


class TimedPlugin:
    @hookimpl
    def register_augmenters(self, register):
        register("timed", Timed)


def epoch_share(n_images: int, epochs: int, device: str) -> list[tuple[str, float, float, float]]:
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, size=(n_images, 64, 64, 3), dtype=np.uint8)
    y = rng.integers(0, N_CLASSES, size=n_images)
    skft.plugins.load_plugins()
    pm.register(TimedPlugin(), "bench-timed")
    rows = []
    for name in ["none", *NAMES]:
        Timed.times = []
        clf = FineTunedClassifier(
            "resnet18",
            pretrained=False,
            image_size=64,
            batch_size=32,
            max_epochs=epochs,
            augment="timed",
            augment__inner=name,
            augment_strength=1.0,
            feature_cache=False,
            device=device,
            random_state=0,
            verbose=0,
        ).fit(X, y)
        skip = 1 if epochs > 1 else 0  # the first epoch warms up
        measured = [h["dur"] for h in clf.history][skip:]
        aug_time = sum(Timed.times[skip * math.ceil(n_images / 32) :]) / len(measured)
        epoch = sum(measured) / len(measured)
        rows.append((name, n_images / epoch, aug_time, epoch))
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epoch-images", type=int, default=512)
    parser.add_argument("--epochs", type=int, default=3, help="first epoch is warm-up")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--parts", default="1,2", help="which parts to run (1, 2 or 1,2)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: tiny sizes")
    args = parser.parse_args(argv)
    if args.quick:
        args.batch, args.repeats, args.epoch_images, args.epochs = 64, 1, 64, 2
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")

    if "1" in args.parts:
        part1(args)
    if "2" in args.parts:
        part2(args)


def part1(args) -> None:
    gen = torch.Generator().manual_seed(0)
    X = torch.rand(args.batch, 3, args.size, args.size, generator=gen)
    y = torch.randint(N_CLASSES, (args.batch,), generator=gen)
    cuda = torch.cuda.is_available()
    header = (
        f"{'augmenter':<13} {'skft cpu':>10} {'skft cuda':>10} {'v2/sample w0':>13} "
        f"{'v2/sample w2':>13} {'v2 batch*':>10}"
    )
    print(
        f"\nPart 1: images/s at strength 1, batch {args.batch}x3x{args.size}x{args.size} "
        "(best of repeats)"
    )
    print(header)
    print("-" * len(header))
    for name in NAMES:
        ours = bench_ours(name, X, y, args.repeats)
        ours_cuda = bench_ours(name, X.cuda(), y.cuda(), args.repeats) if cuda else float("nan")
        w0 = bench_loader(name, X, y, args.batch, 0, args.repeats)
        w2 = bench_loader(name, X, y, args.batch, 2, args.repeats)
        batched = bench_batched(name, X, y, args.repeats)
        print(
            f"{name:<13} {ours:>10.0f} {ours_cuda:>10.0f} {w0:>13.0f} {w2:>13.0f} {batched:>10.0f}"
        )
    print(
        "* v2 on the whole batch tensor draws one set of parameters for the batch (not per sample)"
    )


def part2(args) -> None:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(
        f"\nPart 2: resnet18 (pretrained=False), 64x64, batch 32, {args.epoch_images} images, "
        f"{device}, {torch.get_num_threads()} threads, mean over epochs 2..{args.epochs}"
    )
    header = (
        f"{'augmenter':<13} {'train img/s':>11} {'augment s/ep':>12} {'epoch s':>8} {'share':>7}"
    )
    print(header)
    print("-" * len(header))
    for name, rate, aug_time, total in epoch_share(args.epoch_images, args.epochs, device):
        print(f"{name:<13} {rate:>11.0f} {aug_time:>12.3f} {total:>8.2f} {aug_time / total:>7.1%}")


if __name__ == "__main__":
    main()
