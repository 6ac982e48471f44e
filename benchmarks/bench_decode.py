"""Image files into memory: serial against parallel decoding, and a search that decodes once.

1. Decoding N JPEG paths into one uint8 tensor (``skft.data.images.load_image_files``,
   cache off): one thread against a thread per core, in the same process, interleaved
   over several rounds; min and median of each, and their ratios (issue 26's goal: at
   least 1.8x on 2 cores).
2. The issue's search goal: a linear-probe GridSearchCV (3 learning rates x 2 folds +
   refit + ``score``) over the paths, minus the same search over the pre-decoded
   arrays, in units of one serial decode of the files (goal: at most 0.67). The decode
   cache starts empty for every search; the probe's frozen-prefix features are computed
   once before the first (the same pixels either way), so the searches differ only in
   how they get their pixels. Searches over paths and over arrays alternate, several
   rounds. ``--before`` adds the same difference with the decode cache off and one
   decoding thread (what every fit did before).

The files: 400 JPEGs of 500x375 generated in a temporary folder (smooth colour fields
with noise, quality 90), or every ``*.jpg`` under ``--data`` (e.g.
``../shared/data/hymenoptera``). The model is the built-in ``smallcnn`` at 224 px
(random weights, a linear probe), so the search's own cost is small and the same in
both searches.

Run: ``python benchmarks/bench_decode.py [--n 400] [--rounds 5] [--before] [--data DIR]
[--torch-threads 1]``, a few minutes on 2 CPU cores. ``--torch-threads 1`` keeps the
searches' own main-thread tensor work out of torch's intra-op pool, which on a loaded
machine made it vary several-fold between identical runs.

Timings on a shared machine are noisy: compare the ratios measured in one run, not
absolute times across runs. The CPU/wall line says how many cores the process actually
got while decoding in parallel (with Linux's autogroup scheduling, a session gets its
share of the machine whatever its thread count), and the process CPU time of the
searches says how much decoding work each one did, which load changes less.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from sklearn.model_selection import GridSearchCV

import skft.data.images as images
from skft import FineTunedClassifier
from skft.data.decode_cache import decode_cache
from skft.data.images import decode_threads, load_image_files
from skft.training.cache import feature_cache

SIZE = 224
GRID = {"lr": [1e-3, 3e-3, 1e-2]}


def write_jpegs(folder: Path, n: int, width: int = 500, height: int = 375) -> list[str]:
    """``n`` JPEGs: smooth colour fields (an upscaled 20x15 grid) with a little noise."""
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        coarse = Image.fromarray(rng.integers(0, 256, (15, 20, 3), dtype=np.uint8))
        smooth = np.asarray(coarse.resize((width, height), Image.BICUBIC), dtype=np.int16)
        noisy = np.clip(smooth + rng.integers(-12, 13, smooth.shape), 0, 255).astype(np.uint8)
        path = folder / f"{i:04d}.jpg"
        Image.fromarray(noisy).save(path, quality=90)
        paths.append(str(path))
    return paths


#: process CPU seconds of each timed call, by the name it was timed under
CPU: dict[str, list[float]] = {}


def timed(fn, name: str = "") -> float:
    """Wall seconds of ``fn()``; its process CPU seconds go to ``CPU[name]``."""
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    CPU.setdefault(name, []).append(time.process_time() - c0)
    return time.perf_counter() - t0


def summary(values: list[float]) -> str:
    return f"min {min(values):7.3f} s   median {statistics.median(values):7.3f} s"


def decode_rounds(paths: list[str], rounds: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"serial": [], "parallel": []}
    load_image_files(paths[:8], SIZE, cache=False)  # imports and first-call costs
    for _ in range(rounds):
        serial = lambda: load_image_files(paths, SIZE, threads=1, cache=False)  # noqa: E731
        times["serial"].append(timed(serial, "serial"))
        times["parallel"].append(
            timed(lambda: load_image_files(paths, SIZE, cache=False), "parallel")
        )
    return times


def search(X, y, decode_cache_on: bool = True):
    clf = FineTunedClassifier(
        "smallcnn",
        pretrained=False,
        frozen_depth="all",
        augment_strength=0.0,  # a linear probe on fixed inputs: the feature cache applies
        image_size=SIZE,
        max_epochs=3,
        batch_size=64,
        random_state=0,
        decode_cache=decode_cache_on,
    )
    gs = GridSearchCV(clf, GRID, cv=2, refit=True).fit(X, y)
    return gs.score(X, y)


def search_rounds(paths: list[str], y: np.ndarray, rounds: int, before: bool):
    arrays = load_image_files(paths, SIZE, cache=False).numpy()  # pre-decoded (N, C, S, S)
    X_paths = np.array(paths)
    times: dict[str, list[float]] = {"paths": [], "arrays": []}
    if before:
        times["paths, before"] = []
    feature_cache.clear()
    search(arrays, y)  # the probe's features, cached once for every search below
    for _ in range(rounds):
        for name in times:
            decode_cache.clear()
            if name == "arrays":
                times[name].append(timed(lambda: search(arrays, y), name))
            elif name == "paths":
                times[name].append(timed(lambda: search(X_paths, y), name))
                counts = (decode_cache.stats.misses, decode_cache.stats.hits)
            else:  # every fit decodes its files again, one after the other
                real = images.decode_threads
                images.decode_threads = lambda: 1
                try:
                    run = lambda: search(X_paths, y, decode_cache_on=False)  # noqa: E731
                    times[name].append(timed(run, name))
                finally:
                    images.decode_threads = real
    return times, counts


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--n", type=int, default=400, help="generated JPEGs (without --data)")
    p.add_argument("--data", type=Path, default=None, help="a folder of *.jpg instead")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--search-rounds", type=int, default=3)
    p.add_argument("--before", action="store_true", help="also the search without the cache")
    p.add_argument("--decode-only", action="store_true", help="part 1 only")
    p.add_argument(
        "--torch-threads", type=int, default=None, help="torch.set_num_threads (default: torch's)"
    )
    args = p.parse_args()
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    with tempfile.TemporaryDirectory() as tmp:
        if args.data is not None:
            paths = sorted(str(f) for f in args.data.rglob("*.jpg"))
            source = f"{len(paths)} JPEGs under {args.data}"
        else:
            paths = write_jpegs(Path(tmp), args.n)
            source = f"{len(paths)} generated JPEGs, 500x375, quality 90"
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(
            f"{source}; decoded to {SIZE}x{SIZE}; {decode_threads()} decoding threads; "
            f"torch threads {torch.get_num_threads()}; load average {load:.1f} at start",
            flush=True,
        )

        t = decode_rounds(paths, args.rounds)
        print(f"\n1. decoding {len(paths)} paths, {args.rounds} rounds, interleaved")
        for name, values in t.items():
            print(
                f"   {name:<9} {summary(values)}   ({min(values) / len(paths) * 1e3:.2f} ms/file)"
            )
        ratio_min = min(t["serial"]) / min(t["parallel"])
        ratio_med = statistics.median(t["serial"]) / statistics.median(t["parallel"])
        print(
            f"   parallel speed-up: {ratio_min:.2f}x (min)  {ratio_med:.2f}x (median)  goal >= 1.8x"
        )
        share = statistics.median(c / w for c, w in zip(CPU["parallel"], t["parallel"]))
        print(
            f"   cores this process got while decoding in parallel (CPU/wall, median): {share:.2f}"
        )

        if args.decode_only:
            return
        unit = min(t["serial"])
        y = np.arange(len(paths)) % 2
        s, (misses, hits) = search_rounds(paths, y, args.search_rounds, args.before)
        print(
            f"\n2. linear-probe GridSearchCV (3 lr x 2 folds + refit + score), "
            f"{args.search_rounds} rounds; unit: one serial decode = {unit:.3f} s"
        )
        for name, values in s.items():
            print(f"   {name:<14} {summary(values)}")
        for name in [n for n in s if n != "arrays"]:
            best = (min(s[name]) - min(s["arrays"])) / unit
            mid = (statistics.median(s[name]) - statistics.median(s["arrays"])) / unit
            print(
                f"   {name} - arrays: {best:.2f} (min)  {mid:.2f} (median) serial decodes"
                + ("   goal <= 0.67" if name == "paths" else "")
            )
        print(f"   one search over paths: {misses} files decoded, {hits} served by the cache")
        cpu_unit = min(CPU["serial"])
        for name in [n for n in s if n != "arrays"]:
            extra = (statistics.median(CPU[name]) - statistics.median(CPU["arrays"])) / cpu_unit
            print(
                f"   process CPU time, {name} - arrays: {extra:.2f} serial decodes' CPU time "
                f"(median; unit {cpu_unit:.3f} s)"
            )


if __name__ == "__main__":
    main()
