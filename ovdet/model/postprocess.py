"""From raw head outputs to detections: DFL box decoding (torch), then the shared, torch-free selection (NMS or an
end-to-end head's top-k), un-letterboxing and instance masks.

Class selection, NMS and un-letterboxing live in :mod:`ovdet.runtime.postprocess`, used as they are by the ONNX Runtime
detector, so both detectors turn the same outputs into the same :class:`~ovdet.Result`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from ultralytics.utils.tal import dist2bbox

from ..results import Result
from ..runtime.letterbox import Letterbox
from ..runtime.postprocess import result_from_outputs
from .head import HeadOutput

__all__ = ["decode_boxes", "results_from_outputs"]


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


def results_from_outputs(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    letterboxes: Sequence[Letterbox],
    names: Sequence[str],
    *,
    conf: float,
    mask_coefficients: torch.Tensor | None = None,
    protos: torch.Tensor | None = None,
    **select,
) -> list[Result]:
    """One :class:`Result` per image from decoded ``boxes`` ``(B, A, 4)`` (xyxy, input pixels) and ``scores``
    ``(B, K, A)`` (probabilities), and for segmentation models ``mask_coefficients`` ``(B, M, A)`` and ``protos``
    ``(B, M, H/4, W/4)``, through :func:`ovdet.runtime.postprocess.result_from_outputs` (``select``: ``iou``,
    ``max_det``, ``agnostic``, ``multi_label``, ``end2end``).

    On the CPU the tensors are handed over without a copy. On a GPU only the anchors whose best score passes ``conf``
    cross to the host (the others can never be selected, by NMS or by an end-to-end head's top-k), so a large
    vocabulary costs no large transfer.
    """
    results = []
    for i, info in enumerate(letterboxes):
        b, s = boxes[i], scores[i]
        coefficients = mask_coefficients[i] if mask_coefficients is not None else None
        if b.device.type != "cpu":
            keep = (s.amax(0) > conf).nonzero(as_tuple=True)[0]
            b, s = b[keep], s[:, keep]
            coefficients = coefficients[:, keep] if coefficients is not None else None
        masks = {}
        if coefficients is not None and protos is not None:
            masks = {"mask_coefficients": coefficients.float().cpu().numpy(), "protos": protos[i].float().cpu().numpy()}
        b, s = b.float().cpu().numpy(), s.float().cpu().numpy()
        results.append(result_from_outputs(b, s, info, names, conf=conf, **masks, **select))
    return results
