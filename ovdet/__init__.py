"""ovdet: open-vocabulary object detection. Free-text classes, YOLO speed, CLIP text embeddings.

>>> import ovdet
>>> model = ovdet.load()  # the bundled default model
>>> results = model.set_classes(["red circle", "purple star"]).predict("image.jpg")
"""

__version__ = "0.1.0"

from .api import build, from_ultralytics, list_models, list_weights, load, load_onnx
from .errors import (
    CheckpointError,
    ConfigError,
    DatasetError,
    DisplayError,
    FusedModelError,
    OVDetError,
    PickleRefusedError,
    SourceError,
    UnknownModelError,
    VocabularyError,
    WeightsUnavailableError,
)
from .model import ModelConfig, OVDetector
from .model.runtime import OnnxDetector
from .masks import Masks
from .results import Result
from .text import TextEncoder

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
