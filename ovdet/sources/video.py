"""OpenCV video sources: files (every frame, stops cleanly at a truncation) and live cameras or network streams
(newest frames only, reconnect with exponential backoff)."""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit, urlunsplit

import cv2

from ..errors import ConfigError, SourceError
from .base import FrameSource

__all__ = ["LiveSource", "Reconnect", "VideoFileSource", "is_stream_url", "open_url"]

logger = logging.getLogger(__name__)

STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "tcp", "srt")


@dataclass(frozen=True)
class Reconnect:
    """How a live source that stops delivering frames is reopened.

    Attempt ``n`` (from 0) waits ``min(max_backoff, backoff * 2**n)`` seconds, then reopens the source. The count
    restarts once a frame arrives again. After ``attempts`` failed attempts the stream raises ``SourceError``.

    Attributes:
        attempts: Reconnect attempts before giving up; ``None`` retries forever, ``0`` never reconnects.
        backoff: Seconds before the first attempt.
        max_backoff: Longest wait between attempts, in seconds.
        open_timeout: Seconds a network stream may take to open (FFmpeg backend).
        read_timeout: Seconds without data after which a network stream counts as stopped (FFmpeg backend).
    """

    attempts: int | None = 5
    backoff: float = 1.0
    max_backoff: float = 30.0
    open_timeout: float = 10.0
    read_timeout: float = 10.0

    def __post_init__(self) -> None:
        if self.attempts is not None and self.attempts < 0:
            raise ConfigError(f"Reconnect attempts must be >= 0 or None (forever), got {self.attempts}")
        for name in ("backoff", "max_backoff", "open_timeout", "read_timeout"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"Reconnect {name} must be a number of seconds >= 0, got {getattr(self, name)}")

    def delay(self, attempt: int) -> float:
        """Seconds to wait before attempt number ``attempt`` (from 0)."""
        return min(self.max_backoff, self.backoff * 2.0 ** min(attempt, 60))


def _capture_info(cap: cv2.VideoCapture) -> tuple[float | None, int | None, tuple[int, int] | None]:
    fps = cap.get(cv2.CAP_PROP_FPS)
    count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    fps = float(fps) if math.isfinite(fps) and 0 < fps < 1000 else None
    count = int(count) if math.isfinite(count) and 0 < count < 2**40 else None  # FFmpeg reports huge values for live
    return fps, count, ((w, h) if w > 0 and h > 0 else None)


