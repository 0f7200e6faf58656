"""``ovdet.label``: turn images and videos into a training dataset (COCO, YOLO, Label Studio), safe to re-run.

The run, top to bottom:

1. **Check everything first** — the ontology (:mod:`ovdet.engine.ontology`), the settings, the output folder
   (:mod:`ovdet.engine.label_folder`), the sources (:mod:`ovdet.engine.label_items`), the engine — then load the
   model and set its vocabulary: every prompt of every class, and the negatives, scored in one pass.
2. **Label** the images not labelled yet, in batches, on the local engine (this process) or on Ray Data
   (:mod:`ovdet.engine.label_ray`). Each labelled image is one line appended to ``records.jsonl``, the run's journal
   (:class:`ovdet.io.journal.Journal`); an unreadable image is skipped, listed, and tried again by the next run.
3. **Write the dataset** from the journal (:func:`ovdet.io.dataset_folder.write_dataset`): at the end, and also after
   an error, Ctrl-C or SIGTERM, so the folder is always a valid dataset of the images done.

**Safe to re-run.** A non-empty ``out`` is refused unless it is an earlier run's folder and ``resume`` (the images in
its journal are skipped; every setting that shapes labels must be the same — model weights and vocabulary digest,
classes, thresholds, sizes, split — or the error lists what differs) or ``overwrite`` (the earlier run's files are
removed, and only those). A folder holding anything ovdet did not write is never written into. After SIGKILL the
journal holds every image labelled up to the kill, whole lines only (a torn last line is cut), so ``resume`` labels
each image exactly once.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, OutputError, SourceError
from ..fileio import MARKER, atomic_write_text, write_marker
from ..io.dataset_folder import FORMATS, group_of, likely_split, store_image, write_dataset
from ..io.journal import Journal
from ..io.label_formats import LabelRecord
from .label_folder import (
    FORMAT_VERSION,
    JOURNAL,
    SETTINGS,
    SHEET,
    SUMMARY,
    check_links,
    check_out,
    compare_settings,
    fixed_rows,
    model_digest,
    remove_run,
    remove_stale_temps,
)
from .label_items import LabelItem, LabelSources, find_sources, iter_images
from .ontology import Ontology, make_ontology

__all__ = ["label", "LabelSummary", "LabelOptions", "detect_records"]

logger = logging.getLogger(__name__)



@dataclass(frozen=True)
class LabelOptions:
    """What each batch is detected with (shared by the engines)."""

    class_map: Any
    iou: float
    imgsz: tuple[int, int]
    max_det: int
    agnostic: bool


@dataclass
class LabelSummary:
    """What a run did. ``classes``: per class ``count``, ``images`` and ``mean_score``."""

    out: Path
    images: int
    labelled: int
    train: int
    val: int
    boxes: int
    classes: dict[str, dict[str, Any]]
    skipped: list[str] = field(default_factory=list)


def detect_records(model: Any, batch: list[tuple[LabelItem, np.ndarray]], opts: LabelOptions) -> list[LabelRecord]:
    """Label decoded images: one :class:`LabelRecord` each, in order (the unit both engines produce).

    Args:
        model: A detector (``OVDetector`` or ``OnnxDetector``) whose vocabulary is the prompts ``opts.class_map``
            reads (:meth:`~ovdet.runtime.predictor.Predictor.detect`).
        batch: ``(item, image)`` pairs, each image a decoded BGR ``uint8`` ``(H, W, 3)`` array (as
            :func:`ovdet.images.read_image` gives it); records get its ``(H, W)`` and boxes in its pixels.
        opts: The selection settings (:class:`LabelOptions`).

    Raises:
        ValueError: a class map that does not read the model's vocabulary, or ``iou`` outside [0, 1], ``max_det``
            below 1. VocabularyError: the model has no classes set.
    """
    results = model.detect([im for _, im in batch], iou=opts.iou, imgsz=opts.imgsz, max_det=opts.max_det,
                           agnostic=opts.agnostic, class_map=opts.class_map)  # fmt: skip
    return [LabelRecord.from_detections(it.key, it.name, it.path, it.frame, it.store, r.orig_shape, r.boxes, r.scores,
                                        r.class_ids) for (it, _), r in zip(batch, results)]  # fmt: skip


def _local_records(
    model: Any, found: LabelSources, done: set[str], opts: LabelOptions, batch: int, vid_stride: int
) -> Iterator[tuple[LabelItem, LabelRecord | None, np.ndarray | None, SourceError | None]]:
    pending: list[tuple[LabelItem, np.ndarray]] = []
    for item, image, error in iter_images(found, done=done, vid_stride=vid_stride):
        if error is not None:
            yield item, None, None, error
            continue
        pending.append((item, image))
        if len(pending) == batch:
            yield from ((it, rec, im, None) for (it, im), rec in zip(pending, detect_records(model, pending, opts)))
            pending = []
    if pending:
        yield from ((it, rec, im, None) for (it, im), rec in zip(pending, detect_records(model, pending, opts)))


def _check_labelstudio(ls: dict[str, Any]) -> None:
    """The Label Studio names make a valid labelling config: two distinct tag names, ``to_name`` also the tasks'
    data key, which the config reads as ``$<to_name>`` (a plain identifier: a dot would mean a nested key)."""
    unknown = sorted(set(ls) - {"from_name", "to_name", "url_prefix"})
    if unknown:
        raise ConfigError(f"labelstudio takes from_name, to_name and url_prefix, got {', '.join(unknown)}")
    from_name, to_name = ls["from_name"], ls["to_name"]
    if not isinstance(from_name, str) or not from_name.strip() or not isinstance(to_name, str) \
            or not re.fullmatch(r"\w+", to_name) or from_name == to_name:  # fmt: skip
        raise ConfigError(f"Label Studio tag names must differ, --ls-from-name non-empty and --ls-to-name a word "
                          f"(letters, digits, _), got {from_name!r} and {to_name!r}; e.g. label and image")  # fmt: skip


def label(
    source: str | os.PathLike | Sequence[str | os.PathLike],
    classes: str | os.PathLike | Sequence[str] | dict[str, Any],
    *,
    out: str | os.PathLike,
    negative: str | Sequence[str] | None = None,
    conf: float | str | Sequence[float | str] | dict[str, float] | None = None,
    iou: float = 0.7,
    imgsz: int | tuple[int, int] | None = None,
    max_det: int = 300,
    agnostic: bool = False,
    model: Any = None,
    text_encoder: str | None = None,
    device: str = "cpu",
    batch: int = 8,
    formats: str | Sequence[str] = ("coco", "yolo"),
    split: float = 0.8,
    seed: int = 0,
    copy_images: bool = False,
    vid_stride: int = 1,
    resume: bool = False,
    overwrite: bool = False,
    engine: str = "local",
    actors: int | None = None,
    threads: int | None = None,
    labelstudio: dict[str, str] | None = None,
    samples: int = 16,
    progress: bool = False,
    on_skip: Callable[[str, Exception], None] | None = None,
) -> LabelSummary:
    """Label images and videos with an open-vocabulary detector and write them as a dataset (see the module docstring
    and README, "Labelling").

    Args:
        source: Image files, folders (searched recursively), glob patterns and videos.
        classes: The ontology: ``"forklift, worker=person|worker"``, a YAML or class file, a list, or a mapping
            class → prompt(s) (:func:`~ovdet.engine.ontology.make_ontology`).
        out: The dataset folder: new, empty, or an earlier run's with ``resume`` / ``overwrite``.
        negative: Prompts scored but never written (``"shelf, thermos"``).
        conf: Threshold(s): ``0.3`` (the default), ``"forklift=0.5"``, a list of both, or a mapping.
        iou, imgsz, max_det, agnostic: As in ``predict`` (``agnostic``: NMS across output classes).
        model: A model spec (saved folder, weights name, config; ``None``: the bundled default) or a loaded detector
            (``OVDetector`` or ``OnnxDetector``, whose vocabulary becomes the ontology's prompts; the Ray engine needs
            a spec).
        text_encoder, device: As ``ovdet.load`` takes them (for a spec).
        batch: Images per forward pass.
        formats: Any of ``"coco"``, ``"yolo"``, ``"labelstudio"`` (a list, or ``"coco,yolo"``).
        split, seed: Fraction of images in ``train`` (0 < split ≤ 1) and the split's seed.
        copy_images: Copy images into the dataset instead of linking to them.
        vid_stride: Label every ``vid_stride``-th frame of videos.
        resume, overwrite: Continue an earlier run in ``out``, or replace it.
        engine: ``"local"`` (this process) or ``"ray"`` (Ray Data; ``pip install "ovdet[ray]"``).
        actors, threads: Ray: detector actors (default one per GPU, else 2) and CPU threads per actor; local: torch
            threads (also for a loaded PyTorch detector; a loaded ONNX detector takes them from ``load_onnx``).
        labelstudio: ``from_name``, ``to_name``, ``url_prefix`` of the Label Studio tasks.
        samples: Images on the contact sheet (0: none).
        progress: Show a progress bar (images/s) on stderr.
        on_skip: Called as ``(item, error)`` for each unreadable input (it is skipped, listed in the summary).

    Returns:
        A :class:`LabelSummary`; the dataset is in ``out``.

    Raises:
        VocabularyError: a malformed ontology. SourceError: missing sources, or nothing to label.
        OutputError: ``out`` cannot be used. ConfigError: bad settings, settings other than the resumed run's,
            ``engine="ray"`` without Ray, ``threads`` with a loaded ONNX detector.
    """
    if isinstance(formats, str):  # "coco,yolo", as --format takes it
        formats = [f.strip() for f in formats.split(",") if f.strip()]
    formats = sorted(set(formats), key=FORMATS.index) if all(f in FORMATS for f in formats) else formats
    if not formats or any(f not in FORMATS for f in formats):
        bad = ", ".join(str(f) for f in formats if f not in FORMATS)
        raise ConfigError(f"{f'unknown format {bad}: ' if bad else ''}formats must be some of {', '.join(FORMATS)}"
                          f"{'' if bad else ', got none'} (--format coco,yolo,labelstudio)")  # fmt: skip
    if not 0 < split <= 1:
        raise ConfigError(f"split must be in (0, 1] (the fraction of images for training), got {split}")
    if resume and overwrite:
        raise ConfigError("--resume continues the earlier run, --overwrite replaces it: pass one of them")
    if engine not in ("local", "ray"):
        raise ConfigError(f"engine must be 'local' or 'ray', got {engine!r}")
    if batch < 1 or vid_stride < 1 or max_det < 1 or not 0 <= iou <= 1:
        raise ConfigError("batch, vid_stride and max_det must be >= 1 and iou in [0, 1]")
    ls = {"from_name": "label", "to_name": "image", "url_prefix": None, **(labelstudio or {})}
    _check_labelstudio(ls)
    ontology = make_ontology(classes, negative, conf)
    out = Path(os.path.abspath(os.path.expanduser(os.fspath(out))))
    earlier = check_out(out, resume, overwrite)
    if not copy_images:
        check_links(out)
    known = {str(r["key"]): str(r["name"]) for r in earlier} if resume else {}
    found = find_sources(source, exclude=out, known=known)
    if engine == "ray":
        from .label_ray import check_ray

        check_ray(model)
    # with Ray the driver's model only embeds the vocabulary (sent to the actors) and gives the digest: on the CPU,
    # so a head node without a GPU can drive GPU actors
    detector = _load_detector(model, text_encoder, "cpu" if engine == "ray" else device, threads, ontology)
    opts = LabelOptions(ontology.class_map, iou, detector.inference_size(imgsz), max_det, agnostic)
    name = None if model is None else str(model if isinstance(model, (str, os.PathLike)) else type(model).__name__)
    settings = {
        "format_version": FORMAT_VERSION, "model": name, "model_digest": model_digest(detector),
        "fixed_rows": fixed_rows(detector), **ontology.to_dict(), "iou": iou, "imgsz": list(opts.imgsz),
        "max_det": max_det, "agnostic": agnostic, "vid_stride": vid_stride, "split": split, "seed": seed,
        "copy_images": copy_images, "formats": list(formats), "labelstudio": ls,
    }  # fmt: skip
    if resume and earlier:
        compare_settings(out, settings)
    records, done = [], set()
    for entry in earlier if resume else ():  # journal order; a key journaled twice (a hand edit) counts once
        try:
            record = LabelRecord.from_json(entry)
        except (KeyError, TypeError, ValueError):
            raise OutputError(f"{out / JOURNAL} holds a line that is not a label record ({str(entry)[:80]}); label "
                              "into a new folder, or --overwrite this one") from None  # fmt: skip
        if record.key not in done:
            records.append(record)
            done.add(record.key)
    pool = None
    if engine == "ray":  # the cluster is checked to hold the actors before anything is written
        from .label_ray import connect

        pool = connect(actors, threads, device)
    try:  # the folder is written from here on
        if overwrite and (out / MARKER).exists():
            remove_run(out, earlier)
        out.mkdir(parents=True, exist_ok=True)
        if not (out / MARKER).exists():
            write_marker(out, "label")
        atomic_write_text(out / SETTINGS, json.dumps(settings, indent=2, ensure_ascii=False) + "\n")
        remove_stale_temps(out)  # what a SIGKILL of an earlier run left mid-write
        if pool is not None:
            from .label_ray import ray_records

            produced = ray_records(pool, model, text_encoder, detector, found, done, opts, batch=batch,
                                   vid_stride=vid_stride, threads=threads, device=device)  # fmt: skip
        else:
            produced = _local_records(detector, found, done, opts, batch, vid_stride)
        total = len([i for i in found.images if i.key not in done]) if not found.videos else None
        return _run(out, produced, records, ontology, settings, split, seed, copy_images, formats, ls, samples,
                    progress, on_skip, total)  # fmt: skip
    finally:
        if pool is not None:
            pool.close()  # a local Ray this run started stops with it


def _load_detector(model: Any, text_encoder: str | None, device: str, threads: int | None, ontology: Ontology) -> Any:
    """The detector with the ontology's prompts as its vocabulary. ``threads`` sets torch's CPU threads, which are
    the process's: for a model loaded here and a loaded PyTorch detector alike.

    Raises:
        ConfigError: ``threads`` with a loaded ONNX detector (its ONNX Runtime session fixed them when it loaded).
    """
    spec = model is None or isinstance(model, (str, os.PathLike))
    if threads is not None:
        if not spec and not hasattr(model, "state_dict"):
            raise ConfigError("threads cannot change a loaded ONNX detector's threads (its ONNX Runtime session has "
                              "them): load it with ovdet.load_onnx(path, threads=N) and leave threads out")
        from ..model.device import set_threads

        set_threads(threads)
    if spec:
        from ..io.resolve import resolve_model

        model = resolve_model(model, text_encoder=text_encoder, device=device)
    model.set_classes(ontology.vocabulary)  # every prompt its own entry: scored in one pass, merged per class
    return model


def _run(
    out: Path, produced: Iterator, records: list[LabelRecord], ontology: Ontology, settings: dict[str, Any],
    split: float, seed: int, copy_images: bool, formats: Sequence[str], ls: dict[str, Any], samples: int,
    progress: bool, on_skip: Callable[[str, Exception], None] | None, total: int | None,
) -> LabelSummary:  # fmt: skip
    from tqdm import tqdm

    skipped: list[str] = []
    labelled = 0
    bar = tqdm(total=total, unit="img", disable=not progress, file=sys.stderr, dynamic_ncols=True)
    try:
        with Journal(out / JOURNAL) as journal:
            for item, record, image, error in produced:
                if error is not None:
                    skipped.append(f"{item.path if item.frame is None else item.key}: {error}")
                    (on_skip or (lambda i, e: logger.warning("skipping %s", e)))(item.path, error)
                    bar.update()
                    continue
                if record.stored:  # pixels only this run has: written before the journal line that names them
                    store_image(out, likely_split(group_of(record.name, record.frame), split, seed), record.name, image)
                journal.write(record.to_json())
                records.append(record)
                labelled += 1
                bar.update()
    finally:
        bar.close()
        if hasattr(produced, "close"):
            produced.close()  # stops video readers and Ray's iteration
        summary = _finish(out, records, ontology, settings, split, seed, copy_images, formats, ls, samples, skipped)
    return LabelSummary(out, len(records), labelled, summary["train"], summary["val"], summary["boxes"],
                        summary["classes"], skipped)  # fmt: skip


def _finish(
    out: Path, records: list[LabelRecord], ontology: Ontology, settings: dict[str, Any], split: float, seed: int,
    copy_images: bool, formats: Sequence[str], ls: dict[str, Any], samples: int, skipped: list[str],
) -> dict[str, Any]:  # fmt: skip
    summary, splits = write_dataset(out, records, ontology.names, ontology.prompts, split=split, seed=seed,
                            copy_images=copy_images, formats=formats, labelstudio=ls,
                            model_version=f"ovdet {settings['model_digest'][:12]}")  # fmt: skip
    summary["skipped"] = skipped
    atomic_write_text(out / SUMMARY, json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    if samples and records:
        import cv2

        from ..io.contact_sheet import contact_sheet

        def read(r: LabelRecord) -> np.ndarray | None:
            return cv2.imread(str(out / "images" / splits[r.name] / r.name))

        sheet = contact_sheet(records, ontology.names, read, count=samples)
        if sheet is not None:
            from ..fileio import atomic_write_bytes

            atomic_write_bytes(out / SHEET, cv2.imencode(".jpg", sheet, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes())
    return summary

