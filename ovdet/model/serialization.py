"""A saved detector is a folder: ``model.safetensors`` and ``config.json``. No pickle is written or read.

``model.safetensors`` holds the detector's state dict (the vocabulary embeddings ``class_embeddings`` included) and,
when the text encoder cannot be re-created from its spec alone (random weights, a config registered in-process, a
local file), its text tower under ``text_tower.``. ``config.json`` holds the format version, the architecture, the
text encoder (spec, identity key, dimension, and the open_clip config of a carried tower), the vocabulary names and
prompts (a visual prompt as its record: image path, size, pixel hash and boxes; see :mod:`ovdet.prompts`) and which
rows are already in a YOLOE model's projected space (``projected``), the preprocessing and free-form metadata.
Embeddings learnt by prompt tuning (``model.tuned``) travel as the tensor ``tuned_embeddings`` beside the state dict,
their names as ``vocabulary.tuned`` in ``config.json``. The folder is written to a temporary sibling and swapped in.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..errors import CheckpointError, ConfigError, VocabularyError
from ..fileio import atomic_folder, save_safetensors
from ..prompts import prompt_from_json, prompt_to_json
from ..text.encoder import TextEncoder
from ..text.tuned import TunedEmbeddings
from ..text.vocabulary import Vocabulary
from .config import ModelConfig

if TYPE_CHECKING:
    from .detector import OVDetector

__all__ = ["FORMAT_VERSION", "save_detector", "load_detector", "read_config", "is_model_folder"]

FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
_TOWER_PREFIX = "text_tower."
_TUNED_KEY = "tuned_embeddings"  # not in the state dict: a model without a table loads every older folder as before
# what ovdet itself puts in a model folder besides the model: training's resume state, the packaged default model's
# metrics and world description; a folder with anything else in it holds the user's files and is never replaced
_OWN_EXTRAS = {"train_state.safetensors", "train_state.json", "metrics.json", "world.json"}


def is_model_folder(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` holds a model ovdet saved and nothing else: ``config.json`` with a format version,
    ``model.safetensors``, and only files ovdet writes beside them. Only such a folder is replaced by a save."""
    folder = Path(folder)
    try:
        config = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
        entries = {p.name for p in folder.iterdir()}
    except (OSError, ValueError):
        return False
    return (
        isinstance(config, dict)
        and isinstance(config.get("format_version"), int)
        and WEIGHTS_FILE in entries
        and entries <= {CONFIG_FILE, WEIGHTS_FILE, *_OWN_EXTRAS}
    )


def _version() -> str:
    from .. import __version__

    return __version__


def save_detector(
    model: OVDetector,
    folder: str | os.PathLike,
    *,
    metadata: dict[str, Any] | None = None,
    extra: Callable[[Path], None] | None = None,
    half: bool = False,
    overwrite: bool = False,
) -> str:
    """Write ``model`` to ``folder`` atomically; returns the folder path.

    Args:
        model: The detector.
        folder: Destination folder. If it exists it must be empty or a model folder ovdet saved
            (:func:`is_model_folder`), which is then replaced as a whole; anything else is refused before any
            work, unless ``overwrite``.
        metadata: Extra JSON-serialisable information to record (provenance, metrics, ...); merged over what the
            model already carries in ``model.metadata``.
        extra: Called with the temporary folder to add files (e.g. training resume state) that must appear
            together with the model, in the same atomic swap.
        half: Store floating-point tensors as float16 (half the size; loading casts them back to float32).
        overwrite: Replace ``folder`` even if it holds other files (they are deleted).

    Raises:
        OutputError: ``folder`` is a file, holds files ovdet did not write, or cannot be written.
    """
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    encoder = model.text_encoder
    text_info: dict[str, Any] | None = None
    if encoder is not None:
        text_info = {"spec": encoder.spec, "key": encoder.key, "dim": encoder.dim, "carried": encoder.travels}
        if encoder.travels:
            text_info["open_clip_config"] = encoder.model_config
            text_info["tokenizer"] = encoder.tokenizer_name
            tensors.update({_TOWER_PREFIX + k: v for k, v in encoder.carried_state().items()})
    vocabulary: dict[str, Any] = {
        "names": model.names,
        "prompts": [[prompt_to_json(p) for p in ps] for ps in model.prompts.values()],
        "projected": [bool(x) for x in model.vocabulary.projected],
    }
    tuned = getattr(model, "tuned", None)
    if tuned is not None and len(tuned):
        tensors[_TUNED_KEY] = torch.from_numpy(tuned.embeddings.copy())
        vocabulary["tuned"] = list(tuned.names)
    config = {
        "format_version": FORMAT_VERSION,
        "ovdet_version": _version(),
        "model": model.config.to_dict(),
        "text_encoder": text_info,
        "vocabulary": vocabulary,
        "preprocess": {"letterbox": "ultralytics", "pad_value": 114, "stride": model.stride, "input": "RGB / 255"},
        "metadata": {**getattr(model, "metadata", {}), **(metadata or {})},
    }
    if half:
        tensors = {k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}
        config["storage_dtype"] = "float16"
    json.dumps(config)  # fail before touching the folder if metadata is not JSON-serialisable
    with atomic_folder(folder, owned=is_model_folder, overwrite=overwrite, what="model folder") as tmp:
        save_safetensors(tensors, tmp / WEIGHTS_FILE, metadata={"format": "pt"})
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        if extra is not None:
            extra(tmp)
    return str(folder)


