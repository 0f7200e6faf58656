"""Import ultralytics checkpoints into ovdet, weight for weight: YOLO-World v1 and v2, YOLOE (v8, 11, 26; detection,
``-seg``, prompt-free ``-pf``).

An ultralytics ``.pt`` file is a pickle of Python objects: reading it can run any code the file carries. ovdet reads
one only in :mod:`ovdet.io.convert.checkpoint`, and only when the caller passes ``trust_pickle=True``. The result is
an ordinary :class:`~ovdet.OVDetector`; ``model.save(folder)`` then gives a safetensors + JSON folder that loads
without any pickle. :func:`from_ultralytics` routes by what the checkpoint holds (:mod:`.world`, :mod:`.yoloe`) and
refuses anything else with a message naming it: closed-vocabulary detection or segmentation, pose, oriented boxes,
classification, RT-DETR, unknown layouts.
"""

from __future__ import annotations

import os
from pathlib import Path

from torch import nn

from ...errors import CheckpointError
from ...model import OVDetector
from ...text import TextEncoder
from ...text.spec import YOLO_WORLD_TEXT_ENCODER
from .checkpoint import checkpoint_module, provenance, read_ultralytics_checkpoint
from .common import layer_types
from .fetch import converted_weights_dir, fetch_and_convert
from .world import SUPPORTED, convert_world_model, is_world_model
from .yoloe import TEXT_ENCODERS, convert_yoloe_model, is_yoloe_model

__all__ = ["YOLO_WORLD_TEXT_ENCODER", "TEXT_ENCODERS", "from_ultralytics", "convert_ultralytics_model",
           "read_ultralytics_checkpoint", "convert_world_model", "convert_yoloe_model", "fetch_and_convert",
           "converted_weights_dir", "describe_model"]  # fmt: skip

# the head (last layer) of ultralytics models ovdet does not import -> what the model is
_OTHER_HEADS = {
    "Detect": "a closed-vocabulary detection model (YOLOv8/11/26 and the like)",
    "v10Detect": "a closed-vocabulary YOLOv10 detection model",
    "Segment": "a closed-vocabulary instance-segmentation model",
    "Segment26": "a closed-vocabulary YOLO26 instance-segmentation model",
    "Pose": "a pose-estimation (keypoint) model",
    "Pose26": "a YOLO26 pose-estimation (keypoint) model",
    "OBB": "an oriented-bounding-box (OBB) model",
    "OBB26": "a YOLO26 oriented-bounding-box (OBB) model",
    "Classify": "an image-classification model",
    "RTDETRDecoder": "an RT-DETR model",
    "SemanticSegment": "a semantic-segmentation model",
    "Depth": "a depth-estimation model",
}


def describe_model(module: nn.Module) -> str:
    """What an ultralytics model is, in words, for error messages (e.g. ``"a pose-estimation (keypoint) model"``)."""
    types = layer_types(module)
    head = types[-1] if types else None
    if head in _OTHER_HEADS:
        return f"{_OTHER_HEADS[head]} ({type(module).__name__}, head {head})"
    return f"an unknown layout ({type(module).__name__}, head {head or 'none'})"


def convert_ultralytics_model(module: nn.Module, *, text_encoder: str | TextEncoder | None = None) -> OVDetector:
    """Convert an ultralytics model object (unpickled, or built from a YAML) into an ``OVDetector``.

    Args:
        module: A ``WorldModel``, ``YOLOEModel`` or ``YOLOESegModel`` (v1/v2, YOLOE v8/11/26, prompt-free included).
        text_encoder: Encoder for later ``set_classes`` calls; default: the one the family was trained with.

    Raises:
        CheckpointError: another kind of model (the message says which), or weights that do not fit the layout.
    """
    if not isinstance(getattr(module, "model", None), nn.Sequential):
        raise CheckpointError(f"the checkpoint holds a {type(module).__name__}, not an ultralytics model; {SUPPORTED}")
    if is_world_model(module):
        return convert_world_model(module, text_encoder=text_encoder)
    if is_yoloe_model(module):
        return convert_yoloe_model(module, text_encoder=text_encoder)
    what = describe_model(module)
    closed = "Detect" in what or "Segment" in what
    reason = ": it has no text-embedding head, so it cannot score free-text classes" if closed else ""
    raise CheckpointError(f"the checkpoint holds {what}{reason}. {SUPPORTED}")


def from_ultralytics(
    path: str | os.PathLike,
    *,
    trust_pickle: bool = False,
    text_encoder: str | TextEncoder | None = None,
    device: str = "cpu",
) -> OVDetector:
    """Convert an ultralytics YOLO-World or YOLOE checkpoint into an ovdet detector.

    >>> model = ovdet.from_ultralytics("yoloe-11s-seg.pt", trust_pickle=True)
    >>> model.save("yoloe-11s-seg")  # safetensors + JSON: ovdet.load("yoloe-11s-seg") needs no pickle

    Args:
        path: An ultralytics ``.pt`` file (final or training checkpoint; the EMA weights are used when present).
        trust_pickle: Must be ``True`` (see :func:`read_ultralytics_checkpoint`).
        text_encoder: Encoder for later ``set_classes`` calls; default: the family's own (YOLO-World: CLIP
            ViT-B/32, YOLOE v8/11: MobileCLIP-B, YOLOE-26: MobileCLIP2-B). Loaded lazily, so converting works offline.
        device: Where the returned model lives.

    Returns:
        An ``OVDetector`` in eval mode whose vocabulary is the checkpoint's classes.

    Raises:
        PickleRefusedError: ``trust_pickle`` is not ``True``.
        CheckpointError: the file is not readable, or holds another kind of model (named in the message).
    """
    checkpoint = read_ultralytics_checkpoint(path, trust_pickle=trust_pickle)
    module = checkpoint_module(checkpoint, path, SUPPORTED)
    model = convert_ultralytics_model(module, text_encoder=text_encoder)
    model.metadata["converted_from"] = provenance(checkpoint, path)
    return model.to(device)
