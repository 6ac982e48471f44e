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
]
__version__ = "0.1.0"


def __getattr__(name: str):
    # the estimators import torch and skorch; keep ``import skft`` light
    if name in ("FineTunedClassifier", "FineTunedRegressor"):
        from . import estimators

        return getattr(estimators, name)
    if name == "Compressed":
        from .compress import Compressed

        return Compressed
    if name == "OptunaSearch":
        from .search import OptunaSearch

        return OptunaSearch
    raise AttributeError(f"module 'skft' has no attribute {name!r}")
