"""What a model folder may name: one allow-list of types, used by ``save`` and by ``load``.

A saved config holds JSON values, plus references ``{"__import__": "dotted.name"}``
to classes in the parameters skorch builds objects from (``criterion``,
``optimizer``, ``iterator_train``, ``iterator_valid``, ``dataset``). A reference
is looked up by name in a table of the classes skft writes (the loss classes of
``torch.nn``, the optimizers of ``torch.optim``, skft's batch loaders and
skorch's ``Dataset``), never imported by the name the file gives; plain
functions are never accepted. A ``prefix__key`` parameter (``criterion__*``,
``optimizer__*``, ``callbacks__*``, ...) is accepted only with a JSON value and
when its prefix names a trusted class or an object skft looks up by name
itself. Types a user trusts are passed as ``trusted=[...]`` to ``save`` and
``skft.load`` (classes, or their dotted names).

This module imports nothing of skft above :mod:`skft.data.adapters`, so both the
writing side (:mod:`skft.io.persist`) and the reading side (:mod:`skft.io.loader`) use it.
"""

from __future__ import annotations

import importlib
import json
import math
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

__all__ = [
    "IMPORT",
    "ModelFileError",
    "allowed_types",
    "encode_param",
    "read_json",
    "vet_params",
]

IMPORT = "__import__"
#: the estimator classes a model folder may name
ESTIMATORS = ("FineTunedClassifier", "FineTunedRegressor")
#: parameter -> the kind of class it may name
SLOTS = {
    "criterion": "loss",
    "optimizer": "optimizer",
    "iterator_train": "iterator",
    "iterator_valid": "iterator",
    "dataset": "dataset",
}
#: nesting deeper than this in one parameter value is refused
MAX_DEPTH = 16

#: Modules that moved into subpackages after format 1 folders were written: old -> new.
MOVED_MODULES = {
    "skft.data": "skft.data.adapters",
    "skft.streaming": "skft.data.streaming",
    "skft.text_data": "skft.data.text",
    "skft.schedule": "skft.training.schedule",
    "skft.early_stopping": "skft.training.early_stopping",
    "skft.checkpoint": "skft.training.checkpoint",
    "skft.progress": "skft.training.progress",
    "skft.freezing": "skft.training.freezing",
}


class ModelFileError(ValueError):
    """A model that cannot be saved safely, or a saved model that cannot be loaded."""


def read_json(file: Path) -> Any:
    """The JSON in ``file``; ModelFileError for anything else (NaN and Infinity included)."""

    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    try:
        return json.loads(file.read_text(), parse_constant=refuse)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ModelFileError(f"{file} is corrupt (not valid JSON): {exc}") from exc
    except OSError as exc:
        raise ModelFileError(f"cannot read {file}: {exc}") from exc


def _name(cls: Any) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


@cache
def allowed_types() -> dict[str, dict[str, type]]:
    """``{kind: {name: class}}``: the classes a folder may name, under every name skft wrote."""
    import torch.nn.modules.loss as losses
    import torch.optim
    from skorch.dataset import Dataset

    from ..data.adapters import BatchLoader, ShuffledBatchLoader

    def public(module: Any, base: type, prefix: str) -> dict[str, type]:
        found = {}
        for attr, obj in vars(module).items():
            if isinstance(obj, type) and issubclass(obj, base) and obj is not base:
                if not attr.startswith("_") and obj.__name__ == attr:
                    found[_name(obj)] = obj
                    found[f"{prefix}.{attr}"] = obj
        return found

    table = {
        "loss": public(losses, losses._Loss, "torch.nn"),
        "optimizer": public(torch.optim, torch.optim.Optimizer, "torch.optim"),
        "iterator": {_name(c): c for c in (BatchLoader, ShuffledBatchLoader)},
        "dataset": {_name(Dataset): Dataset},
    }
    for names in table.values():  # folders written before the subpackages: old module names
        for old, new in MOVED_MODULES.items():
            for name, cls in list(names.items()):
                if name.rpartition(".")[0] == new:
                    names[f"{old}.{cls.__qualname__}"] = cls
    return table


def _trusted_names(trusted: Iterable[Any]) -> dict[str, Any]:
    """``{dotted name: class, or None for a name to import}`` for the user's ``trusted``."""
    if isinstance(trusted, (str, type)):
        trusted = [trusted]
    names: dict[str, Any] = {}
    for item in trusted or ():
        if isinstance(item, str):
            names[item] = None
        elif hasattr(item, "__qualname__") and hasattr(item, "__module__"):
            names[_name(item)] = item
        else:
            raise TypeError(f"trusted: expected classes or dotted names, got {item!r}")
    return names


def _resolve_trusted(name: str, obj: Any) -> Any:
    """A type the user trusted by name: imported now (the user named it, not the file)."""
    if obj is not None:
        return obj
    module, _, attr = name.rpartition(".")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ModelFileError(f"trusted type {name!r} cannot be imported: {exc}") from exc


def _is_ref(value: Any) -> bool:
    return isinstance(value, dict) and IMPORT in value


