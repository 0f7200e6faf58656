"""Text-encoder specs: the one string that names a CLIP text tower and where its weights come from.

Forms accepted (open_clip's "name, then tag or path" convention):

- ``NAME:TAG`` — an open_clip model (its zoo, or one registered with ``open_clip.add_model_config``) with a pretrained
  tag, e.g. ``ViT-B-32-quickgelu:openai`` (YOLO-World's text encoder). Downloaded once, then read from the cache.
- ``NAME:PATH`` — the same model with weights from a local file (``.safetensors``, or ``.bin``/``.pt``/``.pth`` holding
  a plain state dict).
- ``NAME`` — the model with random weights, as ``open_clip.create_model(NAME)`` gives (tests, custom training).
- ``PATH.json`` — an open_clip-style model config (``embed_dim``, ``text_cfg``, ...), random weights.
- ``FOLDER`` — a folder with ``open_clip_config.json`` and a weights file, the layout of open_clip's Hugging Face
  repositories and of the text towers ovdet saves beside its checkpoints.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, SourceError, UnknownModelError

__all__ = [
    "DEFAULT_TEXT_ENCODER",
    "YOLO_WORLD_TEXT_ENCODER",
    "TextEncoderSpec",
    "parse_text_encoder_spec",
    "WEIGHT_SUFFIXES",
]

YOLO_WORLD_TEXT_ENCODER = "ViT-B-32-quickgelu:openai"  # ultralytics' "clip:ViT-B/32": OpenAI weights, QuickGELU
DEFAULT_TEXT_ENCODER = YOLO_WORLD_TEXT_ENCODER
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
_FOLDER_WEIGHTS = (
    "open_clip_model.safetensors",
    "open_clip_pytorch_model.safetensors",
    "model.safetensors",
    "open_clip_pytorch_model.bin",
    "pytorch_model.bin",
)


@dataclass(frozen=True)
class TextEncoderSpec:
    """A parsed text-encoder spec. Exactly one source of weights is set, or none for random weights."""

    spec: str
    model_name: str | None = None
    tag: str | None = None
    weights: Path | None = None
    config_path: Path | None = None

    @property
    def random_weights(self) -> bool:
        return self.tag is None and self.weights is None

    def model_config(self) -> dict:
        """The open_clip model config (``embed_dim``, ``text_cfg``, ...) this spec names; reads no weights."""
        if self.config_path is not None:
            return read_open_clip_config(self.config_path)
        import open_clip

        cfg = open_clip.get_model_config(self.model_name)
        if cfg is None:  # parse_text_encoder_spec checked the name; it can only vanish if the registry changed
            raise UnknownModelError(f"open_clip model config '{self.model_name}' is no longer registered")
        return cfg


def read_open_clip_config(path: Path) -> dict:
    """Read an open_clip model config from a JSON file, accepting both the bare and the ``model_cfg`` layouts."""
    try:
        cfg = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"cannot read open_clip config {path}: {e}") from e
    cfg = cfg.get("model_cfg", cfg) if isinstance(cfg, dict) else cfg
    if not isinstance(cfg, dict) or "embed_dim" not in cfg or "text_cfg" not in cfg:
        raise ConfigError(
            f"{path} is not an open_clip model config: it needs 'embed_dim' and 'text_cfg' "
            "(see open_clip/model_configs/ViT-B-32.json for the layout)"
        )
    return cfg


def _folder_weights(folder: Path) -> Path:
    for name in _FOLDER_WEIGHTS:
        if (folder / name).is_file():
            return folder / name
    raise SourceError(
        f"text-encoder folder {folder} has no weights file; expected one of {', '.join(_FOLDER_WEIGHTS)} "
        "beside open_clip_config.json"
    )


def _looks_like_path(text: str) -> bool:
    return "/" in text or "\\" in text or text.endswith(WEIGHT_SUFFIXES) or text.startswith((".", "~"))


def parse_text_encoder_spec(spec: str) -> TextEncoderSpec:
    """Parse a text-encoder spec string (see the module docstring) and check that what it names exists.

    Raises:
        UnknownModelError: the open_clip model name or pretrained tag is unknown (the message lists known ones).
        SourceError: a named file or folder does not exist.
        ConfigError: a JSON config is malformed.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError("text encoder spec must be a non-empty string such as 'ViT-B-32-quickgelu:openai'")
    spec = spec.strip()
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "open_clip_config.json").is_file():
            raise SourceError(f"text-encoder folder {path} has no open_clip_config.json")
        return TextEncoderSpec(spec, config_path=path / "open_clip_config.json", weights=_folder_weights(path))
    if spec.endswith(".json"):
        if not path.is_file():
            raise SourceError(f"text-encoder config {path} does not exist")
        read_open_clip_config(path)
        return TextEncoderSpec(spec, config_path=path)

    import open_clip

    name, _, tag = spec.partition(":")
    known = open_clip.list_models()
    if name not in known:
        close = difflib.get_close_matches(name, known, n=5, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise UnknownModelError(
            f"unknown text encoder '{name}': not an open_clip model name, JSON config or folder.{hint} "
            "open_clip.list_models() lists the names; default is " + DEFAULT_TEXT_ENCODER
        )
    if not tag:
        return TextEncoderSpec(spec, model_name=name)
    if _looks_like_path(tag) or Path(tag).expanduser().is_file():
        weights = Path(tag).expanduser()
        if not weights.is_file():
            raise SourceError(f"text-encoder weights file {weights} does not exist")
        return TextEncoderSpec(spec, model_name=name, weights=weights)
    tags = open_clip.list_pretrained_tags_by_model(name)
    if tag not in tags:
        raise UnknownModelError(
            f"unknown pretrained tag '{tag}' for text encoder '{name}'. Available tags: {', '.join(tags) or 'none'}; "
            f"or give a local weights file as '{name}:/path/to/weights.safetensors'"
        )
    return TextEncoderSpec(spec, model_name=name, tag=tag)
