"""The entry points: a config name, a saved folder or a weights name becomes a ready ``OVDetector``."""

from __future__ import annotations

import logging
import os
from typing import Any

from .io import weights as weights_table
from .model import OVDetector, build_detector, list_configs, load_config
from .model.device import resolve_device
from .model.config import ModelConfig
from .text import DEFAULT_TEXT_ENCODER, TextEncoder

__all__ = ["build", "load", "list_models", "list_weights", "from_ultralytics"]

logger = logging.getLogger(__name__)


_CONFIG_ENCODER: Any = object()  # "the encoder the config names"


def build(
    config: str | os.PathLike | ModelConfig,
    text_encoder: str | TextEncoder | None = _CONFIG_ENCODER,
    *,
    device: str = "cpu",
) -> OVDetector:
    """A detector with random weights.

    Args:
        config: A shipped config name (see :func:`list_models`, e.g. ``"ovdet-s"``), a YAML path, or a
            ``ModelConfig``.
        text_encoder: A text-encoder spec (see :mod:`ovdet.text.spec`), a ready ``TextEncoder``, or ``None`` for a
            model that only takes ready embeddings (then the config must set ``embed_dim``). By default, the
            encoder the config names (``text_encoder``: e.g. MobileCLIP-B for YOLOE), else ``ViT-B-32-quickgelu:openai``.
        device: Where the model lives.

    Raises:
        UnknownModelError: unknown config name or text encoder.
        ConfigError: a malformed config, a text dimension that does not fit it, or a device this machine lacks.
    """
    dev = resolve_device(device)
    model_config = load_config(config)
    if text_encoder is _CONFIG_ENCODER:
        text_encoder = model_config.text_encoder or DEFAULT_TEXT_ENCODER
    encoder = TextEncoder(text_encoder) if isinstance(text_encoder, str) else text_encoder
    return build_detector(model_config, text_encoder=encoder).to(dev)


def load(
    path: str | os.PathLike | None = None, *, device: str = "cpu", text_encoder: str | None = None
) -> OVDetector:
    """A trained detector: a folder written by ``save()``, a known weights name, or ``None`` for the default model.

    Raises:
        CheckpointError: the folder is not a saved model, or no default model is bundled.
        UnknownModelError: neither a folder nor a known weights name (the message lists the known names).
        PickleRefusedError: a pickle checkpoint was given (the message says how to convert it).
        ConfigError: ``device`` does not exist on this machine, or ``text_encoder`` is not the model's tower.

    ``text_encoder`` replaces the saved encoder by the same tower from elsewhere, e.g. its weights as a local file
    where the pretrained tag cannot be downloaded: ``ovdet.load("yolov8s-worldv2", text_encoder=
    "ViT-B-32-quickgelu:/path/open_clip_model.safetensors")``.
    """
    from .io.resolve import load_model

    return load_model(path, device=str(resolve_device(device)), text_encoder=text_encoder)


def from_ultralytics(
    path: str | os.PathLike,
    *,
    trust_pickle: bool = False,
    text_encoder: str | TextEncoder | None = None,
    device: str = "cpu",
) -> OVDetector:
    """Convert an ultralytics YOLO-World (v1 ``yolov8*-world.pt``, v2 ``yolov8*-worldv2.pt``) or YOLOE
    (``yoloe-{v8,11,26}*[-seg][-pf].pt``) checkpoint into an ``OVDetector``.

    The file is a pickle, so it is read only with ``trust_pickle=True``. Save the result with ``model.save(folder)``
    to get a folder that :func:`load` reads without any pickle. ``text_encoder`` defaults to the family's own. See
    :func:`ovdet.io.convert.from_ultralytics`.

    Raises:
        PickleRefusedError: ``trust_pickle`` is not ``True``.
        CheckpointError: the file is not readable, or holds another kind of model (closed-vocabulary YOLO, pose,
            OBB, classification...; the message names it).
    """
    from .io.convert import from_ultralytics as convert

    return convert(path, trust_pickle=trust_pickle, text_encoder=text_encoder, device=device)


def list_models() -> list[str]:
    """Names of the shipped architecture configs, for :func:`build`."""
    return list_configs()


def list_weights() -> list[str]:
    """Names of known weights, for :func:`load`."""
    return sorted(weights_table.KNOWN_WEIGHTS)
