"""Speed paths: autocast precision, channels-last, device-resident data, torch.compile.

What each path does is decided once per fit or prediction, in the estimator's setup
(:mod:`skft.params.setup`: ``device``, ``autocast``, ``channels_last``); this module
acts on it. All four are device-agnostic code that PyTorch also runs on CPU, so the tests
exercise them there; the defaults switch them on where they pay, on CUDA:

- ``precision``: forward passes (training and prediction) run under
  ``torch.autocast``. ``"auto"`` is bf16 on a CUDA device that supports it
  (``torch.cuda.is_bf16_supported()``) unless the backbone spec says fp32
  (``cuda_precision``: text encoders, measured slower under bf16), and fp32
  otherwise (always on CPU, where bf16 autocast is slower on most processors);
  ``"bf16"``/``"fp16"``
  force it on any device, ``"fp32"`` switches it off. fp16 scales the loss
  with ``torch.amp.GradScaler``. Outputs are cast back to fp32, so losses and
  probabilities are fp32.
- channels-last: convolutional image backbones on CUDA get their weights and
  batches in ``torch.channels_last`` memory format (tensor cores read NHWC).
- resident data: an in-memory uint8 training set is moved to the CUDA
  device once per fit when it takes at most :data:`RESIDENT_FRACTION` of the
  free device memory, so batches are gathered there and converted and
  normalised per batch on the device (the module's first layer).
- ``compile=True`` (skorch's parameter, arguments as ``compile__*``): the
  module runs through ``torch.compile``; ``module_``, its state dict, saving
  and pickling stay as without it (the compiled wrapper is rebuilt lazily).

Streamed batches (:mod:`skft.data.streaming`) come from pinned memory on CUDA and
are copied with ``non_blocking=True``.
"""

from __future__ import annotations

from typing import Any

import torch
from skorch.dataset import unpack_data
from skorch.utils import to_tensor
from torch import nn

__all__ = ["RESIDENT_FRACTION", "SpeedMixin", "device_budget", "to_device"]

#: In-memory training data moves to the device when it needs at most this
#: fraction of the device's free memory.
RESIDENT_FRACTION = 0.25

def _device_type(device: Any) -> str:
    return torch.device(device).type if device is not None else "cpu"


def to_device(x: Any, device: Any) -> Any:
    """A batch on ``device``; pinned CPU tensors are copied without blocking."""
    if isinstance(x, torch.Tensor) and device is not None and _device_type(device) == "cuda":
        return x.to(device, non_blocking=x.device.type == "cpu" and x.is_pinned())
    return to_tensor(x, device=device)


def device_budget(device: Any) -> int:
    """Bytes of training data that may live on ``device`` (0: keep it on the CPU)."""
    if _device_type(device) != "cuda" or not torch.cuda.is_available():
        return 0
    free, _ = torch.cuda.mem_get_info(torch.device(device))
    return int(free * RESIDENT_FRACTION)


class SpeedMixin:
    """skorch overrides for the speed paths (see the module docstring); under FineTuneMixin."""

    def initialize(self):
        super().initialize()
        if self._decide().channels_last:  # the layers are known now
            self.module_.to(memory_format=torch.channels_last)
        self.__dict__.pop("_grad_scaler", None)  # a new optimizer: a new loss scale
        return self

    def torch_compile(self, module, name):
        return module  # compile=True: _run_module compiles module_ lazily, leaving it as it is

    def _compiled(self) -> nn.Module:
        """``module_`` or, with ``compile=True``, its ``torch.compile`` wrapper (cached)."""
        if not getattr(self, "compile", False):
            return self.module_
        cached = self.__dict__.get("_compiled_module")
        if cached is None or cached._orig_mod is not self.module_:
            cached = torch.compile(self.module_, **self.get_params_for("compile"))
            self.__dict__["_compiled_module"] = cached
        return cached

    def _run_module(self, x: Any, **fit_params: Any) -> torch.Tensor:
        """The module's output for batch ``x`` (entering at group ``input_depth_``)."""
        setup = self.setup_  # decided at the fit's (or prediction's) start
        x = to_device(x, setup.device)
        if setup.channels_last and isinstance(x, torch.Tensor) and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        module = self._compiled()
        dtype = setup.autocast
        if dtype is None:
            return module(x, start=self.input_depth_, **fit_params)
        with torch.autocast(_device_type(setup.device), dtype=dtype):
            out = module(x, start=self.input_depth_, **fit_params)
        return out.float() if out.is_floating_point() else out

    def fit_loop(self, X, y=None, epochs=None, **fit_params):
        if isinstance(X, torch.Tensor) and X.device.type == "cpu":
            if X.numel() * X.element_size() <= device_budget(self.device):
                X = X.to(self.device)  # resident: batches are gathered on the device
        return super().fit_loop(X, y, epochs=epochs, **fit_params)

    def _scaler(self) -> Any:
        """fp16's ``GradScaler`` (made on first use), else ``None``."""
        if not self.setup_.grad_scaler:
            return None
        if self.__dict__.get("_grad_scaler") is None:
            self.__dict__["_grad_scaler"] = torch.amp.GradScaler(_device_type(self.device))
        return self.__dict__["_grad_scaler"]

    def train_step_single(self, batch, **fit_params):
        scaler = self._scaler()
        if scaler is None:
            return super().train_step_single(batch, **fit_params)
        self._set_training(True)  # skorch's step, with the loss scaled for fp16 gradients
        Xi, yi = unpack_data(batch)
        y_pred = self.infer(Xi, **fit_params)
        loss = self.get_loss(y_pred, yi, X=Xi, training=True)
        scaler.scale(loss).backward()
        return {"loss": loss, "y_pred": y_pred}

    def _step_optimizer(self, step_fn):
        scaler = self._scaler()
        if scaler is None:
            return super()._step_optimizer(step_fn)
        step_fn()
        for name in self._optimizers:
            scaler.step(getattr(self, name + "_"))
        scaler.update()
        return None

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_compiled_module", None)  # rebuilt on the next forward pass
        state.pop("_grad_scaler", None)  # fp16's loss scale starts again
        return state
