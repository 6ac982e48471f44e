"""ONNX Runtime latency of EfficientNet-Lite0 exported as traced and with its shape arithmetic
folded (``skft.deploy.onnx_simplify``), fp32 and static int8, all timed in the same
interleaved rounds.

``python benchmarks/fold_shapes.py [--size 224] [--threads 1]``: Lite0 (pretrained, new head
fitted 1 epoch on 32 ants/bees images, or on digits where the ants/bees folder is missing),
batch 1 and batch 32, median ms, and the largest output difference from the traced fp32 graph.
"""

import argparse
import collections
import sys
from pathlib import Path

import numpy as np
import onnx
import torch

from skft import FineTunedClassifier, onnx_export
from skft.data.adapters import adapt_input, as_float_images
from skft.data.datasets import load_digits_images, load_image_folder
from skft.deploy.onnx_export import OnnxModel, estimator_onnx, quantize_onnx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_compress import interleaved_latencies  # noqa: E402

HYMENOPTERA = Path(__file__).resolve().parents[2] / "shared" / "data" / "hymenoptera" / "train"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=50, help="runs per latency (batch 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if HYMENOPTERA.exists():
        X, y, _ = load_image_folder(HYMENOPTERA, image_size=args.size)
        y = np.asarray(y)
    else:
        X, y = load_digits_images()
    pick = np.r_[0:16, len(y) - 16 : len(y)]
    clf = FineTunedClassifier("efficientnet_lite0", image_size=args.size, max_epochs=1,
                              frozen_depth=5, random_state=0).fit(X[pick], y[pick])  # fmt: skip
    images = as_float_images(adapt_input(clf, X, fitting=False)).numpy()
    calibration, one, batch = images[:64], images[:1], images[:32]

    folded = estimator_onnx(clf)
    plain = onnx_export.simplified
    onnx_export.simplified = lambda model, example: model  # the graph as traced
    try:
        traced = estimator_onnx(clf)
    finally:
        onnx_export.simplified = plain
    models = {
        "fp32, traced": traced,
        "fp32, folded": folded,
        "int8, traced": quantize_onnx(traced, "int8", calibration),
        "int8, folded": quantize_onnx(folded, "int8", calibration),
    }
    runners = {label: OnnxModel(m, threads=args.threads) for label, m in models.items()}
    reference = runners["fp32, traced"].run(batch)
    times = interleaved_latencies({k: r.run for k, r in runners.items()}, one, batch, args.repeats)
    print(f"EfficientNet-Lite0 at {args.size} px, ONNX Runtime, {args.threads} thread(s)")
    print("| graph | nodes | batch 1 (ms) | batch 32 (ms) | b1 vs fp32 traced | b1 vs fp32 folded |"
          " max abs diff from fp32 traced |\n|---|---:|---:|---:|---:|---:|---:|")  # fmt: skip
    for label, model in models.items():
        nodes = collections.Counter(n.op_type for n in onnx.load_from_string(model).graph.node)
        ms1, ms32 = times[label]
        diff = float(np.abs(runners[label].run(batch) - reference).max())
        print(f"| {label} | {sum(nodes.values())} | {ms1:.2f} | {ms32:.1f} | "
              f"{times['fp32, traced'][0] / ms1:.2f}x | {times['fp32, folded'][0] / ms1:.2f}x | "
              f"{diff:.2g} |")  # fmt: skip


if __name__ == "__main__":
    main()
