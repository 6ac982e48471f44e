"""Property-based tests (Hypothesis) of the input adapters and the label handling.

Every input either adapts to the documented result or raises ``ValueError`` /
``TypeError`` with a message; never another exception type.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from skft import FineTunedClassifier
from skft.data.adapters import adapt_images, adapt_tabular

SETTINGS = settings(
    max_examples=int(os.environ.get("SKFT_HYPOTHESIS_EXAMPLES", "60")),  # more: a deeper search
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
DTYPES = [
    "uint8", "float16", "float32", "float64", "bool", "int8", "int16", "int32", "int64",
]  # fmt: skip


def _values(dtype: str):
    kind = np.dtype(dtype).kind
    if kind == "f":
        return st.one_of(
            st.floats(0, 1, width=16),
            st.floats(allow_nan=True, allow_infinity=True, width=16),
            st.sampled_from([-1.0, 300.0, 1e30 if dtype != "float16" else 6e4]),
        )
    if kind == "b":
        return st.booleans()
    info = np.iinfo(dtype)
    return st.one_of(
        st.integers(0, min(255, int(info.max))), st.integers(int(info.min), int(info.max))
    )


@st.composite
def image_arrays(draw):
    layout = draw(st.sampled_from(["nhw", "nhwc", "nchw", "nc", "nhwcx"]))
    n = draw(st.integers(0, 3))
    h, w = draw(st.integers(0, 7)), draw(st.integers(0, 7))
    c = draw(st.integers(1, 5))
    shape = {
        "nhw": (n, h, w),
        "nhwc": (n, h, w, c),
        "nchw": (n, c, h, w),
        "nc": (n, c),
        "nhwcx": (n, h, w, c, 1),
    }[layout]
    dtype = draw(st.sampled_from(DTYPES))
    X = draw(hnp.arrays(dtype, shape, elements=_values(dtype)))
    as_tensor = draw(st.booleans())
    return (torch.from_numpy(X) if as_tensor else X), layout, c


def _documented_error(exc: Exception) -> None:
    assert isinstance(exc, (ValueError, TypeError)), f"{type(exc).__name__}: {exc}"
    assert str(exc).strip(), f"{type(exc).__name__} without a message"


@SETTINGS
@given(image_arrays(), st.sampled_from([8, 12]))
def test_adapt_images_documented_result_or_clear_error(case, size):
    X, layout, c = case
    try:
        out = adapt_images(X, size)
    except Exception as exc:  # noqa: BLE001 - the property is about the exception type
        _documented_error(exc)
        return
    assert isinstance(out, torch.Tensor)
    assert out.shape == (X.shape[0], out.shape[1], size, size) and out.shape[1] in (1, 3)
    if layout == "nhw":
        assert out.shape[1] == 1
    source = np.dtype(str(X.dtype).replace("torch.", ""))
    if source.kind in "iu":
        assert out.dtype == torch.uint8  # integer pixels are 0..255
    else:
        assert out.dtype == torch.float32 and bool(torch.isfinite(out).all())
    if source.kind == "b":
        assert float(out.min()) >= 0 and float(out.max()) <= 1


@SETTINGS
@given(
    st.sampled_from(DTYPES).flatmap(
        lambda dt: hnp.arrays(
            dt,
            hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=4),
            elements=_values(dt),
        )
    )
)
def test_adapt_tabular_documented_result_or_clear_error(X):
    try:
        out = adapt_tabular(X)
    except Exception as exc:  # noqa: BLE001
        _documented_error(exc)
        return
    assert X.ndim == 2 and out.shape == X.shape and out.dtype == torch.float32
    assert bool(torch.isfinite(out).all())


LABELS = st.one_of(
    st.lists(st.integers(-3, 3), min_size=0, max_size=6),
    st.lists(st.sampled_from(["a", "b", "c"]), min_size=0, max_size=6),
    st.lists(st.one_of(st.sampled_from(["a", "b"]), st.integers(0, 2)), min_size=0, max_size=6),
    st.lists(st.booleans(), min_size=0, max_size=6),
    st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=0, max_size=6),
    st.lists(st.sampled_from([0.0, 1.0, 2.0]), min_size=0, max_size=6),
)


@pytest.fixture(scope="module")
def label_net():
    return FineTunedClassifier("smallcnn", pretrained=False, image_size=8, augment="none")


@SETTINGS
@given(labels=LABELS, container=st.sampled_from(["list", "array", "object_array"]))
def test_classifier_labels_encode_or_clear_error(label_net, labels, container):
    y = {
        "list": labels,
        "array": np.asarray(labels),
        "object_array": np.asarray(labels, dtype=object),
    }[container]
    X = np.zeros((len(labels), 8, 8), dtype=np.uint8)
    try:
        _, encoded = label_net._prepare(X, y, initial=True)
    except Exception as exc:  # noqa: BLE001
        _documented_error(exc)
        return
    classes = label_net.classes_
    assert len(classes) >= 2 and encoded.dtype == torch.long and len(encoded) == len(labels)
    np.testing.assert_array_equal(classes[encoded.numpy()], np.asarray(y))


@pytest.mark.parametrize(
    "X",
    [np.zeros((1, 0, 0), np.uint8), np.zeros((1, 0, 0), np.int8), torch.zeros(2, 3, 0, 5)],
    ids=["uint8-1x0x0", "int8-1x0x0", "tensor-nchw-h0"],
)
def test_images_without_pixels_are_a_value_error(X):
    """Found by Hypothesis: torchvision's resize raised ZeroDivisionError / RuntimeError."""
    with pytest.raises(ValueError, match=r"images have no pixels: X has shape \("):
        adapt_images(X, 8)


def test_mixed_str_and_int_labels_name_the_problem(label_net):
    """Found by the label property: numpy's sort raised "'<' not supported between ..."."""
    y = np.array(["a", 1, "b", 2], dtype=object)
    with pytest.raises(TypeError, match="y mixes strings and numbers; use one label type"):
        label_net._prepare(np.zeros((4, 8, 8), np.uint8), y, initial=True)
