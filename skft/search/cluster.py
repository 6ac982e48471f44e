"""Searches whose fits run in other processes: checks made on the client before any task leaves.

scikit-learn's searches clone the estimator once per candidate and fold; under joblib's
Dask backend (``joblib.parallel_backend("dask")``) each clone is then pickled
(cloudpickle) and sent to a worker. Dask reports an estimator it cannot pickle only in
its event loop's log, and the search waits for the lost task (dask 2026.8: until it was
killed, more than 5 minutes later); skft checks at
clone time instead (:meth:`skft.base.FineTuneMixin.__sklearn_clone__`) and names the
parameter. Lambdas and local functions pickle with cloudpickle and are fine.

A Dask backend without workers is joblib's to report: a ``TimeoutError`` ("has no worker
after N seconds") once ``wait_for_workers_timeout`` (10 s) has passed.
"""

from __future__ import annotations

import copy
import sys
from typing import Any

__all__ = ["check_copyable", "check_picklable", "dask_backend_active"]


def dask_backend_active() -> bool:
    """Whether joblib's active backend (in this thread) is Dask's, which pickles each task."""
    dask_module = sys.modules.get("joblib._dask")  # loaded by parallel_backend("dask") only
    if dask_module is None:
        return False
    from joblib.parallel import get_active_backend

    backend, _ = get_active_backend()
    return isinstance(backend, dask_module.DaskDistributedBackend)


def _describe(estimator: Any, name: str, value: Any) -> str:
    """``Class parameter name=value``, the value's repr cut at 200 characters."""
    text = repr(value)
    return f"{type(estimator).__name__} parameter {name}={text[:200]}"


def _first_failing(estimator: Any, attempt) -> tuple[str, Any, BaseException] | None:
    """The first parameter (or item of a list/tuple parameter) for which ``attempt`` raises."""
    for name, value in estimator.get_params(deep=False).items():
        try:
            attempt(value)
        except Exception as exc:  # noqa: BLE001 - any failure is the answer
            if isinstance(value, (list, tuple)):
                for i, item in enumerate(value):
                    try:
                        attempt(item)
                    except Exception as item_exc:  # noqa: BLE001
                        return f"{name}[{i}]", item, item_exc
            return name, value, exc
    return None


def check_picklable(estimator: Any) -> None:
    """Raise ``TypeError`` naming the first parameter of ``estimator`` that cloudpickle
    cannot pickle (what Dask does to every task it sends)."""
    import cloudpickle  # what Dask pickles tasks with (a dependency of dask)

    found = _first_failing(estimator, cloudpickle.dumps)
    if found is None:
        return
    name, value, exc = found
    raise TypeError(
        f"{_describe(estimator, name, value)} cannot be pickled "
        f"({type(exc).__name__}: {exc}). joblib's Dask backend pickles the estimator of "
        "every fit to send it to a worker process, so every parameter must pickle "
        "(lambdas and local functions are fine; locks, open files, connections are not): "
        "create such an object inside the callback's initialize(), or run the search "
        "without the Dask backend"
    ) from exc


def check_copyable(estimator: Any, error: BaseException) -> None:
    """Re-raise ``error`` (from cloning ``estimator``) as a ``TypeError`` naming the parameter
    that ``copy.deepcopy`` fails on; return when no single parameter is to blame."""
    found = _first_failing(estimator, copy.deepcopy)
    if found is None:
        return
    name, value, exc = found
    raise TypeError(
        f"{_describe(estimator, name, value)} cannot be copied "
        f"({type(exc).__name__}: {exc}). scikit-learn's clone (every search and "
        "cross-validation) deep-copies each parameter: create such an object inside the "
        "callback's initialize() instead of passing it in"
    ) from error
