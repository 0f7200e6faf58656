"""YOLOE checkpoints (``yoloe-{v8,11,26}{n,s,m,l,x}[-seg][-pf].pt``), weight for weight.

Layouts: ultralytics' ``yoloe-v8.yaml`` (YOLOv8 backbone and PAN), ``yoloe-11.yaml`` and ``yoloe-26.yaml`` (C3k2,
SPPF, C2PSA; YOLO26 with its residual SPPF, PSA neck block, one-to-one branch and ``reg_max`` 1), and their ``-seg``
twins (mask coefficients and prototypes). Carried over: every weight of the backbone, neck and head (box,
embedding, BatchNorm scorer, mask branches, prototypes, the SwiGLU text projection ``reprta``, and the visual-prompt
encoder ``savpe`` where the checkpoint has one), and the vocabulary.

The vocabulary: ultralytics stores a text-prompted checkpoint's classes as *projected* embeddings (``pe``, the
output of ``reprta`` and L2 normalisation), while ovdet keeps raw encoder outputs and projects inside the model. The
converter solves, per class, for the unit-length raw embedding whose projection points along the stored one (Newton's
method on ``x + f(x) = s·pe, |x| = 1``); the result is checked (cosine within 1e-6 of the stored ``pe``), and a class
that does not converge leaves the vocabulary out with a warning. Prompt-free (``-pf``) checkpoints carry their
built-in vocabulary (names and LRPC convs) as the model's own classes; they lost their text layers when ultralytics
re-parameterised them, so ``set_classes`` is refused on them.

Not carried: YOLO26's training-only semantic-segmentation head (``proto.semseg``), DFL's fixed bins, and a prompt-free
checkpoint's SAVPE (it takes no prompts of any kind).
"""

from __future__ import annotations

import dataclasses
import logging

import torch
from torch import nn

from ...errors import CheckpointError
from ...model import OVDetector, build_detector
from ...model.config import BackboneConfig, HeadConfig, ModelConfig, NeckConfig, load_config, list_configs
from ...text import TextEncoder
from ...text.vocabulary import Vocabulary
from .common import (
    Layout, check_dfl, check_layout, check_module_settings, check_unfused, checkpoint_names, converted_state_dict,
    layer_types, vocabulary_from, yaml_scale,
)  # fmt: skip
from .world import SUPPORTED

__all__ = ["convert_yoloe_model", "is_yoloe_model", "unproject_text", "TEXT_ENCODERS"]

logger = logging.getLogger(__name__)

# ultralytics' text_model names -> open_clip specs of the same towers
TEXT_ENCODERS = {"mobileclip:blt": "MobileCLIP-B:datacompdr_lt", "mobileclip2:b": "MobileCLIP2-B:dfndr2b"}
_HEADS = ("YOLOEDetect", "YOLOESegment", "YOLOESegment26")
_V8: Layout = (
    ("Conv", -1), ("Conv", -1), ("C2f", -1), ("Conv", -1), ("C2f", -1), ("Conv", -1), ("C2f", -1), ("Conv", -1),
    ("C2f", -1), ("SPPF", -1),  # 0-9
    ("Upsample", -1), ("Concat", (-1, 6)), ("C2f", -1), ("Upsample", -1), ("Concat", (-1, 4)), ("C2f", -1),  # 10-15
    ("Conv", 15), ("Concat", (-1, 12)), ("C2f", -1), ("Conv", -1), ("Concat", (-1, 9)), ("C2f", -1),  # 16-21
)  # fmt: skip
_C3K2: Layout = (
    ("Conv", -1), ("Conv", -1), ("C3k2", -1), ("Conv", -1), ("C3k2", -1), ("Conv", -1), ("C3k2", -1), ("Conv", -1),
    ("C3k2", -1), ("SPPF", -1), ("C2PSA", -1),  # 0-10
    ("Upsample", -1), ("Concat", (-1, 6)), ("C3k2", -1), ("Upsample", -1), ("Concat", (-1, 4)), ("C3k2", -1),  # 11-16
    ("Conv", -1), ("Concat", (-1, 13)), ("C3k2", -1), ("Conv", -1), ("Concat", (-1, 10)), ("C3k2", -1),  # 17-22
)  # fmt: skip
_V8_MODULES = {
    0: "backbone.stem", 1: "backbone.stage2.0", 2: "backbone.stage2.1", 3: "backbone.stage3.0", 4: "backbone.stage3.1",
    5: "backbone.stage4.0", 6: "backbone.stage4.1", 7: "backbone.stage5.0", 8: "backbone.stage5.1",
    9: "backbone.stage5.2", 12: "neck.top_down4", 15: "neck.top_down3", 16: "neck.down3", 18: "neck.bottom_up4",
    19: "neck.down4", 21: "neck.bottom_up5",
}  # fmt: skip
_C3K2_MODULES = {
    0: "backbone.stem", 1: "backbone.stage2.0", 2: "backbone.stage2.1", 3: "backbone.stage3.0", 4: "backbone.stage3.1",
    5: "backbone.stage4.0", 6: "backbone.stage4.1", 7: "backbone.stage5.0", 8: "backbone.stage5.1",
    9: "backbone.stage5.2", 10: "backbone.stage5.3", 13: "neck.top_down4", 16: "neck.top_down3", 17: "neck.down3",
    19: "neck.bottom_up4", 20: "neck.down4", 22: "neck.bottom_up5",
}  # fmt: skip
_BRANCHES = {"cv2": "box", "cv3": "embed", "cv4": "scorers", "cv5": "masks"}


