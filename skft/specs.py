"""The plugin contract: what backbone, freezer and augmenter plugins hand to ``register``."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, Union

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Augmenter",
    "BackboneParts",
    "BackboneSpec",
    "FreezePolicy",
    "FreezeState",
    "Pretrained",
]

#: ``True`` (the backbone's default weights), ``False`` (random init) or a path
#: to a local state-dict file of the backbone's architecture.
Pretrained = Union[bool, str, os.PathLike]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# --------------------------------------------------------------------------
# Backbones
# --------------------------------------------------------------------------


@dataclass
class BackboneParts:
    """A built backbone, cut into the pieces skft trains.

    Applying ``groups`` in order and then ``neck`` maps an input batch to
    features of shape ``(N, feature_dim)``; skft appends a new head.
    """

    #: Ordered ``(name, module)`` layer groups, input side first. ``frozen_depth=k``
    #: freezes the first ``k``.
    groups: list[tuple[str, nn.Module]]
    #: Parameter-free map from the last group's output to ``(N, feature_dim)``
    #: (pooling, flattening).
    neck: nn.Module
    feature_dim: int


@dataclass(frozen=True)
class BackboneSpec:
    """How to build a backbone, load its weights and feed it.

    ``build(pretrained, input_shape)`` returns :class:`BackboneParts`.
    ``pretrained`` is ``True``/``False`` or a path to a state dict of the
    original architecture (load it with :func:`skft.weights.load_state_dict_file`);
    ``input_shape`` is one adapted sample's shape, e.g. ``(3, 224, 224)`` or
    ``(n_features,)``.
    """

    # identity
    name: str
    build: Callable[[Pretrained, tuple[int, ...]], BackboneParts]
    description: str = ""
    has_pretrained: bool = True

    # input: the adapter turns user X into a batch tensor; see skft.data
    input_kind: str = "image"  # "image", "tabular" or "text"
    adapter: Callable[..., Any] | None = None  # None: the default for input_kind
    default_image_size: int | None = 224
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD

    # head: (feature_dim, n_outputs) -> module; None: a Linear layer
    make_head: Callable[[int, int], nn.Module] | None = None

    # free-form metadata (paper, licence, weight source, ...)
    extra: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------
# Freezing policies
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class FreezeState:
    """What a freezing policy decides for one epoch, one entry per layer group."""

    trainable: tuple[bool, ...]
    #: Run the group in eval mode during training (BatchNorm statistics and
    #: dropout frozen). Policies set this for frozen groups by default.
    eval_mode: tuple[bool, ...]
    #: Multiplier of the base learning rate for each group (the head gets 1.0).
    lr_factors: tuple[float, ...]


class FreezePolicy(Protocol):
    """Turns (layer groups, frozen_depth, epoch) into a :class:`FreezeState`.

    Registered as a factory called with the estimator's ``freeze__*`` params.
    """

    def __call__(self, groups: Sequence[str], frozen_depth: int, epoch: int) -> FreezeState: ...


# --------------------------------------------------------------------------
# Augmenters
# --------------------------------------------------------------------------


class Augmenter(Protocol):
    """Maps a training batch and a strength in [0, 1] to an augmented batch.

    ``X`` is a float tensor on the training device (images: ``(N, C, H, W)``
    in [0, 1]); the result has the same shape, dtype and device. Strength 0
    must return ``X`` unchanged. Randomness comes from ``generator`` only.
    Registered as a factory called with the estimator's ``augment__*`` params.

    Optional attributes: ``input_kinds`` (default ``("image",)``), and
    ``mixes_targets = True`` for augmenters that mix samples (mixup, cutmix):
    skft then calls ``aug(X, strength, generator, y=y)`` with float targets
    ``y`` of shape ``(N, K)`` (one-hot class probabilities for classifiers,
    standardised targets for regressors) and expects ``(X, y)`` back.
    """

    def __call__(
        self, X: torch.Tensor, strength: float, generator: torch.Generator
    ) -> torch.Tensor: ...
