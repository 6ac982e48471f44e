"""skft_transformers._model: the encoder from a folder, weights from a state-dict file."""

from __future__ import annotations

import pytest
import torch
from skft import FineTunedClassifier


def _other_weights(folder: str, seed: int) -> dict[str, torch.Tensor]:
    from transformers import AutoConfig, AutoModel

    torch.manual_seed(seed)
    return AutoModel.from_config(AutoConfig.from_pretrained(folder)).state_dict()


def test_pretrained_state_dict_file_is_loaded(tiny_bert, texts, fast, tmp_path):
    """``pretrained="weights.pt"`` on a text backbone loads that file into the encoder."""
    X, y = texts
    state = _other_weights(tiny_bert, seed=123)
    path = tmp_path / "encoder.pt"
    torch.save(state, path)
    est = FineTunedClassifier(**{**fast, "pretrained": str(path), "frozen_depth": "all"}).fit(X, y)
    exported = est.export_backbone().state_dict()
    key = "embeddings.word_embeddings.weight"
    assert key in exported
    torch.testing.assert_close(exported[key], state[key])  # frozen: exactly the file's
    default = FineTunedClassifier(**{**fast, "frozen_depth": "all"}).fit(X, y)
    assert not torch.equal(default.export_backbone().state_dict()[key], state[key])


def test_a_state_dict_of_another_shape_is_refused_by_name(tiny_bert, texts, fast, tmp_path):
    X, y = texts
    state = _other_weights(tiny_bert, seed=0)
    key = "embeddings.word_embeddings.weight"
    state[key] = torch.zeros(3, 5)
    path = tmp_path / "bad.pt"
    torch.save(state, path)
    with pytest.raises(ValueError, match="word_embeddings"):
        FineTunedClassifier(**{**fast, "pretrained": str(path)}).fit(X, y)
