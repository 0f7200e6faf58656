"""Conversions of ``Result`` to other libraries' and datasets' formats."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ..results import Result

__all__ = ["to_supervision", "to_coco_detections"]


def to_supervision(result: Result) -> Any:
    """``supervision.Detections`` with ``xyxy``, ``confidence``, ``class_id``, ``data['class_name']`` and, for
    segmentation models, ``mask`` (dense ``(N, H, W)`` bool, supervision's layout: ``N × H × W`` bytes).

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
        mask=result.masks.to_dense() if result.masks is not None else None,
        data={"class_name": np.array(result.labels, dtype=str)},
    )


def to_coco_detections(result: Result, image_id: int, category_ids: list[int]) -> list[dict[str, Any]]:
    """COCO results-format entries (``bbox`` as x, y, w, h) for one image; ``category_ids[k]`` is class k's id.

    With instance masks, each entry also has ``segmentation`` (COCO RLE, pycocotools' ``encode``)."""
    out = []
    for i, ((x1, y1, x2, y2), score, cls) in enumerate(
        zip(result.boxes.tolist(), result.scores.tolist(), result.class_ids.tolist())
    ):
        entry = {
            "image_id": int(image_id),
            "category_id": int(category_ids[cls]),
            "bbox": [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)],
            "score": round(score, 5),
        }
        if result.masks is not None:
            entry["segmentation"] = result.masks.rle(i)
        out.append(entry)
    return out