class VideoFileSource(FrameSource):
    """A video file (or a finite video served over HTTP): every frame, in order; stops cleanly at a truncation.

    Timestamps come from the decoder (``CAP_PROP_POS_MSEC``), falling back to ``index / fps``.

    Raises:
        SourceError: the file does not exist or OpenCV's FFmpeg backend cannot open it.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        vid_stride: int = 1,
        buffer_size: int = 8,
        capture: cv2.VideoCapture | None = None,
    ):
        name = _mask_credentials(os.fspath(path))
        super().__init__(name, vid_stride=vid_stride, buffer_size=buffer_size)
        if capture is None:
            if not Path(path).is_file():
                raise SourceError(f"video file not found: {path}")
            capture = cv2.VideoCapture(os.fspath(path))
            if not capture.isOpened():
                capture.release()
                raise SourceError(
                    f"cannot open video {name}: not a video format OpenCV's FFmpeg backend reads, or the file is "
                    "damaged (an MP4 cut before its index cannot be opened); check it plays, or re-encode it "
                    "(ffmpeg -i IN -c:v libx264 OUT.mp4)"
                )
        self._cap = capture
        self.fps, self.frame_count, self.size = _capture_info(capture)

    def _read(self, emit: Callable[..., bool]) -> None:
        cap, index = self._cap, 0
        while not self._stop.is_set():
            if index % self.vid_stride:
                if not cap.grab():  # skipped frames are demuxed and decoded, but not converted
                    break
            else:
                ok, image = cap.read()
                if not ok:
                    break
                if not emit(image, index, self._timestamp(index)):
                    return
            index += 1
        if self.frame_count and index < self.frame_count and not self._stop.is_set():
            logger.warning(
                "video %s ended after %d of the %d frames its container declares: the file is probably truncated or "
                "damaged; stopping with the frames read", self.name, index, self.frame_count,
            )  # fmt: skip

    def _timestamp(self, index: int) -> float | None:
        ms = self._cap.get(cv2.CAP_PROP_POS_MSEC)
        if index == 0 or (math.isfinite(ms) and ms > 0):
            return max(float(ms), 0.0) / 1000.0
        return index / self.fps if self.fps else None

    def _release(self) -> None:
        self._cap.release()


def _open_capture(device: int | str, reconnect: Reconnect) -> cv2.VideoCapture:
    """A capture for a webcam index or a stream URL (FFmpeg, with the policy's network timeouts)."""
    if isinstance(device, int):
        return cv2.VideoCapture(device)
    timeouts = [
        cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(reconnect.open_timeout * 1000),
        cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(reconnect.read_timeout * 1000),
    ]  # fmt: skip
    return cv2.VideoCapture(device, cv2.CAP_FFMPEG, timeouts)


def _open_checked(device: int | str, reconnect: Reconnect) -> cv2.VideoCapture:
    """:func:`_open_capture`, or the error naming the source and the fix when it does not open."""
    capture = _open_capture(device, reconnect)
    if not capture.isOpened():
        capture.release()
        raise _open_failure(device)
    return capture


def _open_failure(device: int | str) -> SourceError:
    if isinstance(device, int):
        return SourceError(
            f"cannot open webcam {device}: no camera with that index, or another program is using it; check the "
            "camera is connected (ls /dev/video* on Linux) or try another index"
        )
    return SourceError(
        f"cannot open stream {_mask_credentials(device)}: the host is unreachable, the address or credentials are "
        "wrong, or OpenCV's FFmpeg backend cannot read it; check that the URL plays in ffplay or VLC"
    )


class LiveSource(FrameSource):
    """A webcam (by index) or a network stream: newest frames only, drops counted, reconnects with backoff.

    Timestamps are wall-clock seconds since the source was opened; frame indices keep counting across reconnects.

    Args:
        device: A webcam index or a stream URL.
        vid_stride: Deliver only every ``vid_stride``-th frame read.
        reconnect: What to do when the source stops delivering (default :class:`Reconnect`\\ ()).
        buffer_size: Newest frames kept (latency is about ``buffer_size`` frame intervals when the consumer is slow).
        capture: An already opened ``cv2.VideoCapture`` of ``device`` to start from; reconnecting opens ``device``.

    Raises:
        SourceError: the source cannot be opened at all (no such camera, host unreachable, stream refused).
    """

    live = True

    def __init__(
        self,
        device: int | str,
        *,
        vid_stride: int = 1,
        reconnect: Reconnect | None = None,
        buffer_size: int = 2,
        capture: cv2.VideoCapture | None = None,
    ):
        self.device = device
        self.reconnect = reconnect if reconnect is not None else Reconnect()
        super().__init__(_mask_credentials(str(device)), vid_stride=vid_stride, buffer_size=buffer_size)
        self._cap = capture if capture is not None else _open_checked(device, self.reconnect)
        self.fps, _, self.size = _capture_info(self._cap)

    @property
    def description(self) -> str:
        """``webcam 0`` or ``stream URL``, for messages."""
        return f"webcam {self.device}" if isinstance(self.device, int) else f"stream {self.name}"

    def _read(self, emit: Callable[..., bool]) -> None:
        start, index, failures = time.monotonic(), 0, 0
        policy = self.reconnect
        while not self._stop.is_set():
            skip = index % self.vid_stride != 0
            ok, image = (self._cap.grab(), None) if skip else self._cap.read()
            if ok:
                if failures:
                    logger.warning("%s: reconnected, frames resume", self.description)
                    failures = 0
                if not skip and not emit(image, index, time.monotonic() - start):
                    return
                index += 1
                continue
            self._cap.release()
            if policy.attempts is not None and failures >= policy.attempts:
                tried = f"did not come back after {failures} reconnect attempts" if failures else "reconnecting is off"
                raise SourceError(
                    f"{self.description} stopped delivering frames and {tried}; check the camera or stream, or allow "
                    "more attempts (Reconnect(attempts=...), --reconnect-attempts on the command line)"
                )
            delay = policy.delay(failures)
            failures += 1
            logger.warning(
                "%s stopped delivering frames; reconnecting in %.2g s (attempt %d of %s)",
                self.description, delay, failures, policy.attempts if policy.attempts is not None else "unlimited",
            )  # fmt: skip
            if self._stop.wait(delay):
                return
            # if it fails to open, the next read fails and the next attempt follows
            self._cap = _open_capture(self.device, policy)

    def _release(self) -> None:
        self._cap.release()


def _mask_credentials(text: str) -> str:
    """``rtsp://user:secret@host/x`` → ``rtsp://user:***@host/x``, so logs and results never carry a password."""
    parts = urlsplit(text)
    if parts.scheme and parts.password:
        host = parts.netloc.rsplit("@", 1)[1]
        return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))
    return text


def is_stream_url(text: str) -> bool:
    """Whether ``text`` is a URL OpenCV's FFmpeg backend streams from (``rtsp://``, ``http(s)://``, ...)."""
    return urlsplit(text).scheme.lower() in STREAM_SCHEMES


def open_url(url: str, *, vid_stride: int = 1, reconnect: Reconnect | None = None) -> FrameSource:
    """Open a stream URL: a :class:`LiveSource`, or a :class:`VideoFileSource` when it declares a frame count (a
    video file served over HTTP is read like a local file: every frame, no reconnecting).

    Raises:
        SourceError: the stream cannot be opened.
    """
    reconnect = reconnect if reconnect is not None else Reconnect()
    capture = _open_checked(url, reconnect)
    if _capture_info(capture)[1] is not None:
        return VideoFileSource(url, vid_stride=vid_stride, capture=capture)
    return LiveSource(url, vid_stride=vid_stride, reconnect=reconnect, capture=capture)
