"""One-off: static int8 variants of bench_compress.py's fine-tuned Lite0 (digits, or ants/bees with
``hym``): accuracy and ONNX Runtime latency at batch 1 / 32, 1 thread, each variant against
fp32 in the same run (all variants timed in the same interleaved rounds).
``python benchmarks/quantize_variants.py [hym]``."""

import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from skft.data.adapters import adapt_input, as_float_images
from skft.data.datasets import load_digits_images
from skft.deploy.onnx_export import OnnxModel, _calibration_reader, estimator_onnx, float_nodes

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_compress import fit_base, interleaved_latencies  # noqa: E402

torch.set_num_threads(1)

X, y = load_digits_images()
Xtr, ytr, Xte, yte = X[:300], y[:300], X[300:800], y[300:800]  # bench_compress's split
if len(sys.argv) > 1 and sys.argv[1] == "hym":
    from skft.data.datasets import load_image_folder

    root = Path("/work/shared/data/hymenoptera")
    Xtr, ytr, _ = load_image_folder(root / "train", image_size=224)
    Xte, yte, _ = load_image_folder(root / "val", image_size=224)
    ytr, yte = np.asarray(ytr), np.asarray(yte)
    base = fit_base(Xtr, ytr, 3, 224, 16, frozen_depth=5)[0]
else:
    base = fit_base(Xtr, ytr, 5, 64, 32)[0]
inp = as_float_images(adapt_input(base, Xte, fitting=False)).numpy()
cal = as_float_images(adapt_input(base, Xtr, fitting=False)).numpy()[:256]
fp = estimator_onnx(base)
classes = base.classes_


def acc(m):
    return float(np.mean(classes[m.run(inp).argmax(1)] == yte))


f = OnnxModel(fp, threads=1)
print(f"fp32: acc {acc(f):.3f}", flush=True)
runners = {"fp32": f.run}
tmp = tempfile.mkdtemp()
src, pre = f"{tmp}/s.onnx", f"{tmp}/p.onnx"
Path(src).write_bytes(fp)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    quant_pre_process(src, pre, auto_merge=True)
W = ["Conv", "Gemm", "MatMul"]
variants = {
    "int8-signed (s8 all sym k2)": dict(act=QuantType.QInt8, ops=None, sym=True, k=2),
    "former int8-fast (u8 w k2)": dict(act=QuantType.QUInt8, ops=W, sym=False, k=2),
    "int8 (u8 all k2)": dict(act=QuantType.QUInt8, ops=None, sym=False, k=2),
    "u8 all k3": dict(act=QuantType.QUInt8, ops=None, sym=False, k=3),
    "u8 all k4": dict(act=QuantType.QUInt8, ops=None, sym=False, k=4),
    "u8 all k2 pct": dict(
        act=QuantType.QUInt8,
        ops=None,
        sym=False,
        k=2,
        cm=CalibrationMethod.Percentile,
        ex={"CalibPercentile": 99.99},
    ),
    "u8 all k0": dict(act=QuantType.QUInt8, ops=None, sym=False, k=0),
}
if len(sys.argv) > 1 and sys.argv[1] == "hym":  # the histograms of 224 px activations: too big
    del variants["u8 all k2 pct"]
for name, v in variants.items():
    out = f"{tmp}/{name.replace(' ', '_')}.onnx"
    t0 = time.perf_counter()
    try:
        quantize_static(
            pre,
            out,
            _calibration_reader(cal),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=v["act"],
            weight_type=QuantType.QInt8,
            nodes_to_exclude=float_nodes(Path(pre).read_bytes(), v["k"]),
            op_types_to_quantize=v["ops"],
            calibrate_method=v.get("cm", CalibrationMethod.MinMax),
            reduce_range=v.get("reduce", False),
            extra_options={
                "ActivationSymmetric": v["sym"],
                "WeightSymmetric": True,
                **v.get("ex", {}),
            },
        )
    except Exception as e:
        print(name, "failed", e)
        continue
    m = OnnxModel(Path(out).read_bytes(), threads=1)
    print(f"{name}: acc {acc(m):.3f} ({time.perf_counter() - t0:.0f}s)", flush=True)
    runners[name] = m.run
times = interleaved_latencies(runners, inp[:1], inp[:32], 50)
for name, (b1, b32) in times.items():
    print(f"{name}: batch 1 {b1:.2f} ms ({times['fp32'][0] / b1:.2f}x), "
          f"batch 32 {b32:.1f} ms ({times['fp32'][1] / b32:.2f}x)")  # fmt: skip
