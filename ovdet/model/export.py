"""ONNX export of a detector: images (and, with a runtime vocabulary, class embeddings) in; boxes and scores out.

Inputs:

- ``images`` ``(B, 3, H, W)`` float32, RGB in [0, 1], H and W multiples of the stride (batch and size dynamic, so
  ultralytics' minimal letterbox padding is kept);
- ``class_embeddings`` ``(K, D)`` float32 (``vocabulary="runtime"`` only): the text encoder's L2-normalised output, as
  the embedding cache stores it, K dynamic (any projection a family applies to text happens inside the graph);
- ``class_projected`` ``(K,)`` bool (runtime YOLOE graphs only): rows already in YOLOE's projected space (visual
  prompts, :mod:`ovdet.model.visual`), which skip the text projection; all ``False`` for text.

Outputs: ``boxes`` ``(B, A, 4)`` (xyxy, input pixels) and ``scores`` ``(B, K, A)`` (probabilities); segmentation models
also give ``mask_coefficients`` ``(B, M, A)`` and ``protos`` ``(B, M, H/4, W/4)``. NMS stays outside
(:mod:`ovdet.runtime.postprocess`). An end-to-end head (YOLO26) is exported with the branch it predicts with
(``model.end2end``), and the metadata says whether its detections are selected by top-k (no NMS) or by NMS. Everything a reader needs — kind, vocabulary mode, class names and prompts (and,
for a runtime vocabulary, the current embeddings as the default classes), stride, default size, the text encoder's
identity, preprocessing, quantisation — is JSON under the ``ovdet`` key of ``metadata_props``
(:mod:`ovdet.runtime.session`).

``vocabulary="folded"`` traces a fused copy (:meth:`OVDetector.fuse`: BatchNorm and the vocabulary folded into convs).
``vocabulary="runtime"`` traces the detector's own ``forward(images, class_embeddings)`` on a copy whose Conv+BatchNorm
pairs are fused; in eval mode that forward folds the text into the head on the fly and runs the neck's attention as
batched matmuls (:mod:`ovdet.model.fuse`), so no reshape bakes the class count in.
"""

from __future__ import annotations

import io
import json
import logging
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..errors import ConfigError, OutputError, VocabularyError
from ..fileio import atomic_write_bytes, check_output_file
from ..prompts import prompt_to_json
from ..runtime.detector import encode_embeddings
from ..runtime.session import METADATA_KEY, ONNX_FORMAT_VERSION
from .postprocess import decode_boxes

if TYPE_CHECKING:
    from .detector import OVDetector

__all__ = ["VOCABULARY_MODES", "export_onnx", "check_replaceable", "read_ovdet_metadata"]

logger = logging.getLogger(__name__)

VOCABULARY_MODES = ("folded", "runtime")
_TRACE_CLASSES = 7  # an odd count for the trace, so a baked-in K would fail every other K in the parity tests


