"""Letterbox and normalise images exactly as ultralytics' predictor does, and remember how to undo it (numpy, OpenCV).

Reproducing ultralytics (resize with ``cv2.INTER_LINEAR`` keeping the aspect ratio, pad with 114 to the target or, for
a batch of same-sized images, only to the next multiple of the stride, BGR→RGB, /255) makes converted YOLO-World
weights give the same boxes as in ultralytics. Torch-free: the PyTorch detector (``ovdet.model.preprocess``) and the
ONNX Runtime one both letterbox here.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
__all__ = ["Letterbox", "letterbox", "letterbox_shape", "shape_groups", "letterbox_batch", "check_imgsz", "PAD_VALUE"]

logger = logging.getLogger(__name__)
PAD_VALUE = 114


@dataclass(frozen=True)
class Letterbox:
    """How one image was placed in the network input.

    Attributes:
        orig_shape: ``(h, w)`` of the original image.
        input_shape: ``(H, W)`` of the network input.
        gain: ``(gain_x, gain_y)``: resized size over original size, per axis.
        pad: ``(left, top)`` padding in input pixels.
    """

    orig_shape: tuple[int, int]
    input_shape: tuple[int, int]
    gain: tuple[float, float]
    pad: tuple[int, int]


def check_imgsz(imgsz: int | tuple[int, int], stride: int = 32) -> tuple[int, int]:
    """``(h, w)`` rounded up to multiples of ``stride`` (with a warning, as ultralytics does).

    Raises:
        ValueError: a size that is not positive.
    """
    try:
        hw = (imgsz, imgsz) if isinstance(imgsz, (int, np.integer)) else tuple(imgsz)
    except TypeError:  # a float, None, ...
        hw = ()
    if len(hw) != 2 or not all(isinstance(x, (int, np.integer)) and not isinstance(x, bool) and x > 0 for x in hw):
        raise ValueError(f"imgsz must be a positive int or an (h, w) pair, got {imgsz!r}")
    fixed = tuple(int(math.ceil(x / stride) * stride) for x in hw)
    if fixed != hw:
        logger.warning("imgsz %s is not a multiple of the stride %d; using %s", imgsz, stride, fixed)
    return fixed  # type: ignore[return-value]


def letterbox_shape(hw: tuple[int, int], target: tuple[int, int], *, auto: bool = True, stride: int = 32) -> tuple[int, int]:
    """The ``(H, W)`` network input :func:`letterbox` makes of an image of size ``hw`` (no pixels touched)."""
    h, w = hw
    r = min(target[0] / h, target[1] / w)
    new_w, new_h = max(round(w * r), 1), max(round(h * r), 1)
    if not auto:
        return target
    return new_h + (target[0] - new_h) % stride, new_w + (target[1] - new_w) % stride


def shape_groups(images: Sequence[np.ndarray], target: tuple[int, int], *, stride: int = 32) -> list[list[int]]:
    """Indices of ``images`` grouped by the input shape each gets when letterboxed alone (minimal padding).

    Running each group as one batch gives every image exactly the input it gets on its own, so a result never
    depends on its batch neighbours (mixed shapes padded to a common size would move scores and boxes). Groups are in
    order of their first image.
    """
    groups: dict[tuple[int, int], list[int]] = {}
    for i, image in enumerate(images):
        groups.setdefault(letterbox_shape(image.shape[:2], target, stride=stride), []).append(i)
    return list(groups.values())


def letterbox(image: np.ndarray, target: tuple[int, int], *, auto: bool, stride: int = 32) -> tuple[np.ndarray, Letterbox]:
    """Resize ``image`` (HWC) to fit ``target`` ``(H, W)`` keeping its aspect ratio, and pad it.

    ``auto=True`` pads only to the next multiple of ``stride`` (ultralytics' minimal rectangle).
    """
    h, w = image.shape[:2]
    r = min(target[0] / h, target[1] / w)
    new_w, new_h = max(round(w * r), 1), max(round(h * r), 1)
    dw, dh = target[1] - new_w, target[0] - new_h
    if auto:
        dw, dh = dw % stride, dh % stride
    dw, dh = dw / 2, dh / 2
    top, bottom = round(dh - 0.1), round(dh + 0.1)
    left, right = round(dw - 0.1), round(dw + 0.1)
    if (w, h) != (new_w, new_h):
        image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    image = cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(PAD_VALUE,) * 3)
    info = Letterbox((h, w), image.shape[:2], (new_w / w, new_h / h), (left, top))
    return image, info


def letterbox_batch(
    images: Sequence[np.ndarray], imgsz: tuple[int, int], *, stride: int = 32
) -> tuple[np.ndarray, list[Letterbox]]:
    """Letterbox BGR ``uint8`` images into one network input: ``(B, 3, H, W)`` float32, RGB, in [0, 1].

    Images whose minimal letterboxes agree (see :func:`shape_groups`) get exactly that shape; otherwise all are padded
    to ``imgsz``, as ultralytics' predictor pads a batch of mixed shapes. Values are ``pixel / 255`` (a division,
    as ultralytics computes it, not a multiplication by ``1 / 255``, which rounds differently).
    """
    same_shape = len({letterbox_shape(im.shape[:2], imgsz, stride=stride) for im in images}) == 1
    boxed = [letterbox(im, imgsz, auto=same_shape, stride=stride) for im in images]
    batch = np.stack([b[0] for b in boxed])[..., ::-1].transpose(0, 3, 1, 2)  # (B, H, W, BGR) → (B, RGB, H, W)
    out = np.empty(batch.shape, np.float32)
    np.divide(batch, np.float32(255), out=out, dtype=np.float32)
    return out, [b[1] for b in boxed]
