"""Callbacks for the Dask tests (a module the worker processes can import by name)."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import uuid
from pathlib import Path

import numpy as np
from skorch.callbacks import Callback


class RecordFit(Callback):
    """Writes one JSON file per finished fit into ``directory``: the process, the device the
    fit trained on (``"auto"`` resolved), its parameters and a hash of its training labels."""

    def __init__(self, directory=None):
        self.directory = directory

    def on_train_end(self, net, X=None, y=None, **kwargs):
        labels = np.asarray(y.cpu() if hasattr(y, "cpu") else y)
        record = {
            "pid": os.getpid(),
            "device": str(net.device),
            "lr": net.lr,
            "frozen_depth": net.frozen_depth,
            "fold": hashlib.blake2b(labels.tobytes(), digest_size=8).hexdigest(),
        }
        path = Path(self.directory) / f"{uuid.uuid4().hex}.json"
        path.write_text(json.dumps(record))


def read_records(directory) -> list[dict]:
    """What :class:`RecordFit` wrote into ``directory``."""
    return [json.loads(p.read_text()) for p in sorted(Path(directory).glob("*.json"))]


class KillOnce(Callback):
    """Ends its process at the end of an epoch, once for all processes: the first to create
    the file ``flag`` (holding its process id) dies."""

    def __init__(self, flag=None):
        self.flag = flag

    def on_epoch_end(self, net, **kwargs):
        try:
            fd = os.open(self.flag, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        os._exit(1)  # as a crash would: no clean-up, no exception to report


class NoPickle(Callback):
    """Copies (``copy.deepcopy``) but does not pickle, as objects holding a handle may."""

    def __deepcopy__(self, memo):
        return NoPickle()

    def __reduce_ex__(self, protocol):
        raise TypeError("NoPickle holds a handle that cannot be pickled")


class Locked(Callback):
    """Holds a lock: neither copies nor pickles."""

    def __init__(self):
        self.lock = threading.Lock()


def freed_memory_kept() -> tuple[str | None, bool]:
    """In a worker: the nanny's ``MALLOC_TRIM_THRESHOLD_`` and whether skft set its thresholds."""
    import os

    from skft.training.cpu_memory import keep_freed_memory

    return os.environ.get("MALLOC_TRIM_THRESHOLD_"), keep_freed_memory()
