"""Devices: ``device="auto"``, and one device per parallel search trial."""

from __future__ import annotations

import contextlib
import queue
import sys
from collections.abc import Iterator, Sequence
from typing import Any

__all__ = [
    "DevicePool",
    "cuda_count",
    "resolve_device",
    "trial_devices",
    "unpickling_device",
]


def resolve_device(device: Any) -> Any:
    """``"auto"`` becomes ``"cuda"`` when CUDA is available, else ``"cpu"``.

    skorch (1.4) takes a torch device name or ``None`` and has no ``"auto"``;
    skft keeps ``"auto"`` as the parameter value (so ``get_params``, ``clone``
    and pickles stay portable between machines) and resolves it here.
    """
    if device == "auto":
        return "cuda" if cuda_count() else "cpu"
    return device


def cuda_count() -> int:
    """Visible CUDA devices (0 without CUDA)."""
    torch = sys.modules.get("torch")
    if torch is None:
        import torch
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def trial_devices(device: Any, n_jobs: int, n_cuda: int) -> list[str | None]:
    """One device per parallel-trial slot; ``None`` keeps the estimator's own ``device``.

    With ``n_jobs > 1`` parallel trials, several visible CUDA devices, and an
    estimator device of ``"auto"`` or ``"cuda"`` (no index), slot ``i`` gets
    ``cuda:{i % n_cuda}``, so each parallel trial trains on its own device
    (as long as ``n_jobs <= n_cuda``). A device the user pinned (``"cpu"``,
    ``"cuda:1"``) is left alone.
    """
    n_jobs = max(int(n_jobs), 1)
    if n_jobs == 1 or n_cuda <= 1 or device not in ("auto", "cuda"):
        return [None] * n_jobs
    return [f"cuda:{i % n_cuda}" for i in range(n_jobs)]


class DevicePool:
    """Slots handed to trials running at the same time; a trial holds one while it runs."""

    def __init__(self, devices: Sequence[str | None]) -> None:
        self._free: queue.Queue = queue.Queue()
        for device in devices:
            self._free.put(device)

    @contextlib.contextmanager
    def take(self) -> Iterator[str | None]:
        device = self._free.get()
        try:
            yield device
        finally:
            self._free.put(device)


@contextlib.contextmanager
def unpickling_device(state: dict[str, Any]) -> Iterator[Any]:
    """Unpickle a net saved with ``device="auto"`` onto this machine's device.

    skorch's ``__setstate__`` moves tensors to ``state["device"]``; it gets the
    resolved device. Yields the saved value (the estimator puts ``"auto"`` back).
    """
    raw = state.get("device")
    if raw == "auto":
        state["device"] = resolve_device(raw)
    yield raw
