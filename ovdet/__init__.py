"""ovdet: open-vocabulary object detection. Free-text classes, YOLO speed, CLIP text embeddings.

>>> import ovdet
>>> model = ovdet.load()  # the bundled default model
>>> results = model.set_classes(["red circle", "purple star"]).predict("image.jpg")

Importing ``ovdet`` loads no torch: the names below that need it (``build``, ``load``, ``OVDetector``, ...) import
their modules on first use (PEP 562), so the command line can configure threading before torch starts, and code
that only runs an exported model never pays for torch.
"""

__version__ = "0.1.0"

import importlib
from typing import Any

from .errors import (
    CheckpointError,
    ConfigError,
    DatasetError,
    DisplayError,
    FusedModelError,
    OutputError,
    OVDetError,
    PickleRefusedError,
    SourceError,
    UnknownModelError,
    VocabularyError,
    WeightsUnavailableError,
)
from .masks import Masks
from .results import Result

# name -> module that defines it, imported on first access
_LAZY = {
    "build": ".api",
    "from_ultralytics": ".api",
    "list_models": ".api",
    "list_weights": ".api",
    "load": ".api",
    "load_onnx": ".api",
    "ModelConfig": ".model",
    "OVDetector": ".model",
    "OnnxDetector": ".model.runtime",
    "TextEncoder": ".text",
}

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DatasetError",
    "DisplayError",
    "FusedModelError",
    "Masks",
    "ModelConfig",
    "OVDetError",
    "OVDetector",
    "OnnxDetector",
    "OutputError",
    "PickleRefusedError",
    "Result",
    "SourceError",
    "TextEncoder",
    "UnknownModelError",
    "VocabularyError",
    "WeightsUnavailableError",
    "__version__",
    "build",
    "from_ultralytics",
    "list_models",
    "list_weights",
    "load",
    "load_onnx",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'ovdet' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
