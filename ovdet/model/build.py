"""Config → modules → ``OVDetector``, through two small tables: backbone families and head kinds."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from torch import nn
from ultralytics.utils.torch_utils import initialize_weights

from ..errors import ConfigError
from ..text.encoder import TextEncoder
from .backbone import CSPDarknet
from .config import ModelConfig
from .detector import OVDetector
from .head import OVHead
from .neck import PAN
from .yolo11 import C3k2Backbone
from .yoloe_head import YOLOEHead

__all__ = ["build_detector", "BACKBONES", "HEADS"]

# config.backbone.kind -> builder(config) returning a module with out_channels and strides
BACKBONES: dict[str, Callable[[ModelConfig], nn.Module]] = {
    "yolov8": lambda c: CSPDarknet(c.scale),
    "yolo11": lambda c: C3k2Backbone(c.scale, c.backbone),
    "yolo26": lambda c: C3k2Backbone(c.scale, c.backbone),
}
# config.head.kind -> head class (in_channels, embed_dim, head config, strides)
HEADS: dict[str, Callable[..., nn.Module]] = {"world": OVHead, "yoloe": YOLOEHead}


def build_detector(config: ModelConfig, *, text_encoder: TextEncoder | None = None) -> OVDetector:
    """Build a detector with random weights from ``config``.

    The text dimension is ``config.embed_dim`` if set, else the text encoder's; the returned model's config has it
    filled in.

    Raises:
        ConfigError: neither gives a text dimension, or they disagree.
    """
    dim = config.embed_dim
    if text_encoder is not None:
        if dim is not None and dim != text_encoder.dim:
            raise ConfigError(
                f"config '{config.name}' needs {dim}-d text embeddings but text encoder '{text_encoder.spec}' gives "
                f"{text_encoder.dim}-d; pick a matching encoder (YOLO-World layouts use ViT-B-32-quickgelu:openai)"
            )
        dim = text_encoder.dim
    if dim is None:
        raise ConfigError(f"config '{config.name}' sets no embed_dim and no text encoder was given to take it from")
    config = dataclasses.replace(config, embed_dim=dim)
    backbone = BACKBONES[config.backbone.kind](config)
    neck = PAN(backbone.out_channels, config.scale, config.neck, dim, c3k=config.backbone.c3k)
    head = HEADS[config.head.kind](neck.out_channels, dim, config.head, backbone.strides)
    model = OVDetector(backbone, neck, head, config=config, text_encoder=text_encoder)
    # YOLOv8's BatchNorm settings (eps 1e-3, momentum 0.03), as ultralytics sets them on every model it builds. eps is
    # not in the state dict, so converted YOLO-World weights only reproduce ultralytics' outputs with these.
    initialize_weights(model)
    return model
