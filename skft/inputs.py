"""User X to the batch tensor an estimator trains on, checked against what it was fitted on."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["adapt_input", "set_input_tags"]


def adapt_input(net: Any, X: Any, fitting: bool, y: Any = False) -> torch.Tensor:
    """Adapt ``X`` with the backbone's input adapter; record (fit) or check (predict) its shape.

    The adapter is the backbone spec's own, else its input kind's
    (:class:`skft.specs.InputKind`). At fit time the per-sample shape becomes
    ``input_shape_`` (and ``n_features_in_`` for tabular input); later calls
    must match it. With targets ``y`` (fitting), their presence and length
    are checked too.
    """
    if y is None:
        raise ValueError(f"{type(net).__name__} requires y to be passed, but the target y is None")
    if X is None:
        raise ValueError("X is None")
    if isinstance(X, torch.utils.data.Dataset) and not fitting:
        return X  # skorch's own validation scoring hands back our adapted data
    spec, kind = net.backbone_spec_, net.input_kind_
    adapter = spec.adapter or kind.adapter
    Xt = adapter(X, image_size=net.image_size or spec.default_image_size)
    shape = tuple(Xt.shape[1:])
    if fitting:
        net.input_shape_ = shape
        if kind.name == "tabular":
            net.n_features_in_ = shape[0]
    elif shape != net.input_shape_:
        name = type(net).__name__
        if kind.name == "tabular":
            raise ValueError(
                f"X has {shape[0]} features, but {name} is expecting "
                f"{net.input_shape_[0]} features as input."
            )
        raise ValueError(
            f"X has input shape {shape} after adaptation, but {name} was "
            f"fitted on {net.input_shape_} (channels must match)"
        )
    if y is not False and len(Xt) != len(y):
        raise ValueError(f"X and y have different lengths: {len(Xt)} samples in X, {len(y)} in y")
    return Xt


def set_input_tags(tags: Any, backbone: Any) -> Any:
    """scikit-learn's input tags for the input kind of ``backbone`` (images if unknown)."""
    from .plugins import get_backbone

    try:
        kind = get_backbone(backbone).input_kind
    except (ValueError, TypeError):
        kind = "image"
    tags.input_tags.two_d_array = kind == "tabular"
    tags.input_tags.three_d_array = kind == "image"
    tags.input_tags.string = kind == "text"
    return tags
