"""Labelled images in dataset formats: COCO json, YOLO txt, Label Studio tasks, and a per-class summary.

A :class:`LabelRecord` is one labelled image (what ``ovdet label`` journals, one JSON line each). The writers here are
pure functions of records, so every format says the same thing about every image:

- **COCO** (``instances`` json, as pycocotools and ``ovdet train``/``eval`` read it): ``images`` with ``width`` and
  ``height``, ``categories`` with ids from 1, ``annotations`` with ``bbox`` ``[x, y, w, h]`` in pixels, ``area``,
  ``iscrowd`` 0 and each detection's ``score`` (an extra field COCO tools ignore; the results format has it too).
- **YOLO** (ultralytics' detection labels): one ``class cx cy w h`` line per box, normalised to [0, 1].
- **Label Studio** (its documented import format for pre-annotations, https://labelstud.io/guide/predictions):
  one task per image, ``data.image`` its URL, one prediction per task whose ``result`` holds a ``rectanglelabels``
  region per box — ``x``, ``y``, ``width``, ``height`` in percent of the image, ``original_width``/``height``,
  ``from_name``/``to_name`` naming the tags of :func:`labelstudio_config` — and the box's ``score``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import quoteattr

import numpy as np

__all__ = [
    "LabelRecord",
    "coco_dataset",
    "yolo_lines",
    "labelstudio_tasks",
    "labelstudio_config",
    "class_summary",
]

MIN_BOX_PX = 1.0  # a box narrower or lower than a pixel is dropped: ovdet's loader skips it, YOLO tools choke on it


@dataclass(frozen=True, eq=False)
class LabelRecord:
    """One labelled image.

    Attributes:
        key: Its identity in the journal (the source's real path, plus ``#frame=N`` for a video frame).
        name: Its file name in the dataset.
        source: The source file (the video, for a frame).
        frame: The frame index, or ``None``.
        stored: The dataset holds its pixels as a file of its own (frames, converted formats), not a link or copy.
        size: ``(h, w)`` of the image in pixels.
        boxes: ``(N, 4)`` float32 xyxy pixels, rounded to 0.01 px.
        scores: ``(N,)`` float32, rounded to 1e-5.
        class_ids: ``(N,)`` int64 indices into the output classes.
    """

    key: str
    name: str
    source: str
    frame: int | None
    stored: bool
    size: tuple[int, int]
    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray

    @classmethod
    def from_detections(
        cls, key: str, name: str, source: str, frame: int | None, stored: bool, size: tuple[int, int],
        boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray,
    ) -> LabelRecord:  # fmt: skip
        """A record from a detector's output, rounded as it is journaled (so a record read back equals it) and
        without boxes under :data:`MIN_BOX_PX` on a side."""
        boxes = np.round(np.asarray(boxes, np.float64).reshape(-1, 4), 2)
        keep = ((boxes[:, 2] - boxes[:, 0]) >= MIN_BOX_PX) & ((boxes[:, 3] - boxes[:, 1]) >= MIN_BOX_PX)
        return cls(key, name, source, frame, stored, (int(size[0]), int(size[1])), boxes[keep].astype(np.float32),
                   np.round(np.asarray(scores, np.float64)[keep], 5).astype(np.float32),
                   np.asarray(class_ids, np.int64)[keep])  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        """The journal's form (one ``records.jsonl`` line, read back by :meth:`from_json`): the attributes under
        ``key``, ``name``, ``source``, ``frame``, ``stored``, ``size`` ``[h, w]``, ``boxes`` (lists of xyxy pixels,
        0.01 px), ``scores`` (1e-5) and ``classes``."""
        return {
            "key": self.key, "name": self.name, "source": self.source, "frame": self.frame, "stored": self.stored,
            "size": list(self.size), "boxes": [[round(float(v), 2) for v in b] for b in self.boxes],
            "scores": [round(float(s), 5) for s in self.scores], "classes": [int(c) for c in self.class_ids],
        }  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LabelRecord:
        """The record :meth:`to_json` wrote (raises ``KeyError``/``ValueError``/``TypeError`` on anything else)."""
        return cls(str(data["key"]), str(data["name"]), str(data["source"]),
                   None if data["frame"] is None else int(data["frame"]), bool(data["stored"]),
                   (int(data["size"][0]), int(data["size"][1])),
                   np.asarray(data["boxes"], np.float32).reshape(-1, 4), np.asarray(data["scores"], np.float32),
                   np.asarray(data["classes"], np.int64))  # fmt: skip


def coco_dataset(records: Sequence[tuple[int, LabelRecord]], names: Sequence[str]) -> dict[str, Any]:
    """A COCO instances dict for ``(image_id, record)`` pairs (file names as in the dataset); category ``k + 1`` is
    ``names[k]``. Annotation ids run from 1 in the order given."""
    images, annotations = [], []
    for image_id, r in records:
        h, w = r.size
        images.append({"id": int(image_id), "file_name": r.name, "width": w, "height": h})
        for (x1, y1, x2, y2), score, cls in zip(r.boxes.tolist(), r.scores.tolist(), r.class_ids.tolist()):
            bw, bh = round(x2 - x1, 2), round(y2 - y1, 2)
            annotations.append({
                "id": len(annotations) + 1, "image_id": int(image_id), "category_id": int(cls) + 1,
                "bbox": [round(x1, 2), round(y1, 2), bw, bh], "area": round(bw * bh, 2), "iscrowd": 0,
                "score": round(score, 5),
            })  # fmt: skip
    categories = [{"id": k + 1, "name": n, "supercategory": "object"} for k, n in enumerate(names)]
    return {"info": {"description": "labelled by ovdet label"}, "images": images, "annotations": annotations,
            "categories": categories}  # fmt: skip


def yolo_lines(record: LabelRecord) -> str:
    """The YOLO label file of one record: ``class cx cy w h`` per box, normalised, 6 decimals (empty: no boxes)."""
    h, w = record.size
    lines = []
    for (x1, y1, x2, y2), cls in zip(record.boxes.tolist(), record.class_ids.tolist()):
        cx, cy, bw, bh = (x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h
        lines.append(f"{int(cls)} {cx:.6f} {cy:.6f} {bw:.6f} {bh:.6f}\n")
    return "".join(lines)


def labelstudio_tasks(
    records: Sequence[LabelRecord],
    names: Sequence[str],
    image_url: Callable[[LabelRecord], str],
    *,
    from_name: str = "label",
    to_name: str = "image",
    model_version: str = "ovdet",
) -> list[dict[str, Any]]:
    """Label Studio tasks with predictions (see the module docstring); ``image_url(record)`` is each task's image.

    Result ids are unique across the file (``<task>_<box>``), as Label Studio asks of every region it imports.
    """
    tasks = []
    for t, r in enumerate(records):
        h, w = r.size
        result = []
        for j, ((x1, y1, x2, y2), score, cls) in enumerate(zip(r.boxes.tolist(), r.scores.tolist(),
                                                              r.class_ids.tolist())):  # fmt: skip
            result.append({
                "id": f"{t}_{j}", "type": "rectanglelabels", "from_name": from_name, "to_name": to_name,
                "original_width": w, "original_height": h, "image_rotation": 0,
                "value": {"x": round(100 * x1 / w, 4), "y": round(100 * y1 / h, 4),
                          "width": round(100 * (x2 - x1) / w, 4), "height": round(100 * (y2 - y1) / h, 4),
                          "rotation": 0, "rectanglelabels": [names[int(cls)]]},
                "score": round(score, 5),
            })  # fmt: skip
        mean = round(float(np.mean(r.scores)), 5) if len(r.scores) else 0.0
        tasks.append({"data": {to_name: image_url(r)},
                      "predictions": [{"model_version": model_version, "score": mean, "result": result}]})  # fmt: skip
    return tasks


def labelstudio_config(names: Sequence[str], *, from_name: str = "label", to_name: str = "image") -> str:
    """The labelling configuration (XML) the tasks of :func:`labelstudio_tasks` fit: an ``Image`` tag named
    ``to_name`` reading ``$<to_name>`` and a ``RectangleLabels`` tag named ``from_name`` with one ``Label`` per
    class."""
    labels = "".join(f"    <Label value={quoteattr(n)}/>\n" for n in names)
    return (f"<View>\n  <Image name={quoteattr(to_name)} value={quoteattr('$' + to_name)}/>\n"
            f"  <RectangleLabels name={quoteattr(from_name)} toName={quoteattr(to_name)}>\n{labels}"
            "  </RectangleLabels>\n</View>\n")  # fmt: skip


def class_summary(records: Sequence[LabelRecord], names: Sequence[str]) -> dict[str, dict[str, float | int]]:
    """Per class: ``count`` (boxes), ``images`` (images with at least one) and ``mean_score`` (``None`` without
    boxes)."""
    counts = np.zeros(len(names), np.int64)
    images = np.zeros(len(names), np.int64)
    sums = np.zeros(len(names), np.float64)
    for r in records:
        if len(r.class_ids):
            counts += np.bincount(r.class_ids, minlength=len(names))
            images += np.bincount(np.unique(r.class_ids), minlength=len(names))
            sums += np.bincount(r.class_ids, weights=r.scores.astype(np.float64), minlength=len(names))
    return {n: {"count": int(c), "images": int(i), "mean_score": round(float(s / c), 4) if c else None}
            for n, c, i, s in zip(names, counts, images, sums)}  # fmt: skip


def dumps(data: Any) -> str:
    """Compact, UTF-8-friendly JSON text with a final newline (what the writers store)."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n"
