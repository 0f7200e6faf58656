"""``OnnxDetector``: prediction from an exported ONNX file with ONNX Runtime, ovdet's pre- and postprocessing.

Its ``predict``/``predict_iter``/``detect`` take the same arguments and return the same :class:`~ovdet.Result` as
:class:`~ovdet.OVDetector`'s. The vocabulary is the one folded in at export; to change it, export again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CheckpointError
from ..results import Result
from .export import METADATA_KEY, ONNX_FORMAT_VERSION
from .postprocess import results_from_outputs
from .predictor import Predictor
from .preprocess import preprocess

__all__ = ["OnnxDetector"]


class OnnxDetector(Predictor):
    """A detector exported with ``model.export("onnx", path)``, run by ONNX Runtime on the CPU (or ``providers``).

    Args:
        path: The ``.onnx`` file.
        threads: ONNX Runtime intra-op threads (``None``: its default, all cores).
        providers: ONNX Runtime execution providers (default ``["CPUExecutionProvider"]``).

    Raises:
        CheckpointError: not a readable ONNX file, or one not exported by ovdet.
    """

    def __init__(self, path: str | os.PathLike, *, threads: int | None = None, providers: Sequence[str] | None = None):
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"ONNX file {path} does not exist")
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        try:
            providers = list(providers or ["CPUExecutionProvider"])
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as e:  # onnxruntime raises its own unrelated exception types for unreadable files
            raise CheckpointError(f"cannot load {path} with ONNX Runtime: {str(e).splitlines()[0][:300]}") from e
        meta = self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        if meta is None:
            raise CheckpointError(
                f"{path} was not exported by ovdet (model.export('onnx', path)): no '{METADATA_KEY}' metadata"
            )
        info = json.loads(meta)
        if info.get("format_version", 0) > ONNX_FORMAT_VERSION:
            raise CheckpointError(f"{path} has ovdet ONNX format {info['format_version']}, newer than this ovdet reads")
        self.path = path
        self.info = info
        self._names = tuple(info["names"])
        self.stride = int(info["stride"])
        self.default_imgsz = tuple(info["imgsz"])

    def __repr__(self) -> str:
        return f"OnnxDetector({str(self.path)!r}, {len(self._names)} classes)"

    @property
    def names(self) -> list[str]:
        """The class names folded into the graph."""
        return list(self._names)

    def _detect_batch(self, images: list[np.ndarray], size: tuple[int, int], **select: Any) -> list[Result]:
        """One ONNX Runtime run over images that letterbox to the same input shape (see :meth:`Predictor.detect`)."""
        batch, letterboxes = preprocess(images, size, stride=self.stride)
        outputs = self.session.run(None, {"images": batch.numpy()})
        boxes, scores, *masks = (torch.from_numpy(o) for o in outputs)  # masks: coefficients and prototypes
        with torch.inference_mode():
            return results_from_outputs(
                boxes, scores, letterboxes, self._names, end2end=bool(self.info.get("end2end", False)),
                mask_coefficients=masks[0] if masks else None, protos=masks[1] if masks else None, **select,
            )  # fmt: skip
