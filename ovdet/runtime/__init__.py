"""Running detectors without PyTorch: letterboxing, selection and NMS, the predict/stream mixin, ONNX Runtime sessions
for exported detectors and text encoders, the CLIP tokenizer. Imports only numpy, OpenCV, onnxruntime, tokenizers,
ftfy and safetensors (the last three when first needed).

The PyTorch detector (``ovdet.model``) builds on the same letterboxing, selection and predictor code, so both give the
same :class:`~ovdet.Result` for the same network outputs.
"""

from .detector import OnnxDetector, load_onnx
from .text import OnnxTextEncoder
from .tokenizer import ClipTokenizer

__all__ = ["ClipTokenizer", "OnnxDetector", "OnnxTextEncoder", "load_onnx"]
