"""``OnnxTextEncoder``: prompts → L2-normalised CLIP embeddings with ONNX Runtime, a torch-free tokenizer and the cache.

It reads what ``ovdet.export_text_encoder(spec, path)`` writes: ``path`` (the text tower as ONNX, token ids
``(N, L)`` int64 → embeddings ``(N, D)`` float32, L2-normalised) and ``NAME.tokenizer.json`` beside it. Prompts are
looked up first in the same on-disk embedding cache, under the same encoder key, as the PyTorch ``TextEncoder``, so a
prompt encoded by either is reused by both; misses are tokenized, sorted by length, and run in batches cut after their
longest end-of-text token, exactly as the PyTorch encoder trims them.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CheckpointError, VocabularyError
from ..text.cache import DEFAULT_CACHE, EmbeddingCache
from .session import open_session, tokenizer_path
from .tokenizer import ClipTokenizer

__all__ = ["OnnxTextEncoder", "file_sha256"]

_USE_DEFAULT = object()


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


class OnnxTextEncoder:
    """A CLIP text tower exported to ONNX, with its tokenizer and the embedding cache.

    Args:
        path: The text encoder ``.onnx`` written by ``ovdet.export_text_encoder``.
        threads: ONNX Runtime intra-op threads (``None``: all cores).
        providers: ONNX Runtime execution providers (default CPU).
        cache: The embedding cache (default: the user cache shared with the PyTorch encoder); ``None`` disables it.
        batch_size: Prompts per run.

    Attributes:
        key: The encoder identity the cache is keyed by (the PyTorch ``TextEncoder.key`` it was exported from).
        spec: The text-encoder spec it was exported from.
        dim: Embedding dimension D.

    Raises:
        CheckpointError: not an ovdet text-encoder export, or a missing or mismatched tokenizer file.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        threads: int | None = None,
        providers: Sequence[str] | None = None,
        cache: Any = _USE_DEFAULT,
        batch_size: int = 256,
    ):
        self.session, self.info = open_session(path, kind="text_encoder", threads=threads, providers=providers)
        self.path = Path(path)
        self.key: str = self.info["key"]
        self.spec: str = self.info["spec"]
        self.dim = int(self.info["dim"])
        self.pool: str = self.info.get("pool", "argmax")
        settings = dict(self.info["tokenizer"])
        settings.pop("file", None)
        vocab_file = tokenizer_path(self.path)
        if not vocab_file.is_file():
            raise CheckpointError(f"{self.path} needs its tokenizer {vocab_file} beside it (export_text_encoder writes "
                                  "both; copy them together)")  # fmt: skip
        if settings.pop("sha256", None) not in (None, file_sha256(vocab_file)):
            raise CheckpointError(f"{vocab_file} is not the tokenizer {self.path} was exported with; export again")
        self.tokenizer = ClipTokenizer(vocab_file, **settings)
        self.cache: EmbeddingCache | None = DEFAULT_CACHE if cache is _USE_DEFAULT else cache
        self.batch_size = batch_size

    def __repr__(self) -> str:
        return f"OnnxTextEncoder({str(self.path)!r}, key={self.key!r}, dim={self.dim})"

    def encode(self, texts: Sequence[str], *, device: Any = None) -> np.ndarray:
        """Embed ``texts``: ``(N, D)`` float32, L2-normalised, row i for ``texts[i]`` (as ``TextEncoder.encode``).

        ``device`` is accepted for the PyTorch encoder's signature and ignored (the session's providers decide).

        Raises:
            VocabularyError: ``texts`` is not a sequence of non-empty strings.
        """
        if isinstance(texts, str) or not all(isinstance(t, str) and t.strip() for t in texts):
            raise VocabularyError("texts must be a list of non-empty strings")
        unique = list(dict.fromkeys(texts))
        found = self.cache.get(self.key, unique) if self.cache is not None else {}
        missing = [t for t in unique if t not in found]
        if missing:
            computed = self._encode_uncached(missing)
            if self.cache is not None:
                self.cache.put(self.key, missing, computed)
            found.update(zip(missing, computed))
        if not texts:
            return np.empty((0, self.dim), np.float32)
        return np.stack([found[t] for t in texts]).astype(np.float32, copy=False)

    def _encode_uncached(self, texts: list[str]) -> np.ndarray:
        tokens = self.tokenizer(texts)  # (N, context)
        if self.pool == "argmax":  # CLIP: end-of-text has the largest id
            eot = tokens.argmax(-1)
        else:
            eot = (tokens == self.tokenizer.eot_token_id).argmax(-1)
        lengths = eot + 1
        order = np.argsort(lengths, kind="stable")  # similar lengths share a batch, so little is padded
        out = np.empty((len(texts), self.dim), np.float32)
        for start in range(0, len(texts), self.batch_size):
            idx = order[start : start + self.batch_size]
            batch = np.ascontiguousarray(tokens[idx, : int(lengths[idx].max())])
            (out[idx],) = self.session.run(None, {"tokens": batch})
        return out
