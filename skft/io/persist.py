"""Safe persistence: ``save(path)`` and :func:`load` (safetensors weights plus JSON, no pickle).

A saved model is a folder (by convention ``<name>.skft``) holding two files:

- ``config.json``: the format version, the skft version, the estimator class, its
  parameters, what ``fit`` learnt besides the weights (``classes_`` with their
  dtype, the input shape, the regression target scaler), the backbone name,
  the plugins loaded when it was saved (name and version) and the sha256 of
  the weights file;
- ``weights.safetensors``: the module's state dict.

Loading parses JSON and safetensors only: no pickle, no ``torch.load``, no
code from the files. Parameters that are not JSON values are stored by import
path when they are classes or functions importable from ``torch``, ``skorch``,
``skft``, ``sklearn`` or an installed skft plugin's package (``"torch.optim.AdamW"``);
anything else (a class defined in a script, a callback object, a lambda) is
refused at save time with a :class:`ModelFileError` that names the parameter.
Pickling (``joblib``, ``clone``) keeps working as before, for code you trust.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["FORMAT_VERSION", "ModelFileError", "load", "load_search_results", "save", "save_search"]

#: bumped when a change makes older files unreadable; ``load`` refuses newer ones
FORMAT_VERSION = 1
CONFIG, WEIGHTS, SEARCH = "config.json", "weights.safetensors", "search.json"
_CLASSES = ("FineTunedClassifier", "FineTunedRegressor")
_TRUSTED_PACKAGES = ("torch", "skorch", "skft", "sklearn")
_IMPORT = "__import__"


class ModelFileError(ValueError):
    """A model that cannot be saved safely, or a saved model that cannot be loaded."""


# --------------------------------------------------------------------------
# save
# --------------------------------------------------------------------------


def save(estimator: Any, path: str | os.PathLike) -> Path:
    """Write a fitted estimator to the folder ``path`` (created; files in it replaced)."""
    from safetensors.torch import save_file

    import skft

    estimator.check_is_fitted()
    params = {k: _encode(k, v) for k, v in estimator.get_params(deep=False).items()}
    fitted: dict[str, Any] = {"input_shape": list(estimator.input_shape_)}
    if getattr(estimator, "lr_found_", None) is not None:
        fitted["lr_found"] = float(estimator.lr_found_)  # what lr="find" found
    if hasattr(estimator, "classes_inferred_"):
        fitted["classes"] = _encode_labels(estimator.classes_inferred_)
    if hasattr(estimator, "target_scaler_"):
        scaler = estimator.target_scaler_
        fitted["y_ndim"] = int(estimator.y_ndim_)
        fitted["target_scaler"] = {"mean": scaler.mean_.tolist(), "scale": scaler.scale_.tolist()}
    state = {k: v.detach().cpu().contiguous() for k, v in estimator.module_.state_dict().items()}
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (WEIGHTS + ".tmp")
    save_file(state, str(tmp))
    digest = _sha256(tmp)
    config = {
        "format": "skft-model",
        "format_version": FORMAT_VERSION,
        "skft_version": skft.__version__,
        "class": type(estimator).__name__,
        "backbone": estimator.backbone_spec_.name,
        "plugins": _plugin_versions(),
        "params": params,
        "fitted": fitted,
        "weights_sha256": digest,
    }
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


def _encode(name: str, value: Any) -> Any:
    if _is_json(value):
        return value
    if isinstance(value, type) or callable(value) and hasattr(value, "__qualname__"):
        where = f"{getattr(value, '__module__', '')}.{getattr(value, '__qualname__', '')}"
        try:
            same = _import(where) is value
        except ModelFileError:
            same = False
        if same:
            return {_IMPORT: where}
    raise ModelFileError(
        f"cannot save parameter {name}={value!r}: only JSON values (numbers, strings, "
        "lists, dicts, None) and classes or functions importable from "
        f"{', '.join(_trusted_packages())} are saved (by import path); set {name} to such "
        "a value, or pickle the estimator (joblib) if the file will only be loaded by code "
        "you trust"
    )


def _is_json(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, str)):
        return True
    if isinstance(value, float):
        return bool(np.isfinite(value))
    if isinstance(value, (list, tuple)):
        return all(_is_json(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_json(v) for k, v in value.items())
    return False


def _encode_labels(labels: np.ndarray) -> dict[str, Any]:
    values = labels.tolist()
    if not all(isinstance(v, (str, int, float, bool)) for v in values):
        raise ModelFileError(f"cannot save classes_ {values!r}: labels must be str, int or bool")
    return {"dtype": labels.dtype.str if labels.dtype != object else "object", "values": values}


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


# --------------------------------------------------------------------------
# load
# --------------------------------------------------------------------------


def load(path: str | os.PathLike) -> Any:
    """Read a model written by ``save``: no pickle, no code from the files.

    Raises :class:`ModelFileError` (a ``ValueError``) for a file that is not a
    saved model, was changed or truncated, or needs a plugin or backbone that
    is not installed (named in the message).
    """
    folder = Path(path)
    if (folder / "compressed.json").is_file():
        from ..deploy.persist import load_compressed

        return load_compressed(folder)
    estimator, config = build_saved(folder)
    _load_weights(estimator, folder, config["weights_sha256"])
    return estimator


def build_saved(folder: Path) -> tuple[Any, dict[str, Any]]:
    """The saved estimator, fitted attributes restored and module built, before its weights."""
    from .. import estimators
    from ..params import check_params

    config = _read_config(folder)
    cls = getattr(estimators, config["class"])
    try:
        params = {k: _decode(k, v) for k, v in config["params"].items()}
        estimator = cls(**params)
    except (TypeError, KeyError, AttributeError) as exc:
        raise ModelFileError(f"{folder}: config.json has bad parameters: {exc}") from exc
    _check_plugins(config, folder)
    pretrained, estimator.pretrained = estimator.pretrained, False  # the saved weights follow
    try:
        for name, value in check_params(estimator).fitted_attributes().items():
            setattr(estimator, name, value)  # without data: lr="find" is not run again
        _restore_fitted(estimator, config["fitted"])
        estimator.initialize()
    finally:
        estimator.pretrained = pretrained
    return estimator, config


def _read_config(folder: Path) -> dict[str, Any]:
    if not (folder / CONFIG).is_file():
        if folder.is_file():
            raise ModelFileError(
                f"{folder} is a file; a saved skft model is a folder with {CONFIG} and {WEIGHTS} "
                "(pickled models, .joblib/.pkl, are not read by skft.load)"
            )
        raise ModelFileError(f"{folder}: no {CONFIG}; not a model saved by skft")
    try:
        config = json.loads((folder / CONFIG).read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{folder / CONFIG} is corrupt (not valid JSON): {exc}") from exc
    keys = {"format", "format_version", "class", "params", "fitted", "weights_sha256"}
    if not isinstance(config, dict) or config.get("format") != "skft-model" or keys - set(config):
        raise ModelFileError(f"{folder / CONFIG} is not an skft model config (keys missing)")
    if not isinstance(config["format_version"], int) or config["format_version"] > FORMAT_VERSION:
        raise ModelFileError(
            f"{folder} has format version {config['format_version']!r}; this skft reads up to "
            f"{FORMAT_VERSION}: upgrade skft"
        )
    if config["class"] not in _CLASSES:
        raise ModelFileError(f"{folder}: unknown estimator class {config['class']!r}")
    return config


def _decode(name: str, value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {_IMPORT}:
        return _import(value[_IMPORT])
    return value


def _trusted_packages() -> list[str]:
    from importlib.metadata import entry_points

    plugin_packages = {ep.value.split(":")[0].split(".")[0] for ep in entry_points(group="skft")}
    return [*_TRUSTED_PACKAGES, *sorted(plugin_packages - set(_TRUSTED_PACKAGES))]


#: Modules that moved into subpackages after format 1 folders were written: old -> new.
_MOVED_MODULES = {
    "skft.data": "skft.data.adapters",
    "skft.streaming": "skft.data.streaming",
    "skft.text_data": "skft.data.text",
    "skft.schedule": "skft.training.schedule",
    "skft.early_stopping": "skft.training.early_stopping",
    "skft.checkpoint": "skft.training.checkpoint",
    "skft.progress": "skft.training.progress",
    "skft.freezing": "skft.training.freezing",
}


def _moved(where: str) -> str:
    """``where`` under today's module names (folders saved before the subpackages)."""
    module, _, name = where.rpartition(".")
    return f"{_MOVED_MODULES.get(module, module)}.{name}"


