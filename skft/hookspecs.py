"""Hook specifications: the plugin author's contract."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

__all__ = ["hookimpl", "hookspec"]

hookspec = pluggy.HookspecMarker("skft")
hookimpl = pluggy.HookimplMarker("skft")

Register = Callable[..., None]


# --------------------------------------------------------------------------
# Registration hooks: each is handed a ``register`` callable
# --------------------------------------------------------------------------


@hookspec
def register_input_kinds(register: Register) -> None:
    """Register input kinds.

    Parameters
    ----------
    register : callable
        ``register(kind)`` with a :class:`skft.specs.InputKind`; backbone
        specs name a kind in ``input_kind``.
    """


@hookspec
def register_backbones(register: Register) -> None:
    """Register backbones.

    Parameters
    ----------
    register : callable
        ``register(spec, aliases=())`` with a :class:`skft.specs.BackboneSpec`.
    """


@hookspec
def register_freezers(register: Register) -> None:
    """Register freezing policies.

    Parameters
    ----------
    register : callable
        ``register(name, factory, aliases=())``; ``factory(**freeze__params)``
        returns a :class:`skft.specs.FreezePolicy`.
    """


@hookspec
def register_augmenters(register: Register) -> None:
    """Register augmenters.

    Parameters
    ----------
    register : callable
        ``register(name, factory, aliases=())``; ``factory(**augment__params)``
        returns a :class:`skft.specs.Augmenter`.
    """


@hookspec
def register_heads(register: Register) -> None:
    """Register heads: what maps the backbone's features to the outputs.

    Parameters
    ----------
    register : callable
        ``register(name, factory, aliases=())``; ``factory(in_features, n_outputs,
        **head__params)`` returns an ``nn.Module`` from ``(N, in_features)`` to
        ``(N, n_outputs)``. The estimator's ``head=`` names it.
    """


@hookspec
def register_demos(register: Register) -> None:
    """Register demos: data and a comparison a plugin ships (``skft demo --text`` runs ``"text"``).

    Parameters
    ----------
    register : callable
        ``register(name, run, aliases=())``; ``run(n_train, out, seed)`` trains on
        data the plugin ships (offline), prints its table and writes its files to the
        folder ``out`` (a path; ``None``: the demo's own default folder).
    """


@hookspec
def register_backbone_prefixes(register: Register) -> None:
    """Register open-ended backbone names: a prefix and the resolver of names under it.

    Parameters
    ----------
    register : callable
        ``register(prefix, resolve, description="")``; ``resolve(name)`` gets the
        whole name (``"timm:resnet10t"``) and returns a :class:`BackboneSpec`, or
        raises ``ValueError`` naming what is wrong with it (an unknown model, a
        missing folder). ``skft.get_backbone`` asks the resolver of the longest
        registered prefix of a name no plugin registered; ``skft plugins`` lists
        ``prefix<description>``.
    """


# --------------------------------------------------------------------------
# Training hook: every plugin is called; errors propagate to ``fit``
# --------------------------------------------------------------------------


@hookspec
def before_epochs(estimator: Any, X: Any, y: Any) -> None:
    """Train or adjust a freshly built network on the fit's data, before its first epoch.

    Called once by every ``fit`` (and first ``partial_fit``) that builds the module: after
    the module and optimizer are built, before the frozen-prefix cache and the first epoch,
    inside the fit's seeded context (torch's RNG follows ``random_state``). Not called when
    training continues (``partial_fit``, ``warm_start``) or resumes from a checkpoint, nor
    by ``skft.load``. skft-transformers' contrastive stage (``freeze="contrastive"``) is one.

    Parameters
    ----------
    estimator : estimator
        The skft estimator being fitted, with its fitted attributes set (``module_``,
        ``freeze_policy_``, ``freeze_state_``, ``input_kind_``, ``backbone_spec_``) and
        its resolved ``device``. An implementation reads the estimator and trains
        ``module_`` in place; it sets no attributes on the estimator, leaves the module's
        freezing as ``freeze_state_`` says, and returns without work for estimators it
        does not know.
    X : torch.Tensor
        The adapted training input, one row per sample (what the input kind's adapter
        returned; text: token ids), including any validation split the epochs hold out
        (``estimator.get_split_datasets(X, y)`` gives the split).
    y : torch.Tensor
        The encoded targets: class indices (int64) for classifiers, standardised floats
        for regressors.
    """


# --------------------------------------------------------------------------
# Search-space hook: every plugin may answer; the answers are merged
# --------------------------------------------------------------------------


@hookspec
def search_space(estimator: Any) -> dict[str, Any] | None:
    """Contribute Optuna distributions for an estimator's parameters.

    Called by :class:`skft.OptunaSearch` (and :func:`skft.search.space.default_search_space`)
    to build the default search space. Every implementation is called; the
    dicts are merged, later-registered plugins overriding earlier ones (so a
    third-party plugin may refine the built-in entries), and the user's
    ``param_distributions`` override the result.

    Parameters
    ----------
    estimator : estimator
        The (unfitted) estimator about to be tuned; read its parameters with
        ``estimator.get_params(deep=False)``. It need not be an skft estimator:
        return ``None`` for estimators this plugin does not know.

    Returns
    -------
    dict or None
        ``{parameter_name: optuna.distributions.BaseDistribution}``, for
        example ``{"augment__magnitude": IntDistribution(1, 10)}``, or ``None``.
        Import optuna inside the implementation: ``import skft`` stays light.
    """
