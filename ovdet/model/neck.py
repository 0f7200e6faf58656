"""The PAN neck of YOLOv8, YOLO11 and YOLO26, optionally text-guided as in YOLO-World (C2fAttn: max-sigmoid attention
over the vocabulary; v1 adds ImagePoolingAttn, which updates the text embeddings from the image)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from ultralytics.nn.modules import C2f, C2fAttn, Conv, ImagePoolingAttn

from .backbone import scaled_channels, scaled_depth
from .config import NeckConfig, ScaleConfig
from .yolo11 import c3k2_neck_block

__all__ = ["PAN"]


class PAN(nn.Module):
    """Top-down then bottom-up feature pyramid over P3/P4/P5.

    ``forward(feats, text)``: ``feats`` as the backbone returns them; ``text`` ``(B, K, D)`` text embeddings (or
    ``(1, K, D)`` shared by the batch), used only by a text-guided neck (pass ``None`` otherwise). Returns three maps
    with ``out_channels`` channels. In eval mode the attention runs as batched matmuls
    (:func:`~ovdet.model.fuse.attention_with_text`), so exports keep the class count dynamic.

    Args:
        in_channels: Channels of P3, P4, P5.
        scale: Compound scaling shared with the backbone.
        neck: The block family, whether the blocks are text-guided, their attention heads, and image pooling.
        text_dim: Text-embedding dimension (the C2fAttn guide channels); required when text-guided.
        c3k: C3k inner blocks in every C3k2 (YOLO11 m, l, x); see :class:`~ovdet.model.config.BackboneConfig`.
    """

    def __init__(
        self,
        in_channels: tuple[int, int, int],
        scale: ScaleConfig,
        neck: NeckConfig,
        text_dim: int | None,
        *,
        c3k: bool = False,
    ):
        super().__init__()
        c3, c4, c5 = in_channels
        o3, o4, o5 = (scaled_channels(x, scale) for x in (256, 512, 1024))
        n = scaled_depth(3, scale)
        self.text_guided = neck.text_guided
        if self.text_guided and not text_dim:
            raise ValueError("a text-guided neck needs text_dim")

        def block(c_in: int, c_out: int, heads: int, position: str) -> nn.Module:
            if neck.kind != "yolov8":
                return c3k2_neck_block(neck.kind, c_in, c_out, position, scale, c3k)
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
        self.top_down4 = block(c5 + c4, o4, h[0], "top_down4")
        self.top_down3 = block(o4 + c3, o3, h[1], "top_down3")
        # YOLO-World v1 (yolov8-world.yaml layer 16): ImagePoolingAttn([P3 out, top-down P4, P5], text), ec 256 unscaled
        self.image_pooling = ImagePoolingAttn(256, (o3, o4, c5), text_dim) if neck.image_pooling else None
        self.down3 = Conv(o3, o3, 3, 2)
        self.bottom_up4 = block(o3 + o4, o4, h[2], "bottom_up4")
        self.down4 = Conv(o4, o4, 3, 2)
        self.bottom_up5 = block(o4 + c5, o5, h[3], "bottom_up5")
        self.out_channels = (o3, o4, o5)

    def _run(self, block: nn.Module, x: torch.Tensor, text: torch.Tensor | None) -> torch.Tensor:
        if not self.text_guided:
            return block(x)
        if self.training:  # ultralytics' C2fAttn, which wants one text per image
            return block(x, text.expand(x.shape[0], -1, -1))
        from .fuse import c2f_attn_with_text

        return c2f_attn_with_text(block, x, text)

    def forward(self, feats: list[torch.Tensor], text: torch.Tensor | None = None) -> list[torch.Tensor]:
        return self._pyramid(feats, lambda name, x, t: self._run(getattr(self, name), x, t), text)

    def _pyramid(
        self,
        feats: list[torch.Tensor],
        run: Callable[[str, torch.Tensor, torch.Tensor | None], torch.Tensor],
        text: torch.Tensor | None,
    ) -> list[torch.Tensor]:
        """The top-down then bottom-up wiring; ``run(block_name, x, text)`` applies one of the four blocks. With image
        pooling, the bottom-up blocks see the text updated from the image (as ultralytics' ``WorldModel.predict``)."""
        p3, p4, p5 = feats
        t4 = run("top_down4", torch.cat([self.upsample(p5), p4], 1), text)
        n3 = run("top_down3", torch.cat([self.upsample(t4), p3], 1), text)
        if self.image_pooling is not None:
            # ultralytics' ImagePoolingAttn adds per-image updates to the text: it wants one text per image
            text = self.image_pooling([n3, t4, p5], text.expand(n3.shape[0], -1, -1))  # (B, K, D)
        n4 = run("bottom_up4", torch.cat([self.down3(n3), t4], 1), text)
        n5 = run("bottom_up5", torch.cat([self.down4(n4), p5], 1), text)
        return [n3, n4, n5]

    # ------------------------------------------------------------------ inference with a folded vocabulary
    _BLOCKS = ("top_down4", "top_down3", "bottom_up4", "bottom_up5")

    def fold_text(self, text: torch.Tensor) -> None:
        """Fold fixed text embeddings ``(K, D)`` into each C2fAttn's attention (see :mod:`ovdet.model.fuse`), used
        by :meth:`forward_folded`; a neck that is not text-guided has nothing to fold."""
        from .fuse import fold_attention

        if not self.text_guided:
            return
        if self.image_pooling is not None:  # the bottom-up blocks' text depends on the image: only the top folds
            self.register_buffer("folded_text", text.detach().clone(), persistent=False)
        for name in self._folded_blocks():
            attn = getattr(self, name).attn
            weight, bias, groups = fold_attention(attn, text)
            ref = attn.proj_conv.conv.weight
            self.register_buffer(f"folded_weight_{name}", weight.to(ref), persistent=False)
            self.register_buffer(f"folded_bias_{name}", bias.to(ref), persistent=False)
            setattr(self, f"_folded_groups_{name}", groups)

    def forward_folded(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        """:meth:`forward` against the text given to :meth:`fold_text`."""
        if not self.text_guided:
            return self.forward(feats)
        from .fuse import c2f_attn_folded

        folded = self._folded_blocks()

        def run(name: str, x: torch.Tensor, text: torch.Tensor | None) -> torch.Tensor:
            if name not in folded:
                return getattr(self, name)(x, text)
            weight, bias = getattr(self, f"folded_weight_{name}"), getattr(self, f"folded_bias_{name}")
            return c2f_attn_folded(getattr(self, name), x, weight, bias, getattr(self, f"_folded_groups_{name}"))

        text = None
        if self.image_pooling is not None:
            text = self.folded_text.to(feats[0].dtype).unsqueeze(0).expand(feats[0].shape[0], -1, -1)
        return self._pyramid(feats, run, text)

    def _folded_blocks(self) -> tuple[str, ...]:
        return self._BLOCKS[:2] if self.image_pooling is not None else self._BLOCKS
