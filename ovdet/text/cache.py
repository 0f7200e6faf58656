"""On-disk and in-memory cache of text embeddings, keyed by encoder identity and prompt text.

One safetensors file per encoder key holds an ``(N, D)`` float32 matrix; its metadata holds the N texts in row order.
Files live in the user cache directory (``$OVDET_CACHE``, else ``$XDG_CACHE_HOME/ovdet``, else ``~/.cache/ovdet``),
under ``text/``, never inside the package or a repository. Writes are atomic and merge with what is on disk, so two
processes filling the same cache lose nothing but may each recompute a prompt once.

Torch-free (numpy, ``safetensors.numpy``): the PyTorch ``TextEncoder`` and the ONNX Runtime ``OnnxTextEncoder`` read
and write the same files under the same encoder keys, so a prompt encoded by either is served to both.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..fileio import atomic_write_bytes

__all__ = ["EmbeddingCache", "default_cache_dir", "DEFAULT_CACHE"]

logger = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """The root of ovdet's caches: ``$OVDET_CACHE``, else ``$XDG_CACHE_HOME/ovdet``, else ``~/.cache/ovdet``."""
    if os.environ.get("OVDET_CACHE"):
        return Path(os.environ["OVDET_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "ovdet"


class _Table:
    """The embeddings of one encoder: texts → row of a single matrix."""

    __slots__ = ("index", "matrix")

    def __init__(self, texts: Sequence[str] = (), matrix: np.ndarray | None = None):
        self.index = {t: i for i, t in enumerate(texts)}
        self.matrix = matrix if matrix is not None else np.empty((0, 0), np.float32)


class EmbeddingCache:
    """Text embeddings remembered across calls and processes.

    Args:
        root: Cache root folder; embeddings go to ``root/text``. ``None`` means :func:`default_cache_dir` at the
            time of each call (so tests and users can redirect it with ``OVDET_CACHE``).
    """

    def __init__(self, root: str | os.PathLike | None = None):
        self._root = Path(root) if root is not None else None
        self._tables: dict[tuple[Path, str], _Table] = {}
        self._lock = threading.Lock()

    def __deepcopy__(self, memo: dict) -> EmbeddingCache:
        return self  # one cache per place on disk: a copied model (copy.deepcopy) shares it, lock and all

    def _file(self, encoder_key: str) -> Path:
        root = self._root if self._root is not None else default_cache_dir()
        digest = hashlib.sha256(encoder_key.encode("utf-8")).hexdigest()[:24]
        return root / "text" / f"{digest}.safetensors"

    def _read(self, path: Path, encoder_key: str) -> _Table:
        from safetensors import safe_open

        if not path.is_file():
            return _Table()
        try:
            with safe_open(str(path), framework="np") as f:
                meta = f.metadata() or {}
                if meta.get("encoder") != encoder_key:  # a digest collision, or a foreign file: ignore it
                    return _Table()
                matrix = f.get_tensor("embeddings")
                matrix.setflags(write=False)
                return _Table(json.loads(meta["texts"]), matrix)
        except Exception as e:  # a corrupt cache must never break prediction; it is rebuilt on the next write
            logger.warning("ignoring unreadable text-embedding cache %s (%s)", path, e)
            return _Table()

    def _table(self, encoder_key: str) -> tuple[Path, _Table]:
        path = self._file(encoder_key)
        key = (path, encoder_key)
        if key not in self._tables:
            self._tables[key] = self._read(path, encoder_key)
        return path, self._tables[key]

    def get(self, encoder_key: str, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """Return the cached ``(D,)`` float32 embeddings of those ``texts`` that are cached (read-only views)."""
        with self._lock:
            _, table = self._table(encoder_key)
            return {t: table.matrix[table.index[t]] for t in texts if t in table.index}

    def put(self, encoder_key: str, texts: Sequence[str], embeddings: np.ndarray) -> None:
        """Add ``embeddings`` (``(N, D)`` array or CPU tensor, row i for ``texts[i]``) and write the cache file
        atomically."""
        from safetensors.numpy import save

        embeddings = np.asarray(embeddings, dtype=np.float32)
        if len(texts) != len(embeddings):
            raise ValueError(f"{len(texts)} texts but {len(embeddings)} embeddings")
        with self._lock:
            path, table = self._table(encoder_key)
            on_disk = self._read(path, encoder_key)  # another process may have added texts since we read it
            merged_texts = list(on_disk.index)
            seen = set(merged_texts)
            rows = [on_disk.matrix] if merged_texts else []
            for source in (table, _Table(texts, embeddings)):
                new = [t for t in source.index if t not in seen]
                if new:
                    rows.append(source.matrix[[source.index[t] for t in new]])
                    merged_texts.extend(new)
                    seen.update(new)
            dim = embeddings.shape[-1]
            matrix = np.ascontiguousarray(np.concatenate(rows)) if rows else np.empty((0, dim), np.float32)
            matrix.setflags(write=False)  # rows are handed out as views: nobody may edit the cache through them
            meta = {"encoder": encoder_key, "texts": json.dumps(merged_texts, ensure_ascii=False)}
            try:
                atomic_write_bytes(path, save({"embeddings": matrix}, metadata=meta))
            except OSError as e:  # a read-only cache dir costs speed, not correctness
                logger.warning("could not write text-embedding cache %s (%s); set OVDET_CACHE to a writable folder", path, e)
            self._tables[(path, encoder_key)] = _Table(merged_texts, matrix)

    def clear_memory(self) -> None:
        """Forget what was read into memory (the files stay); the next call reads from disk again."""
        with self._lock:
            self._tables.clear()


DEFAULT_CACHE = EmbeddingCache()  # shared by every encoder in the process, PyTorch and ONNX alike
