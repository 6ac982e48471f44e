"""Hyper-parameter search with Optuna: :class:`OptunaSearch`, its space, objective and storages."""

__all__ = ["OptunaSearch"]


def __getattr__(name: str):
    if name == "OptunaSearch":  # imports torch: loaded on first use
        from .optuna_search import OptunaSearch

        return OptunaSearch
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
