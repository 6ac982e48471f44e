"""timm names, pretrained configs and model creation (``timm.create_model``, downloads).

What a spec needs is read through timm's own helpers (``get_pretrained_cfg`` for the
name, ``resolve_data_config`` for input size and normalisation) so that a model's
defaults are the ones timm's own data pipeline would use; what loading weights into
a built model needs (classifier, first convolution) comes from the model's
``pretrained_cfg`` attribute. Models are created without classifier
(``num_classes=0``) and with one input channel for grayscale samples (``in_chans``).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

import timm
from timm.data import resolve_data_config
from timm.models import get_pretrained_cfg
from torch import nn

from . import PREFIX

__all__ = [
    "classifier_prefixes",
    "create_model",
    "first_convs",
    "in_chans_for",
    "model_cfg",
]


def model_cfg(model_name: str) -> dict[str, Any]:
    """Check ``model_name`` and read what the spec needs from its pretrained config."""
    if not isinstance(model_name, str) or not model_name or not timm.is_model(model_name):
        arch = str(model_name).split(".", 1)[0]
        names = timm.list_models()
        close = difflib.get_close_matches(arch, names, n=5, cutoff=0.6)
        hint = f" Did you mean {' or '.join(repr(PREFIX + c) for c in close)}?" if close else ""
        raise ValueError(
            f"Unknown timm model {model_name!r} (backbone='timm:{model_name}').{hint} "
            f"timm.list_models() lists the {len(names)} known names."
        )
    try:
        cfg = get_pretrained_cfg(model_name)
    except RuntimeError as exc:  # "Invalid pretrained tag (foo) for resnet10t."
        arch = model_name.split(".", 1)[0]
        tags = timm.list_pretrained(f"{arch}.*")
        raise ValueError(
            f"{exc} Pretrained tags of {arch!r}: {', '.join(tags) or '(none)'}."
        ) from exc
    # timm's defaults (224 px, ImageNet mean/std) where the config says nothing;
    # in_chans=3: the spec describes RGB input, skft adapts grayscale at build time
    data = resolve_data_config({"in_chans": 3}, pretrained_cfg=cfg.to_dict() if cfg else None)
    return {
        "has_weights": cfg is not None and _has_weights(cfg),
        "image_size": int(data["input_size"][-1]),
        "mean": tuple(float(v) for v in data["mean"]),
        "std": tuple(float(v) for v in data["std"]),
        "source": _weights_source(cfg) if cfg is not None else None,
        "license": cfg.license if cfg is not None else None,
    }


def _has_weights(cfg: Any) -> bool:
    return bool(cfg.url or cfg.hf_hub_id or cfg.file or cfg.state_dict)


def _weights_source(cfg: Any) -> str | None:
    if cfg.hf_hub_id:
        return f"https://huggingface.co/{cfg.hf_hub_id}"
    return cfg.url or cfg.file or None


def in_chans_for(input_shape: Sequence[int]) -> int:
    """timm's ``in_chans`` for samples of ``input_shape`` ``(C, H, W)``.

    Grayscale (C = 1) gets a one-channel model, whose pretrained first convolution
    timm sums over RGB; anything else an RGB model (skft reports other channel
    counts with a clear error when it adapts the input).
    """
    return 1 if len(input_shape) == 3 and input_shape[0] == 1 else 3


def create_model(model_name: str, pretrained: bool, in_chans: int = 3) -> nn.Module:
    """``timm.create_model`` without classifier; timm's own download for ``pretrained=True``.

    timm's loader drops the pretrained classifier and sums the first convolution
    over RGB for ``in_chans=1``. Without network access the error says how to
    pass the weights as a local file instead.
    """
    if not pretrained:
        return timm.create_model(model_name, pretrained=False, num_classes=0, in_chans=in_chans)
    try:
        return timm.create_model(model_name, pretrained=True, num_classes=0, in_chans=in_chans)
    except (OSError, RuntimeError) as exc:  # offline: huggingface_hub / urllib raise OSErrors
        file = model_name.replace("/", "_") + ".pth"
        cfg = get_pretrained_cfg(model_name)
        source = _weights_source(cfg) if cfg is not None else None
        raise RuntimeError(
            f"Could not fetch the pretrained weights of timm model {model_name!r} from "
            f"{source} ({type(exc).__name__}: {exc}). Without network access, save them "
            "on a machine that has it: torch.save(timm.create_model("
            f"{model_name!r}, pretrained=True).state_dict(), {file!r}), then pass "
            f"pretrained='/path/to/{file}' (a state dict of the timm model), "
            "or use pretrained=False."
        ) from exc


def _cfg_names(model: nn.Module, field: str) -> tuple[str, ...]:
    names = (getattr(model, "pretrained_cfg", None) or {}).get(field) or ()
    return (names,) if isinstance(names, str) else tuple(names)


def classifier_prefixes(model: nn.Module) -> tuple[str, ...]:
    """State-dict prefixes of the model's classifier (``"fc."``, ``"head.fc."``, ...)."""
    return tuple(f"{c}." for c in _cfg_names(model, "classifier"))


def first_convs(model: nn.Module) -> tuple[str, ...]:
    """Module paths of the convolutions that see the input (timm's ``first_conv``)."""
    return _cfg_names(model, "first_conv")
