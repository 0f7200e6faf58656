"""ovdet: open-vocabulary object detection. Free-text classes, YOLO speed, CLIP text embeddings.

>>> import ovdet
>>> model = ovdet.load()  # the bundled default model
>>> results = model.set_classes(["red circle", "purple star"]).predict("image.jpg")

Names resolve on first use (PEP 562): ``import ovdet`` imports no torch, so ``ovdet.load_onnx`` (ONNX Runtime) runs on
a machine without PyTorch; ``ovdet.load``, ``ovdet.build`` and friends import it when first touched.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    # torch-free: errors, results, the ONNX Runtime detector
    **dict.fromkeys(
        [
            "CheckpointError", "ConfigError", "DatasetError", "DisplayError", "FusedModelError", "OVDetError",
            "PickleRefusedError", "SourceError", "UnknownModelError", "VocabularyError", "WeightsUnavailableError",
        ],
        ".errors",
    ),  # fmt: skip
    "Result": ".results",
    "OnnxDetector": ".runtime",
    "OnnxTextEncoder": ".runtime",
    "load_onnx": ".runtime",
    # PyTorch
    "build": ".api",
    "from_ultralytics": ".api",
    "list_models": ".api",
    "list_weights": ".api",
    "load": ".api",
    "export_text_encoder": ".text.export",
    "ModelConfig": ".model",
    "OVDetector": ".model",
    "TextEncoder": ".text",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    globals()[name] = value  # resolved once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
