"""Deploy folders, the reading side: an ONNX model and its preprocessing, predict-only, no torch.

``Compressed.save(path, deploy=True)`` (:func:`skft.deploy.persist.save_deploy`) writes
a folder that holds what prediction needs and nothing of the fp32 estimator:

- ``model.onnx``: the compressed network (float32 input, normalisation in the graph);
- ``deploy.json``: what turns X into the model's input and its output into labels:
  the input recipe (images: the fitted ``(C, S, S)``, and the normalisation the
  graph applies; texts: the tokenizer's ``max_length`` and the rows of a token batch;
  tabular: the number of features), the output nonlinearity, ``classes_`` (or the
  regression target's scale), the sha256 of every other file, and the compression
  report;
- ``tokenizer.json`` (texts): the fast tokenizer, read by the ``tokenizers`` package.

:func:`read_deploy` (``skft.load`` of such a folder) returns a
:class:`DeployedClassifier` or :class:`DeployedRegressor`. Loading checks
``deploy.json`` against a fixed schema (JSON values only, no names of types or
code), the sha256 of each file, and the model's input and output shapes before it
predicts; anything else is one :class:`~skft.io.trust.ModelFileError`. Loading and
predicting need numpy and onnxruntime (``tokenizers`` for texts), not torch: images
already at the model's size (as arrays) stay in numpy; images to resize, PIL images
and files go through skft's own decoding and resizing (which import torch), so that
they get the pixels the full model gets.
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ..data.arrays import as_sequence, image_array, is_path, is_pil, one_column, to_float
from ..io.persist import decode_labels
from ..io.trust import ModelFileError, _plain_json, read_json
from ..specs import TokenizedInput
from .onnx_runtime import OnnxModel

__all__ = [
    "DEPLOY",
    "DeployedClassifier",
    "DeployedModel",
    "DeployedRegressor",
    "ImageInput",
    "TabularInput",
    "TextInput",
    "read_deploy",
    "softmax",
]

FORMAT, FORMAT_VERSION = "skft-deploy", 1
DEPLOY, ONNX, TOKENIZER = "deploy.json", "model.onnx", "tokenizer.json"
#: the largest sample dimension a deploy.json may declare (a bound, not a limit in practice)
_MAX_DIM = 1 << 16


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax in the outputs' dtype (what ``Compressed`` applies to ONNX outputs)."""
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Element-wise logistic function (multi-label: one probability per label), written
    with ``tanh`` so that large outputs of either sign do not overflow."""
    return 0.5 * (1.0 + np.tanh(0.5 * z))


#: the output nonlinearities a deploy folder may name
OUTPUTS = {"softmax": softmax, "sigmoid": sigmoid, "identity": lambda z: z}


# --------------------------------------------------------------------------
# input recipes
# --------------------------------------------------------------------------


def _shape_error(shape: tuple, fitted: tuple) -> ValueError:
    return ValueError(
        f"X has input shape {shape} after adaptation, but the deployed model was "
        f"fitted on {fitted} (channels must match)"
    )


@dataclass(frozen=True)
class ImageInput:
    """Images to float32 ``(N, C, S, S)`` in [0, 1], as the estimator's adapter makes them.

    ``mean`` and ``std`` are the normalisation ``model.onnx`` applies itself (written
    down for anyone who runs the ONNX file without skft).
    """

    shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    kind = "image"

    @property
    def image_size(self) -> int:
        return self.shape[-1]

    def adapt(self, X: Any) -> np.ndarray:
        X = as_sequence(X)
        files = isinstance(X, (list, tuple)) and len(X) and (is_path(X[0]) or is_pil(X[0]))
        if files or is_path(X) or is_pil(X) or type(X).__module__.startswith("torch"):
            from ..data.adapters import adapt_images  # decoding: skft's path, with torch

            arr = adapt_images(X, self.image_size).numpy()
        else:
            arr = image_array(X)
            if arr.shape[-2:] != self.shape[-2:]:  # the estimator's resize: the same pixels
                import torch

                from ..data.images import resize

                arr = resize(torch.from_numpy(arr), self.image_size).numpy()
        if arr.shape[1:] != self.shape:
            raise _shape_error(arr.shape[1:], self.shape)
        return to_float(arr)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "shape": list(self.shape),
                "mean": list(self.mean), "std": list(self.std)}  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any], folder: Path) -> ImageInput:
        _keys(data, {"kind", "shape", "mean", "std"}, "input")
        shape = _ints(data["shape"], 3, "input.shape")
        if shape[0] not in (1, 3):
            raise ValueError(f"input.shape {list(shape)}: images have 1 or 3 channels")
        mean, std = _floats(data["mean"], "input.mean"), _floats(data["std"], "input.std")
        if len(mean) != shape[0] or len(std) != shape[0] or min(std) <= 0:
            raise ValueError("input.mean and input.std: one value per channel, std > 0")
        return cls(shape, mean, std)


@dataclass(frozen=True)
class TabularInput:
    """2-D numeric X to float32 ``(N, F)`` (scikit-learn's ``check_array``, as in fit)."""

    n_features: int
    kind = "tabular"
    image_size = None

    def adapt(self, X: Any) -> np.ndarray:
        from sklearn.utils.validation import check_array

        if type(X).__module__.startswith("torch"):
            X = X.detach().cpu().numpy()
        X = check_array(X, dtype=np.float32, ensure_all_finite=True, ensure_min_samples=1)
        if X.shape[1] != self.n_features:
            raise ValueError(
                f"X has {X.shape[1]} features, but the deployed model is expecting "
                f"{self.n_features} features as input."
            )
        return np.ascontiguousarray(X)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "n_features": self.n_features}

    @classmethod
    def from_json(cls, data: dict[str, Any], folder: Path) -> TabularInput:
        _keys(data, {"kind", "n_features"}, "input")
        return cls(_ints([data["n_features"]], 1, "input.n_features")[0])


