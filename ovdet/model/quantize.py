"""INT8 static quantisation of an exported detector with ONNX Runtime (QDQ format), calibrated on the user's images.

The recipe is ONNX Runtime's for CNNs on CPUs (``onnxruntime.quantization``): ``quant_pre_process`` (shape inference
and graph optimisation: BatchNorm folds, constant folding), then ``quantize_static`` in QDQ format with MinMax
calibration, activations asymmetric ``uint8`` and weights symmetric ``int8`` per output channel (the U8S8 pair that
ONNX Runtime's x86 kernels, VNNI included, run fastest). Only convolutions are quantised: they hold nearly all the
arithmetic, while the text path (the runtime vocabulary's matmuls against the class embeddings, which change per
call) and the box decoding stay float32. Inputs and outputs stay float32, so the file is used exactly like an fp32
export.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import SourceError
from ..images import read_image, resolve_images
from ..runtime.letterbox import letterbox_batch

if TYPE_CHECKING:
    from .detector import OVDetector

__all__ = ["quantize_int8"]

logger = logging.getLogger(__name__)


class _Calibration:
    """``onnxruntime.quantization.CalibrationDataReader``: one letterboxed image per run, as ``predict`` feeds them."""

    def __init__(
        self, items: list, size: tuple[int, int], stride: int, embeddings: np.ndarray | None,
        projected: np.ndarray | None = None,
    ):
        self._items = iter(items)
        self.size, self.stride, self.embeddings, self.projected = size, stride, embeddings, projected
        self.count = 0
        self.skipped: list[str] = []
        self._back: dict[str, np.ndarray] | None = None

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._back is not None:
            feeds, self._back = self._back, None
            return feeds
        for item in self._items:
            try:
                image, _ = read_image(item)
            except SourceError as e:  # one unreadable image among many is skipped and reported, not fatal
                logger.warning("calibration: skipped %s", e)
                self.skipped.append(str(item))
                continue
            batch, _ = letterbox_batch([image], self.size, stride=self.stride)
            self.count += 1
            feeds = {"images": batch}
            if self.embeddings is not None:
                feeds["class_embeddings"] = self.embeddings
            if self.projected is not None:  # a YOLOE runtime graph: which rows skip the text projection
                feeds["class_projected"] = self.projected
            return feeds
        return None

    def push_back(self, feeds: dict[str, np.ndarray]) -> None:
        """Return ``feeds`` (already read) to the front, so ONNX Runtime still calibrates on it."""
        self._back = feeds

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:  # pragma: no cover (ONNX Runtime calls get_next)
        while (feeds := self.get_next()) is not None:
            yield feeds


def quantize_int8(
    proto: Any, model: OVDetector, calibration: Any, *, size: tuple[int, int], runtime: bool
) -> tuple[Any, dict[str, Any]]:
    """Quantise an exported float32 graph (an ``onnx.ModelProto``); returns the quantised proto and a description
    for the file's metadata.

    Args:
        proto: The float32 export.
        model: The detector it was exported from (its stride and current class embeddings feed calibration).
        calibration: Images as ``predict`` takes them (folder, glob, list of files or arrays); 100-500 images like
            those the model will see are typical.
        size: Inference size the images are letterboxed to.
        runtime: Whether the graph takes ``class_embeddings``.

    Raises:
        SourceError: no readable calibration image (unreadable ones among readable ones are skipped with a warning).
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quant_pre_process, quantize_static

    items = resolve_images(calibration)
    vocab = model.vocabulary
    embeddings = vocab.embeddings if runtime else None
    projected = vocab.projected if "class_projected" in {i.name for i in proto.graph.input} else None
    reader = _Calibration(items, size, model.stride, embeddings, projected)
    with tempfile.TemporaryDirectory(prefix="ovdet-int8-") as tmp:  # removed whatever happens
        fp32, prepared, int8 = (Path(tmp) / name for name in ("fp32.onnx", "prepared.onnx", "int8.onnx"))
        onnx.save(proto, str(fp32))
        # symbolic shape inference gives up on the dynamic class and size axes; ONNX's own inference suffices here
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        first = reader.get_next()  # read up to the first decodable image now: none at all is the user's error
        if first is None:
            raise SourceError(f"no calibration image could be read ({len(reader.skipped)} skipped: "
                              f"{', '.join(reader.skipped[:3])}); pass images like those you will predict on")  # fmt: skip
        reader.push_back(first)
        quantize_static(
            str(prepared), str(int8), reader, quant_format=QuantFormat.QDQ, op_types_to_quantize=["Conv"],
            per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax, extra_options={"WeightSymmetric": True},
        )  # fmt: skip
        quantized = onnx.load(str(int8))
    info = {
        "format": "QDQ", "activations": "uint8, per tensor, asymmetric", "weights": "int8, per channel, symmetric",
        "quantized_ops": ["Conv"], "calibration": "MinMax", "calibration_images": reader.count,
        "calibration_skipped": len(reader.skipped),
    }  # fmt: skip
    logger.info("quantised to INT8 with %d calibration images (%d unreadable, skipped)", reader.count,
                len(reader.skipped))
    return quantized, info
