"""ONNX Runtime sessions over exported model bytes, built on first use and pickled as bytes.

Imports no torch: deploy folders (:mod:`skft.deploy.deployed`) run through it too.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

__all__ = ["OnnxModel"]

_CHUNK = 256


class OnnxModel:
    """ONNX model bytes and an ONNX Runtime CPU session built from them on first use.

    Pickles as the bytes: the session is rebuilt after unpickling. ``threads``: ONNX
    Runtime's intra-op threads; None: torch's setting when torch is imported (so that
    ``torch.set_num_threads`` governs both), else ONNX Runtime's default (the physical
    cores). A model is always read from its bytes, never from a path, so ONNX Runtime
    refuses external-data references (it resolves them only next to a model file).
    """

    def __init__(self, model: bytes, threads: int | None = None) -> None:
        self.model, self.threads = model, threads
        self._session = None

    @property
    def nbytes(self) -> int:
        return len(self.model)

    @property
    def session(self):
        if self._session is None:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = self.threads or _torch_threads()
            providers = ["CPUExecutionProvider"]
            self._session = ort.InferenceSession(self.model, options, providers=providers)
        return self._session

    def run(self, X: np.ndarray) -> np.ndarray:
        """Outputs for float32 ``X``, in chunks of 256 samples."""
        X = np.ascontiguousarray(X, dtype=np.float32)
        outs = [
            self.session.run(None, {"x": X[i : i + _CHUNK]})[0] for i in range(0, len(X), _CHUNK)
        ]
        return np.concatenate(outs)

    def __getstate__(self) -> dict[str, Any]:
        return {"model": self.model, "threads": self.threads}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["model"], state["threads"])


def _torch_threads() -> int:
    """torch's intra-op threads if torch is imported, else 0 (ONNX Runtime's default)."""
    torch = sys.modules.get("torch")
    return torch.get_num_threads() if torch is not None else 0
