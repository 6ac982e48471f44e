"""Every supported input layout, and a clear error for every bad input before training."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from skft import FineTunedClassifier, UnknownNameError
from skft.data.adapters import adapt_images


def _layouts(X):
    u8 = (X * 255).astype(np.uint8)
    return {
        "NHW float": X,
        "NHW uint8": u8,
        "NHWC gray": X[..., None],
        "NCHW gray": X[:, None],
        "NHWC rgb uint8": np.repeat(u8[..., None], 3, axis=-1),
        "NCHW rgb torch": torch.from_numpy(np.repeat(X[:, None], 3, axis=1)),
        "torch NHW uint8": torch.from_numpy(u8),
        "PIL gray": [Image.fromarray(a) for a in u8],
        "PIL rgb": [Image.fromarray(a).convert("RGB") for a in u8],
    }


@pytest.mark.parametrize("layout", list(_layouts(np.zeros((1, 8, 8), np.float32))))
def test_input_layouts_fit_and_predict(digits, fast, layout):
    X, y = digits
    data = _layouts(X)[layout]
    clf = FineTunedClassifier(**{**fast, "max_epochs": 1}).fit(data, y)
    assert clf.predict(data).shape == (len(X),)
    channels = 3 if "rgb" in layout else 1
    assert clf.input_shape_ == (channels, 16, 16)


def test_image_file_paths(digits, fast, tmp_path):
    X, y = digits
    paths = []
    for i, a in enumerate((X * 255).astype(np.uint8)):
        path = tmp_path / f"img{i}.png"
        Image.fromarray(a).convert("RGB").resize((20, 12)).save(path)  # non-square
        paths.append(str(path))
    clf = FineTunedClassifier(**{**fast, "max_epochs": 1}).fit(paths, y)
    assert clf.predict(paths).shape == (len(X),)
    assert clf.input_shape_ == (3, 16, 16)


def test_adapters_agree_across_layouts(digits):
    X, _ = digits
    u8 = (X * 255).astype(np.uint8)
    ref = adapt_images(u8, 16)
    for data in (u8[..., None], u8[:, None], [Image.fromarray(a) for a in u8]):
        out = adapt_images(data, 16)
        assert out.dtype == torch.uint8 and out.shape == ref.shape
        assert (out.int() - ref.int()).abs().max() <= 2  # PIL and torch resizers differ slightly


def test_grayscale_uses_summed_rgb_weights(digits, fast):
    X, y = digits
    clf = FineTunedClassifier(**{**fast, "max_epochs": 1}).fit(X, y)
    assert clf.module_.groups[0][0].weight.shape[1] == 1


BAD_X = {
    "nan": (lambda X: np.where(X > 0.9, np.nan, X), ValueError, "NaN"),
    "inf": (lambda X: np.where(X > 0.9, np.inf, X), ValueError, "infinity"),
    "empty": (lambda X: X[:0], ValueError, "0 sample"),
    "2-D": (lambda X: X.reshape(len(X), -1), ValueError, "tabular"),
    "5-D": (lambda X: X[:, None, None], ValueError, "3-D"),
    "2 channels": (lambda X: np.stack([X, X], -1), ValueError, "channel"),
    "object": (lambda X: np.array([None] * len(X)), TypeError, "object"),
    "string path": (lambda X: "images/", TypeError, "collection"),
}


@pytest.mark.parametrize("case", list(BAD_X))
def test_bad_X(digits, fast, case):
    X, y = digits
    make, exc, words = BAD_X[case]
    with pytest.raises(exc, match=words):
        FineTunedClassifier(**fast).fit(make(X), y)


BAD_PARAMS = {
    "strength > 1": (
        {"augment_strength": 1.5},
        ValueError,
        r"augment_strength must be .* \[0, 1\]",
    ),
    "strength < 0": ({"augment_strength": -0.1}, ValueError, "augment_strength"),
    "strength str": ({"augment_strength": "high"}, ValueError, "augment_strength"),
    "depth too deep": ({"frozen_depth": 4}, ValueError, "has 3 layer groups"),
    "depth negative": ({"frozen_depth": -1}, ValueError, "frozen_depth"),
    "depth name": ({"frozen_depth": "most"}, ValueError, "frozen_depth"),
    "backbone": ({"backbone": "smalcnn"}, UnknownNameError, "Did you mean 'smallcnn'"),
    "freezer": ({"freeze": "dept"}, UnknownNameError, "Did you mean 'depth'"),
    "augmenter": ({"augment": "basik"}, UnknownNameError, "Did you mean 'basic'"),
    "freezer param": ({"freeze__colour": 1}, TypeError, "freeze__colour"),
    "no weights": ({"pretrained": True}, ValueError, "no pretrained weights"),
    "image_size": ({"image_size": 3}, ValueError, "image_size"),
}


@pytest.mark.parametrize("case", list(BAD_PARAMS))
def test_bad_params(digits, fast, case):
    X, y = digits
    params, exc, words = BAD_PARAMS[case]
    clf = FineTunedClassifier(**{**fast, **params})
    with pytest.raises(exc, match=words):
        clf.fit(X, y)
    assert not getattr(clf, "initialized_", False)


def test_unknown_name_error_is_a_key_and_value_error():
    assert issubclass(UnknownNameError, ValueError) and issubclass(UnknownNameError, KeyError)


def test_bad_targets(digits, fast):
    X, y = digits
    with pytest.raises(ValueError, match="different lengths: 60 samples in X, 59"):
        FineTunedClassifier(**fast).fit(X, y[:-1])
    with pytest.raises(ValueError, match="at least 2 classes"):
        FineTunedClassifier(**fast).fit(X, np.zeros(len(X)))
    with pytest.raises(ValueError, match="Unknown label type"):
        FineTunedClassifier(**fast).fit(X, np.linspace(0, 1, len(X)))


def test_unseen_label_at_partial_fit(digits, fast):
    X, y = digits
    clf = FineTunedClassifier(**fast).fit(X, y)
    with pytest.raises(ValueError, match=r"not in classes_.*\[7\]"):
        clf.partial_fit(X[:4], np.array([0, 1, 2, 7]))


def test_channels_must_match_at_predict(digits, fast):
    X, y = digits
    clf = FineTunedClassifier(**fast).fit(X, y)
    with pytest.raises(ValueError, match="channels must match"):
        clf.predict(np.repeat(X[..., None], 3, -1))


def test_weights_file_errors(digits, fast, tmp_path):
    X, y = digits
    with pytest.raises(FileNotFoundError, match="no such weights file"):
        FineTunedClassifier(
            **{**fast, "backbone": "resnet18", "pretrained": tmp_path / "x.pt"}
        ).fit(X, y)
    wrong = tmp_path / "wrong.pt"
    torch.save({"conv1.weight": torch.zeros(3, 3, 3, 3)}, wrong)
    with pytest.raises(ValueError, match="does not match the architecture"):
        FineTunedClassifier(**{**fast, "backbone": "resnet18", "pretrained": wrong}).fit(X, y)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a state dict")
    with pytest.raises(ValueError, match="not a loadable state dict"):
        FineTunedClassifier(**{**fast, "backbone": "resnet18", "pretrained": junk}).fit(X, y)


def test_local_weights_file_is_loaded(digits, fast, tmp_path):
    import torchvision

    X, y = digits
    source = torchvision.models.resnet18(num_classes=5)
    path = tmp_path / "resnet18.pth"
    torch.save(source.state_dict(), path)
    clf = FineTunedClassifier(
        **{
            **fast,
            "backbone": "resnet18",
            "pretrained": str(path),
            "max_epochs": 1,
            "frozen_depth": 1,
        }
    ).fit(X, y)
    stem_conv = clf.module_.groups[0][0].weight
    torch.testing.assert_close(stem_conv, source.conv1.weight.sum(1, keepdim=True))


def _photos(n=3, h=37, w=29):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(n, h, w, 3), dtype=np.uint8)


def test_one_resize_path_for_arrays_tensors_pil_and_files(tmp_path):
    from PIL import Image

    from skft.data.adapters import adapt_images

    arr = _photos()
    paths = []
    for i, a in enumerate(arr):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(a).save(paths[-1])
    from_array = adapt_images(arr, 16)
    from_tensor = adapt_images(torch.from_numpy(arr).permute(0, 3, 1, 2), 16)
    from_pil = adapt_images([Image.fromarray(a) for a in arr], 16)
    from_files = adapt_images(paths, 16)
    assert from_array.shape == (3, 3, 16, 16) and from_array.dtype == torch.uint8
    for other in (from_tensor, from_pil, from_files):
        assert torch.equal(other, from_array)


def test_paths_in_numpy_and_pandas_containers(tmp_path, fast):
    import pandas as pd
    from PIL import Image

    arr = _photos(6)
    paths = []
    for i, a in enumerate(arr):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(a).save(paths[-1])
    y = np.array([0, 1] * 3)
    clf = FineTunedClassifier(**{**fast, "max_epochs": 1}).fit(paths, y)
    expected = clf.predict_proba(paths)
    frame = pd.DataFrame({"path": paths})
    for X in (np.array(paths), np.array(paths, dtype=object), pd.Series(paths), frame):
        np.testing.assert_allclose(clf.predict_proba(X), expected, rtol=1e-6)
    with pytest.raises(ValueError, match=r"2 columns \['path', 'label'\].*X\['path'\]"):
        clf.predict(frame.assign(label=y))


@pytest.mark.parametrize("missing", [None, float("nan")])
def test_missing_string_labels_are_counted_and_located(digits, fast, missing):
    X, y = digits
    labels = np.array([f"digit {v}" for v in y], dtype=object)
    labels[[3, 7]] = missing
    with pytest.raises(ValueError, match="y has 2 missing label") as info:
        FineTunedClassifier(**fast).fit(X, labels)
    text = str(info.value)
    assert "index 3, 7" in text and "drop" in text and "fill" in text
    assert "mixes strings" not in text
