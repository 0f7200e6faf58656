"""YOLO-World checkpoints, v1 (``yolov8{s,m,l,x}-world.pt``) and v2 (``yolov8{n,s,m,l,x}-worldv2.pt``), weight for weight.

v2 (``yolov8-worldv2.yaml``): CSPDarknet layers 0-9, the text-guided C2fAttn PAN (layers 12-21), WorldDetect with
BatchNorm contrastive scorers. v1 (``yolov8-world.yaml``) adds ImagePoolingAttn (layer 16, which updates the text
embeddings from the image before the bottom-up blocks) and scores with the L2-normalised contrastive head. Both carry
their class names and class embeddings (``txt_feats``: CLIP ViT-B/32 outputs) as the vocabulary, and the text
encoder they were trained with, ``ViT-B-32-quickgelu:openai``.
"""

from __future__ import annotations

import dataclasses

from torch import nn

from ...errors import CheckpointError
from ...model import OVDetector, build_detector
from ...model.config import HeadConfig, ModelConfig, NeckConfig, load_config
from ...text import TextEncoder
from ...text.spec import YOLO_WORLD_TEXT_ENCODER
from .common import (
    Layout, check_dfl, check_layout, check_module_settings, check_unfused, converted_state_dict, layer_types,
    vocabulary_from, yaml_scale,
)  # fmt: skip

__all__ = ["SUPPORTED", "convert_world_model", "is_world_model"]

SUPPORTED = (
    "ovdet imports YOLO-World v1 and v2 (ultralytics' yolov8{s,m,l,x}-world.pt, yolov8{n,s,m,l,x}-worldv2.pt) and "
    "YOLOE (yoloe-v8/11/26{n,s,m,l,x}[-seg][-pf].pt) checkpoints"
)
_BACKBONE: Layout = (
    ("Conv", -1), ("Conv", -1), ("C2f", -1), ("Conv", -1), ("C2f", -1), ("Conv", -1), ("C2f", -1), ("Conv", -1),
    ("C2f", -1), ("SPPF", -1),
)  # fmt: skip
_V2: Layout = _BACKBONE + (
    ("Upsample", -1), ("Concat", (-1, 6)), ("C2fAttn", -1),  # 10-12
    ("Upsample", -1), ("Concat", (-1, 4)), ("C2fAttn", -1),  # 13-15: P3 out
    ("Conv", 15), ("Concat", (-1, 12)), ("C2fAttn", -1),  # 16-18: P4 out
    ("Conv", -1), ("Concat", (-1, 9)), ("C2fAttn", -1),  # 19-21: P5 out
    ("WorldDetect", (15, 18, 21)),  # 22
)  # fmt: skip
_V1: Layout = _BACKBONE + (
    ("Upsample", -1), ("Concat", (-1, 6)), ("C2fAttn", -1),  # 10-12
    ("Upsample", -1), ("Concat", (-1, 4)), ("C2fAttn", -1),  # 13-15: P3 out
    ("ImagePoolingAttn", (15, 12, 9)),  # 16: text updated from the image
    ("Conv", 15), ("Concat", (-1, 12)), ("C2fAttn", -1),  # 17-19: P4 out
    ("Conv", -1), ("Concat", (-1, 9)), ("C2fAttn", -1),  # 20-22: P5 out
    ("WorldDetect", (15, 19, 22)),  # 23
)  # fmt: skip
_BACKBONE_MODULES = {
    0: "backbone.stem", 1: "backbone.stage2.0", 2: "backbone.stage2.1", 3: "backbone.stage3.0",
    4: "backbone.stage3.1", 5: "backbone.stage4.0", 6: "backbone.stage4.1", 7: "backbone.stage5.0",
    8: "backbone.stage5.1", 9: "backbone.stage5.2",
}  # fmt: skip
_V2_MODULES = {**_BACKBONE_MODULES, 12: "neck.top_down4", 15: "neck.top_down3", 16: "neck.down3",
               18: "neck.bottom_up4", 19: "neck.down4", 21: "neck.bottom_up5"}  # fmt: skip
_V1_MODULES = {**_BACKBONE_MODULES, 12: "neck.top_down4", 15: "neck.top_down3", 16: "neck.image_pooling",
               17: "neck.down3", 19: "neck.bottom_up4", 20: "neck.down4", 22: "neck.bottom_up5"}  # fmt: skip
_HEAD_MODULES = {"cv2": "head.box_branch", "cv3": "head.embed_branch", "cv4": "head.scorers"}


def is_world_model(module: nn.Module) -> bool:
    """Whether ``module`` is an ultralytics YOLO-World model (its head is a ``WorldDetect``)."""
    types = layer_types(module)
    return bool(types) and types[-1] == "WorldDetect"


