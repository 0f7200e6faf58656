"""Draw detections on images with OpenCV (no fonts to download, unlike ultralytics' plotting)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    from ..results import Result

__all__ = ["draw_detections", "draw_masks", "class_color"]

# 20 well-separated colours (BGR), cycled by class id
_PALETTE = [
    (56, 56, 255), (151, 157, 255), (31, 112, 255), (29, 178, 255), (49, 210, 207), (10, 249, 72), (23, 204, 146),
    (134, 219, 61), (52, 147, 26), (187, 212, 0), (168, 153, 44), (255, 194, 0), (147, 69, 52), (255, 115, 100),
    (236, 24, 0), (255, 56, 132), (133, 0, 82), (255, 56, 203), (200, 149, 255), (199, 55, 255),
]


def class_color(class_id: int) -> tuple[int, int, int]:
    """The BGR colour used for a class id."""
    return _PALETTE[int(class_id) % len(_PALETTE)]


def draw_detections(image: np.ndarray, result: Result, *, line_width: int | None = None) -> np.ndarray:
    """A copy of ``image`` (BGR) with each detection's box and ``label score`` drawn on it."""
    canvas = np.ascontiguousarray(image).copy()
    if canvas.ndim == 2:
        canvas = cv2.cvtColor(canvas, cv2.COLOR_GRAY2BGR)
    lw = line_width or max(round(sum(canvas.shape[:2]) / 2 * 0.003), 1)
    font_scale, thickness = max(0.35, lw * 0.27), max(lw - 1, 1)  # legible on 256 px thumbnails and 4K frames
    for box, score, cls in zip(result.boxes, result.scores, result.class_ids):
        color = class_color(cls)
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), color, lw, cv2.LINE_AA)
        text = f"{result.names[cls]} {score:.2f}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness)
        above = y1 - th - base - 3 >= 0
        ty = y1 - base - 2 if above else y1 + th + 2
        cv2.rectangle(canvas, (x1, ty - th - 2), (x1 + tw + 2, ty + base), color, -1, cv2.LINE_AA)
        brightness = 0.299 * color[2] + 0.587 * color[1] + 0.114 * color[0]
        ink = (0, 0, 0) if brightness > 150 else (255, 255, 255)
        cv2.putText(canvas, text, (x1 + 1, ty), cv2.FONT_HERSHEY_SIMPLEX, font_scale, ink, thickness, cv2.LINE_AA)
    return canvas


def draw_masks(image: np.ndarray, result: Result, *, alpha: float = 0.5) -> np.ndarray:
    """A copy of ``image`` (BGR) with each instance mask of ``result`` blended in its class colour (``alpha`` opacity).

    Works on each mask's box region only, so a 4K frame with hundreds of masks costs what its boxes cover.
    """
    canvas = np.ascontiguousarray(image).copy()
    if canvas.ndim == 2:
        canvas = cv2.cvtColor(canvas, cv2.COLOR_GRAY2BGR)
    if result.masks is None:
        return canvas
    for crop, (x, y), cls in zip(result.masks.crops, result.masks.offsets, result.class_ids):
        if not crop.any():
            continue
        region = canvas[y : y + crop.shape[0], x : x + crop.shape[1]]
        color = np.array(class_color(cls), dtype=np.float32)
        region[crop] = (region[crop] * (1 - alpha) + color * alpha).astype(np.uint8)
    return canvas