def read_config(folder: str | os.PathLike) -> dict[str, Any]:
    """The ``config.json`` of a saved model folder, checked for a readable format version.

    Raises:
        CheckpointError: no such folder, no config, unreadable JSON, or a format newer than this ovdet reads.
    """
    folder = Path(folder)
    path = folder / CONFIG_FILE
    if not folder.is_dir():
        raise CheckpointError(f"model folder {folder} does not exist")
    if not path.is_file() or not (folder / WEIGHTS_FILE).is_file():
        raise CheckpointError(
            f"{folder} is not a saved ovdet model: it needs {CONFIG_FILE} and {WEIGHTS_FILE} (written by model.save())"
        )
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"cannot read {path}: {e}") from e
    version = config.get("format_version") if isinstance(config, dict) else None
    if not isinstance(version, int):
        raise CheckpointError(f"{path} has no format_version; it was not written by ovdet")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{folder} has format version {version}, newer than this ovdet reads ({FORMAT_VERSION}); upgrade ovdet"
        )
    return config


def load_detector(folder: str | os.PathLike, *, device: str = "cpu") -> OVDetector:
    """Rebuild a detector saved by :func:`save_detector`, with its vocabulary and text encoder.

    Raises:
        CheckpointError: missing files, an unsupported format, or weights that do not fit the architecture.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from .build import build_detector

    folder = Path(folder)
    config = read_config(folder)
    try:
        model_config = ModelConfig.from_dict(config["model"], source=str(folder / CONFIG_FILE))
    except (KeyError, ConfigError) as e:
        raise CheckpointError(f"{folder / CONFIG_FILE} has an invalid model section: {e}") from e
    try:
        tensors = load_file(str(folder / WEIGHTS_FILE))
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"cannot read {folder / WEIGHTS_FILE}: {e}") from e
    tensors = {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}  # float16 storage → fp32
    tower = {k[len(_TOWER_PREFIX) :]: tensors.pop(k) for k in list(tensors) if k.startswith(_TOWER_PREFIX)}
    tuned_rows = tensors.pop(_TUNED_KEY, None)

    text_info = config.get("text_encoder")
    encoder = None
    if text_info:
        if text_info.get("carried"):
            if not tower:
                raise CheckpointError(f"{folder} says its text tower travels with it, but {WEIGHTS_FILE} lacks it")
            encoder = TextEncoder.from_tower(
                text_info["spec"], text_info["key"], text_info["open_clip_config"], tower,
                tokenizer_name=text_info.get("tokenizer"),
            )  # fmt: skip
        else:
            encoder = TextEncoder(text_info["spec"])
    model = build_detector(model_config, text_encoder=encoder)
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"weights in {folder} do not fit its architecture: {str(e)[:500]}") from e
    vocab = config.get("vocabulary") or {}
    names = vocab.get("names", [])
    if not model.prompt_free and len(names) != len(model.class_embeddings):
        raise CheckpointError(
            f"{folder}: {len(names)} vocabulary names but {len(model.class_embeddings)} class embeddings"
        )
    if names:
        prompts = vocab.get("prompts") or [[n] for n in names]
        try:
            prompts = tuple(tuple(prompt_from_json(p) for p in ps) for ps in prompts)
        except VocabularyError as e:
            raise CheckpointError(f"{folder / CONFIG_FILE} has an invalid vocabulary: {e}") from e
        model.set_vocabulary(Vocabulary(tuple(names), prompts, model.class_embeddings, vocab.get("projected")))
    tuned_names = vocab.get("tuned") or []
    if tuned_rows is not None or tuned_names:
        try:
            model.tuned = TunedEmbeddings(tuple(tuned_names), tuned_rows.numpy() if tuned_rows is not None else None)
        except VocabularyError as e:
            raise CheckpointError(f"{folder}: its tuned embeddings do not match their names: {e}") from e
    model.metadata = dict(config.get("metadata") or {})
    return model.to(device).eval()
