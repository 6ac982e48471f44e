"""Safe persistence, the reading side: :func:`load` (``skft.load``).

Loading parses JSON and safetensors only: no pickle, no ``torch.load``, and no
module named by the file is imported. Before anything the file names is built:

- config.json is checked against one allow-list of types (:mod:`skft.io.trust`):
  classes are looked up by name in a table of the classes skft writes, every
  other value must be plain JSON; everything refused is listed in one
  :class:`ModelFileError`;
- the sha256 of weights.safetensors must match the one in config.json;
- the tensors' names and shapes (read from the safetensors header) must match
  the network the config describes, built first without memory (``meta`` device).

Nothing below this module imports it: it needs the estimator classes and
:class:`skft.Compressed`, which use the writing side, :mod:`skft.io.persist`.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .base_weights import base_state, check_record
from .persist import CONFIG, FORMAT_VERSION, WEIGHTS, decode_labels
from .trust import ESTIMATORS, ModelFileError, read_json, vet_params
from .weights import mismatch_report

__all__ = ["ModelFileError", "load"]

_COMPRESSED, _ONNX, _INNER = "compressed.json", "model.onnx", "estimator"
_DEPLOY = "deploy.json"  # a deploy folder (skft.deploy.deployed): predict-only, no torch


def load(path: str | os.PathLike, trusted: Any = ()) -> Any:
    """Read a model written by ``save``: no pickle, no code from the files.

    ``trusted``: classes (or their dotted names) of your own that the file may
    name besides those skft trusts (see :mod:`skft.io.trust`); pass the list
    given to ``save``.

    A deploy folder (``Compressed.save(path, deploy=True)``) gives a predict-only
    :class:`~skft.deploy.deployed.DeployedClassifier` or ``DeployedRegressor``
    (numpy and onnxruntime; no torch, no ``trusted`` types).

    Raises :class:`ModelFileError` (a ``ValueError``) for a file that is not a
    saved model, names types or parameters that are not trusted (all listed),
    was changed or truncated, holds weights that do not fit its config, or
    needs a plugin or backbone that is not installed (named in the message).
    """
    folder = Path(path)
    if (folder / _DEPLOY).is_file():
        full = [n for n in (_COMPRESSED, CONFIG) if (folder / n).exists()]
        if full:
            raise ModelFileError(
                f"{folder} holds both {_DEPLOY} and {full[0]}: a deploy folder and a full "
                "one; keep each in a folder of its own"
            )
        from ..deploy.deployed import read_deploy

        return read_deploy(folder)
    if (folder / _COMPRESSED).is_file():
        return load_compressed(folder, trusted)
    estimator, data, base = build_saved(folder, trusted)
    _load_state(estimator, folder / WEIGHTS, data, base)
    return estimator


def build_saved(
    folder: Path, trusted: Any = (), exact: bool = True
) -> tuple[Any, bytes, dict[str, Any] | None]:
    """The saved estimator, module built, its checked weights file's bytes (not loaded),
    and the record of the base of an adapter-only file (else ``None``).

    ``exact``: the tensors' shapes must be the built network's (else only their names:
    a pruned network's weights are smaller).
    """
    from sklearn.base import is_classifier

    from .. import estimators

    config = _read_config(folder)
    cls = getattr(estimators, config["class"])
    params = vet_params(config["params"], cls, trusted, where=str(folder))
    _check_plugins(config, folder)
    data = _read_weights(folder, config["weights_sha256"])
    tensors = _header_shapes(folder / WEIGHTS, data)
    base = config.get("base")
    try:
        estimator = cls(**params)
        pretrained = estimator.pretrained
        estimator.set_params(pretrained=False)  # the saved weights follow
        fitted = config["fitted"]
        plan = _plan_from_json(fitted["plan"]) if "plan" in fitted else None
        estimator._restore(plan, _decode_fitted(fitted, is_classifier(estimator)))
        omitted = () if base is None else check_record(base)["omitted"]
        _check_shapes(estimator, tensors, folder / WEIGHTS, exact, omitted)
        estimator.initialize()
        estimator.set_params(pretrained=pretrained)
    except ModelFileError:
        raise
    except Exception as exc:  # bad values in a config that passed the allow-list
        raise ModelFileError(
            f"{folder / CONFIG} has bad parameters or fitted values: {type(exc).__name__}: {exc}"
        ) from exc
    return estimator, data, base


def _read_config(folder: Path) -> dict[str, Any]:
    if not (folder / CONFIG).is_file():
        if not folder.exists():
            raise ModelFileError(
                f"{folder} does not exist; pass the folder written by save() (e.g. model.skft)"
            )
        if folder.is_file():
            raise ModelFileError(
                f"{folder} is a file; a saved skft model is a folder with {CONFIG} and {WEIGHTS} "
                "(pickled models, .joblib/.pkl, are not read by skft.load)"
            )
        raise ModelFileError(f"{folder}: no {CONFIG}; not a model saved by skft")
    config = read_json(folder / CONFIG)
    keys = {"format", "format_version", "class", "params", "fitted", "weights_sha256"}
    if not isinstance(config, dict) or config.get("format") != "skft-model" or keys - set(config):
        raise ModelFileError(f"{folder / CONFIG} is not an skft model config (keys missing)")
    version = config["format_version"]
    if not isinstance(version, int) or isinstance(version, bool) or version > FORMAT_VERSION:
        raise ModelFileError(
            f"{folder} has format version {version!r}; this skft reads up to "
            f"{FORMAT_VERSION}: upgrade skft"
        )
    if config["class"] not in ESTIMATORS:
        raise ModelFileError(f"{folder}: unknown estimator class {config['class']!r}")
    digest = config["weights_sha256"]
    if not isinstance(digest, str) or len(digest) != 64:
        raise ModelFileError(f"{folder / CONFIG}: weights_sha256 is not a sha256 digest")
    if not isinstance(config["fitted"], dict) or not isinstance(config.get("plugins") or {}, dict):
        raise ModelFileError(f"{folder / CONFIG}: fitted and plugins must be JSON objects")
    return config


def _check_plugins(config: dict[str, Any], folder: Path) -> None:
    from ..plugins import DEFAULT_PLUGINS, UnknownNameError, get_backbone, load_plugins, pm

    backbone = config.get("backbone")
    try:
        if not isinstance(backbone, str):
            raise TypeError(backbone)
        get_backbone(backbone)
    except (UnknownNameError, TypeError) as exc:
        load_plugins()
        loaded = {n for n, p in pm.list_name_plugin() if n not in DEFAULT_PLUGINS and p}
        missing = [
            f"{name} {version}" if isinstance(version, str) else str(name)
            for name, version in (config.get("plugins") or {}).items()
            if name not in loaded
        ]
        hint = (
            f"; it was saved with plugin(s) {', '.join(missing)}: install them" if missing else ""
        )
        raise ModelFileError(
            f"{folder} needs backbone {backbone!r}, which no installed plugin provides{hint}"
        ) from exc


def _plan_from_json(data: Any) -> Any:
    """The saved :class:`skft.params.plan.FitPlan`: known names, JSON scalars (or lists of them)."""
    from ..params.plan import CORE_DEFAULTS, DataProfile, FitPlan

    if not isinstance(data, dict) or set(data) != {"profile", "values", "reasons"}:
        raise ValueError("plan must hold profile, values and reasons")
    values, reasons, profile = data["values"], data["reasons"], data["profile"]
    scalar = (str, int, float, bool, type(None))
    if not isinstance(values, dict) or not all(_plan_name(k, CORE_DEFAULTS) for k in values):
        raise ValueError(
            f"plan values must name only {sorted(CORE_DEFAULTS)} or a planned policy's "
            "parameters (freeze__<name>, augment__<name>)"
        )
    for name, value in values.items():
        items = value if isinstance(value, list) else [value]
        if not all(isinstance(v, scalar) for v in items):
            raise ValueError(f"plan value {name}={value!r} is not a JSON scalar")
    if not isinstance(reasons, dict) or not all(isinstance(v, str) for v in reasons.values()):
        raise ValueError("plan reasons must be strings")
    if not isinstance(profile, dict) or not all(isinstance(v, scalar) for v in profile.values()):
        raise ValueError("plan profile must hold JSON scalars")
    return FitPlan(DataProfile(**profile), values, reasons)


def _plan_name(name: Any, known: Any) -> bool:
    """A planned parameter, or a sub-parameter of a planned policy (``freeze__pair_iterations``)."""
    if not isinstance(name, str):
        return False
    prefix, sep, rest = name.partition("__")
    if not sep:
        return name in known
    return prefix in ("freeze", "augment") and rest.isidentifier() and "__" not in rest


@dataclass(frozen=True)
class SavedFit:
    """A model folder's fitted values, decoded and checked (the estimator sets them:
    ``FineTuneMixin._restore``)."""

    input_shape: tuple[int, ...]
    lr_found: float | None
    #: classifiers: the labels in column order, and whether the targets are multi-label
    classes: np.ndarray | None = None
    multilabel: bool = False
    #: regressors: the targets' scaler and their number of dimensions
    target_scaler: Any = None
    y_ndim: int | None = None


def _decode_fitted(fitted: dict[str, Any], classifier: bool) -> SavedFit:
    from sklearn.preprocessing import StandardScaler

    shape = tuple(int(d) for d in fitted["input_shape"])
    if not shape or min(shape) < 1:
        raise ValueError(f"input_shape {fitted['input_shape']!r} has no samples' shape")
    lr = fitted.get("lr_found")
    lr = None if lr is None else float(lr)
    if classifier:
        if "classes" not in fitted:
            raise ValueError("a classifier's fitted values need classes")
        classes = decode_labels(fitted["classes"])
        multilabel = fitted.get("multilabel", False)
        if not isinstance(multilabel, bool):
            raise ValueError(f"multilabel must be true or false, got {multilabel!r}")
        if multilabel and classes.tolist() != list(range(len(classes))):
            raise ValueError("a multi-label model's classes must be 0..n_labels-1")
        return SavedFit(shape, lr, classes=classes, multilabel=multilabel)
    scaler = StandardScaler()
    scaler.mean_ = np.asarray(fitted["target_scaler"]["mean"], dtype=np.float64)
    scaler.scale_ = np.asarray(fitted["target_scaler"]["scale"], dtype=np.float64)
    if scaler.mean_.ndim != 1 or scaler.mean_.shape != scaler.scale_.shape:
        raise ValueError("target_scaler mean and scale must be lists of one length")
    scaler.var_ = scaler.scale_**2
    scaler.n_features_in_ = len(scaler.mean_)
    scaler.n_samples_seen_ = 0
    return SavedFit(shape, lr, target_scaler=scaler, y_ndim=int(fitted["y_ndim"]))


def _read_weights(folder: Path, digest: str) -> bytes:
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
    return data


def _header_shapes(file: Path, data: bytes) -> dict[str, tuple[int, ...]]:
    """``{tensor name: shape}`` from a safetensors header, read without loading tensors."""
    try:
        (size,) = struct.unpack("<Q", data[:8])
        if size > len(data) - 8:
            raise ValueError("header longer than the file")
        header = json.loads(data[8 : 8 + size])
        return {
            name: tuple(int(d) for d in entry["shape"])
            for name, entry in header.items()
            if name != "__metadata__"
        }
    except (struct.error, ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
        raise ModelFileError(
            f"{file} does not fit the model in {CONFIG}: not a safetensors file ({exc})"
        ) from exc


def _check_shapes(
    estimator: Any,
    tensors: dict[str, tuple[int, ...]],
    file: Path,
    exact: bool,
    omitted: Any = (),
) -> None:
    """Refuse weights whose tensors are not the configured network's, before allocating it.

    ``omitted``: tensors an adapter-only file leaves to the base (they must be the network's).
    """
    import torch

    from ..network import build_network
    from ..params.checks import resolve_frozen_depth
    from ..params.defaults import effective
    from ..specs import AdaptsModule

    args = (estimator.input_shape_, estimator.n_outputs_, estimator.head_factory_)
    try:
        with torch.device("meta"):  # shapes only: no memory, whatever the config says
            module = build_network(estimator.backbone_spec_, False, *args)
            if isinstance(estimator.freeze_policy_, AdaptsModule):  # the adapters' tensors
                frozen = effective(estimator, "frozen_depth")
                depth = resolve_frozen_depth(frozen, module.group_names, estimator.backbone)
                estimator.freeze_policy_.adapt(module.groups, module.group_names, depth)
    except Exception:  # noqa: BLE001 - cannot be built on meta: the real build decides
        return
    own = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    left = set(omitted)
    if left - own.keys():
        raise ModelFileError(
            f"{file}: the base it was saved on has tensors this network lacks: "
            f"{sorted(left - own.keys())[:5]}"
        )
    own = {k: v for k, v in own.items() if k not in left}
    missing, unexpected = sorted(own.keys() - tensors.keys()), sorted(tensors.keys() - own.keys())
    shapes = [
        f"{k}: file {tensors[k]} vs model {own[k]}"
        for k in sorted(own.keys() & tensors.keys())
        if exact
        and tensors[k] != own[k]
        or not exact
        and (len(tensors[k]) != len(own[k]) or any(a > b for a, b in zip(tensors[k], own[k])))
    ]
    if missing or unexpected or shapes:
        header = f"{file} does not fit the model in {CONFIG}:"
        raise ModelFileError(mismatch_report(header, missing, unexpected, shapes))


def _load_state(estimator: Any, file: Path, data: bytes, base: Any = None) -> None:
    from safetensors import SafetensorError
    from safetensors.torch import load

    from .weights import load_state_dict_checked

    if base is not None:  # adapter-only: the rest from the base, if it is the same
        try:
            from_base = base_state(estimator, base, str(file.parent))
        except ValueError as exc:
            raise ModelFileError(str(exc)) from exc
    try:
        state = load(data)
        if base is not None:
            state = {**from_base, **state}
        load_state_dict_checked(estimator.module_, state, source=str(file))
    except (SafetensorError, RuntimeError, ValueError) as exc:
        raise ModelFileError(f"{file} does not fit the model in {CONFIG}: {exc}") from exc
    estimator.drop_cached_features()


# --------------------------------------------------------------------------
# Compressed (written by skft.deploy.persist.save_compressed)
# --------------------------------------------------------------------------


def load_compressed(folder: Path, trusted: Any = ()) -> Any:
    """Read a ``Compressed`` written by :func:`skft.deploy.persist.save_compressed`."""
    import inspect

    import torch
    from sklearn.base import clone

    from ..deploy.compress import Compressed
    from ..deploy.onnx_export import OnnxModel
    from ..deploy.pruning import prune_module

    config = read_json(folder / _COMPRESSED)
    try:
        params, report = config["params"], config["report"]
        onnx_digest = config["onnx_sha256"]
    except (KeyError, TypeError) as exc:
        raise ModelFileError(f"{folder / _COMPRESSED} is not a saved Compressed: {exc}") from exc
    if config.get("format") != "skft-compressed" or config.get("format_version") != 1:
        raise ModelFileError(f"{folder / _COMPRESSED} is not a saved Compressed (format)")
    accepted = set(inspect.signature(Compressed.__init__).parameters) - {"self", "estimator"}
    from .trust import _plain_json

    if not isinstance(params, dict) or not isinstance(report, dict):
        raise ModelFileError(f"{folder / _COMPRESSED}: params and report must be JSON objects")
    bad = [k for k, v in params.items() if k not in accepted or not _plain_json(v)]
    if bad or not _plain_json(report):
        raise ModelFileError(
            f"refused parameters in {folder / _COMPRESSED}: {', '.join(bad) or 'report'}"
        )
    inner, data, base = build_saved(folder / _INNER, trusted, exact=False)
    try:
        if params.get("prune", 0) > 0:
            example = torch.zeros((1, *inner.input_shape_))
            names = inner.module_.group_names
            keep = [names.index(n) for n in report.get("kept_groups", [])]
            prune = float(params["prune"])
            prune_module(inner.module_, example, prune, params.get("round_to"), keep)
            inner.module_.apply_freeze_state(inner.freeze_state_)
    except Exception as exc:
        raise ModelFileError(f"{folder / _COMPRESSED} has bad parameters: {exc}") from exc
    _load_state(inner, folder / _INNER / WEIGHTS, data, base)
    inner.module_.eval()
    comp = Compressed(clone(inner), **params)
    comp.estimator_, comp.compression_report_, comp.onnx_model_ = inner, report, None
    if onnx_digest is not None:
        onnx = (folder / _ONNX).read_bytes()
        if hashlib.sha256(onnx).hexdigest() != onnx_digest:
            raise ModelFileError(f"{folder / _ONNX} does not match the sha256 in {_COMPRESSED}")
        comp.onnx_model_ = OnnxModel(onnx)
    return comp
