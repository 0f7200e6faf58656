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
from ..errors import DatasetError
from ..fileio import JsonArrayWriter, atomic_write_text, prepare_output_dir
from ..io.formats import to_coco_detections
from ..model.detector import OVDetector
from ..runtime.detector import OnnxDetector
from .ground_truth import normalize_ground_truth

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


def _none_if_negative(value: float) -> float | None:
    # pycocotools and lvis say -1 where nothing could be measured (no objects of that size or group)
    return None if value < 0 else float(value)


def _coco_metrics(
    gt: dict, predictions: list[dict], cat_ids: list[int] | None = None, img_ids: list[int] | None = None,
    per_class: bool = False,
) -> dict[str, Any]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    coco_gt = COCO()
    coco_gt.dataset = gt
    _quiet(coco_gt.createIndex)
    if not predictions:  # loadRes refuses an empty list; nothing found is AP 0 wherever there is something to find
        stats = {k: 0.0 for k in COCO_KEYS}
        return stats
    # loadRes adds "segmentation", "area" and "id" to the dicts it is given: give it copies, so the predictions
    # stay what the model made (a box model's would otherwise look like masks to the segm metrics)
    coco_dt = _quiet(coco_gt.loadRes, [dict(p) for p in predictions])
    ev = COCOeval(coco_gt, coco_dt, "bbox")
    if cat_ids is not None:
        ev.params.catIds = cat_ids
    if img_ids is not None:
        ev.params.imgIds = img_ids
    _quiet(ev.evaluate)
    _quiet(ev.accumulate)
    _quiet(ev.summarize)
    metrics: dict[str, Any] = {k: _none_if_negative(v) for k, v in zip(COCO_KEYS, ev.stats[:6])}
    if per_class:
        metrics["per_class"] = _per_class_ap(ev, coco_gt)
    return metrics


def _per_class_ap(ev: Any, coco_gt: Any) -> list[dict[str, Any]]:
    """AP and AP50 of each category (area "all", 100 detections), as pycocotools' summarize() averages them."""
    precision = ev.eval["precision"]  # (T IoUs, R recalls, K categories, A areas, M max-dets)
    iou50 = int(np.argmin(np.abs(ev.params.iouThrs - 0.5)))
    rows = []
    for k, cat_id in enumerate(ev.params.catIds):
        p = precision[:, :, k, 0, -1]
        ap = float(p[p > -1].mean()) if (p > -1).any() else None
        p50 = p[iou50]
        ap50 = float(p50[p50 > -1].mean()) if (p50 > -1).any() else None
        instances = len(coco_gt.getAnnIds(catIds=[cat_id], imgIds=ev.params.imgIds, iscrowd=False))
        rows.append({"category_id": int(cat_id), "name": coco_gt.cats[cat_id]["name"], "instances": instances,
                     "AP50": ap50, "AP": ap})  # fmt: skip
    return rows


