"""Image sources for prediction: paths, folders, globs, BGR arrays, PIL images, or lists of them.

``resolve_images`` checks everything it can up front (missing files, empty folders, wrong array types) so a bad
source fails before any work is done; ``read_image`` decodes one item and names the file it cannot read.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Union

import cv2
import numpy as np

from .errors import SourceError

__all__ = ["IMAGE_SUFFIXES", "ImageItem", "resolve_images", "read_image"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".jp2", ".pbm", ".pgm", ".ppm")
ImageItem = Union[str, np.ndarray]  # a file path, or a decoded BGR image


def _is_pil(obj: Any) -> bool:
    return type(obj).__module__.startswith("PIL.") and hasattr(obj, "convert")


def _as_bgr(array: np.ndarray, what: str) -> np.ndarray:
    if not isinstance(array, np.ndarray) or array.dtype != np.uint8:
        dtype = getattr(array, "dtype", type(array).__name__)
        raise SourceError(f"{what} must be a uint8 image array (as cv2.imread returns), got dtype {dtype}")
    if array.ndim == 2:
        return cv2.cvtColor(array, cv2.COLOR_GRAY2BGR)
    if array.ndim == 3 and array.shape[2] == 4:
        return cv2.cvtColor(array, cv2.COLOR_BGRA2BGR)
    if array.ndim == 3 and array.shape[2] == 1:
        return cv2.cvtColor(array, cv2.COLOR_GRAY2BGR)
    if array.ndim != 3 or array.shape[2] != 3 or min(array.shape[:2]) < 1:
        raise SourceError(f"{what} must be an (H, W, 3) BGR image, got shape {array.shape}")
    return array


def _expand_path(text: str) -> list[str]:
    if text.startswith(("http://", "https://", "rtsp://", "rtmp://")):
        raise SourceError(f"'{text}' is a URL; predict() reads local images. For streams and URLs use `ovdet stream`")
    path = Path(text).expanduser()
    if path.is_dir():
        files = sorted(str(p) for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not files:
            raise SourceError(f"no images in folder {path} (looked for {', '.join(IMAGE_SUFFIXES)})")
        return files
    if any(ch in text for ch in "*?["):
        files = sorted(f for f in glob.glob(os.path.expanduser(text), recursive=True) if f.lower().endswith(IMAGE_SUFFIXES))
        if not files:
            raise SourceError(f"the pattern '{text}' matches no image files")
        return files
    if not path.is_file():
        raise SourceError(f"image file not found: {path}")
    return [str(path)]


def _collect(src: Any, items: list[ImageItem]) -> None:
    if isinstance(src, (str, os.PathLike)):
        items.extend(_expand_path(os.fspath(src)))
    elif isinstance(src, np.ndarray):
        items.append(_as_bgr(src, "an image array"))
    elif _is_pil(src):
        items.append(cv2.cvtColor(np.asarray(src.convert("RGB")), cv2.COLOR_RGB2BGR))
    elif isinstance(src, Iterable) and not isinstance(src, (bytes, dict)) and not hasattr(src, "dtype"):
        for child in src:
            _collect(child, items)
    else:
        raise SourceError(
            f"cannot read images from a {type(src).__name__}; give a path, folder, glob, BGR numpy array, "
            "PIL image, or a list of these"
        )


def resolve_images(source: Any) -> list[ImageItem]:
    """Flatten a source into a list of image paths and BGR arrays, checking each.

    Args:
        source: An image path, a folder (its images, sorted), a glob pattern, a BGR ``uint8`` array (grey and BGRA
            are converted), a PIL image, or a list/tuple of these.

    Raises:
        SourceError: a missing file, an empty folder or pattern, an unsupported object, or an empty list.
    """
    items: list[ImageItem] = []
    _collect(source, items)
    if not items:
        raise SourceError("the image source is empty; give at least one image")
    return items


def read_image(item: ImageItem) -> tuple[np.ndarray, str | None]:
    """Decode one item into ``(BGR uint8 image, path or None)``.

    Raises:
        SourceError: the file cannot be read or is not a decodable image.
    """
    if isinstance(item, np.ndarray):
        return item, None
    try:
        data = np.fromfile(item, dtype=np.uint8)
    except OSError as e:
        raise SourceError(f"cannot read image file {item}: {e.strerror or e}") from e
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise SourceError(f"cannot decode image {item}: the file is corrupt or not an image format OpenCV reads")
    return image, item
