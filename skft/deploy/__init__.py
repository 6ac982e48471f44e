"""Deployment: structured pruning, ONNX export and simplification, int8, :class:`Compressed`."""

__all__ = ["Compressed", "to_onnx"]


def __getattr__(name: str):
    if name in __all__:  # imports torch: loaded on first use
        from . import compress

        return getattr(compress, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
