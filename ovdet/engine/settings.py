"""Training settings: one frozen dataclass, filled from a recipe YAML and ``--set key=value`` overrides at the edge."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..data.augment import AugmentConfig
from ..errors import ConfigError
from .loss import LossWeights

__all__ = ["TrainSettings", "TUNE_MODES", "load_settings", "apply_overrides"]

TUNE_MODES = ("full", "head", "prompts")  # what trains: see ovdet.engine.tune


@dataclass(frozen=True)
class TrainSettings:
    """Everything a training run depends on; saved in the run folder as ``settings.yaml``.

    Attributes:
        data: Dataset YAML.
        model: An architecture config name/YAML (fresh weights) or a saved model folder (fine-tuning).
        text_encoder: Text-encoder spec for a fresh model (a saved model brings its own); ``None``: the one the
            config names (e.g. MobileCLIP-B for YOLOE), else ``ViT-B-32-quickgelu:openai``. Always frozen.
        out: Run folder.
        epochs, imgsz, batch: Schedule length, square training size, images per step (over all processes).
        device: ``cpu``, ``cuda`` or ``cuda:N``.
        workers: Data-loading processes per training process.
        cache_mb: Memory per data-loading process (or the training process with 0 workers) for decoded images,
            least recently used dropped first; 0 decodes every image every time it is read.
        optimizer: ``AdamW`` or ``SGD``.
        lr0, lrf: Initial learning rate and final fraction of it.
        momentum, weight_decay: Optimizer momentum (β1 for AdamW) and decay (scaled by batch/nbs as ultralytics).
        warmup_epochs: Linear warm-up length (at least 100 iterations).
        schedule: ``cosine`` or ``linear`` decay after warm-up.
        nbs: Nominal batch size; gradients accumulate to reach it.
        ema_decay, ema_tau: EMA of the weights (the saved models are the EMA).
        grad_clip: Max gradient norm.
        amp: Mixed precision on CUDA.
        freeze: ``none``, ``backbone`` (train neck and head) or ``head`` (train the head only); ``full`` tuning only.
        tune: What trains (:mod:`ovdet.engine.tune`): ``full`` (the model, less ``freeze``), ``head`` (linear probe:
            the last 1×1 conv of the class-embedding branch) or ``prompts`` (one embedding per dataset class; the
            detector stays bit-identical). ``head`` and ``prompts`` need a saved model to start from.
        distill: Weight of the distillation loss against forgetting (:mod:`ovdet.engine.distill`), ``full`` and
            ``head`` only; ``None``: 0.25 when fine-tuning a saved model, 0 when training from a config.
        distill_vocab: Names the frozen starting model scores for distillation: a class file (one class per line,
            ``name=prompt|prompt`` allowed) or a YAML list or mapping of names; ``None``: Objects365's 365 names for a
            pretrained CLIP text encoder, else the starting model's vocabulary. The dataset's classes are left out.
        replay: A second dataset YAML whose training images join every batch (as many as the batch's own), with
            negatives from its own classes only; ``full`` and ``head`` only.
        close_mosaic: Train the last N epochs without mosaic.
        max_vocab: Classes per image (positives plus sampled negatives).
        grounding: Also train on the dataset's grounding sources.
        val_split, val_interval: Split validated on (if the dataset has it) and how often (epochs).
        seed: Seeds data order, augmentation, vocabulary sampling and initialisation.
        strict_data: Invalid annotations are errors instead of counted warnings.
        augment: Augmentation strengths.
        loss: Loss gains.
    """

    data: str
    model: str = "ovdet-s"
    text_encoder: str | None = None
    out: str = "runs/train"
    epochs: int = 100
    imgsz: int = 640
    batch: int = 16
    device: str = "cpu"
    workers: int = 2
    cache_mb: float = 256
    optimizer: str = "AdamW"
    lr0: float = 0.002
    lrf: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 0.05
    warmup_epochs: float = 3.0
    schedule: str = "cosine"
    nbs: int = 64
    ema_decay: float = 0.9999
    ema_tau: float = 2000.0
    grad_clip: float = 10.0
    amp: bool = True
    freeze: str = "none"
    tune: str = "full"
    distill: float | None = None
    distill_vocab: str | None = None
    replay: str | None = None
    close_mosaic: int = 10
    max_vocab: int = 80
    grounding: bool = True
    val_split: str = "val"
    val_interval: int = 1
    seed: int = 0
    strict_data: bool = False
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    loss: LossWeights = field(default_factory=LossWeights)

    def __post_init__(self) -> None:
        checks = [
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.imgsz >= 32 and self.imgsz % 32 == 0, "imgsz must be a positive multiple of 32"),
            (self.batch >= 1, "batch must be >= 1"),
            (self.workers >= 0, "workers must be >= 0"),
            (0 <= self.cache_mb < float("inf"), "cache_mb must be a finite number >= 0"),
            (self.optimizer in ("AdamW", "SGD"), "optimizer must be AdamW or SGD"),
            (self.schedule in ("cosine", "linear"), "schedule must be cosine or linear"),
            (self.freeze in ("none", "backbone", "head"), "freeze must be none, backbone or head"),
            (self.tune in TUNE_MODES, f"tune must be one of {', '.join(TUNE_MODES)}"),
            (self.distill is None or (isinstance(self.distill, (int, float)) and 0 <= self.distill < float("inf")),
             "distill must be a finite number >= 0 (or null for the default)"),
            (self.tune == "full" or self.freeze == "none", "freeze applies to tune=full only (head and prompts "
             "modes freeze everything they do not train)"),
            (self.tune != "prompts" or not self.distill, "distill applies to tune=full and head: prompt tuning "
             "leaves the detector and every other name unchanged, so there is nothing to forget"),
            (self.tune != "prompts" or not self.replay, "replay applies to tune=full and head: prompt tuning "
             "trains only the dataset's class embeddings"),
            (self.lr0 > 0 and 0 < self.lrf <= 1, "lr0 must be > 0 and lrf in (0, 1]"),
            (self.max_vocab >= 1, "max_vocab must be >= 1"),
            (self.val_interval >= 1, "val_interval must be >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"training settings: {message}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_NESTED = {"augment": AugmentConfig, "loss": LossWeights}


_TYPES = {"int": int, "float": float, "str": str, "bool": bool}
_WHAT = {int: "a whole number", float: "a number", str: "a string (a path or a name)", bool: "true/false"}


def _coerce(cls: type, key: str, value: Any) -> Any:
    """Cast a string override to the type of field ``key`` of ``cls``, and check that a value from a recipe (YAML
    already typed it) has that type: ``epochs: ten`` or ``replay: 5`` is one error here, not a traceback later."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if key not in fields:
        raise ConfigError(f"unknown setting '{key}'; valid: {', '.join(sorted(fields))}")
    annotation = str(fields[key].type)
    optional = annotation.endswith("| None")
    kind = _TYPES.get(annotation.removesuffix("| None").strip())
    if kind is None:  # a nested group: apply_overrides checks its fields
        return value
    if isinstance(value, str) and optional and value.strip().lower() in ("", "none", "null") and kind is not str:
        return None
    if value is None:
        if optional:
            return None
        raise ConfigError(f"setting '{key}' needs a value ({_WHAT[kind]})")
    if isinstance(value, str) and kind is not str:
        if kind is bool:
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ConfigError(f"setting '{key}' expects true/false, got {value!r}")
        try:
            return kind(value)
        except ValueError:
            raise ConfigError(f"setting '{key}' expects {_WHAT[kind]}, got {value!r}") from None
    if kind is str and isinstance(value, os.PathLike):  # a pathlib.Path from Python code
        return os.fspath(value)
    if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise ConfigError(f"setting '{key}' expects {_WHAT[kind]}, got {value!r}")
    return value


def apply_overrides(settings: TrainSettings, overrides: dict[str, Any]) -> TrainSettings:
    """Return ``settings`` with ``{"lr0": "0.01", "augment.hsv_h": "0"}``-style overrides applied (typed, checked)."""
    top: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for key, value in overrides.items():
        head, _, rest = key.partition(".")
        if rest:
            if head not in _NESTED:
                raise ConfigError(f"unknown setting group '{head}'; groups: {', '.join(_NESTED)}")
            nested.setdefault(head, {})[rest] = _coerce(_NESTED[head], rest, value)
        elif head in _NESTED:
            if not isinstance(value, dict):
                raise ConfigError(f"setting '{head}' must be a mapping of its fields")
            for k, v in value.items():
                nested.setdefault(head, {})[k] = _coerce(_NESTED[head], k, v)
        else:
            top[head] = _coerce(TrainSettings, head, value)
    for head, values in nested.items():
        top[head] = dataclasses.replace(getattr(settings, head), **values)
    return dataclasses.replace(settings, **top)


def load_settings(recipe: str | Path | None, overrides: dict[str, Any]) -> TrainSettings:
    """Settings from an optional recipe YAML (any TrainSettings keys), then ``overrides`` on top.

    Raises:
        ConfigError: unreadable recipe, unknown keys, wrong types, or no ``data``.
    """
    values: dict[str, Any] = {}
    if recipe is not None:
        try:
            values = yaml.safe_load(Path(recipe).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as e:
            raise ConfigError(f"cannot read training recipe {recipe}: {e}") from e
        if not isinstance(values, dict):
            raise ConfigError(f"training recipe {recipe} must be a mapping of settings")
    values.update({k: v for k, v in overrides.items() if v is not None})
    if not values.get("data"):
        raise ConfigError("no dataset: pass --data DATA.yaml (or set 'data' in the recipe)")
    return apply_overrides(TrainSettings(data=str(values.pop("data"))), values)
