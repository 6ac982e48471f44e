"""Default plugin: torchvision classification models as skft backbones.

Each model is built with ``torchvision.models.get_model(name, weights=None)``,
given its weights (torchvision's default ImageNet weights, a local state-dict
file, or none) and cut into layer groups from input to output. The original
classifier's last Linear layer is dropped; skft appends a new head.

Neither torchvision nor torch is imported until a backbone is built, so
``import skft`` stays light.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, NamedTuple

from skft.hookspecs import hookimpl
from skft.specs import IMAGENET_MEAN, IMAGENET_STD, BackboneParts, BackboneSpec, Pretrained

if TYPE_CHECKING:
    from torch import nn

__all__ = ["MODELS", "register_backbones"]

Groups = list[tuple[str, "nn.Module"]]
Cut = Callable[["nn.Module"], tuple[Groups, "nn.Module", int]]


# --------------------------------------------------------------------------
# Cutting a model into (groups, neck, feature_dim)
# --------------------------------------------------------------------------


def _cut_resnet(m: nn.Module) -> tuple[Groups, nn.Module, int]:
    """stem (conv1, bn1, relu, maxpool), layer1..layer4; neck: avg pool + flatten."""
    from torch import nn

    groups: Groups = [("stem", nn.Sequential(m.conv1, m.bn1, m.relu, m.maxpool))]
    groups += [(f"layer{i}", getattr(m, f"layer{i}")) for i in range(1, 5)]
    neck = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
    return groups, neck, m.fc.in_features


def _cut_vgg(m: nn.Module) -> tuple[Groups, nn.Module, int]:
    """One group per conv block (ending at its MaxPool), then avgpool + fc6/fc7."""
    from torch import nn

    groups: Groups = []
    block: list[nn.Module] = []
    for layer in m.features:
        block.append(layer)
        if isinstance(layer, nn.MaxPool2d):
            groups.append((f"block{len(groups) + 1}", nn.Sequential(*block)))
            block = []
    head = nn.Sequential(m.avgpool, nn.Flatten(1), *m.classifier[:-1])
    groups.append(("classifier", head))
    return groups, nn.Identity(), m.classifier[-1].in_features


def _stride(module: nn.Module) -> int:
    from torch import nn

    return max((c.stride[0] for c in module.modules() if isinstance(c, nn.Conv2d)), default=1)


def _cut_mobilenet_v3(m: nn.Module) -> tuple[Groups, nn.Module, int]:
    """stem, stages of inverted-residual blocks (a new stage at each stride-2 block),
    the last conv, then avgpool + the first classifier Linear + Hardswish + Dropout."""
    from torch import nn

    stem, *blocks, last_conv = m.features
    stages: list[list[nn.Module]] = []
    for block in blocks:
        if not stages or _stride(block) > 1:
            stages.append([])
        stages[-1].append(block)
    groups: Groups = [("stem", stem)]
    groups += [(f"stage{i}", nn.Sequential(*s)) for i, s in enumerate(stages, 1)]
    groups.append(("last_conv", last_conv))
    groups.append(("classifier", nn.Sequential(m.avgpool, nn.Flatten(1), *m.classifier[:-1])))
    return groups, nn.Identity(), m.classifier[-1].in_features


def _cut_efficientnet(m: nn.Module) -> tuple[Groups, nn.Module, int]:
    """stem (features[0]), stage1..7 (features[1..7]), last_conv (features[8])."""
    from torch import nn

    stem, *stages, last_conv = m.features
    groups: Groups = [("stem", stem)]
    groups += [(f"stage{i}", s) for i, s in enumerate(stages, 1)]
    groups.append(("last_conv", last_conv))
    neck = nn.Sequential(m.avgpool, nn.Flatten(1))
    return groups, neck, m.classifier[-1].in_features


def _cut_convnext(m: nn.Module) -> tuple[Groups, nn.Module, int]:
    """stem, stage1..4 (each with the downsampling layer before it), then
    head_norm (avgpool + the classifier's LayerNorm2d + flatten)."""
    from torch import nn

    f = m.features
    groups: Groups = [("stem", f[0]), ("stage1", f[1])]
    groups += [(f"stage{i}", nn.Sequential(f[2 * i - 2], f[2 * i - 1])) for i in range(2, 5)]
    groups.append(("head_norm", nn.Sequential(m.avgpool, *m.classifier[:-1])))
    return groups, nn.Identity(), m.classifier[-1].in_features


# --------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------


class Arch(NamedTuple):
    cut: Cut
    #: state-dict key prefix of the dropped classifier layer
    classifier: str
    #: torchvision's default weights (``get_model_weights(name).DEFAULT``), for the docs
    weights: str
    url: str


_URL = "https://download.pytorch.org/models/"

MODELS: dict[str, Arch] = {
    "resnet18": Arch(_cut_resnet, "fc.", "ResNet18_Weights.IMAGENET1K_V1", "resnet18-f37072fd.pth"),
    "resnet34": Arch(_cut_resnet, "fc.", "ResNet34_Weights.IMAGENET1K_V1", "resnet34-b627a593.pth"),
    "resnet50": Arch(_cut_resnet, "fc.", "ResNet50_Weights.IMAGENET1K_V2", "resnet50-11ad3fa6.pth"),
    "vgg11": Arch(_cut_vgg, "classifier.6.", "VGG11_Weights.IMAGENET1K_V1", "vgg11-8a719046.pth"),
    "vgg11_bn": Arch(
        _cut_vgg, "classifier.6.", "VGG11_BN_Weights.IMAGENET1K_V1", "vgg11_bn-6002323d.pth"
    ),
    "vgg16": Arch(_cut_vgg, "classifier.6.", "VGG16_Weights.IMAGENET1K_V1", "vgg16-397923af.pth"),
    "vgg16_bn": Arch(
        _cut_vgg, "classifier.6.", "VGG16_BN_Weights.IMAGENET1K_V1", "vgg16_bn-6c64b313.pth"
    ),
    "mobilenet_v3_small": Arch(
        _cut_mobilenet_v3,
        "classifier.3.",
        "MobileNet_V3_Small_Weights.IMAGENET1K_V1",
        "mobilenet_v3_small-047dcff4.pth",
    ),
    "mobilenet_v3_large": Arch(
        _cut_mobilenet_v3,
        "classifier.3.",
        "MobileNet_V3_Large_Weights.IMAGENET1K_V2",
        "mobilenet_v3_large-5c1a4163.pth",
    ),
    "efficientnet_b0": Arch(
        _cut_efficientnet,
        "classifier.1.",
        "EfficientNet_B0_Weights.IMAGENET1K_V1",
        "efficientnet_b0_rwightman-7f5810bc.pth",
    ),
    "convnext_tiny": Arch(
        _cut_convnext,
        "classifier.2.",
        "ConvNeXt_Tiny_Weights.IMAGENET1K_V1",
        "convnext_tiny-983f1562.pth",
    ),
}


# --------------------------------------------------------------------------
# Building and registering
# --------------------------------------------------------------------------


def build(name: str, pretrained: Pretrained, input_shape: tuple[int, ...]) -> BackboneParts:
    """Build torchvision's ``name``, load its weights and cut it into groups."""
    import torch
    import torchvision

    from skft.io.weights import download_state_dict, load_state_dict_checked, load_state_dict_file

    if len(input_shape) != 3:
        raise ValueError(f"{name} takes images (C, H, W); got samples of shape {input_shape}")
    arch = MODELS[name]
    model = torchvision.models.get_model(name, weights=None)
    if isinstance(pretrained, (str, os.PathLike)):
        load_state_dict_file(model, pretrained, ignore_prefixes=(arch.classifier,))
    elif pretrained:
        weights = torchvision.models.get_model_weights(name).DEFAULT
        # WeightsEnum.get_state_dict is exactly this call; going through torch.hub
        # keeps it patchable in tests.
        state = download_state_dict(
            lambda: torch.hub.load_state_dict_from_url(weights.url, progress=False),
            what=f"{name} ({weights})",
            url=weights.url,
        )
        load_state_dict_checked(model, state, (arch.classifier,), source=weights.url)
    groups, neck, feature_dim = arch.cut(model)
    model.set_submodule(arch.classifier.rstrip("."), torch.nn.Identity())  # for export_backbone
    return BackboneParts(groups=groups, neck=neck, feature_dim=feature_dim, model=model)


def make_spec(name: str) -> BackboneSpec:
    arch = MODELS[name]
    return BackboneSpec(
        name=name,
        build=partial(build, name),
        description=f"torchvision {name}, ImageNet-1k weights {arch.weights}",
        input_kind="image",
        default_image_size=224,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        extra={"source": "torchvision", "weights": arch.weights, "url": _URL + arch.url},
    )


@hookimpl
def register_backbones(register: Callable[..., None]) -> None:
    for name in MODELS:
        register(make_spec(name))
