"""Tuned class embeddings: vectors learnt for some class names (prompt tuning) that replace their text embeddings.

After ``ovdet train --tune prompts`` a model carries one learnt embedding per dataset class. ``set_classes`` then
takes any names, in any order: a name of the table (matched as class names always are, by
:func:`ovdet.classes.class_key`: case, spacing and Unicode width do not matter) gets its tuned vector, every other
name goes through the text encoder as before. Torch-free (numpy), so the ONNX Runtime detector applies the same
table to a runtime-vocabulary export.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..classes import ClassSpec, class_key, normalize_classes
from ..errors import VocabularyError
from .vocabulary import Vocabulary, _as_float_array, l2_normalize

__all__ = ["TunedEmbeddings", "vocabulary_with_tuned"]


@dataclass(frozen=True, eq=False)
class TunedEmbeddings:
    """Class names with a tuned embedding each.

    Attributes:
        names: One name per tuned class, as the dataset named it.
        embeddings: ``(T, D)`` float32, L2-normalised rows: raw text-encoder space, as a vocabulary holds them.

    Raises:
        VocabularyError: names that are not one per row, duplicate names (see :mod:`ovdet.classes`), or rows that
            are not finite and non-zero.
    """

    names: tuple[str, ...]
    embeddings: np.ndarray

    def __post_init__(self) -> None:
        names, _ = normalize_classes(list(self.names))  # one rule for names everywhere; duplicates refused
        emb = _as_float_array(self.embeddings).astype(np.float32)
        if emb.ndim != 2 or len(emb) != len(names):
            raise VocabularyError(f"tuned embeddings have shape {tuple(emb.shape)}, expected ({len(names)}, D)")
        if not np.isfinite(emb).all() or (np.linalg.norm(emb, axis=-1) == 0).any():
            raise VocabularyError("tuned embeddings contain NaN, infinite or all-zero rows")
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "embeddings", l2_normalize(emb))
        object.__setattr__(self, "_rows", {class_key(n): i for i, n in enumerate(names)})

    def __len__(self) -> int:
        return len(self.names)

    @property
    def dim(self) -> int:
        """``D``, the text-embedding dimension of the rows."""
        return int(self.embeddings.shape[1])

    def get(self, name: str) -> np.ndarray | None:
        """The tuned ``(D,)`` vector of ``name`` (any case or spacing), or ``None`` if it was not tuned."""
        row = self._rows.get(class_key(name))  # type: ignore[attr-defined]
        return None if row is None else self.embeddings[row]

    def merged(self, other: TunedEmbeddings | None) -> TunedEmbeddings:
        """This table with ``other``'s entries on top (a name in both takes ``other``'s vector)."""
        if other is None or not len(other):
            return self
        keep = [i for i, n in enumerate(self.names) if other.get(n) is None]
        return TunedEmbeddings(
            tuple(self.names[i] for i in keep) + other.names,
            np.concatenate([self.embeddings[keep], other.embeddings]),
        )

    def without(self, names: Sequence[str]) -> TunedEmbeddings | None:
        """This table less ``names`` (matched by class key); ``None`` when nothing is left."""
        drop = {class_key(n) for n in names}
        keep = [i for i, n in enumerate(self.names) if class_key(n) not in drop]
        return TunedEmbeddings(tuple(self.names[i] for i in keep), self.embeddings[keep]) if keep else None


def vocabulary_with_tuned(
    classes: ClassSpec, encoder: Any, tuned: TunedEmbeddings | None, *, device: Any = None
) -> Vocabulary:
    """A vocabulary for ``classes``: tuned names take their tuned vectors, the others are encoded by ``encoder``
    (through its cache), exactly as :meth:`Vocabulary.from_classes` would.

    A tuned class keeps the prompts it was given (they are recorded), but its embedding is the tuned vector whatever
    they are: the vector was learnt for that class.

    Raises:
        VocabularyError: a bad class list (see :func:`ovdet.classes.normalize_classes`), or a table of another width.
    """
    if tuned is None or not len(tuned):
        return Vocabulary.from_classes(classes, encoder, device=device)
    names, prompts = normalize_classes(classes)
    rows = [tuned.get(n) for n in names]
    if tuned.dim != encoder.dim:
        raise VocabularyError(f"tuned embeddings are {tuned.dim}-d but the text encoder gives {encoder.dim}-d")
    embeddings = np.zeros((len(names), tuned.dim), np.float32)
    plain = [i for i, row in enumerate(rows) if row is None]
    if plain:
        encoded = Vocabulary.from_classes({names[i]: list(prompts[i]) for i in plain}, encoder, device=device)
        embeddings[plain] = encoded.embeddings
    for i, row in enumerate(rows):
        if row is not None:
            embeddings[i] = row
    return Vocabulary(names, prompts, embeddings)
