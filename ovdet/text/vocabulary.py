"""A vocabulary: class names, the prompts that describe each class, and one embedding per class."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from ..classes import ClassSpec, normalize_classes
from ..errors import VocabularyError

__all__ = ["Vocabulary", "ClassSpec", "normalize_classes"]


class _Encoder(Protocol):
    dim: int

    def encode(self, texts: Sequence[str], *, device: Any = None) -> torch.Tensor: ...


@dataclass(frozen=True, eq=False)
class Vocabulary:
    """Class names with their prompts and embeddings.

    Attributes:
        names: One name per class.
        prompts: The texts encoded for each class (``(name,)`` unless synonyms or templates were given).
        embeddings: ``(K, D)`` float32, L2-normalised; a class with several prompts gets their re-normalised mean,
            as in open_clip's ``zero_shot_classifier``.
    """

    names: tuple[str, ...]
    prompts: tuple[tuple[str, ...], ...]
    embeddings: torch.Tensor

    def __len__(self) -> int:
        return len(self.names)

    @classmethod
    def from_classes(cls, classes: ClassSpec, encoder: _Encoder, *, device: Any = None) -> Vocabulary:
        """Encode every prompt of every class (through the encoder's cache) and ensemble per class."""
        names, prompts = normalize_classes(classes)
        flat = [t for texts in prompts for t in texts]
        emb = encoder.encode(flat, device=device)  # (sum of prompts, D)
        counts = torch.tensor([len(texts) for texts in prompts])
        owner = torch.repeat_interleave(torch.arange(len(names)), counts)
        means = torch.zeros(len(names), emb.shape[1]).index_add_(0, owner, emb) / counts[:, None]
        return cls(names, prompts, torch.nn.functional.normalize(means, dim=-1))

    @classmethod
    def from_embeddings(cls, classes: ClassSpec, embeddings: Any, dim: int) -> Vocabulary:
        """Use ready embeddings, one row per class, bypassing the text encoder. Rows are L2-normalised.

        Raises:
            VocabularyError: (a ``ValueError``) the array is not ``(len(classes), dim)`` or not finite.
        """
        names, prompts = normalize_classes(classes)
        try:
            emb = torch.as_tensor(np.asarray(embeddings) if not isinstance(embeddings, torch.Tensor) else embeddings)
        except (TypeError, ValueError) as e:
            raise VocabularyError(f"embeddings must be an array or tensor of shape ({len(names)}, {dim}): {e}") from e
        if emb.ndim != 2 or tuple(emb.shape) != (len(names), dim):
            raise VocabularyError(
                f"embeddings have shape {tuple(emb.shape)}, expected ({len(names)}, {dim}): "
                f"one row per class ({len(names)} classes) of the model's text dimension ({dim})"
            )
        emb = emb.detach().float().cpu()
        if not torch.isfinite(emb).all() or (emb.norm(dim=-1) == 0).any():
            raise VocabularyError("embeddings contain NaN, infinite or all-zero rows")
        return cls(names, prompts, torch.nn.functional.normalize(emb, dim=-1))
