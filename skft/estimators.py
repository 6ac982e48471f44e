"""FineTunedClassifier and FineTunedRegressor: skorch nets built from plugin backbones."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.preprocessing import LabelEncoder, StandardScaler
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import column_or_1d
from skorch import NeuralNetClassifier, NeuralNetRegressor
from torch import nn

from .base import FineTuneMixin
from .deploy.onnx_export import to_onnx
from .params.checks import FINE_TUNE_PARAMS
from .training.multilabel import (
    MultiLabelLoss,
    balanced_label_weights,
    check_indicator,
    criterion_weights,
    is_multilabel,
)

__all__ = ["FineTunedClassifier", "FineTunedRegressor"]

_REGRESSION_LOSSES = {"mse": nn.MSELoss, "mae": nn.L1Loss, "huber": nn.HuberLoss}


def _is_missing(value) -> bool:
    """None, a float NaN or pandas' NA/NaT: a missing label."""
    if value is None or type(value).__name__ in ("NAType", "NaTType"):
        return True
    return isinstance(value, (float, np.floating)) and bool(np.isnan(value))


def _check_no_missing_labels(y: np.ndarray) -> None:
    """A ValueError naming how many labels are missing and where, before the type checks."""
    missing = [i for i, v in enumerate(y) if _is_missing(v)]
    if missing:
        first = ", ".join(str(i) for i in missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise ValueError(
            f"y has {len(missing)} missing label(s) (None or NaN) of {len(y)}, first at "
            f"index {first}; drop those samples or fill their labels before fit"
        )


class FineTunedClassifier(FineTuneMixin, NeuralNetClassifier):
    """Fine-tune a pretrained backbone with a new classification head.

    Parameters
    ----------
    backbone : str
        A registered backbone name (``skft.backbones().names()``); plugins add more.
    pretrained : bool or path
        True: the backbone's default weights; False: random init; a path: a
        local state-dict file of the backbone's architecture.
    frozen_depth : None, int or "all"
        Layer groups frozen from the input side; 0 = full fine-tuning,
        "all" = linear probe (only the head trains). None: decided from the
        data by the fit plan (:mod:`skft.params.plan`): a linear probe for few colour
        photos per class, full fine-tuning otherwise.
    freeze : None or str
        Freezing policy name; its parameters are passed as ``freeze__*``. None:
        ``"depth"`` (freeze the first ``frozen_depth`` layer groups), unless the
        backbone's rule picks another from the data (text classifiers with at most 16
        sentences per class, or 64 in balanced classes: ``"contrastive"``, SetFit's
        stage; :mod:`skft.params.plan`).
    augment : None, str or list of str
        Augmenter name (``"none"``, ``"basic"``, ``"affine"``, ``"color"``, ``"randaugment"``,
        ``"mixup"``, ``"cutmix"``, or a plugin's, e.g. skft-transformers' ``"eda"``),
        or a composition: ``"basic+mixup"`` or ``["basic", "mixup"]``. None: from the
        backbone and the data (``"basic"`` for photos, ``"affine"`` for small or
        grayscale images, ``"none"`` for a linear probe and for text). Parameters
        as ``augment__*``; for a composition ``augment__<name>__<param>`` addresses
        one component (see :mod:`skft.augment`).
    augment_strength : float in [0, 1]
        Scales every augmentation; 0 is the identity. Training batches only.
    lr : None, float or "find"
        Base learning rate (layer groups may scale it: ``freeze__lr_decay``).
        ``"find"``: run :func:`skft.lr_find` on the training data first and
        train with its suggestion (``lr_found_``). None: the backbone's
        recommended rate (1e-3 for image backbones, 5e-5 for text encoders,
        whose new head trains 20 times faster), 1e-2 for a linear probe; see
        :mod:`skft.params.plan`.
    max_epochs, batch_size : None or int
        Epochs and batch size; None: from the backbone and the data (images:
        epochs for a budget of optimizer steps, batch 32 or a quarter of a small
        data set; text encoders: 20 and 16). The values a fit used are in
        ``resolved_params_``; ``fit_plan_`` says why.
    lr_schedule : None, "constant", "linear" or "cosine"
        The rate over the fit (:mod:`skft.training.schedule`): "linear" warms up over the
        first 10% of the steps and decays linearly to 0 at the end of
        ``max_epochs``; "cosine" warms up the same way and follows a half cosine.
        None: from the backbone and the data ("constant" for images, "cosine" for
        fine-tuning small or grayscale images and for a linear probe, "linear" for
        text encoders; :mod:`skft.params.plan`).
    image_size : int or None
        Side of the square input; None: the backbone's default, or 64 for
        images of 32 px or less (:mod:`skft.params.plan`).
    max_length : int >= 2 or None
        Text backbones: tokens per text (special tokens included), longer texts
        are truncated (counted, one warning); None: the backbone's default (128).
        Batches are padded to their own longest text. Ignored for images.
    device : str
        "auto" picks CUDA when present.
    random_state : int, RandomState or None
        Seeds initialization, shuffling, dropout and augmentation.
    tta : bool or int
        Test-time augmentation: average predicted probabilities (regression:
        predictions) over the first ``tta`` views of :data:`skft.training.tta.TTA_VIEWS`
        (original, flip, centre crop, flipped centre crop, four corner crops);
        ``True`` = 4 views. Off by default.
    label_smoothing : float in [0, 1)
        Cross-entropy against targets mixed with the uniform distribution
        (classifier only; 0 = off).
    class_weight : None, "balanced" or dict
        Weights of the classes in the cross-entropy, as in scikit-learn's
        linear models: ``"balanced"`` weights each class by
        ``n_samples / (n_classes * count)`` in the ``y`` of the first fit;
        a dict maps labels to weights (labels left out weigh 1). The
        weights are kept as ``class_weight_``, in the order of ``classes_``.
    threshold : float in (0, 1)
        Multi-label ``y`` only: a label is predicted for a sample when its
        probability exceeds ``threshold`` (0.5 by default; searchable, and
        ``set_params(threshold=...)`` on a fitted model needs no refit).
        Ignored for single-label ``y``. See "Multi-label targets" below.
    head : str
        The head put on the backbone's features (a registered name):
        ``"linear"`` (default) or ``"mlp"`` (``head__hidden=1024``,
        ``head__dropout=0.5``, ``head__layers=1``); parameters as ``head__*``.
    checkpoint : None or path
        A folder: the fit saves its state there after every epoch, and a fit
        of the same parameters on the same data started again resumes from
        the last completed epoch (see :mod:`skft.training.checkpoint`).
    early_stopping : bool or "auto"
        Hold out ``validation_fraction`` of the fit data (stratified), score it
        every epoch with ``scoring``, stop after ``n_iter_no_change`` epochs
        without an improvement above ``tol`` and restore the best epoch's
        weights (``max_epochs`` is a cap). ``"auto"``: on from 1,000 samples
        (see :mod:`skft.training.early_stopping`). Off by default.
    validation_fraction, n_iter_no_change, tol, scoring
        Early stopping's settings: 0.1, 5, 1e-4, None (accuracy for the
        classifier, R² for the regressor; or a scikit-learn scorer name or
        callable ``scorer(net, X, y)``).
    feature_cache : bool
        Compute the output of a frozen prefix once and reuse it across epochs
        and across the fits of a search (see :mod:`skft.training.cache`). Results are
        the same with it on or off; only the time differs.
    streaming : "auto", True or False
        Image file paths: ``True`` decodes them batch by batch in DataLoader
        worker processes (data larger than memory), ``False`` loads them all
        into memory first; ``"auto"`` streams above 1 GiB of decoded pixels
        (``SKFT_STREAM_ABOVE_MB``). Predictions are the same either way; the
        feature cache is off for streamed data (see :mod:`skft.data.streaming`).
    num_workers : int or None
        Decoding worker processes for streamed files (0: in this process);
        None: half the CPU cores, 1 to 4.
    decode_cache : bool
        Image files loaded into memory are decoded once per process and kept
        (keyed by path, size and modification time; at most
        ``SKFT_DECODE_CACHE_MB``, 1024 MiB): the fits, predictions and scores of
        a search decode each file once (see :mod:`skft.data.decode_cache`).
    precision : "auto", "fp32", "bf16" or "fp16"
        Autocast dtype of forward passes (fit and predict). ``"auto"``: bf16
        on CUDA devices that support it, else fp32 (always fp32 on CPU); a
        backbone measured slower under autocast says fp32 instead
        (``BackboneSpec.cuda_precision``: skft-transformers' text encoders).
        ``"fp16"`` scales the loss (``torch.amp.GradScaler``). See :mod:`skft.training.speed`.
    compile : bool
        skorch's parameter: ``True`` runs the module through ``torch.compile``
        (arguments as ``compile__*``); the module itself and its saved weights
        stay as they are.
    verbose : int
        0 (default): silent, like scikit-learn's estimators. 1: one line per
        epoch (losses, scores, duration) and a per-batch progress bar on
        stderr for epochs longer than a few seconds. skorch's epoch table:
        add ``skorch.callbacks.PrintLog()`` to ``callbacks``.
    **kwargs
        skorch's own arguments (``callbacks``, ``optimizer__*``,
        ``iterator_train__*``, ``train_split``, ...).
        ``train_split=None`` by default: no hidden validation split.

    Notes
    -----
    **Multi-label targets.** ``y`` as a 2-D 0/1 indicator matrix of shape
    ``(n_samples, n_labels)`` (what :class:`sklearn.preprocessing.MultiLabelBinarizer`
    gives) fits one network with ``n_labels`` sigmoid outputs and a binary
    cross-entropy (:class:`skft.training.multilabel.MultiLabelLoss`, a
    ``BCEWithLogitsLoss``, in place of the default ``criterion``). Then
    ``multilabel_`` is True, ``classes_`` is ``[0, ..., n_labels - 1]``,
    ``predict_proba`` returns one probability per label (rows need not sum to 1)
    and ``predict`` the indicator matrix (probability above ``threshold``), so
    scikit-learn's multi-label scorers (``"f1_samples"``, ``"jaccard_samples"``)
    work in a search. ``class_weight="balanced"`` balances each label's positives
    against its negatives (``class_weight_``: one row per label, the weights of its
    0s and 1s); ``label_smoothing`` moves targets to ``s/2`` and
    ``1 - s/2``; mixup and cutmix mix the 0/1 targets. A label column that is 0
    (or 1) for every training sample, or values other than 0 and 1, are refused
    before training.
    """

    own_params = (*FINE_TUNE_PARAMS, "label_smoothing", "class_weight", "threshold")
    #: True after a fit on a multi-label indicator matrix (see Notes)
    multilabel_ = False

    def __init__(
        self,
        backbone: str = "resnet18",
        *,
        pretrained=True,
        frozen_depth=None,
        freeze: str | None = None,
        augment=None,
        augment_strength: float = 0.5,
        lr=None,
        max_epochs=None,
        batch_size=None,
        image_size: int | None = None,
        max_length: int | None = None,
        lr_schedule: str | None = None,
        device="auto",
        random_state=None,
        tta=False,
        feature_cache=True,
        head="linear",
        checkpoint=None,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=5,
        tol=1e-4,
        scoring=None,
        streaming="auto",
        num_workers=None,
        decode_cache=True,
        precision="auto",
        module=None,
        label_smoothing=0.0,
        class_weight=None,
        threshold=0.5,
        criterion=nn.CrossEntropyLoss,
        optimizer=torch.optim.AdamW,
        train_split=None,
        verbose=0,
        **kwargs,
    ):
        self._init_params(locals())

    to_onnx = to_onnx  # to_onnx(path): the network as fp32 ONNX (skft.deploy.onnx_export.to_onnx)

    def _prepare(self, X, y, initial: bool, classes=None):
        y = y.cpu().numpy() if isinstance(y, torch.Tensor) else y
        if y is not None and is_multilabel(y):
            return self._prepare_multilabel(X, y, initial, classes)
        if not initial and self.multilabel_:
            raise ValueError(
                f"{type(self).__name__} was fitted on multi-label y ({self.n_outputs_} label "
                f"columns); got y of shape {np.shape(y)}"
            )
        y = None if y is None else column_or_1d(np.asarray(y), warn=True)
        if y is not None and y.dtype == object:
            _check_no_missing_labels(y)
        Xt = self._prepare_X(X, y, initial)
        if y.dtype.kind == "f" and not np.isfinite(y).all():
            raise ValueError("Input y contains NaN or infinity.")
        if y.dtype == object and len({isinstance(v, str) for v in y}) > 1:
            raise TypeError("y mixes strings and numbers; use one label type (all str or all int)")
        check_classification_targets(y)
        if initial:
            given = self.classes if self.classes is not None else classes
            labels = np.unique(y) if given is None else np.asarray(given)
            if len(labels) < 2:
                raise ValueError(
                    f"{type(self).__name__} needs at least 2 classes in y; got 1 "
                    f"class ({labels.tolist()[0]!r})"
                )
            self._set_classes(labels)
            self.multilabel_ = False
            self.class_weight_ = self._class_weights(y)
        unseen = np.setdiff1d(np.unique(y), self.classes_)
        if unseen.size:
            raise ValueError(
                f"y contains labels not in classes_ {self.classes_.tolist()}: {unseen.tolist()}"
            )
        encoded = self.column_of_sorted_[self.label_encoder_.transform(y)]
        return Xt, torch.as_tensor(encoded, dtype=torch.long)

    def _prepare_multilabel(self, X, y, initial: bool, classes=None):
        """X and a 0/1 indicator matrix ``y`` as float targets (see the class Notes)."""
        Y = check_indicator(y, fitting=initial)  # before any work on X (lr="find" trains)
        n_labels = Y.shape[1]
        if initial:
            given = self.classes if self.classes is not None else classes
            if given is not None and not np.array_equal(np.asarray(given), np.arange(n_labels)):
                raise ValueError(
                    f"classes={list(given)!r} with multi-label y: classes_ are the label "
                    f"columns' indices 0..{n_labels - 1} (scikit-learn's convention); keep "
                    "the label names on the side (MultiLabelBinarizer.classes_)"
                )
            if isinstance(self.class_weight, dict):
                raise ValueError(
                    "class_weight as a dict maps single-label classes to weights; with "
                    "multi-label y use class_weight='balanced' (each label's positives "
                    "against its negatives) or criterion__pos_weight=<tensor of n_labels>"
                )
        elif not self.multilabel_:
            raise ValueError(
                f"{type(self).__name__} was fitted on single-label y; got a multi-label "
                f"indicator matrix of shape {Y.shape}"
            )
        elif n_labels != self.n_outputs_:
            raise ValueError(
                f"y has {n_labels} label columns; {type(self).__name__} was fitted with "
                f"{self.n_outputs_}"
            )
        Xt = self._prepare_X(X, Y, initial)
        if len(Y) != len(Xt):
            raise ValueError(f"X has {len(Xt)} samples but y has {len(Y)} rows")
        if initial:
            self._set_classes(np.arange(n_labels))
            self.multilabel_ = True
            self.class_weight_ = None
            if self.class_weight == "balanced":
                self.class_weight_ = balanced_label_weights(Y)
        return Xt, torch.as_tensor(Y)

    def _set_classes(self, labels: np.ndarray) -> None:
        """Set ``classes_`` and the label encoding (columns keep the order given)."""
        self.classes_inferred_ = labels
        self.n_outputs_ = len(labels)
        self.label_encoder_ = LabelEncoder().fit(labels)
        self.column_of_sorted_ = np.empty(len(labels), dtype=np.int64)
        self.column_of_sorted_[self.label_encoder_.transform(labels)] = np.arange(len(labels))

    def _class_weights(self, y: np.ndarray) -> np.ndarray | None:
        """``class_weight`` as one weight per column of ``classes_`` (None: unweighted)."""
        if self.class_weight is None:
            return None
        from sklearn.utils.class_weight import compute_class_weight

        ordered = self.label_encoder_.classes_  # sorted, as compute_class_weight needs
        if isinstance(self.class_weight, dict):
            known = set(ordered.tolist())
            unknown = [k for k in self.class_weight if k not in known]
            if unknown:
                raise ValueError(
                    f"class_weight names labels not in classes_ {ordered.tolist()}: {unknown}"
                )
        sorted_weights = compute_class_weight(self.class_weight, classes=ordered, y=y)
        weights = np.empty(len(ordered), dtype=np.float64)
        weights[self.column_of_sorted_] = sorted_weights
        return weights

    def initialize_criterion(self):
        if self.multilabel_:
            return self._initialize_multilabel_criterion()
        super().initialize_criterion()
        weights = getattr(self, "class_weight_", None)
        for name in ("class_weight", "label_smoothing"):
            if getattr(self, name) and not isinstance(self.criterion_, nn.CrossEntropyLoss):
                raise ValueError(
                    f"{name}={getattr(self, name)!r} needs criterion="
                    f"torch.nn.CrossEntropyLoss, got {type(self.criterion_).__name__}"
                )
        if weights is not None:
            self.criterion_.weight = torch.as_tensor(weights, dtype=torch.float32)
        if self.label_smoothing:
            self.criterion_.label_smoothing = float(self.label_smoothing)
        return self

    def _initialize_multilabel_criterion(self):
        """:class:`MultiLabelLoss` in place of the default cross-entropy (class Notes)."""
        kwargs = self.get_params_for("criterion")
        if self.criterion is not nn.CrossEntropyLoss:  # the user's own: logits and 0/1 floats
            for name in ("class_weight", "label_smoothing"):
                if getattr(self, name):
                    raise ValueError(
                        f"{name}={getattr(self, name)!r} with multi-label y needs the default "
                        f"criterion (binary cross-entropy), got {self.criterion!r}"
                    )
            self.criterion_ = self.initialized_instance(self.criterion, kwargs)
            return self
        weights = getattr(self, "class_weight_", None)  # unset in a loaded model
        if weights is not None:
            kwargs = {**criterion_weights(weights), **kwargs}
        loss = MultiLabelLoss(label_smoothing=float(self.label_smoothing), **kwargs)
        self.criterion_ = loss
        return self

    def _get_predict_nonlinearity(self):
        if self.multilabel_ and self.predict_nonlinearity == "auto":
            self.check_is_fitted()
            return torch.sigmoid  # one probability per label
        return super()._get_predict_nonlinearity()

    def check_data(self, X, y):
        pass  # labels were encoded in _prepare; classes_ already set

    def _mixable_targets(self, yi: torch.Tensor) -> torch.Tensor:
        """Class indices to one-hot probabilities, for augmenters that mix targets (mixup);
        multi-label 0/1 targets as they are (mixed, each label's target is a probability)."""
        if self.multilabel_:
            return yi.to(self.device).float()
        if not isinstance(self.criterion_, nn.CrossEntropyLoss):
            raise ValueError(
                f"augment={self.augment!r} mixes targets into class probabilities, which "
                f"criterion {type(self.criterion_).__name__} does not accept; use "
                "torch.nn.CrossEntropyLoss (the default)"
            )
        return nn.functional.one_hot(yi.to(self.device).long(), self.n_outputs_).float()

    def predict_proba(self, X):
        """Class probabilities, columns in the order of ``classes_``.

        Multi-label: one probability per label, shape ``(n_samples, n_labels)``.
        """
        return self._forward_numpy(X)

    def predict(self, X):
        """Predicted labels, as found in y (strings too); multi-label: the 0/1 indicator matrix."""
        self.check_is_fitted()
        return self.labels_from_proba(self.predict_proba(X))

    def labels_from_proba(self, proba: np.ndarray) -> np.ndarray:
        """What ``predict`` returns for probabilities ``proba`` (those of ``predict_proba``).

        Single-label: the most probable class of each row; multi-label: 1 where a
        label's probability exceeds ``threshold``, else 0.
        """
        if self.multilabel_:
            if proba.ndim != 2 or proba.shape[1] != self.n_outputs_:
                raise ValueError(
                    f"expected probabilities of shape (n_samples, {self.n_outputs_}), "
                    f"got {proba.shape}"
                )
            return (proba > self.threshold).astype(np.int64)
        return self.classes_[np.asarray(proba).argmax(axis=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.poor_score = True
        return tags


class FineTunedRegressor(FineTuneMixin, NeuralNetRegressor):
    """Fine-tune a pretrained backbone with a new regression head.

    Parameters are those of :class:`FineTunedClassifier`, except ``criterion``:
    ``"mse"`` (default), ``"mae"``, ``"huber"`` or a torch loss class. Targets
    may be 1-D or 2-D; they are standardised internally and predictions are
    returned on the original scale and shape.
    """

    def __init__(
        self,
        backbone: str = "resnet18",
        *,
        pretrained=True,
        frozen_depth=None,
        freeze: str | None = None,
        augment=None,
        augment_strength: float = 0.5,
        lr=None,
        max_epochs=None,
        batch_size=None,
        image_size: int | None = None,
        max_length: int | None = None,
        lr_schedule: str | None = None,
        device="auto",
        random_state=None,
        tta=False,
        feature_cache=True,
        head="linear",
        checkpoint=None,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=5,
        tol=1e-4,
        scoring=None,
        streaming="auto",
        num_workers=None,
        decode_cache=True,
        precision="auto",
        module=None,
        criterion="mse",
        optimizer=torch.optim.AdamW,
        train_split=None,
        verbose=0,
        **kwargs,
    ):
        self._init_params(locals())

    to_onnx = to_onnx  # to_onnx(path): the network as fp32 ONNX (skft.deploy.onnx_export.to_onnx)

    def initialize_criterion(self):
        if isinstance(self.criterion, str):
            try:
                loss = _REGRESSION_LOSSES[self.criterion]
            except KeyError:
                raise ValueError(
                    f"criterion={self.criterion!r}: use one of "
                    f"{sorted(_REGRESSION_LOSSES)} or a torch loss class"
                ) from None
            self.criterion_ = loss(**self.get_params_for("criterion"))
            return self
        return super().initialize_criterion()

    def _prepare(self, X, y, initial: bool, classes=None):
        y = y.cpu().numpy() if isinstance(y, torch.Tensor) else y
        y = None if y is None else np.asarray(y)
        Xt = self._prepare_X(X, y, initial)
        if y.dtype.kind not in "biuf":
            try:
                y = y.astype(np.float64)
            except (TypeError, ValueError):
                raise ValueError("Unknown label type: y must be numeric for regression") from None
        if y.ndim not in (1, 2):
            raise ValueError(f"y must be 1-D or 2-D, got shape {y.shape}")
        if not np.isfinite(y).all():
            raise ValueError("Input y contains NaN or infinity.")
        y2 = y.reshape(len(y), -1).astype(np.float64)
        if initial:
            self.y_ndim_ = y.ndim
            self.n_outputs_ = y2.shape[1]
            self.target_scaler_ = StandardScaler().fit(y2)
        elif y2.shape[1] != self.n_outputs_:
            raise ValueError(f"y has {y2.shape[1]} outputs; fitted with {self.n_outputs_}")
        scaled = self.target_scaler_.transform(y2)
        return Xt, torch.as_tensor(scaled, dtype=torch.float32)

    def _mixable_targets(self, yi: torch.Tensor) -> torch.Tensor:
        """Standardised targets, mixed linearly by augmenters that mix targets (mixup)."""
        return yi.to(self.device).float()

    def predict(self, X):
        """Predictions on the scale and in the shape (1-D or 2-D) of the fitted y."""
        out = self._forward_numpy(X).astype(np.float64)  # checks that it is fitted
        out = self.target_scaler_.inverse_transform(out)
        return out.ravel() if self.y_ndim_ == 1 else out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.regressor_tags.poor_score = True
        return tags

    @available_if(lambda self: False)
    def predict_proba(self, X):  # regressors have none; hasattr() must say so
        raise AttributeError("predict_proba")