def is_yoloe_model(module: nn.Module) -> bool:
    """Whether ``module`` is an ultralytics YOLOE model (its head is a YOLOEDetect or one of its segmenting kinds)."""
    types = layer_types(module)
    return bool(types) and types[-1] in _HEADS


def convert_yoloe_model(module: nn.Module, *, text_encoder: str | TextEncoder | None = None) -> OVDetector:
    """Convert an (unpickled or freshly built) ultralytics ``YOLOEModel`` / ``YOLOESegModel`` into an ``OVDetector``.

    Args:
        module: The ultralytics model.
        text_encoder: Encoder for later ``set_classes`` calls; default: the one the checkpoint names
            (``text_model``), through open_clip (see :data:`TEXT_ENCODERS`), loaded lazily. Not used by prompt-free
            checkpoints.

    Raises:
        CheckpointError: another architecture, or weights that do not fit the layout.
    """
    family = _family(module)
    layout, modules = (_V8, _V8_MODULES) if family == "yolov8" else (_C3K2, _C3K2_MODULES)
    head_index = len(layout)
    label = f"YOLOE-{'v8' if family == 'yolov8' else family[4:]}"
    check_layout(module, (*layout, (layer_types(module)[-1], (head_index - 7, head_index - 4, head_index - 1))),
                 label, SUPPORTED)  # fmt: skip
    check_unfused(module)
    detect = module.model[-1]
    config = _model_config(module, family)
    prompt_free = config.head.prompt_free > 0
    if prompt_free:
        encoder = None
    else:
        spec = text_encoder or TEXT_ENCODERS.get(getattr(module, "text_model", "mobileclip:blt"))
        if spec is None:
            raise CheckpointError(
                f"the checkpoint's text model {module.text_model!r} has no open_clip equivalent known to ovdet "
                f"(known: {', '.join(TEXT_ENCODERS)}); pass text_encoder=... to convert it"
            )
        encoder = spec if isinstance(spec, TextEncoder) else TextEncoder(spec)
        if encoder.dim != config.embed_dim:
            raise CheckpointError(
                f"this checkpoint scores {config.embed_dim}-d text embeddings but text encoder '{encoder.spec}' "
                f"gives {encoder.dim}-d"
            )
        config = dataclasses.replace(config, text_encoder=encoder.spec)
    model = build_detector(config, text_encoder=encoder)

    def rename(index: int, rest: list[str]) -> str | None:
        if index in modules:
            return ".".join([modules[index], *rest])
        if index != head_index or not rest:
            raise CheckpointError(f"unexpected weights in layer {index} ({'.'.join(rest)}) for {label}; {SUPPORTED}")
        first, tail = rest[0], rest[1:]
        if first == "savpe":  # the visual-prompt encoder: kept unless prompt-free (no prompts of any kind)
            return ".".join(["head.savpe", *tail]) if config.head.savpe else None
        if first == "dfl" or (first == "proto" and tail[:1] == ["semseg"]):
            return None  # fixed bins; YOLO26's training-only semantic head
        if first == "reprta":
            return ".".join(["head.text_projection", *tail])
        if first == "proto":
            return ".".join(["head.proto", *tail])
        branch = "one2one" if first.startswith("one2one_") else "one2many"
        name = first.removeprefix("one2one_")
        if name in _BRANCHES:
            return ".".join([f"head.{branch}.{_BRANCHES[name]}", *tail])
        if name == "lrpc" and len(tail) >= 2:  # LRPCHead(vocab, pf, loc): loc is the box branch's last conv
            level, part, rest_ = tail[0], tail[1], tail[2:]
            target = {"vocab": f"vocab.{level}", "pf": f"proposal.{level}", "loc": f"box.{level}.2"}.get(part)
            if target is not None:
                return ".".join([f"head.{branch}.{target}", *rest_])
        raise CheckpointError(f"unexpected head weights '{'.'.join(rest)}' for {label}; {SUPPORTED}")

    def transform(key: str, value: torch.Tensor) -> torch.Tensor:
        if ".vocab." in key and key.endswith("weight") and value.ndim == 2:  # LRPC's Linear as a 1x1 conv
            return value[:, :, None, None]
        return value

    for key, value in module.state_dict().items():
        if key.startswith(f"model.{head_index}.dfl."):
            check_dfl(value)
    model.load_state_dict(converted_state_dict(module, model, rename, label, SUPPORTED, transform), strict=True)

    def settings_rename(index: int, rest: list[str]) -> str | None:
        try:
            return rename(index, rest)
        except CheckpointError:
            return None

    check_module_settings(module, model, settings_rename, label, SUPPORTED)
    if prompt_free:
        names = checkpoint_names(module)
        if len(names) != config.head.prompt_free:
            raise CheckpointError(
                f"the prompt-free head scores {config.head.prompt_free} classes but the checkpoint names {len(names)}"
            )
        model.set_builtin_names(names)
    else:
        vocab = _vocabulary(module, model)
        if vocab is not None:
            model.set_vocabulary(vocab)
    return model.eval()


