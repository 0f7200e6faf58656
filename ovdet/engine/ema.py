"""Exponential moving average of model weights (ultralytics' ModelEMA schedule, without deep-copying the model)."""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["ModelEMA"]


class ModelEMA:
    """Keeps ``ema = d * ema + (1 - d) * model`` over floating-point parameters and buffers.

    The decay ramps up as ``decay * (1 - exp(-updates / tau))`` so early, fast-changing weights are not over-smoothed.
    The shadow copy is a plain state dict, so the model's text encoder (not a module) is never copied.

    Args:
        model: The model whose ``state_dict`` is tracked.
        decay: Final decay.
        tau: Ramp length in updates.
        averaged: The state-dict keys that train; any other entry is copied from the model, never averaged, so a
            frozen weight stays bit-identical (``d·x + (1-d)·x`` need not round back to ``x``). ``None``: all.
    """

    def __init__(
        self, model: nn.Module, decay: float = 0.9999, tau: float = 2000, updates: int = 0,
        averaged: set[str] | None = None,
    ):  # fmt: skip
        self.decay, self.tau, self.updates = decay, tau, updates
        self.averaged = averaged
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = self.decay * (1 - math.exp(-self.updates / self.tau))
        for k, v in model.state_dict().items():
            shadow = self.state[k]
            if shadow.shape != v.shape:  # a resized buffer (the vocabulary): follow the model
                self.state[k] = v.detach().clone()
            elif v.dtype.is_floating_point and (self.averaged is None or k in self.averaged):
                shadow.mul_(d).add_(v.detach(), alpha=1 - d)
            else:
                shadow.copy_(v)

    def copy_to(self, model: nn.Module) -> None:
        """Load the averaged weights into ``model`` (e.g. an evaluation copy)."""
        model.load_state_dict(self.state)
