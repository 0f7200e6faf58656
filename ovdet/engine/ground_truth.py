"""Ground truth as pycocotools and lvis need it, mended where the COCO/LVIS formats allow and checked before any
prediction is made.

Valid COCO json varies in ways the metric code does not forgive:

- annotation ids that start at 0: pycocotools uses id 0 to mean "unmatched", so the first object can never be found
  (AP 0.7905 fell to 0.6794 on the same predictions). Ids are renumbered 1..N (predictions never refer to them).
- ``iscrowd`` and ``area`` are optional in practice but read unconditionally (``KeyError``): missing ones become 0
  and the box area.
- LVIS's evaluator reads ``neg_category_ids`` and ``not_exhaustive_category_ids`` per image and ``frequency`` per
  category. A COCO-style dataset is exhaustively labelled, so every category absent from an image is a negative
  there (which makes LVIS AP count its false positives, as COCO AP does); without ``frequency`` for every category,
  APr/APc/APf are not applicable and reported as ``None`` (the returned dict then has ``"_frequency_unknown"``).

What cannot be mended (no images, no categories, an annotation without a box or of an unknown image) is one
:class:`~ovdet.errors.DatasetError` naming it, raised before the model runs.
"""

from __future__ import annotations

import copy
from typing import Any

from ..errors import DatasetError

__all__ = ["normalize_ground_truth"]


def normalize_ground_truth(gt: dict[str, Any], *, metric: str = "coco", source: str = "ground truth") -> dict[str, Any]:
    """A copy of COCO/LVIS ground truth that pycocotools (``metric="coco"``) or lvis (``"lvis"``) evaluates as
    the formats intend (see the module docstring).

    Raises:
        DatasetError: the ground truth has no images or categories, or an annotation has no valid box, an unknown
            image or an unknown category.
    """
    gt = copy.deepcopy(gt)
    images, categories = gt.get("images"), gt.get("categories")
    if not images or not isinstance(images, list):
        raise DatasetError(f"{source} lists no images")
    if not categories or not isinstance(categories, list):
        raise DatasetError(f"{source} lists no categories")
    image_ids = {img.get("id") for img in images}
    category_ids = [c.get("id") for c in categories]
    annotations = gt.get("annotations") or []
    for new_id, ann in enumerate(annotations, 1):
        bbox = ann.get("bbox")
        if not (isinstance(bbox, (list, tuple)) and len(bbox) == 4 and all(isinstance(v, (int, float)) for v in bbox)):
            raise DatasetError(f"{source}: annotation {ann.get('id')} has no valid bbox [x, y, width, height]")
        if ann.get("image_id") not in image_ids:
            raise DatasetError(f"{source}: annotation {ann.get('id')} refers to image {ann.get('image_id')}, not listed")
        if ann.get("category_id") not in category_ids:
            raise DatasetError(
                f"{source}: annotation {ann.get('id')} has category {ann.get('category_id')}, not listed in categories"
            )
        ann["id"] = new_id  # pycocotools takes id 0 as "no match"; the ids mean nothing to the metrics
        ann.setdefault("iscrowd", 0)
        ann["iscrowd"] = int(bool(ann["iscrowd"]))
        if "area" not in ann:
            ann["area"] = float(bbox[2]) * float(bbox[3])
    gt["annotations"] = annotations
    if metric == "lvis":
        present: dict[Any, set] = {iid: set() for iid in image_ids}
        for ann in annotations:
            present[ann["image_id"]].add(ann["category_id"])
        for img in images:
            if "neg_category_ids" not in img:  # exhaustive labels: every absent category is a verified negative
                img["neg_category_ids"] = [c for c in category_ids if c not in present[img.get("id")]]
            img.setdefault("not_exhaustive_category_ids", [])
        if any(c.get("frequency") not in ("r", "c", "f") for c in categories):
            # lvis groups categories by frequency and fails without one; the groups then mean nothing, and
            # evaluate() reports APr/APc/APf as not applicable
            gt["_frequency_unknown"] = True
            for c in categories:
                c["frequency"] = "f"
    return gt