@dataclass(frozen=True)
class TextInput:
    """Texts to float32 token batches ``(N, channels, L)`` (:class:`~skft.specs.TokenizedInput`)."""

    channels: int
    tokens: TokenizedInput
    kind = "text"
    image_size = None

    def adapt(self, X: Any) -> np.ndarray:
        texts = _texts(X)
        tok = _tokenizer(self.tokens.tokenizer, self.tokens.max_length)
        encodings = tok.encode_batch(texts)
        truncated = sum(1 for e in encodings if e.overflowing)
        if truncated:
            warnings.warn(
                f"{truncated} of {len(texts)} texts were truncated to max_length="
                f"{self.tokens.max_length} tokens",
                UserWarning,
                stacklevel=3,
            )
        length = max(len(e.ids) for e in encodings)
        out = np.full((len(texts), self.channels, length), self.tokens.fill, dtype=np.float32)
        ids, mask = self.tokens.ids_row, self.tokens.mask_row
        out[:, ids], out[:, mask] = 0, 0
        for i, e in enumerate(encodings):
            out[i, ids, : len(e.ids)] = e.ids
            out[i, mask, : len(e.ids)] = e.attention_mask
        return out

    def to_json(self) -> dict[str, Any]:
        recipe = asdict(self.tokens)
        tokenizer = recipe.pop("tokenizer").encode()
        return {"kind": self.kind, "channels": self.channels, **recipe,
                "tokenizer_sha256": hashlib.sha256(tokenizer).hexdigest()}  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any], folder: Path) -> TextInput:
        keys = {"kind", "channels", "max_length", "ids_row", "mask_row", "fill"}
        _keys(data, keys | {"tokenizer_sha256"}, "input")
        channels, max_length = _ints([data["channels"], data["max_length"]], 2, "input", 2)
        rows = _ints([data["ids_row"], data["mask_row"]], 2, "input rows", 0, channels - 1)
        if rows[0] == rows[1]:
            raise ValueError("input: ids_row and mask_row must be two different rows")
        (fill,) = _floats([data["fill"]], "input.fill")
        text = _read_checked(folder, TOKENIZER, data["tokenizer_sha256"]).decode("utf-8")
        try:
            _tokenizer(text, max_length)
        except Exception as exc:  # noqa: BLE001 - the tokenizers package's own errors
            raise ModelFileError(f"{folder / TOKENIZER} is not a fast tokenizer: {exc}") from exc
        return cls(channels, TokenizedInput(text, max_length, *rows, fill))


