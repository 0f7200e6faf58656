"""From raw head outputs to detections: DFL box decoding (torch), then the shared, torch-free selection.

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
    """``(B, A, 4)`` xyxy boxes in network-input pixels from the DFL distributions (expected distance per side)."""
    b, c, a = out.box_logits.shape
    reg_max = c // 4
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
    **select,
) -> list[Result]:
    """One :class:`Result` per image from decoded ``boxes`` ``(B, A, 4)`` (xyxy, input pixels) and ``scores``
    ``(B, K, A)`` (probabilities), through :func:`ovdet.runtime.postprocess.result_from_outputs`.

    On the CPU the tensors are handed over without a copy. On a GPU only the anchors whose best score passes ``conf``
    cross to the host (the others can never be selected), so a large vocabulary costs no large transfer.
    """
    results = []
    for i, info in enumerate(letterboxes):
        b, s = boxes[i], scores[i]
        if b.device.type != "cpu":
            keep = (s.amax(0) > conf).nonzero(as_tuple=True)[0]
            b, s = b[keep], s[:, keep]
        b, s = b.float().cpu().numpy(), s.float().cpu().numpy()
        results.append(result_from_outputs(b, s, info, names, conf=conf, **select))
    return results
