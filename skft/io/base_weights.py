"""Adapter-only model files: the tensors a fit left as the pretrained base had them stay out.

An estimator trained with an adapter policy (``freeze="lora"``, ``"bitfit"``, ...) on a
known pretrained base (``pretrained=True``: the backbone's default weights, or a path to a
state-dict file) changes a small part of its network: the adapters, the head, BitFit's
biases, the running statistics of adapted groups. ``save`` then writes only the tensors
that differ from the freshly built base and records, under ``"base"`` in config.json:

- ``backbone`` and ``pretrained``: the base's identity;
- ``sha256``: a checksum of every tensor of the base backbone as built (names, dtypes,
  shapes and bytes; the head and the adapters excluded);
- ``omitted``: the names of the network's tensors that were left out.

``skft.load`` builds the same base again, refuses it when its checksum differs (other
weights under the same name or path), and takes the omitted tensors from it. Only
tensors are read: the base comes from the backbone's own loader (safetensors or
``torch.load(weights_only=True)``), and no code named by the file runs.
"""

from __future__ import annotations

import hashlib
from typing import Any

__all__ = ["base_record", "base_state", "check_record", "saves_adapter_only"]

#: the ``peft`` name of an adapted layer's wrapped original: ``x.base_layer.weight``
_WRAPPED = ".base_layer."


def _base_name(key: str) -> str:
    return key.replace(_WRAPPED, ".")


def saves_adapter_only(estimator: Any, adapter_only: bool | None) -> bool:
    """Whether ``save`` leaves the base out: ``None`` (auto) when the estimator trained
    adapters on a pretrained base; ``True`` insists (and refuses a random base)."""
    from ..specs import AdaptsModule

    adapts = isinstance(getattr(estimator, "freeze_policy_", None), AdaptsModule)
    known = estimator.pretrained is not False
    if adapter_only is None:
        return adapts and known
    if adapter_only not in (True, False):
        raise ValueError(f"adapter_only must be None, True or False, got {adapter_only!r}")
    if adapter_only and not known:
        raise ValueError(
            "adapter_only=True needs a known pretrained base (pretrained=True or a weights "
            "file); this estimator was built with pretrained=False (random weights)"
        )
    return bool(adapter_only)


def _build_base(estimator: Any) -> Any:
    """The backbone's network as ``pretrained`` builds it, on the CPU, before any training."""
    import torch

    from ..network import build_network

    args = (estimator.input_shape_, estimator.n_outputs_, estimator.head_factory_)
    with torch.device("cpu"):
        return build_network(estimator.backbone_spec_, estimator.pretrained, *args)


def _backbone_tensors(module: Any) -> dict[str, Any]:
    return {k: v for k, v in module.state_dict().items() if not k.startswith("head.")}


def _digest(tensors: dict[str, Any]) -> str:
    import torch

    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        if t.dtype == torch.bfloat16:
            t = t.view(torch.int16)
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def _pretrained_json(pretrained: Any) -> Any:
    return pretrained if isinstance(pretrained, bool) else str(pretrained)


def base_record(estimator: Any, state: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``state`` (the trained network's, on the CPU) less the tensors equal to the base's,
    and the record of the base for config.json."""
    import torch

    base = _backbone_tensors(_build_base(estimator))
    omitted = []
    for key, value in state.items():
        if key.startswith("head."):
            continue
        ref = base.get(_base_name(key))
        if ref is not None and ref.shape == value.shape and ref.dtype == value.dtype:
            if torch.equal(ref, value):
                omitted.append(key)
    kept = {k: v for k, v in state.items() if k not in set(omitted)}
    record = {
        "backbone": estimator.backbone_spec_.name,
        "pretrained": _pretrained_json(estimator.pretrained),
        "sha256": _digest(base),
        "omitted": sorted(omitted),
    }
    return kept, record


def check_record(record: Any) -> dict[str, Any]:
    """The ``"base"`` entry of a config.json, checked to hold JSON of the expected shape."""
    ok = (
        isinstance(record, dict)
        and set(record) == {"backbone", "pretrained", "sha256", "omitted"}
        and isinstance(record["backbone"], str)
        and isinstance(record["pretrained"], (bool, str))
        and isinstance(record["sha256"], str)
        and len(record["sha256"]) == 64
        and isinstance(record["omitted"], list)
        and all(isinstance(k, str) for k in record["omitted"])
    )
    if not ok:
        raise ValueError("base must hold backbone, pretrained, sha256 and the omitted names")
    return record


def base_state(estimator: Any, record: dict[str, Any], source: str) -> dict[str, Any]:
    """The omitted tensors, from the base built again; ``ValueError`` when it is not the
    base the file was saved on (its checksum differs)."""
    if record["backbone"] != estimator.backbone_spec_.name:
        raise ValueError(
            f"{source} was saved on backbone {record['backbone']!r}, not "
            f"{estimator.backbone_spec_.name!r}"
        )
    saved = record["pretrained"]
    if _pretrained_json(estimator.pretrained) != saved:
        raise ValueError(
            f"{source} holds adapters for the base pretrained={saved!r}; "
            f"this estimator names pretrained={estimator.pretrained!r}"
        )
    try:
        base = _backbone_tensors(_build_base(estimator))
    except Exception as exc:
        raise ValueError(
            f"{source} holds only adapters and the head; its base, backbone "
            f"{record['backbone']!r} with pretrained={saved!r}, cannot be built here: {exc}"
        ) from exc
    digest = _digest(base)
    if digest != record["sha256"]:
        raise ValueError(
            f"{source} holds adapters trained on other base weights: backbone "
            f"{record['backbone']!r} with pretrained={saved!r} gives sha256 {digest[:12]}... "
            f"here, but {record['sha256'][:12]}... when it was saved; restore the weights "
            "it was trained on, or save it with adapter_only=False to keep every tensor"
        )
    missing = [k for k in record["omitted"] if _base_name(k) not in base]
    if missing:
        raise ValueError(f"{source}: the base has no tensors {missing[:5]}")
    return {k: base[_base_name(k)] for k in record["omitted"]}