def _import(where: Any) -> Any:
    """The object at the import path ``where``, only from trusted packages."""
    if isinstance(where, str):
        where = _moved(where)
    if not isinstance(where, str) or where.split(".")[0] not in _trusted_packages():
        raise ModelFileError(
            f"refusing to import {where!r}: only {', '.join(_trusted_packages())} are trusted"
        )
    parts = where.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            break
        return obj
    raise ModelFileError(f"cannot import {where!r}")


def _check_plugins(config: dict[str, Any], folder: Path) -> None:
    from ..plugins import UnknownNameError, get_backbone

    saved = config.get("plugins") or {}
    loaded = set(_plugin_versions())
    missing = [
        f"{name} {version}" if version else name
        for name, version in saved.items()
        if name not in loaded
    ]
    backbone = config.get("backbone")
    try:
        get_backbone(backbone)
    except (UnknownNameError, TypeError) as exc:
        hint = (
            f"; it was saved with plugin(s) {', '.join(missing)}: install them" if missing else ""
        )
        raise ModelFileError(
            f"{folder} needs backbone {backbone!r}, which no installed plugin provides{hint}"
        ) from exc


def _restore_fitted(estimator: Any, fitted: dict[str, Any]) -> None:
    from sklearn.preprocessing import StandardScaler

    estimator.input_shape_ = tuple(int(d) for d in fitted["input_shape"])
    estimator.lr_found_ = fitted.get("lr_found")
    if estimator.input_kind_.name == "tabular":
        estimator.n_features_in_ = estimator.input_shape_[0]
    if "classes" in fitted:
        labels = fitted["classes"]
        dtype = object if labels["dtype"] == "object" else np.dtype(labels["dtype"])
        estimator._set_classes(np.asarray(labels["values"], dtype=dtype))
    else:
        scaler = StandardScaler()
        scaler.mean_ = np.asarray(fitted["target_scaler"]["mean"], dtype=np.float64)
        scaler.scale_ = np.asarray(fitted["target_scaler"]["scale"], dtype=np.float64)
        scaler.var_ = scaler.scale_**2
        scaler.n_features_in_ = len(scaler.mean_)
        scaler.n_samples_seen_ = 0
        estimator.target_scaler_ = scaler
        estimator.y_ndim_ = int(fitted["y_ndim"])
        estimator.n_outputs_ = len(scaler.mean_)


def _load_weights(estimator: Any, folder: Path, digest: str) -> None:
    from safetensors import SafetensorError
    from safetensors.torch import load

    file = folder / WEIGHTS
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise ModelFileError(f"{folder}: cannot read {WEIGHTS}: {exc}") from exc
    if hashlib.sha256(data).hexdigest() != digest:
        raise ModelFileError(
            f"{file} does not match the sha256 recorded in {CONFIG}: the file was changed, "
            "truncated or replaced; save the model again"
        )
    try:
        state = load(data)
        estimator.module_.load_state_dict(state, strict=True)
    except (SafetensorError, RuntimeError, ValueError) as exc:
        raise ModelFileError(f"{file} does not fit the model in {CONFIG}: {exc}") from exc
    estimator.prefix_keys_ = {}
