"""Large freed blocks kept for reuse on the CPU (glibc), instead of returned to the system.

glibc's ``malloc`` serves each block above its mmap threshold (128 KiB at first, rising
to at most 32 MiB) with a fresh ``mmap`` and gives it back with ``munmap`` when freed.
A network's activations on the CPU are blocks of tens to hundreds of MiB, allocated and
freed in every forward and backward pass, so every pass faults every page of them in
again: on a 2-core AMD EPYC, fine-tuning EfficientNet-Lite0 at 224 px and batch 32 spent
11.5 s of 14.4 s in the kernel doing so (4.98 million page faults for 128 images), and
computing frozen features at 288 px in batches of 64 ran at a third of its speed
(``benchmarks/bench_cpu_memory.py``). PyTorch's CPU tuning guide answers this with another
allocator (jemalloc, tcmalloc: ``LD_PRELOAD``); the same effect within glibc is a fixed
mmap threshold above those blocks and a trim threshold that keeps the freed memory in the
process (``mallopt``, or the ``MALLOC_MMAP_THRESHOLD_`` environment variable read at start).

skft sets both, once per process, the first time an estimator holds a CPU device
(:func:`keep_freed_memory`). The cost: memory freed by the network stays with the process
for its next pass (its peak resident size rose from 3.7 to 4.4 GiB in the measure above).
``SKFT_KEEP_FREED_MEMORY=0`` in the environment turns it off; nothing happens outside
Linux with glibc, when the allocator was replaced (``LD_PRELOAD``), or when the
environment tunes glibc's malloc already (``MALLOC_*`` variables, ``GLIBC_TUNABLES``).

One ``MALLOC_*`` variable is not taken for the user's choice: the
``MALLOC_TRIM_THRESHOLD_=65536`` that Dask's nanny puts into every worker it starts (its
shipped ``distributed.nanny.pre-spawn-environ`` default, there to return memory between
tasks). With it, glibc maps and unmaps every activation block afresh, and a 2-worker
``GridSearchCV`` on Dask ran slower than ``n_jobs=1`` (``benchmarks/bench_dask.py``). In a
nanny's worker whose value is still Dask's default, skft sets its thresholds; a value the
user gave (another number, or Dask's config changed) stays.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import threading

__all__ = ["MMAP_THRESHOLD", "keep_freed_memory", "keeps_freed_memory"]

#: Blocks below this come from the heap (and stay there when freed): 1 GiB, above any
#: activation tensor of a fine-tuning batch.
MMAP_THRESHOLD = 1 << 30
#: Free memory at the top of the heap kept before it is returned (glibc's ``int``).
TRIM_THRESHOLD = (1 << 31) - 1
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # <malloc.h>

_lock = threading.Lock()
_state: dict[str, bool] = {}


def keeps_freed_memory() -> bool:
    """Whether :func:`keep_freed_memory` has set glibc's thresholds in this process."""
    return _state.get("done", False)


def keep_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds so that freed activations are reused.

    Once per process (later calls return the first answer). ``True`` when set; ``False``
    when turned off (``SKFT_KEEP_FREED_MEMORY=0``), not on glibc, with another allocator
    preloaded, with glibc's malloc tuned by the environment, or when ``mallopt`` refused
    the values.
    """
    with _lock:
        if "done" not in _state:
            _state["done"] = _set_thresholds()
        return _state["done"]


DASK_WORKER_PROCESS = "Dask Worker process (from Nanny)"  # distributed.nanny's name for it


def _dask_nanny_defaults() -> dict[str, str]:
    """The ``MALLOC_*`` variables Dask's nanny set in this process with Dask's shipped
    defaults (``{}`` outside a nanny's worker, or when Dask's configuration changed them)."""
    import multiprocessing
    import sys

    if "dask" not in sys.modules or multiprocessing.current_process().name != DASK_WORKER_PROCESS:
        return {}
    import dask.config

    key = "distributed.nanny.pre-spawn-environ"
    shipped: dict = {}
    for defaults in dask.config.defaults:  # the packages' own YAML files, not the user's
        found = defaults.get("distributed", {}).get("nanny", {}).get("pre-spawn-environ")
        if isinstance(found, dict):
            shipped.update(found)
    configured = dask.config.get(key, default={}) or {}
    return {
        name: str(value)
        for name, value in shipped.items()
        if name.startswith("MALLOC_") and value is not None and configured.get(name) == value
    }


def _set_thresholds() -> bool:
    if os.environ.get("SKFT_KEEP_FREED_MEMORY", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    if any(
        name in os.environ.get("LD_PRELOAD", "") for name in ("jemalloc", "tcmalloc", "mimalloc")
    ):
        return False  # the user chose an allocator
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    dask_set = _dask_nanny_defaults()
    tuned = [k for k in os.environ if k.startswith("MALLOC_") and dask_set.get(k) != os.environ[k]]
    if tuned or "glibc.malloc" in tunables:
        return False  # the user tuned glibc's malloc themselves
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # the trim threshold first: with it set, glibc no longer moves it with the mmap one
    return bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)) and bool(
        mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    )