def convert_world_model(module: nn.Module, *, text_encoder: str | TextEncoder | None = None) -> OVDetector:
    """Convert an (unpickled or freshly built) ultralytics ``WorldModel``, v1 or v2, into an ``OVDetector``.

    Args:
        module: The ultralytics model.
        text_encoder: Encoder for later ``set_classes`` calls (default YOLO-World's own, loaded lazily).

    Raises:
        CheckpointError: another architecture, or weights that do not fit the layout.
    """
    v1 = "ImagePoolingAttn" in layer_types(module)
    family = "YOLO-World v1" if v1 else "YOLO-World v2"
    layout, modules = (_V1, _V1_MODULES) if v1 else (_V2, _V2_MODULES)
    check_layout(module, layout, family, SUPPORTED)
    check_unfused(module)
    detect = module.model[-1]
    head_index = len(layout) - 1
    scorer = "ContrastiveHead" if v1 else "BNContrastiveHead"
    if not all(type(h).__name__ == scorer for h in detect.cv4):
        raise CheckpointError(
            f"the head scores with {type(detect.cv4[0]).__name__}, where {family} uses {scorer}; {SUPPORTED}"
        )
    if getattr(detect, "one2one_cv2", None) is not None:
        raise CheckpointError(f"the head is an end-to-end (NMS-free) variant, not imported by ovdet; {SUPPORTED}")
    embed_dim = int(detect.cv3[0][-1].out_channels)
    encoder = TextEncoder(text_encoder or YOLO_WORLD_TEXT_ENCODER) if not isinstance(text_encoder, TextEncoder) else text_encoder
    if encoder.dim != embed_dim:
        raise CheckpointError(
            f"this checkpoint scores {embed_dim}-d text embeddings but text encoder '{encoder.spec}' gives "
            f"{encoder.dim}-d; YOLO-World uses {YOLO_WORLD_TEXT_ENCODER} (512-d)"
        )
    model = build_detector(_model_config(module, embed_dim, v1), text_encoder=encoder)

    def rename(index: int, rest: list[str]) -> str | None:
        if index in modules:
            return ".".join([modules[index], *rest])
        if index == head_index and rest:
            if rest[0] == "dfl":
                return None
            if rest[0] in _HEAD_MODULES:
                return ".".join([_HEAD_MODULES[rest[0]], *rest[1:]])
        raise CheckpointError(f"unexpected weights in layer {index} ({'.'.join(rest)}) for {family}; {SUPPORTED}")

    for key, value in module.state_dict().items():
        if key.startswith(f"model.{head_index}.dfl."):
            check_dfl(value)
    model.load_state_dict(converted_state_dict(module, model, rename, family, SUPPORTED), strict=True)
    check_module_settings(module, model, _settings_rename(rename), family, SUPPORTED)
    vocab = vocabulary_from(module, getattr(module, "txt_feats", None), embed_dim, "txt_feats")
    if vocab is not None:
        model.set_vocabulary(vocab)
    return model.eval()


def _settings_rename(rename):  # noqa: ANN001, ANN202: module names, where unknown layers are not errors
    def inner(index: int, rest: list[str]) -> str | None:
        try:
            return rename(index, rest)
        except CheckpointError:
            return None

    return inner


def _model_config(module: nn.Module, embed_dim: int, v1: bool) -> ModelConfig:
    """The ovdet config of the checkpoint: scaling from its YAML, head widths from its tensors."""
    scale, scale_config = yaml_scale(module)
    heads = tuple(int(row[3][2]) for row in module.yaml.get("head", []) if row[2] == "C2fAttn")
    if len(heads) != 4:
        raise CheckpointError(f"the model's YAML has {len(heads)} C2fAttn rows, YOLO-World has 4; {SUPPORTED}")
    detect = module.model[-1]
    prefix = "yoloworld" if v1 else "yoloworldv2"
    name = f"{prefix}-{scale}" if scale else f"{prefix}-custom"
    base = load_config(name) if scale in ("n", "s", "m", "l", "x") else ModelConfig(name)
    embed_channels = int(detect.cv3[0][0].conv.out_channels)  # ultralytics: max(P3 channels, min(nc, 100))
    return dataclasses.replace(
        base,
        scale=scale_config,
        neck=NeckConfig(text_guided=True, attn_heads=heads, image_pooling=v1),  # type: ignore[arg-type]
        head=HeadConfig(reg_max=int(detect.reg_max), norm="l2" if v1 else "batchnorm", embed_channels=embed_channels),
        embed_dim=embed_dim,
        text_encoder=YOLO_WORLD_TEXT_ENCODER,
    )