def _family(module: nn.Module) -> str:
    types = layer_types(module)
    if "C3k2" not in types:
        return "yolov8"
    sppf = module.model[9]
    return "yolo26" if getattr(sppf, "add", False) else "yolo11"  # YOLO26's SPPF is residual


def _model_config(module: nn.Module, family: str) -> ModelConfig:
    """The ovdet config of the checkpoint: scaling from its YAML, branch layouts and widths from its modules."""
    scale, scale_config = yaml_scale(module)
    detect = module.model[-1]
    prompt_free = hasattr(detect, "lrpc")
    if prompt_free and getattr(detect, "cv2", None) is None:
        raise CheckpointError(
            "this prompt-free checkpoint kept only its one-to-one branch (its one-to-many branch was fused away); "
            f"ovdet imports prompt-free checkpoints that keep the one-to-many branch. {SUPPORTED}"
        )
    end2end = getattr(detect, "one2one_cv2", None) is not None
    if prompt_free and end2end and not hasattr(detect, "one2one_lrpc"):
        end2end = False  # LRPC was built for the one-to-many branch only; its one-to-one twin cannot score classes
    first = detect.cv3[0][0]
    embed_branch = "conv" if type(first).__name__ == "Conv" else "dwconv"
    embed_channels = int((first.conv if embed_branch == "conv" else first[1].conv).out_channels)
    masks = int(getattr(detect, "nm", 0)) if hasattr(detect, "proto") else 0
    proto = "yolo26" if type(getattr(detect, "proto", None)).__name__ == "Proto26" else "yolov8"
    embed_dim = int(getattr(detect, "embed", 512))
    vocab = detect.lrpc[0].vocab if prompt_free else None
    fam = {"yolov8": "v8", "yolo11": "11", "yolo26": "26"}[family]
    name = f"yoloe-{fam}{scale or '-custom'}{'-seg' if masks else ''}"
    base = load_config(name) if name in list_configs() else ModelConfig(name)
    if prompt_free:
        name += "-pf"
    c3k = family != "yolov8" and type(module.model[2].m[0]).__name__ == "C3k"
    head = HeadConfig(
        kind="yoloe", reg_max=int(detect.reg_max), norm="batchnorm", embed_channels=embed_channels,
        embed_branch=embed_branch, end2end=end2end, masks=masks, proto=proto,
        proto_channels=int(detect.proto.cv1.conv.out_channels) if masks else 256,
        prompt_free=int(vocab.out_features if isinstance(vocab, nn.Linear) else vocab.out_channels) if prompt_free else 0,
        savpe=getattr(detect, "savpe", None) is not None and not prompt_free,
    )  # fmt: skip
    return dataclasses.replace(
        base, name=name, scale=scale_config, backbone=BackboneConfig(kind=family, c3k=c3k),
        neck=NeckConfig(kind=family), head=head, embed_dim=embed_dim,
        text_encoder=None if prompt_free else base.text_encoder,  # a prompt-free model takes no text
    )  # fmt: skip


