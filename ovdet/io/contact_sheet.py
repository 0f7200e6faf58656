"""A contact sheet: a grid of sample images with their labels drawn, to see at a glance what a labelling run did."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import cv2
import numpy as np

from ..results import Result
from .draw import draw_detections
from .label_formats import LabelRecord

__all__ = ["pick_samples", "contact_sheet"]


def pick_samples(records: Sequence[LabelRecord], count: int) -> list[LabelRecord]:
    """Up to ``count`` records spread evenly over the records sorted by name, those with boxes first (an image
    without any shows less of what was labelled); deterministic."""
    ordered = sorted(records, key=lambda r: r.name)
    with_boxes = [r for r in ordered if len(r.scores)]
    pool = with_boxes if len(with_boxes) >= count else with_boxes + [r for r in ordered if not len(r.scores)]
    if len(pool) <= count:
        return pool
    step = len(pool) / count
    return [pool[int(i * step)] for i in range(count)]


def contact_sheet(
    records: Sequence[LabelRecord],
    names: Sequence[str],
    read: Callable[[LabelRecord], np.ndarray | None],
    *,
    count: int = 16,
    tile: int = 320,
    columns: int = 4,
) -> np.ndarray | None:
    """A BGR grid of ``tile`` × ``tile`` cells, each a sample image (:func:`pick_samples`) scaled to fit its cell on
    a grey ground, with its boxes and ``label score`` drawn (:func:`ovdet.io.draw.draw_detections`).

    Args:
        read: Decodes a record's image (``None`` if it cannot: that sample is left out).

    Returns:
        ``(rows * tile, columns * tile, 3)`` uint8, or ``None`` when no sample could be read.
    """
    tiles = []
    for record in pick_samples(records, count):
        image = read(record)
        if image is None:
            continue
        h, w = image.shape[:2]
        scale = tile / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        small = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        # drawn after scaling, so labels are legible at the cell's size whatever the image's
        scaled = Result(record.boxes * np.float32(scale), record.scores, record.class_ids, tuple(names),
                        (size[1], size[0]))  # fmt: skip
        small = draw_detections(small, scaled)
        cell = np.full((tile, tile, 3), 114, np.uint8)
        y, x = (tile - small.shape[0]) // 2, (tile - small.shape[1]) // 2
        cell[y : y + small.shape[0], x : x + small.shape[1]] = small
        tiles.append(cell)
    if not tiles:
        return None
    columns = min(columns, len(tiles))
    rows = math.ceil(len(tiles) / columns)
    sheet = np.full((rows * tile, columns * tile, 3), 255, np.uint8)
    for i, cell in enumerate(tiles):
        r, c = divmod(i, columns)
        sheet[r * tile : (r + 1) * tile, c * tile : (c + 1) * tile] = cell
    return sheet
