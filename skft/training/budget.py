"""The memory budget rules of skft's in-process caches: a byte bound, least recently used out.

Both caches (the frozen-prefix features of :mod:`skft.training.cache` and the decoded
image files of :mod:`skft.data.decode_cache`) follow the same rules: each is
process-wide, holds at most ``max_bytes`` of tensors (1024 MiB unless its environment
variable, in MiB, says otherwise; 0 keeps nothing), evicts the least recently used
entries first, never keeps an entry larger than the whole bound, and is thread-safe.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

__all__ = ["DEFAULT_BUDGET_MB", "BoundedLRU", "budget_bytes", "tensor_bytes"]

#: Each cache's bound when its environment variable is unset (MiB).
DEFAULT_BUDGET_MB = 1024


def budget_bytes(env: str, default_mb: float = DEFAULT_BUDGET_MB) -> int:
    """A cache's bound in bytes: the environment variable ``env`` in MiB, else ``default_mb``."""
    raw = os.environ.get(env, "").strip()
    try:
        mb = float(raw) if raw else float(default_mb)
    except ValueError:
        raise ValueError(f"{env} must be a number of MiB, got {raw!r}") from None
    return max(int(mb * 2**20), 0)


def tensor_bytes(value: Any) -> int:
    """Bytes held by a tensor (or anything with ``numel`` and ``element_size``)."""
    return int(value.numel() * value.element_size())


class BoundedLRU:
    """A thread-safe mapping that holds at most ``max_bytes``, dropping the oldest-used first."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = int(max_bytes)
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self.lock = threading.RLock()

    def __len__(self) -> int:
        return len(self._items)

    @property
    def nbytes(self) -> int:
        """Bytes held now."""
        return self._bytes

    def clear(self) -> None:
        with self.lock:
            self._items.clear()
            self._bytes = 0

    def get(self, key: Hashable) -> Any:
        """The value stored under ``key`` (now the most recently used), else ``None``."""
        with self.lock:
            item = self._items.get(key)
            if item is None:
                return None
            self._items.move_to_end(key)
            return item[0]

    def put(self, key: Hashable, value: Any, size: int | None = None) -> int:
        """Store ``value`` (``size`` bytes; a tensor's own by default); the entries evicted."""
        size = tensor_bytes(value) if size is None else int(size)
        evicted = 0
        with self.lock:
            if size > self.max_bytes:
                return 0
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._items[key] = (value, size)
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, (_, dropped) = self._items.popitem(last=False)
                self._bytes -= dropped
                evicted += 1
        return evicted
