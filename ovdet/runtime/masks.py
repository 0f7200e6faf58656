"""Instance masks from prototypes: coefficients · prototypes, upsampled to the original image, cropped to the box.

The result equals ultralytics' ``process_mask_native`` (its ``retina_masks=True`` path: bilinear upsampling of the
prototype-resolution logits by 1, 2 or 4, removal of the letterbox padding, bilinear resizing to the original size,
``> 0``, then zero outside the box) up to float rounding, but is computed per box: bilinear interpolation is
separable and linear, so both resampling steps compose into one ``(H, mh)`` and one ``(W, mw)`` weight matrix per
image, each row with a few non-zero taps, and each mask is only evaluated on its box's rows and columns, a few taps
per pixel. Memory and time follow the box areas, never ``N × H × W``.
"""

from __future__ import annotations

import math

import numpy as np

from ..masks import Masks
from .letterbox import Letterbox

__all__ = ["bilinear_weights", "resampling_weights", "masks_from_prototypes"]


def bilinear_weights(in_size: int, out_size: int, scale_factor: float | None = None) -> np.ndarray:
    """``(out_size, in_size)`` float64 matrix of ``F.interpolate(mode="bilinear", align_corners=False)`` along one axis
    (PyTorch's source index ``max((d + 0.5) · scale − 0.5, 0)``, ``scale = 1 / scale_factor`` or ``in / out``)."""
    scale = 1.0 / scale_factor if scale_factor else in_size / out_size
    src = np.maximum((np.arange(out_size) + 0.5) * scale - 0.5, 0.0)
    i0 = np.minimum(src.astype(np.int64), in_size - 1)
    lam1 = np.clip(src - i0, 0.0, 1.0)
    i1 = i0 + (i0 < in_size - 1)
    weights = np.zeros((out_size, in_size))
    rows = np.arange(out_size)
    np.add.at(weights, (rows, i0), 1.0 - lam1)
    np.add.at(weights, (rows, i1), lam1)
    return weights


def resampling_weights(proto_size: tuple[int, int], image_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Per-axis matrices ``(Wy (H, mh), Wx (W, mw))`` taking prototype-resolution logits to the original image, as
    ultralytics' ``process_mask_native`` + ``scale_masks`` resample them (prototypes at a quarter of the input)."""
    (mh, mw), (h, w) = proto_size, image_size
    gain = min(4 * mh / h, 4 * mw / w)
    pad = (4 * mh - max(round(h * gain), 1)) | (4 * mw - max(round(w * gain), 1))  # input-size letterbox padding
    f = 4 // math.gcd(4, pad | pad // 2)  # smallest upsampling (1, 2 or 4) that crops the padding on whole pixels
    up_h, up_w = f * mh, f * mw
    first_y = bilinear_weights(mh, up_h, f) if f > 1 else np.eye(mh)
    first_x = bilinear_weights(mw, up_w, f) if f > 1 else np.eye(mw)
    if (up_h, up_w) == (h, w):  # scale_masks returns such masks unchanged
        return first_y, first_x
    g = min(up_h / h, up_w / w)
    pad_w, pad_h = (up_w - max(round(w * g), 1)) / 2, (up_h - max(round(h * g), 1)) / 2
    top, left = round(pad_h - 0.1), round(pad_w - 0.1)
    bottom, right = top + max(round(h * g), 1), left + max(round(w * g), 1)
    wy = bilinear_weights(bottom - top, h) @ first_y[top:bottom]
    wx = bilinear_weights(right - left, w) @ first_x[left:right]
    return wy, wx


def masks_from_prototypes(
    protos: np.ndarray, coefficients: np.ndarray, boxes: np.ndarray, letterbox: Letterbox
) -> Masks:
    """Instance masks of one image (numpy only, so the ONNX Runtime detector shares it).

    Args:
        protos: ``(M, mh, mw)`` prototypes (a quarter of the network input's size).
        coefficients: ``(N, M)`` mask coefficients of the N detections.
        boxes: ``(N, 4)`` xyxy boxes in original-image pixels; a mask is False outside its box (pixel ``(x, y)`` is
            inside when ``x1 <= x < x2`` and ``y1 <= y < y2``, as ultralytics' ``crop_mask``).
        letterbox: How the image was placed in the network input (gives the original size).

    Returns:
        ``Masks`` in original-image pixels, one crop per detection.
    """
    h, w = letterbox.orig_shape
    m, mh, mw = protos.shape
    if len(coefficients) == 0:
        return Masks.empty((h, w))
    wy_all, wx_all = (a.astype(np.float32) for a in resampling_weights((mh, mw), (h, w)))
    logits = (np.asarray(coefficients, np.float32) @ np.asarray(protos, np.float32).reshape(m, -1)).reshape(-1, mh, mw)
    b = np.asarray(boxes, np.float32)
    x0 = np.clip(np.ceil(b[:, 0]), 0, w).astype(np.int64)
    x1 = np.clip(np.ceil(b[:, 2]), 0, w).astype(np.int64)
    y0 = np.clip(np.ceil(b[:, 1]), 0, h).astype(np.int64)
    y1 = np.clip(np.ceil(b[:, 3]), 0, h).astype(np.int64)
    crops = []
    for i in range(len(b)):
        crop = np.zeros((max(y1[i] - y0[i], 0), max(x1[i] - x0[i], 0)), bool)
        if crop.size:
            wy, wx = wy_all[y0[i] : y1[i]], wx_all[x0[i] : x1[i]]  # (bh, mh), (bw, mw)
            rows, cols = _support(wy), _support(wx)  # the prototype rows and columns the box reads
            right = np.ascontiguousarray(logits[i, rows, cols] @ wx[:, cols].T)  # (rows read, bw)
            step = max(1, (1 << 22) // crop.shape[1])  # output rows per block: at most ~16 MB of float32 at a time
            for r in range(0, crop.shape[0], step):
                crop[r : r + step] = wy[r : r + step, rows] @ right > 0
        crops.append(crop)
    return Masks(tuple(crops), np.stack([x0, y0], 1), (h, w))


def _support(weights: np.ndarray) -> slice:
    """The contiguous range of input positions (columns of ``weights``) with a non-zero weight."""
    nonzero = np.flatnonzero(np.abs(weights).sum(0))
    return slice(int(nonzero[0]), int(nonzero[-1]) + 1)
