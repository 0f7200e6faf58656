"""A vocabulary: class names, the prompts that describe each class, and one embedding per class.

Torch-free (numpy), so the PyTorch detector and the ONNX Runtime one build and ensemble vocabularies the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ..classes import ClassSpec, normalize_classes
from ..errors import VocabularyError

__all__ = ["Vocabulary", "ClassSpec", "normalize_classes", "l2_normalize", "UNIT_TOL"]


class _Encoder(Protocol):
    dim: int

    def encode(self, texts: Sequence[str], *, device: Any = None) -> Any: ...  # (N, D) array or CPU tensor


def _as_float_array(embeddings: Any) -> np.ndarray:
    if hasattr(embeddings, "detach"):  # a torch tensor, possibly on a GPU (torch itself is never imported here)
        embeddings = embeddings.detach().float().cpu().numpy()
    return np.asarray(embeddings)


# A float32 row normalised by torch or numpy is unit length to within ~2e-7 (measured for D = 64 to 1024); five times
# that bound tells a row already normalised from one that is not. Such a row changes the cosine by at most 1e-6.
UNIT_TOL = 1e-6


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows divided by their L2 norm (at least 1e-12; the division in float64, then rounded to float32), as
    ``torch.nn.functional.normalize`` does up to the last bit.

    Rows already unit length (``|‖x‖ − 1| <= UNIT_TOL``, norm taken in float64) are returned bit for bit: normalising
    a unit vector again can move its last bit, differently on different CPUs (the rounding of the norm depends on the
    vector width), so a vector saved, loaded or passed around must not be normalised twice.
    """
    x = np.asarray(x, np.float32)
    norms = np.linalg.norm(x.astype(np.float64), axis=-1, keepdims=True)
    unit = np.abs(norms - 1.0) <= UNIT_TOL
    return np.where(unit, x, x / np.maximum(norms, 1e-12)).astype(np.float32)


@dataclass(frozen=True, eq=False)
class Vocabulary:
    """Class names with their prompts and embeddings.

    Attributes:
        names: One name per class.
        prompts: The texts encoded for each class (``(name,)`` unless synonyms or templates were given).
        embeddings: ``(K, D)`` float32 numpy array, L2-normalised; a class with several prompts gets their
            re-normalised mean, as in open_clip's ``zero_shot_classifier``.
        projected: ``(K,)`` bool: rows already in a YOLOE model's projected text space (visual prompts: its scorer's
            space, see :mod:`ovdet.model.visual`), which its head must not project again. All ``False`` (raw
            text-encoder outputs) unless given.

    Prompts are texts or, for classes given by example, :class:`~ovdet.prompts.VisualPrompt` records.
    """

    names: tuple[str, ...]
    prompts: tuple[tuple[Any, ...], ...]
    embeddings: np.ndarray
    projected: Any = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "embeddings", np.array(_as_float_array(self.embeddings), dtype=np.float32))
        flags = np.zeros(len(self.names), bool) if self.projected is None else np.array(self.projected, dtype=bool)
        if flags.shape != (len(self.names),):
            raise VocabularyError(f"projected must hold one flag per class ({len(self.names)}), got shape {flags.shape}")
        object.__setattr__(self, "projected", flags)

    def __len__(self) -> int:
        return len(self.names)

    @classmethod
    def from_classes(cls, classes: ClassSpec, encoder: _Encoder, *, device: Any = None) -> Vocabulary:
        """Encode every prompt of every class (through the encoder's cache) and ensemble per class."""
        names, prompts = normalize_classes(classes)
        flat = [t for texts in prompts for t in texts]
        emb = _as_float_array(encoder.encode(flat, device=device)).astype(np.float32)  # (sum of prompts, D)
        owner = np.repeat(np.arange(len(names)), [len(texts) for texts in prompts])
        sums = np.zeros((len(names), emb.shape[1]), np.float32)
        np.add.at(sums, owner, emb)
        means = sums / np.array([len(texts) for texts in prompts], np.float32)[:, None]
        return cls(names, prompts, l2_normalize(means))

    @classmethod
    def from_embeddings(cls, classes: ClassSpec, embeddings: Any, dim: int) -> Vocabulary:
        """Use ready embeddings, one row per class, bypassing the text encoder. Rows are L2-normalised.

        Raises:
            VocabularyError: (a ``ValueError``) the array is not ``(len(classes), dim)`` or not finite.
        """
        names, prompts = normalize_classes(classes)
        try:
            emb = _as_float_array(embeddings).astype(np.float32)
        except (TypeError, ValueError) as e:
            raise VocabularyError(f"embeddings must be an array or tensor of shape ({len(names)}, {dim}): {e}") from e
        if emb.ndim != 2 or tuple(emb.shape) != (len(names), dim):
            raise VocabularyError(
                f"embeddings have shape {tuple(emb.shape)}, expected ({len(names)}, {dim}): "
                f"one row per class ({len(names)} classes) of the model's text dimension ({dim})"
            )
        if not np.isfinite(emb).all() or (np.linalg.norm(emb, axis=-1) == 0).any():
            raise VocabularyError("embeddings contain NaN, infinite or all-zero rows")
        return cls(names, prompts, l2_normalize(emb))
