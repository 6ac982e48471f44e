"""Shared by the skft-timm tests: the Lite group names, the weights file, small helpers."""

from __future__ import annotations

from pathlib import Path

from skft_timm import _build

LITE0_GROUPS = [
    "conv_stem+bn1",
    *(f"blocks.{i}" for i in range(7)),
    "conv_head+bn2",
]
# the ants/bees images beside the checkout (absent on a user's clone: that test skips)
HYMENOPTERA = Path(__file__).resolve().parents[4] / "shared" / "data" / "hymenoptera" / "val"


def lite0_file() -> str:
    return _build.lite0_package_file()


def apply(parts, x):
    for _, group in parts.groups:
        group.eval()
        x = group(x)
    parts.neck.eval()
    return parts.neck(x)


def n_params(modules):
    return sum(p.numel() for m in modules for p in m.parameters())
