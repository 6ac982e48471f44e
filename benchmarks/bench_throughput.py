"""Training throughput and streaming memory: skft against a plain PyTorch loop.

One run prints:

1. images/s of training, skft against a hand-written PyTorch loop on the same
   network (``copy.deepcopy`` of skft's module) and the same data, with the data
   in memory (uint8 tensors, batches sliced) and streamed from generated JPEG
   files (DataLoader workers decoding with skft's decoder in both);
2. peak RSS of a process that fits skft streaming 20,000 generated 128-px JPEGs
   against 2,000 (one epoch, ``ru_maxrss`` of that process).

Every measurement runs in its own subprocess. Goals: wrapper overhead at most
5% (skft in memory against the plain loop in memory), streaming at least 90% of
in-memory throughput, peak RSS for 20,000 images within 10% of that for 2,000.

CPU (default): resnet18 (random init) at 64 px from 128-px JPEGs, 512 images,
batch 64, augmentation off in both (the same work), 2 threads, 1 decoding
worker; the RSS runs use ``smallcnn`` at 64 px, batch 64, augmentation on.
About 6 minutes on 2 CPU cores.

CUDA (``--device cuda``): efficientnet_lite0 (needs the skft-timm plugin) at 224
px, batch 128, as in ``/work/shared/gpu``: adds the ceiling of that README (a
batch already on the GPU, bf16, channels-last, no loader: ``gpu_limit.py``) and
skft with augmentation on (precision="auto": bf16, channels-last, uint8 data
resident on the GPU); the goal there is skft at or above 90% of the ceiling.

Run: ``python benchmarks/bench_throughput.py [--device cuda] [--quick]``.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve()


# --------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------


def make_jpegs(folder: Path, n: int, side: int = 128) -> list[str]:
    """``n`` smooth random RGB JPEGs ``side`` x ``side`` (small files, real decoding work)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        path = folder / f"{i:06d}.jpg"
        if not path.exists():
            low = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
            Image.fromarray(low).resize((side, side), Image.BILINEAR).save(path, quality=90)
        paths.append(str(path))
    return paths


def labels(n: int) -> np.ndarray:
    return np.arange(n) % 10


# --------------------------------------------------------------------------
# measurements (each in its own process)
# --------------------------------------------------------------------------


def _settings(cfg: dict) -> dict:
    return dict(
        backbone=cfg["backbone"],
        pretrained=cfg["pretrained"],
        image_size=cfg["size"],
        batch_size=cfg["batch"],
        lr=1e-3,
        random_state=0,
        device=cfg["device"],
        augment_strength=cfg.get("augment", 0.0),
        feature_cache=False,
        num_workers=cfg["workers"],
    )


def _skft(cfg: dict, streaming: bool) -> dict:
    from skft import FineTunedClassifier
    from skft.data.streaming import ImageFiles

    paths = cfg["paths"]
    y = labels(len(paths))
    X = paths if streaming else ImageFiles(paths, cfg["size"]).load()
    clf = FineTunedClassifier(**_settings(cfg), max_epochs=cfg["epochs"], streaming=streaming)
    clf.fit(X, y)
    durs = clf.history[:, "dur"][1:]  # the first epoch warms up
    return {"images_per_s": len(paths) / float(np.median(durs))}


def _plain(cfg: dict, streaming: bool) -> dict:
    """The same network and data in a hand-written loop: what skft's loop is measured against."""
    import torch
    import torch.nn.functional as F

    from skft import FineTunedClassifier
    from skft.data.streaming import ImageFiles, decode_file

    paths, size, device = cfg["paths"], cfg["size"], cfg["device"]
    y = torch.as_tensor(labels(len(paths)))
    built = FineTunedClassifier(**_settings(cfg), max_epochs=1).fit(
        ImageFiles(paths[:20], size).load(), labels(20)
    )
    model = copy.deepcopy(built.module_).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

    class Files(torch.utils.data.Dataset):
        def __len__(self):
            return len(paths)

        def __getitem__(self, i):
            return decode_file(paths[i], size, 3), y[i]

    if streaming:
        loader = torch.utils.data.DataLoader(
            Files(),
            batch_size=cfg["batch"],
            shuffle=True,
            num_workers=cfg["workers"],
            pin_memory=device == "cuda",
        )
    else:
        X = ImageFiles(paths, size).load()

        def memory_batches():
            for idx in torch.randperm(len(X)).split(cfg["batch"]):
                yield X[idx], y[idx]

    durs = []
    for _ in range(cfg["epochs"]):
        start = time.perf_counter()
        model.train()
        for xb, yb in loader if streaming else memory_batches():
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
        if device == "cuda":
            torch.cuda.synchronize()
        durs.append(time.perf_counter() - start)
    return {"images_per_s": len(paths) / float(np.median(durs[1:]))}


def _ceiling(cfg: dict) -> dict:
    """``/work/shared/gpu/gpu_limit.py``'s ceiling: one batch resident on the GPU, bf16, NHWC."""
    import torch
    import torch.nn.functional as F

    from skft import FineTunedClassifier
    from skft.data.streaming import ImageFiles

    built = FineTunedClassifier(**_settings(cfg), max_epochs=1).fit(
        ImageFiles(cfg["paths"][:20], cfg["size"]).load(), labels(20)
    )
    model = copy.deepcopy(built.module_).cuda().to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    bs, size = cfg["batch"], cfg["size"]
    xb = torch.randn(bs, 3, size, size, device="cuda").contiguous(memory_format=torch.channels_last)
    yb = torch.randint(0, 10, (bs,), device="cuda")

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(10):
        step()
    torch.cuda.synchronize()
    start, n = time.perf_counter(), 40
    for _ in range(n):
        step()
    torch.cuda.synchronize()
    return {"images_per_s": bs * n / (time.perf_counter() - start)}


