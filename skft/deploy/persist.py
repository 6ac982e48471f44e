"""Saving a :class:`skft.Compressed` (``Compressed.save``): full folders and deploy folders.

A full folder (``save_compressed``) can be loaded, predicted with, refitted and searched.
A deploy folder (``save_deploy``, ``Compressed.save(path, deploy=True)``) holds only what
prediction needs: ``model.onnx``, ``deploy.json`` and, for texts, ``tokenizer.json``
(format and reading side: :mod:`skft.deploy.deployed`).

Full folders:

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
import os
from pathlib import Path
from typing import Any

from ..io.persist import encode_labels, save

__all__ = ["deploy_input", "save_compressed", "save_deploy"]

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


# --------------------------------------------------------------------------
# deploy folders
# --------------------------------------------------------------------------


def save_deploy(comp: Any, path: Any) -> Path:
    """Write a fitted ``Compressed``'s deploy folder: ONNX model, recipe JSON, tokenizer.

    Nothing of the fp32 estimator is written. Without ``quantize``, the pruned fp32
    network is exported to ONNX now (its outputs then match the PyTorch model's to
    float precision, not bit for bit). Raises ``ValueError`` for a backbone whose input
    adapter a deploy folder cannot run, or an output nonlinearity it does not know.
    """
    from sklearn.base import is_classifier
    from sklearn.utils.validation import check_is_fitted

    from .deployed import DEPLOY, TOKENIZER, TextInput, deploy_config, dumps
    from .deployed import ONNX as DEPLOY_ONNX
    from .onnx_export import estimator_onnx, output_name

    check_is_fitted(comp, "estimator_")
    est = comp.estimator_
    inputs, output = deploy_input(est), output_name(est)
    if output is None:
        raise ValueError(
            f"cannot write a deploy folder: the estimator's predict nonlinearity "
            f"{est._get_predict_nonlinearity()!r} is not softmax, sigmoid or the identity; "
            "save the full folder (Compressed.save(path))"
        )
    folder = Path(path)
    taken = [name for name in (CONFIG, "config.json") if (folder / name).exists()]
    if taken:
        raise ValueError(
            f"{folder} holds a full model ({taken[0]}); write the deploy folder elsewhere"
        )
    onnx = comp.onnx_model_.model if comp.onnx_model_ is not None else estimator_onnx(est)
    if is_classifier(est):
        task, labels = "classifier", {"classes": encode_labels(est.classes_inferred_)}
        if getattr(est, "multilabel_", False):  # an indicator matrix: threshold the sigmoids
            labels.update(multilabel=True, threshold=float(est.threshold))
    else:
        scaler = est.target_scaler_
        target = {"mean": scaler.mean_.tolist(), "scale": scaler.scale_.tolist(),
                  "y_ndim": int(est.y_ndim_)}  # fmt: skip
        task, labels = "regressor", {"target": target}
    config = deploy_config(
        task, est.backbone_spec_.name, inputs, output, labels, onnx, comp.compression_report_
    )
    folder.mkdir(parents=True, exist_ok=True)
    files = {DEPLOY_ONNX: onnx}
    if isinstance(inputs, TextInput):
        files[TOKENIZER] = inputs.tokens.tokenizer.encode()
    files[DEPLOY] = dumps(config).encode()  # last: a folder with deploy.json is complete
    for name, data in files.items():
        (folder / (name + ".tmp")).write_bytes(data)
        os.replace(folder / (name + ".tmp"), folder / name)
    return folder


def deploy_input(est: Any) -> Any:
    """How a deploy folder adapts X for ``est``: image, tabular or text recipe; else ValueError."""
    from ..params.defaults import effective
    from .deployed import ImageInput, TabularInput, TextInput

    spec, kind = est.backbone_spec_, est.input_kind_
    if spec.tokenized_input is not None:
        tokens = spec.tokenized_input(int(effective(est, "max_length")))
        return TextInput(int(est.input_shape_[0]), tokens)
    if spec.adapter is None and kind.name == "image":
        normalise = est.module_.preprocess
        mean, std = (tuple(t.flatten().tolist()) for t in (normalise.mean, normalise.std))
        return ImageInput(tuple(int(d) for d in est.input_shape_), mean, std)
    if spec.adapter is None and kind.name == "tabular":
        return TabularInput(int(est.input_shape_[0]))
    raise ValueError(
        f"cannot write a deploy folder for backbone {spec.name!r}: its {kind.name} inputs go "
        "through an adapter that a deploy folder cannot run without the plugin (a text "
        "backbone's spec can say how with tokenized_input); save the full folder "
        "(Compressed.save(path))"
    )
