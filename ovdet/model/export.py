"""ONNX export: images in, decoded boxes and class scores out, the vocabulary folded in; NMS stays in Python.

The graph takes ``images`` ``(B, 3, H, W)`` (RGB in [0, 1], H and W multiples of the stride; batch and size are
dynamic) and returns ``boxes`` ``(B, A, 4)`` (xyxy, input pixels) and ``scores`` ``(B, K, A)`` (probabilities for
the K classes); segmentation models also return ``mask_coefficients`` ``(B, M, A)`` and ``protos``
``(B, M, H/4, W/4)``. An end-to-end head (YOLO26) is exported with the branch it predicts with (``model.end2end``),
and the metadata says whether its detections are selected by top-k (no NMS) or by NMS. Everything :class:`~ovdet.model.runtime.OnnxDetector` needs to predict — class names, stride,
default size, preprocessing — is stored as JSON under the ``ovdet`` key of the model's ``metadata_props``.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from ..errors import VocabularyError
from ..fileio import atomic_write_bytes
from .postprocess import decode_boxes

if TYPE_CHECKING:
    from .detector import OVDetector

__all__ = ["ONNX_FORMAT_VERSION", "METADATA_KEY", "export_onnx"]

logger = logging.getLogger(__name__)

ONNX_FORMAT_VERSION = 1
METADATA_KEY = "ovdet"


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
    """The exported computation: the detector against its own (folded) vocabulary, then box decoding."""

    def __init__(self, model: OVDetector):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(images)
        decoded = (decode_boxes(out), out.class_logits.sigmoid())
        if out.mask_coefficients is not None:
            return (*decoded, out.mask_coefficients, out.protos)
        return decoded


def _fused_cpu_copy(model: OVDetector) -> OVDetector:
    """A float32 CPU copy of ``model``, fused; ``model`` itself is left exactly as it was."""
    import copy

    from .build import build_detector

    if model.is_fused:  # its BatchNorms are gone, so no state dict rebuilds it: copy the modules (minus the encoder)
        encoder, model.text_encoder = model.text_encoder, None
        try:
            twin = copy.deepcopy(model)
        finally:
            model.text_encoder = encoder
        return twin.float().cpu()
    twin = build_detector(model.config)  # no text encoder: the vocabulary is all the graph needs
    twin.load_state_dict({k: v.float().cpu() for k, v in model.state_dict().items()})
    twin.set_vocabulary(model.vocabulary)
    twin.end2end = model.end2end
    pooling = getattr(twin.neck, "image_pooling", None)  # YOLO-World v1
    if pooling is not None:
        pooling.im_pools = nn.ModuleList(_AdaptiveMaxPool2d(pooling.k) for _ in pooling.im_pools)
    return twin.fuse()


def export_onnx(
    model: OVDetector, path: str | os.PathLike, *, imgsz: int | tuple[int, int] | None = None, opset: int = 17
) -> Path:
    """Write ``model`` with its current vocabulary to an ONNX file (see the module docstring for its contract).

    A fused float32 CPU copy of the model is exported (:meth:`OVDetector.fuse`); the model itself is not changed.
    ``imgsz`` is the size of the tracing input and the default inference size recorded in the file.

    Raises:
        VocabularyError: no vocabulary is set.
    """
    import onnx

    if not model.names:
        raise VocabularyError("set the vocabulary before exporting: model.set_classes([...]).export('onnx', path)")
    size = model.inference_size(imgsz)
    fused = _fused_cpu_copy(model)
    graph = _DecodedOutputs(fused).eval()
    example = torch.zeros(1, 3, *size)
    outputs, axes = ["boxes", "scores"], {"boxes": {0: "batch", 1: "anchors"}, "scores": {0: "batch", 2: "anchors"}}
    masks = model.config.head.masks
    if masks:
        outputs += ["mask_coefficients", "protos"]
        axes.update(mask_coefficients={0: "batch", 2: "anchors"}, protos={0: "batch", 2: "proto_height", 3: "proto_width"})
    tmp = Path(path).with_name(f".{Path(path).name}.export.tmp")
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about Python-side shape arithmetic
            torch.onnx.export(
                graph, (example,), str(tmp), dynamo=False, opset_version=opset,
                input_names=["images"], output_names=outputs,
                dynamic_axes={"images": {0: "batch", 2: "height", 3: "width"}, **axes},
            )  # fmt: skip
        proto = onnx.load(str(tmp))
    finally:
        tmp.unlink(missing_ok=True)
    info = {
        "format_version": ONNX_FORMAT_VERSION,
        "names": model.names,
        "stride": model.stride,
        "imgsz": list(size),
        "architecture": model.config.name,
        "text_encoder": model.text_encoder.spec if model.text_encoder is not None else None,
        "preprocess": {"letterbox": "ultralytics", "pad_value": 114, "input": "RGB / 255"},
        "outputs": {"boxes": "(B, A, 4) xyxy input pixels", "scores": "(B, K, A) probabilities",
                    **({"mask_coefficients": "(B, M, A)", "protos": "(B, M, H/4, W/4)"} if masks else {})},
        "end2end": model.end2end,
        "masks": masks,
    }  # fmt: skip
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(info)
    atomic_write_bytes(path, proto.SerializeToString())
    logger.info("exported %s (%d classes) to %s", model.config.name, len(model.names), path)
    return Path(path)
