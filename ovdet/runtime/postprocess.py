"""From decoded outputs to detections in original-image pixels: class selection, NMS, un-letterboxing (numpy, OpenCV).

Torch-free, so the ONNX Runtime detector and the PyTorch one assemble their :class:`~ovdet.Result` with the same code:
the PyTorch detector hands its decoded tensors over as numpy arrays (see ``ovdet.model.postprocess``).

NMS is OpenCV's (``cv2.dnn.NMSBoxes``), run one class at a time: this keeps exactly the boxes that
``torchvision.ops.batched_nms`` keeps (tests/runtime/test_postprocess.py checks it), where OpenCV's own
``NMSBoxesBatched`` (one pass over all classes, offset apart) is quadratic in the total box count and takes seconds on
the 30,000 candidates that evaluation at ``conf=0.001`` can produce.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from ..results import Result
from .letterbox import Letterbox

__all__ = ["MAX_NMS", "nms", "select_detections", "unletterbox_boxes", "result_from_outputs", "results_from_outputs"]

MAX_NMS = 30000  # candidates kept for NMS, as ultralytics


def nms(boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, iou: float) -> np.ndarray:
    """Per-class non-maximum suppression.

    Args:
        boxes: ``(N, 4)`` xyxy.
        scores: ``(N,)`` scores, all > 0 (candidates above a confidence threshold).
        class_ids: ``(N,)`` integer class of each box; boxes of different classes never suppress each other.
        iou: A box is suppressed by a higher-scored box of its class whose IoU with it exceeds this.

    Returns:
        ``(M,)`` int64 indices of the kept boxes, highest score first (ties in input order): the boxes
        ``torchvision.ops.batched_nms`` keeps.
    """
    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    xywh = boxes.astype(np.float64)
    xywh[:, 2:] -= xywh[:, :2]  # OpenCV takes (x, y, w, h)
    order = np.argsort(class_ids, kind="stable")
    starts = np.flatnonzero(np.diff(class_ids[order])) + 1
    kept = []
    for group in np.split(order, starts):
        if len(group) == 1:
            kept.append(group)
            continue
        keep = cv2.dnn.NMSBoxes(xywh[group], scores[group].astype(np.float32), 0.0, float(iou))
        kept.append(group[np.asarray(keep, dtype=np.int64).reshape(-1)])
    keep = np.concatenate(kept)
    return keep[np.lexsort((keep, -scores[keep]))]  # score descending, then input order


def select_detections(
    boxes: np.ndarray,
    scores: np.ndarray,
    *,
    conf: float,
    iou: float,
    max_det: int,
    agnostic: bool = False,
    multi_label: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Detections of one image: ``boxes`` ``(A, 4)`` xyxy, ``scores`` ``(K, A)`` probabilities.

    Each anchor keeps its best class (or, with ``multi_label``, every class above ``conf``, as for mAP evaluation);
    candidates above ``conf`` (at most :data:`MAX_NMS`, the best) go through :func:`nms`, per class unless
    ``agnostic``. This is ultralytics' ``non_max_suppression`` (tested against it).

    Returns:
        ``(boxes (N, 4) float32, scores (N,) float32, class_ids (N,) int64)``, best score first, N ≤ ``max_det``.
    """
    if multi_label and scores.shape[0] > 1:
        cls, anchor = np.nonzero(scores > conf)
        score = scores[cls, anchor]
    else:
        best = scores.max(0)  # a reduction over rows: fast; the arg-max is taken for candidates only
        anchor = np.flatnonzero(best > conf)
        score = best[anchor]
        cls = scores[:, anchor].argmax(0)
    if len(score) > MAX_NMS:
        top = np.argsort(-score, kind="stable")[:MAX_NMS]
        anchor, score, cls = anchor[top], score[top], cls[top]
    box = boxes[anchor].astype(np.float32)
    keep = nms(box, score, np.zeros_like(cls) if agnostic else cls, iou)[:max_det]
    return box[keep], score[keep].astype(np.float32), cls[keep].astype(np.int64)


def unletterbox_boxes(boxes: np.ndarray, info: Letterbox) -> np.ndarray:
    """Map xyxy boxes ``(N, 4)`` from network-input pixels back to the original image, clipped to it."""
    (gx, gy), (left, top) = info.gain, info.pad
    h, w = info.orig_shape
    out = (boxes - np.array([left, top, left, top], np.float32)) / np.array([gx, gy, gx, gy], np.float32)
    np.clip(out[:, 0::2], 0, w, out=out[:, 0::2])
    np.clip(out[:, 1::2], 0, h, out=out[:, 1::2])
    return out.astype(np.float32)


def result_from_outputs(
    boxes: np.ndarray, scores: np.ndarray, info: Letterbox, names: Sequence[str], **select
) -> Result:
    """One image's :class:`Result` from decoded ``boxes`` ``(A, 4)`` (xyxy, input pixels) and ``scores`` ``(K, A)``
    (probabilities): :func:`select_detections` (``select``: its keyword arguments), then boxes back to original
    pixels."""
    b, s, c = select_detections(boxes, scores, **select)
    return Result(unletterbox_boxes(b, info), s, c, tuple(names), info.orig_shape)


def results_from_outputs(
    boxes: np.ndarray,
    scores: np.ndarray,
    letterboxes: Sequence[Letterbox],
    names: Sequence[str],
    *,
    conf: float,
    iou: float,
    max_det: int,
    agnostic: bool = False,
    multi_label: bool = False,
) -> list[Result]:
    """One :class:`Result` per image from a batch: ``boxes`` ``(B, A, 4)``, ``scores`` ``(B, K, A)``."""
    select = {"conf": conf, "iou": iou, "max_det": max_det, "agnostic": agnostic, "multi_label": multi_label}
    return [result_from_outputs(boxes[i], scores[i], info, names, **select) for i, info in enumerate(letterboxes)]
