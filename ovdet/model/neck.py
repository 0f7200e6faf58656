"""YOLOv8's PAN neck, optionally text-guided as in YOLO-World (C2fAttn: max-sigmoid attention over the vocabulary)."""

from __future__ import annotations

import torch
from torch import nn
from ultralytics.nn.modules import C2f, C2fAttn, Conv

from .backbone import scaled_channels, scaled_depth
from .config import NeckConfig, ScaleConfig

__all__ = ["PAN"]


class PAN(nn.Module):
    """Top-down then bottom-up feature pyramid over P3/P4/P5.

    ``forward(feats, text)``: ``feats`` as the backbone returns them; ``text`` ``(B, K, D)`` text embeddings, used
    only by a text-guided neck (pass ``None`` otherwise). Returns three maps with ``out_channels`` channels.

    Args:
        in_channels: Channels of P3, P4, P5.
        scale: Compound scaling shared with the backbone.
        neck: Whether the blocks are text-guided, and their attention heads.
        text_dim: Text-embedding dimension (the C2fAttn guide channels); required when text-guided.
    """

    def __init__(self, in_channels: tuple[int, int, int], scale: ScaleConfig, neck: NeckConfig, text_dim: int | None):
        super().__init__()
        c3, c4, c5 = in_channels
        o3, o4, o5 = (scaled_channels(x, scale) for x in (256, 512, 1024))
        n = scaled_depth(3, scale)
        self.text_guided = neck.text_guided
        if self.text_guided and not text_dim:
            raise ValueError("a text-guided neck needs text_dim")

        def block(c_in: int, c_out: int, heads: int) -> nn.Module:
            if not self.text_guided:
                return C2f(c_in, c_out, n)
            # ultralytics' parse_model scales the heads with width and makes the attention as wide as the block
            nh = int(max(round(min(heads, scale.max_channels // 2 // 32)) * scale.width, 1)) if heads > 1 else heads
            hidden = int(c_out * 0.5)
            if hidden % nh:
                raise ValueError(f"C2fAttn hidden channels {hidden} are not divisible by {nh} heads")
            return C2fAttn(c_in, c_out, n, ec=hidden, nh=nh, gc=text_dim)

        h = neck.attn_heads
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.top_down4 = block(c5 + c4, o4, h[0])
        self.top_down3 = block(o4 + c3, o3, h[1])
        self.down3 = Conv(o3, o3, 3, 2)
        self.bottom_up4 = block(o3 + o4, o4, h[2])
        self.down4 = Conv(o4, o4, 3, 2)
        self.bottom_up5 = block(o4 + c5, o5, h[3])
        self.out_channels = (o3, o4, o5)

    def _run(self, block: nn.Module, x: torch.Tensor, text: torch.Tensor | None) -> torch.Tensor:
        return block(x, text) if self.text_guided else block(x)

    def forward(self, feats: list[torch.Tensor], text: torch.Tensor | None = None) -> list[torch.Tensor]:
        p3, p4, p5 = feats
        t4 = self._run(self.top_down4, torch.cat([self.upsample(p5), p4], 1), text)
        n3 = self._run(self.top_down3, torch.cat([self.upsample(t4), p3], 1), text)
        n4 = self._run(self.bottom_up4, torch.cat([self.down3(n3), t4], 1), text)
        n5 = self._run(self.bottom_up5, torch.cat([self.down4(n4), p5], 1), text)
        return [n3, n4, n5]
