"""From raw head outputs to detections in original-image pixels: DFL decoding, class selection, batched NMS."""

from __future__ import annotations

import torch
import torchvision
from ultralytics.utils.tal import dist2bbox

from ..results import Result
from .head import HeadOutput
from .preprocess import Letterbox

__all__ = ["decode_boxes", "select_detections", "unletterbox_boxes", "results_from_outputs"]

MAX_NMS = 30000  # candidates kept for NMS, as ultralytics


def decode_boxes(out: HeadOutput) -> torch.Tensor:
    """``(B, A, 4)`` xyxy boxes in network-input pixels from the DFL distributions (expected distance per side)."""
    b, c, a = out.box_logits.shape
    reg_max = c // 4
    bins = torch.arange(reg_max, dtype=out.box_logits.dtype, device=out.box_logits.device)
    dist = (out.box_logits.view(b, 4, reg_max, a).softmax(2) * bins.view(1, 1, -1, 1)).sum(2)  # (B, 4, A)
    boxes = dist2bbox(dist, out.anchors.T.unsqueeze(0), xywh=False, dim=1) * out.strides.T
    return boxes.transpose(1, 2)


def select_detections(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    *,
    conf: float,
    iou: float,
    max_det: int,
    agnostic: bool = False,
    multi_label: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Detections of one image: ``boxes`` ``(A, 4)`` xyxy, ``scores`` ``(K, A)`` probabilities.

    Each anchor keeps its best class (or, with ``multi_label``, every class above ``conf``, as for mAP evaluation);
    candidates above ``conf`` go through ``torchvision.ops.batched_nms`` (per class unless ``agnostic``).

    Returns:
        ``(boxes (N, 4), scores (N,), class_ids (N,))``, best score first, N ≤ ``max_det``.
    """
    if multi_label and scores.shape[0] > 1:
        cls, anchor = (scores > conf).nonzero(as_tuple=True)
        score = scores[cls, anchor]
    else:
        score, cls = scores.max(0)
        anchor = (score > conf).nonzero(as_tuple=True)[0]
        score, cls = score[anchor], cls[anchor]
    if score.numel() > MAX_NMS:
        top = score.topk(MAX_NMS).indices
        anchor, score, cls = anchor[top], score[top], cls[top]
    box = boxes[anchor]
    keep = torchvision.ops.batched_nms(box.float(), score.float(), torch.zeros_like(cls) if agnostic else cls, iou)
    keep = keep[:max_det]
    return box[keep], score[keep], cls[keep]


def unletterbox_boxes(boxes: torch.Tensor, info: Letterbox) -> torch.Tensor:
    """Map xyxy boxes from network-input pixels back to the original image, clipped to it."""
    (gx, gy), (left, top) = info.gain, info.pad
    offset = boxes.new_tensor([left, top, left, top])
    gain = boxes.new_tensor([gx, gy, gx, gy])
    return torchvision.ops.clip_boxes_to_image((boxes - offset) / gain, info.orig_shape)


def results_from_outputs(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    letterboxes: list[Letterbox],
    names: tuple[str, ...],
    *,
    conf: float,
    iou: float,
    max_det: int,
    agnostic: bool = False,
    multi_label: bool = False,
) -> list[Result]:
    """One :class:`Result` per image from decoded ``boxes`` ``(B, A, 4)`` (xyxy, input pixels) and ``scores``
    ``(B, K, A)`` (probabilities): :func:`select_detections`, then boxes back to original pixels."""
    results = []
    for i, info in enumerate(letterboxes):
        b, s, c = select_detections(
            boxes[i], scores[i], conf=conf, iou=iou, max_det=max_det, agnostic=agnostic, multi_label=multi_label
        )
        b = unletterbox_boxes(b.float(), info)
        results.append(Result(b.cpu().numpy(), s.float().cpu().numpy(), c.cpu().numpy(), tuple(names), info.orig_shape))
    return results
