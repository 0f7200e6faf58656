"""One meaning for a model name, everywhere: ``ovdet.load``, every CLI command's ``--model``, and training.

A model spec is, in this order: nothing (the bundled default model), a folder written by ``save()``, a known weights
name (``ovdet.list_weights()``), or an architecture config (a shipped name such as ``ovdet-s``, or a YAML file) for
a model with random weights. Pickles and ONNX files are refused with the way to use them.
"""

from __future__ import annotations

import logging
import os
import shlex
from pathlib import Path

from ..errors import CheckpointError, ConfigError, PickleRefusedError, UnknownModelError
from ..model import OVDetector, build_detector, list_configs, load_config, load_detector
from ..model.config import CONFIG_DIR
from ..text import DEFAULT_TEXT_ENCODER, TextEncoder
from . import weights as weights_table

__all__ = ["load_model", "resolve_model", "is_config_spec"]

logger = logging.getLogger(__name__)


def with_text_encoder(model: OVDetector, spec: str) -> OVDetector:
    """``model`` with its text encoder replaced by ``spec``, which must be the same tower: typically the same
    pretrained weights from a local file (``ViT-B-32-quickgelu:/path/open_clip_model.safetensors``) where the saved
    model names a tag that cannot be downloaded here.

    Raises:
        ConfigError: ``spec`` is another architecture than the model's encoder, or gives another dimension.
    """
    new = TextEncoder(spec)
    old = model.text_encoder
    if new.dim != model.embed_dim or (old is not None and new.model_config != old.model_config):
        was = f"'{old.spec}'" if old is not None else f"a {model.embed_dim}-d encoder"
        raise ConfigError(
            f"text encoder '{spec}' is not the tower this model was trained with ({was}); give the same model "
            "name with its weights from a file, e.g. 'ViT-B-32-quickgelu:/path/open_clip_model.safetensors'"
        )
    model.text_encoder = new
    return model


def load_model(
    path: str | os.PathLike | None = None, *, device: str = "cpu", text_encoder: str | None = None
) -> OVDetector:
    """A trained detector: a folder written by ``save()``, a known weights name, or ``None`` for the default model
    (what :func:`ovdet.load` does). ``text_encoder`` replaces the saved model's encoder by the same tower from
    elsewhere (see :func:`with_text_encoder`).

    Raises:
        CheckpointError: the folder is not a saved model, or no default model is bundled.
        UnknownModelError: neither a folder nor a known weights name (the message lists the known names).
        PickleRefusedError: a pickle checkpoint was given (the message says how to convert it).
    """
    model = _load(path, device=device)
    return with_text_encoder(model, text_encoder) if text_encoder is not None else model


def _load(path: str | os.PathLike | None, *, device: str) -> OVDetector:
    if path is None:
        name = weights_table.DEFAULT_WEIGHTS
        if name is None:
            raise CheckpointError(
                "no default model is bundled with this ovdet yet; build one with ovdet.build('ovdet-n') "
                "(random weights), train it with `ovdet train`, or pass a saved model folder"
            )
        return _load(name, device=device)
    text = os.fspath(path)
    spec = weights_table.KNOWN_WEIGHTS.get(text)
    if spec is not None:
        folder = weights_table.find_bundled(spec)
        if folder is not None:
            return load_detector(folder, device=device)
        if spec.url:
            from .convert import fetch_and_convert

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
            raise PickleRefusedError(
                f"{p} is a pickle checkpoint, which ovdet.load never unpickles. If it is an ultralytics YOLO-World or "
                f"YOLOE model you trust, convert it once: ovdet.from_ultralytics('{p}', trust_pickle=True) or "
                f"`ovdet convert ultralytics {shlex.quote(str(p))} OUT_DIR --trust-pickle`, then load OUT_DIR"
            )
        if p.suffix == ".onnx":
            raise CheckpointError(f"{p} is an ONNX export; predict with it through ovdet.load_onnx('{p}')")
        raise CheckpointError(f"{p} is a file; ovdet.load takes the folder written by model.save() that contains it")
    known = ", ".join(sorted(weights_table.KNOWN_WEIGHTS)) or "none bundled"
    raise UnknownModelError(
        f"no saved model at '{text}' and no known weights of that name (known: {known}); "
        "pass a folder written by model.save(), or use ovdet.build(config) for random weights"
    )


def is_config_spec(spec: str) -> bool:
    """Whether ``spec`` names an architecture config (a shipped name, or an existing YAML file) rather than a
    saved model or known weights."""
    if Path(spec).is_dir() or spec in weights_table.KNOWN_WEIGHTS:
        return False
    return spec in list_configs() or (spec.endswith((".yaml", ".yml")) and Path(spec).is_file())


def resolve_model(
    spec: str | os.PathLike | None,
    *,
    text_encoder: str | None = None,
    device: str = "cpu",
    for_training: bool = False,
) -> OVDetector:
    """The model a ``--model`` value names (see the module docstring), on ``device``.

    A config gives random weights (with a warning unless ``for_training``: then they are the starting point) and
    ``text_encoder`` (default ``ViT-B-32-quickgelu:openai``);
    a saved model or known weights bring their own encoder, which ``text_encoder`` may replace by the same tower
    from elsewhere (:func:`with_text_encoder`: e.g. the weights as a local file, offline).

    Raises:
        UnknownModelError: the spec names nothing (the message lists folders, weights and configs it could be).
        CheckpointError, PickleRefusedError: as :func:`load_model`.
    """
    text = None if spec is None else os.fspath(spec)
    if text is None or not is_config_spec(text):
        if text is not None and not Path(text).expanduser().exists() and text not in weights_table.KNOWN_WEIGHTS:
            raise UnknownModelError(
                f"unknown model '{text}': not a saved model folder, a known weights name "
                f"({', '.join(sorted(weights_table.KNOWN_WEIGHTS)) or 'none'}), or a config "
                f"({', '.join(list_configs())}, or a YAML file like those in {CONFIG_DIR})"
            )
        return load_model(text, device=device, text_encoder=text_encoder)
    if not for_training:
        logger.warning(
            "building '%s' with RANDOM weights: boxes will be meaningless; pass a trained model folder for real "
            "detections", text,
        )  # fmt: skip
    config = load_config(text)
    # the encoder the config names (e.g. MobileCLIP-B for YOLOE), else ovdet's default
    encoder = TextEncoder(text_encoder or config.text_encoder or DEFAULT_TEXT_ENCODER)
    return build_detector(config, text_encoder=encoder).to(device)
