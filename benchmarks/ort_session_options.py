"""One-off: can ONNX Runtime itself make bench_compress.py's ants/bees int8 model faster?

Fits the benchmark's ants/bees model (EfficientNet-Lite0, 224 px, frozen_depth=5), then
times fp32 and static int8 in the same interleaved rounds (1 thread) under session options
that bear on quantized CPU graphs: Q/DQ clean-up, the QOperator format (QLinearConv
written by the quantizer instead of fused from QDQ at load), and flushing denormals in
fp32. ``python benchmarks/ort_session_options.py`` (about 3 minutes on 2 cores).
"""

import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from skft.data.adapters import adapt_input, as_float_images
from skft.data.datasets import load_image_folder
from skft.deploy.onnx_export import _calibration_reader, estimator_onnx, float_nodes, quantize_onnx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_compress import HYMENOPTERA, fit_base, interleaved_latencies  # noqa: E402

torch.set_num_threads(1)
Xtr, ytr, _ = load_image_folder(HYMENOPTERA / "train", 224)
Xte, yte, _ = load_image_folder(HYMENOPTERA / "val", 224)
base = fit_base(Xtr, ytr, 3, 224, 16, frozen_depth=5)[0]
inputs = as_float_images(adapt_input(base, Xte, fitting=False)).numpy()
calibration = as_float_images(adapt_input(base, Xtr, fitting=False)).numpy()[:256]
fp32 = estimator_onnx(base)
qdq = quantize_onnx(fp32, "int8", calibration)
with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
    warnings.simplefilter("ignore")
    Path(tmp, "a.onnx").write_bytes(fp32)
    quant_pre_process(f"{tmp}/a.onnx", f"{tmp}/p.onnx")
    quantize_static(
        f"{tmp}/p.onnx", f"{tmp}/q.onnx", _calibration_reader(calibration),
        quant_format=QuantFormat.QOperator, per_channel=True,
        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
        nodes_to_exclude=float_nodes(Path(tmp, "p.onnx").read_bytes(), 2),
        extra_options={"WeightSymmetric": True},
    )  # fmt: skip
    qoperator = Path(tmp, "q.onnx").read_bytes()


def session(model: bytes, **config: str):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    for key, value in config.items():
        options.add_session_config_entry(key, value)
    sess = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    return lambda x: sess.run(None, {"x": x})[0]


runners = {
    "fp32": session(fp32),
    "fp32, denormals as zero": session(fp32, **{"session.set_denormal_as_zero": "1"}),
    "int8 (skft's QDQ)": session(qdq),
    "int8, QDQ clean-up": session(qdq, **{"session.enable_quant_qdq_cleanup": "1"}),
    "int8, QOperator format": session(qoperator),
}
for label, run in runners.items():
    accuracy = np.mean(base.classes_[run(inputs).argmax(1)] == np.asarray(yte))
    print(f"{label}: accuracy {accuracy:.3f}")
times = interleaved_latencies(runners, inputs[:1], inputs[:32], 100, 10)
b1_fp32 = times["fp32"][0]
print("\n| variant | batch 1 (ms) | vs fp32 | batch 32 (ms) |\n|---|---:|---:|---:|")
for label, (b1, b32) in times.items():
    print(f"| {label} | {b1:.2f} | {b1_fp32 / b1:.2f}x | {b32:.1f} |")
