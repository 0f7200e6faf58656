"""Helpers shared by subcommands: model resolution, class lists, argument types."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..errors import UnknownModelError, VocabularyError

__all__ = ["add_model_args", "resolve_model", "is_onnx_model", "load_onnx_model", "parse_classes", "probability",
           "positive_int"]

logger = logging.getLogger("ovdet")


def probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {value}")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def add_model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        default=None,
        help="a saved model folder, a known weights name, an exported model.onnx (ONNX Runtime), or an architecture "
        "config (name or YAML: random weights); default: the bundled default model",
    )
    parser.add_argument(
        "--text-encoder",
        default=None,
        help="text encoder spec for a model built from a config (default ViT-B-32-quickgelu:openai); for an ONNX "
        "model, its exported text_encoder.onnx (default: the one beside it)",
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (default: cpu)")


def resolve_model(model: str | None, text_encoder: str | None, device: str):
    """Load a saved/known model or an ONNX export, or build one from a config with random weights (and say so)."""
    if model is not None and is_onnx_model(model):
        return load_onnx_model(model, text_encoder, device)
    import ovdet
    from ..model.config import CONFIG_DIR

    if model is None or Path(model).is_dir() or model in ovdet.list_weights():
        if text_encoder is not None:
            logger.warning("--text-encoder is ignored: a saved model brings its own text encoder")
        return ovdet.load(model, device=device)
    is_config = model in ovdet.list_models() or (model.endswith((".yaml", ".yml")) and Path(model).is_file())
    if not is_config:
        raise UnknownModelError(
            f"unknown model '{model}': not a saved model folder, a known weights name "
            f"({', '.join(ovdet.list_weights()) or 'none'}), or a config ({', '.join(ovdet.list_models())}, "
            f"or a YAML file like those in {CONFIG_DIR})"
        )
    logger.warning(
        "building '%s' with RANDOM weights: boxes will be meaningless; pass a trained model folder for real detections",
        model,
    )
    from ..text import DEFAULT_TEXT_ENCODER

    return ovdet.build(model, text_encoder or DEFAULT_TEXT_ENCODER, device=device)


def is_onnx_model(model: str) -> bool:
    """An exported ``.onnx`` file, or a bundle folder holding ``model.onnx`` (and no saved PyTorch model)."""
    path = Path(model)
    return model.endswith(".onnx") or (path.is_dir() and (path / "model.onnx").is_file()
                                       and not (path / "config.json").is_file())  # fmt: skip


def load_onnx_model(model: str, text_encoder: str | None, device: str):
    """``ovdet.load_onnx``: ONNX Runtime on ``device``; ``--text-encoder`` names an exported text-encoder ONNX."""
    from ..runtime import load_onnx
    from ..runtime.session import execution_providers

    return load_onnx(model, text_encoder=text_encoder, providers=execution_providers(device))


def parse_classes(classes: str | None, classes_file: str | None) -> list[str]:
    """Class names from ``--classes "a,b"`` and/or ``--classes-file`` (one name per line)."""
    names: list[str] = []
    if classes:
        names += [c.strip() for c in classes.split(",")]
    if classes_file:
        path = Path(classes_file)
        if not path.is_file():
            raise VocabularyError(f"classes file {path} does not exist")
        names += [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    names = [n for n in names if n]
    if not names:
        raise VocabularyError('the class list is empty; pass --classes "person,bus" or --classes-file FILE')
    return list(dict.fromkeys(names))
