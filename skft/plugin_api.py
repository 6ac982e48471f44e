"""Everything a plugin may import from skft: hooks, spec types, registries and helpers.

Plugin distributions (``plugins/skft-timm``, ``plugins/skft-transformers`` and third-party
ones) import from here, from :mod:`skft.specs` or from ``skft`` itself, and from nothing
else in skft (``tests/test_plugin_api.py`` checks it). The rest of skft may move between
releases; these names stay. Importing this module is cheap: the weight helpers import
torch when first called.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from .hookspecs import hookimpl
from .plugins import UnknownNameError, augmenters, backbones, freezers, get_backbone
from .specs import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Augmenter,
    BackboneParts,
    BackboneSpec,
    FreezePolicy,
    FreezeState,
    InputKind,
    OnnxExportable,
    OnnxFusable,
    OnnxFusionHints,
    Pretrained,
    Prunable,
    PruningHints,
)

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Augmenter",
    "BackboneParts",
    "BackboneSpec",
    "FreezePolicy",
    "FreezeState",
    "InputKind",
    "OnnxExportable",
    "OnnxFusable",
    "OnnxFusionHints",
    "Pretrained",
    "Prunable",
    "PruningHints",
    "UnknownNameError",
    "adapt_input_channels",
    "augmenters",
    "backbones",
    "download_state_dict",
    "effective_param",
    "freezers",
    "get_backbone",
    "hookimpl",
    "load_state_dict_checked",
    "load_state_dict_file",
    "one_column",
]


# ----------------------------------------------------------------------------
# Input adapters
# ----------------------------------------------------------------------------


def one_column(X: Any, holds: str) -> Any:
    """A pandas Series, or a one-column DataFrame, as a 1-D numpy array; other X unchanged.

    ``holds`` completes the error for a DataFrame of several columns: "pass the one
    column that holds ``holds``".
    """
    from .data.images import one_column as impl

    return impl(X, holds)


def effective_param(estimator: Any, name: str) -> Any:
    """``estimator``'s parameter ``name``, or its backbone's default when it is ``None``.

    For input adapters and factories that depend on a training parameter
    (``max_length``, ``batch_size``, ...) the user may leave to the backbone.
    """
    from .defaults import effective

    return effective(estimator, name)


# ----------------------------------------------------------------------------
# Pretrained weights
# ----------------------------------------------------------------------------


def load_state_dict_file(
    model: nn.Module, path: str | os.PathLike, ignore_prefixes: Iterable[str] = ()
) -> nn.Module:
    """Load a state dict saved with ``torch.save`` into ``model`` (``weights_only=True``).

    Keys starting with any of ``ignore_prefixes`` are skipped on both sides; every
    other key must match in name and shape, otherwise a ``ValueError`` names them.
    """
    from .io import weights

    return weights.load_state_dict_file(model, path, ignore_prefixes)


def load_state_dict_checked(
    model: nn.Module,
    state: dict[str, Any],
    ignore_prefixes: Iterable[str] = (),
    source: str = "state dict",
    architecture: str | None = None,
) -> None:
    """``model.load_state_dict`` with one readable error for every mismatch."""
    from .io import weights

    weights.load_state_dict_checked(model, state, ignore_prefixes, source, architecture)


def download_state_dict(get: Callable[[], dict[str, Any]], what: str, url: str) -> dict[str, Any]:
    """``get()`` (a download of pretrained weights), with a clear error when offline."""
    from .io import weights

    return weights.download_state_dict(get, what, url)


def adapt_input_channels(groups: Iterable[nn.Module], in_chans: int) -> None:
    """The first convolution in ``groups`` adapted to ``in_chans`` input channels."""
    from .io import weights

    weights.adapt_input_channels(groups, in_chans)
