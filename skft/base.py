"""What both estimators add to skorch, as a short list of skorch overrides.

Parameters: :mod:`skft.params.checks` and :mod:`skft.params.defaults`; network
:mod:`skft.network`; from
:mod:`skft.training`: seeds (``seeding``), freezing, output (``progress``), ``cache`` and the
speed paths (precision, channels-last, resident data, compile) :mod:`skft.training.speed`.
"""

from __future__ import annotations

import copy
import difflib
import functools
import inspect
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
from sklearn.base import is_classifier
from skorch import NeuralNet

from .augment import augment_batch
from .data.adapters import (
    BatchLoader,
    ShuffledBatchLoader,
    adapt_input,
    sample_lengths,
    set_input_tags,
)
from .io.persist import save as save_model
from .network import build_network, export_backbone, param_groups
from .params.checks import FINE_TUNE_PARAMS, check_params, resolve_frozen_depth, skorch_params
from .params.defaults import effective, held_values
from .params.plan import DataProfile, plan_fit
from .params.setup import decide
from .plugins import before_epochs
from .search.cluster import check_copyable, check_picklable, dask_backend_active
from .specs import AdaptsModule
from .training.cache import cache_depth, fixed_prefix, model_key, prefix_features
from .training.checkpoint import EpochCheckpoint, checkpoint_path, read_checkpoint
from .training.cpu_memory import keep_freed_memory
from .training.device import unpickling_device
from .training.early_stopping import stopping_record, validation_split
from .training.faults import out_of_memory_hint
from .training.progress import default_callbacks
from .training.seeding import seeded
from .training.speed import SpeedMixin
from .training.tta import n_tta_views, predict_tta

__all__ = ["FineTuneMixin"]


#: Prefixes of the plugin objects' parameters (``freeze__*``, ``augment__*``, ``head__*``).
PLUGIN_PREFIXES = ("freeze", "augment", "head")


def _is_own(key: str, own: tuple[str, ...]) -> bool:
    """``key`` is one of skft's parameters, or a plugin object's (``freeze__r``)."""
    return key in own or ("__" in key and key.split("__", 1)[0] in PLUGIN_PREFIXES)


#: skorch's components whose parameters go by ``name__`` (added to ``prefixes_`` at fit).
COMPONENTS = ("module", "criterion", "optimizer")


@functools.cache
def _init_names(cls: type) -> frozenset[str]:
    """Every ``__init__`` argument name along ``cls``'s MRO (skorch's classifier adds
    ``classes``; ``kwargs`` too: scikit-learn's checks set every name of ``__init__``)."""
    return frozenset(
        name
        for base in cls.__mro__
        if "__init__" in vars(base) and base is not object
        for name in inspect.signature(base.__init__).parameters
        if name != "self"
    )


def _misspelt(estimator: Any, keys: Any) -> None:
    """Refuse a top-level name that is no parameter, naming the close ones.

    skorch's own message names no close parameter for ``lrr`` and, for
    ``augment_strenght``, suggests the plugin parameter ``augment__strenght``; here the
    estimator's parameters are offered first, then the ``prefix__`` form."""
    known = _init_names(type(estimator))
    for key in sorted(keys):
        if "__" in key or key.endswith("_") or key in known:
            continue
        prefixes = sorted({*estimator.prefixes_, *COMPONENTS}, key=len, reverse=True)
        prefix = next((p for p in prefixes if key.startswith(p + "_")), None)
        close = difflib.get_close_matches(key, sorted(known - {prefix}), n=2, cutoff=0.8)
        if prefix is not None:
            close.append(f"{prefix}__{key[len(prefix) :].lstrip('_')}")
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(
            f"Invalid parameter {key!r} for {type(estimator).__name__}{hint} (its parameters: "
            "get_params(); a plugin's: freeze__*, augment__*, head__*)"
        )


