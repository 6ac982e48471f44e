"""Deploy folders: size against the fp32 estimator folder, and the cost of loading one.

Fine-tunes pretrained EfficientNet-Lite0 (the installed timm weights) on digits
(``--n-train`` images at ``--image-size`` px, ``--epochs`` epochs), saves it
(``clf.save``: the fp32 estimator folder), then compresses that fitted model with
:class:`skft.Compressed` (``prefit=True``) three ways: int8, pruned (``--prune``,
``--recover`` epochs) and pruned + int8. Each is saved twice: the full folder
(``Compressed.save(path)``: the compressed estimator, safetensors, plus
``model.onnx``) and the deploy folder (``Compressed.save(path, deploy=True)``:
``model.onnx`` and ``deploy.json`` only). Printed:

* the size of every folder and its ratio to the fp32 estimator folder;
* whether the deploy folder's ``predict_proba`` on ``--n-test`` held-out digits is
  identical (bit for bit) to the full folder's, loaded back with ``skft.load`` (both
  run the same ``model.onnx``; the pruned fp32 variant has no ONNX model in its full
  folder, so its deploy folder's freshly exported one is compared with PyTorch);
* the time and peak memory of a fresh Python process that imports skft, loads a
  folder and predicts one image (the median of ``--repeats`` runs), and whether
  torch was imported: one digit already at the model's size (uint8, as
  ``skft predict`` hands it over) and one raw 8x8 digit (resized first, by skft's
  own resize, which imports torch). Imports: ``-X importtime``'s total for the
  process (its start-up included). Peak memory is ``VmHWM``, the process's own
  peak resident memory (``ru_maxrss`` where there is no ``/proc``: on Linux it keeps
  the parent's peak across fork and exec, so this script's 1.8 GB would show for
  every child).

Run: ``python benchmarks/bench_deploy.py`` (about 5 minutes on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CHILD = """
import resource, sys, time
start = time.perf_counter()
import numpy as np
import skft
model = skft.load(sys.argv[1])
model.predict(np.load(sys.argv[2]))
seconds = time.perf_counter() - start
try:  # this process's peak: ru_maxrss keeps the parent's across fork + exec on Linux
    with open("/proc/self/status") as fh:
        rss = next(int(l.split()[1]) for l in fh if l.startswith("VmHWM")) / 1024
