"""``ovdet.label``: turn images and videos into a training dataset (COCO, YOLO, Label Studio), safe to re-run.

The run, top to bottom:

1. **Check everything first** — the ontology (:mod:`ovdet.engine.ontology`), the settings, the output folder, the
   sources (:mod:`ovdet.engine.label_items`), the engine — then load the model and set its vocabulary: every prompt of
   every class, and the negatives, scored in one pass.
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

import hashlib
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
from ..fileio import MARKER, atomic_write_text, check_output_dir, has_marker, write_marker
from ..io.dataset_folder import FORMATS, SPLITS, group_of, likely_split, store_image, write_dataset
from ..io.journal import Journal, read_journal
from ..io.label_formats import LabelRecord
from .label_items import LabelItem, LabelSources, find_sources, iter_images
from .ontology import Ontology, make_ontology

__all__ = ["label", "LabelSummary", "LabelOptions", "detect_records"]

logger = logging.getLogger(__name__)

JOURNAL, SETTINGS, SUMMARY, SHEET = "records.jsonl", "label.json", "summary.json", "contact_sheet.jpg"
# every file a run writes besides its images and YOLO label files (named per record): what --overwrite removes
_OURS = (JOURNAL, SETTINGS, SUMMARY, SHEET, "data.yaml", "coco.yaml", *(f"annotations/{s}.json" for s in SPLITS),
         "labelstudio/tasks.json", "labelstudio/config.xml")  # fmt: skip
_NOT_COMPARED = ("format_version", "model")  # the model's name may change (a path moved); its digest may not


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
    """Label decoded images: one :class:`LabelRecord` each (the unit both engines produce)."""
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


def model_digest(model: Any) -> str:
    """sha256 of what decides the labels: the weights (or the ONNX file) and the vocabulary's embeddings."""
    h = hashlib.sha256()
    if hasattr(model, "state_dict"):
        for key, value in sorted(model.state_dict().items()):
            h.update(key.encode())
            h.update(value.detach().float().cpu().contiguous().numpy().tobytes())
    else:
        h.update(Path(model.path).read_bytes())
    h.update(np.ascontiguousarray(model.vocabulary.embeddings, np.float32).tobytes())
    return h.hexdigest()


def _check_out(out: Path, resume: bool, overwrite: bool) -> list[dict[str, Any]]:
    """Check the output folder before anything loads; returns the earlier run's journal records (for ``resume`` and
    ``overwrite``)."""
    # a file, a folder of the user's, or a place that cannot be written (below a file, read-only): refused here,
    # before the model loads, not by a traceback when the folder is made
    check_output_dir(out, what="--out", owned=has_marker("label"), fix="label into a new subfolder of it (ovdet "
                     "label never writes into, or deletes from, a folder of yours)")  # fmt: skip
    if not out.is_dir() or not any(out.iterdir()):
        return []
    try:
        records = read_journal(out / JOURNAL, skip_damaged=overwrite)  # starting over needs only the names it can
    except ValueError as e:
        raise OutputError(f"{e}; label into a new folder, or --overwrite this one") from None
    if not resume and not overwrite:
        raise OutputError(f"--out {out} holds an earlier ovdet label run ({len(records)} images labelled); pass "
                          "--resume to label only what is new, or --overwrite to start over")  # fmt: skip
    return records


def _check_links(out: Path) -> None:
    """The dataset links to the images: check that ``out``'s file system can hold symbolic links (FAT and exFAT
    drives, some network shares and Windows without developer mode cannot), before any work.

    Raises:
        OutputError: naming ``--copy-images``, the fix.
    """
    folder = out
    while not folder.is_dir():
        folder = folder.parent
    probe = folder / f".ovdet-link-probe.{os.getpid()}"
    try:
        os.symlink(os.path.abspath(__file__), probe)
    except OSError as e:
        raise OutputError(f"cannot link images into {out}: {folder} does not take symbolic links ({e.strerror or e});"
                          " pass --copy-images (copy_images=True) to copy them into the dataset") from None  # fmt: skip
    probe.unlink()


