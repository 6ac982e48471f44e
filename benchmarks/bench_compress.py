"""Compression: fp32 vs 30% pruning vs int8 vs both, for a fine-tuned EfficientNet-Lite0.

Fine-tunes pretrained EfficientNet-Lite0 once per data set, then compresses
that fitted model with :class:`skft.Compressed` (``prefit=True``):

* digits at 64x64 (300 train / 500 test, 5 epochs);
* ants vs bees (``/work/shared/data/hymenoptera``, 224x224, 245 train / 153
  val, 3 epochs with the first 5 of Lite0's 9 layer groups frozen, so their
  features are cached; ``--hym-frozen-depth``) unless ``--skip-hymenoptera``;
* MiniLM (``backbone="minilm"``, its defaults) fine-tuned on 200 SMS messages
  (``/work/shared/data/sms_spam``, the split of ``bench_text.py``, seed 0),
  macro F1 on 1,000 held-out messages, unless ``--skip-text``: pruning removes
  whole attention heads and feed-forward width, and int8 is ONNX Runtime's
  dynamic quantization (``quantize="dynamic"``), the recipe for transformer
  encoders. Latency inputs are one message (batch 1) and 32 messages padded to
  their own longest (batch 32).

Pruning recovers with ``--recover`` epochs and ``--distill`` (Compressed's
defaults: 5 epochs, distillation weight 0.5). Every variant's latency is
measured in ONNX Runtime on the CPU (fp32 ONNX for the unquantized ones, so
the int8 speed-up is against the same runtime), as the median of repeated runs
at batch 1 and batch 32, all variants of a model timed in the same interleaved
rounds (``--rounds``); PyTorch eager fp32 is shown for reference. Sizes are
the ONNX files (the fp32 one is within a few kB of the state dict). Run:
``python benchmarks/bench_compress.py`` (about 20 minutes on 2 CPU cores;
``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import contextlib
import time
from pathlib import Path
from unittest import mock

import numpy as np
import torch

from skft import Compressed, FineTunedClassifier, compress
from skft.data.adapters import adapt_input, as_float_images
from skft.data.datasets import load_digits_images, load_image_folder
from skft.deploy.onnx_export import OnnxModel, estimator_onnx

HYMENOPTERA = Path("/work/shared/data/hymenoptera")
SMS = Path("/work/shared/data/sms_spam/sms_spam.tsv")


def interleaved_latencies(
    runners: dict, one: np.ndarray | list, batch: np.ndarray, repeats: int, rounds: int = 5
) -> dict:
    """Median ms at batch 1 and batch 32 of each runner, measured in interleaved rounds.

    Each round times every variant in turn (the order rotates from round to round),
    so a slow spell of the machine hits all variants alike instead of whichever one
    happened to be measured then: latencies on a shared VM drift by up to 1.5x. The
    first run of each visit and batch size is not timed (the model and its buffers
    come back into the caches after the other variants ran): hot latency, as a served
    model sees it. ``one`` may be a list of batch-1 inputs (texts of different
    lengths): the timed batch-1 runs go through it in order, the same inputs for
    every variant, and the median is over all of them.
    """
    ones = one if isinstance(one, list) else [one]
    labels = list(runners)
    for label in labels:  # warm-up
        for _ in range(3):
            runners[label](ones[0])
        runners[label](batch)
    t1: dict = {label: [] for label in labels}
    t32: dict = {label: [] for label in labels}
    per_round_1 = max(1, repeats // rounds)
    per_round_32 = max(1, repeats // 5 // rounds)
    for r in range(rounds):
        for label in labels[r % len(labels) :] + labels[: r % len(labels)]:
            for inputs, times, count in ((ones, t1, per_round_1), ([batch], t32, per_round_32)):
                runners[label](inputs[(r * count) % len(inputs)])  # not timed: back in the caches
                for j in range(count):
                    x = inputs[(r * count + j) % len(inputs)]
                    start = time.perf_counter()
                    runners[label](x)
                    times[label].append(time.perf_counter() - start)
    return {label: (1000 * float(np.median(t1[label])), 1000 * float(np.median(t32[label])))
            for label in labels}  # fmt: skip


def torch_runner(est):
    module = est.module_.eval()

    def run(x):
        with torch.inference_mode():
            return module(torch.from_numpy(x))

    return run


def fp32_onnx(est) -> OnnxModel:
    return OnnxModel(estimator_onnx(est))


def measured(pending: list[tuple], one: np.ndarray | list, batch: np.ndarray, args) -> list[tuple]:
    """Rows (variant, metric, MB, ms at batch 1, ms at batch 32, s) from ``pending`` rows
    (variant, metric, MB, runner, s), every runner timed in the same interleaved rounds."""
    runners = {label: run for label, _, _, run, _ in pending}
    times = interleaved_latencies(runners, one, batch, args.repeats, args.rounds)
    return [(label, acc, mb, *times[label], secs) for label, acc, mb, _, secs in pending]


def compare(name, base, X_train, y_train, X_test, y_test, args) -> list[tuple]:
    """Rows (variant, accuracy, MB, ms at batch 1, ms at batch 32, s) for a fitted ``base``."""
    inputs = as_float_images(adapt_input(base, X_test, fitting=False)).numpy()
    pending = []

    def add(label, comp, onnx_model, seconds):
        acc = float(np.mean(comp.predict(X_test) == y_test))
        pending.append((label, acc, onnx_model.nbytes / 1e6, onnx_model.run, seconds))

    start = time.perf_counter()
    fp32 = Compressed(base, prefit=True).fit(X_train, y_train)
    acc = float(np.mean(fp32.predict(X_test) == y_test))
    fp32_model = fp32_onnx(fp32.estimator_)
    pending.append(("fp32, PyTorch eager", acc, fp32_model.nbytes / 1e6,
                    torch_runner(fp32.estimator_), 0.0))  # fmt: skip
    add("fp32, ONNX Runtime", fp32, fp32_model, time.perf_counter() - start)

    start = time.perf_counter()
    pruned = Compressed(
        base,
        prune=0.3,
        recover_epochs=args.recover,
        round_to=args.round_to,
        prune_frozen=args.prune_frozen,
        distill=args.distill,
        prefit=True,
    )
    pruned.fit(X_train, y_train)
    add("pruned 0.3 + recovery", pruned, fp32_onnx(pruned.estimator_), time.perf_counter() - start)

    agreement = {}
    for label, est, mode in (
        ("int8 (static, per-channel)", base, "int8"),
        ("pruned 0.3 + int8", pruned.estimator_, "int8"),
        ("int8-signed", base, "int8-signed"),
    ):
        start = time.perf_counter()
        comp = Compressed(est, quantize=mode, keep_fp32=args.keep_fp32, prefit=True, random_state=0)
        comp.fit(X_train, y_train)
        add(label, comp, comp.onnx_model_, time.perf_counter() - start)
        agreement[label] = comp.compression_report_["calibration_agreement"]
    print(f"{name}: int8 vs float predictions on the calibration images: {agreement}")
    report = pruned.compression_report_
    print(
        f"{name}: parameters {report['params_before']:,} -> {report['params_after']:,} after "
        f"pruning 0.3 ({report['params_after'] / report['params_before']:.2f}); groups kept "
        f"whole: {report.get('kept_groups') or 'none'}; layers left alone: "
        f"{report['unhandled_layers'] or 'none'}"
    )
    return measured(pending, inputs[:1], inputs[:32], args)


def compare_text(base, X_train, y_train, X_test, y_test, args) -> list[tuple]:
    """Rows as :func:`compare`, for a fitted text model: macro F1, dynamic int8."""
    from sklearn.metrics import f1_score

    def tokens(texts):
        return as_float_images(adapt_input(base, texts, fitting=False)).float().numpy()

    pending = []

    def add(label, comp, onnx_model, seconds):
        f1 = float(f1_score(y_test, comp.predict(X_test), average="macro"))
        pending.append((label, f1, onnx_model.nbytes / 1e6, onnx_model.run, seconds))

    start = time.perf_counter()
    fp32 = Compressed(base, prefit=True).fit(X_train, y_train)
    f1 = float(f1_score(y_test, fp32.predict(X_test), average="macro"))
    fp32_model = fp32_onnx(fp32.estimator_)
    pending.append(("fp32, PyTorch eager", f1, fp32_model.nbytes / 1e6,
                    torch_runner(fp32.estimator_), 0.0))  # fmt: skip
    add("fp32, ONNX Runtime", fp32, fp32_model, time.perf_counter() - start)
    start = time.perf_counter()
    pruned = Compressed(
        base, prune=0.3, recover_epochs=args.recover, distill=args.distill, prefit=True
    )
    pruned.fit(X_train, y_train)
    add("pruned 0.3 + recovery", pruned, fp32_onnx(pruned.estimator_), time.perf_counter() - start)
    for label, est, fuse in (
        ("int8 (dynamic)", base, True),
        ("int8 (dynamic), no fusion", base, False),
        ("pruned 0.3 + int8", pruned.estimator_, True),
    ):
        start = time.perf_counter()
        with contextlib.ExitStack() as stack:
            if not fuse:  # the graph as exported: no ONNX Runtime transformer fusions
                stack.enter_context(mock.patch.object(compress, "fusion_hints", lambda m: None))
            comp = Compressed(est, quantize="dynamic", prefit=True).fit(X_train, y_train)
        add(label, comp, comp.onnx_model_, time.perf_counter() - start)
        print(f"sms: {label}: {comp.compression_report_['fused_attention']} fused attention")
    report = pruned.compression_report_
    heads = [
        m.num_attention_heads
        for m in pruned.estimator_.module_.modules()
        if hasattr(m, "num_attention_heads") and hasattr(m, "attention_head_size")
    ]
    print(
        f"sms: parameters {report['params_before']:,} -> {report['params_after']:,} after "
        f"pruning 0.3 ({report['params_after'] / report['params_before']:.2f}); attention "
        f"heads per layer {heads}"
    )
    # batch 1: the first 32 held-out messages one at a time (each padded to its own
    # length), so that the latency is a typical message's, not one message's
    ones = [tokens([t]) for t in X_test[:32]]
    print(f"sms: batch-1 messages {sorted(x.shape[-1] for x in ones)} tokens")
    return measured(pending, ones, tokens(X_test[:32]), args)


def print_table(name: str, rows: list[tuple], flush: bool = False, metric: str = "accuracy"):
    base_acc, base_mb, base_b1, base_b32 = rows[1][1:5]  # fp32 in ONNX Runtime
    print(f"\n{name}\n")
    print(
        f"| variant | {metric} | size (MB) | batch 1 (ms) | batch 32 (ms) "
        "| vs fp32 ORT: size, b1, b32 | compress time (s) |"
    )
    print("|---|---:|---:|---:|---:|---|---:|")
    for label, acc, mb, b1, b32, secs in rows:
        ratio = f"{base_mb / mb:.1f}x smaller, {base_b1 / b1:.1f}x, {base_b32 / b32:.1f}x faster"
        delta = f" ({100 * (acc - base_acc):+.1f})" if label != rows[1][0] else ""
        cells = f"{acc:.3f}{delta} | {mb:.2f} | {b1:.2f} | {b32:.1f} | {ratio} | {secs:.0f}"
        print(f"| {label} | {cells} |", flush=flush)


def fit_base(X, y, epochs: int, size: int, batch: int, frozen_depth: int = 0):
    start = time.perf_counter()
    clf = FineTunedClassifier(
        "efficientnet_lite0",
        image_size=size,
        max_epochs=epochs,
        batch_size=batch,
        frozen_depth=frozen_depth,
        random_state=0,
    ).fit(X, y)
    return clf, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 digits, 1 epoch, no hymenoptera")
    parser.add_argument("--skip-hymenoptera", action="store_true")
    parser.add_argument("--skip-text", action="store_true", help="no MiniLM / SMS spam rows")
    parser.add_argument("--skip-images", action="store_true", help="only the text rows")
    parser.add_argument("--repeats", type=int, default=50, help="runs per latency (batch 1)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved latency rounds")
    parser.add_argument("--prune-frozen", action="store_true", help="Compressed(prune_frozen=True)")
    parser.add_argument("--threads", type=int, default=2, help="torch and ONNX Runtime threads")
    parser.add_argument("--keep-fp32", type=int, default=2, help="Compressed(keep_fp32=...)")
    parser.add_argument("--round-to", type=int, default=8, help="Compressed(round_to=...)")
    parser.add_argument("--recover", type=int, default=5, help="recovery epochs after pruning")
    parser.add_argument("--distill", type=float, default=0.5, help="Compressed(distill=...)")
    parser.add_argument("--hym-frozen-depth", type=int, default=5, help="ants/bees frozen_depth")
    parser.add_argument("--hym-epochs", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    n_train, epochs = (100, 1) if args.quick else (300, 5)
    args.recover = 1 if args.quick else args.recover
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU; ")
    print(
        f"recovery: {args.recover} epochs after pruning (round_to={args.round_to}, "
        f"distill={args.distill}, prune_frozen={args.prune_frozen}); "
        f"calibration: 256 training images; keep_fp32={args.keep_fp32}\n"
    )

    tables = []
    if not args.skip_images:
        X, y = load_digits_images()
        X_train, y_train = X[:n_train], y[:n_train]
        X_test, y_test = X[n_train : n_train + 500], y[n_train : n_train + 500]
        base, secs = fit_base(X_train, y_train, epochs, 64, 32)
        name = f"digits 64x64, {n_train} train / {len(X_test)} test, {epochs} epochs ({secs:.0f} s)"
        tables.append((name, compare("digits", base, X_train, y_train, X_test, y_test, args)))
        print_table(*tables[0], flush=True)  # now, in case the 224 px run is cut short

    if not (args.quick or args.skip_hymenoptera or args.skip_images) and HYMENOPTERA.exists():
        X_train, y_train, _ = load_image_folder(HYMENOPTERA / "train", 224)
        X_test, y_test, _ = load_image_folder(HYMENOPTERA / "val", 224)
        epochs, depth = args.hym_epochs, args.hym_frozen_depth
        base, secs = fit_base(X_train, y_train, epochs, 224, 16, depth)
        name = (
            f"ants/bees 224x224, {len(X_train)} train / {len(X_test)} val, {epochs} epochs, "
            f"frozen_depth={depth} ({secs:.0f} s)"
        )
        rows = compare("ants/bees", base, X_train, y_train, X_test, y_test, args)
        tables.append((name, rows))
        print_table(name, rows, flush=True)

    if not (args.quick or args.skip_text) and SMS.exists():
        import sys

        sys.path.insert(0, str(Path(__file__).parent))
        from bench_text import load, splits

        (X_train, y_train), (X_test, y_test) = splits(*load(str(SMS)), 200, 0)
        start = time.perf_counter()
        base = FineTunedClassifier("minilm", random_state=0).fit(X_train, y_train)
        name = (
            f"SMS spam, MiniLM (defaults), {len(X_train)} train / {len(X_test)} held out "
            f"({time.perf_counter() - start:.0f} s)"
        )
        rows = compare_text(base, X_train, y_train, X_test, y_test, args)
        tables.append((name, rows, "macro F1"))
    print("\nall tables")
    for table in tables:
        print_table(*table[:2], metric=table[2] if len(table) > 2 else "accuracy")


if __name__ == "__main__":
    main()
