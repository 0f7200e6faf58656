"""Draw detections on images: boxes with OpenCV, labels with Pillow in fonts that have every character.

OpenCV's ``putText`` only has Hershey fonts, which draw non-ASCII labels (``红色圆圈 0.88``, ``café``) as ``????``
in OpenCV 4.x. Labels are therefore rendered by Pillow, character by character in the first font of a chain that has
the glyph: ``$OVDET_FONT`` (a .ttf/.otf/.ttc of your choice), DejaVu Sans (shipped with matplotlib, which ultralytics
requires: Latin, Greek, Cyrillic, Arabic, Hebrew, symbols), Noto Sans CJK (the ``noto-cjk-sans-otc`` package: Chinese,
Japanese, Korean), then the system's fonts found through fontconfig (``fc-list``), for other scripts. The result
does not depend on the OpenCV version. Rendered labels are cached, so streams pay for each distinct text once.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    from PIL import ImageFont

    from ..results import Result

__all__ = ["draw_detections", "draw_label", "class_color", "font_chain", "draw_masks"]

logger = logging.getLogger(__name__)

# 20 well-separated colours (BGR), cycled by class id
_PALETTE = [
    (56, 56, 255), (151, 157, 255), (31, 112, 255), (29, 178, 255), (49, 210, 207), (10, 249, 72), (23, 204, 146),
    (134, 219, 61), (52, 147, 26), (187, 212, 0), (168, 153, 44), (255, 194, 0), (147, 69, 52), (255, 115, 100),
    (236, 24, 0), (255, 56, 132), (133, 0, 82), (255, 56, 203), (200, 149, 255), (199, 55, 255),
]  # fmt: skip


def class_color(class_id: int) -> tuple[int, int, int]:
    """The BGR colour used for a class id."""
    return _PALETTE[int(class_id) % len(_PALETTE)]


def _package_file(package: str, *parts: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations)), *parts)
    return path if path.is_file() else None


def _system_fonts() -> list[Path]:
    if shutil.which("fc-list") is None:
        return []
    try:
        out = subprocess.run(["fc-list", ":", "file"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    files = {line.split(":")[0].strip() for line in out.splitlines()}
    return sorted(Path(f) for f in files if f.lower().endswith((".ttf", ".otf", ".ttc")))


@functools.lru_cache(maxsize=1)
def font_chain() -> tuple[Path, ...]:
    """The font files labels are drawn with, in order of preference (see the module docstring)."""
    chain: list[Path] = []
    if os.environ.get("OVDET_FONT"):
        chain.append(Path(os.environ["OVDET_FONT"]).expanduser())
    for package, parts in (("matplotlib", ("mpl-data", "fonts", "ttf", "DejaVuSans.ttf")),
                           ("noto_cjk_sans_otc", ("NotoSansCJK-Regular.ttc",))):  # fmt: skip
        path = _package_file(package, *parts)
        if path is not None:
            chain.append(path)
    return tuple(p for p in chain if p.is_file())


@functools.lru_cache(maxsize=64)
def _charset(path: Path) -> frozenset[int]:
    from fontTools.ttLib import TTFont

    try:
        with TTFont(str(path), fontNumber=0, lazy=True) as font:
            return frozenset(font.getBestCmap() or ())
    except Exception as e:  # a broken font file must not break drawing; the next font in the chain is used
        logger.warning("cannot read font %s (%s); skipping it", path, e)
        return frozenset()


@functools.lru_cache(maxsize=1)
def _system_chain() -> tuple[Path, ...]:
    return tuple(_system_fonts())


def _font_for(char: str) -> Path | None:
    code = ord(char)
    for path in font_chain():
        if code in _charset(path):
            return path
    for path in _system_chain():  # looked at only for characters none of the above has
        if code in _charset(path):
            return path
    return None


@functools.lru_cache(maxsize=32)
def _font(path: Path | None, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    from PIL import ImageFont

    if path is None:
        return ImageFont.load_default(size)
    return ImageFont.truetype(str(path), size, index=0)


_warned_missing: set[str] = set()


@functools.lru_cache(maxsize=1024)
def _render(text: str, size: int) -> np.ndarray:
    """A ``(H, W)`` uint8 coverage mask of ``text`` at ``size`` px, each character in the first font that has it."""
    from PIL import Image, ImageDraw

    runs: list[tuple[Path | None, str]] = []
    for char in text:
        if char.isspace():  # any font has a space: keep the run going, or start one in the first font
            path = runs[-1][0] if runs and runs[-1][0] is not None else _font_for("a")
        else:
            path = _font_for(char)
        if path is None and char not in _warned_missing:
            _warned_missing.add(char)
            logger.warning("no font here has %r (U+%04X); set OVDET_FONT to one that does", char, ord(char))
        if runs and runs[-1][0] == path:
            runs[-1] = (path, runs[-1][1] + char)
        else:
            runs.append((path, char))
    ascent = max(_font(p, size).getmetrics()[0] for p, _ in runs)
    descent = max(_font(p, size).getmetrics()[1] for p, _ in runs)
    width = int(sum(np.ceil(_font(p, size).getlength(s)) for p, s in runs)) + 1
    mask = Image.new("L", (max(width, 1), ascent + descent), 0)
    draw = ImageDraw.Draw(mask)
    x = 0.0
    for path, chunk in runs:
        font = _font(path, size)
        draw.text((x, ascent), chunk, font=font, fill=255, anchor="ls")  # one shared baseline
        x += font.getlength(chunk)
    return np.asarray(mask)


def draw_label(canvas: np.ndarray, text: str, origin: tuple[int, int], color: tuple[int, int, int], size: int) -> None:
    """Draw ``text`` on a filled ``color`` box whose bottom-left corner is ``origin`` (moved inside the image), in
    place. Ink is black or white, whichever reads better on ``color``."""
    mask = _render(text, size)
    h, w = mask.shape
    pad = max(1, size // 8)
    x0, y1 = origin
    x0 = min(max(x0, 0), max(canvas.shape[1] - w - 2 * pad, 0))
    y0 = y1 - h - 2 * pad
    if y0 < 0:  # no room above the box: put the label just inside it
        y0, y1 = max(y1, 0), max(y1, 0) + h + 2 * pad
    x1 = x0 + w + 2 * pad
    region = canvas[y0:y1, x0:x1]
    if region.size == 0:
        return
    region[:] = color
    brightness = 0.299 * color[2] + 0.587 * color[1] + 0.114 * color[0]
    ink = np.array((0, 0, 0) if brightness > 150 else (255, 255, 255), np.float32)
    m = mask[: region.shape[0] - pad, : region.shape[1] - pad]
    sub = region[pad : pad + m.shape[0], pad : pad + m.shape[1]]
    alpha = (m.astype(np.float32) / 255)[..., None]
    sub[:] = (sub * (1 - alpha) + ink * alpha).round().astype(np.uint8)


def draw_detections(image: np.ndarray, result: Result, *, line_width: int | None = None) -> np.ndarray:
    """A copy of ``image`` (BGR) with each detection's box and ``label score`` drawn on it.

    Line width and font size follow the image size as in ultralytics' annotator (``0.003`` and ``0.035`` of the mean
    side, at least 1 and 12 px), scaled down for small images so a label never dwarfs a 256 px thumbnail.
    """
    canvas = np.ascontiguousarray(image).copy()
    if canvas.ndim == 2:
        canvas = cv2.cvtColor(canvas, cv2.COLOR_GRAY2BGR)
    mean_side = sum(canvas.shape[:2]) / 2
    lw = line_width or max(round(mean_side * 0.003), 1)
    size = max(round(mean_side * 0.035), 10)
    for box, score, cls in zip(result.boxes, result.scores, result.class_ids):
        color = class_color(cls)
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), color, lw, cv2.LINE_AA)
        draw_label(canvas, f"{result.names[cls]} {score:.2f}", (x1, y1), color, size)
    return canvas


def draw_masks(image: np.ndarray, result: Result, *, alpha: float = 0.5) -> np.ndarray:
    """A copy of ``image`` (BGR) with each instance mask of ``result`` blended in its class colour (``alpha`` opacity).

    Works on each mask's box region only, so a 4K frame with hundreds of masks costs what its boxes cover.
    """
    canvas = np.ascontiguousarray(image).copy()
    if canvas.ndim == 2:
        canvas = cv2.cvtColor(canvas, cv2.COLOR_GRAY2BGR)
    if result.masks is None:
        return canvas
    for crop, (x, y), cls in zip(result.masks.crops, result.masks.offsets, result.class_ids):
        if not crop.any():
            continue
        region = canvas[y : y + crop.shape[0], x : x + crop.shape[1]]
        color = np.array(class_color(cls), dtype=np.float32)
        region[crop] = (region[crop] * (1 - alpha) + color * alpha).astype(np.uint8)
    return canvas
