"""Fixtures of the skft-transformers tests: a tiny random BERT saved as a local model folder."""

from __future__ import annotations

import pytest
import torch
from skft.testing import refuse_network

import skft_transformers

torch.set_num_threads(2)

WORDS = (
    "free win prize cash call now claim urgent offer txt reply stop mobile award "
    "hello how are you see later tonight dinner home love thanks ok good morning "
    "movie great film bad boring fun happy sad day night friend work meeting lunch"
).split()

HAM = [
    "hello how are you",
    "see you later tonight",
    "thanks for dinner",
    "ok see you at home",
    "good morning friend",
    "love you see you tonight",
    "are you home now",
    "lunch at work ok",
    "how was the meeting",
    "thanks good night friend",
    "see you at lunch",
    "good day at work",
]
SPAM = [
    "free prize call now",
    "win cash now txt claim",
    "urgent claim your award",
    "txt win to claim",
    "free mobile offer reply",
    "call now to win cash",
    "claim free cash prize",
    "urgent offer reply",
    "win a free award now",
    "reply stop to end offer",
    "cash prize call claim",
    "free txt win now",
]


def _ensure_registered() -> None:
    from skft.plugins import load_plugins, pm

    load_plugins()
    if not any(p is skft_transformers for p in pm.get_plugins()):
        pm.register(skft_transformers, "transformers")  # not pip-installed: register by hand


_ensure_registered()


def _save_tokenizer(folder) -> int:
    """A WordPiece tokenizer over :data:`WORDS` saved in ``folder``; returns the vocabulary size."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = {t: i for i, t in enumerate(special + sorted(set(WORDS)) + ["the", "to", "a", "at",
             "for", "your", "end", "was", "##s", "##ing"])}  # fmt: skip
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )  # fmt: skip
    PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]",
    ).save_pretrained(folder)  # fmt: skip
    return len(vocab)


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> str:
    """A 2-layer BERT (hidden 32) with a WordPiece tokenizer over :data:`WORDS`, as a folder."""
    from transformers import BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tiny_bert")
    vocab_size = _save_tokenizer(folder)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64,
    )  # fmt: skip
    BertModel(config).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def tiny_mpnet(tmp_path_factory) -> str:
    """A 2-layer MPNet (all-mpnet-base-v2's architecture: a relative-attention bias that
    the encoder computes for all its layers), as a folder."""
    from transformers import MPNetConfig, MPNetModel

    folder = tmp_path_factory.mktemp("tiny_mpnet")
    vocab_size = _save_tokenizer(folder)
    torch.manual_seed(0)
    config = MPNetConfig(
        vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64, pad_token_id=0,
    )  # fmt: skip
    model = MPNetModel(config)
    with torch.no_grad():  # a bias large enough to matter (it starts near zero)
        model.encoder.relative_attention_bias.weight.normal_(0.0, 2.0)
    model.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def tiny_deberta(tmp_path_factory) -> str:
    """A 2-layer DeBERTa-v2 (relative attention, position buckets, the convolution after
    the first layer, LayerNorm on the relative embeddings), as a folder."""
    from transformers import DebertaV2Config, DebertaV2Model

    folder = tmp_path_factory.mktemp("tiny_deberta")
    vocab_size = _save_tokenizer(folder)
    torch.manual_seed(0)
    config = DebertaV2Config(
        vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64, relative_attention=True,
        position_buckets=8, max_relative_positions=16, norm_rel_ebd="layer_norm",
        pos_att_type=["p2c", "c2p"], position_biased_input=False, conv_kernel_size=3,
        share_att_key=True,
    )  # fmt: skip
    DebertaV2Model(config).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def texts():
    """24 short messages (12 ham, 12 spam) and their string labels."""
    return HAM + SPAM, ["ham"] * len(HAM) + ["spam"] * len(SPAM)


@pytest.fixture
def fast(tiny_bert):
    """Settings for the tiny BERT that fit in a fraction of a second; ``freeze="depth"``:
    the fine-tuning path, which the fit plan's few-shot rule (contrastive stage + head)
    would otherwise replace on these 12-per-class texts (tests of the rule drop it)."""
    return dict(
        backbone="hf:" + tiny_bert, max_epochs=2, batch_size=8, random_state=0, verbose=0,
        lr=1e-3, freeze="depth",
    )  # fmt: skip


@pytest.fixture
def offline(monkeypatch):
    """Any attempt to open a network connection fails."""
    refuse_network(monkeypatch)
