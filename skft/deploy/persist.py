"""Saving a :class:`skft.Compressed` with ``skft.save`` / ``skft.load``: JSON, safetensors, ONNX.

The folder holds ``compressed.json`` (the ``Compressed`` parameters other than the
estimator, ``compression_report_``, the sha256 of the ONNX file), ``estimator/`` (the
compressed inner estimator, saved by :func:`skft.io.persist.save`: its pruned weights)
and, when quantized, ``model.onnx``. Loading rebuilds the inner network, prunes it to
the saved shapes (the channel counts depend on ``prune``, ``round_to`` and the
architecture only), loads the weights strictly, and reads the ONNX bytes: no pickle.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from sklearn.base import clone

from ..io.persist import ModelFileError, _load_weights, build_saved, save

__all__ = ["load_compressed", "save_compressed"]

CONFIG, ONNX, INNER = "compressed.json", "model.onnx", "estimator"


def save_compressed(comp: Any, path: Any) -> Path:
    """Write a fitted ``Compressed`` to the folder ``path``."""
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(comp, "estimator_")
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    save(comp.estimator_, folder / INNER)
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


def load_compressed(folder: Path) -> Any:
    """Read a ``Compressed`` written by :func:`save_compressed`."""
    from .compress import Compressed
    from .onnx_export import OnnxModel
    from .pruning import prune_module

    try:
        config = json.loads((folder / CONFIG).read_text())
        params, report = config["params"], config["report"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelFileError(f"{folder / CONFIG} is not a saved Compressed: {exc}") from exc
    if config.get("format") != "skft-compressed" or config.get("format_version") != 1:
        raise ModelFileError(f"{folder / CONFIG} is not a saved Compressed (format)")
    inner, inner_config = build_saved(folder / INNER)
    if params["prune"] > 0:
        example = torch.zeros((1, *inner.input_shape_))
        names = inner.module_.group_names
        keep = [names.index(n) for n in report.get("kept_groups", [])]
        prune_module(inner.module_, example, float(params["prune"]), params.get("round_to"), keep)
        inner.module_.apply_freeze_state(inner.freeze_state_)
    _load_weights(inner, folder / INNER, inner_config["weights_sha256"])
    inner.module_.eval()
    comp = Compressed(clone(inner), **params)
    comp.estimator_, comp.compression_report_, comp.onnx_model_ = inner, report, None
    if config["onnx_sha256"] is not None:
        data = (folder / ONNX).read_bytes()
        if hashlib.sha256(data).hexdigest() != config["onnx_sha256"]:
            raise ModelFileError(f"{folder / ONNX} does not match the sha256 in {CONFIG}")
        comp.onnx_model_ = OnnxModel(data)
    return comp
