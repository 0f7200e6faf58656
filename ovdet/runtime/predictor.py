"""``predict`` / ``predict_iter`` / ``stream`` shared by every detector that implements ``detect``: images in, Results out.

:class:`~ovdet.model.detector.OVDetector` (PyTorch) and :class:`~ovdet.runtime.detector.OnnxDetector` (ONNX Runtime)
differ only in how ``_detect_batch`` runs one batch; reading sources, batching and argument checks live here once
(torch-free).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from ..errors import SourceError, VocabularyError
from ..images import read_image, resolve_images
from ..results import Result
from ..sources import Frame, Reconnect, SourceSpec, iter_rounds, open_sources
from .letterbox import check_imgsz, shape_groups
from .postprocess import ClassMap

__all__ = ["Predictor"]

logger = logging.getLogger(__name__)


class Predictor:
    """Mixin: ``predict``, ``predict_iter`` and ``stream`` on top of ``detect(images, ...)``, ``names``, ``stride`` and
    ``default_imgsz``."""

    names: list[str]
    stride: int
    default_imgsz: int | tuple[int, int]

    def _detect_batch(
        self, images: list[np.ndarray], size: tuple[int, int], **select: Any
    ) -> list[Result]:  # pragma: no cover (abstract)
        """Run the model on images that all letterbox to the same input shape; ``select`` goes to
        :func:`~ovdet.runtime.postprocess.results_from_outputs`."""
        raise NotImplementedError

    def detect(
        self,
        images: Sequence[np.ndarray],
        *,
        conf: float = 0.25,
        iou: float = 0.7,
        imgsz: int | tuple[int, int] | None = None,
        max_det: int = 300,
        agnostic: bool = False,
        multi_label: bool = False,
        class_map: ClassMap | None = None,
    ) -> list[Result]:
        """Detect in decoded BGR ``uint8`` images; the core of :meth:`predict` and :meth:`stream`.

        Images are run in batches of those that letterbox to the same input shape (:func:`shape_groups`), so each
        result equals that of the image predicted alone, whatever else is in ``images``. The returned results keep
        no image and no path; callers attach what they know.

        A ``class_map`` (:class:`~ovdet.runtime.postprocess.ClassMap`, what ``ovdet label`` uses) reads the
        vocabulary as prompts of its classes: their scores are merged per class before NMS, each class has its own
        threshold (``conf`` is ignored), negatives are dropped, and results are in the map's classes.

        Raises:
            ValueError: a ``class_map`` that does not read this vocabulary's number of classes.
        """
        self._check_predict_args(conf, iou, max_det, 1)
        if class_map is not None:
            if class_map.num_prompts != len(self.names):
                raise ValueError(f"the class map reads {class_map.num_prompts} prompts, the vocabulary has "
                                 f"{len(self.names)}; set_classes with its prompts first")  # fmt: skip
            conf = class_map.min_conf  # what a GPU may pre-filter anchors on before they reach the selection
        size = self.inference_size(imgsz)
        images = list(images)
        select = {"conf": conf, "iou": iou, "max_det": max_det, "agnostic": agnostic, "multi_label": multi_label}
        if class_map is not None:
            select["class_map"] = class_map
        results: list[Result | None] = [None] * len(images)
        for group in shape_groups(images, size, stride=self.stride):
            for i, result in zip(group, self._detect_batch([images[i] for i in group], size, **select)):
                results[i] = result
        return results  # type: ignore[return-value]

    def inference_size(self, imgsz: int | tuple[int, int] | None = None) -> tuple[int, int]:
        """The checked ``(h, w)`` inference size for ``imgsz`` (``None``: the model's default size).

        Raises:
            ValueError: a size that is not a positive multiple of the stride.
        """
        return check_imgsz(imgsz if imgsz is not None else self.default_imgsz, self.stride)

    def predict(
        self,
        source: Any,
        *,
        conf: float = 0.25,
        iou: float = 0.7,
        imgsz: int | tuple[int, int] | None = None,
        max_det: int = 300,
        agnostic: bool = False,
        multi_label: bool = False,
        batch: int = 8,
        keep_images: bool = True,
        on_error: str | Callable[[str, SourceError], None] = "raise",
    ) -> list[Result]:
        """Detect the vocabulary's classes in images.

        Args:
            source: An image path, a folder, a glob, a BGR ``uint8`` array (as OpenCV gives), a PIL image, a torch
                tensor ``(3, H, W)`` / ``(B, 3, H, W)`` RGB in [0, 1] (ultralytics' convention), or a list of these
                (see :mod:`ovdet.images`: every route decodes the same pixels).
            conf: Minimum score of a detection.
            iou: IoU above which NMS suppresses the lower-scored of two boxes of one class.
            imgsz: Inference size (a multiple of 32, or ``(h, w)``); ``None`` = the model's own (``config.imgsz``).
            max_det: Maximum detections per image.
            agnostic: NMS across classes instead of per class.
            multi_label: Let one box carry several classes above ``conf`` (for mAP evaluation).
            batch: Images per forward pass.
            keep_images: Keep each original image in its ``Result`` (needed by ``Result.plot``).
            on_error: What to do with a file that cannot be decoded: ``"raise"`` (a :class:`SourceError`, after
                the results before it were made), ``"skip"`` (log a warning naming it and go on), or a function
                ``(path, error)`` called for it before going on.

        Returns:
            One :class:`Result` per image, in source order (skipped files have none; ``Result.path`` says which
            file each is).

        Raises:
            VocabularyError: :meth:`set_classes` was never called.
            SourceError: a missing or unsupported source (checked before any work), or an undecodable file with
                ``on_error="raise"``.
        """
        return list(
            self.predict_iter(
                source, conf=conf, iou=iou, imgsz=imgsz, max_det=max_det, agnostic=agnostic,
                multi_label=multi_label, batch=batch, keep_images=keep_images, on_error=on_error,
            )
        )  # fmt: skip

    def predict_iter(
        self,
        source: Any,
        *,
        conf: float = 0.25,
        iou: float = 0.7,
        imgsz: int | tuple[int, int] | None = None,
        max_det: int = 300,
        agnostic: bool = False,
        multi_label: bool = False,
        batch: int = 8,
        keep_images: bool = True,
        on_error: str | Callable[[str, SourceError], None] = "raise",
    ) -> Iterator[Result]:
        """Like :meth:`predict`, but yields results one by one, reading images only as they are needed."""
        self._check_predict_args(conf, iou, max_det, batch)
        if not (on_error in ("raise", "skip") or callable(on_error)):
            raise ValueError(f"on_error must be 'raise', 'skip' or a function (path, error), got {on_error!r}")
        items = resolve_images(source)
        size = self.inference_size(imgsz)
        for start in range(0, len(items), batch):
            decoded = []
            for item in items[start : start + batch]:
                try:
                    decoded.append(read_image(item))
                except SourceError as e:
                    if on_error == "raise":
                        raise
                    if on_error == "skip":
                        logger.warning("skipping %s", e)
                    else:
                        on_error(str(item), e)
            if not decoded:
                continue
            images = [im for im, _ in decoded]
            results = self.detect(
                images, conf=conf, iou=iou, imgsz=size, max_det=max_det, agnostic=agnostic, multi_label=multi_label
            )
            for result, (image, path) in zip(results, decoded):
                yield dataclasses.replace(result, path=path, image=image if keep_images else None)

    def stream(
        self,
        source: SourceSpec | Sequence[SourceSpec],
        *,
        conf: float = 0.25,
        iou: float = 0.7,
        imgsz: int | tuple[int, int] | None = None,
        max_det: int = 300,
        agnostic: bool = False,
        vid_stride: int = 1,
        keep_images: bool = False,
        reconnect: Reconnect | None = None,
    ) -> Iterator[Result]:
        """Detect the vocabulary's classes in every frame of a video, camera or stream, as the frames arrive.

        Frames are decoded on a reader thread per source (see :mod:`ovdet.sources`) while the model runs, and memory
        stays constant: a video file gives every frame in order; a live source gives its newest frames, dropping
        stale ones when inference is slower than the source. Several sources are read in turn, one frame of each per
        batched forward pass. Sources are opened (and checked) here; they are closed when the iteration ends or is
        abandoned.

        Args:
            source: A video file, a webcam index (``0``), an ``rtsp://``/``rtmp://``/``http(s)://`` URL, a folder or
                glob of images, an opened :class:`~ovdet.sources.FrameSource`, or a list of these.
            conf, iou, imgsz, max_det, agnostic: As in :meth:`predict`.
            vid_stride: Use every ``vid_stride``-th frame of each source.
            keep_images: Keep each frame in its ``Result`` (needed by ``Result.plot``; costs a frame per result held).
            reconnect: How live sources reconnect when they stop delivering (default
                :class:`~ovdet.sources.Reconnect`\\ (): 5 attempts, backoff from 1 s).

        Returns:
            A generator of one :class:`Result` per frame with ``source``, ``frame_index`` and ``timestamp`` set (and
            ``path`` for image files).

        Raises:
            VocabularyError: :meth:`set_classes` was never called.
            SourceError: a source cannot be opened (raised here, before iterating); while iterating, a live source
                that stays lost after the allowed reconnect attempts.
        """
        self._check_predict_args(conf, iou, max_det, 1)
        size = self.inference_size(imgsz)
        detect = functools.partial(self.detect, conf=conf, iou=iou, imgsz=size, max_det=max_det, agnostic=agnostic)
        sources = open_sources(source, vid_stride=vid_stride, reconnect=reconnect)
        return self._stream(iter_rounds(sources), detect, keep_images)

    @staticmethod
    def _stream(
        rounds: Iterator[list[Frame]], detect: Callable[[list[np.ndarray]], list[Result]], keep_images: bool
    ) -> Iterator[Result]:
        try:
            for frames in rounds:
                results = detect([frame.image for frame in frames])
                for frame, result in zip(frames, results):
                    yield dataclasses.replace(
                        result, source=frame.source, frame_index=frame.index, timestamp=frame.timestamp,
                        path=frame.path, image=frame.image if keep_images else None,
                    )  # fmt: skip
        finally:
            rounds.close()  # stops the reader threads and releases the sources

    def _check_predict_args(self, conf: float, iou: float, max_det: int, batch: int) -> None:
        if not self.names:
            raise VocabularyError(
                "no classes set: call model.set_classes(['person', 'bus', ...]) before predicting"
            )
        if not 0 <= conf <= 1 or not 0 <= iou <= 1:
            raise ValueError(f"conf and iou must be in [0, 1], got conf={conf}, iou={iou}")
        if max_det < 1 or batch < 1:
            raise ValueError(f"max_det and batch must be >= 1, got max_det={max_det}, batch={batch}")

