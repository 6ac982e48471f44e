"""Small built-in backbones without pretrained weights: ``mlp`` (tabular), ``smallcnn`` (images)."""

from __future__ import annotations

from ..hookspecs import hookimpl
from ..specs import BackboneParts, BackboneSpec, Pretrained


def _no_weights(name: str, pretrained: Pretrained) -> None:
    if pretrained is not False:
        raise ValueError(
            f"backbone {name!r} has no pretrained weights; use pretrained=False "
            "(it trains from scratch)."
        )


def build_mlp(pretrained: Pretrained, input_shape: tuple[int, ...]) -> BackboneParts:
    from torch import nn

    _no_weights("mlp", pretrained)
    (n_features,) = input_shape
    width = 64
    groups = [
        ("block1", nn.Sequential(nn.Linear(n_features, width), nn.ReLU())),
        ("block2", nn.Sequential(nn.Linear(width, width), nn.ReLU())),
    ]
    return BackboneParts(groups=groups, neck=nn.Identity(), feature_dim=width)


def build_smallcnn(pretrained: Pretrained, input_shape: tuple[int, ...]) -> BackboneParts:
    from torch import nn

    _no_weights("smallcnn", pretrained)

    def block(c_in: int, c_out: int) -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )

    groups = [("block1", block(3, 16)), ("block2", block(16, 32)), ("block3", block(32, 64))]
    neck = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return BackboneParts(groups=groups, neck=neck, feature_dim=64)


@hookimpl
def register_backbones(register) -> None:
    register(
        BackboneSpec(
            name="mlp",
            build=build_mlp,
            description="Two-layer perceptron for 2-D tabular X (no pretrained weights)",
            has_pretrained=False,
            input_kind="tabular",
            default_image_size=None,
            mean=(),
            std=(),
        )
    )
    register(
        BackboneSpec(
            name="smallcnn",
            build=build_smallcnn,
            description="Three conv-BN-ReLU-pool blocks, 24k parameters (no pretrained weights)",
            has_pretrained=False,
            default_image_size=32,
            mean=(0.5, 0.5, 0.5),
            std=(0.25, 0.25, 0.25),
        )
    )
