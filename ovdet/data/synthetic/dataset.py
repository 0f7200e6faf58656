"""Write a synthetic detection dataset: COCO json with captions and ``tokens_positive``, plus ``data.yaml``.

Layout (paths in ``data.yaml`` are relative to it)::

    out/
      data.yaml        train/val/test: {images, annotations}; texts: category name -> prompts (all pairs)
      world.json       colours, shapes, synonyms, held-out pairs
      train/images/000000.jpg ...   train/annotations.json   seen pairs only
      val/images/...                val/annotations.json     seen pairs only
      test/images/...               test/annotations.json    all pairs, held-out ones included

Every split's ``categories`` carry the same ids; train and val list only the seen pairs (so a trainer that builds its
vocabulary from them never even sees a held-out name), test lists all pairs, each with ``"held_out": true/false``.
Image ``i`` of split ``s`` is rendered from the seed ``[seed, s, i]``, so the output does not depend on the number
of workers. The whole folder is built beside ``out`` and swapped in at the end: an interrupted run leaves nothing.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml
from tqdm import tqdm

from ...errors import DatasetError
from ...fileio import atomic_folder, atomic_write_text
from .captions import mentions_pair
from .scene import Scene, SceneConfig, render_scene
from .world import DEFAULT_WORLD, World

__all__ = ["SPLITS", "write_dataset", "check_no_held_out"]

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


def check_no_held_out(scene: Scene, world: World) -> None:
    """Raise ``AssertionError`` if a held-out pair is among ``scene``'s objects or named in its caption.

    Written out (not an ``assert`` statement) so that ``python -O`` cannot switch the guarantee off.
    """
    for obj in scene.objects:
        if world.is_held_out(obj.pair):
            raise AssertionError(f"held-out pair {obj.pair} was drawn into a training scene")
    for pair in world.held_out_pairs:
        if mentions_pair(scene.caption, world, pair):
            raise AssertionError(f"held-out pair {pair} is named in the training caption {scene.caption!r}")


class _Renderer:
    """Renders and writes image ``index`` of a split; picklable, so pool workers get their own copy."""

    def __init__(self, world: World, config: SceneConfig, root: Path, seed: int):
        self.world, self.config, self.root, self.seed = world, config, root, seed

    def __call__(self, task: tuple[str, int]) -> dict[str, Any]:
        split, index = task
        held_out_allowed = split == "test"
        rng = np.random.default_rng([self.seed, SPLITS.index(split), index])
        scene = render_scene(self.world, rng, pairs=self.world.pairs if held_out_allowed else self.world.seen_pairs,
                             config=self.config)
        if not held_out_allowed:
            check_no_held_out(scene, self.world)
        if scene.jpeg is not None:
            name, data = f"{index:06d}.jpg", scene.jpeg
        else:
            name, data = f"{index:06d}.png", cv2.imencode(".png", scene.image)[1].tobytes()
        (self.root / split / "images" / name).write_bytes(data)
        h, w = scene.image.shape[:2]
        return {
            "image": {"file_name": name, "width": w, "height": h, "caption": scene.caption,
                      "background": scene.background},
            "objects": [
                {"category_id": self.world.category_id(o.pair), "bbox": [o.box[0], o.box[1], o.box[2] - o.box[0],
                 o.box[3] - o.box[1]], "area": o.area, "tokens_positive": [list(o.span)], "visible": o.visible}
                for o in scene.objects
            ],
        }


def _quiet_worker() -> None:
    cv2.setNumThreads(1)  # one OpenCV thread per process: the pool already uses every core asked for


def _render_all(renderer: _Renderer, tasks: list[tuple[str, int]], workers: int, progress: bool) -> Iterator[dict]:
    bar = tqdm(total=len(tasks), desc="synthetic images", unit="img", disable=not progress)
    try:
        if workers == 1:
            for task in tasks:
                yield renderer(task)
                bar.update()
        else:
            # fork where the platform has it, as torch's DataLoader does: a spawned worker would spend seconds
            # re-importing ovdet (torch, ultralytics) before its first image; the children use only numpy and OpenCV
            method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
            with multiprocessing.get_context(method).Pool(workers, initializer=_quiet_worker) as pool:
                for record in pool.imap(renderer, tasks, chunksize=8):
                    yield record
                    bar.update()
    finally:
        bar.close()


def _coco(world: World, split: str, records: list[dict], seed: int) -> dict[str, Any]:
    images, annotations = [], []
    for image_id, record in enumerate(records, start=1):
        images.append({"id": image_id, **record["image"]})
        for obj in record["objects"]:
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "iscrowd": 0, **obj})
    pairs = world.pairs if split == "test" else world.seen_pairs
    return {
        "info": {"description": f"ovdet synthetic open-vocabulary world, {split} split", "seed": seed},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": world.categories(pairs),
    }


def _check_destination(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise DatasetError(f"{out} is a file; give a folder path for the dataset")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise DatasetError(f"{out} already exists and is not empty; pass overwrite=True (--overwrite) to "
                               "replace it")
        if not (out / "world.json").is_file():
            raise DatasetError(f"{out} does not look like a synthetic dataset (no world.json), so it will not be "
                               "replaced; choose a new or empty folder")


def write_dataset(
    out: str | os.PathLike,
    world: World = DEFAULT_WORLD,
    *,
    train: int = 3000,
    val: int = 200,
    test: int = 500,
    seed: int = 0,
    config: SceneConfig = SceneConfig(),
    workers: int = 1,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Render and write a train/val/test dataset (see the module docstring for the layout).

    Args:
        out: Dataset folder to create.
        world: Vocabulary and held-out pairs; train and val never contain a held-out pair.
        train, val, test: Images per split; a split with 0 images is left out of ``data.yaml``.
        seed: Fixes every image; the same arguments give byte-identical files.
        config: Scene sampling ranges.
        workers: Processes rendering in parallel (1: in this process).
        overwrite: Replace ``out`` if it holds a previous synthetic dataset.
        progress: Show a tqdm bar on stderr.

    Returns:
        The path of ``data.yaml``.

    Raises:
        DatasetError: negative or all-zero counts, ``workers < 1``, or ``out`` exists and may not be replaced.
    """
    counts = {"train": train, "val": val, "test": test}
    if any(not isinstance(n, int) or n < 0 for n in counts.values()) or not any(counts.values()):
        raise DatasetError(f"image counts must be integers >= 0, not all zero; got {counts}")
    if not isinstance(workers, int) or workers < 1:
        raise DatasetError(f"workers must be an integer >= 1, got {workers!r}")
    out = Path(out)
    _check_destination(out, overwrite)
    tasks = [(split, i) for split in SPLITS for i in range(counts[split])]
    entries: dict[str, Any] = {}
    # _check_destination allowed it: new, empty, or (with overwrite) a synthetic dataset written before
    with atomic_folder(out, owned=lambda folder: (folder / "world.json").is_file(), what="dataset folder") as tmp:
        for split in SPLITS:
            if counts[split]:
                (tmp / split / "images").mkdir(parents=True)
        records = list(_render_all(_Renderer(world, config, tmp, seed), tasks, workers, progress))
        for split in SPLITS:
            if not counts[split]:
                continue
            mine = [r for (s, _), r in zip(tasks, records) if s == split]
            atomic_write_text(tmp / split / "annotations.json", json.dumps(_coco(world, split, mine, seed)))
            entries[split] = {"images": f"{split}/images", "annotations": f"{split}/annotations.json"}
            logger.info("%s: %d images, %d objects", split, len(mine), sum(len(r["objects"]) for r in mine))
        world.save(tmp / "world.json")
        body = yaml.safe_dump({**entries, "texts": world.texts()}, sort_keys=False, default_flow_style=None, width=120)
        header = ("# ovdet synthetic dataset (ovdet.data.synthetic.write_dataset); paths are relative to this file.\n"
                  "# Train/val hold seen pairs only; test holds all pairs (held-out ones flagged in its categories).\n")
        atomic_write_text(tmp / "data.yaml", header + body)
    return out / "data.yaml"
