"""Region–text detection loss: ultralytics' TaskAlignedAssigner and BboxLoss (CIoU + DFL), BCE over the vocabulary.

As ultralytics' ``v8DetectionLoss``, with two changes for open vocabularies: the classes are the entries of each
image's own vocabulary, and padded vocabulary entries are masked out of the classification loss. With ``reg_max``
1 (YOLO26) the box branch predicts distances directly and the DFL term becomes ultralytics' L1 on image-normalised
distances; an end-to-end head's one-to-one and one-to-many outputs are trained together as ultralytics' ``E2ELoss``
does (assigner top-k 7 with top-1 refinement, and 10; the one-to-many gain decays from 0.8 to 0.1 over the run,
:func:`one2many_gain`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from ultralytics.utils.loss import BboxLoss
from ultralytics.utils.tal import TaskAlignedAssigner, dist2bbox

from ..model.head import HeadOutput

__all__ = ["LossWeights", "DetectionLoss", "one2many_gain"]


def one2many_gain(epoch: int, epochs: int) -> float:
    """Weight of an end-to-end head's one-to-many loss in ``epoch`` (0-based) of ``epochs``; the one-to-one loss
    gets ``1 -`` it (ultralytics' ``E2ELoss.decay``: 0.8 in the first epoch, 0.1 in the last)."""
    return max(1 - epoch / max(epochs - 1, 1), 0) * (0.8 - 0.1) + 0.1


@dataclass(frozen=True)
class LossWeights:
    """Gains of the three terms (ultralytics' defaults) and the assigner's top-k."""

    box: float = 7.5
    cls: float = 0.5
    dfl: float = 1.5
    topk: int = 10


class DetectionLoss(nn.Module):
    """``loss(out, targets, mask) -> (total, {"box", "cls", "dfl"})``.

    ``total`` is the weighted sum times the batch size (ultralytics' convention, so learning rates transfer).

    Args:
        reg_max: DFL bins of the head.
        weights: Term gains and assigner top-k.
    """

    def __init__(self, reg_max: int = 16, weights: LossWeights = LossWeights()):
        super().__init__()
        self.reg_max, self.weights = reg_max, weights
        self.bbox_loss = BboxLoss(reg_max)
        self.bce = nn.BCEWithLogitsLoss(reduction="none")
        self.register_buffer("bins", torch.arange(reg_max, dtype=torch.float32), persistent=False)

    def forward(
        self, out: HeadOutput, targets: torch.Tensor, mask: torch.Tensor, *, one2many_gain: float = 0.8
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """
        Args:
            out: Head outputs for the batch: box logits ``(B, 4R, A)``, class logits ``(B, K, A)``; for an end-to-end
                head, the one-to-one outputs with the one-to-many ones in ``out.one2many``.
            targets: ``(M, 6)``: image index, class index in that image's vocabulary, x1, y1, x2, y2 (input pixels).
            mask: ``(B, K)`` True for real vocabulary entries, False for padding.
            one2many_gain: For an end-to-end head: the one-to-many loss's weight (see :func:`one2many_gain`).
        """
        if out.one2many is None:
            return self._loss(out, targets, mask, self.weights.topk, None)
        total, items = self._loss(out, targets, mask, 7, 1)  # ultralytics' one-to-one assigner: top 7, then top 1
        aux, _ = self._loss(out.one2many, targets, mask, self.weights.topk, None)
        return aux * one2many_gain + total * (1 - one2many_gain), items

    def _loss(
        self, out: HeadOutput, targets: torch.Tensor, mask: torch.Tensor, topk: int, topk2: int | None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        pred_dist = out.box_logits.permute(0, 2, 1).contiguous()  # (B, A, 4R)
        logits = out.class_logits.permute(0, 2, 1).contiguous()  # (B, A, K)
        b, a, k = logits.shape
        anchors, strides = out.anchors, out.strides
        gt_labels, gt_boxes = self._pad_targets(targets.to(logits.device), b)
        mask_gt = (gt_boxes.sum(2, keepdim=True) > 0).float()

        if self.reg_max > 1:
            dist = pred_dist.view(b, a, 4, self.reg_max).softmax(3) @ self.bins.to(logits.dtype)
        else:  # YOLO26: the distances themselves
            dist = pred_dist
        pred_boxes = dist2bbox(dist, anchors, xywh=False)  # (B, A, 4) xyxy in grid units
        assigner = TaskAlignedAssigner(topk=topk, num_classes=k, alpha=0.5, beta=6.0, topk2=topk2)
        scores = logits.detach().sigmoid() * mask[:, None, :].to(logits.dtype)  # padding never wins an anchor
        _, target_boxes, target_scores, fg_mask, _ = assigner(
            scores, (pred_boxes.detach() * strides).to(gt_boxes.dtype), anchors * strides, gt_labels, gt_boxes, mask_gt
        )
        target_scores_sum = target_scores.sum().clamp(min=1)
        cls = (self.bce(logits, target_scores.to(logits.dtype)) * mask[:, None, :]).sum() / target_scores_sum
        box = dfl = logits.new_zeros(())
        if fg_mask.any():
            first = strides[:, 0] == strides[0, 0]  # the first level's anchors span the input: (h, w) in pixels
            imgsz = (anchors[first].amax(0).flip(0) + 0.5) * strides[0, 0]  # read by the reg_max 1 (L1) branch only
            box, dfl = self.bbox_loss(
                pred_dist, pred_boxes, anchors, target_boxes / strides, target_scores, target_scores_sum, fg_mask,
                imgsz, strides,
            )  # fmt: skip
        w = self.weights
        parts = {"box": box * w.box, "cls": cls * w.cls, "dfl": dfl * w.dfl}
        total = sum(parts.values()) * b
        return total, {name: v.detach() for name, v in parts.items()}

    @staticmethod
    def _pad_targets(targets: torch.Tensor, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(M, 6)`` rows → labels ``(B, N, 1)`` and xyxy boxes ``(B, N, 4)``, zero-padded to the busiest image."""
        if not len(targets):
            return targets.new_zeros(batch_size, 0, 1), targets.new_zeros(batch_size, 0, 4)
        image = targets[:, 0].long()
        counts = torch.bincount(image, minlength=batch_size)
        n = int(counts.max())
        out = targets.new_zeros(batch_size, n, 5)
        order = torch.argsort(image, stable=True)
        starts = torch.cumsum(counts, 0) - counts
        slot = torch.arange(len(targets), device=targets.device) - starts[image[order]]
        out[image[order], slot] = targets[order, 1:]
        return out[..., :1], out[..., 1:]
