"""``ovdet label --engine ray``: the images become a Ray Dataset, decoded in CPU tasks and labelled by detector actors.

The pipeline is Ray Data's batch-inference pattern (https://docs.ray.io/en/latest/data/batch_inference.html):

1. ``ray.data.from_items`` of the images (and videos) still to label;
2. ``flat_map(_decode)``: Ray tasks read each file (each strided frame of a video) into a BGR array, streamed into
3. ``map_batches(_Detector, compute=ActorPoolStrategy(size=actors))``: each actor loads the model once and labels
   batches (``ovdet.engine.label.detect_records``), one actor per GPU or ``actors`` on CPUs;
4. the driver iterates the labelled records as they stream out and is the **only writer**: the records go to the same
   journal and dataset files as the local engine's (so ``--resume`` works across engines and no shard files need
   merging), and an actor's record is written exactly once.

``RAY_ADDRESS`` (read by ``ray.init``) joins an existing cluster; without it a local Ray starts and is shut down at
the end. On a cluster, every node needs ovdet installed and the model and images at the same paths (a shared file
system); the driver's vocabulary embeddings are sent to the actors, so they need no text encoder. Ray is imported
only here, only when this engine is used.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError, SourceError
from .label_items import LabelItem, LabelSources, frame_item

__all__ = ["check_ray", "connect", "RayPool", "ray_records"]

logger = logging.getLogger(__name__)

INSTALL = 'pip install "ovdet[ray]"'


def _task_cap(ray: Any, size: int) -> dict[str, Any]:
    """Keyword arguments that cap a task-based map at ``size`` concurrent tasks: ``compute=TaskPoolStrategy(size=)``
    from Ray 2.51 (which deprecates ``concurrency=``), ``concurrency=`` before (which deprecated ``compute=``)."""
    major, minor = (int(part) for part in ray.__version__.split(".")[:2])
    if (major, minor) >= (2, 51):
        return {"compute": ray.data.TaskPoolStrategy(size=size)}
    return {"concurrency": size}


def check_ray(model: Any) -> None:
    """Fail early, with the fix, when the Ray engine cannot run: Ray Data is not installed, or ``model`` is a loaded
    detector (actors load the model themselves, from a name or path).

    Raises:
        ConfigError: naming the fix.
    """
    try:
        import ray.data  # noqa: F401
    except ImportError:
        raise ConfigError(f"--engine ray needs Ray Data, which is not installed: {INSTALL} (or pip install "
                          '"ray[data]"), or use the local engine') from None  # fmt: skip
    if model is not None and not isinstance(model, (str, os.PathLike)):
        raise ConfigError("the Ray engine loads the model in each actor: give it as a name or path (model='my-model' "
                          "or --model), not a loaded detector")  # fmt: skip


def _item_json(item: LabelItem) -> str:
    return json.dumps([item.key, item.name, item.path, item.frame, item.store])


def _decode(row: dict[str, Any], vid_stride: int) -> Iterator[dict[str, Any]]:
    """A Ray task (a generator, which ``flat_map`` iterates): one image row → one decoded row; one video row → a row
    per strided frame not labelled yet, each yielded as it is read, so a task holds one frame at a time, not the whole
    video (an hour of 1080p is some 600 GB of BGR frames)."""
    from ..images import read_image
    from ..sources import VideoFileSource

    spec = json.loads(row["spec"])
    empty = np.zeros((0, 0, 3), np.uint8)
    if spec["video"] is None:
        item = LabelItem(*spec["item"])
        try:
            image, _ = read_image(item.path)
        except SourceError as e:
            yield {"item": _item_json(item), "image": empty, "error": str(e)}
            return
        yield {"item": _item_json(item), "image": image, "error": ""}
        return
    video, prefix = spec["video"]
    done = set(spec["done"])
    try:
        source = VideoFileSource(video, vid_stride=vid_stride)
    except SourceError as e:
        yield {"item": _item_json(LabelItem(video, prefix, video)), "image": empty, "error": str(e)}
        return
    with source:  # closed (its reader thread stopped) also when Ray stops iterating early
        for frame in source:
            if frame.index not in done:
                yield {"item": _item_json(frame_item(video, prefix, frame.index)), "image": frame.image, "error": ""}


class _Detector:
    """A Ray actor (a callable class for ``map_batches``): loads the model once, labels batches of decoded images."""

    def __init__(self, model: Any, text_encoder: str | None, device: str, threads: int | None, vocabulary: list[str],
                 embeddings: np.ndarray, opts: Any):  # fmt: skip
        from ..io.resolve import resolve_model
        from ..model.device import set_threads

        set_threads(threads or 1)
        self.model = resolve_model(model, text_encoder=text_encoder, device=device)
        self.model.set_classes(vocabulary, embeddings=embeddings)  # the driver's embeddings: the same vocabulary
        self.opts = opts

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import cv2

        from .label import detect_records

        items = [LabelItem(*json.loads(s)) for s in batch["item"]]
        good = [i for i, e in enumerate(batch["error"]) if not e]
        records = dict(zip(good, detect_records(self.model, [(items[i], batch["image"][i]) for i in good], self.opts)))
        out_records, pngs = [], []
        for i, item in enumerate(items):
            out_records.append(json.dumps(records[i].to_json()) if i in records else "")
            # pixels the dataset keeps (frames, converted formats) travel to the driver as PNG, encoded here
            pngs.append(cv2.imencode(".png", batch["image"][i])[1].tobytes() if i in records and item.store else b"")
        return {"item": batch["item"], "error": batch["error"], "record": np.array(out_records, dtype=object),
                "png": np.array(pngs, dtype=object)}  # fmt: skip


@dataclass
class RayPool:
    """A Ray connection whose cluster was checked to hold the detector actors (:func:`connect`)."""

    actors: int
    gpu: bool
    per_actor: dict[str, float]
    started: bool  # this run started a local Ray, and shuts it down in close()

    def close(self) -> None:
        """Shut down the local Ray this run started (once); a cluster joined through ``RAY_ADDRESS`` is left running."""
        if self.started:
            import ray

            self.started = False
            ray.shutdown()


def connect(actors: int | None, threads: int | None, device: str) -> RayPool:
    """Join the cluster ``RAY_ADDRESS`` names (read by ``ray.init``), or start a local Ray, and check that it holds
    the detector actors — before the run writes anything.

    Args:
        actors: Detector actors (default: one per GPU with a CUDA ``device``, else 2).
        threads: CPU threads (and Ray CPUs) per actor (default 1).
        device: A CUDA ``device`` gives each actor one GPU.

    Raises:
        ConfigError: more actors than the cluster can hold (they would wait forever), or no GPU for a CUDA device.
    """
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        resources = ray.cluster_resources()
        gpu = device.startswith("cuda")
        per_actor = {"num_gpus": 1, "num_cpus": 1} if gpu else {"num_cpus": threads or 1}
        kind, have = ("GPU", resources.get("GPU", 0)) if gpu else ("CPU", resources.get("CPU", 0))
        actors = actors or (int(have) if gpu else 2)
        need = actors * (1 if gpu else per_actor["num_cpus"])
        if actors < 1 or need > have:
            raise ConfigError(f"{actors} detector actors need {need:g} {kind}s, but the Ray cluster has {have:g}; "
                              f"pass --actors {max(int(have // (1 if gpu else per_actor['num_cpus'])), 1)} or fewer "
                              "(or --threads 1), or add nodes")  # fmt: skip
    except BaseException:
        if started:
            ray.shutdown()
        raise
    return RayPool(actors, gpu, per_actor, started)


def ray_records(
    pool: RayPool,
    model: Any,
    text_encoder: str | None,
    detector: Any,
    found: LabelSources,
    done: set[str],
    opts: Any,
    *,
    batch: int,
    vid_stride: int,
    threads: int | None,
    device: str,
) -> Iterator[tuple[LabelItem, Any, Any, SourceError | None]]:
    """Label on Ray Data (see the module docstring); yields what the local engine yields: ``(item, record, PNG
    bytes for stored pixels, None)`` or ``(item, None, None, error)``.

    Args:
        pool: The checked connection (:func:`connect`); the caller closes it.
        model, text_encoder, device: What each actor loads (a spec; ``None``: the bundled default model); a CUDA
            ``device`` gives each actor one GPU (its own ``cuda``, as Ray sets ``CUDA_VISIBLE_DEVICES``).
        detector: The driver's model with the ontology's vocabulary set (its embeddings go to the actors).
        threads: CPU threads per actor (default 1).
    """
    import ray

    from ..io.label_formats import LabelRecord

    actors, gpu = pool.actors, pool.gpu
    specs = [{"item": [i.key, i.name, i.path, i.frame, i.store], "video": None} for i in found.images
             if i.key not in done]  # fmt: skip
    for video, prefix in found.videos:
        frames = [int(k.rpartition("=")[2]) for k in done if k.startswith(f"{video}#frame=")]
        specs.append({"item": None, "video": [video, prefix], "done": frames})
    if not specs:
        return
    vocab = detector.vocabulary
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # ovdet's own bar counts images; Ray's would interleave with it
    ds = ray.data.from_items([{"spec": json.dumps(s)} for s in specs], override_num_blocks=max(len(specs) // 4, 1))
    # decoding is light next to the detector: its tasks ask for no CPU of their own, so actors can take every
    # CPU, and as many run at once as there are actors (without a cap, Ray starts a worker per 0-CPU task)
    ds = ds.flat_map(_decode, fn_kwargs={"vid_stride": vid_stride}, num_cpus=0, **_task_cap(ray, actors))
    ds = ds.map_batches(
        _Detector, batch_size=batch, compute=ray.data.ActorPoolStrategy(size=actors), batch_format="numpy",
        fn_constructor_kwargs={"model": None if model is None else os.fspath(model), "text_encoder": text_encoder,
                               "device": "cuda" if gpu else device, "threads": threads,
                               "vocabulary": list(vocab.names), "embeddings": vocab.embeddings, "opts": opts},
        **pool.per_actor,
    )  # fmt: skip
    for rows in ds.iter_batches(batch_size=None, batch_format="numpy"):
        for item_text, error, record, png in zip(rows["item"], rows["error"], rows["record"], rows["png"]):
            item = LabelItem(*json.loads(item_text))
            if error:
                yield item, None, None, SourceError(str(error))
            else:
                yield item, LabelRecord.from_json(json.loads(record)), bytes(png) or None, None
