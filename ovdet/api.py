"""The entry points: a config name, a saved folder or a weights name becomes a ready ``OVDetector``."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from .errors import CheckpointError, UnknownModelError
from .io import weights as weights_table
from .model import OVDetector, build_detector, list_configs, load_config, load_detector
from .model.config import ModelConfig
from .text import DEFAULT_TEXT_ENCODER, TextEncoder
from .text.spec import YOLO_WORLD_TEXT_ENCODER

__all__ = ["build", "load", "list_models", "list_weights", "from_ultralytics"]

logger = logging.getLogger(__name__)


def build(
    config: str | os.PathLike | ModelConfig,
    text_encoder: str | TextEncoder | None = DEFAULT_TEXT_ENCODER,
    *,
    device: str = "cpu",
) -> OVDetector:
    """A detector with random weights.

    Args:
        config: A shipped config name (see :func:`list_models`, e.g. ``"ovdet-s"``), a YAML path, or a
            ``ModelConfig``.
        text_encoder: A text-encoder spec (see :mod:`ovdet.text.spec`), a ready ``TextEncoder``, or ``None`` for a
            model that only takes ready embeddings (then the config must set ``embed_dim``).
        device: Where the model lives.

    Raises:
        UnknownModelError: unknown config name or text encoder.
        ConfigError: a malformed config, or a text dimension that does not fit it.
    """
    model_config = load_config(config)
    encoder = TextEncoder(text_encoder) if isinstance(text_encoder, str) else text_encoder
    return build_detector(model_config, text_encoder=encoder).to(device)


def load(path: str | os.PathLike | None = None, *, device: str = "cpu") -> OVDetector:
    """A trained detector: a folder written by ``save()``, a known weights name, or ``None`` for the default model.

    Raises:
        CheckpointError: the folder is not a saved model, or no default model is bundled.
        UnknownModelError: neither a folder nor a known weights name (the message lists the known names).
        PickleRefusedError: a pickle checkpoint was given (the message says how to convert it).
    """
    if path is None:
        name = weights_table.DEFAULT_WEIGHTS
        if name is None:
            raise CheckpointError(
                "no default model is bundled with this ovdet yet; build one with ovdet.build('ovdet-n') "
                "(random weights), train it with `ovdet train`, or pass a saved model folder"
            )
        return load(name, device=device)
    text = os.fspath(path)
    spec = weights_table.KNOWN_WEIGHTS.get(text)
    if spec is not None:
        folder = weights_table.find_bundled(spec)
        if folder is not None:
            return load_detector(folder, device=device)
        if spec.url:
            from .io.convert import fetch_and_convert

            return fetch_and_convert(spec, device=device)
        raise CheckpointError(
            f"weights '{text}' belong in a '{spec.folder}' folder under one of "
            f"{', '.join(map(str, weights_table.bundled_weights_dirs()))}, and none has it; reinstall ovdet, "
            "or set OVDET_WEIGHTS to the folder that holds it"
        )
    p = Path(text).expanduser()
    if p.is_dir():
        return load_detector(p, device=device)
    if p.is_file():
        if p.suffix in (".pt", ".pth", ".ckpt", ".pkl"):
            from .errors import PickleRefusedError

            raise PickleRefusedError(
                f"{p} is a pickle checkpoint, which ovdet.load never unpickles. If it is an ultralytics YOLO-World "
                f"model you trust, convert it once: ovdet.from_ultralytics('{p}', trust_pickle=True) or "
                f"`ovdet convert ultralytics {p} OUT_DIR --trust-pickle`, then load OUT_DIR"
            )
        if p.suffix == ".onnx":
            raise CheckpointError(f"{p} is an ONNX export; predict with it through ovdet.load_onnx('{p}')")
        raise CheckpointError(f"{p} is a file; ovdet.load takes the folder written by model.save() that contains it")
    known = ", ".join(list_weights()) or "none bundled"
    raise UnknownModelError(
        f"no saved model at '{text}' and no known weights of that name (known: {known}); "
        "pass a folder written by model.save(), or use ovdet.build(config) for random weights"
    )


def from_ultralytics(
    path: str | os.PathLike,
    *,
    trust_pickle: bool = False,
    text_encoder: str | TextEncoder = YOLO_WORLD_TEXT_ENCODER,
    device: str = "cpu",
) -> OVDetector:
    """Convert an ultralytics YOLO-World v2 checkpoint (``yolov8{n,s,m,l,x}-worldv2.pt``) into an ``OVDetector``.

    The file is a pickle, so it is read only with ``trust_pickle=True``. Save the result with ``model.save(folder)``
    to get a folder that :func:`load` reads without any pickle. See :func:`ovdet.io.convert.from_ultralytics`.

    Raises:
        PickleRefusedError: ``trust_pickle`` is not ``True``.
        CheckpointError: the file is not readable, or holds another architecture (YOLO-World v1, YOLOE, YOLOv8...).
    """
    from .io.convert import from_ultralytics as convert

    return convert(path, trust_pickle=trust_pickle, text_encoder=text_encoder, device=device)


def list_models() -> list[str]:
    """Names of the shipped architecture configs, for :func:`build`."""
    return list_configs()


def list_weights() -> list[str]:
    """Names of known weights, for :func:`load`."""
    return sorted(weights_table.KNOWN_WEIGHTS)
