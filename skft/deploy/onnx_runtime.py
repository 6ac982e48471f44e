"""ONNX Runtime sessions over exported model bytes, built on first use and pickled as bytes."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["OnnxModel"]

_CHUNK = 256


class OnnxModel:
    """ONNX model bytes and an ONNX Runtime CPU session built from them on first use.

    Pickles as the bytes: the session is rebuilt after unpickling.
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
            options.intra_op_num_threads = self.threads or torch.get_num_threads()
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
