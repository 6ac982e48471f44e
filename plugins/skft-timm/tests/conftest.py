"""Fixtures of the skft-timm tests."""

from __future__ import annotations

import socket

import pytest
import torch

torch.set_num_threads(2)


@pytest.fixture
def offline(monkeypatch):
    """Any attempt to open a network connection fails."""

    def refuse(*args, **kwargs):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