def _plain_json(value: Any, depth: int = 0) -> bool:
    """A JSON value (no reference, finite numbers) nested at most ``MAX_DEPTH`` deep."""
    if value is None or isinstance(value, (bool, int, str)):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if depth >= MAX_DEPTH:
        return False
    if isinstance(value, (list, tuple)):
        return all(_plain_json(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return IMPORT not in value and all(
            isinstance(k, str) and _plain_json(v, depth + 1) for k, v in value.items()
        )
    return False


@cache
def _param_names(estimator_cls: type) -> tuple[frozenset[str], frozenset[str]]:
    """The estimator's parameter names and the prefixes its ``prefix__key`` parameters use."""
    names = set(estimator_cls().get_params(deep=False))
    prefixes = {*estimator_cls.prefixes_, *SLOTS, "module"}
    return frozenset(names), frozenset(prefixes)


def vet_params(
    params: Any, estimator_cls: type, trusted: Iterable[Any] = (), where: str = "model"
) -> dict[str, Any]:
    """The parameters of a config, references replaced by classes; or one ModelFileError.

    Everything refused (untrusted types, parameters that are not the estimator's,
    ``prefix__key`` parameters of untrusted prefixes, non-JSON values) is listed
    in one message, before anything the file names is imported or built.
    """
    if not isinstance(params, dict):
        raise ModelFileError(f"{where}: params must be a JSON object")
    table, user = allowed_types(), _trusted_names(trusted)
    names, prefixes = _param_names(estimator_cls)
    types: list[str] = []
    refused: list[str] = []
    decoded: dict[str, Any] = {}

    def lookup(key: str, value: Any) -> Any:
        """The class ``value`` refers to, or None (listed) when it is not trusted."""
        name = value.get(IMPORT)
        if set(value) != {IMPORT} or not isinstance(name, str):
            refused.append(f"{key} (a malformed reference)")
            return None
        if name in user:
            return (name, user[name])
        kind = SLOTS.get(key)
        if kind is not None and name in table[kind]:
            return (name, table[kind][name])
        types.append(name if kind else f"{name} (as {key})")
        return None

    for key, value in params.items():
        prefix, sep, rest = key.partition("__")
        if sep:
            owner = params.get(prefix)
            if prefix not in prefixes or not rest:
                refused.append(f"{key} (no parameter {prefix!r} takes it)")
            elif prefix == "module":
                refused.append(f"{key} (skft builds the module from backbone=)")
            elif _is_ref(owner) and not _owner_trusted(prefix, owner, table, user):
                refused.append(f"{key} (its {prefix} is not trusted)")
            elif not _plain_json(value):
                refused.append(f"{key} (not a plain JSON value)")
            else:
                decoded[key] = value
            continue
        if key not in names:
            refused.append(f"{key} (not a parameter of {estimator_cls.__name__})")
        elif _is_ref(value):
            found = lookup(key, value)
            if found is not None:
                decoded[key] = found
        elif not _plain_json(value):
            refused.append(f"{key} (not a plain JSON value)")
        elif (
            key == "torch_load_kwargs"
            and isinstance(value, dict)
            and value.get("weights_only") is False
        ):
            refused.append(f"{key} (weights_only=False would unpickle)")
        else:
            decoded[key] = value
    if types or refused:
        parts = []
        if types:
            parts.append(f"untrusted types in {where}: {', '.join(types)}")
        if refused:
            parts.append(f"refused parameters in {where}: {', '.join(refused)}")
        raise ModelFileError(
            "; ".join(parts) + "; pass trusted=[...] to skft.load (skft predict: --trust NAME) "
            "if you wrote this file"
        )
    return {k: _resolve_trusted(*v) if isinstance(v, tuple) else v for k, v in decoded.items()}


def _unpickles(value: Any) -> bool:
    return isinstance(value, dict) and value.get("weights_only") is False


def _owner_trusted(prefix: str, ref: dict, table: dict, user: dict) -> bool:
    name = ref.get(IMPORT)
    if not isinstance(name, str) or set(ref) != {IMPORT}:
        return False
    return name in user or (prefix in SLOTS and name in table[SLOTS[prefix]])


def encode_param(name: str, value: Any, trusted: Iterable[Any] = ()) -> Any:
    """``value`` as written to config.json, or a ModelFileError when ``load`` would refuse it."""
    if _plain_json(value):
        return value
    user = _trusted_names(trusted)
    if isinstance(value, type) or callable(value) and hasattr(value, "__qualname__"):
        where = f"{getattr(value, '__module__', '')}.{getattr(value, '__qualname__', '')}"
        if where in user and user[where] in (None, value):
            if _resolve_trusted(where, None) is value:  # importable under that name
                return {IMPORT: where}
        kind = SLOTS.get(name)
        if kind is not None and allowed_types()[kind].get(where) is value:
            return {IMPORT: where}
    raise ModelFileError(
        f"cannot save parameter {name}={value!r}: a model file holds only JSON values "
        "(numbers, strings, lists, dicts, None) and, as criterion, optimizer, iterator_* or "
        "dataset, the classes skft.load trusts (torch.nn losses, torch.optim optimizers, skft's "
        "batch loaders, skorch's Dataset); pass trusted=[...] to save and to skft.load for a "
        "class of your own, or pickle the estimator (joblib) if the file will only be loaded "
        "by code you trust"
    )
