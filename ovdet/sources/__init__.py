"""Frame sources for streams: video files, webcams, RTSP/HTTP streams and image sequences.

Each source decodes on its own reader thread into a small bounded buffer, so decoding overlaps with whatever the
consumer does (inference, drawing, writing) and memory stays constant however long the stream runs.

- Finite sources (video files, image folders and globs) deliver every frame, in order: the reader waits while the
  buffer is full, so no frame is dropped. A video that ends before the frame count its container declares (a truncated
  or damaged file) stops cleanly with the frames read, and a warning is logged.
- Live sources (webcams, ``rtsp://``, ``rtmp://``, ``http(s)://`` streams) keep only the newest frames: when the
  consumer falls behind, the oldest buffered frame is dropped and counted (:attr:`FrameSource.dropped`), so latency
  stays at a frame or two. A live source that stops delivering is reopened with exponential backoff
  (:class:`Reconnect`); after the last allowed attempt, iterating it raises :class:`~ovdet.errors.SourceError`.

>>> with open_source("clip.mp4") as src:
...     for frame in src:
...         frame.image, frame.index, frame.timestamp
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Union

from ..errors import SourceError
from ..images import IMAGE_SUFFIXES
from .base import Frame, FrameSource, iter_rounds
from .sequence import ImageSequenceSource
from .video import LiveSource, Reconnect, VideoFileSource, is_stream_url, open_url

__all__ = [
    "Frame",
    "FrameSource",
    "ImageSequenceSource",
    "LiveSource",
    "Reconnect",
    "SourceSpec",
    "VideoFileSource",
    "is_stream_url",
    "iter_rounds",
    "open_source",
    "open_sources",
]

SourceSpec = Union[str, os.PathLike, int, FrameSource]


def open_source(spec: SourceSpec, *, vid_stride: int = 1, reconnect: Reconnect | None = None) -> FrameSource:
    """Open one source and check it can be read.

    Args:
        spec: A video file; a webcam index (``0`` or ``"0"``); an ``rtsp://``, ``rtmp://`` or ``http(s)://`` URL (a
            live stream, unless it reports a frame count: then a finite video); a folder or glob of images, or a
            single image; or an already opened :class:`FrameSource` (returned as is, with its own settings).
        vid_stride: Deliver only every ``vid_stride``-th frame.
        reconnect: Reconnect policy for live sources.

    Raises:
        SourceError: the source does not exist or cannot be opened; the message names it and the fix.
    """
    if isinstance(spec, FrameSource):
        return spec
    if isinstance(spec, bool) or not isinstance(spec, (str, os.PathLike, int)):
        raise SourceError(
            f"cannot stream from a {type(spec).__name__}; give a video file, a webcam index, a stream URL, "
            "a folder or glob of images, or a list of these"
        )
    if isinstance(spec, int) or (isinstance(spec, str) and spec.strip().isdigit()):
        return LiveSource(int(spec), vid_stride=vid_stride, reconnect=reconnect)
    text = os.fspath(spec)
    if is_stream_url(text):
        return open_url(text, vid_stride=vid_stride, reconnect=reconnect)
    path = Path(text).expanduser()
    pattern = any(ch in text for ch in "*?[") and not path.exists()  # an existing "clip [1].mp4" is that file
    if path.is_dir() or pattern or path.suffix.lower() in IMAGE_SUFFIXES:
        return ImageSequenceSource(text, vid_stride=vid_stride)
    return VideoFileSource(path, vid_stride=vid_stride)


def open_sources(
    specs: SourceSpec | Sequence[SourceSpec], *, vid_stride: int = 1, reconnect: Reconnect | None = None
) -> list[FrameSource]:
    """Open one source or a list of them (see :func:`open_source`); if one fails, those already opened are closed.

    Raises:
        SourceError: a source cannot be opened, or the list is empty.
    """
    specs = list(specs) if isinstance(specs, (list, tuple)) else [specs]
    if not specs:
        raise SourceError("no source given; pass a video file, webcam index, stream URL or image folder")
    sources: list[FrameSource] = []
    try:
        for spec in specs:
            sources.append(open_source(spec, vid_stride=vid_stride, reconnect=reconnect))
    except BaseException:
        for source in sources:
            source.close()
        raise
    return sources