except OSError:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(seconds, rss, "torch" in sys.modules)
"""


def folder_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6


def load_and_predict(folder: Path, image: Path, repeats: int) -> tuple[float, ...]:
    """Medians of fresh processes (import skft, load, predict one): seconds, of which
    importing modules (``-X importtime``, top-level imports), peak MB; torch imported."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    runs = []
    for _ in range(repeats):
        out = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", CHILD, str(folder), str(image)],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        seconds, rss, torch_imported = out.stdout.split()
        imports = sum(  # "import time: self | cumulative | name": top level (no indent)
            int(line.split("|")[1]) / 1e6
            for line in out.stderr.splitlines()
            if line.startswith("import time:") and not line.split("|")[2][1:].startswith(" ")
            and "cumulative" not in line
        )  # fmt: skip
        runs.append((float(seconds), imports, float(rss), torch_imported == "True"))
    return (*(statistics.median(r[i] for r in runs) for i in range(3)), runs[0][3])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=200, help="training digits")
    parser.add_argument("--n-test", type=int, default=500, help="held-out digits compared")
    parser.add_argument("--epochs", type=int, default=2, help="fine-tuning epochs")
    parser.add_argument("--image-size", type=int, default=64, help="digits upscaled to this")
    parser.add_argument("--prune", type=float, default=0.3, help="Compressed(prune=...)")
    parser.add_argument("--recover", type=int, default=1, help="recovery epochs after pruning")
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per timing")
    parser.add_argument("--threads", type=int, default=2, help="torch threads while fitting")
    parser.add_argument("--out", default=None, help="folder for the saved models (default: temp)")
    args = parser.parse_args()

    import torch

    from skft import Compressed, FineTunedClassifier
    from skft.data.adapters import adapt_images
    from skft.data.datasets import load_digits_images
    from skft.io.loader import load

    torch.set_num_threads(args.threads)
    root = Path(args.out or tempfile.mkdtemp(prefix="bench-deploy-"))
    root.mkdir(parents=True, exist_ok=True)
    X, y = load_digits_images()
    X_train, y_train = X[: args.n_train], y[: args.n_train]
    X_test = X[args.n_train : args.n_train + args.n_test]
    start = time.perf_counter()
    clf = FineTunedClassifier(
        "efficientnet_lite0",
        image_size=args.image_size,
        max_epochs=args.epochs,
        random_state=0,
        verbose=0,
    ).fit(X_train, y_train)
    print(
        f"EfficientNet-Lite0 (pretrained), digits {args.image_size} px, {args.n_train} train, "
        f"{args.epochs} epochs: {time.perf_counter() - start:.0f} s; torch {torch.__version__}"
    )
    fp32 = clf.save(root / "fp32.skft")
    sized = adapt_images((X_test[:1] * 255).round().astype(np.uint8), args.image_size).numpy()
    np.save(root / "one_sized.npy", sized)
    np.save(root / "one_raw.npy", X_test[:1])

    variants = {
        "int8": dict(quantize="int8"),
        f"pruned {args.prune:g}": dict(prune=args.prune, recover_epochs=args.recover),
        f"pruned {args.prune:g} + int8": dict(
            prune=args.prune, recover_epochs=args.recover, quantize="int8"
        ),
    }
    size_rows = [("fp32 estimator (clf.save)", folder_mb(fp32), None)]
    folders = {"fp32 estimator": fp32}
    for label, params in variants.items():
        start = time.perf_counter()
        comp = Compressed(clf, prefit=True, random_state=0, **params).fit(X_train, y_train)
        secs = time.perf_counter() - start
        full = comp.save(root / f"{label.replace(' ', '_')}.full.skft")
        deploy = comp.save(root / f"{label.replace(' ', '_')}.deploy.skft", deploy=True)
        got, want = load(deploy).predict_proba(X_test), load(full).predict_proba(X_test)
        if np.array_equal(got, want):
            same = "identical"
        else:  # unquantized: the fp32 network exported now, against PyTorch
            same = f"max diff {np.abs(got - want).max():.1e}, labels agree "
            same += f"{np.mean(got.argmax(1) == want.argmax(1)):.3f} (fp32 ONNX vs PyTorch)"
        size_rows.append((f"{label}: full folder", folder_mb(full), None))
        size_rows.append((f"{label}: deploy folder", folder_mb(deploy), same))
        folders[f"{label}, full"], folders[f"{label}, deploy"] = full, deploy
        print(f"compressed {label} in {secs:.0f} s", flush=True)

    base = size_rows[0][1]
    print("\n| folder | size (MB) | / fp32 folder | deploy predict_proba == full folder's |")
    print("|---|---:|---:|---|")
    for label, mb, same in size_rows:
        print(f"| {label} | {mb:.2f} | {mb / base:.2f}x | {same or ''} |")

    print(
        f"\nfresh process: import skft, skft.load, predict one digit (median of {args.repeats})\n"
    )
    print("| folder | input | time (s) | imports (s) | peak memory (MB) | torch |")
    print("|---|---|---:|---:|---:|---|")
    last = list(variants)[-1]
    timed = [
        ("fp32 estimator", "one_sized.npy"),
        (f"{last}, full", "one_sized.npy"),
        (f"{last}, deploy", "one_sized.npy"),
        (f"{last}, deploy", "one_raw.npy"),
    ]
    for name, image in timed:
        seconds, imports, rss, torch_in = load_and_predict(
            folders[name], root / image, args.repeats
        )
        what = f"{args.image_size} px uint8" if image == "one_sized.npy" else "8 px float (resized)"
        torch_in = "imported" if torch_in else "not imported"
        print(
            f"| {name} | {what} | {seconds:.2f} | {imports:.2f} | {rss:.0f} | {torch_in} |",
            flush=True,
        )
    config = json.loads((folders[f"{last}, deploy"] / "deploy.json").read_text())
    print(f"\nmodels in {root}; deploy.json input: {config['input']}")


if __name__ == "__main__":
    main()
