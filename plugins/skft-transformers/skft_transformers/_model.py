"""Load a Hugging Face encoder and cut it into skft's layer groups.

Between groups, the token states travel as one float tensor ``(B, L, H + 1)``:
the hidden states with the attention mask as the last channel. Every group
computes on the length it is given and reads nothing back from the device.
Batches cost what their texts need all the same (*dynamic padding*): skft trims
each batch to its own longest text on the host, before it moves, from the
lengths the ``text`` input kind declares (:attr:`skft.specs.InputKind.lengths`);
the frozen-prefix cache trims its chunks the same way and pads their features
back to the data's length, so its rows stack. A batch that comes untrimmed is
still computed right, padded positions being masked.
"""

from __future__ import annotations

import functools
import inspect
import os
from typing import Any

import torch
from skft.specs import BackboneParts, OnnxFusionHints, Pretrained, PruningHints
from torch import nn

__all__ = ["DebertaLayer", "Embeddings", "EncoderLayer", "Pool", "build_encoder", "load_model"]

OFFLINE_HINT = (
    "pass a local folder instead: backbone='hf:/path/to/folder', where the folder holds "
    "config.json, the weights (model.safetensors or pytorch_model.bin) and the tokenizer "
    "files (tokenizer.json), e.g. written by model.save_pretrained(folder) and "
    "tokenizer.save_pretrained(folder) on a machine with internet access"
)


def load_error(source: str, what: str, exc: BaseException) -> ValueError:
    where = "folder" if os.path.isdir(source) else "model id"
    return ValueError(
        f"cannot load the {what} of {where} {source!r} ({type(exc).__name__}: "
        f"{str(exc).splitlines()[0] if str(exc) else ''}). Offline, or for a model that is "
        f"not on the Hugging Face Hub, {OFFLINE_HINT}."
    )


def load_model(source: str, pretrained: Pretrained) -> nn.Module:
    """``AutoModel`` from a folder or model id: pretrained weights, random init or a state dict."""
    from transformers import AutoConfig, AutoModel
    from transformers.utils import logging as hf_logging

    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # skft is silent unless verbose
    try:
        if pretrained is True:
            return AutoModel.from_pretrained(source)
        model = AutoModel.from_config(AutoConfig.from_pretrained(source))
    except (OSError, ValueError) as exc:
        raise load_error(source, "model", exc) from exc
    finally:
        if bar:
            hf_logging.enable_progress_bar()
    if pretrained is not False:
        from skft.plugin_api import load_state_dict_file

        load_state_dict_file(model, pretrained)
    return model


