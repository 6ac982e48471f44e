"""Saving a :class:`skft.Compressed` (``Compressed.save``): JSON, safetensors, ONNX.

The folder holds ``compressed.json`` (the ``Compressed`` parameters other than the
estimator, ``compression_report_``, the sha256 of the ONNX file), ``estimator/`` (the
compressed inner estimator, saved by :func:`skft.io.persist.save`: its pruned weights)
and, when quantized, ``model.onnx``. Loading rebuilds the inner network, prunes it to
the saved shapes (the channel counts depend on ``prune``, ``round_to`` and the
architecture only), loads the weights strictly, and reads the ONNX bytes: no pickle.
Loading is :func:`skft.io.loader.load_compressed` (the reading side, which imports this
package's ``Compressed``); this module only writes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ..io.persist import save

__all__ = ["save_compressed"]

CONFIG, ONNX, INNER = "compressed.json", "model.onnx", "estimator"


def save_compressed(comp: Any, path: Any, trusted: Any = ()) -> Path:
    """Write a fitted ``Compressed`` to the folder ``path`` (``trusted``: see ``save``)."""
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(comp, "estimator_")
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    save(comp.estimator_, folder / INNER, trusted)
    params = comp.get_params(deep=False)
    params.pop("estimator")
    if not isinstance(params["random_state"], (int, type(None))):
        params["random_state"] = None  # a RandomState object: not needed to predict
    onnx = None
    if comp.onnx_model_ is not None:
        (folder / ONNX).write_bytes(comp.onnx_model_.model)
        onnx = hashlib.sha256(comp.onnx_model_.model).hexdigest()
    config = {
        "format": "skft-compressed",
        "format_version": 1,
        "params": params,
        "report": comp.compression_report_,
        "onnx_sha256": onnx,
    }
    (folder / CONFIG).write_text(json.dumps(config, indent=2, allow_nan=False))
    return folder
