"""The folder ``ovdet label`` writes into: checked before any work, resumed, or cleared of an earlier run's files.

- :func:`check_out`: ``--out`` is new, empty, or an earlier run's folder (with ``resume`` or ``overwrite``); a folder
  holding anything ovdet did not write is refused before the model loads.
- :func:`check_links`: its file system takes the symbolic links the dataset is made of (else ``--copy-images``).
- :func:`compare_settings`: a resumed run labels with the settings recorded in ``label.json``, or stops.
- :func:`remove_run`: ``--overwrite`` deletes the earlier run's files by name, and only those.
- :func:`remove_stale_temps`: the temporary files a killed run left are deleted: ovdet's own temporary names only
  (:data:`ovdet.fileio.TEMP_SUFFIX`), in the folders a run writes, so a file of the user's there is never one.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, OutputError
from ..fileio import TEMP_SUFFIX, check_output_dir, has_marker
from ..io.dataset_folder import SPLITS, remove_file
from ..io.journal import read_journal
from ..prompts import is_visual, prompt_to_json

__all__ = ["JOURNAL", "SETTINGS", "SUMMARY", "SHEET", "check_out", "check_links", "compare_settings", "fixed_rows",
           "model_digest", "remove_run", "remove_stale_temps"]

JOURNAL, SETTINGS, SUMMARY, SHEET = "records.jsonl", "label.json", "summary.json", "contact_sheet.jpg"
# every file a run writes besides its images and YOLO label files (named per record): what --overwrite removes
_OURS = (JOURNAL, SETTINGS, SUMMARY, SHEET, "data.yaml", "coco.yaml", *(f"annotations/{s}.json" for s in SPLITS),
         "labelstudio/tasks.json", "labelstudio/config.xml")  # fmt: skip
FORMAT_VERSION = 2  # of label.json; 2: the model digest leaves out embeddings (compared within ROW_ATOL instead)
_NOT_COMPARED = ("format_version", "model")  # the model's name may change (a path moved); its digest may not
# the rows are unit vectors: embedded again, an element moves by float rounding (~1e-7, ~1e-6 through a network
# on another CPU); a changed example box or another tuning moves it by orders of magnitude more
ROW_ATOL = 1e-4


def _row_source(model: Any, name: str, prompts: tuple[Any, ...]) -> str:
    """Where a class's embedding comes from: ``"text"`` (its prompts through the text encoder: computed again, it
    may differ in its last bits), ``"visual"`` (example boxes) or ``"tuned"`` (prompt tuning's table)."""
    if any(map(is_visual, prompts)):
        return "visual"
    tuned = getattr(model, "tuned", None)
    return "tuned" if tuned is not None and tuned.get(name) is not None else "text"


def model_digest(model: Any) -> str:
    """sha256 of what decides the labels and compares exactly: the weights (or the ONNX file) but not the
    vocabulary's embeddings, the text encoder's identity (its key: model, config and weights digest), and each
    class's name, prompts (texts; visual prompts by their record: pixels' sha1, boxes, size) and row source.

    The embeddings are left out because encoded again (the cache cleared, another machine, the prompts in another
    batch) they may differ in their last bits: text rows follow from the prompts and the encoder hashed here; the
    others (visual, tuned) are compared within a tolerance (:func:`fixed_rows`, :data:`ROW_ATOL`)."""
    h = hashlib.sha256()
    if hasattr(model, "state_dict"):
        for key, value in sorted(model.state_dict().items()):
            if key == "class_embeddings":  # the vocabulary: by its prompts below
                continue
            h.update(key.encode())
            h.update(value.detach().float().cpu().contiguous().numpy().tobytes())
        encoder = None if model.text_encoder is None else model.text_encoder.key
    else:  # an ONNX export: its file (a folded vocabulary included), and the text encoder it was exported with
        h.update(Path(model.path).read_bytes())
        encoder = (getattr(model, "info", {}).get("text_encoder") or {}).get("key")
    vocab = model.vocabulary

    def identity(prompt: Any) -> Any:  # a visual prompt's pixels and boxes, not where its image file lies
        return {k: v for k, v in prompt_to_json(prompt).items() if k != "image"} if is_visual(prompt) else prompt

    classes = [[n, _row_source(model, n, p), [identity(q) for q in p], bool(f)]
               for n, p, f in zip(vocab.names, vocab.prompts, vocab.projected)]  # fmt: skip
    h.update(json.dumps({"text_encoder": encoder, "classes": classes}, sort_keys=True).encode())
    return h.hexdigest()


def fixed_rows(model: Any) -> dict[str, list[float]]:
    """The embeddings that cannot be computed again from text (classes given by example, tuned names): name → row,
    rounded to 6 decimals (far below :data:`ROW_ATOL`), recorded in ``label.json`` and compared on ``--resume``."""
    vocab = model.vocabulary
    return {n: [round(float(x), 6) for x in row] for n, p, row in zip(vocab.names, vocab.prompts, vocab.embeddings)
            if _row_source(model, n, p) != "text"}  # fmt: skip


def check_out(out: Path, resume: bool, overwrite: bool) -> list[dict[str, Any]]:
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


def check_links(out: Path) -> None:
    """The dataset links to the images: check that ``out``'s file system can hold symbolic links (FAT and exFAT
    drives, some network shares and Windows without developer mode cannot), before any work.

    Raises:
        OutputError: naming ``--copy-images``, the fix.
    """
    folder = out
    while not folder.is_dir():
        folder = folder.parent
    probe = folder / f".ovdet-link-probe.{os.getpid()}{TEMP_SUFFIX}"
    try:
        os.symlink(os.path.abspath(__file__), probe)
    except OSError as e:
        raise OutputError(f"cannot link images into {out}: {folder} does not take symbolic links ({e.strerror or e});"
                          " pass --copy-images (copy_images=True) to copy them into the dataset") from None  # fmt: skip
    probe.unlink()


def remove_run(out: Path, records: list[dict[str, Any]]) -> None:
    """Delete what an earlier run wrote in ``out``: its files, by name, then the folders they leave empty. A file
    of the user's there (in ``annotations/`` or ``labels/`` too) is kept, and so is the folder holding it."""
    for record in records:
        name = str(record.get("name") or "")
        if name and Path(name).name == name:  # a journal line naming a path elsewhere is not followed
            for split in SPLITS:
                remove_file(out / "images" / split / name)
                remove_file(out / "labels" / split / (Path(name).stem + ".txt"))
    for name in _OURS:
        remove_file(out / name)
    # the folders a run writes into, then their parents, once emptied (never `out` itself)
    for folder in (*_run_folders(out)[1:], out / "images", out / "labels"):
        if folder.is_dir() and not folder.is_symlink() and not any(folder.iterdir()):
            folder.rmdir()


def _run_folders(out: Path) -> tuple[Path, ...]:
    """Every folder a run writes files into (its index files, images and label files)."""
    return (out, out / "annotations", out / "labelstudio", *(out / k / s for k in ("images", "labels") for s in SPLITS))


def remove_stale_temps(out: Path) -> None:
    """Delete the temporary files an earlier run left in ``out`` when it was killed mid-write (SIGKILL, a power cut):
    names ``.*`` + :data:`~ovdet.fileio.TEMP_SUFFIX`, which only ovdet's writers make (:func:`ovdet.fileio.
    atomic_write_bytes`, the dataset's label files and image links), in the folders a run writes; nothing else."""
    for folder in _run_folders(out):
        if folder.is_dir() and not folder.is_symlink():
            for stale in folder.glob(f".*{TEMP_SUFFIX}"):
                remove_file(stale)


def _rows_apart(old: Any, new: dict[str, list[float]]) -> list[str]:
    """The classes whose recorded embedding (:func:`fixed_rows`) is not ``new``'s within :data:`ROW_ATOL`, or is
    missing on one side."""
    old = old if isinstance(old, dict) else {}
    return sorted(n for n in set(old) | set(new) if n not in old or n not in new or len(old[n]) != len(new[n])
                  or np.abs(np.subtract(old[n], new[n])).max(initial=0) > ROW_ATOL)  # fmt: skip


def compare_settings(out: Path, settings: dict[str, Any]) -> None:
    """Check that ``settings`` are those ``out`` was labelled with (its ``label.json``), for ``--resume``.

    Raises:
        ConfigError: listing every setting that differs.
    """
    try:
        old = json.loads((out / SETTINGS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # killed before the settings were written: nothing was labelled under other settings
    if old.get("format_version") != settings["format_version"]:
        raise ConfigError(f"--resume: {out} was labelled by an ovdet whose label.json is format "
                          f"{old.get('format_version')} (this one writes {settings['format_version']}), so its "
                          "settings cannot be compared; pass --overwrite to label everything again, or label into "
                          "a new folder")  # fmt: skip
    differ = [f"{k} ({json.dumps(old.get(k))} → {json.dumps(v)})" for k, v in settings.items()
              if k not in (*_NOT_COMPARED, "model_digest", "fixed_rows") and old.get(k) != v]  # fmt: skip
    if old.get("model_digest") != settings["model_digest"]:
        differ.append("the model: its weights, text encoder or class prompts (another model digest)")
    moved = _rows_apart(old.get("fixed_rows"), settings["fixed_rows"])
    if moved:
        differ.append(f"the embeddings of {', '.join(moved)} (given by example or tuned: more than {ROW_ATOL:g} "
                      "apart)")  # fmt: skip
    if differ:
        raise ConfigError(f"--resume: {out} was labelled with other settings: {'; '.join(differ)}. Resume with the "
                          "same settings, or pass --overwrite to label everything again")  # fmt: skip
