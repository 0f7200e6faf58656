"""Datasets described by a YAML file: COCO-json or YOLO-txt splits, optional prompts, optional grounding sources.

A dataset YAML (paths relative to the YAML file)::

    # COCO-json splits
    train: {images: train/images, annotations: train/annotations.json}
    val: {images: val/images, annotations: val/annotations.json}
    texts: {red circle: [red circle, red disc]}     # optional: class name -> prompts (synonyms)
    grounding:                                      # optional extra training sources (GLIP/MDETR-style json)
      - {images: gold/images, annotations: gold/annotations.json}

    # or YOLO-txt splits (labels found by replacing /images/ with /labels/, as ultralytics does)
    path: .
    train: images/train
    val: images/val
    names: {0: person, 1: bus}

Annotations are checked on load. Missing or empty image files, boxes reaching outside the image (clipped), boxes of
zero or negative size, unknown category ids and duplicate ids are skipped and counted in one warning per split, or
raise :class:`~ovdet.errors.DatasetError` under ``strict=True``.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..classes import class_key
from ..errors import DatasetError
from ..images import IMAGE_SUFFIXES

__all__ = ["ImageRecord", "SplitData", "DatasetConfig", "load_dataset_config", "load_split", "load_grounding"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImageRecord:
    """One image and its boxes.

    Attributes:
        path: Image file.
        image_id: The dataset's own id (COCO ``image_id``; the index for YOLO data).
        size: ``(h, w)`` as annotated (0 when unknown until the image is decoded).
        boxes: ``(N, 4)`` float32 xyxy pixels, or normalised ``cx, cy, w, h`` for YOLO data (see ``normalized``).
        labels: ``(N,)`` int64 indices into the split's ``names`` (detection) or into ``phrases`` (grounding).
        phrases: For grounding images, the distinct phrases that name the boxes; ``None`` for detection images.
        normalized: Boxes are YOLO-normalised and become pixels once the image size is known.
    """

    path: str
    image_id: int
    size: tuple[int, int]
    boxes: np.ndarray
    labels: np.ndarray
    phrases: tuple[str, ...] | None = None
    normalized: bool = False


@dataclass
class SplitData:
    """A split: its records and its class names (in label order) with the dataset's category ids."""

    name: str
    records: list[ImageRecord]
    names: tuple[str, ...]
    category_ids: tuple[int, ...]
    annotations: Path | None = None  # the COCO json the metrics are computed against, when there is one
    categories: list[dict[str, Any]] = field(default_factory=list)  # raw category entries (extra fields kept)
    missing: list[str] = field(default_factory=list)  # image files listed but missing or empty (skipped, reported)


@dataclass(frozen=True)
class DatasetConfig:
    """A parsed dataset YAML. ``splits`` maps split name → ``{"images": Path, "annotations": Path | None}``."""

    path: Path
    format: str  # "coco" or "yolo"
    splits: dict[str, dict[str, Path | None]]
    names: tuple[str, ...] | None  # YOLO: from the YAML; COCO: from each split's json
    texts: dict[str, tuple[str, ...]]
    grounding: tuple[dict[str, Path], ...]


_RESERVED_KEYS = frozenset({"path", "names", "texts", "grounding", "nc", "download"})  # every other key is a split


class _Issues:
    """Counts skipped items per kind; reports them once (or raises under strict)."""

    def __init__(self, where: str, strict: bool):
        self.where, self.strict, self.counts, self.clipped = where, strict, Counter(), 0
        self.missing: list[str] = []  # image files, for evaluation to list as skipped

    def add(self, kind: str, detail: str) -> None:
        if self.strict:
            raise DatasetError(f"{self.where}: {kind} ({detail}); fix the annotations or load without strict=True")
        self.counts[kind] += 1

    def report(self) -> None:
        parts = []
        if self.counts:
            parts.append("skipped " + ", ".join(f"{n} × {kind}" for kind, n in self.counts.most_common()))
        if self.clipped:
            parts.append(f"clipped {self.clipped} boxes to the image")
        if parts:
            logger.warning("%s: %s", self.where, "; ".join(parts))


def _resolve(base: Path, value: Any, what: str) -> Path:
    if not isinstance(value, (str, os.PathLike)):
        raise DatasetError(f"{what} must be a path, got {value!r}")
    return (base / value).resolve() if not Path(value).is_absolute() else Path(value)