def _rss(cfg: dict) -> dict:
    from skft import FineTunedClassifier

    paths = cfg["paths"]
    clf = FineTunedClassifier(**_settings(cfg), max_epochs=1, streaming=True)
    start = time.perf_counter()
    clf.fit(paths, labels(len(paths)))
    return {
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "workers_peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        "seconds": time.perf_counter() - start,
    }


MEASURES = {
    "skft-memory": lambda cfg: _skft(cfg, streaming=False),
    "plain-memory": lambda cfg: _plain(cfg, streaming=False),
    "skft-stream": lambda cfg: _skft(cfg, streaming=True),
    "plain-stream": lambda cfg: _plain(cfg, streaming=True),
    "ceiling": _ceiling,
    "rss": _rss,
}


def child(cfg: dict) -> None:
    import torch

    torch.set_num_threads(cfg["threads"])
    if cfg["device"] == "cuda":
        torch.backends.cudnn.benchmark = True
    print("RESULT " + json.dumps(MEASURES[cfg["measure"]](cfg)), flush=True)


def run(cfg: dict) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(cfg, f)
    out = subprocess.run(
        [sys.executable, str(HERE), "--child", f.name], capture_output=True, text=True
    )
    os.unlink(f.name)
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if out.returncode or not lines:
        raise RuntimeError(f"{cfg['measure']} failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument(
        "--data", type=Path, default=Path(tempfile.gettempdir()) / "skft-bench-jpegs"
    )
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        return child(json.loads(args.child.read_text()))

    gpu = args.device == "cuda"
    n_tp = 64 * 4 if args.quick else (4096 if gpu else 512)
    rss_sizes = (200, 2000) if args.quick else (2000, 20000)
    base = dict(
        device=args.device,
        backbone="efficientnet_lite0" if gpu else "resnet18",
        pretrained=False,
        size=224 if gpu else 64,
        batch=128 if gpu else 64,
        epochs=3,
        workers=4 if gpu else 1,
        threads=int(os.environ.get("SKFT_BENCH_THREADS", "2")),
    )
    if gpu:
        sys.path.insert(0, str(HERE.parents[1] / "plugins" / "skft-timm"))
    t0 = time.perf_counter()
    paths = make_jpegs(args.data, max(rss_sizes[-1], n_tp))
    print(f"{len(paths)} JPEGs (128 px) in {args.data} ({time.perf_counter() - t0:.0f} s)")
    print(
        f"throughput: {base['backbone']} at {base['size']} px, {n_tp} images, batch "
        f"{base['batch']}, {base['epochs']} epochs (first one not timed), device {args.device}, "
        f"{base['threads']} threads, {base['workers']} decoding worker(s)"
    )
    rows = {}
    names = ["plain-memory", "skft-memory", "plain-stream", "skft-stream"]
    for name in names:
        rows[name] = run({**base, "measure": name, "paths": paths[:n_tp]})["images_per_s"]
        print(f"  {name:14s} {rows[name]:9.1f} images/s", flush=True)
    if gpu:
        rows["ceiling"] = run({**base, "measure": "ceiling", "paths": paths[:64]})["images_per_s"]
        aug = {**base, "measure": "skft-memory", "augment": 0.5, "paths": paths[:n_tp]}
        rows["skft-memory-aug"] = run(aug)["images_per_s"]
        for name in ("ceiling", "skft-memory-aug"):
            print(f"  {name:14s} {rows[name]:9.1f} images/s")
    overhead = 1 - rows["skft-memory"] / rows["plain-memory"]
    stream = rows["skft-stream"] / rows["skft-memory"]
    print(f"wrapper overhead (in memory): {overhead:+.1%}   goal <= 5%")
    print(f"wrapper overhead (streaming): {1 - rows['skft-stream'] / rows['plain-stream']:+.1%}")
    print(f"skft streaming / in memory:   {stream:.1%}   goal >= 90%")
    if gpu:
        ratio = rows["skft-memory-aug"] / rows["ceiling"]
        print(f"skft (augmentation on) / ceiling: {ratio:.1%}   goal >= 90%")

    rss_cfg = {**base, "backbone": "smallcnn", "size": 64, "batch": 64, "augment": 0.5}
    print("peak RSS, skft streaming one epoch: smallcnn at 64 px, batch 64, augmentation on")
    peaks = {}
    for n in rss_sizes:
        res = run({**rss_cfg, "measure": "rss", "paths": paths[:n]})
        peaks[n] = res["peak_rss_mb"]
        print(
            f"  {n:6d} images: peak RSS {res['peak_rss_mb']:7.1f} MB (workers "
            f"{res['workers_peak_rss_mb']:.1f} MB), {res['seconds']:.0f} s",
            flush=True,
        )
    small, large = rss_sizes
    print(f"peak RSS {large} / {small}: {peaks[large] / peaks[small]:.3f}   goal <= 1.10")
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
