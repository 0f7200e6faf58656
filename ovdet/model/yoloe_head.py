"""YOLOE's head: box, region-embedding and (for ``-seg``) mask-coefficient branches per level, a residual SwiGLU text
projection, BatchNorm contrastive scoring, mask prototypes, and YOLO26's one-to-one branch; or, for prompt-free
checkpoints, a built-in vocabulary scored by fixed 1×1 convs behind a proposal filter (ultralytics' LRPCHead).

Built from ultralytics' blocks as its ``YOLOEDetect`` / ``YOLOESegment`` / ``YOLOESegment26`` build them (same
widths, same layer order), so converted weights load one to one. The text projection is part of the model:
:meth:`YOLOEHead.forward` takes raw L2-normalised text-encoder outputs and projects them itself (ultralytics'
``get_tpe``), so a vocabulary, its cache and an exported graph all hold raw encoder outputs.

Visual prompts: ultralytics' ``SAVPE`` (``head.savpe``, kept when ``config.head.savpe``; converted checkpoints carry
it) turns prompt masks on the neck's features into embeddings in the *projected* space, which the scorers take as they
are (:mod:`ovdet.model.visual`). So the head also takes a per-class flag, ``projected``: rows already projected skip
the text projection (they are only L2-normalised), in :meth:`YOLOEHead.forward` and :meth:`YOLOEHead.fold_text` alike.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn
from ultralytics.nn.modules import Conv, DWConv, Proto
from ultralytics.nn.modules.block import SAVPE, BNContrastiveHead, Proto26, Residual, SwiGLUFFN
from ultralytics.utils.tal import make_anchors

from .config import HeadConfig
from .fuse import score_regions
from .head import HeadOutput

__all__ = ["YOLOEHead", "PROPOSAL_THRESHOLD"]

PROPOSAL_THRESHOLD = 0.001  # ultralytics' LRPCHead default: anchors whose objectness is at or below it score nothing
_PROPOSAL_LEVELS = (0, 1)  # ultralytics enables the proposal filter on P3 and P4 only (LRPCHead(enabled=i != 2))


def _embed_branch(c_in: int, c_mid: int, c_out: int | None, kind: str) -> nn.Sequential:
    """ultralytics' ``cv3``: ``"conv"`` (legacy, YOLOv8) or ``"dwconv"`` (YOLO11/26); ``c_out=None`` leaves out the
    last 1×1 conv (prompt-free checkpoints keep it in their LRPC head instead)."""
    if kind == "conv":
        layers: list[nn.Module] = [Conv(c_in, c_mid, 3), Conv(c_mid, c_mid, 3)]
    else:
        layers = [nn.Sequential(DWConv(c_in, c_in, 3), Conv(c_in, c_mid, 1)),
                  nn.Sequential(DWConv(c_mid, c_mid, 3), Conv(c_mid, c_mid, 1))]  # fmt: skip
    if c_out is not None:
        layers.append(nn.Conv2d(c_mid, c_out, 1))
    return nn.Sequential(*layers)


class _Branch(nn.Module):
    """One set of per-level branches (one-to-many, or YOLO26's one-to-one copy)."""

    def __init__(self, in_channels: tuple[int, ...], embed_dim: int, config: HeadConfig, c_emb: int):
        super().__init__()
        c_box = max(16, in_channels[0] // 4, config.reg_max * 4)
        self.reg_max = config.reg_max
        self.box = nn.ModuleList(
            nn.Sequential(Conv(c, c_box, 3), Conv(c_box, c_box, 3), nn.Conv2d(c_box, 4 * config.reg_max, 1))
            for c in in_channels
        )
        k = config.prompt_free
        self.embed = nn.ModuleList(
            _embed_branch(c, c_emb, None if k else embed_dim, config.embed_branch) for c in in_channels
        )
        if k:  # ultralytics' LRPCHead: fixed vocabulary convs (its Linear layers are 1x1 convs) and objectness convs
            self.vocab = nn.ModuleList(nn.Conv2d(c_emb, k, 1) for _ in in_channels)
            self.proposal = nn.ModuleList(nn.Conv2d(c_emb, 1, 1) for _ in in_channels)
        else:
            self.scorers = nn.ModuleList(BNContrastiveHead(embed_dim) for _ in in_channels)
        self.masks = None
        if config.masks:
            c_mask = max(in_channels[0] // 4, config.masks)
            self.masks = nn.ModuleList(
                nn.Sequential(Conv(c, c_mask, 3), Conv(c_mask, c_mask, 3), nn.Conv2d(c_mask, config.masks, 1))
                for c in in_channels
            )
        self.prompt_free = bool(k)

    def forward(
        self, feats: list[torch.Tensor], text: torch.Tensor | None, folded: list[tuple[torch.Tensor, torch.Tensor]] | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``(box logits (B, 4R, A), class logits (B, K, A), mask coefficients (B, M, A) or None)``."""
        b = feats[0].shape[0]
        boxes = torch.cat([m(x).view(b, 4 * self.reg_max, -1) for m, x in zip(self.box, feats)], 2)
        logits = []
        for i, x in enumerate(feats):
            if self.prompt_free:
                region = self.embed[i](x)  # (B, C, H, W)
                scores = self.vocab[i](region).flatten(2)  # (B, K, H*W)
                if i in _PROPOSAL_LEVELS:  # anchors the proposal filter rejects score nothing (sigmoid(-inf) = 0)
                    rejected = self.proposal[i](region).flatten(2).sigmoid() <= PROPOSAL_THRESHOLD  # (B, 1, H*W)
                    scores = scores.masked_fill(rejected, float("-inf"))
            elif folded is not None:
                weight, bias = folded[i]
                scores = F.conv2d(self.embed[i][:-1](x), weight, bias).flatten(2)
            elif self.training:  # ultralytics' scorer, which wants one text per image
                scores = self.scorers[i](self.embed[i](x), text.expand(b, -1, -1)).flatten(2)  # (B, K, H*W)
            else:  # the same values, the text folded in on the fly: no per-image text, no reshape bakes K in
                scores = score_regions(self.embed[i], self.scorers[i], x, text)
            logits.append(scores)
        coefficients = None
        if self.masks is not None:
            coefficients = torch.cat([m(x).view(b, m[-1].out_channels, -1) for m, x in zip(self.masks, feats)], 2)
        return boxes, torch.cat(logits, 2), coefficients


class YOLOEHead(nn.Module):
    """YOLOE's head over P3-P5 features.

    ``forward(feats, text, projected=None)``: ``feats`` per-level ``(B, C_i, H_i, W_i)``; ``text`` ``(B, K, D)`` raw,
    L2-normalised text-encoder embeddings (ignored by a prompt-free head, which may get ``None``); ``projected`` an
    optional ``(K,)`` bool marking rows that are already in the projected space (visual prompts). Returns a :class:`HeadOutput`
    with ``mask_coefficients`` and ``protos`` for ``-seg`` layouts. An end-to-end head (YOLO26) answers with its
    one-to-one branch when :attr:`end2end` is set (the default), else with its one-to-many branch; in training mode it
    returns the one-to-one outputs with the one-to-many ones under ``one2many`` (both are trained).

    Args:
        in_channels: Channels of each input level.
        embed_dim: Text-embedding dimension D.
        config: The head's layout (see :class:`~ovdet.model.config.HeadConfig`).
        strides: Stride of each level.
    """

    def __init__(self, in_channels: tuple[int, ...], embed_dim: int, config: HeadConfig, strides: tuple[int, ...]):
        super().__init__()
        if len(in_channels) != len(strides):
            raise ValueError(f"{len(in_channels)} input levels but {len(strides)} strides")
        self.in_channels = tuple(in_channels)
        self.reg_max = config.reg_max
        self.embed_dim = embed_dim
        self.prompt_free = config.prompt_free
        self.register_buffer("level_strides", torch.tensor(strides, dtype=torch.float32), persistent=False)
        c_emb = config.embed_channels or max(in_channels[0], 80)
        # the residual SwiGLU text projection (ultralytics' reprta); a prompt-free checkpoint no longer has it
        self.text_projection = None if config.prompt_free else Residual(SwiGLUFFN(embed_dim, embed_dim))
        self.one2many = _Branch(self.in_channels, embed_dim, config, c_emb)
        self.one2one = copy.deepcopy(self.one2many) if config.end2end else None
        self.end2end = config.end2end  # which branch answers at inference; see the class docstring
        for branch in (self.one2many, self.one2one):  # as ultralytics' YOLOEDetect.bias_init (weights built here)
            if branch is None:
                continue
            for i, box in enumerate(branch.box):
                nn.init.constant_(box[-1].bias, 2.0)
                if not config.prompt_free:
                    nn.init.zeros_(branch.embed[i][-1].bias)
                    nn.init.constant_(branch.scorers[i].bias, math.log(5 / 80 / (640 / strides[i]) ** 2))
        # visual prompts (ultralytics' SAVPE, as YOLOEDetect builds it); not trained here, so it never holds up DDP
        self.savpe = SAVPE(self.in_channels, c_emb, embed_dim).requires_grad_(False) if config.savpe else None
        self.proto: nn.Module | None = None
        if config.masks:
            if config.proto == "yolo26":
                self.proto = Proto26(self.in_channels, config.proto_channels, config.masks)
                self.proto.semseg = None  # the training-only semantic head: ovdet trains boxes, so it is not kept
            else:
                self.proto = Proto(in_channels[0], config.proto_channels, config.masks)

    def project_text(self, text: torch.Tensor, projected: torch.Tensor | None = None) -> torch.Tensor:
        """Raw text embeddings ``(..., K, D)`` → the L2-normalised projected embeddings the scorers use (``get_tpe``);
        rows flagged in ``projected`` ``(K,)`` are already projected and only normalised."""
        if self.text_projection is None:
            raise RuntimeError("a prompt-free head has no text projection")
        out = F.normalize(self.text_projection(text), dim=-1)
        if projected is not None:
            out = torch.where(projected.bool()[:, None], F.normalize(text, dim=-1), out)
        return out

    def forward(
        self, feats: list[torch.Tensor], text: torch.Tensor | None, projected: torch.Tensor | None = None
    ) -> HeadOutput:
        text = None if self.prompt_free or text is None else self.project_text(text, projected)
        if not self.prompt_free and text is None:
            raise ValueError("a text-prompted YOLOE head needs text embeddings")
        return self._outputs(feats, text, folded=False)

    def _outputs(self, feats: list[torch.Tensor], text: torch.Tensor | None, *, folded: bool) -> HeadOutput:
        anchors, strides = make_anchors(feats, self.level_strides, 0.5)
        protos = None
        if isinstance(self.proto, Proto26):  # on detached features, without its training-only semantic head
            protos = self.proto([x.detach() for x in feats], return_semantic=False)
        elif self.proto is not None:
            protos = self.proto(feats[0])

        def run(name: str, inputs: list[torch.Tensor]) -> HeadOutput:
            branch = getattr(self, name)
            weights = None
            if folded:  # buffers registered by fold_text: they move with .to() and are never saved
                weights = [(getattr(self, f"folded_weight_{name}_{i}"), getattr(self, f"folded_bias_{name}_{i}"))
                           for i in range(len(inputs))]  # fmt: skip
            boxes, logits, coefficients = branch(inputs, text, weights)
            return HeadOutput(boxes, logits, anchors, strides, coefficients, protos)

        if self.one2one is None:
            return run("one2many", feats)
        if self.training:  # the one-to-one branch learns on detached features, as in ultralytics
            return run("one2one", [x.detach() for x in feats])._replace(one2many=run("one2many", feats))
        return run("one2one" if self.end2end else "one2many", feats)

    # ------------------------------------------------------------------ inference with a folded vocabulary
    def fold_text(self, text: torch.Tensor, projected: torch.Tensor | None = None) -> None:
        """Fold the projection of fixed raw text ``(K, D)`` (rows flagged in ``projected`` are already projected),
        each scorer's BatchNorm, scale and bias into one 1×1 conv per level and branch (ultralytics'
        ``YOLOEDetect.fuse``), used by :meth:`forward_folded`."""
        from .fuse import fold_scorer

        if self.prompt_free:
            return
        projected = self.project_text(text.to(self.text_projection.m.w12.weight), projected)
        for name in ("one2many", "one2one"):
            branch = getattr(self, name)
            if branch is None:
                continue
            for i, (embed, scorer) in enumerate(zip(branch.embed, branch.scorers)):
                weight, bias, _ = fold_scorer(embed[-1], scorer, projected)  # (K, C): a 1x1 conv's weight
                weight = weight[:, :, None, None]
                self.register_buffer(f"folded_weight_{name}_{i}", weight.to(embed[-1].weight), persistent=False)
                self.register_buffer(f"folded_bias_{name}_{i}", bias.to(embed[-1].weight), persistent=False)

    def forward_folded(self, feats: list[torch.Tensor]) -> HeadOutput:
        """:meth:`forward` against the text given to :meth:`fold_text`."""
        return self._outputs(feats, None, folded=not self.prompt_free)
