"""The open-vocabulary head: per level, a DFL box branch and a region-embedding branch scored against text."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn
from ultralytics.nn.modules import Conv
from ultralytics.nn.modules.block import BNContrastiveHead, ContrastiveHead
from ultralytics.utils.tal import make_anchors

from .config import HeadConfig

__all__ = ["OVHead", "HeadOutput"]


class HeadOutput(NamedTuple):
    """Raw detector outputs, the same in training and inference.

    Attributes:
        box_logits: ``(B, 4 * reg_max, A)`` distribution logits of the left, top, right, bottom distances (in strides)
            for the A anchors of all levels, P3 first.
        class_logits: ``(B, K, A)`` region–text logits for the K classes of the vocabulary.
        anchors: ``(A, 2)`` anchor centres (x, y) in grid units of their level (cell index + 0.5).
        strides: ``(A, 1)`` stride of each anchor's level, in input pixels.
        mask_coefficients: ``(B, M, A)`` per-anchor coefficients of the M mask prototypes (``-seg`` layouts), else
            ``None``.
        protos: ``(B, M, H/4, W/4)`` mask prototypes (``-seg`` layouts), else ``None``.
        one2many: For an end-to-end head (YOLO26) in training mode: the one-to-many branch's outputs, trained beside
            the one-to-one outputs above; else ``None``.

    With ``reg_max`` 1 (YOLO26), ``box_logits`` are the four distances themselves, not distributions.
    """

    box_logits: torch.Tensor
    class_logits: torch.Tensor
    anchors: torch.Tensor
    strides: torch.Tensor
    mask_coefficients: torch.Tensor | None = None
    protos: torch.Tensor | None = None
    one2many: HeadOutput | None = None


class OVHead(nn.Module):
    """YOLO-World's head: ``cv2``-style box branches, ``cv3``-style embedding branches, contrastive scorers.

    Args:
        in_channels: Channels of each input level.
        embed_dim: Text-embedding dimension D; the embedding branch ends in a 1×1 conv to D.
        config: reg_max, normalisation variant and embedding-branch width.
        strides: Stride of each level.
    """

    def __init__(self, in_channels: tuple[int, ...], embed_dim: int, config: HeadConfig, strides: tuple[int, ...]):
        super().__init__()
        if len(in_channels) != len(strides):
            raise ValueError(f"{len(in_channels)} input levels but {len(strides)} strides")
        self.in_channels = tuple(in_channels)
        self.reg_max = config.reg_max
        self.embed_dim = embed_dim
        self.register_buffer("level_strides", torch.tensor(strides, dtype=torch.float32), persistent=False)
        c_box = max(16, in_channels[0] // 4, config.reg_max * 4)
        c_emb = config.embed_channels or max(in_channels[0], 80)
        self.box_branch = nn.ModuleList(
            nn.Sequential(Conv(c, c_box, 3), Conv(c_box, c_box, 3), nn.Conv2d(c_box, 4 * config.reg_max, 1))
            for c in in_channels
        )
        self.embed_branch = nn.ModuleList(
            nn.Sequential(Conv(c, c_emb, 3), Conv(c_emb, c_emb, 3), nn.Conv2d(c_emb, embed_dim, 1)) for c in in_channels
        )
        self.scorers = nn.ModuleList(
            BNContrastiveHead(embed_dim) if config.norm == "batchnorm" else ContrastiveHead() for _ in in_channels
        )
        for branch in self.box_branch:  # as YOLO-World's WorldDetect.bias_init
            nn.init.constant_(branch[-1].bias, 1.0)

    def forward(self, feats: list[torch.Tensor], text: torch.Tensor) -> HeadOutput:
        """``feats``: per-level ``(B, C_i, H_i, W_i)``; ``text``: ``(B, K, D)`` embeddings, or ``(1, K, D)`` shared by
        the batch.

        In eval mode the text is folded into each level's scorer on the fly (:func:`~ovdet.model.fuse.score_regions`:
        the same values, far fewer operations for large K, and no reshape that names K, so exports keep it dynamic).
        """
        from .fuse import score_regions

        b = feats[0].shape[0]
        boxes = torch.cat([branch(x).flatten(2) for branch, x in zip(self.box_branch, feats)], 2)
        if self.training:
            text = text.expand(b, -1, -1)
            parts = zip(self.embed_branch, self.scorers, feats)
            logits = [scorer(branch(x), text).flatten(2) for branch, scorer, x in parts]
        else:
            logits = [score_regions(*parts, text) for parts in zip(self.embed_branch, self.scorers, feats)]
        logits = torch.cat(logits, 2)  # (B, K, A)
        anchors, strides = make_anchors(feats, self.level_strides, 0.5)
        return HeadOutput(boxes, logits, anchors, strides)

    # ------------------------------------------------------------------ inference with a folded vocabulary
    def fold_text(self, text: torch.Tensor) -> None:
        """Fold fixed text embeddings ``(K, D)`` into per-level 1×1 convs (see :mod:`ovdet.model.fuse`), used by
        :meth:`forward_folded`. Stored as non-persistent buffers: they move with ``.to()`` and are never saved."""
        from .fuse import fold_scorer

        for i, (branch, scorer) in enumerate(zip(self.embed_branch, self.scorers)):
            weight, bias, replaces_last = fold_scorer(branch[-1], scorer, text)
            weight = weight[:, :, None, None]  # (K, C) → a 1×1 conv
            self.register_buffer(f"folded_weight_{i}", weight.to(branch[-1].weight), persistent=False)
            self.register_buffer(f"folded_bias_{i}", bias.to(branch[-1].weight), persistent=False)
            self._folded_replaces_last = replaces_last

    def forward_folded(self, feats: list[torch.Tensor]) -> HeadOutput:
        """:meth:`forward` against the text given to :meth:`fold_text`."""
        boxes = torch.cat([branch(x).flatten(2) for branch, x in zip(self.box_branch, feats)], 2)
        logits = []
        for i, (branch, x) in enumerate(zip(self.embed_branch, feats)):
            weight, bias = getattr(self, f"folded_weight_{i}"), getattr(self, f"folded_bias_{i}")
            if self._folded_replaces_last:
                region = branch[:-1](x)
            else:
                region = nn.functional.normalize(branch(x), dim=1)
            logits.append(nn.functional.conv2d(region, weight, bias).flatten(2))  # (B, K, H_i * W_i)
        anchors, strides = make_anchors(feats, self.level_strides, 0.5)
        return HeadOutput(boxes, torch.cat(logits, 2), anchors, strides)
