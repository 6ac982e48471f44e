"""``Compressed``: structured pruning, a short recovery fine-tune, and int8 through ONNX Runtime."""

from __future__ import annotations

import copy
import io
import numbers
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, MetaEstimatorMixin, clone, is_classifier
from sklearn.exceptions import NotFittedError
from sklearn.metrics import accuracy_score, r2_score
from sklearn.utils import check_random_state
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted
from torch import nn

from ..data.adapters import adapt_input, as_float_images
from .deployed import OUTPUTS
from .onnx_export import (
    QUANTIZE_MODES,
    STATIC_MODES,
    OnnxModel,
    estimator_onnx,
    fusion_hints,
    output_name,
    quantize_onnx,
)
from .onnx_export import to_onnx as to_onnx
from .pruning import Distillation, frozen_groups, prune_module, recalibrate_batchnorm

__all__ = ["Compressed", "prune_module", "state_dict_bytes", "to_onnx"]

MAX_PRUNE = 0.9


class Compressed(MetaEstimatorMixin, BaseEstimator):
    """A fine-tuned estimator, pruned, briefly re-tuned and quantized for CPU inference.

    Parameters
    ----------
    estimator : FineTunedClassifier or FineTunedRegressor
        Cloned and fitted by :meth:`fit`, unless ``prefit=True``. Adapters
        (``freeze="lora"``, ...) are merged into the fitted copy first
        (:meth:`merge_adapters`): pruning and export see the plain network.
    prune : float in [0, 0.9]
        Fraction of the prunable width (channels) removed, by weight magnitude
        (torch-pruning's DepGraph, so coupled layers shrink together). The new
        head's outputs are never pruned. 0: no pruning.
    quantize : None, "int8", "int8-signed" or "dynamic"
        ``"int8"``: static int8 (QDQ) calibrated on ``calibration_size``
        training samples: per-channel weights, unsigned activations (ONNX
        Runtime's fast x86 path), every operator it can quantize;
        ``"int8-signed"``: the same with signed symmetric activations (S8S8,
        slower on x86); ``"dynamic"``: weights in int8, activations quantized
        on the fly (the transformer-encoder path; a backbone whose layers give
        :func:`skft.deploy.onnx_export.fusion_hints`, as skft-transformers' do, first
        gets ONNX Runtime's attention/LayerNorm/GELU fusions, kept only if they
        leave the outputs unchanged; ``compression_report_["fused_attention"]``
        counts the fused attention operators). Each runs the model in ONNX
        Runtime on the CPU; None keeps the PyTorch model. See
        :func:`skft.deploy.onnx_export.quantize_onnx`.
    recover_epochs : int >= 0
        Epochs of the estimator's own training loop after pruning (5: on
        ``bench_compress.py``'s digits model, 30% pruning lost 4.0 points after
        2 epochs and none after 5).
    distill : float in [0, 1]
        Weight of knowledge distillation in the recovery epochs: the loss is
        ``(1 - distill) * criterion + distill * d(student, teacher)``, the
        teacher being the unpruned fitted model on the same (augmented) batches;
        ``d`` is the KL divergence of the softened class probabilities
        (temperature 2, scaled by 4; Hinton et al. 2015) for classifiers and the
        squared error between outputs for regressors. 0: labels only. 0.5
        (default): after 30% pruning and 5 recovery epochs, on the
        ``bench_compress.py`` models, digits 0.802 -> 0.822, ants/bees (first 5
        groups frozen) 0.895 -> 0.948, MiniLM on SMS spam macro F1 0.953 -> 0.951.
    calibration_size : int >= 1
        Training samples (a random subset) that calibrate static quantization.
    keep_fp32 : int >= 0
        Static int8: the first ``keep_fp32`` convolution/linear layers (and what
        comes before them) stay in float32; the layers nearest the input are the
        most sensitive to quantization noise.
    round_to : int >= 1 or None
        Pruning keeps channel counts multiples of ``round_to`` (8: what CPU
        kernels vectorise over); None: exactly ``1 - prune`` of each layer.
    prune_frozen : bool
        False (default): layer groups the estimator kept frozen are not pruned,
        since the recovery epochs train only what the estimator trains (a
        probe or ``frozen_depth=k`` fit keeps its pretrained features intact and
        cached); True: prune them too (faster) and train every group in the
        recovery epochs, so that the pruned frozen layers are re-tuned; the
        estimator's freezing applies again afterwards.
    prefit : bool
        True: ``estimator`` is already fitted; compress a copy of it, no refit.
    random_state : int, RandomState or None
        Picks the calibration subset.
    """

    def __init__(
        self,
        estimator: Any,
        prune: float = 0.0,
        quantize: str | None = None,
        recover_epochs: int = 5,
        distill: float = 0.5,
        calibration_size: int = 256,
        keep_fp32: int = 2,
        round_to: int | None = 8,
        prune_frozen: bool = False,
        prefit: bool = False,
        random_state: Any = None,
    ) -> None:
        self.estimator = estimator
        self.prune = prune
        self.quantize = quantize
        self.recover_epochs = recover_epochs
        self.distill = distill
        self.calibration_size = calibration_size
        self.keep_fp32 = keep_fp32
        self.round_to = round_to
        self.prune_frozen = prune_frozen
        self.prefit = prefit
        self.random_state = random_state

    def _check_params(self) -> None:
        prune = self.prune
        if not isinstance(prune, numbers.Real) or isinstance(prune, bool):
            raise ValueError(f"prune must be a float in [0, {MAX_PRUNE}]; got {prune!r}")
        if not 0.0 <= float(prune) <= MAX_PRUNE:
            raise ValueError(f"prune must be a float in [0, {MAX_PRUNE}]; got {prune!r}")
        distill = self.distill
        if (
            not isinstance(distill, numbers.Real)
            or isinstance(distill, bool)
            or not 0.0 <= float(distill) <= 1.0
        ):
            raise ValueError(f"distill must be a float in [0, 1]; got {distill!r}")
        if self.quantize is not None and self.quantize not in QUANTIZE_MODES:
            raise ValueError(
                f"quantize={self.quantize!r} is not a quantization mode; use one of "
                f"{[None, *QUANTIZE_MODES]}"
            )
        for name in ("prune_frozen", "prefit"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False; got {getattr(self, name)!r}")
        for name in ("recover_epochs", "calibration_size", "keep_fp32", "round_to"):
            value, low = getattr(self, name), int(name in ("calibration_size", "round_to"))
            if name == "round_to" and value is None:
                continue
            if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an int >= {low}; got {value!r}")

    def fit(self, X: Any, y: Any, calibration_X: Any = None) -> Compressed:
        """Fit (or copy, ``prefit=True``) the estimator, prune, recover, quantize.

        ``calibration_X``: samples for static quantization instead of a subset of ``X``.
        """
        self._check_params()
        if self.prefit:
            try:
                self.estimator.check_is_fitted()
            except Exception as exc:
                raise NotFittedError(
                    f"prefit=True but the {type(self.estimator).__name__} is not fitted"
                ) from exc
            est = copy.deepcopy(self.estimator)
        else:
            est = clone(self.estimator).fit(X, y)
        est.merge_adapters()  # pruning, recovery and export see the plain merged network
        before = _size(est.module_)
        Xt = _adapted(est, X)
        report: dict[str, Any] = {"unhandled_layers": [], "unpruned_layers": []}
        if self.prune > 0:
            teacher = copy.deepcopy(est.module_) if self.distill > 0 else None
            keep = [] if self.prune_frozen else frozen_groups(est)
            report["kept_groups"] = [est.module_.group_names[i] for i in keep]
            report.update(prune_module(est.module_, Xt[:1], float(self.prune), self.round_to, keep))
            # images train on the adapted tensor; token batches are re-made from the texts
            # (their adapter takes strings, and augmentation works on words)
            recover_X = X if est.input_kind_.variable_length else Xt
            distill = None if teacher is None else Distillation(teacher, float(self.distill))
            with est.recovering(self.recover_epochs, self.prune_frozen, distill):
                for _ in range(self.recover_epochs):
                    est.partial_fit(recover_X, y)
            device = next(est.module_.parameters()).device
            recalibrate_batchnorm(
                est.module_, Xt, device, keep=[est.module_.groups[i] for i in keep]
            )
            est.drop_cached_features()  # new statistics
        est.module_.eval()
        after = _size(est.module_)
        self.onnx_model_ = None
        if self.quantize is not None:
            calibration = self._calibration(est, Xt, calibration_X)
            fp32 = estimator_onnx(est)
            fusion = fusion_hints(est.module_) if self.quantize == "dynamic" else None
            example = None if fusion is None else as_float_images(Xt[:8]).numpy()
            self.onnx_model_ = OnnxModel(
                quantize_onnx(fp32, self.quantize, calibration, self.keep_fp32, fusion, example)
            )
            report["onnx_fusion"] = fusion
            report["fused_attention"] = (
                0 if fusion is None else _count_ops(self.onnx_model_.model, FUSED_ATTENTION)
            )
            report.update(self._agreement(est, fp32, calibration, Xt))
        self.estimator_ = est
        self.compression_report_ = {
            "prune": float(self.prune),
            "quantize": self.quantize,
            "recover_epochs": self.recover_epochs if self.prune > 0 else 0,
            "distill": float(self.distill) if self.prune > 0 else 0.0,
            "calibration_size": len(calibration) if self.quantize in STATIC_MODES else 0,
            "keep_fp32": self.keep_fp32 if self.quantize in STATIC_MODES else 0,
            "round_to": self.round_to if self.prune > 0 else None,
            "params_before": before[0],
            "params_after": after[0],
            "fp32_bytes_before": before[1],
            "fp32_bytes_after": after[1],
            "onnx_bytes": None if self.onnx_model_ is None else self.onnx_model_.nbytes,
            "ignored_layers": ["head"],
            **report,
        }
        return self

    def _calibration(self, est: Any, Xt: torch.Tensor, calibration_X: Any) -> np.ndarray | None:
        if self.quantize not in STATIC_MODES:
            return None
        if calibration_X is not None:
            try:
                Xt = _adapted(est, calibration_X)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"calibration data: {exc}") from exc
        rng = check_random_state(self.random_state)
        n = min(self.calibration_size, len(Xt))
        idx = np.sort(rng.choice(len(Xt), n, replace=False))
        return as_float_images(Xt[torch.as_tensor(idx)]).numpy()

    def _agreement(self, est: Any, fp32: bytes, calibration: Any, Xt: torch.Tensor) -> dict:
        """How closely the quantized model follows the float one, on calibration samples.

        The calibration samples (static) or the first 256 training ones (dynamic).
        Classifiers: ``calibration_agreement``, the share of samples whose predicted
        class is kept; regressors: ``calibration_max_diff``, the largest absolute
        difference of the standardised outputs.
        """
        X = calibration if calibration is not None else as_float_images(Xt[:256]).numpy()
        ref, out = OnnxModel(fp32).run(X), self.onnx_model_.run(X)
        if is_classifier(est):
            return {"calibration_agreement": float(np.mean(ref.argmax(1) == out.argmax(1)))}
        return {"calibration_max_diff": float(np.abs(ref - out).max())}

    def save(self, path: Any, trusted: Any = (), deploy: bool = False):
        """Write to the folder ``path`` (JSON, safetensors, ONNX; no pickle); see skft.load.

        ``deploy=False``: the full folder (``compressed.json``, the compressed estimator
        in ``estimator/``, ``model.onnx``), which ``skft.load`` returns as a ``Compressed``
        that predicts, refits and searches. ``deploy=True``: only what prediction needs
        (``model.onnx``, ``deploy.json``: preprocessing and labels, and ``tokenizer.json``
        for texts), which ``skft.load`` returns as a predict-only
        :class:`~skft.deploy.deployed.DeployedClassifier` or ``DeployedRegressor`` that
        needs numpy and onnxruntime, not torch: the folder to ship.
        ``trusted``: classes of your own among the estimator's parameters (full folders
        only; see ``skft.load``).
        """
        if deploy:
            from .persist import save_deploy

            return save_deploy(self, path)
        from .persist import save_compressed

        return save_compressed(self, path, trusted)

    # ----------------------------------------------------------------------
    # prediction

    @property
    def classes_(self) -> np.ndarray:
        check_is_fitted(self, "estimator_")
        return self.estimator_.classes_

    def _outputs(self, X: Any) -> np.ndarray:
        """The network's outputs after the estimator's predict nonlinearity (softmax; sigmoid
        for multi-label)."""
        check_is_fitted(self, "estimator_")
        est = self.estimator_
        if self.onnx_model_ is None:
            return est._forward_numpy(X)
        Xt = as_float_images(_adapted(est, X)).float()  # text: ids as floats
        out = self.onnx_model_.run(Xt.numpy())
        name = output_name(est)  # in numpy, as deploy folders do: the same probabilities
        if name is not None:
            return OUTPUTS[name](out)
        return est._get_predict_nonlinearity()(torch.from_numpy(out)).numpy()

    @available_if(lambda self: is_classifier(self.estimator))
    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities of the compressed model (classifiers only)."""
        return self._outputs(X)

    def predict(self, X: Any) -> np.ndarray:
        """Labels (classifier) or targets on the original scale (regressor)."""
        out = self._outputs(X)
        est = self.estimator_
        if is_classifier(est):
            return est.labels_from_proba(out)  # multi-label: probabilities over threshold
        out = est.target_scaler_.inverse_transform(out.astype(np.float64))
        return out.ravel() if est.y_ndim_ == 1 else out

    def score(self, X: Any, y: Any) -> float:
        """Accuracy (classifier) or R^2 (regressor) of the compressed model."""
        pred = self.predict(X)
        return accuracy_score(y, pred) if is_classifier(self.estimator) else r2_score(y, pred)

    def __sklearn_tags__(self):
        from sklearn.utils import get_tags

        tags = copy.deepcopy(get_tags(self.estimator))
        tags.non_deterministic = True
        return tags


#: ONNX Runtime's fused attention operators (float and dynamic int8)
FUSED_ATTENTION = ("Attention", "QAttention")


def _adapted(est: Any, X: Any) -> torch.Tensor:
    """``X`` through the fitted estimator's input adapter, at the size its fit plan chose."""
    with est.holding_resolved():
        return adapt_input(est, X, fitting=False)


def _count_ops(model: bytes, op_types: tuple[str, ...]) -> int:
    import onnx

    return sum(node.op_type in op_types for node in onnx.load_from_string(model).graph.node)


def _size(module: nn.Module) -> tuple[int, int]:
    return sum(p.numel() for p in module.parameters()), state_dict_bytes(module)


def state_dict_bytes(module: nn.Module) -> int:
    """Bytes of ``torch.save(module.state_dict())``: the fp32 model size."""
    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    return buffer.tell()
