"""Contract checks for plugin authors: ``check_backbone``, ``check_freezer``, ``check_augmenter``;
``refuse_network(monkeypatch)`` makes a test prove that loading works offline.

Each raises ``AssertionError`` with a readable message on the first broken rule::

    from skft.testing import check_backbone
    def test_my_backbone():
        check_backbone("my_net", input_shape=(3, 32, 32))
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from .augment import AugmenterAdapter, as_augmenter, build_augmenter
from .plugins import get_backbone, input_kinds, instantiate
from .specs import BackboneParts, BackboneSpec, FreezeState
from .training.freezing import build_freezer

__all__ = ["check_augmenter", "check_backbone", "check_freezer", "refuse_network"]


def refuse_network(monkeypatch: Any) -> None:
    """Make every attempt to open a network connection fail (pytest's ``monkeypatch``)."""
    import socket

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def check_backbone(
    spec: str | BackboneSpec,
    input_shape: Sequence[int] | None = None,
    pretrained: Any = False,
    fit: bool = True,
) -> BackboneParts:
    """Build a backbone and check its parts; with ``fit=True``, fine-tune it for one epoch.

    The fit step runs an estimator with ``backbone=spec.name``, so the spec must be
    registered (or resolvable) under its name, and its input kind must be
    ``"image"`` or ``"tabular"`` (the kit makes random inputs of those); otherwise
    ``fit=True`` raises ``ValueError`` (pass ``fit=False`` to check the parts only).
    """
    spec = get_backbone(spec) if isinstance(spec, str) else spec
    assert isinstance(spec, BackboneSpec), f"{spec!r} is not a BackboneSpec"
    kinds = input_kinds()
    assert spec.input_kind in kinds, (
        f"unknown input_kind {spec.input_kind!r}; registered: {', '.join(kinds.names())}"
    )
    if fit:
        _check_fittable(spec)
    if input_shape is None:
        assert spec.input_kind == "image", "pass input_shape for non-image backbones"
        input_shape = (3, 32, 32)
    parts = spec.build(pretrained, tuple(input_shape))
    assert isinstance(parts, BackboneParts), f"build returned {type(parts).__name__}"
    names = [name for name, _ in parts.groups]
    assert names, "a backbone needs at least one layer group"
    assert len(set(names)) == len(names), f"group names repeat: {names}"
    assert all(isinstance(m, nn.Module) for _, m in parts.groups), "groups must be nn.Modules"
    assert not list(parts.neck.parameters()), "the neck must have no parameters"
    ids = [id(p) for _, m in parts.groups for p in m.parameters()]
    assert len(ids) == len(set(ids)), "a parameter belongs to two groups"
    if spec.input_kind == "image":
        assert len(spec.mean) == len(spec.std) == 3, "image specs give RGB mean and std"
        x = torch.rand(2, *input_shape)
        x = (x - torch.tensor(spec.mean).view(1, 3, 1, 1)) / torch.tensor(spec.std).view(1, 3, 1, 1)
    else:
        x = torch.randn(2, *input_shape)
    with torch.no_grad():
        for _, module in parts.groups:
            module.eval()
            x = module(x)
        out = parts.neck(x)
    assert tuple(out.shape) == (2, parts.feature_dim), (
        f"groups + neck give shape {tuple(out.shape)}, expected (2, {parts.feature_dim})"
    )
    assert torch.isfinite(out).all(), "features contain NaN or infinity"
    _check_picklable(spec, "backbone spec")
    if fit:
        _fit_once(spec, tuple(input_shape))
    return parts


def check_freezer(
    policy: str | Callable[..., Any],
    groups: Sequence[str] = ("a", "b", "c", "d"),
    epochs: int = 6,
    **params: Any,
) -> None:
    """Check a freezing policy's answers for every depth and epoch.

    ``policy`` is a registered name (built as an estimator builds it) or a factory.
    """
    if isinstance(policy, str):
        instance = build_freezer(policy, params)
    else:
        instance = instantiate(policy, params, f"freezing policy {policy!r}", "freeze__")
    n = len(groups)
    for depth in range(n + 1):
        for epoch in range(epochs):
            state = instance(list(groups), depth, epoch)
            where = f"(frozen_depth={depth}, epoch={epoch})"
            assert isinstance(state, FreezeState), f"{where}: returned {type(state).__name__}"
            assert len(state.trainable) == len(state.eval_mode) == len(state.lr_factors) == n, (
                f"{where}: one entry per group expected"
            )
            assert all(isinstance(t, bool) for t in state.trainable + state.eval_mode), where
            assert all(math.isfinite(f) and f >= 0 for f in state.lr_factors), (
                f"{where}: lr factors must be finite and >= 0"
            )
            assert state == instance(list(groups), depth, epoch), f"{where}: not deterministic"
            assert not any(state.trainable[:depth]) or epoch > 0, (
                f"{where}: groups below frozen_depth train at the first epoch"
            )
    _check_picklable(instance, "freezing policy")


def check_augmenter(
    augmenter: str | Sequence[str] | Callable[..., Any],
    shape: Sequence[int] = (8, 3, 32, 32),
    X: torch.Tensor | None = None,
    **params: Any,
) -> None:
    """Identity at 0, shape/dtype kept, seeded, input untouched, effect grows with strength.

    ``augmenter`` is a registered name (or composition, built as an estimator
    builds it) or a factory. Augmenters with ``mixes_targets = True`` are also
    called with one-hot ``y=``. ``X``: a batch as the augmenter takes it (for
    input kinds other than images, e.g. a text plugin's token batch); default:
    random images of ``shape``.
    """
    from .builtin.augmenters import NoAugment

    if isinstance(augmenter, (str, list, tuple)):
        aug = build_augmenter(augmenter, params)
    else:
        aug = as_augmenter(instantiate(augmenter, params, f"augmenter {augmenter!r}", "augment__"))
    identity = isinstance(aug.wrapped if isinstance(aug, AugmenterAdapter) else aug, NoAugment)
    if X is None:
        X = torch.rand(*shape, generator=torch.Generator().manual_seed(0))
    original = X.clone()
    assert torch.equal(aug(X, 0.0, torch.Generator().manual_seed(1)), X), (
        "strength 0 must be identity"
    )
    effects = []
    for strength in (0.25, 0.5, 1.0):
        out = aug(X, strength, torch.Generator().manual_seed(1))
        again = aug(X, strength, torch.Generator().manual_seed(1))
        assert out.shape == X.shape and out.dtype == X.dtype and out.device == X.device, (
            f"strength {strength}: shape, dtype or device changed"
        )
        assert torch.equal(out, again), f"strength {strength}: not reproducible under a seed"
        assert torch.equal(X, original), "the augmenter modified its input in place"
        effects.append((out.float() - X.float()).abs().mean().item())
    if aug.mixes_targets:
        _check_target_mixing(aug, X)
    if not identity:
        assert effects[-1] > 0, "strength 1 changes nothing"
        assert effects == sorted(effects), f"effect does not grow with strength: {effects}"
    _check_picklable(aug, "augmenter")


def _check_target_mixing(aug: Any, X: torch.Tensor) -> None:
    """``mixes_targets``: ``aug(X, s, gen, y=y)`` returns ``(X, y)``; rows still sum to 1."""
    n, k = X.shape[0], 3
    y = torch.nn.functional.one_hot(torch.arange(n) % k, k).float()
    same = aug(X, 0.0, torch.Generator().manual_seed(1), y=y)
    assert isinstance(same, tuple) and len(same) == 2, "with y=, return (X, y)"
    assert torch.equal(same[0], X) and torch.equal(same[1], y), "strength 0 must be identity"
    Xa, ya = aug(X, 1.0, torch.Generator().manual_seed(1), y=y)
    Xb, yb = aug(X, 1.0, torch.Generator().manual_seed(1), y=y)
    assert ya.shape == y.shape and ya.dtype == y.dtype, "y changed shape or dtype"
    assert torch.equal(Xa, Xb) and torch.equal(ya, yb), "target mixing not reproducible"
    assert torch.allclose(ya.sum(1), torch.ones(n)), "mixed class probabilities must sum to 1"
    assert not torch.equal(ya, y), "strength 1 mixes no targets"


def _check_picklable(obj: Any, what: str) -> None:
    try:
        pickle.dumps(obj)
    except Exception as exc:  # noqa: BLE001 - any pickling failure is the finding
        raise AssertionError(
            f"the {what} cannot be pickled ({exc}); estimators are pickled "
            "for n_jobs > 1 and saving: define it at module level"
        ) from exc


def _check_fittable(spec: BackboneSpec) -> None:
    """The fit step names the backbone: ``spec.name`` must resolve to a spec of that name.

    Specs are compared by name, not ``==``: specs built with ``functools.partial``
    (torchvision backbones, ``timm:`` names) never compare equal to a fresh build.
    """
    if spec.input_kind not in ("image", "tabular"):
        raise ValueError(
            f"check_backbone(fit=True) makes random image or tabular inputs; backbone "
            f"{spec.name!r} takes {spec.input_kind!r} input: pass fit=False"
        )
    try:
        found = get_backbone(spec.name)
    except (KeyError, ValueError, TypeError) as exc:
        raise ValueError(
            f"check_backbone(fit=True) fits an estimator with backbone={spec.name!r}, but no "
            f"plugin registers or resolves that name ({exc}); register the spec "
            "(register_backbones) or pass fit=False"
        ) from exc
    if found.name != spec.name:
        raise ValueError(
            f"check_backbone(fit=True): backbone={spec.name!r} resolves to {found.name!r}, "
            "another spec; register the spec under its own name or pass fit=False"
        )


def _fit_once(spec: BackboneSpec, input_shape: tuple[int, ...]) -> None:
    from .estimators import FineTunedClassifier

    name = spec.name

    X = torch.rand(8, *input_shape)
    y = torch.arange(8) % 2
    size = input_shape[-1] if spec.input_kind == "image" else None
    clf = FineTunedClassifier(
        name,
        pretrained=False,
        image_size=size,
        max_epochs=1,
        augment="none",
        batch_size=4,
        verbose=0,
        random_state=0,
    )
    clf.fit(X, y.numpy())
    proba = clf.predict_proba(X)
    assert proba.shape == (8, 2), f"predict_proba shape {proba.shape}"
