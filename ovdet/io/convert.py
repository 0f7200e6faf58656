"""Import ultralytics YOLO-World v2 checkpoints (``yolov8{n,s,m,l,x}-worldv2.pt``) into ovdet, weight for weight.

An ultralytics ``.pt`` file is a pickle of Python objects: reading it can run any code the file carries. This is the
only module of ovdet that unpickles, and only when the caller passes ``trust_pickle=True``. The result is an
ordinary :class:`~ovdet.OVDetector`; ``model.save(folder)`` then gives a safetensors + JSON folder that loads without
any pickle.

What is carried over: every weight of the YOLO-World v2 layout (CSPDarknet layers 0-9, the text-guided PAN layers
12-21, the WorldDetect head), the checkpoint's class names and class embeddings (its ``txt_feats``) as the vocabulary,
and the text encoder YOLO-World was trained with, ``ViT-B-32-quickgelu:openai``, so ``set_classes`` embeds new names
exactly as ultralytics does. Anything else — YOLO-World v1 (ImagePoolingAttn), YOLOE, plain YOLOv8 — is refused
with a message saying what the file holds.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError, PickleRefusedError, VocabularyError, WeightsUnavailableError
from ..model import OVDetector, build_detector, load_detector
from ..model.config import HeadConfig, ModelConfig, NeckConfig, ScaleConfig, load_config
from ..text import TextEncoder
from ..text.cache import default_cache_dir
from ..text.spec import YOLO_WORLD_TEXT_ENCODER
from ..text.vocabulary import Vocabulary
from .weights import WeightsSpec

__all__ = ["YOLO_WORLD_TEXT_ENCODER", "from_ultralytics", "read_ultralytics_checkpoint", "convert_world_model",
           "fetch_and_convert", "converted_weights_dir"]  # fmt: skip

logger = logging.getLogger(__name__)


# YOLO-World v2 (ultralytics/cfg/models/v8/yolov8-worldv2.yaml): each layer's module type and inputs ("from").
_LAYOUT: tuple[tuple[str, int | tuple[int, ...]], ...] = (
    ("Conv", -1), ("Conv", -1), ("C2f", -1), ("Conv", -1), ("C2f", -1), ("Conv", -1), ("C2f", -1), ("Conv", -1),
    ("C2f", -1), ("SPPF", -1),  # 0-9: backbone
    ("Upsample", -1), ("Concat", (-1, 6)), ("C2fAttn", -1),  # 10-12
    ("Upsample", -1), ("Concat", (-1, 4)), ("C2fAttn", -1),  # 13-15: P3 out
    ("Conv", 15), ("Concat", (-1, 12)), ("C2fAttn", -1),  # 16-18: P4 out
    ("Conv", -1), ("Concat", (-1, 9)), ("C2fAttn", -1),  # 19-21: P5 out
    ("WorldDetect", (15, 18, 21)),  # 22
)  # fmt: skip
# ultralytics layer index -> ovdet module; layers 10, 11, 13, 14, 17, 20 (Upsample, Concat) hold no weights
_LAYER_TO_MODULE = {
    0: "backbone.stem", 1: "backbone.stage2.0", 2: "backbone.stage2.1", 3: "backbone.stage3.0",
    4: "backbone.stage3.1", 5: "backbone.stage4.0", 6: "backbone.stage4.1", 7: "backbone.stage5.0",
    8: "backbone.stage5.1", 9: "backbone.stage5.2", 12: "neck.top_down4", 15: "neck.top_down3", 16: "neck.down3",
    18: "neck.bottom_up4", 19: "neck.down4", 21: "neck.bottom_up5",
}  # fmt: skip
_HEAD_TO_MODULE = {"cv2": "head.box_branch", "cv3": "head.embed_branch", "cv4": "head.scorers"}
_HEAD_LAYER = 22
_SUPPORTED = "ovdet imports YOLO-World v2 checkpoints (ultralytics' yolov8{n,s,m,l,x}-worldv2.pt)"


def read_ultralytics_checkpoint(path: str | os.PathLike, *, trust_pickle: bool = False) -> dict[str, Any]:
    """Unpickle an ultralytics checkpoint file (the dict ``torch.save`` wrote: ``model``, ``ema``, ``train_args``...).

    Args:
        path: The ``.pt`` file.
        trust_pickle: Must be ``True``: unpickling runs whatever code the file carries, so only do it for files from
            a source you trust (such as ultralytics' official releases).

    Raises:
        CheckpointError: no such file, or not a readable torch checkpoint.
        PickleRefusedError: ``trust_pickle`` is not ``True``.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if trust_pickle is not True:
        raise PickleRefusedError(
            f"{path} is a pickle (ultralytics saves checkpoints as pickled Python objects), and unpickling a file can "
            f"run any code it carries. If you trust where it came from, convert it once with "
            f"ovdet.from_ultralytics('{path}', trust_pickle=True) or `ovdet convert ultralytics {path} OUT_DIR "
            "--trust-pickle`; the converted folder (safetensors + JSON) then loads without any pickle"
        )
    import ultralytics.nn.tasks  # noqa: F401  (the classes the pickle names; importing them first gives clear errors)

    try:
        checkpoint = torch.load(str(path), map_location="cpu", weights_only=False)
    except ModuleNotFoundError as e:
        raise CheckpointError(
            f"{path} needs the Python module '{e.name}', which is not installed; an ultralytics checkpoint must be "
            "readable by the installed ultralytics (re-save it with `YOLO(path).save(new_path)` if it is older)"
        ) from e
    except Exception as e:  # pickle, zip and EOF errors all mean "not a checkpoint"; the message says which
        detail = str(e).splitlines()[0][:200] if str(e) else ""
        raise CheckpointError(f"{path} is not a readable torch checkpoint ({type(e).__name__}: {detail})") from e
    if isinstance(checkpoint, nn.Module):
        checkpoint = {"model": checkpoint}
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{path} holds a {type(checkpoint).__name__}, not an ultralytics checkpoint dict")
    return checkpoint


def from_ultralytics(
    path: str | os.PathLike,
    *,
    trust_pickle: bool = False,
    text_encoder: str | TextEncoder = YOLO_WORLD_TEXT_ENCODER,
    device: str = "cpu",
) -> OVDetector:
    """Convert an ultralytics YOLO-World v2 checkpoint into an ovdet detector.

    >>> model = ovdet.from_ultralytics("yolov8s-worldv2.pt", trust_pickle=True)
    >>> model.save("yolov8s-worldv2")  # safetensors + JSON: ovdet.load("yolov8s-worldv2") needs no pickle

    Args:
        path: An ultralytics ``.pt`` file (final or training checkpoint; the EMA weights are used when present).
        trust_pickle: Must be ``True`` (see :func:`read_ultralytics_checkpoint`).
        text_encoder: Encoder for later ``set_classes`` calls; YOLO-World's own by default. It is loaded lazily, so
            converting works offline.
        device: Where the returned model lives.

    Returns:
        An ``OVDetector`` in eval mode whose vocabulary is the checkpoint's class names and ``txt_feats``.

    Raises:
        PickleRefusedError: ``trust_pickle`` is not ``True``.
        CheckpointError: the file is not readable, or holds another architecture than YOLO-World v2.
    """
    checkpoint = read_ultralytics_checkpoint(path, trust_pickle=trust_pickle)
    module = checkpoint.get("ema") or checkpoint.get("model")  # ultralytics' own choice in load_checkpoint
    if not isinstance(module, nn.Module):
        raise CheckpointError(f"{path} has no model in it (keys: {', '.join(map(str, checkpoint))}); {_SUPPORTED}")
    model = convert_world_model(module, text_encoder=text_encoder)
    model.metadata["converted_from"] = {
        "format": "ultralytics",
        "file": Path(path).name,
        "sha256": _sha256(Path(path)),
        "ultralytics_version": checkpoint.get("version"),
        "date": checkpoint.get("date"),
        "license": checkpoint.get("license"),
    }
    return model.to(device)


def convert_world_model(module: nn.Module, *, text_encoder: str | TextEncoder = YOLO_WORLD_TEXT_ENCODER) -> OVDetector:
    """Convert an (unpickled or freshly built) ultralytics ``WorldModel`` of the v2 layout into an ``OVDetector``.

    Raises:
        CheckpointError: another architecture, or weights that do not fit the YOLO-World v2 layout.
    """
    _check_architecture(module)
    layers = module.model
    detect = layers[_HEAD_LAYER]
    embed_dim = int(detect.cv3[0][-1].out_channels)
    encoder = TextEncoder(text_encoder) if isinstance(text_encoder, str) else text_encoder
    if encoder is not None and encoder.dim != embed_dim:
        raise CheckpointError(
            f"this checkpoint scores {embed_dim}-d text embeddings but text encoder '{encoder.spec}' gives "
            f"{encoder.dim}-d; YOLO-World v2 uses {YOLO_WORLD_TEXT_ENCODER} (512-d)"
        )
    config = _model_config(module, embed_dim)
    model = build_detector(config, text_encoder=encoder)
    state = _converted_state_dict(module, model)
    model.load_state_dict(state, strict=True)
    _check_module_settings(module, model)

    vocab = _vocabulary(module, embed_dim)
    if vocab is not None:
        model.set_vocabulary(vocab)
    return model.eval()


# ---------------------------------------------------------------------------------------------------- architecture
def _check_architecture(module: nn.Module) -> None:
    kind = type(module).__name__
    layers = getattr(module, "model", None)
    if not isinstance(layers, nn.Sequential):
        raise CheckpointError(f"the checkpoint holds a {kind}, not an ultralytics model; {_SUPPORTED}")
    types = [type(m).__name__ for m in layers]
    if kind.startswith("YOLOE") or any(t.startswith("YOLOE") for t in types):
        raise CheckpointError(f"the checkpoint holds a YOLOE model ({kind}), which ovdet does not import; {_SUPPORTED}")
    if "ImagePoolingAttn" in types:
        raise CheckpointError(
            "the checkpoint holds YOLO-World v1 (yolov8*-world.pt: its ImagePoolingAttn layer updates the text "
            f"embeddings from the image), which ovdet does not import; use the v2 weights instead. {_SUPPORTED}"
        )
    if kind != "WorldModel" or "WorldDetect" not in types:
        task = getattr(module, "task", None) or "detect"
        raise CheckpointError(
            f"the checkpoint holds a {kind} ({task}, head {types[-1] if types else 'none'}): a closed-vocabulary "
            f"model without a text-embedding head, which cannot score free-text classes. {_SUPPORTED}"
        )
    for i, (expected, source) in enumerate(_LAYOUT):
        if i >= len(layers):
            raise CheckpointError(f"the model has {len(layers)} layers, YOLO-World v2 has {len(_LAYOUT)}; {_SUPPORTED}")
        found = getattr(layers[i], "f", source)
        found = tuple(found) if isinstance(found, (list, tuple)) else found
        if types[i] != expected or found != source:
            raise CheckpointError(
                f"layer {i} is {types[i]} from {found}, where YOLO-World v2 has {expected} from {source}: a "
                f"different architecture. {_SUPPORTED}"
            )
    if len(layers) != len(_LAYOUT):
        raise CheckpointError(f"the model has {len(layers)} layers, YOLO-World v2 has {len(_LAYOUT)}; {_SUPPORTED}")
    detect = layers[_HEAD_LAYER]
    if not all(type(h).__name__ == "BNContrastiveHead" for h in detect.cv4):
        raise CheckpointError(
            "the head scores with L2-normalised embeddings (ContrastiveHead, YOLO-World v1); v2 uses BatchNorm "
            f"(BNContrastiveHead). {_SUPPORTED}"
        )
    if getattr(detect, "end2end", False) or getattr(detect, "one2one_cv2", None) is not None:
        raise CheckpointError(f"the head is an end-to-end (NMS-free) variant, not imported by ovdet; {_SUPPORTED}")
    if any(isinstance(m, nn.Module) and type(m).__name__ == "Conv" and not hasattr(m, "bn") for m in module.modules()):
        raise CheckpointError(
            "the checkpoint's Conv+BatchNorm layers are fused (it was saved after inference); convert the original "
            "training checkpoint instead"
        )


def _model_config(module: nn.Module, embed_dim: int) -> ModelConfig:
    """The ovdet config of the checkpoint: scaling from its YAML, head widths from its tensors."""
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
    heads = tuple(int(row[3][2]) for row in spec.get("head", []) if row[2] == "C2fAttn")
    if len(heads) != 4:
        raise CheckpointError(f"the model's YAML has {len(heads)} C2fAttn rows, YOLO-World v2 has 4; {_SUPPORTED}")
    detect = module.model[_HEAD_LAYER]
    name = f"yoloworldv2-{scale}" if scale else "yoloworldv2-custom"
    base = load_config(name) if scale in ("n", "s", "m", "l", "x") else ModelConfig(name)
    embed_channels = int(detect.cv3[0][0].conv.out_channels)  # ultralytics: max(P3 channels, min(nc, 100))
    return dataclasses.replace(
        base,
        scale=ScaleConfig(float(depth), float(width), int(min(max_channels, 1 << 20))),
        neck=NeckConfig(text_guided=True, attn_heads=heads),  # type: ignore[arg-type]
        head=HeadConfig(reg_max=int(detect.reg_max), norm="batchnorm", embed_channels=embed_channels),
        embed_dim=embed_dim,
    )


def _converted_state_dict(module: nn.Module, model: OVDetector) -> dict[str, torch.Tensor]:
    """Rename the ultralytics weights to ovdet's modules; any key or shape that does not fit is refused."""
    state: dict[str, torch.Tensor] = {}
    for key, value in module.state_dict().items():
        _, index, rest = key.split(".", 2)  # "model.12.cv1.conv.weight"
        index = int(index)
        if index in _LAYER_TO_MODULE:
            state[f"{_LAYER_TO_MODULE[index]}.{rest}"] = value
        elif index == _HEAD_LAYER:
            branch, rest = rest.split(".", 1)
            if branch == "dfl":  # DFL's conv holds the fixed bin indices 0..reg_max-1; ovdet decodes with arange
                bins = torch.arange(value.numel(), dtype=value.dtype).view_as(value)
                if not torch.equal(value, bins):
                    raise CheckpointError("the head's DFL weights are not the fixed 0..reg_max-1 bins of YOLOv8")
                continue
            if branch not in _HEAD_TO_MODULE:
                raise CheckpointError(f"unexpected head weights '{key}' for YOLO-World v2; {_SUPPORTED}")
            state[f"{_HEAD_TO_MODULE[branch]}.{rest}"] = value
        else:
            raise CheckpointError(f"unexpected weights '{key}' in a layer that has none in YOLO-World v2; {_SUPPORTED}")
    expected = {k: v for k, v in model.state_dict().items() if k != "class_embeddings"}
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        detail = "; ".join(
            f"{what}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
            for what, keys in (("missing", missing), ("unexpected", unexpected), ("shape differs", wrong))
            if keys
        )
        raise CheckpointError(f"the weights do not fit the YOLO-World v2 layout ({detail}); {_SUPPORTED}")
    state = {k: v.to(expected[k].dtype) for k, v in state.items()}  # checkpoints are saved in float16
    state["class_embeddings"] = model.class_embeddings
    return state


def _check_module_settings(module: nn.Module, model: OVDetector) -> None:
    """What the state dict does not hold must agree too: each Conv's activation (e.g. SPPF's cv1: SiLU in YOLOv8,
    none in YOLO26) and each BatchNorm's eps (1e-3 in ultralytics models)."""
    ours = dict(model.named_modules())
    for name, theirs in module.named_modules():
        parts = name.split(".")
        if len(parts) < 3 or not parts[1].isdigit():
            continue
        index, rest = int(parts[1]), parts[2:]
        if index == _HEAD_LAYER:
            target = ".".join([_HEAD_TO_MODULE.get(rest[0], rest[0]), *rest[1:]])
        elif index in _LAYER_TO_MODULE:
            target = ".".join([_LAYER_TO_MODULE[index], *rest])
        else:
            continue
        mine = ours.get(target)
        if isinstance(theirs, nn.BatchNorm2d) and (mine is None or abs(mine.eps - theirs.eps) > 1e-12):
            raise CheckpointError(
                f"BatchNorm '{name}' has eps {theirs.eps:g}, where YOLO-World v2 (and ovdet) use "
                f"{getattr(mine, 'eps', float('nan')):g}; {_SUPPORTED}"
            )
        is_conv = hasattr(theirs, "act") and hasattr(theirs, "conv")
        if is_conv and type(getattr(mine, "act", None)) is not type(theirs.act):
            raise CheckpointError(
                f"layer '{name}' uses activation {type(theirs.act).__name__}, where YOLO-World v2 (and ovdet) use "
                f"{type(getattr(mine, 'act', None)).__name__}; {_SUPPORTED}"
            )


def _vocabulary(module: nn.Module, embed_dim: int) -> Vocabulary | None:
    """The checkpoint's names and ``txt_feats`` as a vocabulary, or ``None`` (with a warning saying why) when they
    are missing or disagree: the weights are still good, and ``set_classes`` gives the model a vocabulary."""
    feats = getattr(module, "txt_feats", None)
    if not isinstance(feats, torch.Tensor):
        logger.warning("the checkpoint carries no class embeddings (txt_feats); call set_classes before predicting")
        return None
    feats = feats.detach().float().reshape(-1, feats.shape[-1])  # (1, K, D) -> (K, D)
    names = getattr(module, "names", None)
    names = [names[i] for i in sorted(names)] if isinstance(names, dict) else list(names or [])
    if len(names) != len(feats):
        logger.warning(
            "the checkpoint has %d class names but %d class embeddings (txt_feats), so its vocabulary is not carried "
            "over; call set_classes before predicting", len(names), len(feats),
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
        return Vocabulary.from_embeddings([str(n) for n in names], feats, embed_dim)
    except VocabularyError as e:
        logger.warning("the checkpoint's vocabulary is not carried over (%s); call set_classes before predicting", e)
        return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------------- known weights
def converted_weights_dir() -> Path:
    """Where downloaded and converted known weights are kept: ``<ovdet cache>/weights``."""
    return default_cache_dir() / "weights"


def fetch_and_convert(spec: WeightsSpec, *, device: str = "cpu") -> OVDetector:
    """``ovdet.load(name)`` for known weights published as ultralytics checkpoints: download once, convert, cache.

    The converted folder goes to :func:`converted_weights_dir` and later loads need no network and no pickle. The
    downloaded file is unpickled without asking because its address is the official ultralytics release, fixed in
    ``ovdet/io/weights.py``, not something a caller passes in.

    Raises:
        WeightsUnavailableError: the download failed (offline); the message says how to download and convert by hand.
        CheckpointError: the download does not match the expected digest.
    """
    assert spec.url, spec
    folder = converted_weights_dir() / spec.name
    if (folder / "config.json").is_file():
        return load_detector(folder, device=device)
    file_name = spec.url.rsplit("/", 1)[-1]
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{spec.name}.", dir=folder.parent))
    try:
        path = tmp / file_name
        try:
            _download(spec.url, path)
        except OSError as e:  # URLError, timeouts, refused connections: all OSErrors
            raise WeightsUnavailableError(
                f"cannot download '{spec.name}' from {spec.url} ({e}). ovdet downloads and converts it once, then "
                f"works offline. Without network: fetch that file on another machine, copy it here and run "
                f"`ovdet convert ultralytics {file_name} {folder} --trust-pickle`; ovdet.load('{spec.name}') then "
                "finds it"
            ) from e
        if spec.sha256 and _sha256(path) != spec.sha256:
            raise CheckpointError(f"the download of '{spec.name}' from {spec.url} is corrupt (sha256 mismatch); retry")
        logger.info("converting %s to %s", file_name, folder)
        model = from_ultralytics(path, trust_pickle=True)  # the official release address, see the docstring
        model.metadata["weights"] = {"name": spec.name, "url": spec.url, "license": spec.license}
        model.save(folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return load_detector(folder, device=device)


def _download(url: str, path: Path, *, timeout: float = 30.0) -> None:
    """Stream ``url`` into ``path`` with a progress bar."""
    import urllib.request

    from tqdm import tqdm

    with urllib.request.urlopen(url, timeout=timeout) as response, path.open("wb") as f:  # noqa: S310 (fixed https)
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=path.name, disable=None) as bar:
            for block in iter(lambda: response.read(1 << 20), b""):
                f.write(block)
                bar.update(len(block))
