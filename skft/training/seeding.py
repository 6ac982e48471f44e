"""Seeding one fit call from ``random_state`` without touching the global RNGs."""

from __future__ import annotations

import contextlib
import numbers
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from sklearn.utils import check_random_state

__all__ = ["fit_seed", "seeded"]


def fit_seed(random_state: Any, step: int) -> int | None:
    """A seed for the fit call that starts at epoch ``step``; ``None`` without ``random_state``.

    Each ``partial_fit`` call (one epoch) gets its own seed, so a fit made of
    epochs in one call or in many draws the same numbers.
    """
    if random_state is None:
        return None
    base = random_state
    if not isinstance(base, numbers.Integral):
        base = check_random_state(base).randint(2**31 - 1)
    return int(np.random.SeedSequence([int(base), step]).generate_state(1)[0])


@contextlib.contextmanager
def seeded(random_state: Any, step: int, device: Any) -> Iterator[torch.Generator]:
    """Seed torch's RNGs for one fit call and yield the augmentation generator on ``device``.

    With ``random_state`` set, torch's global RNG state (CPU, and the CUDA
    device in use) is forked and restored afterwards, so initialization,
    shuffling and dropout are repeatable without changing the caller's RNGs.
    """
    device = torch.device(device or "cpu")
    seed = fit_seed(random_state, step)
    if seed is None:
        ctx: contextlib.AbstractContextManager = contextlib.nullcontext()
    else:
        devices = [device.index or 0] if device.type == "cuda" else []
        ctx = torch.random.fork_rng(devices=devices)
    with ctx:
        if seed is not None:
            torch.manual_seed(seed)
        generator = torch.Generator(device=device)
        generator.manual_seed(int(torch.randint(2**62, (1,))))
        yield generator
