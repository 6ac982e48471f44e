"""Text deploy folders: model.onnx, deploy.json and tokenizer.json; no torch, no plugin to load."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import skft
from skft import Compressed, FineTunedClassifier
from skft.io.trust import ModelFileError

NEW = [
    "free cash prize now",
    "see you tonight friend",
    "words the tokenizer has never seen: zebra quantum",
    "ok",
    " ".join(["call now to win"] * 40),  # longer than max_length: truncated on both sides
]


@pytest.fixture(scope="module")
def compressed(tiny_bert, texts, tmp_path_factory):
    """A head-pruned, dynamic-int8 tiny BERT (max_length 32), its full and deploy folders."""
    est = FineTunedClassifier(
        "hf:" + tiny_bert, max_epochs=2, batch_size=8, lr=1e-3, max_length=32, random_state=0
    )
    comp = Compressed(est, prune=0.5, recover_epochs=1, quantize="dynamic").fit(*texts)
    root = tmp_path_factory.mktemp("text")
    return comp, comp.save(root / "full.skft"), comp.save(root / "deploy.skft", deploy=True)


def test_round_trip_gives_the_full_models_predictions(compressed, texts):
    comp, full, deploy = compressed
    assert {p.name for p in deploy.iterdir()} == {"deploy.json", "model.onnx", "tokenizer.json"}
    config = json.loads((deploy / "deploy.json").read_text())
    assert config["input"]["kind"] == "text" and config["input"]["max_length"] == 32
    model, again = skft.load(deploy), skft.load(full)
    X = texts[0] + NEW
    with pytest.warns(UserWarning, match="truncated to max_length=32"):
        proba = model.predict_proba(X)
    with pytest.warns(UserWarning, match="truncated"):
        np.testing.assert_array_equal(proba, comp.predict_proba(X))
    with pytest.warns(UserWarning, match="truncated"):
        np.testing.assert_array_equal(proba, again.predict_proba(X))
    np.testing.assert_array_equal(model.predict(np.array(NEW[:4])), comp.predict(NEW[:4]))
    assert list(model.classes_) == ["ham", "spam"]
    assert model.score(*texts) == comp.score(*texts)
    with pytest.raises(TypeError, match="cannot be trained"):
        model.fit(*texts)


def test_loading_imports_neither_torch_nor_the_plugin(compressed):
    comp, _, deploy = compressed
    code = (
        "import sys, skft\n"
        f"print(skft.load({str(deploy)!r}).predict({NEW[:4]!r}).tolist())\n"
        "print(sorted(m for m in ('torch', 'transformers', 'skft_transformers', 'sklearn') "
        "if m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == [str(comp.predict(NEW[:4]).tolist()), "[]"]


def test_a_changed_tokenizer_is_refused(compressed, tmp_path):
    path = shutil.copytree(compressed[2], tmp_path / "copy.skft")
    tokenizer = path / "tokenizer.json"
    tokenizer.write_text(tokenizer.read_text().replace('"[UNK]"', '"[UNKNOWN]"', 1))
    with pytest.raises(ModelFileError, match=r"tokenizer\.json does not match the sha256"):
        skft.load(path)
    tokenizer.write_text('{"model": {"type": "exec"}}')
    config = json.loads((path / "deploy.json").read_text())
    config["input"]["tokenizer_sha256"] = hashlib.sha256(tokenizer.read_bytes()).hexdigest()
    (path / "deploy.json").write_text(json.dumps(config))
    with pytest.raises(ModelFileError, match="not a fast tokenizer"):
        skft.load(path)


def test_minilm_says_how_its_texts_are_tokenised():
    recipe = skft.get_backbone("minilm").tokenized_input(128)
    assert (recipe.max_length, recipe.ids_row, recipe.mask_row) == (128, 0, 1)
    assert json.loads(recipe.tokenizer)["model"]["type"] == "WordPiece"
