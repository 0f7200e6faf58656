"""``Masks``: instance masks ``(N, H, W)`` bool in original-image pixels, stored as one crop per instance.

An instance mask of a YOLO segmentation model is False outside its box (ultralytics' ``crop_mask``), so only the box
region is stored: memory is the sum of the box areas instead of ``N × H × W`` (a 4K frame with 300 detections
would take 2.5 GB as a dense array). ``Masks`` behaves like the dense array where it matters: ``shape``, ``len``,
``masks[i]`` (one dense ``(H, W)`` mask), slices and boolean or index arrays (a ``Masks``), and ``np.asarray(masks)``
(the dense ``(N, H, W)`` array, materialised on request).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Masks"]


@dataclass(frozen=True, eq=False)
class Masks:
    """Instance masks of one image.

    Attributes:
        crops: One ``(h_i, w_i)`` bool array per instance: the mask inside its region.
        offsets: ``(N, 2)`` int64 ``(x, y)`` of each region's top-left pixel in the image.
        image_size: ``(H, W)`` of the image.
    """

    crops: tuple[np.ndarray, ...]
    offsets: np.ndarray
    image_size: tuple[int, int]

    def __post_init__(self) -> None:
        offsets = np.asarray(self.offsets, dtype=np.int64).reshape(-1, 2)
        crops = tuple(np.asarray(c, dtype=bool) for c in self.crops)
        h, w = (int(v) for v in self.image_size)
        if len(crops) != len(offsets):
            raise ValueError(f"Masks: {len(crops)} crops but {len(offsets)} offsets")
        for crop, (x, y) in zip(crops, offsets):
            if crop.ndim != 2 or x < 0 or y < 0 or x + crop.shape[1] > w or y + crop.shape[0] > h:
                raise ValueError(f"Masks: a {crop.shape} crop at ({x}, {y}) does not fit a {h}x{w} image")
        object.__setattr__(self, "crops", crops)
        object.__setattr__(self, "offsets", offsets)
        object.__setattr__(self, "image_size", (h, w))

    @classmethod
    def from_dense(cls, masks: Any) -> Masks:
        """From a dense ``(N, H, W)`` array (any dtype; nonzero is inside): each mask cropped to its bounding box."""
        dense = np.asarray(masks).astype(bool, copy=False)
        if dense.ndim != 3:
            raise ValueError(f"masks must be (N, H, W), got shape {dense.shape}")
        crops, offsets = [], []
        for m in dense:
            rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
            if len(rows) == 0:
                crops.append(np.zeros((0, 0), bool))
                offsets.append((0, 0))
                continue
            crops.append(m[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].copy())
            offsets.append((cols[0], rows[0]))
        return cls(tuple(crops), np.array(offsets, dtype=np.int64).reshape(-1, 2), dense.shape[1:])

    @classmethod
    def empty(cls, image_size: tuple[int, int]) -> Masks:
        return cls((), np.zeros((0, 2), np.int64), image_size)

    # ------------------------------------------------------------------ array-like
    @property
    def shape(self) -> tuple[int, int, int]:
        return (len(self.crops), *self.image_size)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(bool)

    ndim = 3

    def __len__(self) -> int:
        return len(self.crops)

    def __iter__(self) -> Iterator[np.ndarray]:
        """Dense ``(H, W)`` masks, one at a time."""
        return (self[i] for i in range(len(self)))

    def __getitem__(self, index: int | slice | Sequence[int] | np.ndarray) -> Any:
        """An int gives one dense ``(H, W)`` bool mask; a slice, boolean mask or index array gives a ``Masks``."""
        if isinstance(index, (int, np.integer)):
            i = int(index)
            out = np.zeros(self.image_size, dtype=bool)
            crop, (x, y) = self.crops[i], self.offsets[i]
            out[y : y + crop.shape[0], x : x + crop.shape[1]] = crop
            return out
        picked = np.arange(len(self))[index]
        return Masks(tuple(self.crops[i] for i in picked), self.offsets[picked], self.image_size)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        dense = np.zeros(self.shape, dtype=bool)
        for i, (crop, (x, y)) in enumerate(zip(self.crops, self.offsets)):
            dense[i, y : y + crop.shape[0], x : x + crop.shape[1]] = crop
        return dense if dtype is None else dense.astype(dtype)

    def to_dense(self) -> np.ndarray:
        """The dense ``(N, H, W)`` bool array (``N × H × W`` bytes)."""
        return np.asarray(self)

    @property
    def areas(self) -> np.ndarray:
        """``(N,)`` int64 pixels inside each mask."""
        return np.array([int(c.sum()) for c in self.crops], dtype=np.int64)

    def rle(self, index: int) -> dict[str, Any]:
        """COCO run-length encoding of mask ``index`` (``{"size": [H, W], "counts": str}``, pycocotools' ``encode``),
        as COCO results and ``Result.to_dict()`` carry it."""
        from pycocotools import mask as mask_utils

        encoded = mask_utils.encode(np.asfortranarray(self[index].astype(np.uint8)))
        return {"size": [int(v) for v in encoded["size"]], "counts": encoded["counts"].decode("ascii")}

    @property
    def nbytes(self) -> int:
        """Bytes held by the crops (what the masks cost in memory)."""
        return sum(c.nbytes for c in self.crops) + self.offsets.nbytes

    def __repr__(self) -> str:
        return f"Masks({len(self)} masks, image {self.image_size[0]}x{self.image_size[1]}, {self.nbytes} bytes)"
