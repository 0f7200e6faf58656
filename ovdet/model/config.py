"""Architecture configs: small YAML files mirrored by frozen dataclasses with strict keys.

A config names a scale (YOLOv8's depth and width multiples), says whether the neck is text-guided (YOLO-World's
C2fAttn) and how the head scores regions against text. Named configs ship in ``ovdet/model/configs/``;
any YAML path with the same keys works too.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError, UnknownModelError

__all__ = ["ScaleConfig", "NeckConfig", "HeadConfig", "ModelConfig", "CONFIG_DIR", "list_configs", "load_config"]

CONFIG_DIR = Path(__file__).parent / "configs"


@dataclass(frozen=True)
class ScaleConfig:
    """YOLOv8 compound scaling: block repeats × ``depth``, channels × ``width``, capped at ``max_channels``."""

    depth: float = 0.33
    width: float = 0.25
    max_channels: int = 1024


@dataclass(frozen=True)
class NeckConfig:
    """PAN neck. ``text_guided`` swaps its C2f blocks for YOLO-World's C2fAttn (max-sigmoid text attention).

    ``attn_heads`` are the unscaled head counts of the four C2fAttn blocks (YOLO-World: 8, 4, 8, 16), scaled as
    ultralytics scales them.
    """

    text_guided: bool = False
    attn_heads: tuple[int, int, int, int] = (8, 4, 8, 16)


@dataclass(frozen=True)
class HeadConfig:
    """Open-vocabulary head.

    ``norm``: ``"l2"`` scores ``normalize(region) · normalize(text) × scale + bias``; ``"batchnorm"`` replaces the
    region L2 normalisation by BatchNorm (YOLO-World v2's BNContrastiveHead). ``embed_channels`` is the width of the
    embedding branch before its last 1×1 conv; ``None`` means ``max(P3 channels, 80)`` as in YOLO-World.
    """

    reg_max: int = 16
    norm: str = "l2"
    embed_channels: int | None = None


@dataclass(frozen=True)
class ModelConfig:
    """A whole detector architecture.

    ``embed_dim`` is the text-embedding dimension; ``None`` means "whatever the text encoder gives", and
    :func:`ovdet.build` fills it in. ``imgsz`` is the default inference size.
    """

    name: str
    scale: ScaleConfig = field(default_factory=ScaleConfig)
    neck: NeckConfig = field(default_factory=NeckConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    embed_dim: int | None = None
    imgsz: int = 640

    def __post_init__(self) -> None:
        if self.head.norm not in ("l2", "batchnorm"):
            raise ConfigError(f"head.norm must be 'l2' or 'batchnorm', got {self.head.norm!r}")
        if self.head.reg_max < 1:
            raise ConfigError(f"head.reg_max must be >= 1, got {self.head.reg_max}")
        if self.imgsz < 32 or self.imgsz % 32:
            raise ConfigError(f"imgsz must be a positive multiple of 32, got {self.imgsz}")
        if self.embed_dim is not None and self.embed_dim < 1:
            raise ConfigError(f"embed_dim must be positive, got {self.embed_dim}")
        s = self.scale
        if not (0 < s.depth <= 4 and 0 < s.width <= 4 and s.max_channels >= 16):
            raise ConfigError(f"scale out of range: {s}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "config") -> ModelConfig:
        """Build from plain data, rejecting unknown keys with a message that lists the valid ones.

        Raises:
            ConfigError: unknown or missing keys, or values of the wrong type.
        """
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a mapping, got {type(data).__name__}")
        sections = {"scale": ScaleConfig, "neck": NeckConfig, "head": HeadConfig}
        kwargs = _strict_kwargs(cls, data, source)
        if "name" not in kwargs:
            raise ConfigError(f"{source}: missing required key 'name'")
        for key, section in sections.items():
            if key in kwargs:
                sub = _strict_kwargs(section, kwargs[key] or {}, f"{source}: {key}")
                if "attn_heads" in sub:
                    sub["attn_heads"] = tuple(sub["attn_heads"])
                kwargs[key] = section(**sub)
        try:
            return cls(**kwargs)
        except TypeError as e:
            raise ConfigError(f"{source}: {e}") from e


def _strict_kwargs(cls: type, data: Any, source: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping, got {type(data).__name__}")
    valid = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - valid)
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {', '.join(unknown)}; valid keys are {', '.join(sorted(valid))}")
    return dict(data)


def list_configs() -> list[str]:
    """Names of the architecture configs shipped with ovdet (usable as ``ovdet.build(name)``)."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def load_config(config: str | Path | ModelConfig) -> ModelConfig:
    """Resolve a shipped config name, a YAML path, or a ``ModelConfig`` into a ``ModelConfig``.

    Raises:
        UnknownModelError: a name that is neither shipped nor an existing file (lists the shipped ones).
        ConfigError: the YAML is malformed or has unknown keys.
    """
    if isinstance(config, ModelConfig):
        return config
    path = Path(config)
    if not path.suffix and (CONFIG_DIR / f"{config}.yaml").is_file():
        path = CONFIG_DIR / f"{config}.yaml"
    if not path.is_file():
        raise UnknownModelError(
            f"unknown model config '{config}': not a shipped config or an existing YAML file. "
            f"Shipped configs: {', '.join(list_configs())}"
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"cannot read model config {path}: {e}") from e
    return ModelConfig.from_dict(data, source=str(path))