INPUTS = {cls.kind: cls for cls in (ImageInput, TabularInput, TextInput)}


@lru_cache(maxsize=8)
def _tokenizer(text: str, max_length: int):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(text)
    tok.no_padding()
    tok.enable_truncation(max_length)
    return tok


def _texts(X: Any) -> list[str]:
    X = one_column(X, "the texts (e.g. X['text'])")
    if isinstance(X, np.ndarray) and X.ndim == 1 and X.dtype.kind in "OUS":
        X = X.tolist()
    if isinstance(X, str) or not isinstance(X, (list, tuple)):
        raise TypeError(f"X must be a list of str (the texts), got {type(X).__name__}")
    if not X:
        raise ValueError("X is empty: found 0 texts; at least 1 is required")
    bad = next((i for i, x in enumerate(X) if not isinstance(x, str)), None)
    if bad is not None:
        raise TypeError(f"X[{bad}] is {type(X[bad]).__name__}, not str; a text model takes strings")
    return list(X)


# --------------------------------------------------------------------------
# the predict-only models
# --------------------------------------------------------------------------


class DeployedModel:
    """A deploy folder loaded by ``skft.load``: predicts with ONNX Runtime, cannot be fitted.

    Attributes: ``onnx_model_`` (the model bytes and its session), ``input_`` (the
    input recipe), ``output_`` (``"softmax"``, ``"sigmoid"`` or ``"identity"``), ``backbone_`` (its
    name), ``compression_report_`` (as ``Compressed`` reported it).
    """

    def __init__(
        self, onnx: OnnxModel, inputs: Any, output: str, backbone: str, report: dict
    ) -> None:
        self.onnx_model_, self.input_, self.output_ = onnx, inputs, output
        self.backbone_, self.compression_report_ = backbone, report

    @property
    def image_size(self) -> int | None:
        """The side images are resized to (None for texts and tabular data)."""
        return self.input_.image_size

    def _outputs(self, X: Any) -> np.ndarray:
        return OUTPUTS[self.output_](self.onnx_model_.run(self.input_.adapt(X)))

    def _refuse_training(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            f"{type(self).__name__} comes from a deploy folder: it holds the compressed ONNX "
            "model only and cannot be trained. To fit again, write the full folder "
            "(Compressed.save(path), without deploy=True) and skft.load that one"
        )

    fit = partial_fit = _refuse_training

    def __repr__(self) -> str:
        report = self.compression_report_ or {}
        what = ", ".join(f"{k}={report[k]!r}" for k in ("prune", "quantize") if k in report)
        return f"{type(self).__name__}({self.backbone_!r}{', ' if what else ''}{what})"


