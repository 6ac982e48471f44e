"""Deployment: structured pruning, ONNX export and simplification, int8, :class:`Compressed`,
and deploy folders (:class:`DeployedClassifier`, :class:`DeployedRegressor`: no torch)."""

__all__ = ["Compressed", "DeployedClassifier", "DeployedRegressor", "to_onnx"]

#: name -> module; loaded on first use (``compress`` imports torch, ``deployed`` does not)
_LAZY = {
    "Compressed": "compress",
    "to_onnx": "compress",
    "DeployedClassifier": "deployed",
    "DeployedRegressor": "deployed",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
