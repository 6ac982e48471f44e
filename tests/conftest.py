"""Shared fixtures: a few digits as tiny images, fast estimator settings, a rate recorder."""

from __future__ import annotations

import pytest
import torch
from skorch.callbacks import Callback

from skft.data.datasets import load_digits_images

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


class RecordRates(Callback):
    """Each training batch's learning rate per optimizer group: ``rates[i][name]``."""

    def initialize(self):
        self.rates = []
        return self

    def on_batch_end(self, net, training=False, **kwargs):
        if training:
            self.rates.append({g["name"]: g["lr"] for g in net.optimizer_.param_groups})


@pytest.fixture
def rate_recorder():
    """A fresh :class:`RecordRates` callback."""
    return RecordRates()
