"""The plugin contract: what plugins hand to ``register`` (input kinds, backbones, ...)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, Union, runtime_checkable

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "AdaptsModule",
    "Augmenter",
    "BackboneParts",
    "BackboneSpec",
    "FreezePolicy",
    "FreezeState",
    "InputKind",
    "OnnxExportable",
    "OnnxFusable",
    "OnnxFusionHints",
    "Prunable",
    "Pretrained",
    "PruningHints",
    "TokenizedInput",
]

#: ``True`` (the backbone's default weights), ``False`` (random init) or a path
#: to a local state-dict file of the backbone's architecture.
Pretrained = Union[bool, str, os.PathLike]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# --------------------------------------------------------------------------
# Input kinds
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class InputKind:
    """What one kind of input (``"image"``, ``"tabular"``, ``"text"``, ...) needs from skft.

    A backbone spec names its kind; the estimator adapts ``X`` with the
    kind's adapter (unless the spec brings its own) and trains on the batch
    tensors it returns.
    """

    name: str
    #: ``adapter(X, image_size=...)`` turns user X into one batch tensor
    #: ``(N, *sample_shape)``, raising ``ValueError``/``TypeError`` for bad input.
    adapter: Callable[..., Any]
    #: What the adapter returns, for error messages and docs.
    batch_type: str = "tensor"
    #: Estimator parameters handed to the adapter as keywords (text: ``("max_length",)``).
    options: tuple[str, ...] = ()
    #: The last axis of a sample may differ between fit and predict (text: the
    #: longest tokenised sequence); only the other axes must match.
    variable_length: bool = False
    #: Variable-length kinds: ``lengths(X)``, each sample's length along the last axis
    #: of an adapted ``X`` on the CPU (text: its tokens). skft trims every batch to its
    #: own longest sample on the host, before the batch moves to the device, so layer
    #: groups compute on the length they are given and never read it back.
    lengths: Callable[[Any], Any] | None = None
    #: The axis of that length in the features one layer group hands the next (text:
    #: ``(B, L, H + 1)``, axis 1): batches of cached prefix features are trimmed there.
    feature_length_axis: int = 1
    #: The frozen-prefix feature cache applies (samples are fixed tensors whose
    #: prefix output does not change between epochs).
    cacheable: bool = True
    #: Maps a stored training batch (on the device) to what augmenters take,
    #: e.g. uint8 images to float in [0, 1]; ``None``: the batch as it is.
    to_augmentable: Callable[[Any], Any] | None = None
    description: str = ""


@dataclass(frozen=True)
class TokenizedInput:
    """How a deploy folder tokenises texts without the plugin that adapted them, or torch.

    A text backbone's spec returns one from ``tokenized_input(max_length)``;
    ``Compressed.save(path, deploy=True)`` writes ``tokenizer`` to the folder as
    ``tokenizer.json`` and :mod:`skft.deploy.deployed` builds each batch as the
    plugin's adapter does for the network: the ``tokenizers`` package encodes the
    texts (no padding, truncation to ``max_length`` tokens), and a float32 array
    ``(N, C, L)`` (``C`` the fitted channels, ``L`` the longest text) holds the
    token ids in row ``ids_row`` and the attention mask in row ``mask_row``, both 0
    past a text's end, and ``fill`` in every other row (rows the network does not
    read, such as the augmenters' word ids and synonyms).
    """

    #: a fast tokenizer as JSON, as ``tokenizers.Tokenizer.to_str()`` writes it
    tokenizer: str
    max_length: int
    ids_row: int = 0
    mask_row: int = 1
    fill: float = -1.0


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
    #: The original architecture the groups were cut from (sharing their
    #: parameters), with its classifier replaced by an identity, so that
    #: ``estimator.export_backbone()`` can hand the tuned network back under
    #: its own parameter names. ``None`` when the backbone has no such model.
    model: nn.Module | None = None


@dataclass
class PruningHints:
    """What a layer group tells :func:`skft.deploy.pruning.prune_module` about its structure.

    A group module (or any module inside it) may define ``pruning_hints()``
    returning one of these; layers without hints are pruned by channel as
    torch-pruning's dependency graph allows. Transformer layers use it to say
    that whole attention heads go (``num_heads``: each query/key/value
    projection and its head count) and that the layers writing the residual
    stream keep their width (``ignored_layers``); ``after`` runs once pruning is
    done (e.g. to update a layer's stored head count).
    """

    #: layers whose output channels are never pruned
    ignored_layers: list[nn.Module] = field(default_factory=list)
    #: projections pruned by whole heads, with their head counts
    num_heads: dict[nn.Module, int] = field(default_factory=dict)
    #: called after pruning, to bring attributes in line with the new shapes
    after: Callable[[], None] | None = None


@dataclass(frozen=True)
class OnnxFusionHints:
    """What ONNX Runtime's transformer optimizer needs to know about an encoder layer."""

    #: the optimizer's model type ("bert", ...)
    model_type: str
    #: attention heads and hidden width as they are now (after head pruning)
    num_heads: int
    hidden_size: int


# --------------------------------------------------------------------------
# Optional methods of a layer (any module inside a group may have them)
# --------------------------------------------------------------------------


@runtime_checkable
class Prunable(Protocol):
    """A layer that tells structured pruning how it may be pruned."""

    def pruning_hints(self) -> PruningHints: ...


@runtime_checkable
class OnnxExportable(Protocol):
    """A layer that switches the copy being exported to an export-friendlier form."""

    def prepare_onnx_export(self) -> None: ...


@runtime_checkable
class OnnxFusable(Protocol):
    """A layer whose attention ONNX Runtime's transformer optimizer can fuse."""

    def onnx_fusion_hints(self) -> OnnxFusionHints | None: ...


@dataclass(frozen=True)
class BackboneSpec:
    """How to build a backbone, load its weights and feed it.

    ``build(pretrained, input_shape)`` returns :class:`BackboneParts`.
    ``pretrained`` is ``True``/``False`` or a path to a state dict of the
    original architecture (load it with :func:`skft.io.weights.load_state_dict_file`);
    ``input_shape`` is one adapted sample's shape, e.g. ``(3, 224, 224)`` or
    ``(n_features,)``.
    """

    # identity
    name: str
    build: Callable[[Pretrained, tuple[int, ...]], BackboneParts]
    description: str = ""
    has_pretrained: bool = True

    # input: the adapter turns user X into a batch tensor; see skft.data.adapters
    input_kind: str = "image"  # a registered InputKind: "image", "tabular", "text", ...
    adapter: Callable[..., Any] | None = None  # None: the InputKind's adapter
    default_image_size: int | None = 224
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD

    # head: (feature_dim, n_outputs) -> module; None: a Linear layer
    make_head: Callable[[int, int], nn.Module] | None = None

    # structure: the number of layer groups when known without building
    # (None: skft builds the backbone once without weights to count them)
    n_groups: int | None = None

    # training defaults the estimator uses where its parameter is None:
    # "lr", "batch_size", "max_epochs", "augment", "max_length", and "head_lr_factor"
    # (the head trains at lr * head_lr_factor); see skft.params.defaults
    defaults: dict[str, Any] = field(default_factory=dict)

    # the data-aware rule (skft.params.plan): (DataProfile, static defaults) ->
    # {name: (value, reason)} for the parameters it decides; None: the rule of the input kind
    # (images: skft.params.plan.image_rule)
    plan: Callable[[Any, dict], dict] | None = None

    # what precision="auto" means on a CUDA device with bf16 support: "bf16" (autocast) or
    # "fp32" (for a backbone measured slower under bf16 autocast than in fp32: skft-transformers'
    # text encoders); CPUs always run fp32 under "auto" (skft.params.setup.autocast_dtype)
    cuda_precision: str = "bf16"

    # deploy folders (skft.deploy.deployed) adapt images and tabular data themselves; a
    # backbone with an adapter of its own (text) says how its texts are tokenised there:
    # (max_length) -> TokenizedInput; None: no deploy folder for such a backbone
    tokenized_input: Callable[[int], TokenizedInput] | None = None

    # free-form metadata (paper, licence, weight source, ...); skft never reads it
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.cuda_precision not in ("bf16", "fp32"):
            raise ValueError(
                f"backbone {self.name!r}: cuda_precision must be 'bf16' or 'fp32', "
                f"got {self.cuda_precision!r}"
            )


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
    #: Within the trainable groups, only the parameters whose name inside their group
    #: this predicate accepts train (adapters: ``"lora_" in name``; BitFit: the biases);
    #: ``None``: every parameter of a trainable group trains.
    train_only: Callable[[str], bool] | None = None


class FreezePolicy:
    """Base of freezing policies: (layer groups, frozen_depth, epoch) to a :class:`FreezeState`.

    Registered as a factory called with the estimator's ``freeze__*`` params.
    Subclassing is optional: :func:`skft.training.freezing.build_freezer` takes any
    callable with this signature as it is. A policy contributes
    its parameters to the default search space through the ``search_space``
    hook of the plugin that registers it.
    """

    def __call__(self, groups: Sequence[str], frozen_depth: int, epoch: int) -> FreezeState:
        raise NotImplementedError


@runtime_checkable
class AdaptsModule(Protocol):
    """A freezing policy that adds layers to the network (adapters: LoRA, IA3, ...).

    ``adapt(groups, names, frozen_depth)`` is called once, when the network is built
    (before the optimizer, and before saved weights are loaded): ``groups`` is the
    ``nn.ModuleList`` of layer groups (input side first), ``names`` their names; the
    policy changes the groups after the first ``frozen_depth`` in place and raises
    ``ValueError`` when there is nothing it can adapt. Its states then name the new
    parameters in :attr:`FreezeState.train_only`.
    """

    def adapt(self, groups: nn.ModuleList, names: Sequence[str], frozen_depth: int) -> None: ...


# --------------------------------------------------------------------------
# Augmenters
# --------------------------------------------------------------------------


class Augmenter:
    """Base of augmenters: a training batch and a strength in [0, 1] to an augmented batch.

    ``X`` is a float tensor on the training device (images: ``(N, C, H, W)``
    in [0, 1]); the result has the same shape, dtype and device. Strength 0
    must return ``X`` unchanged. Randomness comes from ``generator`` only.
    Registered as a factory called with the estimator's ``augment__*`` params.

    Subclassing is optional: skft wraps any callable with this signature
    (:func:`skft.augment.build_augmenter`), reading the two class attributes
    below from it when present. An augmenter contributes its parameters to
    the default search space through the ``search_space`` hook of the plugin
    that registers it.
    """

    #: Input kinds (``InputKind.name``) the augmenter works on.
    input_kinds: tuple[str, ...] = ("image",)
    #: True for augmenters that mix samples (mixup, cutmix): skft then calls
    #: ``aug(X, strength, generator, y=y)`` with float targets ``y`` of shape
    #: ``(N, K)`` (one-hot class probabilities for classifiers, standardised
    #: targets for regressors) and expects ``(X, y)`` back.
    mixes_targets: bool = False

    def __call__(
        self, X: torch.Tensor, strength: float, generator: torch.Generator, y: Any = None
    ) -> Any:
        raise NotImplementedError