class FineTuneMixin(SpeedMixin):
    """What both estimators add to skorch: plugins, data adapters, freezing, augmentation."""

    prefixes_ = [*NeuralNet.prefixes_, *PLUGIN_PREFIXES]
    #: ``partial_fit`` trains exactly one epoch (skorch's trains ``max_epochs``):
    #: :class:`skft.OptunaSearch` trains CV folds in lockstep only when this is true.
    partial_fit_is_one_epoch = True
    own_params = FINE_TUNE_PARAMS  # skft's parameters; skorch gets the rest
    # skorch sets these in __init__; scikit-learn wants only parameters there
    history_ = None
    initialized_ = False
    virtual_params_ = MappingProxyType({})

    def _init_params(self, init_locals: dict[str, Any]) -> None:
        """Store an ``__init__``'s arguments: skft's own here, the rest through skorch's."""
        defaults = {"iterator_train": ShuffledBatchLoader, "iterator_valid": BatchLoader}
        super().__init__(**{**defaults, **skorch_params(init_locals, self.own_params)})
        for name in self.own_params:
            setattr(self, name, init_locals[name])
        for name in ("history_", "initialized_", "virtual_params_"):  # unset: the class's
            if not self.__dict__.get(name, True):
                del self.__dict__[name]

    def get_params(self, deep=True, **kwargs):
        params = super().get_params(deep=deep, **kwargs)
        return {k: v for k, v in params.items() if not k.startswith("_")}  # skorch internals

    def __sklearn_clone__(self):
        """scikit-learn's clone; a parameter that cannot be copied, or pickled for the Dask
        workers of a search, is named before any fit starts (:mod:`skft.search.cluster`)."""
        try:
            clone = super().__sklearn_clone__()
        except (TypeError, copy.Error) as exc:
            check_copyable(self, exc)
            raise
        if dask_backend_active():
            check_picklable(clone)
        return clone

    def set_params(self, **kwargs):
        """scikit-learn's ``set_params``; skft's own parameters (``augment_strength``,
        ``head``, ``freeze__r``, ...) are stored as they are and apply at the next fit
        (skorch would try to re-initialize a component named like their prefix)."""
        if "callbacks" in kwargs and not self.initialized_:
            # skorch builds callbacks on set_params; like every parameter, check them at fit
            self.__dict__["callbacks"] = kwargs.pop("callbacks")
        for key in [k for k in kwargs if _is_own(k, self.own_params)]:
            setattr(self, key, kwargs.pop(key))
        _misspelt(self, kwargs)  # skorch would store "augment_strenght" for a component
        return super().set_params(**kwargs) if kwargs else self

    def _validate_params(self) -> None:
        # skorch would read augment_strength as a misspelt augment__strength
        self._params_to_validate = set(self._params_to_validate) - set(self.own_params)
        _misspelt(self, self._params_to_validate)
        super()._validate_params()

    def get_default_callbacks(self):
        return default_callbacks(self, super().get_default_callbacks())

    def get_split_datasets(self, X, y=None, **fit_params):
        split = validation_split(self)  # early stopping's, when the user gave none
        if split is None:
            return super().get_split_datasets(X, y, **fit_params)
        return split(self.get_dataset(X, y), y)

    def _prepare_X(self, X: Any, y: Any, initial: bool) -> torch.Tensor:
        """Check parameters and look names up on a first fit; adapt X (see ``adapt_input``)."""
        if initial and y is not None and "fit_plan_" not in self.__dict__:
            self._plan(X, y)  # called without fit (fit plans before holding the values)
        if initial and y is not None and self.lr == "find":
            from .training.lr_finder import lr_find

            self.lr_found_ = lr_find(self, X, y).suggestion
        Xt = adapt_input(self, X, fitting=initial, y=y)
        if initial:
            self.input_shape_, self.n_samples_fit_ = tuple(Xt.shape[1:]), len(Xt)
            if self.input_kind_.name == "tabular":
                self.n_features_in_ = self.input_shape_[0]
        return Xt

    def initialize_module(self):
        spec = self.backbone_spec_
        args = (self.pretrained, self.input_shape_, self.n_outputs_, self.head_factory_)
        self.module_ = build_network(spec, *args)
        names = self.module_.group_names
        self.frozen_depth_ = resolve_frozen_depth(self.frozen_depth, names, spec.name)
        if isinstance(self.freeze_policy_, AdaptsModule):  # adapters (LoRA, ...): new layers
            self.freeze_policy_.adapt(self.module_.groups, names, self.frozen_depth_)
        self.freeze_state_ = self.freeze_policy_(names, self.frozen_depth_, 0)
        self.module_.apply_freeze_state(self.freeze_state_)
        self.input_depth_, self.prefix_keys_ = 0, {}
        return self

    def initialize_optimizer(self, triggered_directly=None):
        kwargs = self.get_params_for("optimizer")
        lr = kwargs.pop("lr", self.lr_found_ if self.lr == "find" else effective(self, "lr"))
        groups = param_groups(self.module_, lr, self.freeze_state_.lr_factors)
        self.optimizer_ = self.optimizer(groups, lr=lr, **kwargs)
        return self

    def change_freeze_state(self, state) -> None:
        """Apply a freezing policy's new ``state`` during a fit (:class:`FreezeSchedule`).

        Trainable flags and BatchNorm modes go to the module; learning-rate factors to
        the optimizer's per-group rates (the optimizer is built once, so groups keep their
        state when the policy unfreezes more of them); cached prefix features are dropped.
        """
        module = getattr(self.module_, "module", self.module_)  # inside DistributedDataParallel
        module.apply_freeze_state(state)
        factors = dict(zip(module.group_names, state.lr_factors))
        for group in self.optimizer_.param_groups:
            new = factors.get(group.get("name"), group["lr_factor"])  # the head keeps its own
            if new != group["lr_factor"]:
                group["lr"] *= new / group["lr_factor"]
                group["lr_factor"] = new
        self.freeze_state_ = state
        self.drop_cached_features()  # weights that were frozen may train now

    @contextmanager
    def holding_resolved(self):
        """Hold the resolved device and the fit plan's values in the parameters that are
        ``"auto"`` or ``None`` while skorch code runs (it reads ``self.device``,
        ``self.lr``, ``self.batch_size``, ...); the parameters get theirs back on exit, so
        ``get_params``, ``clone`` and pickles stay data-independent. Reentrant: the
        outermost entry decides the setup (``setup_``) that the inner code reads.
        """
        depth = self.__dict__.get("_holding_depth", 0)
        held = held_values(self)
        if str(held.get("device", self.__dict__.get("device"))).startswith("cpu"):
            keep_freed_memory()  # once per process: activations reuse freed memory
        saved = {name: self.__dict__[name] for name in held}
        self.__dict__.update(held)
        self.__dict__["_holding_depth"] = depth + 1
        try:
            if depth == 0:  # the outermost entry decides (skft.params.setup)
                self._decide()
            yield self
        finally:
            self.__dict__.update(saved)
            if depth:
                self.__dict__["_holding_depth"] = depth
            else:
                del self.__dict__["_holding_depth"]

    def _decide(self) -> Any:
        """Decide what this fit or prediction does (:class:`~skft.params.setup.FitSetup`),
        from the parameters as held now and the fitted objects: ``setup_``."""
        setup = decide(self)
        if setup is not None:
            self.setup_ = setup
        return setup

    def drop_cached_features(self) -> None:
        """Forget the frozen prefix's cached features (its weights or statistics changed)."""
        self.prefix_keys_ = {}

    def prefix_key(self, depth: int) -> str:
        """The frozen-feature cache's content key of the first ``depth`` groups: computed
        once per freezing state and weights (:meth:`drop_cached_features` forgets it)."""
        key = self.prefix_keys_.get(depth)
        if key is None:
            key = self.prefix_keys_[depth] = model_key(self.module_, depth, self.device)
        return key

    @contextmanager
    def recovering(self, epochs: int, unfreeze: bool = False, extra_loss: Any = None):
        """Ready for ``epochs`` of re-tuning after the network changed (pruning); restored
        on exit.

        The ``lr_schedule`` runs afresh over those epochs (``schedule_span_``, read by
        :class:`skft.training.schedule.LRSchedule`); ``unfreeze`` trains every group
        (pruned frozen groups re-tuned), and the estimator's freezing applies again on
        exit; ``extra_loss(self, loss, y_pred, X)`` changes each training batch's loss
        (:class:`skft.deploy.pruning.Distillation`). The optimizer is rebuilt (new
        parameters) and the cached prefix features dropped (new weights).
        """
        depth, state = self.frozen_depth_, self.freeze_state_
        if unfreeze:
            self.frozen_depth_ = 0
            self.freeze_state_ = self.freeze_policy_(self.module_.group_names, 0, 0)
        self.module_.apply_freeze_state(self.freeze_state_)  # the pruner turned grads on
        self.initialize_optimizer()
        self.drop_cached_features()
        self.schedule_span_ = (len(self.history), epochs)
        self.extra_loss_ = extra_loss
        try:
            yield self
        finally:
            del self.schedule_span_
            self.extra_loss_ = None
            self.frozen_depth_, self.freeze_state_ = depth, state
            self.module_.apply_freeze_state(state)

    def get_loss(self, y_pred, y_true, X=None, training=False):
        """skorch's loss; during :meth:`recovering`, changed by its ``extra_loss``."""
        loss = super().get_loss(y_pred, y_true, X=X, training=training)
        extra = self.__dict__.get("extra_loss_")
        if extra is None or not training or X is None:
            return loss
        return extra(self, loss, y_pred, X)

    def train_step_single(self, batch, **fit_params):
        """Augment the training batch on the device (skorch: training batches only)."""
        return super().train_step_single(augment_batch(self, batch), **fit_params)

    def infer(self, x, **fit_params):
        """The module's output; ``input_depth_`` says where ``x`` enters (training.speed)."""
        return self._run_module(x, **fit_params)

    def _run(self, Xt, yt, initialize: bool, epochs: int | None, **fit_params):
        step = 0 if initialize else len(self.history)
        with self.holding_resolved(), out_of_memory_hint(self):
            with seeded(self.random_state, step, self.device) as gen:
                self.aug_generator_ = gen
                try:
                    if initialize:
                        self.initialize()
                    n_epochs = self.max_epochs if epochs is None else epochs
                    if epochs is None and self.checkpoint:  # a whole fit: resumable
                        n_epochs -= self._resume_from_checkpoint(Xt, yt)
                    if initialize and not len(self.history):  # built now, not resumed
                        before_epochs(self, Xt, yt)  # plugins' stages (hookspecs.before_epochs)
                        self.drop_cached_features()  # a stage may have trained the prefix
                    depth = cache_depth(self, len(self.history), n_epochs)
                    with self._cached_input(Xt, depth) as feats:
                        NeuralNet.partial_fit(self, feats, yt, epochs=n_epochs, **fit_params)
                finally:
                    self.aug_generator_ = None
        return self

    @contextmanager
    def _cached_input(self, X, depth: int):
        """``X`` past the first ``depth`` groups (from the feature cache), entering the module
        there: ``input_depth_`` says where while the context is open (see ``infer``).

        Variable-length input (text) also gets each sample's length, computed here on the
        host, for the batch loader to trim batches by (see :meth:`get_dataset`).
        """
        if getattr(self, "input_depth_", 0):  # inside a run on cached features: X is those
            yield X
            return
        if not isinstance(X, torch.Tensor):  # streamed files: no cache
            depth = 0
        lengths = sample_lengths(self.input_kind_, X)
        feats = prefix_features(self, X, depth, lengths) if depth else X
        axis = self.input_kind_.feature_length_axis if depth else -1
        outer = self.__dict__.get("_host_lengths")
        self.input_depth_ = depth
        self.__dict__["_host_lengths"] = None if lengths is None else (lengths, axis)
        try:
            yield feats
        finally:
            self.input_depth_ = 0
            self.__dict__["_host_lengths"] = outer

    def get_dataset(self, X, y=None):
        """skorch's dataset; for variable-length input, with each sample's length on the host
        (``sample_lengths``, ``length_axis``): :class:`BatchLoader` trims batches by them."""
        dataset = super().get_dataset(X, y)
        lengths = self.__dict__.get("_host_lengths")
        if lengths is not None and len(lengths[0]) == len(dataset):
            dataset.sample_lengths, dataset.length_axis = lengths
        return dataset

    def _resume_from_checkpoint(self, Xt, yt) -> int:
        """Save this fit's epochs under ``checkpoint`` and resume it; the epochs already done."""
        path = checkpoint_path(self, Xt, yt)
        self.callbacks_ = [(n, cb) for n, cb in self.callbacks_ if n != "checkpoint"]
        self.callbacks_.append(("checkpoint", EpochCheckpoint(path)))
        state = read_checkpoint(path, self.device)
        if state is None:
            return 0
        self.module_.load_state_dict(state["module"])
        self.optimizer_.load_state_dict(state["optimizer"])
        self.history_ = state["history"]
        torch.set_rng_state(state["torch_rng"].cpu())
        if state["aug_rng"] is not None and self.aug_generator_ is not None:
            self.aug_generator_.set_state(state["aug_rng"])
        self.drop_cached_features()
        return len(self.history)

    def _plan(self, X, y) -> None:
        """Check every parameter, then resolve the ``None`` ones from the data (``fit_plan_``).

        The parameters are checked (and their names looked up) before the data is
        read; the plan (:func:`skft.params.plan.plan_fit`) reads only its shape, sizes and
        labels. The augmenter is built after it, from the planned ``augment``.
        """
        self.__dict__.pop("fit_plan_", None)  # a new fit: a new plan
        spec = check_params(self).spec
        profile = DataProfile.of(X, y, spec.input_kind, is_classifier(self))
        self.fit_plan_ = plan_fit(spec, profile, self.get_params(deep=False))
        for name, value in check_params(self).fitted_attributes().items():
            setattr(self, name, value)

    def _restore(self, plan: Any, saved: Any) -> None:
        """Become the fitted estimator a model folder describes, without data.

        ``plan``: the saved :class:`~skft.params.plan.FitPlan` (``None``: none saved);
        ``saved``: the folder's fitted values, decoded and checked by
        :mod:`skft.io.loader` (``SavedFit``). The loader reads; only the estimator sets its
        attributes, as a fit does.
        """
        if plan is not None:  # before check_params: the planned augment
            self.fit_plan_ = plan
        for name, value in check_params(self).fitted_attributes().items():
            setattr(self, name, value)  # lr="find" is not run again: its rate is saved
        self.input_shape_ = saved.input_shape
        self.lr_found_ = saved.lr_found
        if self.input_kind_.name == "tabular":
            self.n_features_in_ = self.input_shape_[0]
        if saved.classes is not None:
            self._set_classes(saved.classes)
            self.multilabel_ = saved.multilabel
        else:
            self.target_scaler_ = saved.target_scaler
            self.y_ndim_ = saved.y_ndim
            self.n_outputs_ = len(saved.target_scaler.mean_)

    @property
    def resolved_params_(self) -> dict[str, Any]:
        """The values the last fit used for the parameters skft resolves (``skft.params.plan``)."""
        plan = self.__dict__.get("fit_plan_")
        if plan is None:
            raise AttributeError("resolved_params_: call fit first")
        return dict(plan.values)

    def fit(self, X, y, **fit_params):
        """Fine-tune for ``max_epochs`` epochs (from scratch unless ``warm_start``)."""
        initialize = not (self.warm_start and self.initialized_)
        if initialize and y is not None:
            self._plan(X, y)
        with self.holding_resolved():  # None: the backbone's defaults (lr, batch_size, ...)
            Xt, yt = self._prepare(X, y, initial=initialize)
            return self._run(Xt, yt, initialize, None, **fit_params)

    def partial_fit(self, X, y, classes=None, **fit_params):
        """Train one more epoch (initializing on the first call)."""
        initialize = not self.initialized_
        if initialize and y is not None:
            self._plan(X, y)
        with self.holding_resolved():
            Xt, yt = self._prepare(X, y, initial=initialize, classes=classes)
            return self._run(Xt, yt, initialize, 1, **fit_params)

    def initialize(self):
        if not hasattr(self, "backbone_spec_"):
            raise RuntimeError(f"{type(self).__name__} builds its module from data: call fit")
        with self.holding_resolved():
            return super().initialize()

    def forward_iter(self, X, training=False, device="cpu"):
        with self.holding_resolved():
            depth = 0  # the fixed prefix's features for new raw input: from the cache
            if self.setup_.feature_cache and not self.input_depth_:
                if isinstance(X, torch.Tensor) and tuple(X.shape[1:]) == self.input_shape_:
                    depth = 0 if training else fixed_prefix(self.freeze_state_)
            with self._cached_input(X, depth) as feats:
                yield from super().forward_iter(feats, training=training, device=device)

    def _forward_numpy(self, X) -> np.ndarray:
        self.check_is_fitted()
        views = n_tta_views(self.tta)
        with self.holding_resolved():  # the planned image_size and batch_size
            Xt = adapt_input(self, X, fitting=False)
            if views <= 1 or self.input_kind_.name != "image":
                return NeuralNet.predict_proba(self, Xt)
            return predict_tta(self, Xt, views)

    @property
    def n_epochs_trained_(self) -> int:
        """Epochs trained since the module was built (``max_epochs`` unless stopped early)."""
        if not self.initialized_ or self.history_ is None:
            raise AttributeError("n_epochs_trained_: call fit first")
        return len(self.history)

    @property
    def validation_scores_(self) -> list[float | None]:
        """With early stopping: the held-out score of every epoch."""
        record = stopping_record(self)
        if record is None:
            raise AttributeError("validation_scores_: the last fit did not use early stopping")
        return record[0]

    @property
    def best_epoch_(self) -> int:
        """With early stopping: the epoch (1-based) whose weights the estimator keeps."""
        record = stopping_record(self)
        if record is None:
            raise AttributeError("best_epoch_: the last fit did not use early stopping")
        return record[1]

    export_backbone = export_backbone  # the tuned backbone as its original architecture

    def merge_adapters(self):
        """Fold the adapters of ``freeze="lora"`` (``"loha"``, ``"ia3"``) into the weights.

        Each adapted layer becomes its backbone's own ``nn.Linear``/``nn.Conv2d`` again,
        holding the merged weights (peft's ``merge``; predictions unchanged up to float
        rounding). The estimator then reads as a ``freeze="depth"`` fine-tune with the
        same ``frozen_depth``, ``bn`` and ``lr_decay``: further training fine-tunes the
        groups that were adapted, and ``save`` writes a full model. ``to_onnx`` and
        :class:`skft.Compressed` merge their own copies. Returns ``self``.
        """
        from .network import merge_adapters
        from .training.freezing import build_freezer

        self.check_is_fitted()
        module = getattr(self.module_, "module", self.module_)
        if merge_adapters(module) == 0:
            return self
        policy = self.freeze_policy_
        for name in [k for k in vars(self) if k.startswith("freeze__")]:
            delattr(self, name)
        params = {"bn": getattr(policy, "bn", "eval"), "lr_decay": getattr(policy, "lr_decay", 1.0)}
        self.freeze = "depth"
        for key, value in params.items():
            setattr(self, f"freeze__{key}", value)
        self.freeze_policy_ = build_freezer("depth", params)
        epoch = max(len(self.history) - 1, 0)
        self.freeze_state_ = self.freeze_policy_(module.group_names, self.frozen_depth_, epoch)
        module.apply_freeze_state(self.freeze_state_)
        self.initialize_optimizer()  # the adapters' parameters are gone
        self.drop_cached_features()
        return self

    def load_params(self, *args, **kwargs):
        with self.holding_resolved():
            super().load_params(*args, **kwargs)
        self.drop_cached_features()  # new weights
        return self

    save = save_model  # to a folder: safetensors + JSON (skft.io.persist; load: skft.io.loader)

    def __setstate__(self, state):
        with unpickling_device(state) as raw:
            super().__setstate__(state)
        if raw == "auto":
            self.__dict__["device"] = raw  # the parameter as it was set

    def __sklearn_tags__(self):
        tags = set_input_tags(super().__sklearn_tags__(), self.backbone)
        tags.non_deterministic = self.random_state is None
        return tags
