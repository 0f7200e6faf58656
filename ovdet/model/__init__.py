"""The detector: configs, modules, pre/post-processing and serialization. Imports nothing above ``text``."""

from .build import build_detector
from .config import ModelConfig, list_configs, load_config
from .detector import OVDetector
from .head import HeadOutput
from .serialization import load_detector, save_detector

__all__ = [
    "HeadOutput",
    "ModelConfig",
    "OVDetector",
    "build_detector",
    "list_configs",
    "load_config",
    "load_detector",
    "save_detector",
]
