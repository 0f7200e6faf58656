"""Architecture configs: small YAML files mirrored by frozen dataclasses with strict keys.

A config names a scale (depth and width multiples), the backbone and neck family (YOLOv8's C2f, YOLO11's and YOLO26's
C3k2 + C2PSA), whether the neck is text-guided (YOLO-World's C2fAttn, v1's ImagePoolingAttn) and how the head scores
regions against text (YOLO-World's or YOLOE's head, with instance masks and YOLO26's one-to-one branch as options).
Named configs ship in ``ovdet/model/configs/``; any YAML path with the same keys works too. Every field has a
default that keeps the configs written before a field existed meaning what they meant.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError, UnknownModelError

__all__ = ["ScaleConfig", "BackboneConfig", "NeckConfig", "HeadConfig", "ModelConfig", "CONFIG_DIR", "FAMILIES",
           "list_configs", "load_config"]  # fmt: skip

CONFIG_DIR = Path(__file__).parent / "configs"
FAMILIES = ("yolov8", "yolo11", "yolo26")  # backbone and neck block families (see ovdet.model.build.BACKBONES)
HEADS = ("world", "yoloe")


@dataclass(frozen=True)
class ScaleConfig:
    """YOLOv8 compound scaling: block repeats × ``depth``, channels × ``width``, capped at ``max_channels``."""

    depth: float = 0.33
    width: float = 0.25
    max_channels: int = 1024


@dataclass(frozen=True)
class BackboneConfig:
    """Backbone family: ``"yolov8"`` (CSPDarknet: C2f + SPPF), ``"yolo11"`` (C3k2 + SPPF + C2PSA) or ``"yolo26"``
    (YOLO11's blocks with a residual SPPF whose first conv is not activated).

    ``c3k``: every C3k2 uses C3k inner blocks, as ultralytics' ``parse_model`` forces for scales m, l and x.
    """

    kind: str = "yolov8"
    c3k: bool = False


@dataclass(frozen=True)
class NeckConfig:
    """PAN neck of the backbone's family. ``text_guided`` swaps its C2f blocks for YOLO-World's C2fAttn (max-sigmoid
    text attention); ``image_pooling`` adds YOLO-World v1's ImagePoolingAttn, which updates the text embeddings from
    pooled image features before the bottom-up blocks.

    ``attn_heads`` are the unscaled head counts of the four C2fAttn blocks (YOLO-World: 8, 4, 8, 16), scaled as
    ultralytics scales them.
    """

    kind: str = "yolov8"
    text_guided: bool = False
    attn_heads: tuple[int, int, int, int] = (8, 4, 8, 16)
    image_pooling: bool = False


@dataclass(frozen=True)
class HeadConfig:
    """Open-vocabulary head.

    ``kind``: ``"world"`` (YOLO-World's head, :class:`~ovdet.model.head.OVHead`) or ``"yoloe"`` (YOLOE's, with its
    text projection, :class:`~ovdet.model.yoloe_head.YOLOEHead`; always BatchNorm-scored).
    ``norm``: ``"l2"`` scores ``normalize(region) · normalize(text) × scale + bias``; ``"batchnorm"`` replaces the
    region L2 normalisation by BatchNorm (YOLO-World v2's BNContrastiveHead). ``embed_channels`` is the width of the
    embedding branch before its last 1×1 conv; ``None`` means ``max(P3 channels, 80)`` as in YOLO-World.
    ``embed_branch``: ``"conv"`` (two 3×3 Convs, YOLOv8) or ``"dwconv"`` (depthwise-separable, YOLO11/YOLO26).
    ``end2end``: a one-to-one branch beside the one-to-many one (YOLO26: NMS-free inference).
    ``masks``: mask prototypes (0: detection only; YOLOE-seg: 32), made by ``proto`` (``"yolov8"``: Proto on P3,
    ``"yolo26"``: Proto26 on all levels) with ``proto_channels`` hidden channels (already width-scaled).
    ``prompt_free``: size of a built-in vocabulary scored by fixed 1×1 convs (YOLOE ``-pf`` checkpoints); 0 = text.
    ``savpe``: YOLOE's visual-prompt encoder (ultralytics' SAVPE), carried by converted checkpoints; ovdet runs it for
    visual prompts but does not train it (models without it read visual prompts out of their region embeddings).
    """

    kind: str = "world"
    reg_max: int = 16
    norm: str = "l2"
    embed_channels: int | None = None
    embed_branch: str = "conv"
    end2end: bool = False
    masks: int = 0
    proto: str = "yolov8"
    proto_channels: int = 256
    prompt_free: int = 0
    savpe: bool = False


@dataclass(frozen=True)
class ModelConfig:
    """A whole detector architecture.

    ``embed_dim`` is the text-embedding dimension; ``None`` means "whatever the text encoder gives", and
    :func:`ovdet.build` fills it in. ``text_encoder`` names the encoder a layout's weights were trained with (a spec,
    see :mod:`ovdet.text.spec`); :func:`ovdet.build` uses it when given none. ``imgsz`` is the default inference size.
    """

    name: str
    scale: ScaleConfig = field(default_factory=ScaleConfig)
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    neck: NeckConfig = field(default_factory=NeckConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    embed_dim: int | None = None
    text_encoder: str | None = None
    imgsz: int = 640

    def __post_init__(self) -> None:
        for what, value, valid in (
            ("backbone.kind", self.backbone.kind, FAMILIES), ("neck.kind", self.neck.kind, FAMILIES),
            ("head.kind", self.head.kind, HEADS), ("head.norm", self.head.norm, ("l2", "batchnorm")),
            ("head.embed_branch", self.head.embed_branch, ("conv", "dwconv")),
            ("head.proto", self.head.proto, ("yolov8", "yolo26")),
        ):  # fmt: skip
            if value not in valid:
                raise ConfigError(f"{what} must be one of {', '.join(map(repr, valid))}, got {value!r}")
        if self.head.reg_max < 1:
            raise ConfigError(f"head.reg_max must be >= 1, got {self.head.reg_max}")
        h, n = self.head, self.neck
        if h.masks < 0 or h.prompt_free < 0 or h.proto_channels < 1:
            raise ConfigError(f"head.masks, head.prompt_free and head.proto_channels must be >= 0, got {h}")
        if h.kind == "world" and (h.masks or h.end2end or h.prompt_free or h.embed_branch != "conv"):
            raise ConfigError("masks, end2end, prompt_free and a dwconv embed_branch need head.kind 'yoloe'")
        if h.kind == "yoloe" and h.norm != "batchnorm":
            raise ConfigError("YOLOE's head scores with BatchNorm: set head.norm to 'batchnorm'")
        if (n.text_guided or n.image_pooling) and n.kind != "yolov8":
            raise ConfigError("a text-guided neck (C2fAttn, ImagePoolingAttn) exists for neck.kind 'yolov8' only")
        if n.image_pooling and not n.text_guided:
            raise ConfigError("neck.image_pooling (YOLO-World v1) needs neck.text_guided: true")
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
        sections = {"scale": ScaleConfig, "backbone": BackboneConfig, "neck": NeckConfig, "head": HeadConfig}
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