class DeployedClassifier(DeployedModel):
    """A deploy folder's classifier: ``predict``, ``predict_proba``, ``score``, ``classes_``.

    Multi-label (``multilabel_``): ``predict_proba`` gives each label's probability (the
    sigmoid of its output) and ``predict`` the 0/1 indicator matrix, 1 where a probability
    exceeds ``threshold_`` (the estimator's ``threshold`` when the folder was written).
    """

    def __init__(
        self, classes: np.ndarray, multilabel: bool, threshold: float | None, *args: Any
    ) -> None:
        super().__init__(*args)
        self.classes_ = classes
        self.multilabel_, self.threshold_ = multilabel, threshold

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (softmax of the network's outputs; multi-label: sigmoids)."""
        return self._outputs(X)

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each sample, as the original labels; multi-label: the
        indicator matrix of the labels whose probability exceeds ``threshold_``."""
        proba = self._outputs(X)
        if self.multilabel_:
            return (proba > self.threshold_).astype(np.int64)
        return self.classes_[proba.argmax(axis=1)]

    def score(self, X: Any, y: Any) -> float:
        """Accuracy (multi-label: the share of samples whose label set is exactly right)."""
        from sklearn.metrics import accuracy_score

        return accuracy_score(y, self.predict(X))


class DeployedRegressor(DeployedModel):
    """A regressor from a deploy folder: ``predict`` and ``score``."""

    def __init__(self, mean: np.ndarray, scale: np.ndarray, y_ndim: int, *args: Any) -> None:
        super().__init__(*args)
        self.target_mean_, self.target_scale_, self.y_ndim_ = mean, scale, y_ndim

    def predict(self, X: Any) -> np.ndarray:
        """Targets on the original scale (the standardised outputs, scaled back)."""
        out = self._outputs(X).astype(np.float64) * self.target_scale_ + self.target_mean_
        return out.ravel() if self.y_ndim_ == 1 else out

    def score(self, X: Any, y: Any) -> float:
        """R^2."""
        from sklearn.metrics import r2_score

        return r2_score(y, self.predict(X))


# --------------------------------------------------------------------------
# reading a folder
# --------------------------------------------------------------------------

_COMMON = {"format", "format_version", "skft_version", "task", "backbone", "input", "output",
           "onnx_sha256", "compression"}  # fmt: skip
_TASKS = {"classifier": _COMMON | {"classes"}, "regressor": _COMMON | {"target"}}
#: a multi-label classifier's further keys
_MULTILABEL = {"multilabel", "threshold"}


def _classes(config: dict[str, Any]) -> tuple[np.ndarray, bool, float | None]:
    """A classifier's ``(classes, multilabel, threshold)``, checked."""
    classes = decode_labels(config["classes"])
    if "multilabel" not in config:
        if config["output"] == "sigmoid":
            raise ValueError("output 'sigmoid' is a multi-label model's: multilabel missing")
        return classes, False, None
    if config["multilabel"] is not True:
        raise ValueError(f"multilabel must be true when given, got {config['multilabel']!r}")
    if classes.tolist() != list(range(len(classes))):
        raise ValueError("a multi-label model's classes must be 0..n_labels-1")
    if config["output"] != "sigmoid":
        raise ValueError(f"a multi-label model's output must be 'sigmoid': {config['output']!r}")
    threshold = config["threshold"]
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise ValueError(f"threshold must be a number in (0, 1), got {threshold!r}")
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must be a number in (0, 1), got {threshold!r}")
    return classes, True, float(threshold)


def read_deploy(path: Any) -> DeployedModel:
    """The model of a deploy folder (``skft.load`` calls this when it finds ``deploy.json``)."""
    folder = Path(path)
    config = read_json(folder / DEPLOY)
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ModelFileError(f"{folder / DEPLOY} is not a deploy folder's config (format)")
    version = config.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version > FORMAT_VERSION:
        raise ModelFileError(
            f"{folder} has deploy format version {version!r}; this skft reads up to "
            f"{FORMAT_VERSION}: upgrade skft"
        )
    try:
        task = config.get("task")
        if task not in _TASKS:
            raise ValueError(f"task {task!r} is not one of {sorted(_TASKS)}")
        multilabel = task == "classifier" and "multilabel" in config
        _keys(config, _TASKS[task] | (_MULTILABEL if multilabel else set()), "deploy.json")
        if config["output"] not in OUTPUTS or not isinstance(config["backbone"], str):
            raise ValueError(f"output must be one of {sorted(OUTPUTS)}; backbone a name")
        if not isinstance(config["compression"], dict) or not _plain_json(config["compression"]):
            raise ValueError("compression must be a JSON object of plain values")
        data = config["input"]
        kind = data.get("kind") if isinstance(data, dict) else None
        if kind not in INPUTS:
            raise ValueError(f"input kind {kind!r} is not one of {sorted(INPUTS)}")
        inputs = INPUTS[kind].from_json(data, folder)
        if task == "classifier":
            labels = _classes(config)
            n_outputs = len(labels[0])
        else:
            labels = _target(config["target"])
            n_outputs = len(labels[0])
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        if isinstance(exc, ModelFileError):
            raise
        raise ModelFileError(f"{folder / DEPLOY} is not a valid deploy config: {exc}") from exc
    model = OnnxModel(_read_checked(folder, ONNX, config["onnx_sha256"]))
    _check_session(model, inputs, n_outputs, folder / ONNX)
    args = (model, inputs, config["output"], config["backbone"], config["compression"])
    if task == "classifier":
        return DeployedClassifier(*labels, *args)
    return DeployedRegressor(*labels, *args)


def _target(data: Any) -> tuple[np.ndarray, np.ndarray, int]:
    _keys(data, {"mean", "scale", "y_ndim"}, "target")
    mean, scale = _floats(data["mean"], "target.mean"), _floats(data["scale"], "target.scale")
    if len(mean) != len(scale) or not mean or data["y_ndim"] not in (1, 2):
        raise ValueError("target: mean and scale of one length, y_ndim 1 or 2")
    return np.asarray(mean, np.float64), np.asarray(scale, np.float64), int(data["y_ndim"])


def _keys(data: Any, keys: set[str], where: str) -> None:
    if not isinstance(data, dict):
        raise ValueError(f"{where} must be a JSON object")
    missing, extra = sorted(keys - set(data)), sorted(set(data) - keys)
    parts = [f"missing {', '.join(missing)}"] if missing else []
    parts += [f"unknown {', '.join(map(repr, extra))}"] if extra else []
    if parts:
        raise ValueError(f"{where}: {'; '.join(parts)}")


def _ints(values: Any, n: int, where: str, low: int = 1, high: int = _MAX_DIM) -> tuple[int, ...]:
    if (
        not isinstance(values, list)
        or len(values) != n
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in values)
        or not all(low <= v <= high for v in values)
    ):
        raise ValueError(f"{where} must be {n} integer(s) in {low}..{high}")
    return tuple(values)