def _segm_metrics(gt: dict, predictions: list[dict], img_ids: list[int] | None = None) -> dict[str, Any] | None:
    """COCO mask AP (pycocotools, ``iouType="segm"``) of predictions carrying RLE ``segmentation``; ``None`` (not
    applicable) when the ground truth has no masks. As detectron2 does, each prediction's box is left out so that
    pycocotools takes area and box from the mask."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    annotations = gt.get("annotations") or []
    if not annotations or not all(a.get("segmentation") for a in annotations):
        logger.warning("the model predicts masks but the ground truth has none: segm AP is not applicable (null)")
        return None
    masks = [{k: v for k, v in p.items() if k != "bbox"} for p in predictions if "segmentation" in p]
    if not masks:
        return dict.fromkeys(COCO_KEYS, 0.0)
    coco_gt = COCO()
    coco_gt.dataset = gt
    _quiet(coco_gt.createIndex)
    ev = COCOeval(coco_gt, _quiet(coco_gt.loadRes, masks), "segm")
    if img_ids is not None:
        ev.params.imgIds = img_ids
    _quiet(ev.evaluate)
    _quiet(ev.accumulate)
    _quiet(ev.summarize)
    return {k: _none_if_negative(v) for k, v in zip(COCO_KEYS, ev.stats[:6])}


def _lvis_metrics(gt: dict, predictions: list[dict], max_det: int) -> dict[str, Any]:
    from .lvis_compat import import_lvis

    LVIS, LVISResults, LVISEval = import_lvis()
    if not predictions:
        return {k: 0.0 for k in LVIS_KEYS}
    lvis_gt = LVIS.__new__(LVIS)  # from memory instead of a path: LVIS's constructor only reads the json
    lvis_gt.logger, lvis_gt.dataset = logging.getLogger("lvis"), gt
    lvis_gt._create_index()
    results = LVISResults(lvis_gt, predictions, max_dets=max_det)
    ev = LVISEval(lvis_gt, results, iou_type="bbox")
    ev.params.max_dets = max_det
    _quiet(ev.run)
    metrics = {k: _none_if_negative(ev.results[k]) for k in LVIS_KEYS}
    if gt.get("_frequency_unknown"):
        metrics.update(APr=None, APc=None, APf=None)
    return metrics


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
    overwrite: bool = False,
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
        overwrite: Write into ``out_dir`` even if it holds files ovdet did not write.

    Returns:
        The metrics: ``AP``, ``AP50``, ``AP75``, ``APs``, ``APm``, ``APl`` (LVIS: also ``APr``, ``APc``, ``APf``),
        each ``None`` where not applicable (no objects of that size or frequency group; pycocotools' -1);
        ``per_class`` (COCO: each category's ``instances``, ``AP50``, ``AP``), ``images`` (evaluated),
        ``skipped`` (paths of images that could not be read, left out of the metrics), ``detections``, and
        ``groups`` when asked. A model with instance masks also gets ``segm``: the same COCO keys for masks
        (``None`` when the ground truth has no masks).

    Raises:
        DatasetError: ground truth that cannot be mended (see :mod:`ovdet.engine.ground_truth`), before predicting.
        OutputError: ``out_dir`` cannot be written (checked before predicting).
    """
    from tqdm import tqdm

    if metric not in ("coco", "lvis"):
        raise ValueError(f"metric must be 'coco' or 'lvis', got {metric!r}")
    max_det = max_det or (1000 if metric == "lvis" else 300)
    # the ground truth is read, mended and checked before any prediction: a problem shows in a second, not at the end
    gt = normalize_ground_truth(_coco_ground_truth(split), metric=metric, source=str(split.annotations or split.name))
    if group_by and not any(group_by in c for c in split.categories):
        fields = sorted({k for c in split.categories for k in c} - {"id", "name"})
        raise DatasetError(
            f"no category of {split.name} has the field {group_by!r} to group by; its categories have "
            f"{', '.join(fields) or 'only id and name'}"
        )
    if out_dir is not None:
        out_dir = prepare_output_dir(out_dir, kind="eval", what="evaluation folder", overwrite=overwrite)
        # an earlier run's metrics would sit beside this run's predictions until it ends: a stop would leave them
        # mismatched (ovdet's own file, in a folder ovdet marked or the user gave with overwrite)
        (out_dir / "metrics.json").unlink(missing_ok=True)
    previous = model.vocabulary if model.names else None
    texts = texts or {}
    model.set_classes({name: list(texts.get(name, (name,))) for name in split.names})
    by_path = {r.path: r for r in split.records}
    skipped: list[str] = list(split.missing)  # listed in the annotations but missing or empty: not evaluated
    done: list[int] = []
    predictions: list[dict] = []
    writer = JsonArrayWriter(Path(out_dir) / "predictions.json") if out_dir is not None else None

    def skip(path: str, error: Exception) -> None:
        skipped.append(path)
        logger.warning("skipping %s", error)

    try:
        results = model.predict_iter(
            [r.path for r in split.records], conf=conf, iou=iou, imgsz=imgsz, max_det=max_det, multi_label=True,
            batch=batch, keep_images=False, on_error=skip,
        )  # fmt: skip
        for result in tqdm(results, total=len(split.records), desc=f"eval {split.name}", unit="img", disable=not progress):
            record = by_path[result.path]
            entries = to_coco_detections(result, record.image_id, list(split.category_ids))
            predictions += entries
            done.append(record.image_id)
            if writer is not None:
                for entry in entries:  # written as they come: an interrupted run keeps what it predicted
                    writer.write(entry)
    finally:
        if writer is not None:
            writer.close()
        if previous is not None:
            model.set_vocabulary(previous)
    if skipped:
        logger.warning("%d of %d images could not be read and are left out of the metrics", len(skipped),
                       len(by_path) + len(split.missing))  # fmt: skip
    img_ids = done if skipped else None  # the images evaluated, when some could not be read
    if metric == "lvis":
        if skipped:
            gt = dict(gt, images=[i for i in gt["images"] if i["id"] in set(done)],
                      annotations=[a for a in gt["annotations"] if a["image_id"] in set(done)])  # fmt: skip
        metrics: dict[str, Any] = _lvis_metrics(gt, predictions, max_det)
    else:
        metrics = _coco_metrics(gt, predictions, img_ids=img_ids, per_class=True)
    metrics.update(images=len(done), skipped=skipped, detections=len(predictions), metric=metric, max_det=max_det)
    if any("segmentation" in p for p in predictions):
        metrics["segm"] = _segm_metrics(gt, predictions, img_ids=img_ids)
    if group_by:
        groups: dict[str, list[int]] = {}
        for c in split.categories:
            groups.setdefault(f"{group_by}={c.get(group_by)}", []).append(c["id"])
        metrics["groups"] = {
            name: _coco_metrics(gt, predictions, ids, img_ids=img_ids) for name, ids in sorted(groups.items())
        }
    if out_dir is not None:
        atomic_write_text(Path(out_dir) / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    return metrics