def _vocabulary(module: nn.Module, model: OVDetector) -> Vocabulary | None:
    """The checkpoint's names and projected embeddings ``pe``, as raw embeddings (see the module docstring)."""
    pe = getattr(module, "pe", None)
    if not isinstance(pe, torch.Tensor):
        return vocabulary_from(module, None, model.embed_dim, "pe")
    projected = torch.nn.functional.normalize(pe.detach().float().reshape(-1, pe.shape[-1]), dim=-1)
    with torch.no_grad():
        raw, cosine = unproject_text(model.head, projected)
    if (1 - cosine).max() > 1e-6:
        logger.warning(
            "the checkpoint's class embeddings (pe) could not be traced back through the text projection for %d "
            "classes (worst cosine %.6f), so its vocabulary is not carried over; call set_classes before predicting",
            int(((1 - cosine) > 1e-6).sum()), float(cosine.min()),
        )  # fmt: skip
        return None
    return vocabulary_from(module, raw, model.embed_dim, "pe")


def unproject_text(head: nn.Module, projected: torch.Tensor, *, steps: int = 200) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit-length raw embeddings whose projection by ``head.project_text`` points along ``projected`` ``(K, D)``.

    Solves ``x + f(x) = s·p`` with ``|x| = 1`` (``f`` the residual SwiGLU, ``p`` a row of ``projected``) in float64:
    first by the fixed-point iteration ``x ← s·p − f(x)``, ``s`` chosen so that ``|x| = 1`` (a few matrix products per
    step; it converges when ``f`` is a moderate perturbation, as in trained models), then by Newton's method on
    ``(x, s)`` for any row that has not converged.

    Returns:
        ``(raw (K, D) float32, cosine (K,))``: the solution and the cosine between its projection and ``projected``.
    """
    swiglu = head.text_projection.m
    p = torch.nn.functional.normalize(projected.double(), dim=-1)
    w12, b12 = swiglu.w12.weight.double(), swiglu.w12.bias.double()
    w3, b3 = swiglu.w3.weight.double(), swiglu.w3.bias.double()
    w1, w2 = w12.chunk(2, dim=0)  # (E, D) each

    def f(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        a, b = (x @ w12.T + b12).chunk(2, dim=-1)
        silu = torch.nn.functional.silu(a)
        return (silu * b) @ w3.T + b3, a, b

    x = p.clone()
    for _ in range(steps):  # fixed point
        fx = f(x)[0]
        pf = (p * fx).sum(-1)
        disc = pf**2 - (fx * fx).sum(-1) + 1
        s = pf + disc.clamp(min=0).sqrt()
        new = torch.nn.functional.normalize(s[:, None] * p - fx, dim=-1)
        done = (new - x).abs().amax(-1) < 1e-13
        x = new
        if done.all():
            break
    fx = f(x)[0]
    s = ((x + fx) * p).sum(-1)
    pending = ((x + fx - s[:, None] * p).abs().amax(-1) > 1e-10).nonzero(as_tuple=True)[0]
    d = p.shape[1]
    for start in range(0, len(pending), 32):  # Newton on what the fixed point left: (32, D+1, D+1) Jacobians at a time
        rows = pending[start : start + 32]
        xr, sr, pr = x[rows], s[rows], p[rows]
        for _ in range(30):
            fx, a, b = f(xr)
            sig = torch.sigmoid(a)
            inner = (sig * (1 + a * (1 - sig)) * b)[:, :, None] * w1 + (a * sig)[:, :, None] * w2  # (k, E, D)
            jac = torch.zeros(len(rows), d + 1, d + 1, dtype=torch.float64)
            jac[:, :d, :d] = torch.eye(d, dtype=torch.float64) + torch.einsum("de,kei->kdi", w3, inner)
            jac[:, :d, d] = -pr
            jac[:, d, :d] = xr
            res = torch.cat([xr + fx - sr[:, None] * pr, 0.5 * ((xr * xr).sum(-1, keepdim=True) - 1)], 1)
            step = torch.linalg.solve(jac, res)
            xr, sr = xr - step[:, :d], sr - step[:, d]
            if step.abs().max() < 1e-13:
                break
        x[rows] = xr
    raw = torch.nn.functional.normalize(x, dim=-1).float()
    cosine = (head.project_text(raw).double() * p).sum(-1)
    return raw, cosine.float()
