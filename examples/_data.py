"""Data shared by the examples: a digits split and an ImageFolder-style train/val set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from skft.data import adapt_images

HERE = Path(__file__).resolve().parent
#: the ants/bees images beside the checkout (absent on a user's clone: examples skip them)
HYMENOPTERA = HERE.parents[1] / "shared" / "data" / "hymenoptera"


def digits_data(n_train: int, n_test: int, size: int):
    """A stratified digits split, adapted once to ``size`` px uint8/float images."""
    X, y = load_digits(return_X_y=True)
    X = (X.reshape(-1, 8, 8) / 16).astype(np.float32)
    Xtr, Xte, ytr, yte = train_test_split(
        X, y, train_size=n_train, test_size=n_test, stratify=y, random_state=0
    )
    return adapt_images(Xtr, size), ytr, adapt_images(Xte, size), yte


def image_folder_data(root: Path, size: int, limit: int | None):
    """``root/train`` and ``root/val`` with one sub-folder per class, decoded once to uint8."""

    def split(name: str):
        paths = sorted(p for p in (root / name).glob("*/*") if p.is_file())
        if limit:
            paths = paths[:: max(1, len(paths) // limit)][:limit]
        labels = np.array([p.parent.name for p in paths])
        return adapt_images([str(p) for p in paths], size), labels

    return (*split("train"), *split("val"))