class _AdaptiveMaxPool2d(nn.Module):
    """``nn.AdaptiveMaxPool2d((k, k))`` in tensor operations, so that it exports with a dynamic input size (PyTorch's
    ONNX exporter needs the size at export time). Window ``i`` spans ``[floor(i·H/k), ceil((i+1)·H/k))``, as PyTorch's;
    the maximum is exact."""

    def __init__(self, k: int):
        super().__init__()
        self.k = k

    def _pool(self, x: torch.Tensor, dim: int) -> torch.Tensor:
        n = torch._shape_as_tensor(x)[dim]  # a tensor, so the exporter keeps it symbolic
        i = torch.arange(self.k, device=x.device)
        starts, ends = (i * n) // self.k, ((i + 1) * n + self.k - 1) // self.k  # (k,)
        pos = torch.arange(x.shape[dim], device=x.device)
        inside = (pos[None, :] >= starts[:, None]) & (pos[None, :] < ends[:, None])  # (k, n)
        shape = [1] * (x.ndim + 1)
        shape[dim], shape[dim + 1] = self.k, -1
        x = x.unsqueeze(dim)  # (..., 1, n, ...)
        return x.masked_fill(~inside.view(shape), float("-inf")).amax(dim + 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._pool(self._pool(x, 2), 3)


class _DecodedOutputs(nn.Module):
    """The exported computation: the detector (against its folded vocabulary, or the given embeddings), then boxes."""

    def __init__(self, model: OVDetector):
        super().__init__()
        self.model = model

    def forward(
        self, images: torch.Tensor, class_embeddings: torch.Tensor | None = None,
        class_projected: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, ...]:
        out = self.model(images, class_embeddings, class_projected)
        decoded = (decode_boxes(out), out.class_logits.sigmoid())
        if out.mask_coefficients is not None:
            return (*decoded, out.mask_coefficients, out.protos)
        return decoded


def _cpu_copy(model: OVDetector) -> OVDetector:
    """A float32 CPU copy of ``model`` without its text encoder; ``model`` itself is left exactly as it was."""
    import copy

    from .build import build_detector

    if model.is_fused:  # its BatchNorms are gone, so no state dict rebuilds it: copy the modules (minus the encoder)
        encoder, model.text_encoder = model.text_encoder, None
        try:
            twin = copy.deepcopy(model).float().cpu()
        finally:
            model.text_encoder = encoder
    else:
        twin = build_detector(model.config)  # no text encoder: the graph needs none
        twin.load_state_dict({k: v.float().cpu() for k, v in model.state_dict().items()})
        if model.names:
            twin.set_vocabulary(model.vocabulary)
        twin.end2end = model.end2end
    pooling = getattr(twin.neck, "image_pooling", None)  # YOLO-World v1: a pooling the exporter can keep dynamic
    if pooling is not None:
        pooling.im_pools = nn.ModuleList(_AdaptiveMaxPool2d(pooling.k) for _ in pooling.im_pools)
    return twin.eval()


def _takes_projected(model: OVDetector) -> bool:
    """Whether a runtime graph of ``model`` takes ``class_projected``: a head with a text projection (YOLOE)."""
    return getattr(model.head, "text_projection", None) is not None


def _graph_model(model: OVDetector, vocabulary: str) -> OVDetector:
    """What is traced: fused (vocabulary folded) for ``"folded"``; Conv+BatchNorm fused, text as input, for
    ``"runtime"``."""
    from .fuse import fuse_conv_bn_

    twin = _cpu_copy(model)
    if vocabulary == "folded":
        return twin.fuse().float()
    with torch.no_grad():
        fuse_conv_bn_(twin)  # Conv+BN only: the text path stays (a fused model has no BatchNorm left to fold)
    return twin.eval()


def read_ovdet_metadata(path: str | os.PathLike) -> dict[str, Any] | None:
    """The ovdet metadata of an ONNX file, or ``None`` if it is not an ONNX file written by ovdet."""
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception:  # not a protobuf, truncated, ...: not ours
        return None
    for entry in proto.metadata_props:
        if entry.key == METADATA_KEY:
            try:
                return json.loads(entry.value)
            except json.JSONDecodeError:
                return None
    return None


def check_replaceable(path: str | os.PathLike, *, kind: str) -> None:
    """Refuse an output path that holds anything but an earlier ovdet export of the same ``kind`` (``"detector"``
    or ``"text_encoder"``): ovdet replaces only files it wrote, and never one export with another of a different
    job (a text encoder written over the detector it serves loses the detector).

    Raises:
        OutputError: ``path`` is a folder, sits below a file or cannot be written, is a file ovdet did not write, or
            an ovdet export of another kind.
    """
    path = check_output_file(path, what="export", example="model.onnx")
    if not path.exists():
        return
    info = read_ovdet_metadata(path)
    if info is None:
        raise OutputError(
            f"{path} exists and was not written by ovdet's export; ovdet only replaces its own exports: "
            "choose another path, or remove the file yourself"
        )
    found = info.get("kind", "detector")
    if found != kind:
        raise OutputError(
            f"{path} is an ovdet {found.replace('_', ' ')} export; writing a {kind.replace('_', ' ')} there would "
            "lose it: choose another path (a bundle folder holds model.onnx and text_encoder.onnx)"
        )


def _trace(graph: nn.Module, example: tuple[torch.Tensor, ...], runtime: bool, opset: int, masks: bool) -> bytes:
    buffer = io.BytesIO()  # no temporary file to leave behind
    names = ["images", "class_embeddings", "class_projected"][: len(example)]
    outputs = ["boxes", "scores"]
    axes = {"images": {0: "batch", 2: "height", 3: "width"}, "boxes": {0: "batch", 1: "anchors"},
            "scores": {0: "batch", 1: "classes", 2: "anchors"}}  # fmt: skip
    if runtime:
        axes["class_embeddings"] = {0: "classes"}
        if len(example) == 3:
            axes["class_projected"] = {0: "classes"}
    else:
        del axes["scores"][1]
    if masks:
        outputs += ["mask_coefficients", "protos"]
        axes.update(mask_coefficients={0: "batch", 2: "anchors"}, protos={0: "batch", 2: "proto_height", 3: "proto_width"})
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about Python-side shape arithmetic
        torch.onnx.export(
            graph, example, buffer, dynamo=False, opset_version=opset, input_names=names,
            output_names=outputs, dynamic_axes=axes,
        )  # fmt: skip
    return buffer.getvalue()


def export_onnx(
    model: OVDetector,
    path: str | os.PathLike,
    *,
    vocabulary: str = "folded",
    imgsz: int | tuple[int, int] | None = None,
    opset: int = 17,
    int8: bool = False,
    calibration: Any = None,
) -> Path:
    """Write ``model`` to an ONNX file (see the module docstring for its contract); ``model`` is not changed.

    Args:
        model: The detector.
        path: The ``.onnx`` file; replaced atomically if it is an earlier ovdet export, refused if it is anything else.
        vocabulary: ``"folded"``: the current classes folded into the graph (fastest, fixed classes).
            ``"runtime"``: class embeddings are an input (``OnnxDetector.set_classes`` changes classes).
        imgsz: Size of the tracing input, and the default inference size recorded in the file.
        opset: ONNX opset (≥ 12; 17 default).
        int8: Quantise to INT8 with ONNX Runtime's static quantisation (QDQ; see :mod:`ovdet.model.quantize`).
        calibration: With ``int8``: the images to calibrate activation ranges on (anything ``predict`` takes: a
            folder, a glob, a list of files or arrays); the model's current classes are used.

    Raises:
        ConfigError: an unknown vocabulary mode, ``int8`` without ``calibration`` or ``calibration`` without
            ``int8``, an opset below 12 (a ``ValueError`` too).
        VocabularyError: no vocabulary is set where one is needed (folded, or int8 calibration), or a runtime
            vocabulary asked of a prompt-free model (it has no text input).
        OutputError: ``path`` is a folder, a file ovdet did not write, or an ovdet export of another kind (a text
            encoder).
    """
    if vocabulary not in VOCABULARY_MODES:
        raise ConfigError(f"vocabulary must be one of {', '.join(VOCABULARY_MODES)}, got {vocabulary!r}")
    runtime = vocabulary == "runtime"
    if runtime and model.prompt_free:
        raise VocabularyError(
            f"'{model.config.name}' is a prompt-free model: it scores its built-in vocabulary of "
            f"{model.config.head.prompt_free} classes with fixed layers and has no text input, so there is no runtime "
            "vocabulary to export; export it with its vocabulary folded in: model.export('onnx', path) "
            "(vocabulary='folded', the default). For classes chosen at run time, convert the text-prompted checkpoint "
            "of the same model (e.g. yoloe-11s-seg.pt instead of yoloe-11s-seg-pf.pt) and export that with "
            "vocabulary='runtime'"
        )
    if not model.names and (not runtime or int8):
        what = "calibrating INT8 (it runs the model on your classes)" if runtime else "exporting a folded vocabulary"
        raise VocabularyError(f"set the vocabulary before {what}: model.set_classes([...]).export('onnx', path, ...)")
    if int8 and calibration is None:
        raise ConfigError("int8=True needs calibration=IMAGES (a folder, glob or list of images like those you predict)")
    if calibration is not None and not int8:  # a setting given is a setting used: calibration alone quantises nothing
        raise ConfigError("calibration images are used only with int8=True; pass int8=True to quantise, or drop "
                          "calibration for a float32 export")
    if opset < 12:
        raise ConfigError(f"opset must be >= 12 (einsum and dynamic shapes), got {opset}")
    check_replaceable(path, kind="detector")
    if int8:
        from ..images import resolve_images

        calibration = resolve_images(calibration)  # a bad source fails now, before the work
    size = model.inference_size(imgsz)
    graph = _DecodedOutputs(_graph_model(model, vocabulary)).eval()
    example: tuple[torch.Tensor, ...] = (torch.zeros(1, 3, *size),)
    if runtime:
        text = torch.nn.functional.normalize(torch.randn(_TRACE_CLASSES, model.embed_dim), dim=-1)
        example = (*example, text)
        if _takes_projected(model):  # YOLOE: visual-prompt rows skip the text projection
            example = (*example, torch.arange(_TRACE_CLASSES) % 2 == 0)
    masks = model.config.head.masks
    data = _trace(graph, example, runtime, opset, masks)
    import onnx

    proto = onnx.load_from_string(data)
    encoder = model.text_encoder
    info: dict[str, Any] = {
        "format_version": ONNX_FORMAT_VERSION,
        "kind": "detector",
        "vocabulary": vocabulary,
        "names": model.names,
        "prompts": [[prompt_to_json(p) for p in ps] for ps in model.prompts.values()],
        "projected": [bool(x) for x in model.vocabulary.projected],
        "embed_dim": model.embed_dim,
        "stride": model.stride,
        "imgsz": list(size),
        "architecture": model.config.name,
        # travels: the tower is carried in the model's checkpoint, its spec names no weights a user could fetch
        "text_encoder": {"spec": encoder.spec, "key": encoder.key, "dim": encoder.dim, "travels": encoder.travels}
        if encoder is not None else None,
        "preprocess": {"letterbox": "ultralytics", "pad_value": 114, "input": "RGB / 255"},
        "inputs": {"images": "(B, 3, H, W) float32 RGB in [0, 1]"},
        "outputs": {"boxes": "(B, A, 4) xyxy input pixels", "scores": "(B, K, A) probabilities",
                    **({"mask_coefficients": "(B, M, A)", "protos": "(B, M, H/4, W/4)"} if masks else {})},
        "end2end": model.end2end,
        "prompt_free": bool(model.prompt_free),  # its built-in vocabulary only: no runtime export can change it
        "masks": masks,
        "int8": None,
    }  # fmt: skip
    if runtime:
        info["inputs"]["class_embeddings"] = "(K, D) float32, L2-normalised text-encoder output"
        if _takes_projected(model):
            info["inputs"]["class_projected"] = "(K,) bool, rows already in the projected space (visual prompts)"
        if model.names:  # the current classes come along as defaults: predict works before any set_classes
            info["embeddings"] = encode_embeddings(model.vocabulary.embeddings)
        tuned = getattr(model, "tuned", None)
        if tuned is not None and len(tuned):  # prompt-tuned vectors: OnnxDetector.set_classes uses them by name
            info["tuned"] = {"names": list(tuned.names), "embeddings": encode_embeddings(tuned.embeddings)}
    if int8:
        from .quantize import quantize_int8

        proto, info["int8"] = quantize_int8(proto, model, calibration, size=size, runtime=runtime)
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(info)
    atomic_write_bytes(path, proto.SerializeToString())
    logger.info("exported %s (%s vocabulary, %d classes%s) to %s", model.config.name, vocabulary, len(model.names),
                ", int8" if int8 else "", path)  # fmt: skip
    return Path(path)
