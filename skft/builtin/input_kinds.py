"""Default plugin: the ``image`` and ``tabular`` input kinds."""

from __future__ import annotations

from typing import Any

from ..hookspecs import hookimpl
from ..specs import InputKind


def _adapt_images(
    X: Any, image_size: int | None = None, device: Any = None, decode_cache: bool = True
):
    from ..data.adapters import adapt_images

    return adapt_images(X, image_size=image_size, device=device, decode_cache=decode_cache)


def _adapt_tabular(X: Any, image_size: int | None = None):
    from ..data.adapters import adapt_tabular

    return adapt_tabular(X)


def _float_images(X: Any):
    from ..data.adapters import as_float_images

    return as_float_images(X)


IMAGE = InputKind(
    name="image",
    adapter=_adapt_images,
    batch_type="uint8 or float32 tensor (N, C, H, W), C in {1, 3}",
    cacheable=True,
    options=("device", "decode_cache"),  # files: decoded on the GPU for CUDA, cached
    to_augmentable=_float_images,
    description="arrays (N,H,W), (N,H,W,C), (N,C,H,W); PIL images; image file paths",
)

TABULAR = InputKind(
    name="tabular",
    adapter=_adapt_tabular,
    batch_type="float32 tensor (N, n_features)",
    cacheable=True,
    description="2-D numeric arrays and data frames",
)


@hookimpl
def register_input_kinds(register) -> None:
    register(IMAGE)
    register(TABULAR)
