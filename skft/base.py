"""What both estimators add to skorch, as a short list of skorch overrides.

Parameters and their checks live in :mod:`skft.params`, seeding in
:mod:`skft.seeding`, devices in :mod:`skft.device`, the per-epoch freezing
schedule and progress output in :mod:`skft.callbacks`, the network in
:mod:`skft.network` and the frozen-prefix cache in :mod:`skft.cache`.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
from skorch import NeuralNet
from skorch.callbacks import PrintLog
from skorch.utils import to_tensor
from torch import nn

from .augment import n_tta_views
from .cache import cacheable_depth, feature_cache, model_key
from .callbacks import EpochLog, FreezeSchedule
from .data import BatchLoader, ShuffledBatchLoader
from .device import holding_resolved_device, resolve_device
from .network import build_network, param_groups
from .params import FINE_TUNE_PARAMS, check_params
from .plugins import get_backbone
from .seeding import seeded
from .tta import predict_tta

__all__ = ["FineTuneMixin"]


class FineTuneMixin:
    """What both estimators add to skorch: plugins, data adapters, freezing, augmentation."""

    prefixes_ = [*NeuralNet.prefixes_, "freeze", "augment"]
    #: ``partial_fit`` trains exactly one epoch (skorch's trains ``max_epochs``):
    #: :class:`skft.OptunaSearch` trains CV folds in lockstep only when this is true.
    partial_fit_is_one_epoch = True
    # skorch sets these in __init__; scikit-learn wants only parameters there
    history_ = None
    initialized_ = False
    virtual_params_ = MappingProxyType({})

    def _skorch_init(self, **kwargs: Any) -> None:
        kwargs.setdefault("iterator_train", ShuffledBatchLoader)
        kwargs.setdefault("iterator_valid", BatchLoader)
        super().__init__(**kwargs)
        for name, default in (("history_", None), ("initialized_", False)):
            if self.__dict__.get(name, default) is default:
                self.__dict__.pop(name, None)
        if not self.__dict__.get("virtual_params_", True):
            del self.__dict__["virtual_params_"]

    def get_params(self, deep=True, **kwargs):
        params = super().get_params(deep=deep, **kwargs)
        return {k: v for k, v in params.items() if not k.startswith("_")}  # skorch internals

    def set_params(self, **kwargs):
        if "callbacks" in kwargs and not self.initialized_:
            # skorch builds callbacks on set_params; like every parameter, check them at fit
            self.__dict__["callbacks"] = kwargs.pop("callbacks")
        return super().set_params(**kwargs)

    def _validate_params(self) -> None:
        # skorch would read augment_strength as a misspelt augment__strength
        self._params_to_validate = set(self._params_to_validate) - set(FINE_TUNE_PARAMS)
        super()._validate_params()

    def get_default_callbacks(self):
        quiet = [(n, cb) for n, cb in super().get_default_callbacks() if not _is_print_log(cb)]
        return [*quiet, ("freeze_schedule", FreezeSchedule()), ("epoch_log", EpochLog())]

    # -- data ----------------------------------------------------------------

    def _adapt_X(self, X: Any, fitting: bool) -> torch.Tensor:
        if X is None:
            raise ValueError("X is None")
        if isinstance(X, torch.utils.data.Dataset) and not fitting:
            return X  # skorch's own validation scoring hands back our adapted data
        spec = self.backbone_spec_
        adapter = spec.adapter or self.input_kind_.adapter
        Xt = adapter(X, image_size=self.image_size or spec.default_image_size)
        shape = tuple(Xt.shape[1:])
        if fitting:
            self.input_shape_ = shape
            if self.input_kind_.name == "tabular":
                self.n_features_in_ = shape[0]
        elif shape != self.input_shape_:
            name = type(self).__name__
            if self.input_kind_.name == "tabular":
                raise ValueError(
                    f"X has {shape[0]} features, but {name} is expecting "
                    f"{self.input_shape_[0]} features as input."
                )
            raise ValueError(
                f"X has input shape {shape} after adaptation, but {name} was "
                f"fitted on {self.input_shape_} (channels must match)"
            )
        return Xt

    def _prepare_X(self, X: Any, y: Any, initial: bool) -> torch.Tensor:
        """Check y is given, check parameters and look names up on a first fit, adapt X."""
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None"
            )
        if initial:
            found = check_params(self)
            self.backbone_spec_, self.input_kind_ = found.spec, found.input_kind
            self.freeze_policy_, self.augmenter_ = found.freeze_policy, found.augmenter
        Xt = self._adapt_X(X, fitting=initial)
        if len(Xt) != len(y):
            raise ValueError(
                f"X and y have different lengths: {len(Xt)} samples in X, {len(y)} in y"
            )
        return Xt

    # -- building ------------------------------------------------------------

    def initialize_module(self):
        spec = self.backbone_spec_
        self.module_ = build_network(spec, self.pretrained, self.input_shape_, self.n_outputs_)
        names = self.module_.group_names
        if self.frozen_depth == "all":
            self.frozen_depth_ = len(names)
        elif self.frozen_depth > len(names):
            raise ValueError(
                f"frozen_depth={self.frozen_depth} but backbone {spec.name!r} has "
                f"{len(names)} layer groups ({', '.join(names)}); use 0..{len(names)} or 'all'"
            )
        else:
            self.frozen_depth_ = int(self.frozen_depth)
        self.freeze_state_ = self.freeze_policy_(names, self.frozen_depth_, 0)
        self.module_.apply_freeze_state(self.freeze_state_)
        self.input_depth_, self.prefix_keys_ = 0, {}
        return self

    def initialize_optimizer(self, triggered_directly=None):
        kwargs = self.get_params_for("optimizer")
        lr = kwargs.pop("lr", self.lr)
        groups = param_groups(self.module_, lr, self.freeze_state_.lr_factors)
        self.optimizer_ = self.optimizer(groups, lr=lr, **kwargs)
        return self

    # -- training ------------------------------------------------------------

    def train_step_single(self, batch, **fit_params):
        """Augment the training batch on the device (targets too, for mixing augmenters).

        skorch calls this for training batches only: validation batches go
        through ``validation_step`` and predictions through ``evaluation_step``.
        """
        Xi, yi = batch
        strength, aug = float(self.augment_strength), self.augmenter_
        if strength > 0 and not self.input_depth_ and self.input_kind_.name in getattr(aug, 'input_kinds', ('image',)):  # MERGE
            Xi = to_tensor(Xi, device=self.device)
            if self.input_kind_.to_augmentable is not None:
                Xi = self.input_kind_.to_augmentable(Xi)
            if getattr(aug, 'mixes_targets', False):  # MERGE
                Xi, yi = aug(Xi, strength, self.aug_generator_, y=self._mixable_targets(yi))
            else:
                Xi = aug(Xi, strength, self.aug_generator_)
        return super().train_step_single((Xi, yi), **fit_params)

    def infer(self, x, **fit_params):
        """The module's output; ``input_depth_`` says which group ``x`` enters at."""
        x = to_tensor(x, device=self.device)
        return self.module_(x, start=self.input_depth_, **fit_params)

    def _run(self, Xt, yt, initialize: bool, epochs: int | None, **fit_params):
        step = 0 if initialize else len(self.history)
        with holding_resolved_device(self), seeded(self.random_state, step, self.device) as gen:
            self.aug_generator_ = gen
            try:
                if initialize:
                    self.initialize()
                n_epochs = self.max_epochs if epochs is None else epochs
                depth = self._cache_depth(len(self.history), n_epochs)
                with self._cached_input(Xt, depth) as feats:
                    NeuralNet.partial_fit(self, feats, yt, epochs=epochs, **fit_params)
            finally:
                self.aug_generator_ = None
        return self

    @contextlib.contextmanager
    def _cached_input(self, X: torch.Tensor, depth: int) -> Iterator[torch.Tensor]:
        """``X`` past the first ``depth`` groups (from the feature cache), entering there."""
        if not depth:
            yield X
            return
        key = self.prefix_keys_.get(depth)
        if key is None:  # once per freezing state, not once per partial_fit call
            key = self.prefix_keys_[depth] = model_key(self.module_, depth, self.device)
        size = max(self.batch_size if self.batch_size > 0 else len(X), 64)
        feats = feature_cache.features(self.module_, depth, X, self.device, size, key=key)
        self.input_depth_ = depth
        try:
            yield feats
        finally:
            self.input_depth_ = 0

    def _cache_depth(self, first_epoch: int, n_epochs: int) -> int:
        """Groups frozen in eval mode for this whole run when inputs repeat; 0: no caching."""
        if not (self.feature_cache and self.input_kind_.cacheable):
            return 0
        if float(self.augment_strength) > 0 and self.augment != "none":
            return 0
        names = self.module_.group_names
        return cacheable_depth(
            self.freeze_policy_, names, self.frozen_depth_, first_epoch, n_epochs
        )

    def fit(self, X, y, **fit_params):
        """Fine-tune for ``max_epochs`` epochs (from scratch unless ``warm_start``)."""
        initialize = not (self.warm_start and self.initialized_)
        Xt, yt = self._prepare(X, y, initial=initialize)
        return self._run(Xt, yt, initialize, None, **fit_params)

    def partial_fit(self, X, y, classes=None, **fit_params):
        """Train one more epoch (initializing on the first call)."""
        initialize = not self.initialized_
        Xt, yt = self._prepare(X, y, initial=initialize, classes=classes)
        return self._run(Xt, yt, initialize, 1, **fit_params)

    def initialize(self):
        if not hasattr(self, "backbone_spec_"):
            raise RuntimeError(f"{type(self).__name__} builds its module from data: call fit")
        with holding_resolved_device(self):
            return super().initialize()

    # -- predicting ----------------------------------------------------------

    def forward_iter(self, X, training=False, device="cpu"):
        with holding_resolved_device(self):
            depth = 0
            if not (training or self.input_depth_) and isinstance(X, torch.Tensor):
                if tuple(X.shape[1:]) == self.input_shape_:
                    depth = self._cache_depth(len(self.history), 1) and self.module_.frozen_prefix
            with self._cached_input(X, depth) as feats:
                yield from super().forward_iter(feats, training=training, device=device)

    def _forward_numpy(self, X) -> np.ndarray:
        self.check_is_fitted()
        Xt = self._adapt_X(X, fitting=False)
        views = n_tta_views(self.tta)
        with holding_resolved_device(self):
            if views <= 1 or self.input_kind_.name != "image":
                return NeuralNet.predict_proba(self, Xt)
            return predict_tta(self, Xt, views)

    def export_backbone(self) -> nn.Module:
        """The tuned backbone as its original architecture (torchvision's, timm's), on the CPU.

        A copy, in eval mode, under the architecture's own parameter names and
        with its classifier replaced by an identity: ``model(x)`` gives the
        features skft's head was trained on, for normalised input ``x``.
        """
        self.check_is_fitted()
        model = self.module_.original_model
        if model is None:
            raise ValueError(
                f"backbone {self.backbone_spec_.name!r} does not hand back an original "
                "architecture (its spec's build sets no BackboneParts.model)"
            )
        return copy.deepcopy(model).cpu().eval()

    # -- persistence and tags ------------------------------------------------

    def load_params(self, *args, **kwargs):
        with holding_resolved_device(self):
            super().load_params(*args, **kwargs)
        self.prefix_keys_ = {}  # new weights
        return self

    def save_params(self, *args, **kwargs):
        with holding_resolved_device(self):
            return super().save_params(*args, **kwargs)

    def __setstate__(self, state):
        raw = state.get("device")
        if raw == "auto":
            state["device"] = resolve_device(raw)
        super().__setstate__(state)
        if raw == "auto":
            self.__dict__["device"] = raw

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        try:
            kind = get_backbone(self.backbone).input_kind
        except (ValueError, TypeError):
            kind = "image"
        tags.input_tags.two_d_array = kind == "tabular"
        tags.input_tags.three_d_array = kind == "image"
        tags.input_tags.string = kind == "text"
        tags.non_deterministic = self.random_state is None
        return tags


def _is_print_log(cb: Any) -> bool:
    return isinstance(cb, PrintLog) or cb is PrintLog
