"""YOLO11's and YOLO26's backbone and neck blocks (C3k2, SPPF, C2PSA), built from ultralytics' modules.

The layouts follow ultralytics' ``yoloe-11.yaml`` and ``yoloe-26.yaml`` (the same as ``yolo11.yaml`` and ``yolo26.yaml``)
with ``parse_model``'s scaling: channels × width (capped), repeats × depth, and C3k inner blocks in every C3k2 for the
m, l and x scales (``BackboneConfig.c3k``). YOLO26 differs in three places: its SPPF is residual with an unactivated
first conv, its neck's C3k2 blocks always use C3k, and its last neck block adds a PSA attention block.
"""

from __future__ import annotations

import torch
from torch import nn
from ultralytics.nn.modules import C2PSA, SPPF, C3k2, Conv

from .backbone import scaled_channels, scaled_depth
from .config import BackboneConfig, ScaleConfig

__all__ = ["C3k2Backbone", "c3k2_neck_block"]


class C3k2Backbone(nn.Module):
    """YOLO11 / YOLO26 backbone: strided convs with C3k2 stages, SPPF and C2PSA.

    ``forward(images (B, 3, H, W)) -> [P3 (B, C3, H/8, W/8), P4 (B, C4, H/16, W/16), P5 (B, C5, H/32, W/32)]``, P5 being
    C2PSA's output (ultralytics' layers 4, 6 and 10). ``out_channels`` gives (C3, C4, C5) and ``strides`` (8, 16, 32).

    Args:
        scale: Compound scaling.
        config: The family (``"yolo11"`` or ``"yolo26"``) and whether every C3k2 uses C3k blocks.
        in_channels: Image channels.
    """

    strides = (8, 16, 32)

    def __init__(self, scale: ScaleConfig, config: BackboneConfig, in_channels: int = 3):
        super().__init__()
        if config.kind not in ("yolo11", "yolo26"):
            raise ValueError(f"C3k2Backbone builds the yolo11 and yolo26 families, not {config.kind!r}")
        c = [scaled_channels(x, scale) for x in (64, 128, 256, 512, 1024)]
        n = scaled_depth(2, scale)
        force = config.c3k
        self.stem = Conv(in_channels, c[0], 3, 2)
        self.stage2 = nn.Sequential(Conv(c[0], c[1], 3, 2), C3k2(c[1], c[2], n, force, 0.25))
        self.stage3 = nn.Sequential(Conv(c[2], c[2], 3, 2), C3k2(c[2], c[3], n, force, 0.25))
        self.stage4 = nn.Sequential(Conv(c[3], c[3], 3, 2), C3k2(c[3], c[3], n, True))
        if config.kind == "yolo26":
            sppf = SPPF(c[4], c[4], 5, 3, True)  # residual; cv1 not activated (ultralytics' default)
        else:
            sppf = SPPF(c[4], c[4], 5)
            sppf.cv1.act = nn.SiLU()  # YOLO11 rows predate the unactivated SPPF: parse_model activates cv1
        self.stage5 = nn.Sequential(Conv(c[3], c[4], 3, 2), C3k2(c[4], c[4], n, True), sppf, C2PSA(c[4], c[4], n))
        self.out_channels = (c[3], c[3], c[4])

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        x = self.stage2(self.stem(images))
        p3 = self.stage3(x)
        p4 = self.stage4(p3)
        p5 = self.stage5(p4)
        return [p3, p4, p5]


def c3k2_neck_block(kind: str, c_in: int, c_out: int, position: str, scale: ScaleConfig, c3k: bool) -> nn.Module:
    """The C3k2 block at ``position`` (``top_down4``, ``top_down3``, ``bottom_up4``, ``bottom_up5``) of a YOLO11 or
    YOLO26 neck, as its YAML row and ``parse_model`` make it."""
    n = scaled_depth(2, scale)
    if kind == "yolo26":
        if position == "bottom_up5":  # [-1, 1, C3k2, [1024, True, 0.5, True]]: one block, with PSA attention
            return C3k2(c_in, c_out, 1, True, 0.5, True)
        return C3k2(c_in, c_out, n, True)
    return C3k2(c_in, c_out, n, c3k or position == "bottom_up5")
