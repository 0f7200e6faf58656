"""From raw head outputs to detections in original-image pixels: DFL decoding, class selection (batched NMS, or the
top-k selection of NMS-free end-to-end heads), boxes back to the original image, and instance masks."""

from __future__ import annotations

import torch
import torchvision
from ultralytics.utils.tal import dist2bbox

from ..results import Result
from .head import HeadOutput
from .masks import masks_from_prototypes
from .preprocess import Letterbox

__all__ = ["decode_boxes", "select_detections", "select_topk", "unletterbox_boxes", "results_from_outputs"]

MAX_NMS = 30000  # candidates kept for NMS, as ultralytics


def decode_boxes(out: HeadOutput) -> torch.Tensor:
    """``(B, A, 4)`` xyxy boxes in network-input pixels from the DFL distributions (expected distance per side), or
    from the distances themselves when ``reg_max`` is 1 (YOLO26, where ultralytics' DFL is the identity)."""
    b, c, a = out.box_logits.shape
    reg_max = c // 4
    if reg_max == 1:
        dist = out.box_logits
    else:
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
        ``(boxes (N, 4), scores (N,), class_ids (N,), anchors (N,))``, best score first, N ≤ ``max_det``; ``anchors``
        index each detection's anchor (for its mask coefficients).
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
    return box[keep], score[keep], cls[keep], anchor[keep]


def select_topk(
    boxes: torch.Tensor, scores: torch.Tensor, *, conf: float, max_det: int, agnostic: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Detections of one image from an end-to-end (one-to-one) head, without NMS, as ultralytics selects them.

    ``boxes`` ``(A, 4)`` xyxy, ``scores`` ``(K, A)``. ultralytics' ``Detect.postprocess`` with the predictor's
    ``max_det = max(max_det, 300)``: the ``k`` anchors with the best class score, then the best ``k`` (anchor, class)
    pairs among them (or, with ``agnostic``, each anchor's best class), then those above ``conf``, at most ``max_det``.

    Returns:
        As :func:`select_detections`.
    """
    k = min(max(max_det, 300), scores.shape[1])
    if agnostic:
        best, cls = scores.max(0)
        score, anchor = best.topk(k)
        cls = cls[anchor]
    else:
        candidates = scores.max(0).values.topk(k).indices  # (k,) anchors
        flat = scores[:, candidates].T.reshape(-1)  # (k * K,) anchor-major, as ultralytics flattens (B, k, nc)
        score, index = flat.topk(k)
        anchor, cls = candidates[index // scores.shape[0]], index % scores.shape[0]
    keep = (score > conf).nonzero(as_tuple=True)[0][:max_det]
    return boxes[anchor[keep]], score[keep], cls[keep], anchor[keep]


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
    end2end: bool = False,
    mask_coefficients: torch.Tensor | None = None,
    protos: torch.Tensor | None = None,
) -> list[Result]:
    """One :class:`Result` per image from decoded ``boxes`` ``(B, A, 4)`` (xyxy, input pixels) and ``scores``
    ``(B, K, A)`` (probabilities): :func:`select_detections` (or :func:`select_topk` for an ``end2end`` head), then
    boxes back to original pixels.

    With ``mask_coefficients`` ``(B, M, A)`` and ``protos`` ``(B, M, H/4, W/4)``, each result gets instance masks in
    original pixels (see :mod:`ovdet.model.masks`); as ultralytics' segmentation predictor, detections whose mask is
    empty are dropped.
    """
    results = []
    for i, info in enumerate(letterboxes):
        if end2end:
            b, s, c, a = select_topk(boxes[i], scores[i], conf=conf, max_det=max_det, agnostic=agnostic)
        else:
            b, s, c, a = select_detections(
                boxes[i], scores[i], conf=conf, iou=iou, max_det=max_det, agnostic=agnostic, multi_label=multi_label
            )
        b = unletterbox_boxes(b.float(), info)
        masks = None
        if mask_coefficients is not None and protos is not None:
            masks = masks_from_prototypes(protos[i], mask_coefficients[i][:, a].T, b, info)
            keep = masks.areas > 0
            if not keep.all():
                b, s, c, masks = b[torch.from_numpy(keep)], s[torch.from_numpy(keep)], c[torch.from_numpy(keep)], masks[keep]
        results.append(
            Result(b.cpu().numpy(), s.float().cpu().numpy(), c.cpu().numpy(), tuple(names), info.orig_shape, masks=masks)
        )
    return results
