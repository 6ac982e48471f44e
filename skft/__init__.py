"""skft: fine-tune pretrained neural networks as scikit-learn estimators."""

from .hookspecs import hookimpl
from .plugins import UnknownNameError, augmenters, backbones, freezers, get_backbone
from .specs import BackboneParts, BackboneSpec, FreezeState

__all__ = [
    "BackboneParts",
    "BackboneSpec",
    "Compressed",
    "FineTunedClassifier",
    "FineTunedRegressor",
    "FreezeState",
    "OptunaSearch",
    "UnknownNameError",
    "augmenters",
    "backbones",
    "freezers",
    "get_backbone",
    "hookimpl",
    "load",
    "lr_find",
]
__version__ = "0.1.0"


#: Public names whose modules import torch: loaded on first use, so ``import skft`` stays light.
_LAZY = {
    "FineTunedClassifier": "estimators",
    "FineTunedRegressor": "estimators",
    "OptunaSearch": "search.optuna_search",
    "lr_find": "training.lr_finder",
    "Compressed": "deploy.compress",
    "load": "io.loader",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'skft' has no attribute {name!r}")
