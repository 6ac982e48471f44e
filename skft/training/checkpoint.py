"""Fits that survive being killed: ``checkpoint=dir`` saves every epoch and resumes from it.

After every completed epoch, the fit's state (module and optimizer state dicts, history,
torch's RNG state and the augmentation generator's) is written to
``<dir>/fit-<key>.pt``, atomically (a temporary file, then ``os.replace``): a kill leaves
the previous epoch's file whole. ``<key>`` hashes the estimator's parameters and the
training data, so the folds of a parallel cross-validation or search never share a file,
and the same fit started again finds its own: it loads the state and trains only the
epochs that are left. On CPU with ``random_state`` set, a fit killed and resumed ends with
the same weights as one never interrupted. The file is read with ``weights_only=True``:
loading it runs no code. A finished fit's file stays (fitting again returns at once);
delete the folder to train afresh.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from skorch.callbacks import Callback
from skorch.history import History

__all__ = ["EpochCheckpoint", "checkpoint_path", "read_checkpoint"]

#: parameters that do not change what a fit computes
_IGNORED = {"checkpoint", "verbose", "callbacks", "device"}


def checkpoint_path(net: Any, X: torch.Tensor, y: torch.Tensor) -> Path:
    """The file of this fit: the folder ``net.checkpoint``, a name from parameters and data."""
    from ..params.defaults import held_values

    h = hashlib.blake2b(digest_size=12)
    # None and the value the plan gives it name the same fit
    params = {**net.get_params(deep=False), **held_values(net)}
    h.update(repr(sorted((k, repr(v)) for k, v in params.items() if k not in _IGNORED)).encode())
    for t in (X, y):
        if hasattr(t, "fingerprint"):  # streamed image files (skft.data.streaming)
            h.update(t.fingerprint())
            continue
        t = t.detach().cpu().contiguous()
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return Path(net.checkpoint) / f"fit-{h.hexdigest()}.pt"


class EpochCheckpoint(Callback):
    """Write the fit's state after every epoch (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_epoch_end(self, net: Any, **kwargs: Any) -> None:
        state = {
            "module": net.module_.state_dict(),
            "optimizer": net.optimizer_.state_dict(),
            "history": json.dumps(list(net.history), default=_plain),  # numpy scalars too
            "torch_rng": torch.get_rng_state(),
            "aug_rng": net.aug_generator_.get_state() if net.aug_generator_ is not None else None,
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".tmp{os.getpid()}")
        torch.save(state, tmp)
        os.replace(tmp, self.path)


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} in the history cannot be checkpointed")


def read_checkpoint(path: Path, device: Any) -> dict[str, Any] | None:
    """The state saved at ``path`` (history as a skorch ``History``), or None if there is none.

    A damaged file is named, never half-used; the estimator restores the state
    (``FineTuneMixin._resume_from_checkpoint``).
    """
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a damaged checkpoint is named, never half-used
        raise ValueError(
            f"checkpoint {path} cannot be read ({type(exc).__name__}: {exc}); "
            "delete it to train from the start"
        ) from exc
    return {**state, "history": History(json.loads(state["history"]))}
