"""The dataset folder ``ovdet label`` writes: a seeded train/val split, images linked or copied, and every format.

Layout (``DIR`` = ``--out``)::

    DIR/images/{train,val}/NAME        links to the source images (or copies: --copy-images); frames as PNG
    DIR/labels/{train,val}/STEM.txt    YOLO labels                         (--format yolo)
    DIR/data.yaml                      YOLO dataset file: ultralytics and `ovdet train` read it as it is
    DIR/annotations/{train,val}.json   COCO instances, scores included    (--format coco)
    DIR/coco.yaml                      the COCO splits for `ovdet train` / `ovdet eval`
    DIR/labelstudio/tasks.json         Label Studio tasks with predictions (--format labelstudio)
    DIR/labelstudio/config.xml         the labelling config they fit
    DIR/summary.json                   per-class counts and mean scores, splits, skipped inputs
    DIR/contact_sheet.jpg              sample images with their labels drawn

**The split** is exact and reproducible: each image gets ``u = sha256(seed, group)`` in [0, 1) — its group being its
own name, or for a video frame the video, so a video's frames stay together — and the ``round(split * n)`` images
of lowest ``(u, name)`` are ``train``, the rest ``val`` (at least one of each when there are two images or more).
It depends on neither the input order nor the engine, and a resumed run with more images moves only the few near
the boundary. Images are never moved or changed at their source: the dataset links to them (or copies them), and
only files it wrote itself are moved between its splits.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from ..fileio import TEMP_SUFFIX, atomic_write_bytes, atomic_write_text
from .label_formats import LabelRecord, class_summary, coco_dataset, dumps, labelstudio_config, labelstudio_tasks
from .label_formats import yolo_lines

__all__ = ["SPLITS", "FORMATS", "split_key", "likely_split", "assign_splits", "store_image", "write_dataset", "remove_file"]

SPLITS = ("train", "val")
FORMATS = ("coco", "yolo", "labelstudio")


def group_of(record_name: str, frame: int | None) -> str:
    """What a record is split with: a frame goes with its video (``clip_000012.png`` → ``clip``, also past frame
    999999), an image alone."""
    return record_name.rpartition("_")[0] if frame is not None else record_name


def split_key(group: str, seed: int) -> float:
    """``u`` in [0, 1) from ``sha256("seed:group")``: a stable, seeded, uniform draw per group."""
    digest = hashlib.sha256(f"{seed}:{group}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def likely_split(group: str, split: float, seed: int) -> str:
    """The split an image most probably ends in (``u < split``): where pixels written while labelling go first, so
    that :func:`assign_splits` rarely has to move them."""
    return "train" if split_key(group, seed) < split else "val"


def assign_splits(items: Sequence[tuple[str, str]], split: float, seed: int) -> dict[str, str]:
    """``(name, group)`` pairs → name → ``"train"`` / ``"val"`` (see the module docstring).

    Args:
        split: Fraction of images for ``train``, in (0, 1]; 1 puts every image in ``train``.
    """
    order = sorted(items, key=lambda it: (split_key(it[1], seed), it[0]))
    n = len(order)
    n_train = round(split * n)
    if split < 1 and n >= 2:
        n_train = min(max(n_train, 1), n - 1)
    return {name: ("train" if i < n_train else "val") for i, (name, _) in enumerate(order)}


def store_image(out: Path, split: str, name: str, image: np.ndarray | bytes) -> None:
    """Write pixels the dataset keeps itself (a frame, a converted format) as PNG, atomically: a BGR image, or its
    PNG bytes already encoded."""
    if isinstance(image, np.ndarray):
        ok, encoded = cv2.imencode(".png", image)
        if not ok:
            raise OSError(f"OpenCV could not encode {name} as PNG")
        image = encoded.tobytes()
    atomic_write_bytes(out / "images" / split / name, image)


def _write_small(path: Path, text: str) -> None:
    # temp + rename, without fsync: label files are rebuilt from the journal on --resume, so a power cut costs
    # nothing, and an fsync per file would dominate the run
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _update_small(path: Path, text: str) -> None:
    """Write ``path`` only if it is missing or holds other text: a resume reads the label files of the images done
    before (cheap) instead of rewriting them (a create, a rename and a new inode each, millions at scale)."""
    try:
        if path.read_text(encoding="utf-8") == text:
            return
    except (OSError, UnicodeDecodeError):  # missing, or not a label file of ours any more
        pass
    _write_small(path, text)


def remove_file(path: Path) -> None:
    """Delete ``path`` if it is a file or a link (a link's target is never touched); a folder or nothing is left."""
    if path.is_symlink() or path.is_file():
        path.unlink()


def _place_image(out: Path, record: LabelRecord, split: str, copy: bool) -> None:
    """Put the record's image into ``images/<split>/`` (and out of the other split) without touching the source."""
    here = out / "images" / split / record.name
    there = out / "images" / ("val" if split == "train" else "train") / record.name
    if record.stored:  # pixels ovdet wrote: move them if they were written into the other split
        if not here.exists() and there.exists():
            here.parent.mkdir(parents=True, exist_ok=True)  # frames of one video alone: no image made `val` yet
            os.replace(there, here)
        return
    remove_file(there)
    if here.is_symlink() or here.exists():
        return
    here.parent.mkdir(parents=True, exist_ok=True)
    # a link cannot be made by mkstemp: the pid stands in for its random part, so the name has the shape of every
    # other ovdet temporary (.NAME.PART.ovdet.tmp), which errors show as NAME
    tmp = here.with_name(f".{record.name}.{os.getpid()}{TEMP_SUFFIX}")
    remove_file(tmp)
    try:
        if copy:
            shutil.copy2(record.source, tmp)
        else:
            os.symlink(record.source, tmp)
        os.replace(tmp, here)
    except BaseException:  # a full disk, a source gone, Ctrl-C in a long copy: no partial file stays behind
        remove_file(tmp)
        raise


def _data_yaml(layout: str, names: Sequence[str], prompts: Sequence[Sequence[str]], val_split: str) -> str:
    texts = {n: list(p) for n, p in zip(names, prompts) if list(p) != [n]}
    if layout == "yolo":
        data: dict[str, Any] = {"train": "images/train", "val": f"images/{val_split}", "nc": len(names),
                                "names": dict(enumerate(names))}  # fmt: skip
    else:
        data = {s: {"images": f"images/{src}", "annotations": f"annotations/{src}.json"}
                for s, src in (("train", "train"), ("val", val_split))}  # fmt: skip
    if texts:
        data["texts"] = texts  # the ontology's prompts: `ovdet train` embeds each class as they say
    head = "# written by ovdet label; " + ("YOLO layout (ultralytics and `ovdet train` read it)\n" if layout == "yolo"
                                         else "COCO layout (`ovdet train` / `ovdet eval` read it)\n")  # fmt: skip
    return head + yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def write_dataset(
    out: Path,
    records: Sequence[LabelRecord],
    names: Sequence[str],
    prompts: Sequence[Sequence[str]],
    *,
    split: float,
    seed: int,
    copy_images: bool = False,
    formats: Sequence[str] = ("coco", "yolo"),
    labelstudio: dict[str, str] | None = None,
    model_version: str = "ovdet",
) -> tuple[dict[str, Any], dict[str, str]]:
    """Write (or bring up to date) every file of the dataset from its records; returns a summary (image, box and
    split counts, :func:`~ovdet.io.label_formats.class_summary`) and each image's split (name → split).

    Images and YOLO label files are placed per record: a resumed run adds the new ones and moves the few whose split
    changed, and leaves the others as they are (a label file is rewritten only if it is missing or its text is not
    the record's); the COCO, YOLO and Label Studio indexes and the summary are rewritten whole, atomically.
    Image ids (COCO) follow the records' order, which is the journal's, so they stay the same on every resume.

    Args:
        records: Every labelled image, in journal order.
        names, prompts: The output classes and their prompts (prompts other than the name go to ``data.yaml``'s
            ``texts``).
        labelstudio: ``from_name``, ``to_name`` and ``url_prefix`` for the Label Studio tasks.
    """
    splits = assign_splits([(r.name, group_of(r.name, r.frame)) for r in records], split, seed)
    per_split: dict[str, list[tuple[int, LabelRecord]]] = {s: [] for s in SPLITS}
    for image_id, r in enumerate(records, 1):
        s = splits[r.name]
        per_split[s].append((image_id, r))
        _place_image(out, r, s, copy_images)
        if "yolo" in formats:
            stem = Path(r.name).stem + ".txt"
            _update_small(out / "labels" / s / stem, yolo_lines(r))
            remove_file(out / "labels" / ("val" if s == "train" else "train") / stem)
    for s in SPLITS:
        (out / "images" / s).mkdir(parents=True, exist_ok=True)
    val_split = "val" if per_split["val"] else "train"  # no image to hold out (one image, or --split 1): train again
    if "coco" in formats:
        for s in SPLITS:
            atomic_write_text(out / "annotations" / f"{s}.json", dumps(coco_dataset(per_split[s], names)))
        atomic_write_text(out / "coco.yaml", _data_yaml("coco", names, prompts, val_split))
    if "yolo" in formats or "coco" in formats:
        atomic_write_text(out / "data.yaml", _data_yaml("yolo" if "yolo" in formats else "coco", names, prompts,
                                                        val_split))  # fmt: skip
    if "labelstudio" in formats:
        ls = labelstudio or {}
        from_name, to_name = ls.get("from_name", "label"), ls.get("to_name", "image")
        prefix = ls.get("url_prefix") or f"/data/local-files/?d={urllib.parse.quote(out.name)}/"

        def url(r: LabelRecord) -> str:
            return prefix + urllib.parse.quote(f"images/{splits[r.name]}/{r.name}")

        tasks = labelstudio_tasks(records, names, url, from_name=from_name, to_name=to_name,
                                  model_version=model_version)  # fmt: skip
        atomic_write_text(out / "labelstudio" / "tasks.json", dumps(tasks))
        atomic_write_text(out / "labelstudio" / "config.xml",
                          labelstudio_config(names, from_name=from_name, to_name=to_name))  # fmt: skip
    summary = {
        "images": len(records), "train": len(per_split["train"]), "val": len(per_split["val"]),
        "boxes": int(sum(len(r.scores) for r in records)), "classes": class_summary(records, names),
    }  # fmt: skip
    return summary, splits
