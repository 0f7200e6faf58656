"""Text side of ovdet: CLIP text encoders, vocabularies and the embedding cache."""

from .cache import EmbeddingCache, default_cache_dir
from .encoder import DEFAULT_CACHE, TextEncoder
from .spec import DEFAULT_TEXT_ENCODER, TextEncoderSpec, parse_text_encoder_spec
from .vocabulary import Vocabulary

__all__ = [
    "DEFAULT_CACHE",
    "DEFAULT_TEXT_ENCODER",
    "EmbeddingCache",
    "TextEncoder",
    "TextEncoderSpec",
    "Vocabulary",
    "default_cache_dir",
    "parse_text_encoder_spec",
]
