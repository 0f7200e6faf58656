"""Write videos with OpenCV so that the output path only ever holds a complete, playable file.

MP4 and similar containers write their index when the file is closed; a file cut short is unplayable. Frames go to
a hidden temporary sibling, which :meth:`VideoFileWriter.close` finalises and renames into place, so a run stopped
with Ctrl-C still leaves a playable video, and a crashed one leaves the previous file untouched. OpenCV reports no
write errors, so each closed file is read back: one that does not play its frames (a full disk) is removed and
reported, never put in place.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..errors import ConfigError, OutputError

__all__ = ["MAX_FPS", "VIDEO_CODECS", "VideoFileWriter", "check_fps", "check_video_path"]

logger = logging.getLogger(__name__)

# codecs every OpenCV wheel can encode (its FFmpeg has no H.264 encoder)
VIDEO_CODECS = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".mkv": "mp4v", ".avi": "MJPG"}


def check_video_path(path: str | os.PathLike) -> Path:
    """Return ``path`` as a ``Path`` if OpenCV can write a video of that type.

    Raises:
        ConfigError: an unsupported suffix; the message lists the supported ones.
    """
    path = Path(path)
    if path.suffix.lower() not in VIDEO_CODECS:
        raise ConfigError(f"cannot write a video to '{path}': use one of {', '.join(VIDEO_CODECS)} as its suffix")
    return path


MAX_FPS = 65535  # MPEG-4 Part 2 counts time in at most 2**16 - 1 ticks a second; OpenCV hangs on inf, fails above


def check_fps(fps: float) -> None:
    """Raises ConfigError unless ``0 < fps <= MAX_FPS`` (a frame rate a video file can hold)."""
    if not 0 < fps <= MAX_FPS:
        raise ConfigError(f"a video's frame rate must be > 0 and at most {MAX_FPS} (MPEG-4's time base), got {fps}")


class VideoFileWriter:
    """Write BGR frames to a video file at a fixed frame rate; the frame size is that of the first frame.

    Args:
        path: The video to write (``.mp4``, ``.m4v``, ``.mov``, ``.mkv``: MPEG-4 Part 2; ``.avi``: Motion JPEG).
            Its folder is created; an existing file is replaced when the writer closes.
        fps: Frames per second of the output.

    Raises:
        ConfigError: an unsupported suffix or a frame rate outside (0, MAX_FPS]; OpenCV cannot open the file for writing.
    """

    def __init__(self, path: str | os.PathLike, fps: float):
        self.path = check_video_path(path)
        check_fps(fps)
        self.fps = float(fps)
        self.frames = 0
        self.size: tuple[int, int] | None = None  # (width, height)
        self._tmp = self.path.with_name(f".{self.path.stem}.{os.getpid()}.partial{self.path.suffix}")
        self._writer: cv2.VideoWriter | None = None
        self._resizing = False

    def write(self, image: np.ndarray) -> None:
        """Append one ``(H, W, 3)`` BGR ``uint8`` frame; frames of another size are resized to the first one's."""
        if self._writer is None:
            self._open((image.shape[1], image.shape[0]))
        if (image.shape[1], image.shape[0]) != self.size:
            if not self._resizing:
                logger.info("frames of another size are resized to the video's %dx%d", *self.size)
                self._resizing = True
            image = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)
        self._writer.write(np.ascontiguousarray(image))
        self.frames += 1

    def _open(self, size: tuple[int, int]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fourcc = VIDEO_CODECS[self.path.suffix.lower()]
        writer = cv2.VideoWriter(str(self._tmp), cv2.VideoWriter_fourcc(*fourcc), self.fps, size)
        if not writer.isOpened():
            writer.release()
            with contextlib.suppress(FileNotFoundError):
                self._tmp.unlink()
            raise ConfigError(
                f"OpenCV cannot write {self.path} ({fourcc} at {size[0]}x{size[1]}); check the folder is writable, "
                "or try .avi (Motion JPEG)"
            )
        self._writer, self.size = writer, size

    def close(self) -> None:
        """Finalise the file and move it into place (nothing is written when no frame was).

        Raises:
            OutputError: the finalised file does not play back with every frame written. OpenCV reports no write
                error, so a full disk (or a failing file system) would otherwise leave an MP4 without its index,
                unplayable, in place of the video; the temporary file is removed and ``path`` is left as it was.
        """
        if self._writer is None:
            return
        writer, self._writer = self._writer, None
        writer.release()
        if _frame_count(self._tmp) != self.frames:
            with contextlib.suppress(FileNotFoundError):
                self._tmp.unlink()
            raise OutputError(
                f"could not finish the video {self.path}: the file OpenCV wrote does not play back its {self.frames} "
                "frames (is the disk full?); free some space or write elsewhere"
            )
        os.replace(self._tmp, self.path)

    def __enter__(self) -> VideoFileWriter:
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        try:
            self.close()
        except OutputError as e:
            if exc_type is None:
                raise
            logger.warning("%s", e)  # the error (or Ctrl-C) that stopped the writing is the one to raise


def _frame_count(path: Path) -> int:
    """Frames a video file declares, read back with OpenCV (0 when it cannot be opened)."""
    cap = cv2.VideoCapture(str(path))
    try:
        return int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
    finally:
        cap.release()
