"""What every ultralytics converter shares: layer-layout checks, scaling from the model's YAML, renaming the state dict
onto ovdet's modules with every key and shape accounted for, the settings a state dict does not hold (activations,
BatchNorm eps), and the checkpoint's own vocabulary."""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
from torch import nn

from ...errors import CheckpointError, VocabularyError
from ...model import OVDetector
from ...model.config import ScaleConfig
from ...text.vocabulary import Vocabulary

__all__ = ["Layout", "Rename", "check_layout", "check_unfused", "yaml_scale", "converted_state_dict",
           "check_module_settings", "checkpoint_names", "vocabulary_from", "check_dfl"]  # fmt: skip

logger = logging.getLogger(__name__)

# Each layer's module type and inputs ("from"), as ultralytics' YAML lists them.
Layout = tuple[tuple[str, int | tuple[int, ...]], ...]
# (layer index, the dotted parts after it) -> the ovdet name, or None for weights ovdet does not keep
Rename = Callable[[int, list[str]], str | None]


def layer_types(module: nn.Module) -> list[str]:
    layers = getattr(module, "model", None)
    return [type(m).__name__ for m in layers] if isinstance(layers, nn.Sequential) else []


def check_layout(module: nn.Module, layout: Layout, family: str, supported: str) -> None:
    """Every layer's type and wiring must be ``layout``'s.

    Raises:
        CheckpointError: a layer of another type or wiring, or another number of layers.
    """
    layers = module.model
    types = layer_types(module)
    if len(layers) != len(layout):
        raise CheckpointError(f"the model has {len(layers)} layers, {family} has {len(layout)}; {supported}")
    for i, (expected, source) in enumerate(layout):
        found = getattr(layers[i], "f", source)
        found = tuple(found) if isinstance(found, (list, tuple)) else found
        if types[i] != expected or found != source:
            raise CheckpointError(
                f"layer {i} is {types[i]} from {found}, where {family} has {expected} from {source}: a different "
                f"architecture. {supported}"
            )


def check_unfused(module: nn.Module) -> None:
    """Refuse a model whose Conv+BatchNorm pairs were fused (saved after inference): its BatchNorms are gone."""
    if any(type(m).__name__ == "Conv" and not hasattr(m, "bn") for m in module.modules()):
        raise CheckpointError(
            "the checkpoint's Conv+BatchNorm layers are fused (it was saved after inference); convert the original "
            "training checkpoint instead"
        )


def yaml_scale(module: nn.Module) -> tuple[str | None, ScaleConfig]:
    """The scale letter and multiples the model was built with, read from its YAML as ``parse_model`` reads them.

    Raises:
        CheckpointError: the model records no YAML (it was not built by ultralytics).
    """
    spec = getattr(module, "yaml", None)
    if not isinstance(spec, dict):
        raise CheckpointError("the model records no architecture YAML (model.yaml); it was not built by ultralytics")
    scales, scale = spec.get("scales"), spec.get("scale")
    if scales:
        scale = scale if scale in scales else next(iter(scales))  # what ultralytics' parse_model does
        depth, width, max_channels = scales[scale]
    else:
        depth, width = spec.get("depth_multiple", 1.0), spec.get("width_multiple", 1.0)
        max_channels, scale = spec.get("max_channels", 1 << 20), None
    return scale, ScaleConfig(float(depth), float(width), int(min(max_channels, 1 << 20)))


def check_dfl(value: torch.Tensor) -> None:
    """DFL's conv holds the fixed bin indices 0..reg_max-1; ovdet decodes with ``arange``, so nothing is carried."""
    bins = torch.arange(value.numel(), dtype=value.dtype).view_as(value)
    if not torch.equal(value, bins):
        raise CheckpointError("the head's DFL weights are not the fixed 0..reg_max-1 bins of YOLOv8")