def _pack(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Hidden states and mask as ``(B, L, H + 1)``."""
    return torch.cat([hidden, mask.unsqueeze(-1).to(hidden.dtype)], dim=-1)


@functools.cache
def _no_padding_check(create_mask: Any) -> dict[str, Any]:
    """The option of ``create_mask`` that skips its ``mask.all()`` (when it has one)."""
    try:
        params = inspect.signature(create_mask).parameters
    except (TypeError, ValueError):  # pragma: no cover - a C function
        return {}
    return {"allow_is_bidirectional_skip": False} if "allow_is_bidirectional_skip" in params else {}


def _mask_options(create_mask: Any, hidden: torch.Tensor) -> dict[str, Any]:
    """``create_bidirectional_mask``'s options: on CUDA, never ask whether the batch has
    padding (``mask.all()``, a read-back per layer); build the mask instead."""
    return _no_padding_check(create_mask) if hidden.device.type == "cuda" else {}


class Embeddings(nn.Module):
    """Group 0: token ids ``(B, C, L)`` (ids, mask, ...) to packed token states.

    ``relative`` holds modules the layers share (DeBERTa's relative-position embeddings
    and their LayerNorm, MPNet's relative-attention bias): they are position embeddings,
    so they belong to this group and freeze with it; the layers read them through the
    encoder they were built from.
    """

    def __init__(self, embeddings: nn.Module, relative: dict[str, nn.Module] | None = None):
        super().__init__()
        self.embeddings = embeddings
        if relative:
            self.relative = nn.ModuleDict(relative)
        # DeBERTa's embeddings zero the padded positions themselves: they take the mask
        self.takes_mask = "mask" in inspect.signature(embeddings.forward).parameters

    def pruning_hints(self) -> PruningHints:
        """The embeddings write the residual stream: their width stays."""
        return PruningHints(ignored_layers=[m for m in self.modules() if isinstance(m, nn.Linear)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = x[:, 1]
        extra = {"mask": mask.long()} if self.takes_mask else {}
        hidden = self.embeddings(input_ids=x[:, 0].long(), **extra)
        return _pack(hidden, mask)


def _attention(layer: nn.Module) -> nn.Module | None:
    """The layer's self-attention: the module that stores its head count and head size."""
    return next((m for m in layer.modules() if hasattr(m, "num_attention_heads")
                 and hasattr(m, "attention_head_size")), None)  # fmt: skip


def transformer_pruning_hints(layer: nn.Module) -> PruningHints:
    """Structured pruning of one encoder layer: whole attention heads and feed-forward width.

    The linear layers that write the residual stream (output width = the hidden size:
    the attention output and the feed-forward output) keep their width, so every layer
    still adds into the same stream. Query, key and value lose whole heads, found on
    the attention module that stores ``num_attention_heads`` and ``attention_head_size``
    (BERT, RoBERTa, ELECTRA, MiniLM, DeBERTa); its stored head count is updated after
    pruning. An attention with other projections of the head width (DeBERTa's separate
    relative-position projections) keeps its heads; only its feed-forward width shrinks.
    """
    attention = _attention(layer)
    linears = [m for m in layer.modules() if isinstance(m, nn.Linear)]
    if attention is None or not linears:
        return PruningHints(ignored_layers=linears)
    projections = [
        getattr(attention, n, None)
        for n in ("query", "key", "value", "query_proj", "key_proj", "value_proj")
    ]
    projections = [m for m in projections if isinstance(m, nn.Linear)]
    hidden = projections[0].in_features if projections else None
    residual = [m for m in linears if m.out_features == hidden and m not in projections]
    heads_wide = [m for m in attention.modules() if isinstance(m, nn.Linear)
                  and m.out_features == attention.all_head_size]  # fmt: skip
    if len(projections) != 3 or len(heads_wide) != 3:
        return PruningHints(ignored_layers=residual + heads_wide)

    def after() -> None:
        attention.all_head_size = projections[0].out_features
        attention.num_attention_heads = attention.all_head_size // attention.attention_head_size

    heads = int(attention.num_attention_heads)
    return PruningHints(
        ignored_layers=residual, num_heads={m: heads for m in projections}, after=after
    )


class EncoderLayer(nn.Module):
    """One transformer layer on packed token states, on the batch's own longest sequence.

    ``encoder``: for encoders whose layers take a relative-position bias that the encoder
    computes once for all of them (MPNet's ``compute_position_bias``), the encoder the
    layer was cut from (held unregistered: its bias module is group 0's, see
    :class:`Embeddings`); each group computes the bias for its own batch.
    """

    def __init__(self, layer: nn.Module, config: Any, encoder: nn.Module | None = None) -> None:
        super().__init__()
        self.layer = layer
        self.config = config
        self._encoder = () if encoder is None else (encoder,)  # a tuple: not a submodule

    def pruning_hints(self) -> PruningHints:
        return transformer_pruning_hints(self.layer)

    def prepare_onnx_export(self) -> None:
        """Eager attention in this (exported) copy: same outputs, faster in ONNX Runtime.

        The traced ``scaled_dot_product_attention`` adds a NaN guard and its own shape
        arithmetic to every layer; with eager attention, MiniLM's dynamic int8 model ran
        8-19% faster (batch 1, 20 and 64 tokens, 1 thread) and float32 the same.
        """
        for part in self.modules():
            config = getattr(part, "config", None)
            if getattr(config, "_attn_implementation", None) == "sdpa":
                config._attn_implementation = "eager"

    def onnx_fusion_hints(self) -> OnnxFusionHints | None:
        """For ONNX Runtime's BERT fusions before dynamic int8 (skft's fusion_hints).

        The head count and width as they are now (after head pruning, what is left):
        the exported attention reshapes to ``(-1, head_size)``, from which the
        optimizer cannot read them itself.
        """
        attention = _attention(self.layer)
        if attention is None:
            return None
        heads = int(attention.num_attention_heads)
        return OnnxFusionHints("bert", heads, heads * int(attention.attention_head_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from transformers.masking_utils import create_bidirectional_mask

        hidden, mask = x[..., :-1], x[..., -1]
        attn = create_bidirectional_mask(
            config=self.config,
            inputs_embeds=hidden,
            attention_mask=mask.long(),
            **_mask_options(create_bidirectional_mask, hidden),
        )
        bias = (self._encoder[0].compute_position_bias(hidden),) if self._encoder else ()
        out = self.layer(hidden, attn, *bias)
        out = out[0] if isinstance(out, tuple) else out
        return _pack(out, mask)


class DebertaLayer(nn.Module):
    """One DeBERTa (v1 or v2) layer: disentangled attention over relative positions.

    The encoder computes the relative positions, the shared relative embeddings and the
    pairwise mask once for all its layers; each group computes them for its own batch
    from the encoder it was cut from (held unregistered: its shared modules are group 0's,
    see :class:`Embeddings`). DeBERTa-v2's optional convolution after the first layer
    belongs to that layer's group.
    """

    def __init__(self, layer: nn.Module, encoder: nn.Module, conv: nn.Module | None = None):
        super().__init__()
        self.layer = layer
        if conv is not None:
            self.conv = conv
        self._encoder = (encoder,)  # a tuple: not registered as a submodule

    def pruning_hints(self) -> PruningHints:
        hints = transformer_pruning_hints(self.layer)
        if getattr(self, "conv", None) is not None:  # writes the residual stream too
            hints.ignored_layers.append(self.conv.conv)
        return hints

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden, mask = x[..., :-1], x[..., -1]
        encoder = self._encoder[0]
        out = self.layer(
            hidden,
            encoder.get_attention_mask(mask.long()),
            relative_pos=encoder.get_rel_pos(hidden),
            rel_embeddings=encoder.get_rel_embedding(),
        )
        out = out[0] if isinstance(out, tuple) else out
        if getattr(self, "conv", None) is not None:
            out = self.conv(hidden, out, mask.long())
        return _pack(out, mask)


class Pool(nn.Module):
    """The neck: mean over the attention mask (default) or the first token (``[CLS]``)."""

    def __init__(self, mode: str = "mean") -> None:
        super().__init__()
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden, mask = x[..., :-1], x[..., -1:]
        if self.mode == "cls":
            return hidden[:, 0]
        return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"


def _layers(model: nn.Module) -> nn.ModuleList:
    for path in ("encoder.layer", "encoder.layers", "transformer.layer", "layer"):
        obj: Any = model
        for part in path.split("."):
            obj = getattr(obj, part, None)
        if isinstance(obj, nn.ModuleList):
            return obj
    raise ValueError(
        f"skft-transformers cannot find the encoder layers of {type(model).__name__}: it "
        "supports encoders with model.embeddings and model.encoder.layer (BERT, RoBERTa, "
        "ELECTRA, XLM-R, MiniLM, DeBERTa, ...) or model.transformer.layer (DistilBERT)"
    )


def build_encoder(source: str, pool: str, pretrained: Pretrained) -> BackboneParts:
    """Layer groups ``embeddings, layer0 .. layer{n-1}``, a pooling neck, the model for export."""
    model = load_model(source, pretrained)
    if getattr(model.config, "is_decoder", False):
        raise ValueError(f"{source!r} is a decoder; skft-transformers takes encoders")
    embeddings = getattr(model, "embeddings", None)
    if embeddings is None:
        _layers(model)  # the same message
    encoder = getattr(model, "encoder", None)
    if hasattr(encoder, "get_rel_embedding"):  # DeBERTa v1/v2: relative-position attention
        relative = {
            name: getattr(encoder, name)
            for name in ("rel_embeddings", "LayerNorm")
            if isinstance(getattr(encoder, name, None), nn.Module)
        }
        groups: list[tuple[str, nn.Module]] = [("embeddings", Embeddings(embeddings, relative))]
        conv = getattr(encoder, "conv", None)
        for i, layer in enumerate(_layers(model)):
            groups.append((f"layer{i}", DebertaLayer(layer, encoder, conv if i == 0 else None)))
    elif hasattr(encoder, "compute_position_bias"):  # MPNet: a relative-position bias
        bias = {"relative_attention_bias": encoder.relative_attention_bias}
        groups = [("embeddings", Embeddings(embeddings, bias))]
        for i, layer in enumerate(_layers(model)):
            groups.append((f"layer{i}", EncoderLayer(layer, model.config, encoder)))
    else:
        groups = [("embeddings", Embeddings(embeddings))]
        for i, layer in enumerate(_layers(model)):
            groups.append((f"layer{i}", EncoderLayer(layer, model.config)))
    dim = int(getattr(model.config, "hidden_size", 0) or model.config.dim)
    return BackboneParts(groups=groups, neck=Pool(pool), feature_dim=dim, model=model)