def _floats(values: Any, where: str) -> tuple[float, ...]:
    if not isinstance(values, list) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values
    ):
        raise ValueError(f"{where} must be a list of finite numbers")
    return tuple(float(v) for v in values)


def _read_checked(folder: Path, name: str, digest: Any) -> bytes:
    if not isinstance(digest, str) or len(digest) != 64:
        raise ModelFileError(f"{folder / DEPLOY}: the sha256 of {name} is not a sha256 digest")
    try:
        data = (folder / name).read_bytes()
    except OSError as exc:
        raise ModelFileError(f"{folder}: cannot read {name}: {exc}") from exc
    if hashlib.sha256(data).hexdigest() != digest:
        raise ModelFileError(
            f"{folder / name} does not match the sha256 recorded in {DEPLOY}: the file was "
            "changed, truncated or replaced; write the deploy folder again"
        )
    return data


def _check_session(model: OnnxModel, inputs: Any, n_outputs: int, file: Path) -> None:
    """ONNX Runtime builds the model, whose input and output fit the recipe, or ModelFileError."""
    try:
        session = model.session
    except Exception as exc:  # noqa: BLE001 - ONNX Runtime's own errors
        raise ModelFileError(f"{file} is not a model ONNX Runtime can run: {exc}") from exc
    (given,), outputs = session.get_inputs(), session.get_outputs()
    if isinstance(inputs, TextInput):
        want: tuple = (inputs.channels, None)
    else:
        want = inputs.shape if isinstance(inputs, ImageInput) else (inputs.n_features,)
    dims = tuple(d if isinstance(d, int) else None for d in given.shape[1:])
    out = outputs[0].shape if len(outputs) == 1 else ()
    wrong = (
        given.name != "x"
        or given.type != "tensor(float)"
        or len(dims) != len(want)
        or any(w is not None and d != w for d, w in zip(dims, want))
        or len(out) != 2
        or (isinstance(out[1], int) and out[1] != n_outputs)
    )
    if wrong:
        raise ModelFileError(
            f"{file} does not fit {DEPLOY}: input {given.name!r} {given.shape} "
            f"{given.type}, output {out} (want x (N, {', '.join(map(str, want))}) float, "
            f"output (N, {n_outputs}))"
        )


def deploy_config(
    task: str, backbone: str, inputs: Any, output: str, labels: dict, onnx: bytes, report: dict
) -> dict[str, Any]:
    """``deploy.json``'s content (the writing side, :mod:`skft.deploy.persist`, calls this)."""
    import skft

    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "skft_version": skft.__version__,
        "task": task,
        "backbone": backbone,
        "input": inputs.to_json(),
        "output": output,
        **labels,
        "onnx_sha256": hashlib.sha256(onnx).hexdigest(),
        "compression": report,
    }


def dumps(config: dict[str, Any]) -> str:
    return json.dumps(config, indent=2, allow_nan=False)