def converted_state_dict(
    module: nn.Module,
    model: OVDetector,
    rename: Rename,
    family: str,
    supported: str,
    transform: Callable[[str, torch.Tensor], torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """Rename the ultralytics weights onto ``model``'s modules; any key or shape that does not fit is refused.

    ``transform(ovdet_key, tensor)`` may reshape a tensor (e.g. a Linear layer's weight for a 1×1 conv).
    """
    state: dict[str, torch.Tensor] = {}
    for key, value in module.state_dict().items():
        _, index, *rest = key.split(".")  # "model.12.cv1.conv.weight"
        target = rename(int(index), rest)
        if target is not None:
            state[target] = transform(target, value) if transform is not None else value
    expected = {k: v for k, v in model.state_dict().items() if k != "class_embeddings"}
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        detail = "; ".join(
            f"{what}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
            for what, keys in (("missing", missing), ("unexpected", unexpected), ("shape differs", wrong))
            if keys
        )
        raise CheckpointError(f"the weights do not fit the {family} layout ({detail}); {supported}")
    state = {k: v.to(expected[k].dtype) for k, v in state.items()}  # checkpoints are saved in float16
    state["class_embeddings"] = model.class_embeddings
    return state


def check_module_settings(module: nn.Module, model: OVDetector, rename: Rename, family: str, supported: str) -> None:
    """What the state dict does not hold must agree too: each Conv's activation (e.g. SPPF's cv1: SiLU in YOLOv8 and
    YOLO11, none in YOLO26) and each BatchNorm's eps (1e-3 in ultralytics models)."""
    ours = dict(model.named_modules())
    for name, theirs in module.named_modules():
        parts = name.split(".")
        if len(parts) < 3 or not parts[1].isdigit():
            continue
        target = rename(int(parts[1]), parts[2:])
        if target is None:
            continue
        mine = ours.get(target)
        if isinstance(theirs, nn.BatchNorm2d) and (mine is None or abs(mine.eps - theirs.eps) > 1e-12):
            raise CheckpointError(
                f"BatchNorm '{name}' has eps {theirs.eps:g}, where {family} (and ovdet) use "
                f"{getattr(mine, 'eps', float('nan')):g}; {supported}"
            )
        is_conv = hasattr(theirs, "act") and hasattr(theirs, "conv")
        if is_conv and type(getattr(mine, "act", None)) is not type(theirs.act):
            raise CheckpointError(
                f"layer '{name}' uses activation {type(theirs.act).__name__}, where {family} (and ovdet) use "
                f"{type(getattr(mine, 'act', None)).__name__}; {supported}"
            )


def checkpoint_names(module: nn.Module) -> list[str]:
    """The model's class names in index order (ultralytics keeps a dict index -> name)."""
    names = getattr(module, "names", None)
    return [str(names[i]) for i in sorted(names)] if isinstance(names, dict) else [str(n) for n in names or []]


def vocabulary_from(module: nn.Module, feats: torch.Tensor | None, embed_dim: int, what: str) -> Vocabulary | None:
    """The checkpoint's names and class embeddings ``feats`` (``(1, K, D)`` or ``(K, D)``) as a vocabulary, or
    ``None`` with a warning saying why when they are missing or disagree: the weights are still good, and
    ``set_classes`` gives the model a vocabulary."""
    if not isinstance(feats, torch.Tensor):
        logger.warning("the checkpoint carries no class embeddings (%s); call set_classes before predicting", what)
        return None
    feats = feats.detach().float().reshape(-1, feats.shape[-1])  # (1, K, D) -> (K, D)
    names = checkpoint_names(module)
    if len(names) != len(feats):
        logger.warning(
            "the checkpoint has %d class names but %d class embeddings (%s), so its vocabulary is not carried "
            "over; call set_classes before predicting", len(names), len(feats), what,
        )  # fmt: skip
        return None
    norms = feats.norm(dim=-1)
    if ((norms - 1).abs() > 1e-2).any():
        logger.warning(
            "the checkpoint's class embeddings are not unit-length (norms %.3g..%.3g): they may be ultralytics' random "
            "placeholder rather than CLIP embeddings; call set_classes with your class names",
            norms.min().item(), norms.max().item(),
        )  # fmt: skip
    try:
        return Vocabulary.from_embeddings(names, feats, embed_dim)
    except VocabularyError as e:
        logger.warning("the checkpoint's vocabulary is not carried over (%s); call set_classes before predicting", e)
        return None
