"""Image files read as the frames of a stream (a folder, a glob, or a list of files)."""

from __future__ import annotations

import logging
import os
from typing import Any, Callable

from ..errors import SourceError
from ..images import read_image, resolve_images
from .base import FrameSource

__all__ = ["ImageSequenceSource"]

logger = logging.getLogger(__name__)


class ImageSequenceSource(FrameSource):
    """Images read in order as the frames of a stream; an unreadable image is skipped with a warning and listed in
    :attr:`skipped`.

    Args:
        images: A folder (its images, sorted), a glob, an image file, or a list of image files and BGR arrays;
            anything :func:`ovdet.images.resolve_images` accepts.

    Raises:
        SourceError: no images found (see :func:`ovdet.images.resolve_images`).
    """

    def __init__(self, images: Any, *, vid_stride: int = 1, buffer_size: int = 8):
        self._items = resolve_images(images)
        name = os.fspath(images) if isinstance(images, (str, os.PathLike)) else f"{len(self._items)} images"
        super().__init__(name, vid_stride=vid_stride, buffer_size=buffer_size)
        self.frame_count = len(self._items)

    def _read(self, emit: Callable[..., bool]) -> None:
        for index in range(0, len(self._items), self.vid_stride):
            try:
                image, path = read_image(self._items[index])
            except SourceError as e:
                logger.warning("skipping frame %d: %s", index, e)
                self.skipped.append(str(self._items[index]) if isinstance(self._items[index], (str, os.PathLike))
                                    else f"frame {index}")  # fmt: skip
                continue
            if not emit(image, index, None, path):
                return
