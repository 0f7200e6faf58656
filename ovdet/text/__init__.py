"""Text side of ovdet: CLIP text encoders, vocabularies and the embedding cache.

Names resolve on first use (PEP 562), so the torch-free parts (``cache``, ``vocabulary``) import without torch, as the
ONNX Runtime path needs; ``TextEncoder`` brings torch and open_clip along when it is first touched.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DEFAULT_CACHE": ".cache",
    "EmbeddingCache": ".cache",
    "default_cache_dir": ".cache",
    "TextEncoder": ".encoder",
    "DEFAULT_TEXT_ENCODER": ".spec",
    "TextEncoderSpec": ".spec",
    "parse_text_encoder_spec": ".spec",
    "Vocabulary": ".vocabulary",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    globals()[name] = value  # resolved once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
