"""Fixtures of the skft-timm tests."""

from __future__ import annotations

import pytest
import torch
from skft.testing import refuse_network

torch.set_num_threads(2)


@pytest.fixture
def offline(monkeypatch):
    """Any attempt to open a network connection fails."""
    refuse_network(monkeypatch)
