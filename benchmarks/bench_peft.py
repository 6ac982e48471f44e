"""Adapters through peft (issue 27): LoRA against full fine-tuning and the linear probe.

Parts (``--parts``, all by default):

* ``text``: MiniLM on SMS spam, 200 training and 1,000 held-out messages (the splits of
  ``bench_text.py``), macro F1 per split for the full fine-tune with the defaults and for
  ``freeze="lora"`` (r 8, alpha 16, every Linear of the six encoder layers; lr 1e-3, so the
  head 2e-2 by MiniLM's head factor; 6 epochs with the text defaults' linear schedule),
  and the share of the network's parameters that train;
* ``bytes``: the LoRA model of the first split saved with ``save`` (adapters and head
  only, the base recorded by checksum) against ``save(adapter_only=False)``;
* ``memory``: peak resident memory (CPU RSS, ``ru_maxrss``) of one epoch of MiniLM at
  batch 32 over the 200 messages, each method in a fresh process (CUDA: max allocated);
* ``images``: EfficientNet-Lite0 on ants/bees (train 245 / val 153): the linear probe
  (skft's planned defaults for this data) against LoRA on the Conv2d layers (1x1 and
  head convolutions; depthwise ones are not adapted) of the groups after
  ``frozen_depth=5`` (blocks.4 to conv_head; the groups below run once, cached);
* ``images-cv`` (not in the default run): the same comparison with nothing chosen on val:
  five folds of train, a nested GridSearchCV over LoRA's depth and rate, and seeds on val.

Run: ``flock /tmp/skft-cpu.lock python benchmarks/bench_peft.py [--seeds 0 1 2 3 4]``;
``--quick``: one split, fewer epochs (checks that everything runs; figures not comparable).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data"
LORA = {"freeze": "lora", "freeze__r": 8, "freeze__alpha": 16.0}


def _plugins() -> None:
    import skft_timm
    import skft_transformers

    from skft.plugins import load_plugins, pm

    load_plugins()
    for plugin, name in ((skft_transformers, "transformers"), (skft_timm, "timm")):
        if not any(p is plugin for p in pm.get_plugins()):  # not pip-installed
            pm.register(plugin, name)


def _sms(data: Path, n_train: int, seed: int):
    sys.path.insert(0, str(HERE))
    from bench_text import load, splits

    X, y = load(str(data / "sms_spam" / "sms_spam.tsv"))
    return splits(X, y, n_train, seed)


def share_trainable(clf) -> tuple[int, int]:
    module = clf.module_
    total = sum(p.numel() for p in module.parameters())
    return sum(p.numel() for p in module.parameters() if p.requires_grad), total


def text_rows(args) -> dict:
    from sklearn.metrics import f1_score

    from skft import FineTunedClassifier

    extra = {"max_epochs": 2} if args.quick else {}  # (quick: overrides --text-epochs)
    rows: dict[str, list[float]] = {"full fine-tune (defaults)": [], "LoRA": []}
    shares: dict[str, str] = {}
    first_lora = None
    for seed in args.seeds:
        (Xtr, ytr), (Xte, yte) = _sms(args.data, 200, seed)
        for name, params in (
            ("full fine-tune (defaults)", {}),
            ("LoRA", {**LORA, "lr": args.text_lr, "max_epochs": args.text_epochs}),
        ):
            if args.only and name not in args.only:
                continue
            t0 = time.perf_counter()
            settings = {"random_state": seed, "verbose": 0, **params, **extra}
            clf = FineTunedClassifier("minilm", **settings)
            clf.fit(Xtr, ytr)
            f1 = f1_score(yte, clf.predict(Xte), average="macro")
            rows[name].append(f1)
            n, total = share_trainable(clf)
            shares[name] = f"{n:,} of {total:,} ({100 * n / total:.2f}%)"
            print(f"seed {seed} {name}: macro F1 {f1:.3f}, {time.perf_counter() - t0:.0f} s, "
                  f"trainable {shares[name]}", flush=True)  # fmt: skip
            if name == "LoRA" and first_lora is None:
                first_lora = clf
    print("\n| method | " + " | ".join(f"seed {s}" for s in args.seeds) + " | mean | trainable |")
    print("|---" * (len(args.seeds) + 3) + "|")
    for name, f1s in rows.items():
        if f1s:
            cells = " | ".join(f"{v:.3f}" for v in f1s)
            print(f"| {name} | {cells} | **{np.mean(f1s):.3f}** | {shares[name]} |")
    return {"lora": first_lora}


def saved_bytes(clf) -> None:
    def size(folder: Path) -> int:
        return sum(f.stat().st_size for f in folder.iterdir())

    with tempfile.TemporaryDirectory() as tmp:
        small = clf.save(Path(tmp) / "lora.skft")
        full = clf.save(Path(tmp) / "full.skft", adapter_only=False)
        a, b = size(small), size(full)
        print(f"\nsaved LoRA model: {a:,} bytes (adapters + head; base by checksum); full save "
              f"{b:,} bytes; {100 * a / b:.1f}% of the bytes")  # fmt: skip
        import skft

        t0 = time.perf_counter()
        skft.load(small)
        print(f"loading the small file (rebuilds and checks the base): "
              f"{time.perf_counter() - t0:.1f} s")  # fmt: skip


def memory_child(method: str, data: Path) -> None:
    """One epoch at batch 32 in this process; prints peak RSS (and CUDA max allocated)."""
    _plugins()
    from skft import FineTunedClassifier

    (Xtr, ytr), _ = _sms(data, 200, 0)
    params = {**LORA, "lr": 1e-3} if method == "lora" else {}
    settings = {"max_epochs": 1, "batch_size": 32, "random_state": 0, "verbose": 0}
    clf = FineTunedClassifier("minilm", **settings, **params)
    clf.fit(Xtr[:32], ytr[:32])  # builds and loads the model: RSS before the real epoch
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    clf.partial_fit(Xtr, ytr)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cuda = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None
    print(json.dumps({"peak_kib": peak, "before_kib": before, "cuda_bytes": cuda}))


def memory(args) -> None:
    print("\npeak memory, MiniLM, one epoch at batch 32 over 200 messages (fresh process each):")
    for method in ("full", "lora"):
        cmd = [sys.executable, __file__, "--memory-child", method, "--data", str(args.data)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        rec = json.loads(out.strip().splitlines()[-1])
        cuda = "" if rec["cuda_bytes"] is None else f", CUDA max allocated {rec['cuda_bytes']:,}"
        print(f"  {method}: peak RSS {rec['peak_kib'] / 1024:.0f} MiB (after the model was built: "
              f"{rec['before_kib'] / 1024:.0f} MiB){cuda}")  # fmt: skip


def images(args) -> None:
    from skft import FineTunedClassifier
    from skft.data.datasets import load_image_folder

    root = args.data / "hymenoptera"
    size = args.image_size
    tr = load_image_folder(root / "train", image_size=size)
    va = load_image_folder(root / "val", image_size=size)
    epochs = 2 if args.quick else args.image_epochs
    probe = f" (the first {args.image_probe_epochs} head only)" if args.image_probe_epochs else ""
    rows = [
        ("linear probe (skft's planned defaults)", {"image_size": size}),
        (
            f"LoRA r 8 on the Conv2d layers after frozen_depth={args.image_depth}, "
            f"lr {args.image_lr}, {epochs} epochs{probe}",
            _lora_params(size, args.image_depth, args.image_lr, epochs, args.image_probe_epochs),
        ),
    ]
    print(f"\nEfficientNet-Lite0, ants/bees at {size} px, val accuracy:")
    for name, params in rows:
        if args.only and not any(name.startswith(o) for o in args.only):
            continue
        t0 = time.perf_counter()
        clf = FineTunedClassifier("efficientnet_lite0", random_state=0, verbose=0, **params)
        clf.fit(tr.images, tr.labels)
        n, total = share_trainable(clf)
        print(f"  {name}: {clf.score(va.images, va.labels):.3f} (trainable {n:,} of {total:,}, "
              f"{100 * n / total:.1f}%; {time.perf_counter() - t0:.0f} s)", flush=True)  # fmt: skip


def _lora_params(size: int, depth: int, lr: float, epochs: int, probe_epochs: int) -> dict:
    return {
        "image_size": size,
        "freeze__probe_epochs": probe_epochs,
        **LORA,
        "frozen_depth": depth,  # the groups below: cached, no adapters
        "lr": lr,
        "max_epochs": epochs,
        "lr_schedule": "cosine",
        "augment": "none",
    }


def images_cv(args) -> None:
    """The LoRA-vs-probe comparison without choosing on the validation split.

    1. Five stratified folds of the *train* split (the validation images unused): the linear
       probe and the LoRA setting given by ``--image-*`` on the same folds, fold by fold.
    2. Nested: a GridSearchCV (3 folds of train) over LoRA's frozen depth and learning rate
       picks a setting, refits it on all of train and is scored once on val, next to the
       probe fitted on all of train.
    3. Both on val again with ``--seeds`` (the fit's own randomness only).
    """
    from sklearn.base import clone
    from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score

    from skft import FineTunedClassifier
    from skft.data.datasets import load_image_folder

    root = args.data / "hymenoptera"
    size = args.image_size
    tr = load_image_folder(root / "train", image_size=size)
    va = load_image_folder(root / "val", image_size=size)
    X, y = np.asarray(tr.images), np.asarray(tr.labels)
    epochs = 2 if args.quick else args.image_epochs
    lora = _lora_params(size, args.image_depth, args.image_lr, epochs, args.image_probe_epochs)
    probe = FineTunedClassifier("efficientnet_lite0", image_size=size, random_state=0, verbose=0)
    adapted = FineTunedClassifier("efficientnet_lite0", random_state=0, verbose=0, **lora)
    label = f"LoRA depth {args.image_depth}, lr {args.image_lr}"

    print(f"\nEfficientNet-Lite0, ants/bees at {size} px, 5 folds of train ({len(y)} images):")
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    scores = {}
    for name, est in (("linear probe", probe), (label, adapted)):
        t0 = time.perf_counter()
        scores[name] = cross_val_score(clone(est), X, y, cv=folds)
        cells = " ".join(f"{v:.3f}" for v in scores[name])
        print(f"  {name}: {cells}, mean {scores[name].mean():.3f} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)  # fmt: skip
    diff = scores[label] - scores["linear probe"]
    print(f"  LoRA - probe per fold: {' '.join(f'{d:+.3f}' for d in diff)}; "
          f"ahead in {(diff > 0).sum()}, level in {(diff == 0).sum()} of 5")  # fmt: skip

    grid = {"frozen_depth": [7, 8], "lr": [3e-3, 1e-2]}
    print(f"\nNested: GridSearchCV over {grid} (3 folds of train), refit, val once:")
    t0 = time.perf_counter()
    search = GridSearchCV(clone(adapted), grid, cv=StratifiedKFold(3, shuffle=True, random_state=0))
    search.fit(X, y)
    for params, mean in zip(search.cv_results_["params"], search.cv_results_["mean_test_score"]):
        print(f"  {params}: CV {mean:.3f}")
    print(f"  chosen {search.best_params_}: val {search.score(va.images, va.labels):.3f} "
          f"({time.perf_counter() - t0:.0f} s)", flush=True)  # fmt: skip

    print(f"\nOn val, seeds {args.seeds}:")
    for name, est in (("linear probe", probe), (label, adapted)):
        accs = []
        for seed in args.seeds:
            clf = clone(est).set_params(random_state=seed).fit(tr.images, tr.labels)
            accs.append(clf.score(va.images, va.labels))
        cells = " ".join(f"{v:.3f}" for v in accs)
        print(f"  {name}: {cells}, mean {np.mean(accs):.3f}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--parts", nargs="+", default=["text", "bytes", "memory", "images"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--only", nargs="+", help="run only rows whose names start with these")
    p.add_argument("--text-lr", type=float, default=1e-3, help="LoRA's rate on MiniLM")
    p.add_argument("--text-epochs", type=int, default=6, help="LoRA's epochs on MiniLM")
    p.add_argument("--image-lr", type=float, default=3e-3, help="LoRA's rate on Lite0")
    p.add_argument("--image-epochs", type=int, default=10)
    p.add_argument("--image-depth", type=int, default=5, help="frozen_depth of LoRA on Lite0")
    p.add_argument(
        "--image-probe-epochs", type=int, default=0, help="LoRA on Lite0: head-only epochs first"
    )
    p.add_argument("--image-size", type=int, default=224, help="ants/bees input size")
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--quick", action="store_true", help="one split, 2 epochs")
    p.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.memory_child:
        memory_child(args.memory_child, args.data)
        return
    torch.set_num_threads(int(os.environ.get("SKFT_BENCH_THREADS", "2")))
    _plugins()
    if args.quick:
        args.seeds = args.seeds[:1]
    fitted = {}
    if "text" in args.parts or "bytes" in args.parts:
        fitted = text_rows(args)
    if "bytes" in args.parts and fitted.get("lora") is not None:
        saved_bytes(fitted["lora"])
    if "memory" in args.parts:
        memory(args)
    if "images" in args.parts:
        images(args)
    if "images-cv" in args.parts:
        images_cv(args)


if __name__ == "__main__":
    main()
