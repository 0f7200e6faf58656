"""ovdet: open-vocabulary object detection. Free-text classes, YOLO speed, CLIP text embeddings.

>>> import ovdet
>>> model = ovdet.load()  # the bundled default model
>>> results = model.set_classes(["red circle", "purple star"]).predict("image.jpg")

Importing ``ovdet`` loads no torch: the names below that need it (``build``, ``load``, ``OVDetector``, ...) import
their modules on first use (PEP 562). So ``ovdet.load_onnx`` (ONNX Runtime) runs on a machine without PyTorch, and
the command line can configure threading before torch starts.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

from .errors import (  # noqa: E402 (after __version__, which modules below read)
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
from .masks import Masks  # noqa: E402
from .results import Result  # noqa: E402

# name -> module that defines it, imported on first access
_LAZY = {
    "OnnxDetector": ".runtime",
    "OnnxTextEncoder": ".runtime",
    "load_onnx": ".runtime",
    "VisualPrompt": ".prompts",
    # PyTorch
    "build": ".api",
    "from_ultralytics": ".api",
    "list_models": ".api",
    "list_weights": ".api",
    "load": ".api",
    "export_text_encoder": ".text.export",
    "label": ".engine.label",
    "ModelConfig": ".model",
    "OVDetector": ".model",
    "TextEncoder": ".text",
}
_EAGER = [
    "CheckpointError", "ConfigError", "DatasetError", "DisplayError", "FusedModelError", "Masks", "OVDetError",
    "OutputError", "PickleRefusedError", "Result", "SourceError", "UnknownModelError", "VocabularyError",
    "WeightsUnavailableError",
]  # fmt: skip
__all__ = sorted([*_EAGER, *_LAZY, "__version__"])


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        module = importlib.import_module(_LAZY[name], __name__)
    except ModuleNotFoundError as e:
        if e.name not in ("torch", "torchvision", "open_clip"):
            raise
        # a deployment install (onnxruntime only, README "Deployment without PyTorch") asked for a PyTorch entry point
        raise ImportError(f"ovdet.{name} needs PyTorch ({e.name} is not installed): pip install ovdet, or on a "
                          "deployment machine use ovdet.load_onnx('model.onnx') with an exported model") from e
    value = getattr(module, name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
