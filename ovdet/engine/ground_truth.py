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

What the dataset loader skips (and counts in its warning) — an annotation without a valid box, of an unknown image
or category, an image whose id is duplicated or not an integer — is left out here too, so the metrics are computed
on exactly what was loaded. What cannot be mended (no images, no categories) is one
:class:`~ovdet.errors.DatasetError`, raised before the model runs.
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
        DatasetError: the ground truth has no images (with integer ids) or no categories.
    """
    gt = copy.deepcopy(gt)
    images, categories = gt.get("images"), gt.get("categories")
    if not images or not isinstance(images, list):
        raise DatasetError(f"{source} lists no images")
    if not categories or not isinstance(categories, list):
        raise DatasetError(f"{source} lists no categories")
    # what the dataset loader skipped (and counted in its warning) is left out here too: duplicate or non-integer
    # image ids, annotations without a valid box, of an unknown image or of an unknown category
    kept_images, image_ids = [], set()
    for img in images:
        iid = img.get("id")
        if isinstance(iid, int) and not isinstance(iid, bool) and iid not in image_ids:
            kept_images.append(img)
            image_ids.add(iid)
    if not kept_images:
        raise DatasetError(f"{source} lists no image with an integer id")
    gt["images"] = images = kept_images
    category_ids = [c.get("id") for c in categories]
    known_categories = set(category_ids)
    annotations = []
    for ann in gt.get("annotations") or []:
        bbox = ann.get("bbox")
        valid_box = isinstance(bbox, (list, tuple)) and len(bbox) == 4 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in bbox
        )
        if valid_box and ann.get("image_id") in image_ids and ann.get("category_id") in known_categories:
            annotations.append(ann)
    for new_id, ann in enumerate(annotations, 1):
        ann["id"] = new_id  # pycocotools takes id 0 as "no match"; the ids mean nothing to the metrics
        ann.setdefault("iscrowd", 0)
        ann["iscrowd"] = int(bool(ann["iscrowd"]))
        if "area" not in ann:
            ann["area"] = float(ann["bbox"][2]) * float(ann["bbox"][3])
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