def _remove_run(out: Path, records: list[dict[str, Any]]) -> None:
    """Delete what an earlier run wrote in ``out``: its files, by name, then the folders they leave empty. A file
    of the user's there (in ``annotations/`` or ``labels/`` too) is kept, and so is the folder holding it."""

    def remove(path: Path) -> None:
        if path.is_symlink() or path.is_file():
            path.unlink()

    for record in records:
        name = str(record.get("name") or "")
        if name and Path(name).name == name:  # a journal line naming a path elsewhere is not followed
            for split in SPLITS:
                remove(out / "images" / split / name)
                remove(out / "labels" / split / (Path(name).stem + ".txt"))
    for name in _OURS:
        remove(out / name)
    for folder in (*(out / k / s for k in ("images", "labels") for s in SPLITS), out / "images", out / "labels",
                   out / "annotations", out / "labelstudio"):  # fmt: skip
        if folder.is_dir() and not folder.is_symlink() and not any(folder.iterdir()):
            folder.rmdir()


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


def _compare_settings(out: Path, settings: dict[str, Any]) -> None:
    try:
        old = json.loads((out / SETTINGS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # killed before the settings were written: nothing was labelled under other settings
    differ = [f"{k} ({json.dumps(old.get(k))} → {json.dumps(v)})" if k != "model_digest" else
              "model weights or vocabulary (another digest)" for k, v in settings.items()
              if k not in _NOT_COMPARED and old.get(k) != v]  # fmt: skip
    if differ:
        raise ConfigError(f"--resume: {out} was labelled with other settings: {'; '.join(differ)}. Resume with the "
                          "same settings, or pass --overwrite to label everything again")  # fmt: skip


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
            threads.
        labelstudio: ``from_name``, ``to_name``, ``url_prefix`` of the Label Studio tasks.
        samples: Images on the contact sheet (0: none).
        progress: Show a progress bar (images/s) on stderr.
        on_skip: Called as ``(item, error)`` for each unreadable input (it is skipped, listed in the summary).

    Returns:
        A :class:`LabelSummary`; the dataset is in ``out``.

    Raises:
        VocabularyError: a malformed ontology. SourceError: missing sources, or nothing to label.
        OutputError: ``out`` cannot be used. ConfigError: bad settings, settings other than the resumed run's,
            ``engine="ray"`` without Ray.
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
    earlier = _check_out(out, resume, overwrite)
    if not copy_images:
        _check_links(out)
    known = {str(r["key"]): str(r["name"]) for r in earlier} if resume else {}
    found = find_sources(source, exclude=out, known=known)
    if engine == "ray":
        from .label_ray import check_ray

        check_ray(model)
    # with Ray the driver's model only embeds the vocabulary (sent to the actors) and gives the digest: on the CPU,
    # so a head node without a GPU can drive GPU actors
    detector = _load_detector(model, text_encoder, "cpu" if engine == "ray" else device, threads, ontology)
    opts = LabelOptions(ontology.class_map, iou, detector.inference_size(imgsz), max_det, agnostic)
    settings = {
        "format_version": 1, "model": None if model is None else str(model if isinstance(model, (str, os.PathLike))
                                                                         else type(model).__name__),
        "model_digest": model_digest(detector), **ontology.to_dict(), "iou": iou, "imgsz": list(opts.imgsz),
        "max_det": max_det, "agnostic": agnostic, "vid_stride": vid_stride, "split": split, "seed": seed,
        "copy_images": copy_images, "formats": list(formats), "labelstudio": ls,
    }  # fmt: skip
    if resume and earlier:
        _compare_settings(out, settings)
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
            _remove_run(out, earlier)
        out.mkdir(parents=True, exist_ok=True)
        if not (out / MARKER).exists():
            write_marker(out, "label")
        atomic_write_text(out / SETTINGS, json.dumps(settings, indent=2, ensure_ascii=False) + "\n")
        for stale in out.rglob(".*.tmp"):  # temporaries of ours that a SIGKILL left (nothing else is named so)
            if stale.is_file() or stale.is_symlink():
                stale.unlink()
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
    if model is None or isinstance(model, (str, os.PathLike)):
        from ..io.resolve import resolve_model
        from ..model.device import set_threads

        if threads is not None:
            set_threads(threads)
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

