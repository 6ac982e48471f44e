"""Shared fixtures: a few digits as tiny images, and fast estimator settings."""

from __future__ import annotations

import pytest
import torch

from skft.datasets import load_digits_images

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def digits():
    """60 digit images (N, 8, 8) as float in [0, 1] and their int labels, 3 classes."""
    X, y = load_digits_images(n_class=3)
    return X[:60], y[:60]


@pytest.fixture(scope="session")
def fast_settings():
    """Settings for a tiny model that fits in a fraction of a second (for wider-scoped fixtures)."""
    return dict(
        backbone="smallcnn",
        pretrained=False,
        image_size=16,
        max_epochs=2,
        batch_size=16,
        verbose=0,
        random_state=0,
        augment_strength=0.0,
    )


@pytest.fixture
def fast(fast_settings):
    """A fresh copy of :func:`fast_settings` for one test."""
    return dict(fast_settings)
