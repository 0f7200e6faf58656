"""Tiny generated datasets (COCO json, YOLO txt, grounding json) of coloured shapes on noisy backgrounds."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import yaml

CLASSES = {"red square": (0, 0, 230), "blue circle": (230, 60, 0), "green square": (0, 200, 0)}


def draw_scene(rng: np.random.Generator, size: tuple[int, int] = (96, 128), max_objects: int = 3):
    h, w = size
    image = rng.integers(90, 140, (h, w, 3), dtype=np.uint8)
    objects = []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        name = list(CLASSES)[int(rng.integers(len(CLASSES)))]
        s = int(rng.integers(14, 30))
        x, y = int(rng.integers(0, w - s)), int(rng.integers(0, h - s))
        if "circle" in name:
            cv2.circle(image, (x + s // 2, y + s // 2), s // 2, CLASSES[name], -1)
        else:
            cv2.rectangle(image, (x, y), (x + s - 1, y + s - 1), CLASSES[name], -1)
        objects.append((name, [float(x), float(y), float(s), float(s)]))
    return image, objects


def make_coco(root: Path, n_train: int = 12, n_val: int = 6, seed: int = 0, texts: bool = True) -> Path:
    """A COCO-json dataset; returns its YAML path. Category ids start at 5 (not 0/1) to catch id mix-ups."""
    rng = np.random.default_rng(seed)
    cats = [{"id": 5 + i, "name": n} for i, n in enumerate(CLASSES)]
    ids = {c["name"]: c["id"] for c in cats}
    for split, n in (("train", n_train), ("val", n_val)):
        (root / split).mkdir(parents=True, exist_ok=True)
        images, anns = [], []
        for i in range(n):
            image, objects = draw_scene(rng)
            name = f"{split}_{i}.jpg"
            cv2.imwrite(str(root / split / name), image)
            images.append({"id": 100 + i, "file_name": name, "height": image.shape[0], "width": image.shape[1]})
            for cname, box in objects:
                anns.append({"id": len(anns) + 1, "image_id": 100 + i, "category_id": ids[cname], "bbox": box,
                             "area": box[2] * box[3], "iscrowd": 0})  # fmt: skip
        (root / f"{split}.json").write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    data = {"train": {"images": "train", "annotations": "train.json"}, "val": {"images": "val", "annotations": "val.json"}}
    if texts:
        data["texts"] = {"red square": ["red square", "red box"], "blue circle": ["blue circle", "blue disc"]}
    (root / "data.yaml").write_text(yaml.safe_dump(data))
    return root / "data.yaml"


def make_yolo(root: Path, n: int = 8, seed: int = 1) -> Path:
    rng = np.random.default_rng(seed)
    names = list(CLASSES)
    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            image, objects = draw_scene(rng)
            h, w = image.shape[:2]
            cv2.imwrite(str(root / "images" / split / f"{i}.png"), image)
            lines = [f"{names.index(c)} {(x + s / 2) / w:.6f} {(y + s / 2) / h:.6f} {s / w:.6f} {s / h:.6f}"
                     for c, (x, y, s, _) in objects]  # fmt: skip
            (root / "labels" / split / f"{i}.txt").write_text("\n".join(lines) + "\n")
    (root / "data.yaml").write_text(yaml.safe_dump({"path": ".", "train": "images/train", "val": "images/val", "names": names}))
    return root / "data.yaml"


def add_grounding(root: Path, data_yaml: Path, n: int = 6, seed: int = 2) -> None:
    """Add a grounding source (caption + tokens_positive spans per box) to a dataset YAML."""
    rng = np.random.default_rng(seed)
    (root / "gold").mkdir(parents=True, exist_ok=True)
    images, anns = [], []
    for i in range(n):
        image, objects = draw_scene(rng)
        cv2.imwrite(str(root / "gold" / f"{i}.jpg"), image)
        caption, spans = "", []
        for cname, _ in objects:
            caption += ("a " if not caption else " and a ")
            spans.append([[len(caption), len(caption) + len(cname)]])
            caption += cname
        images.append({"id": i + 1, "file_name": f"{i}.jpg", "height": image.shape[0], "width": image.shape[1], "caption": caption})
        for (cname, box), span in zip(objects, spans):
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": 1, "bbox": box, "tokens_positive": span,
                         "area": box[2] * box[3], "iscrowd": 0})  # fmt: skip
    (root / "gold.json").write_text(json.dumps({"images": images, "annotations": anns, "categories": [{"id": 1, "name": "object"}]}))
    data = yaml.safe_load(data_yaml.read_text())
    data["grounding"] = [{"images": "gold", "annotations": "gold.json"}]
    data_yaml.write_text(yaml.safe_dump(data))


def make_lvis(root: Path, seed: int = 3) -> Path:
    """A COCO dataset whose json is also LVIS-format (frequencies, negative / not-exhaustive category lists)."""
    yaml_path = make_coco(root, n_train=4, n_val=8, seed=seed, texts=False)
    raw = json.loads((root / "val.json").read_text())
    for cat, freq in zip(raw["categories"], "fcr"):
        cat.update(frequency=freq, synonyms=[cat["name"]])
    for image in raw["images"]:
        image.update(neg_category_ids=[], not_exhaustive_category_ids=[])
    (root / "val.json").write_text(json.dumps(raw))
    return yaml_path
