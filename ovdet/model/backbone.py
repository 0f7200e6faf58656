"""YOLOv8's CSPDarknet backbone, built from ultralytics' blocks, returning P3/P4/P5 features."""

from __future__ import annotations

import torch
from torch import nn
from ultralytics.nn.modules import C2f, Conv, SPPF
from ultralytics.utils.ops import make_divisible

from .config import ScaleConfig

__all__ = ["CSPDarknet", "scaled_channels", "scaled_depth"]


def scaled_channels(channels: int, scale: ScaleConfig) -> int:
    """Channels after width scaling, as ultralytics' ``parse_model`` computes them."""
    return make_divisible(min(channels, scale.max_channels) * scale.width, 8)


def scaled_depth(repeats: int, scale: ScaleConfig) -> int:
    """Block repeats after depth scaling, as ultralytics' ``parse_model`` computes them."""
    return max(round(repeats * scale.depth), 1) if repeats > 1 else repeats


class CSPDarknet(nn.Module):
    """YOLOv8 backbone: a strided conv stem, four Conv+C2f stages and SPPF.

    ``forward(images (B, 3, H, W)) -> [P3 (B, C3, H/8, W/8), P4 (B, C4, H/16, W/16), P5 (B, C5, H/32, W/32)]``.
    ``out_channels`` gives (C3, C4, C5) and ``strides`` (8, 16, 32).
    """

    strides = (8, 16, 32)

    def __init__(self, scale: ScaleConfig, in_channels: int = 3):
        super().__init__()
        c = [scaled_channels(x, scale) for x in (64, 128, 256, 512, 1024)]
        d = [scaled_depth(n, scale) for n in (3, 6, 6, 3)]
        self.stem = Conv(in_channels, c[0], 3, 2)
        self.stage2 = nn.Sequential(Conv(c[0], c[1], 3, 2), C2f(c[1], c[1], d[0], True))
        self.stage3 = nn.Sequential(Conv(c[1], c[2], 3, 2), C2f(c[2], c[2], d[1], True))
        self.stage4 = nn.Sequential(Conv(c[2], c[3], 3, 2), C2f(c[3], c[3], d[2], True))
        sppf = SPPF(c[4], c[4], 5)
        sppf.cv1.act = nn.SiLU()  # YOLOv8's SPPF activates cv1; newer ultralytics defaults it off (YOLO26)
        self.stage5 = nn.Sequential(Conv(c[3], c[4], 3, 2), C2f(c[4], c[4], d[3], True), sppf)
        self.out_channels = (c[2], c[3], c[4])

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        x = self.stage2(self.stem(images))
        p3 = self.stage3(x)
        p4 = self.stage4(p3)
        p5 = self.stage5(p4)
        return [p3, p4, p5]