def load_dataset_config(path: str | os.PathLike) -> DatasetConfig:
    """Parse and check a dataset YAML (see the module docstring).

    Raises:
        DatasetError: missing file, unknown layout, missing folders or annotation files.
    """
    path = Path(path)
    if not path.is_file():
        what = "is a folder; give the dataset's YAML file in it" if path.is_dir() else "does not exist"
        raise DatasetError(f"dataset file {path} {what}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise DatasetError(f"cannot read dataset file {path} ({type(e).__name__}); it must be a YAML text file") from e
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: expected a mapping with train/val splits")
    base = path.parent
    split_keys = [k for k in data if k not in _RESERVED_KEYS]
    if not split_keys:
        raise DatasetError(f"{path}: no splits; give at least 'train' (and usually 'val')")
    is_coco = all(isinstance(data[k], dict) for k in split_keys)
    is_yolo = all(isinstance(data[k], str) for k in split_keys)
    splits: dict[str, dict[str, Path | None]] = {}
    names = None
    if is_coco:
        for k in split_keys:
            entry = data[k]
            unknown = set(entry) - {"images", "annotations"}
            if unknown or "images" not in entry or "annotations" not in entry:
                raise DatasetError(f"{path}: split '{k}' needs exactly 'images' and 'annotations' (got {sorted(entry)})")
            splits[k] = {"images": _resolve(base, entry["images"], f"{k}.images"),
                         "annotations": _resolve(base, entry["annotations"], f"{k}.annotations")}  # fmt: skip
    elif is_yolo:
        root = _resolve(base, data.get("path", "."), "path")
        raw = data.get("names")
        if isinstance(raw, dict):
            names = tuple(str(raw[i]) for i in sorted(raw))
        elif isinstance(raw, list):
            names = tuple(str(n) for n in raw)
        else:
            raise DatasetError(f"{path}: YOLO-format datasets need 'names' (a list or a dict index -> name)")
        for k in split_keys:
            splits[k] = {"images": _resolve(root, data[k], k), "annotations": None}
    else:
        raise DatasetError(
            f"{path}: splits must all be COCO ({{images: DIR, annotations: FILE.json}}) or all YOLO (a folder path)"
        )
    for k, s in splits.items():
        if not s["images"].is_dir():
            raise DatasetError(f"{path}: images folder of split '{k}' does not exist: {s['images']}")
        if s["annotations"] is not None and not s["annotations"].is_file():
            raise DatasetError(f"{path}: annotations of split '{k}' do not exist: {s['annotations']}")
    texts_raw = data.get("texts") or {}
    if not isinstance(texts_raw, dict):
        raise DatasetError(f"{path}: 'texts' must map class names to lists of prompts")
    texts = {}
    for name, prompts in texts_raw.items():
        prompts = [prompts] if isinstance(prompts, str) else prompts
        if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) and p.strip() for p in prompts):
            raise DatasetError(f"{path}: texts['{name}'] must be a non-empty list of prompt strings")
        texts[str(name)] = tuple(p.strip() for p in prompts)
    grounding = []
    for i, g in enumerate(data.get("grounding") or []):
        if not isinstance(g, dict) or set(g) != {"images", "annotations"}:
            raise DatasetError(f"{path}: grounding[{i}] needs exactly 'images' and 'annotations'")
        entry = {"images": _resolve(base, g["images"], "grounding.images"),
                 "annotations": _resolve(base, g["annotations"], "grounding.annotations")}  # fmt: skip
        if not entry["images"].is_dir() or not entry["annotations"].is_file():
            raise DatasetError(f"{path}: grounding[{i}] images folder or annotations file does not exist")
        grounding.append(entry)
    return DatasetConfig(path, "coco" if is_coco else "yolo", splits, names, texts, tuple(grounding))


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise DatasetError(f"cannot read annotations {path}: {e}") from e
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise DatasetError(f"{path} is not COCO-format json (it needs 'images', 'annotations', 'categories')")
    return data


