"""Everything a plugin may import from skft: hooks, spec types, registries and helpers.

Plugin distributions (``plugins/skft-timm``, ``plugins/skft-transformers`` and third-party
ones) import from here, from :mod:`skft.specs` or from ``skft`` itself, and from nothing
else in skft (``tests/test_plugin_api.py`` checks it). The rest of skft may move between
releases; these names stay. Importing this module is cheap: the weight helpers import
torch when first called.
"""

from __future__ import annotations

from typing import Any

from .hookspecs import hookimpl
from .io.weights import (
    adapt_input_channels,
    download_state_dict,
    load_state_dict_checked,
    load_state_dict_file,
)
from .params.constraints import (
    Integral,
    Interval,
    InvalidParameterError,
    Options,
    Real,
    StrOptions,
    check_parameters,
)
from .params.plan import DataProfile, FitPlan, image_rule
from .plugins import UnknownNameError, augmenters, backbones, freezers, get_backbone
from .specs import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    AdaptsModule,
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
    TokenizedInput,
)
from .warn import warn_at_caller

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "AdaptsModule",
    "Augmenter",
    "BackboneParts",
    "BackboneSpec",
    "DataProfile",
    "FitPlan",
    "FreezePolicy",
    "FreezeState",
    "InputKind",
    "Integral",
    "Interval",
    "InvalidParameterError",
    "OnnxExportable",
    "OnnxFusable",
    "OnnxFusionHints",
    "Options",
    "Pretrained",
    "Prunable",
    "PruningHints",
    "Real",
    "StrOptions",
    "TokenizedInput",
    "UnknownNameError",
    "adapt_input_channels",
    "augmenters",
    "backbones",
    "check_parameters",
    "download_state_dict",
    "effective_param",
    "freezers",
    "get_backbone",
    "hookimpl",
    "image_rule",
    "load_state_dict_checked",
    "load_state_dict_file",
    "one_column",
    "warn_at_caller",
]


# ----------------------------------------------------------------------------
# Input adapters
# ----------------------------------------------------------------------------


def one_column(X: Any, holds: str) -> Any:
    """A pandas Series, or a one-column DataFrame, as a 1-D numpy array; other X unchanged.

    ``holds`` completes the error for a DataFrame of several columns: "pass the one
    column that holds ``holds``".
    """
    from .data.arrays import one_column as impl

    return impl(X, holds)


def effective_param(estimator: Any, name: str) -> Any:
    """``estimator``'s parameter ``name``, or its backbone's default when it is ``None``.

    For input adapters and factories that depend on a training parameter
    (``max_length``, ``batch_size``, ...) the user may leave to the backbone.
    """
    from .params.defaults import effective

    return effective(estimator, name)
