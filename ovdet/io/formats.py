"""Conversions of ``Result`` to other libraries' and datasets' formats."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ..results import Result

__all__ = ["to_supervision", "to_coco_detections"]


def to_supervision(result: Result) -> Any:
    """``supervision.Detections`` with ``xyxy``, ``confidence``, ``class_id`` and ``data['class_name']``.

    Raises:
        ImportError: supervision is not installed (the message says how to install it).
    """
    try:
        import supervision as sv
    except ImportError as e:
        raise ImportError("to_supervision() needs the supervision package: pip install supervision") from e
    return sv.Detections(
        xyxy=result.boxes.astype(np.float32),
        confidence=result.scores.astype(np.float32),
        class_id=result.class_ids.astype(int),
        data={"class_name": np.array(result.labels, dtype=str)},
    )


def to_coco_detections(result: Result, image_id: int, category_ids: list[int]) -> list[dict[str, Any]]:
    """COCO results-format entries (``bbox`` as x, y, w, h) for one image; ``category_ids[k]`` is class k's id."""
    out = []
    for (x1, y1, x2, y2), score, cls in zip(result.boxes.tolist(), result.scores.tolist(), result.class_ids.tolist()):
        out.append(
            {
                "image_id": int(image_id),
                "category_id": int(category_ids[cls]),
                "bbox": [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)],
                "score": round(score, 5),
            }
        )
    return out
