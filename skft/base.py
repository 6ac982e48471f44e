"""What both estimators add to skorch: plugins, data adapters, freezing, devices, seeds."""

from __future__ import annotations

import contextlib
import numbers
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from sklearn.utils import check_random_state
from skorch import NeuralNet
from torch import nn

from .augment import build_augmenter, n_tta_views, tta_views
from .cache import feature_cache
from .data import BatchLoader, ShuffledBatchLoader, adapt_images, adapt_tabular, as_float_images
from .network import FineTuneModule, Normalize
from .plugins import freezers, get_backbone, instantiate
from .specs import BackboneSpec
from .weights import adapt_input_channels

__all__ = ["FineTuneMixin", "resolve_device"]

_ADAPTERS = {"image": adapt_images, "tabular": adapt_tabular}


def resolve_device(device: Any) -> Any:
    """``"auto"`` becomes ``"cuda"`` when CUDA is available, else ``"cpu"``."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


class FineTuneMixin:
    """What both estimators add to skorch: plugins, data adapters, freezing, augmentation."""

    prefixes_ = [*NeuralNet.prefixes_, "freeze", "augment"]
    #: ``partial_fit`` trains exactly one epoch (skorch's trains ``max_epochs``):
    #: :class:`skft.OptunaSearch` trains CV folds in lockstep only when this is true.
    partial_fit_is_one_epoch = True
    _own_params = (
        "backbone",
        "pretrained",
        "frozen_depth",
        "freeze",
        "augment",
        "augment_strength",
        "image_size",
        "random_state",
        "tta",
        "feature_cache",
    )

    def _init_fine_tune_params(
        self,
        backbone,
        pretrained,
        frozen_depth,
        freeze,
        augment,
        augment_strength,
        image_size,
        random_state,
        tta=False,
        feature_cache=True,
    ) -> None:
        self.backbone = backbone
        self.pretrained = pretrained
        self.frozen_depth = frozen_depth
        self.freeze = freeze
        self.augment = augment
        self.augment_strength = augment_strength
        self.image_size = image_size
        self.random_state = random_state
        self.tta = tta
        self.feature_cache = feature_cache

    # ------------------------------------------------------------------
    # validation: names to objects, before any training
    # ------------------------------------------------------------------

    def _check_params(self) -> None:
        strength = self.augment_strength
        if (
            isinstance(strength, bool)
            or not isinstance(strength, numbers.Real)
            or not 0.0 <= float(strength) <= 1.0
        ):
            raise ValueError(f"augment_strength must be a float in [0, 1], got {strength!r}")
        depth = self.frozen_depth
        if not (
            depth == "all"
            or (isinstance(depth, numbers.Integral) and not isinstance(depth, bool) and depth >= 0)
        ):
            raise ValueError(f"frozen_depth must be an int >= 0 or 'all', got {depth!r}")
        if not isinstance(self.pretrained, (bool, str, os.PathLike)):
            raise TypeError(
                "pretrained must be True, False or a path to a state-dict file, "
                f"got {type(self.pretrained).__name__}"
            )
        size = self.image_size
        if size is not None and (not isinstance(size, numbers.Integral) or size < 8):
            raise ValueError(f"image_size must be None or an int >= 8, got {size!r}")
        module_params = sorted(k for k in vars(self) if k.startswith("module__"))
        if module_params:
            raise ValueError(
                f"{module_params}: skft builds the module from backbone=; "
                "module__* parameters are not used"
            )

        spec = get_backbone(self.backbone)
        if self.pretrained is True and not spec.has_pretrained:
            raise ValueError(
                f"backbone {spec.name!r} has no pretrained weights; use pretrained=False"
            )
        policy = instantiate(
            freezers().get(self.freeze),
            self.get_params_for("freeze"),
            f"freeze={self.freeze!r}",
            "freeze__",
        )
        augmenter = build_augmenter(self.augment, self.get_params_for("augment"))
        if n_tta_views(self.tta) > 1 and spec.input_kind != "image":
            raise ValueError(
                f"tta={self.tta!r} needs image input; {spec.name!r} takes {spec.input_kind}"
            )
        kinds = getattr(augmenter, "input_kinds", ("image",))
        if spec.input_kind not in kinds and float(strength) > 0:
            raise ValueError(
                f"augment={self.augment!r} works on {'/'.join(kinds)} input but "
                f"backbone {spec.name!r} takes {spec.input_kind} input; "
                "use augment='none' or augment_strength=0"
            )
        self.backbone_spec_: BackboneSpec = spec
        self.freeze_policy_ = policy
        self.augmenter_ = augmenter

    def get_params(self, deep=True, **kwargs):
        params = super().get_params(deep=deep, **kwargs)
        return {k: v for k, v in params.items() if not k.startswith("_")}  # skorch internals

    def _validate_params(self) -> None:
        # skorch would read augment_strength as a misspelt augment__strength
        self._params_to_validate = set(self._params_to_validate) - set(self._own_params)
        super()._validate_params()

    # ------------------------------------------------------------------
    # data
    # ------------------------------------------------------------------

    def _adapt_X(self, X: Any, fitting: bool) -> torch.Tensor:
        spec = self.backbone_spec_
        adapter = spec.adapter or _ADAPTERS.get(spec.input_kind)
        if adapter is None:
            raise ValueError(
                f"backbone {spec.name!r} takes {spec.input_kind!r} input but "
                "its spec names no adapter"
            )
        if X is None:
            raise ValueError("X is None")
        if isinstance(X, torch.utils.data.Dataset) and not fitting:
            return X  # skorch's own validation scoring hands back our adapted data
        size = self.image_size or spec.default_image_size
        Xt = adapter(X, image_size=size)
        shape = tuple(Xt.shape[1:])
        if fitting:
            self.input_shape_ = shape
            if spec.input_kind == "tabular":
                self.n_features_in_ = shape[0]
        elif shape != self.input_shape_:
            name = type(self).__name__
            if spec.input_kind == "tabular":
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
        """Check y is given, validate parameters on a first fit, adapt X."""
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None"
            )
        if initial:
            self._check_params()
        return self._adapt_X(X, fitting=initial)

    @staticmethod
    def _check_lengths(Xt: torch.Tensor, y: np.ndarray) -> None:
        if len(Xt) != len(y):
            raise ValueError(
                f"X and y have different lengths: {len(Xt)} samples in X, {len(y)} in y"
            )

    # ------------------------------------------------------------------
    # skorch: building the module and optimizer
    # ------------------------------------------------------------------

    def initialize_module(self):
        spec = self.backbone_spec_
        parts = spec.build(self.pretrained, self.input_shape_)
        n_groups = len(parts.groups)
        if self.frozen_depth == "all":
            self.frozen_depth_ = n_groups
        elif self.frozen_depth > n_groups:
            names = ", ".join(name for name, _ in parts.groups)
            raise ValueError(
                f"frozen_depth={self.frozen_depth} but backbone {spec.name!r} has "
                f"{n_groups} layer groups ({names}); use 0..{n_groups} or 'all'"
            )
        else:
            self.frozen_depth_ = int(self.frozen_depth)
        if spec.input_kind == "image":
            channels = self.input_shape_[0]
            adapt_input_channels([module for _, module in parts.groups], channels)
            preprocess: nn.Module = Normalize(spec.mean, spec.std, channels)
        else:
            preprocess = nn.Identity()
        make_head = spec.make_head or nn.Linear
        head = make_head(parts.feature_dim, self.n_outputs_)
        self.module_ = FineTuneModule(parts, head, preprocess)
        self.freeze_state_ = self.freeze_policy_(self.module_.group_names, self.frozen_depth_, 0)
        self.module_.apply_freeze_state(self.freeze_state_)
        return self

    def initialize_optimizer(self, triggered_directly=None):
        kwargs = self.get_params_for("optimizer")
        lr = kwargs.pop("lr", self.lr)
        module = self.module_
        param_groups = []
        named = zip(module.group_names, module.groups, self.freeze_state_.lr_factors)
        for name, group, factor in named:
            params = list(group.parameters())
            if params:
                param_groups.append(
                    {"params": params, "lr": lr * factor, "lr_factor": factor, "name": name}
                )
        param_groups.append(
            {"params": list(module.head.parameters()), "lr": lr, "lr_factor": 1.0, "name": "head"}
        )
        self.optimizer_ = self.optimizer(param_groups, lr=lr, **kwargs)
        return self

    def on_epoch_begin(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        super().on_epoch_begin(net, dataset_train, dataset_valid, **kwargs)
        state = self.freeze_policy_(
            self.module_.group_names, self.frozen_depth_, len(self.history) - 1
        )
        if state != self.freeze_state_:
            self.module_.apply_freeze_state(state)
            factors = dict(zip(self.module_.group_names, state.lr_factors))
            for group in self.optimizer_.param_groups:
                new = factors.get(group.get("name"), 1.0)
                if new != group["lr_factor"]:
                    group["lr"] *= new / group["lr_factor"]
                    group["lr_factor"] = new
            self.freeze_state_ = state

    def train_step_single(self, batch, **fit_params):
        """Augment the training batch on the device (targets too, for mixing augmenters).

        skorch calls this for training batches only: validation batches go
        through ``validation_step`` and predictions through ``evaluation_step``.
        """
        Xi, yi = batch
        strength = float(self.augment_strength)
        aug = self.augmenter_
        kind = self.backbone_spec_.input_kind
        if (
            strength > 0
            and isinstance(Xi, torch.Tensor)
            and kind in getattr(aug, "input_kinds", ("image",))
            and not getattr(self.module_, "input_depth", 0)  # cached features: not images
        ):
            Xi = Xi.to(self.device)
            if kind == "image":
                Xi = as_float_images(Xi)
            if getattr(aug, "mixes_targets", False):
                Xi, yi = aug(Xi, strength, self.aug_generator_, y=self._mixable_targets(yi))
            else:
                Xi = aug(Xi, strength, self.aug_generator_)
        return super().train_step_single((Xi, yi), **fit_params)

    # ------------------------------------------------------------------
    # fitting: devices and seeds
    # ------------------------------------------------------------------

    @contextlib.contextmanager
    def _on_device(self) -> Iterator[None]:
        """Hold the resolved device in ``self.device`` while skorch code runs."""
        raw = self.__dict__.get("device")
        resolved = resolve_device(raw)
        if resolved == raw:
            yield
            return
        self.__dict__["device"] = resolved
        try:
            yield
        finally:
            self.__dict__["device"] = raw

    @contextlib.contextmanager
    def _seeded(self, step: int) -> Iterator[None]:
        """Make one fit call repeatable under ``random_state`` without touching global RNGs."""
        device = torch.device(resolve_device(self.device) or "cpu")
        if self.random_state is None:
            seed = None
            ctx: contextlib.AbstractContextManager = contextlib.nullcontext()
        else:
            base = self.random_state
            if not isinstance(base, numbers.Integral):
                base = check_random_state(base).randint(2**31 - 1)
            seed = int(np.random.SeedSequence([int(base), step]).generate_state(1)[0])
            devices = [device.index or 0] if device.type == "cuda" else []
            ctx = torch.random.fork_rng(devices=devices)
        with ctx:
            if seed is not None:
                torch.manual_seed(seed)
            gen = torch.Generator(device=device)
            gen.manual_seed(int(torch.randint(2**62, (1,))))
            self.aug_generator_ = gen
            try:
                yield
            finally:
                self.aug_generator_ = None

    def _run(
        self, Xt: torch.Tensor, yt: torch.Tensor, initialize: bool, epochs: int | None, **fit_params
    ):
        step = 0 if initialize else len(self.history)
        with self._on_device(), self._seeded(step):
            if initialize:
                self.initialize()
            n_epochs = self.max_epochs if epochs is None else epochs
            depth = self._cache_depth(len(self.history), n_epochs)
            if not depth:
                NeuralNet.partial_fit(self, Xt, yt, epochs=epochs, **fit_params)
                return self
            with self._cached_input(Xt, depth) as feats:
                NeuralNet.partial_fit(self, feats, yt, epochs=epochs, **fit_params)
        return self

    @contextlib.contextmanager
    def _cached_input(self, X: torch.Tensor, depth: int) -> Iterator[torch.Tensor]:
        """The first ``depth`` groups' output for ``X`` (from the cache), fed past those groups."""
        size = self.batch_size if self.batch_size and self.batch_size > 0 else len(X)
        feats = feature_cache.features(self.module_, depth, X, self.device, max(size, 64))
        module = self.module_
        module.input_depth, module.feature_shape = depth, tuple(feats.shape[1:])
        try:
            yield feats
        finally:
            module.input_depth = 0

    def _cache_depth(self, first_epoch: int, n_epochs: int) -> int:
        """Leading groups frozen and in eval mode in every epoch of this run, when inputs repeat.

        0 when the cache is off or augmentation changes the inputs between epochs.
        """
        if not self.feature_cache:
            return 0
        if float(self.augment_strength) > 0 and self.augment != "none":
            return 0
        names = self.module_.group_names
        depth = len(names)
        for epoch in range(first_epoch, first_epoch + max(int(n_epochs), 1)):
            state = self.freeze_policy_(names, self.frozen_depth_, epoch)
            k = 0
            while k < depth and not state.trainable[k] and state.eval_mode[k]:
                k += 1
            depth = k
            if depth == 0:
                break
        return depth

    def fit(self, X, y, **fit_params):
        """Fine-tune for ``max_epochs`` epochs (from scratch unless ``warm_start``)."""
        initialize = not (self.warm_start and getattr(self, "initialized_", False))
        Xt, yt = self._prepare(X, y, initial=initialize)
        return self._run(Xt, yt, initialize, None, **fit_params)

    def partial_fit(self, X, y, classes=None, **fit_params):
        """Train one more epoch (initializing on the first call)."""
        initialize = not getattr(self, "initialized_", False)
        Xt, yt = self._prepare(X, y, initial=initialize, classes=classes)
        return self._run(Xt, yt, initialize, 1, **fit_params)

    def initialize(self):
        if not hasattr(self, "backbone_spec_"):
            raise RuntimeError(f"{type(self).__name__} builds its module from data: call fit")
        with self._on_device():
            return super().initialize()

    def forward_iter(self, X, training=False, device="cpu"):
        with self._on_device():
            module = getattr(self, "module_", None)
            depth = module.frozen_prefix if isinstance(module, FineTuneModule) else 0
            if (
                training
                or not depth
                or not self.feature_cache
                or module.input_depth  # already features: a scoring callback inside fit
                or not isinstance(X, torch.Tensor)
                or tuple(X.shape[1:]) != tuple(getattr(self, "input_shape_", ()))
            ):
                yield from super().forward_iter(X, training=training, device=device)
                return
            # the frozen prefix has not changed since fit: reuse (or fill) the feature cache
            with self._cached_input(X, depth) as feats:
                yield from super().forward_iter(feats, training=training, device=device)

    def _forward_numpy(self, X) -> np.ndarray:
        self.check_is_fitted()
        Xt = self._adapt_X(X, fitting=False)
        views = n_tta_views(self.tta)
        with self._on_device():
            if views <= 1 or self.backbone_spec_.input_kind != "image":
                return NeuralNet.predict_proba(self, Xt)
            return self._predict_tta(Xt, views)

    def _predict_tta(self, Xt: torch.Tensor, views: int) -> np.ndarray:
        """Mean of the predict nonlinearity's output (softmax: probabilities) over the views."""
        nonlin = self._get_predict_nonlinearity()
        out = []
        for batch in self.get_iterator(self.get_dataset(Xt), training=False):
            Xi = as_float_images(batch[0].to(self.device))
            total = None
            for view in tta_views(Xi, views):
                pred = nonlin(self.evaluation_step((view, None), training=False))
                total = pred if total is None else total + pred
            out.append((total / views).detach().cpu().numpy())
        return np.concatenate(out, 0)

    def load_params(self, *args, **kwargs):
        with self._on_device():
            return super().load_params(*args, **kwargs)

    def save_params(self, *args, **kwargs):
        with self._on_device():
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


def skorch_defaults(kwargs: dict[str, Any]) -> dict[str, Any]:
    kwargs.setdefault("iterator_train", ShuffledBatchLoader)
    kwargs.setdefault("iterator_valid", BatchLoader)
    return kwargs
