"""Evaluation: predictions in COCO results format, scored by pycocotools (COCO AP) or the ``lvis`` package (LVIS AP).

COCO: pycocotools' standard protocol (AP averaged over IoU 0.50:0.95, at most 100 detections per image; AP50, AP75,
APs, APm, APl). LVIS: the lvis package's standard AP (its ``LVISEval``, bbox), with up to ``max_det`` detections per
image (default 1,000, as the YOLO-World paper evaluates), plus APr, APc, APf. Predictions use multi-label NMS with
``conf=0.001``, as ultralytics' validator does.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..data.datasets import SplitData
from ..fileio import atomic_write_text
from ..io.formats import to_coco_detections
from ..model.detector import OVDetector
from ..runtime.detector import OnnxDetector

__all__ = ["evaluate", "COCO_KEYS", "LVIS_KEYS"]

logger = logging.getLogger(__name__)

COCO_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl")
LVIS_KEYS = (*COCO_KEYS, "APr", "APc", "APf")


def _quiet(fn, *args, **kwargs):
    """pycocotools prints its progress and tables to stdout; keep them out of the user's output (log at debug)."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        out = fn(*args, **kwargs)
    if buffer.getvalue().strip():
        logger.debug(buffer.getvalue())
    return out


def _coco_ground_truth(split: SplitData) -> dict[str, Any]:
    """The split's ground truth as a COCO dict (read from its json, or built from YOLO labels)."""
    if split.annotations is not None:
        return json.loads(split.annotations.read_text(encoding="utf-8"))
    from PIL import Image

    images, annotations = [], []
    for record in split.records:
        with Image.open(record.path) as im:
            w, h = im.size
        images.append({"id": record.image_id, "file_name": os.path.basename(record.path), "width": w, "height": h})
        for box, label in zip(record.boxes, record.labels):
            cx, cy, bw, bh = box * np.array([w, h, w, h])
            annotations.append({"id": len(annotations) + 1, "image_id": record.image_id, "category_id": int(split.category_ids[label]),
                                "bbox": [float(cx - bw / 2), float(cy - bh / 2), float(bw), float(bh)],
                                "area": float(bw * bh), "iscrowd": 0})  # fmt: skip
    return {"images": images, "annotations": annotations, "categories": split.categories}


def _coco_metrics(gt: dict, predictions: list[dict], cat_ids: list[int] | None = None) -> dict[str, float]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if not predictions:
        return dict.fromkeys(COCO_KEYS, 0.0)
    coco_gt = COCO()
    coco_gt.dataset = gt
    _quiet(coco_gt.createIndex)
    coco_dt = _quiet(coco_gt.loadRes, predictions)
    ev = COCOeval(coco_gt, coco_dt, "bbox")
    if cat_ids is not None:
        ev.params.catIds = cat_ids
    _quiet(ev.evaluate)
    _quiet(ev.accumulate)
    _quiet(ev.summarize)
    return {k: max(float(v), 0.0) for k, v in zip(COCO_KEYS, ev.stats[:6])}  # -1 (no such objects) → 0


def _lvis_metrics(gt: dict, predictions: list[dict], max_det: int) -> dict[str, float]:
    from .lvis_compat import import_lvis

    LVIS, LVISResults, LVISEval = import_lvis()
    if not predictions:
        return dict.fromkeys(LVIS_KEYS, 0.0)
    lvis_gt = LVIS.__new__(LVIS)  # from memory instead of a path: LVIS's constructor only reads the json
    lvis_gt.logger, lvis_gt.dataset = logging.getLogger("lvis"), gt
    lvis_gt._create_index()
    results = LVISResults(lvis_gt, predictions, max_dets=max_det)
    ev = LVISEval(lvis_gt, results, iou_type="bbox")
    ev.params.max_dets = max_det
    _quiet(ev.run)
    return {k: max(float(ev.results[k]), 0.0) for k in LVIS_KEYS}


def evaluate(
    model: OVDetector | OnnxDetector,
    split: SplitData,
    *,
    texts: dict[str, tuple[str, ...]] | None = None,
    metric: str = "coco",
    conf: float = 0.001,
    iou: float = 0.7,
    max_det: int | None = None,
    imgsz: int | None = None,
    batch: int = 8,
    out_dir: str | os.PathLike | None = None,
    group_by: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate ``model`` on a split, with the split's category names (and their ``texts`` prompts) as vocabulary.

    Args:
        model: The detector (PyTorch, or an ONNX export with a runtime vocabulary); its vocabulary is restored
            afterwards.
        split: A loaded split (:func:`ovdet.data.datasets.load_split`).
        texts: Optional prompts per class name (synonyms are ensembled).
        metric: ``"coco"`` (pycocotools) or ``"lvis"`` (the lvis package; needs LVIS-format ground truth).
        conf, iou: Score threshold and NMS IoU for the predictions.
        max_det: Detections per image (default 300 for COCO, 1,000 for LVIS).
        imgsz: Inference size (default: the model's).
        batch: Images per forward pass.
        out_dir: If given, ``predictions.json`` (COCO results format, the dataset's own category ids) and
            ``metrics.json`` are written there.
        group_by: A category field (e.g. ``"held_out"``); COCO metrics are also computed per value of that field,
            under ``groups`` in the result.
        progress: Show a progress bar.

    Returns:
        The metrics: ``AP``, ``AP50``, ``AP75``, ``APs``, ``APm``, ``APl`` (LVIS: also ``APr``, ``APc``, ``APf``),
        ``images``, ``detections``, and ``groups`` when asked.
    """
    from tqdm import tqdm

    if metric not in ("coco", "lvis"):
        raise ValueError(f"metric must be 'coco' or 'lvis', got {metric!r}")
    max_det = max_det or (1000 if metric == "lvis" else 300)
    previous = model.vocabulary if model.names else None
    texts = texts or {}
    model.set_classes({name: list(texts.get(name, (name,))) for name in split.names})
    predictions: list[dict] = []
    try:
        results = model.predict_iter(
            [r.path for r in split.records], conf=conf, iou=iou, imgsz=imgsz, max_det=max_det, multi_label=True,
            batch=batch, keep_images=False,
        )  # fmt: skip
        bar = tqdm(results, total=len(split.records), desc=f"eval {split.name}", unit="img", disable=not progress)
        for record, result in zip(split.records, bar):
            predictions += to_coco_detections(result, record.image_id, list(split.category_ids))
    finally:
        if previous is not None:
            model.set_vocabulary(previous)
    gt = _coco_ground_truth(split)
    metrics: dict[str, Any] = (
        _lvis_metrics(gt, predictions, max_det) if metric == "lvis" else _coco_metrics(gt, predictions)
    )
    metrics.update(images=len(split.records), detections=len(predictions), metric=metric, max_det=max_det)
    if group_by:
        groups: dict[str, list[int]] = {}
        for c in split.categories:
            groups.setdefault(f"{group_by}={c.get(group_by)}", []).append(c["id"])
        metrics["groups"] = {name: _coco_metrics(gt, predictions, ids) for name, ids in sorted(groups.items())}
    if out_dir is not None:
        out = Path(out_dir)
        atomic_write_text(out / "predictions.json", json.dumps(predictions) + "\n")
        atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    return metrics
