"""Loading pretrained weights: local state-dict files and downloads with clear offline errors."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported when a function runs: skft.plugin_api stays light
    from torch import nn

__all__ = [
    "adapt_input_channels",
    "download_state_dict",
    "load_state_dict_checked",
    "load_state_dict_file",
    "mismatch_report",
]


def load_state_dict_file(
    model: nn.Module, path: str | os.PathLike, ignore_prefixes: Iterable[str] = ()
) -> nn.Module:
    """Load a state dict saved with ``torch.save`` into ``model`` (``weights_only=True``).

    Keys starting with any of ``ignore_prefixes`` (the original classifier, which
    skft replaces) are skipped on both sides; every other key must match in
    name and shape, otherwise a ``ValueError`` says which do not.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pretrained={str(path)!r}: no such weights file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors, truncated files, non-torch files
        raise ValueError(f"pretrained={str(path)!r} is not a loadable state dict: {exc}") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(
            f"pretrained={str(path)!r} holds a {type(state).__name__}, not a state dict"
        )
    load_state_dict_checked(model, state, ignore_prefixes, source=str(path))
    return model


def load_state_dict_checked(
    model: nn.Module,
    state: dict[str, Any],
    ignore_prefixes: Iterable[str] = (),
    source: str = "state dict",
    architecture: str | None = None,
) -> None:
    """``model.load_state_dict`` with one readable error for every mismatch.

    ``architecture`` names the model in the message (default: its class name).
    """
    ignore = tuple(ignore_prefixes)

    def keep(key: str) -> bool:
        return not (ignore and key.startswith(ignore))

    own = {k: v for k, v in model.state_dict().items() if keep(k)}
    theirs = {k: v for k, v in state.items() if keep(k)}
    missing = sorted(own.keys() - theirs.keys())
    unexpected = sorted(theirs.keys() - own.keys())
    shapes = [
        f"{k}: file {tuple(theirs[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own.keys() & theirs.keys()
        if hasattr(theirs[k], "shape") and tuple(theirs[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or shapes:
        arch = architecture or type(model).__name__
        header = f"{source} does not match the architecture ({arch}):"
        raise ValueError(mismatch_report(header, missing, unexpected, shapes))
    model.load_state_dict(theirs, strict=False)


def mismatch_report(
    header: str, missing: list[str], unexpected: list[str], shapes: list[str]
) -> str:
    """``header`` and one line per kind of mismatch, each naming its first five keys."""
    lines = [header]
    for label, items in (("missing", missing), ("unexpected", unexpected), ("shape", shapes)):
        if items:
            more = f" (+{len(items) - 5} more)" if len(items) > 5 else ""
            lines.append(f"  {label}: {', '.join(items[:5])}{more}")
    return "\n".join(lines)


def download_state_dict(get: Callable[[], dict[str, Any]], what: str, url: str) -> dict[str, Any]:
    """Call ``get`` (a download), turning a network failure into advice for offline use."""
    try:
        return get()
    except (OSError, RuntimeError) as exc:  # URLError is an OSError
        import torch

        name = url.rsplit("/", 1)[-1]
        raise RuntimeError(
            f"Could not fetch the pretrained weights of {what} ({exc}). Without network "
            f"access, download {url} elsewhere and pass pretrained='/path/to/{name}' "
            "(a state-dict file), or copy it into torch's hub cache "
            f"({torch.hub.get_dir()}/checkpoints/), or use pretrained=False."
        ) from exc


def adapt_input_channels(groups: Iterable[nn.Module], in_chans: int) -> None:
    """Make the first convolution accept ``in_chans`` channels.

    Three-channel weights become one-channel weights by summing over the input
    channels (timm's ``adapt_input_conv``), so a grayscale image gives the
    response an RGB image with equal channels would.
    """
    import torch
    from torch import nn

    conv = next((m for g in groups for m in g.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is None or conv.in_channels == in_chans:
        return
    if not (conv.in_channels == 3 and in_chans == 1):
        raise ValueError(
            f"X has {in_chans} channels but the backbone's first convolution takes "
            f"{conv.in_channels}; skft adapts 1-channel input to 3-channel backbones only. "
            "Pass grayscale (1 channel) or RGB (3 channels) images."
        )
    with torch.no_grad():
        weight = conv.weight.sum(dim=1, keepdim=True)
    conv.in_channels = 1
    conv.weight = nn.Parameter(weight)
