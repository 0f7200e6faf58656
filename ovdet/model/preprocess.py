"""The network input as a torch tensor: :func:`ovdet.runtime.letterbox.letterbox_batch`, moved to a device.

Letterboxing itself is torch-free (:mod:`ovdet.runtime.letterbox`), shared with the ONNX Runtime detector.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..runtime.letterbox import Letterbox, letterbox_batch

__all__ = ["preprocess"]


def preprocess(
    images: Sequence[np.ndarray], imgsz: tuple[int, int], *, stride: int = 32, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, list[Letterbox]]:
    """Letterbox BGR uint8 images into one float batch ``(B, 3, H, W)`` in [0, 1], RGB, on ``device``
    (see :func:`~ovdet.runtime.letterbox.letterbox_batch`)."""
    batch, letterboxes = letterbox_batch(images, imgsz, stride=stride)
    return torch.from_numpy(batch).to(device), letterboxes