def _image_entries(data: dict, images_dir: Path, issues: _Issues) -> dict[int, tuple[str, tuple[int, int], dict]]:
    entries = {}
    for img in data["images"]:
        iid = img.get("id")
        if not isinstance(iid, int) or isinstance(iid, bool):
            issues.add("image ids that are not integers", repr(iid))
            continue
        if iid in entries:
            issues.add("duplicate image ids", str(iid))
            continue
        file = images_dir / str(img.get("file_name", ""))
        if not file.is_file() or file.stat().st_size == 0:
            issues.add("missing or empty image files", str(file))
            issues.missing.append(str(file))
            continue
        entries[iid] = (str(file), (int(img.get("height", 0)), int(img.get("width", 0))), img)
    return entries


def _box(ann: dict, size: tuple[int, int], issues: _Issues) -> np.ndarray | None:
    bbox = ann.get("bbox")
    if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
        issues.add("annotations without a valid bbox", str(ann.get("id")))
        return None
    x, y, w, h = (float(v) for v in bbox)
    if not (w > 0 and h > 0) or not np.isfinite([x, y, w, h]).all():
        issues.add("boxes of zero or negative size", str(ann.get("id")))
        return None
    box = np.array([x, y, x + w, y + h], np.float32)
    height, width = size
    if width and height:
        clipped = np.clip(box, 0, [width, height, width, height])
        if (clipped[2] - clipped[0]) < 1 or (clipped[3] - clipped[1]) < 1:
            issues.add("boxes outside the image", str(ann.get("id")))
            return None
        if not np.array_equal(clipped, box):
            issues.clipped += 1
        box = clipped
    return box


def load_split(config: DatasetConfig, split: str, *, strict: bool = False) -> SplitData:
    """Load one split's records.

    Raises:
        DatasetError: an unknown split, unreadable annotations, or (under ``strict``) any invalid annotation.
    """
    if split not in config.splits:
        raise DatasetError(f"{config.path} has no split '{split}'; it has {', '.join(config.splits)}")
    spec = config.splits[split]
    issues = _Issues(f"{config.path.name} [{split}]", strict)
    if config.format == "yolo":
        data = _load_yolo(spec["images"], config.names or (), issues, split)
    else:
        data = _load_coco(spec["images"], spec["annotations"], issues, split)
    issues.report()
    _check_unique_names(data.names, data.annotations or f"{config.path} names")
    if not data.records:
        raise DatasetError(f"{config.path} split '{split}' has no usable images")
    data.missing = list(issues.missing)
    return data


def _check_unique_names(names: tuple[str, ...], where: object) -> None:
    """Class names are what an open-vocabulary model tells classes apart by: two categories named alike (ignoring
    case and spacing, :func:`~ovdet.classes.class_key`) would be one text embedding, an object of one a negative of
    the other while training, and a class index that no longer matches its category id when evaluating."""
    first: dict[str, str] = {}
    for name in names:
        if class_key(name) in first:
            other = first[class_key(name)]
            same = f"{name!r} twice" if other == name else f"{other!r} and {name!r}"
            raise DatasetError(
                f"{where}: two categories are one class name ({same}); an open-vocabulary detector tells classes "
                "apart by name, so rename one or merge them into one category"
            )
        first[class_key(name)] = name


def _load_coco(images_dir: Path, ann_path: Path, issues: _Issues, split: str) -> SplitData:
    data = _read_json(ann_path)
    categories = sorted(data.get("categories") or [], key=lambda c: c.get("id", 0))
    cat_index, seen = {}, set()
    for c in categories:
        if c.get("id") in cat_index or not str(c.get("name", "")).strip():
            issues.add("duplicate or unnamed categories", str(c))
            continue
        cat_index[c["id"]] = len(cat_index)
        seen.add(c["id"])
    kept_categories = [c for c in categories if c.get("id") in cat_index]
    names = tuple(str(c["name"]).strip() for c in kept_categories)
    if not names:
        raise DatasetError(f"{ann_path} lists no categories")
    entries = _image_entries(data, images_dir, issues)
    per_image: dict[int, list] = {iid: [] for iid in entries}
    ann_ids = set()
    for ann in data.get("annotations") or []:
        if ann.get("id") in ann_ids:
            issues.add("duplicate annotation ids", str(ann.get("id")))
            continue
        ann_ids.add(ann.get("id"))
        if ann.get("image_id") not in entries:
            issues.add("annotations of unknown or skipped images", str(ann.get("image_id")))
            continue
        if ann.get("category_id") not in cat_index:
            issues.add("unknown category ids", str(ann.get("category_id")))
            continue
        if ann.get("iscrowd", 0):
            continue
        box = _box(ann, entries[ann["image_id"]][1], issues)
        if box is not None:
            per_image[ann["image_id"]].append((box, cat_index[ann["category_id"]]))
    records = []
    for iid, (path, size, _) in entries.items():
        items = per_image[iid]
        boxes = np.array([b for b, _ in items], np.float32).reshape(-1, 4)
        labels = np.array([c for _, c in items], np.int64)
        records.append(ImageRecord(path, int(iid), size, boxes, labels))
    return SplitData(split, records, names, tuple(c["id"] for c in kept_categories), ann_path, kept_categories)


