"""Write videos with OpenCV so that the output path only ever holds a complete, playable file.

MP4 and similar containers write their index when the file is closed; a file cut short is unplayable. Frames go to
a hidden temporary sibling, which :meth:`VideoFileWriter.close` finalises and renames into place, so a run stopped
with Ctrl-C still leaves a playable video, and a crashed one leaves the previous file untouched.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..errors import ConfigError

__all__ = ["VIDEO_CODECS", "VideoFileWriter", "check_video_path"]

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


class VideoFileWriter:
    """Write BGR frames to a video file at a fixed frame rate; the frame size is that of the first frame.

    Args:
        path: The video to write (``.mp4``, ``.m4v``, ``.mov``, ``.mkv``: MPEG-4 Part 2; ``.avi``: Motion JPEG).
            Its folder is created; an existing file is replaced when the writer closes.
        fps: Frames per second of the output.

    Raises:
        ConfigError: an unsupported suffix or a frame rate <= 0; OpenCV cannot open the file for writing.
    """

    def __init__(self, path: str | os.PathLike, fps: float):
        self.path = check_video_path(path)
        if not fps > 0:
            raise ConfigError(f"a video's frame rate must be > 0, got {fps}")
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
        """Finalise the file and move it into place (nothing is written when no frame was)."""
        if self._writer is None:
            return
        writer, self._writer = self._writer, None
        writer.release()
        os.replace(self._tmp, self.path)

    def __enter__(self) -> VideoFileWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
