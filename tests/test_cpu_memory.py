"""Freed activations reused on the CPU (skft.training.cpu_memory): glibc's thresholds."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

glibc = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only"
)

# Allocates, fills and frees a 64 MiB block, then does it again, and prints whether the
# thresholds were set and the minor page faults of the second round.
PROBE = """
import resource, sys
import numpy as np
from skft.training.cpu_memory import keep_freed_memory
ok = keep_freed_memory() if sys.argv[1] == "call" else False
a = np.ones(1 << 24, dtype=np.float32); del a
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
a = np.ones(1 << 24, dtype=np.float32); del a
print(ok, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _probe(mode: str, **env: str) -> tuple[bool, int]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return out[0] == "True", int(out[1])


@glibc
def test_a_freed_block_is_reused_without_faulting_its_pages_again():
    pages = (64 << 20) // os.sysconf("SC_PAGE_SIZE")
    ok, faults = _probe("call", LD_PRELOAD="")
    assert ok
    assert faults < pages // 10  # the second block is the first one's memory, already mapped


@glibc
@pytest.mark.parametrize(
    "env",
    [
        {"SKFT_KEEP_FREED_MEMORY": "0"},
        {"MALLOC_MMAP_THRESHOLD_": "65536"},  # the user's own tuning wins
        {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=0"},
    ],
)
def test_the_environment_turns_it_off(env):
    ok, _ = _probe("call", **env)
    assert not ok


@glibc
def test_a_cpu_fit_sets_it(tmp_path):
    script = (
        "import numpy as np\n"
        "from skft import FineTunedClassifier\n"
        "from skft.training.cpu_memory import keeps_freed_memory\n"
        "assert not keeps_freed_memory()\n"
        "X = np.random.rand(8, 4).astype('float32'); y = np.array([0, 1] * 4)\n"
        "est = FineTunedClassifier('mlp', pretrained=False, max_epochs=1, augment='none')\n"
        "est.set_params(device='cpu').fit(X, y)\n"
        "print(keeps_freed_memory())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip().endswith("True")


# A process named as Dask's nanny names its workers, with the nanny's environment variable
NANNY = """
import multiprocessing, sys
import dask.config
import distributed  # its defaults (the nanny's environment) join dask.config on import
from skft.training.cpu_memory import DASK_WORKER_PROCESS, keep_freed_memory

def answer(queue):
    queue.put(keep_freed_memory())

if __name__ == "__main__":
    if sys.argv[1] != "default":
        dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": 1 << 20})
    queue = multiprocessing.get_context("fork").Queue()
    name = DASK_WORKER_PROCESS if sys.argv[2] == "nanny" else "Process-1"
    process = multiprocessing.get_context("fork").Process(target=answer, args=(queue,), name=name)
    process.start(); print(queue.get()); process.join()
"""


@glibc
@pytest.mark.parametrize(
    ("config", "process", "trim", "kept"),
    [
        ("default", "nanny", "65536", True),  # Dask's own default is not the user's choice
        ("default", "other", "65536", False),  # outside a nanny's worker it is
        ("default", "nanny", "131072", False),  # a value the user exported stays
        ("changed", "nanny", "65536", False),  # and so does Dask's config, once changed
    ],
)
def test_dask_nannys_default_trim_threshold_is_not_the_users(config, process, trim, kept):
    pytest.importorskip("distributed")
    out = subprocess.run(
        [sys.executable, "-c", NANNY, config, process],
        env={**os.environ, "MALLOC_TRIM_THRESHOLD_": trim},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == str(kept)
