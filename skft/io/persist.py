"""Safe persistence, the writing side: ``save(path)`` (safetensors weights plus JSON, no pickle).

A saved model is a folder (by convention ``<name>.skft``) holding two files:

- ``config.json``: the format version, the skft version, the estimator class, its
  parameters, what ``fit`` learnt besides the weights (``classes_`` with their
  dtype, whether ``y`` was multi-label, the input shape, the regression target
  scaler), the backbone name, the plugins loaded when it was saved (name and
  version) and the sha256 of the weights file;
- ``weights.safetensors``: the module's state dict; for adapters on a pretrained
  base (``freeze="lora"``, ...), only the tensors that differ from the base, whose
  identity and checksum config.json records (:mod:`skft.io.base_weights`).

The reading side, :func:`skft.load`, is :mod:`skft.io.loader`. Parameters that
are not JSON values are written by name only when they are classes that
``skft.load`` trusts (:mod:`skft.io.trust`: one allow-list of types for both
sides, ``"torch.optim.adamw.AdamW"``); anything else (a class defined in a
script, a callback object, a function) is refused at save time with a
:class:`ModelFileError` that names the parameter. Pickling (``joblib``,
``clone``) keeps working as before, for code you trust.

This module imports nothing of skft above :mod:`skft.base` (which uses ``save``).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from .trust import ESTIMATORS, ModelFileError, encode_param, vet_params

__all__ = [
    "FORMAT_VERSION",
    "ModelFileError",
    "decode_labels",
    "encode_labels",
    "load_search_results",
    "save",
    "save_search",
]

#: bumped when a change makes older files unreadable; ``load`` refuses newer ones
FORMAT_VERSION = 2
#: full saves keep version 1 (older skft reads them); adapter-only files are version 2
FULL_FORMAT_VERSION = 1
CONFIG, WEIGHTS, SEARCH = "config.json", "weights.safetensors", "search.json"


# --------------------------------------------------------------------------
# save
# --------------------------------------------------------------------------


def plan_to_json(plan: Any) -> dict[str, Any]:
    """A :class:`skft.params.plan.FitPlan` as JSON values."""
    from dataclasses import asdict

    return {
        "profile": asdict(plan.profile),
        "values": dict(plan.values),
        "reasons": dict(plan.reasons),
    }


def save(
    estimator: Any, path: str | os.PathLike, trusted: Any = (), adapter_only: bool | None = None
) -> Path:
    """Write a fitted estimator to the folder ``path`` (created; files in it replaced).

    Only what :func:`skft.load` accepts is written: JSON values and the classes it
    trusts, plus the classes in ``trusted`` (pass the same list to ``skft.load``).

    ``adapter_only``: leave out the tensors that still hold the pretrained base's
    values, recording the base's identity and checksum (:mod:`skft.io.base_weights`);
    ``None`` (default) does so for adapter policies (``freeze="lora"``, ...) on a
    pretrained base, ``False`` writes every tensor. Loading such a file builds the
    base again and refuses one whose weights differ.
    """
    from safetensors.torch import save_file

    import skft

    from .base_weights import base_record, saves_adapter_only

    estimator.check_is_fitted()
    name = type(estimator).__name__
    if name not in ESTIMATORS:
        raise ModelFileError(
            f"cannot save a {name}: skft.load reads {' and '.join(ESTIMATORS)}; pickle it "
            "(joblib) if the file will only be loaded by code you trust"
        )
    params = {k: encode_param(k, v, trusted) for k, v in estimator.get_params(deep=False).items()}
    vet_params(params, type(estimator), trusted, where=f"the parameters of {name}")
    fitted: dict[str, Any] = {"input_shape": list(estimator.input_shape_)}
    if getattr(estimator, "lr_found_", None) is not None:
        fitted["lr_found"] = float(estimator.lr_found_)  # what lr="find" found
    plan = estimator.__dict__.get("fit_plan_")
    if plan is not None:  # what the data decided for the None parameters (skft.params.plan)
        fitted["plan"] = plan_to_json(plan)
    if hasattr(estimator, "classes_inferred_"):
        fitted["classes"] = encode_labels(estimator.classes_inferred_)
        if getattr(estimator, "multilabel_", False):  # classes_ are the label columns
            fitted["multilabel"] = True
    if hasattr(estimator, "target_scaler_"):
        scaler = estimator.target_scaler_
        fitted["y_ndim"] = int(estimator.y_ndim_)
        fitted["target_scaler"] = {"mean": scaler.mean_.tolist(), "scale": scaler.scale_.tolist()}
    state = {k: v.detach().cpu().contiguous() for k, v in estimator.module_.state_dict().items()}
    base = None
    if saves_adapter_only(estimator, adapter_only):
        state, base = base_record(estimator, state)
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (WEIGHTS + ".tmp")
    save_file(state, str(tmp))
    digest = _sha256(tmp)
    config = {
        "format": "skft-model",
        "format_version": FULL_FORMAT_VERSION if base is None else FORMAT_VERSION,
        "skft_version": skft.__version__,
        "class": name,
        "backbone": estimator.backbone_spec_.name,
        "plugins": _plugin_versions(),
        "params": params,
        "fitted": fitted,
        "weights_sha256": digest,
    }
    if base is not None:
        config["base"] = base
    text = json.dumps(config, indent=2, allow_nan=False)
    os.replace(tmp, folder / WEIGHTS)
    (folder / (CONFIG + ".tmp")).write_text(text)
    os.replace(folder / (CONFIG + ".tmp"), folder / CONFIG)
    return folder


def save_search(search: Any, path: str | os.PathLike) -> Path:
    """Write an :class:`skft.OptunaSearch`: its refitted best model plus ``search.json``.

    ``search.json`` holds ``best_params_``, ``best_score_``, ``cv_results_`` (as lists) and
    the study's name; :func:`load` returns the model, :func:`load_search_results` the rest.
    """
    if not hasattr(search, "best_estimator_"):
        raise ValueError("save needs a search fitted with refit=True (it saves best_estimator_)")
    folder = save(search.best_estimator_, path)
    results = {
        "best_params": {k: _plain(v) for k, v in search.best_params_.items()},
        "best_score": float(search.best_score_),
        "study_name": search.study_.study_name,
        "cv_results": {
            k: [_plain(v) for v in np.ma.filled(np.ma.asarray(col, dtype=object), None)]
            for k, col in search.cv_results_.items()
            if k != "params"
        },  # fmt: skip
    }
    (folder / SEARCH).write_text(json.dumps(results, indent=1, allow_nan=False, default=str))
    return folder


def load_search_results(path: str | os.PathLike) -> dict[str, Any]:
    """The ``search.json`` of a search saved with ``save`` (plain JSON; no code runs)."""
    file = Path(path) / SEARCH
    if not file.is_file():
        raise ModelFileError(f"{path}: no {SEARCH}; not a search saved by skft")
    return json.loads(file.read_text())


def _plain(value: Any) -> Any:
    value = value.item() if hasattr(value, "item") else value
    return None if isinstance(value, float) and not np.isfinite(value) else value


def encode_labels(labels: np.ndarray) -> dict[str, Any]:
    """``classes_`` as JSON: their values and numpy dtype (:func:`decode_labels` reads it)."""
    values = labels.tolist()
    if not all(isinstance(v, (str, int, float, bool)) for v in values):
        raise ModelFileError(f"cannot save classes_ {values!r}: labels must be str, int or bool")
    return {"dtype": labels.dtype.str if labels.dtype != object else "object", "values": values}


def decode_labels(labels: Any) -> np.ndarray:
    """The ``classes_`` array :func:`encode_labels` wrote; ``ValueError`` for anything else."""
    if not isinstance(labels, dict) or set(labels) != {"dtype", "values"}:
        raise ValueError("classes must hold dtype and values")
    try:
        dtype = object if labels["dtype"] == "object" else np.dtype(labels["dtype"])
    except TypeError as exc:
        raise ValueError(f"classes dtype {labels['dtype']!r} is not a numpy dtype") from exc
    if dtype is not object and dtype.kind not in "biufU":
        raise ValueError(f"classes dtype {labels['dtype']!r} is not a label dtype")
    values = labels["values"]
    if not isinstance(values, list) or not all(
        isinstance(v, (str, int, float, bool)) for v in values
    ):
        raise ValueError("classes must be a list of str, int, float or bool")
    try:
        return np.asarray(values, dtype=dtype)
    except (OverflowError, ValueError, TypeError) as exc:  # 1e300 as int64, "a" as float
        raise ValueError(f"classes values do not fit dtype {labels['dtype']!r}: {exc}") from exc


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _plugin_versions() -> dict[str, str | None]:
    """The entry-point plugins loaded now (built-ins excluded): name -> distribution version."""
    from importlib.metadata import PackageNotFoundError, packages_distributions, version

    from ..plugins import DEFAULT_PLUGINS, load_plugins, pm

    load_plugins()
    dists = packages_distributions()
    found: dict[str, str | None] = {}
    for name, plugin in pm.list_name_plugin():
        if name in DEFAULT_PLUGINS or plugin is None:
            continue
        module = getattr(plugin, "__name__", None) or type(plugin).__module__
        found[name] = None
        for dist in dists.get(module.split(".")[0], []):
            try:
                found[name] = version(dist)
            except PackageNotFoundError:
                pass
    return found
