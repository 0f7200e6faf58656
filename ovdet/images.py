"""Image sources for prediction: paths, folders, globs, arrays, PIL images, torch tensors, or lists of them.

Every route decodes the same pixels for the same picture: a file (by path, folder or glob) is read as ``cv2.imread``
reads it — EXIF orientation applied, 16-bit samples scaled to 8 bits (``>> 8``), alpha dropped, a truncated JPEG
decoded as far as it goes; a PIL image gets the same (``ImageOps.exif_transpose``, ``I;16`` → ``>> 8``); a BGR
``uint8`` array (OpenCV's layout) is taken as it is; a torch tensor follows ultralytics' convention, RGB float in
[0, 1], ``(3, H, W)`` or ``(B, 3, H, W)``. Float numpy arrays are refused: their range and channel order are
ambiguous.

``resolve_images`` checks everything it can up front (missing files, empty folders, videos, wrong array types) so a
bad source fails before any work is done; ``read_image`` decodes one item and names the file it cannot read.
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

__all__ = ["IMAGE_SUFFIXES", "VIDEO_SUFFIXES", "ImageItem", "resolve_images", "read_image", "from_pil"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".jp2", ".pbm", ".pgm", ".ppm")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm", ".wmv", ".flv", ".mpg", ".mpeg", ".ts", ".gif")
ImageItem = Union[str, np.ndarray]  # a file path, or a decoded BGR image


def _is_pil(obj: Any) -> bool:
    return type(obj).__module__.startswith("PIL.") and hasattr(obj, "convert")


def _is_tensor(obj: Any) -> bool:
    return type(obj).__module__.startswith("torch") and hasattr(obj, "detach") and hasattr(obj, "ndim")


def _to_uint8(array: np.ndarray, what: str) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.uint16:
        return (array >> 8).astype(np.uint8)  # what cv2.imread does with a 16-bit file
    if np.issubdtype(array.dtype, np.floating):
        raise SourceError(
            f"{what} is a float array, whose range and channel order are ambiguous; pass uint8 BGR as cv2.imread "
            "returns ((array * 255).round().astype(np.uint8) for [0, 1] values), or a torch tensor (3, H, W) RGB in "
            "[0, 1] as ultralytics takes"
        )
    raise SourceError(f"{what} must be a uint8 (or uint16) image array as cv2.imread returns, got dtype {array.dtype}")


def _as_bgr(array: np.ndarray, what: str) -> np.ndarray:
    array = _to_uint8(array, what)
    if array.ndim == 2:
        array = cv2.cvtColor(array, cv2.COLOR_GRAY2BGR)
    elif array.ndim == 3 and array.shape[2] == 4:
        array = cv2.cvtColor(array, cv2.COLOR_BGRA2BGR)
    elif array.ndim == 3 and array.shape[2] == 1:
        array = cv2.cvtColor(array, cv2.COLOR_GRAY2BGR)
    if array.ndim != 3 or array.shape[2] != 3 or min(array.shape[:2]) < 1:
        raise SourceError(f"{what} must be an (H, W, 3) BGR image, got shape {array.shape}")
    return array


def from_pil(image: Any) -> np.ndarray:
    """A PIL image as the BGR ``uint8`` array ``cv2.imread`` would give for its file (EXIF orientation applied,
    16-bit samples ``>> 8``, alpha dropped).

    Raises:
        SourceError: a mode with no defined 8-bit meaning (32-bit float ``F``).
    """
    from PIL import ImageOps

    image = ImageOps.exif_transpose(image)  # a new image; the caller's is not changed
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        samples = np.asarray(image)
        if image.mode == "I":  # 32-bit container of (usually 16-bit) samples, as PIL opens some 16-bit PNGs
            samples = np.clip(samples, 0, 65535)
        return _as_bgr(samples.astype(np.uint16), "a PIL image")
    if image.mode == "F":
        raise SourceError("a PIL image of mode 'F' (32-bit float) has no defined 8-bit range; convert it to 'L' or 'RGB'")
    return cv2.cvtColor(np.asarray(image.convert("RGB")), cv2.COLOR_RGB2BGR)


def _from_tensor(tensor: Any) -> list[np.ndarray]:
    """Torch images as ultralytics takes them, RGB float in [0, 1], ``(3, H, W)`` or ``(B, 3, H, W)``, to BGR uint8."""
    import torch  # only here: a tensor was given, so torch is there; the rest of this module needs none

    t = tensor.detach().cpu()
    if t.ndim == 3:
        t = t.unsqueeze(0)
    if t.ndim != 4 or t.shape[1] != 3 or min(t.shape[2:]) < 1:
        raise SourceError(
            f"a torch image must be (3, H, W) or (B, 3, H, W), RGB in [0, 1] (ultralytics' convention), got shape "
            f"{tuple(tensor.shape)}"
        )
    if not t.is_floating_point():
        raise SourceError(f"a torch image must be float RGB in [0, 1] (ultralytics' convention), got dtype {t.dtype}")
    if t.numel() and (float(t.min()) < 0 or float(t.max()) > 1):
        raise SourceError(
            f"a torch image must hold values in [0, 1] (ultralytics' convention), got {float(t.min()):.3g} to "
            f"{float(t.max()):.3g}; divide by 255"
        )
    arrays = (t.float() * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return [np.ascontiguousarray(a[..., ::-1]) for a in arrays]  # RGB → BGR


def _expand_path(text: str) -> list[str]:
    if text.startswith(("http://", "https://", "rtsp://", "rtmp://")):
        raise SourceError(f"'{text}' is a URL; predict() reads local images. For streams and URLs use `ovdet stream`")
    path = Path(text).expanduser()
    if path.is_dir():
        # a broken link is kept: reading it fails, so it is reported (skipped and listed), not silently left out
        files = sorted(
            str(p) for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and (p.is_file() or p.is_symlink())
        )
        if not files:
            raise SourceError(f"no images in folder {path} (looked for {', '.join(IMAGE_SUFFIXES)}, in any case)")
        return files
    if any(ch in text for ch in "*?[") and not path.exists():  # an existing "photo [1].jpg" is that file
        found = glob.glob(os.path.expanduser(text), recursive=True)
        files = sorted(f for f in found if f.lower().endswith(IMAGE_SUFFIXES) and os.path.isfile(f))
        if not files:
            raise SourceError(f"the pattern '{text}' matches no image files")
        return files
    if not path.is_file():
        if path.exists():
            raise SourceError(f"{path} is not a regular file (a FIFO, a device?); give an image file")
        raise SourceError(f"image file not found: {path}")
    if path.suffix.lower() in VIDEO_SUFFIXES:
        raise SourceError(
            f"{path} is a video; predict reads images. Use `ovdet stream {path}` (or model.stream) for videos"
        )
    return [str(path)]


def _collect(src: Any, items: list[ImageItem]) -> None:
    if isinstance(src, (str, os.PathLike)):
        items.extend(_expand_path(os.fspath(src)))
    elif isinstance(src, np.ndarray):
        items.append(_as_bgr(src, "an image array"))
    elif _is_pil(src):
        items.append(from_pil(src))
    elif _is_tensor(src):
        items.extend(_from_tensor(src))
    elif isinstance(src, Iterable) and not isinstance(src, (bytes, dict)) and not hasattr(src, "dtype"):
        for child in src:
            _collect(child, items)
    else:
        raise SourceError(
            f"cannot read images from a {type(src).__name__}; give a path, folder, glob, BGR uint8 numpy array, "
            "PIL image, torch tensor (RGB in [0, 1]), or a list of these"
        )


def resolve_images(source: Any) -> list[ImageItem]:
    """Flatten a source into a list of image paths and BGR arrays, checking each.

    Args:
        source: An image path, a folder (its images, sorted; not recursive), a glob pattern, a BGR ``uint8`` array
            (grey, BGRA and ``uint16`` are converted), a PIL image, a torch tensor ``(3, H, W)`` or ``(B, 3, H, W)``
            RGB in [0, 1], or a list/tuple of these. See the module docstring for how each is decoded.

    Raises:
        SourceError: a missing file, a video, an empty folder or pattern, an unsupported object or dtype, or an
            empty list.
    """
    items: list[ImageItem] = []
    _collect(source, items)
    if not items:
        raise SourceError("the image source is empty; give at least one image")
    return items


def read_image(item: ImageItem) -> tuple[np.ndarray, str | None]:
    """Decode one item into ``(BGR uint8 image, path or None)``, as ``cv2.imread`` decodes a file.

    Raises:
        SourceError: the file cannot be read or is not a decodable image.
    """
    if isinstance(item, np.ndarray):
        return item, None
    if not os.path.isfile(item):
        if os.path.islink(item):  # the link is what the user sees in the folder; its target is what is missing
            raise SourceError(f"cannot read image file {item}: it links to {os.readlink(item)}, which does not exist")
        raise SourceError(f"cannot read image file {item}: it no longer exists")
    image = cv2.imread(item, cv2.IMREAD_COLOR)
    if image is None:  # e.g. a non-ASCII path on Windows, which imread cannot open but imdecode can
        try:
            data = np.fromfile(item, dtype=np.uint8)
        except OSError as e:
            raise SourceError(f"cannot read image file {item}: {e.strerror or e}") from e
        image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise SourceError(f"cannot decode image {item}: the file is corrupt or not an image format OpenCV reads")
    return image, item
