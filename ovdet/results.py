"""``Result``: the detections of one image, as parallel numpy arrays (supervision's ``Detections`` layout)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .masks import Masks

__all__ = ["Result", "Masks"]


@dataclass(frozen=True, eq=False)
class Result:
    """Detections in one image (or video frame).

    Attributes:
        boxes: ``(N, 4)`` float32, xyxy in original-image pixels.
        scores: ``(N,)`` float32 confidences in [0, 1].
        class_ids: ``(N,)`` int64 indices into ``names``.
        names: The vocabulary the image was scored against.
        orig_shape: ``(h, w)`` of the original image.
        path: The image file, when the source was one.
        image: The original BGR image (kept for :meth:`plot`; ``None`` when not kept).
        source: For streams: which source the frame came from.
        frame_index: For streams: index of the frame in its source.
        timestamp: For streams: seconds since the source started (from the decoder when it knows).
        masks: Instance masks ``(N, H, W)`` bool in original-image pixels (segmentation models), or ``None``: a
            :class:`~ovdet.masks.Masks`, stored per box (``masks[i]`` is one dense mask, ``np.asarray(masks)`` all of
            them); a dense array given here is converted.
    """

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    names: tuple[str, ...]
    orig_shape: tuple[int, int]
    path: str | None = None
    image: np.ndarray | None = field(default=None, repr=False)
    source: str | None = None
    frame_index: int | None = None
    timestamp: float | None = None
    masks: Masks | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        class_ids = np.asarray(self.class_ids, dtype=np.int64).reshape(-1)
        if not (len(boxes) == len(scores) == len(class_ids)):
            raise ValueError(
                f"Result fields disagree in length: boxes {len(boxes)}, scores {len(scores)}, class_ids {len(class_ids)}"
            )
        if len(class_ids) and (class_ids.min() < 0 or class_ids.max() >= len(self.names)):
            raise ValueError(f"class_ids must index names (0..{len(self.names) - 1}), got {class_ids.tolist()}")
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "scores", scores)
        object.__setattr__(self, "class_ids", class_ids)
        object.__setattr__(self, "names", tuple(self.names))
        object.__setattr__(self, "orig_shape", (int(self.orig_shape[0]), int(self.orig_shape[1])))
        if self.masks is not None:
            masks = self.masks if isinstance(self.masks, Masks) else Masks.from_dense(self.masks)
            if len(masks) != len(scores) or masks.image_size != self.orig_shape:
                raise ValueError(
                    f"masks are {masks.shape}, expected ({len(scores)}, {self.orig_shape[0]}, {self.orig_shape[1]}): "
                    "one mask per detection, in original-image pixels"
                )
            object.__setattr__(self, "masks", masks)

    def __len__(self) -> int:
        return len(self.scores)

    def __getitem__(self, index: int | slice | np.ndarray | list[int]) -> Result:
        """A ``Result`` with the selected detections: an index (one detection), a slice, a boolean mask or an index
        array.

        Raises:
            IndexError: an integer index out of range.
        """
        if isinstance(index, (int, np.integer)):
            i = int(index)
            if not -len(self) <= i < len(self):
                raise IndexError(f"detection index {i} is out of range for a Result of {len(self)} detections")
            i %= len(self)
            index = slice(i, i + 1)
        masks = self.masks[index] if self.masks is not None else None
        return dataclasses.replace(
            self, boxes=self.boxes[index], scores=self.scores[index], class_ids=self.class_ids[index], masks=masks
        )

    def __iter__(self) -> Iterator[Result]:
        """Each detection as a one-detection ``Result`` (``for d in result: d.boxes[0], d.labels[0]``)."""
        for i in range(len(self)):
            yield self[i]

    @property
    def labels(self) -> list[str]:
        """The class name of each detection."""
        return [self.names[i] for i in self.class_ids]

    def plot(self, image: np.ndarray | None = None, *, line_width: int | None = None) -> np.ndarray:
        """Draw masks (if any), boxes and labels on a copy of ``image`` (default: the original image); returns it (BGR).

        Raises:
            ValueError: no image given and none kept.
        """
        from .io.draw import draw_detections, draw_masks

        image = self.image if image is None else image
        if image is None:
            raise ValueError("this Result holds no image; pass one: result.plot(image)")
        if self.masks is not None:
            image = draw_masks(image, self)
        return draw_detections(image, self, line_width=line_width)

    def save(self, path: str | os.PathLike, image: np.ndarray | None = None) -> str:
        """Write the annotated image to ``path`` (format from the suffix) atomically; returns the path.

        Raises:
            ValueError: no image to draw on.
            OutputError: ``path`` is a folder, sits below a file, cannot be written, or has a suffix that is not an
                image format (``.txt``).
        """
        import cv2

        from .errors import OutputError
        from .fileio import atomic_write_bytes, check_output_file

        suffix = os.path.splitext(str(path))[1] or ".jpg"
        if not cv2.haveImageWriter(f"x{suffix}"):
            raise OutputError(f"cannot write an image as '{suffix}' ({path}); use .jpg, .png, .bmp, .tif or .webp")
        check_output_file(path, what="image", example=f"out{suffix}")
        ok, buf = cv2.imencode(suffix, self.plot(image))
        if not ok:
            raise OutputError(f"cannot encode an image as '{suffix}' ({path}); use .jpg or .png")
        atomic_write_bytes(path, buf.tobytes())
        return str(path)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: image info and one entry per detection (box xyxy, score, class id, label, and for
        segmentation models ``mask``: COCO RLE, ``{"size": [H, W], "counts": str}``)."""
        out: dict[str, Any] = {"path": self.path, "orig_shape": list(self.orig_shape)}
        for key in ("source", "frame_index", "timestamp"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        out["detections"] = [
            {"box": [round(float(v), 2) for v in box], "score": round(float(s), 5), "class_id": int(c), "label": self.names[c]}
            for box, s, c in zip(self.boxes, self.scores, self.class_ids)
        ]
        if self.masks is not None:
            for i, detection in enumerate(out["detections"]):
                detection["mask"] = self.masks.rle(i)
        return out

    def to_supervision(self) -> Any:
        """This result as ``supervision.Detections`` (needs ``pip install supervision``)."""
        from .io.formats import to_supervision

        return to_supervision(self)
