"""Shared by the skft-timm tests: the Lite group names, the weights file, small helpers."""

from __future__ import annotations

import os
from pathlib import Path

from skft_timm import _build

LITE0_GROUPS = [
    "conv_stem+bn1",
    *(f"blocks.{i}" for i in range(7)),
    "conv_head+bn2",
]


def shared_data_candidates(*parts: str) -> list[Path]:
    """Where the shared data may be: ``$SKFT_SHARED_DATA``, ``../shared/data`` beside the
    checkout (as reached and with links resolved), beside the working directory, and
    ``/work/shared/data``; each joined with ``parts``, without repeats."""
    here = Path(__file__).absolute()
    roots = [Path(os.environ["SKFT_SHARED_DATA"])] if os.environ.get("SKFT_SHARED_DATA") else []
    roots += [
        here.parents[4] / "shared" / "data",  # plugins/skft-timm/tests/ -> the checkout's parent
        here.resolve().parents[4] / "shared" / "data",
        Path.cwd().parent / "shared" / "data",
        Path("/work/shared/data"),
    ]
    found: list[Path] = []
    for root in roots:
        path = root.joinpath(*parts)
        if path not in found:
            found.append(path)
    return found


def find_shared_data(*parts: str) -> tuple[Path | None, str]:
    """The first existing folder among :func:`shared_data_candidates`, and a skip reason
    naming every place looked at (for ``pytest.mark.skipif``)."""
    candidates = shared_data_candidates(*parts)
    found = next((p for p in candidates if p.is_dir()), None)
    looked = ", ".join(str(p) for p in candidates)
    return found, f"needs the {'/'.join(parts)} images; looked in {looked} (set SKFT_SHARED_DATA)"


# the ants/bees images beside the checkout (absent on a user's clone: that test skips)
HYMENOPTERA, HYMENOPTERA_MISSING = find_shared_data("hymenoptera", "val")


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