def _label_path(image: Path) -> Path:
    parts = list(image.parts)
    idx = len(parts) - 1 - parts[::-1].index("images") if "images" in parts else None
    if idx is None:
        return image.with_suffix(".txt")
    parts[idx] = "labels"
    return Path(*parts).with_suffix(".txt")


def _load_yolo(images_dir: Path, names: tuple[str, ...], issues: _Issues, split: str) -> SplitData:
    files = sorted(p for p in images_dir.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    records = []
    for index, file in enumerate(files):
        if file.stat().st_size == 0:
            issues.add("missing or empty image files", str(file))
            issues.missing.append(str(file))
            continue
        label_file = _label_path(file)
        rows = []
        if label_file.is_file():
            for line_no, line in enumerate(label_file.read_text().splitlines(), 1):
                parts = line.split()
                if not parts:
                    continue
                try:
                    cls, cx, cy, w, h = int(parts[0]), *map(float, parts[1:5])
                except (ValueError, TypeError):
                    issues.add("malformed label lines", f"{label_file}:{line_no}")
                    continue
                if not 0 <= cls < len(names):
                    issues.add("unknown category ids", f"{label_file}:{line_no}")
                    continue
                if not (w > 0 and h > 0):
                    issues.add("boxes of zero or negative size", f"{label_file}:{line_no}")
                    continue
                x1, y1, x2, y2 = np.clip([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 0, 1)
                if x2 - x1 <= 0 or y2 - y1 <= 0:
                    issues.add("boxes outside the image", f"{label_file}:{line_no}")
                    continue
                rows.append(([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], cls))
        boxes = np.array([r[0] for r in rows], np.float32).reshape(-1, 4)
        labels = np.array([r[1] for r in rows], np.int64)
        records.append(ImageRecord(str(file), index, (0, 0), boxes, labels, normalized=True))
    return SplitData(split, records, names, tuple(range(len(names))), None, [{"id": i, "name": n} for i, n in enumerate(names)])


def load_grounding(source: dict[str, Path], *, strict: bool = False) -> list[ImageRecord]:
    """Grounding records: each image's caption phrases (``tokens_positive`` spans) name its boxes.

    Raises:
        DatasetError: unreadable json, or (under ``strict``) any invalid annotation.
    """
    issues = _Issues(f"grounding {source['annotations'].name}", strict)
    data = _read_json(source["annotations"])
    entries = _image_entries(data, source["images"], issues)
    per_image: dict[int, list] = {iid: [] for iid in entries}
    for ann in data.get("annotations") or []:
        if ann.get("image_id") not in entries:
            issues.add("annotations of unknown or skipped images", str(ann.get("image_id")))
            continue
        caption = entries[ann["image_id"]][2].get("caption")
        spans = ann.get("tokens_positive")
        if not isinstance(caption, str) or not spans:
            issues.add("boxes without a caption span", str(ann.get("id")))
            continue
        try:
            phrase = " ".join(caption[int(s):int(e)] for s, e in spans).strip()
        except (TypeError, ValueError):
            phrase = ""
        if not phrase:
            issues.add("boxes with empty or malformed caption spans", str(ann.get("id")))
            continue
        box = _box(ann, entries[ann["image_id"]][1], issues)
        if box is not None:
            per_image[ann["image_id"]].append((box, phrase))
    records = []
    for iid, (path, size, _) in entries.items():
        items = per_image[iid]
        if not items:
            continue
        phrases = tuple(dict.fromkeys(p for _, p in items))
        index = {p: i for i, p in enumerate(phrases)}
        boxes = np.array([b for b, _ in items], np.float32).reshape(-1, 4)
        labels = np.array([index[p] for _, p in items], np.int64)
        records.append(ImageRecord(path, int(iid), size, boxes, labels, phrases=phrases))
    issues.report()
    return records
