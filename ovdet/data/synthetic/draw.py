"""Rasterise the synthetic world with OpenCV: anti-aliased shape masks and varied backgrounds.

Pure functions of their arguments (randomness comes in through a ``numpy.random.Generator``), so a seed fixes every
pixel. Coordinates are OpenCV's: pixel ``(x, y)`` is centred on the integer point; a mask's tight box
``[min_x, min_y, max_x + 1, max_y + 1]`` is then a COCO-style box in pixel edges.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = [
    "SHAPE_NAMES",
    "BACKGROUND_KINDS",
    "ShapeSpec",
    "sample_shape_spec",
    "rasterize",
    "render_background",
]

SHAPE_NAMES = ("circle", "square", "triangle", "star", "hexagon", "ring", "cross", "diamond")
BACKGROUND_KINDS = ("plain", "gradient", "radial", "noise", "stripes", "checker", "blobs")

# Aspect ratios (width / height before rotation) that keep each shape what its name says: circles, rings and squares
# stay near-regular (a 2:1 "circle" is an ellipse); triangles and crosses may stretch a little.
_ASPECT = {
    "circle": (0.92, 1.08), "ring": (0.92, 1.08), "square": (0.92, 1.08), "hexagon": (0.88, 1.14),
    "star": (0.88, 1.14), "triangle": (0.8, 1.25), "cross": (0.85, 1.18), "diamond": (1.0, 1.0),
}
# The one shape-specific proportion ``ShapeSpec.param``: ring hole / outer radius, star inner / outer radius, cross
# arm half-width / half-span, diamond width / height. A diamond is a clearly non-square rhombus, or with its random
# rotation it would be a square.
_PARAM = {"ring": (0.45, 0.62), "star": (0.4, 0.5), "cross": (0.24, 0.34), "diamond": (0.52, 0.68)}
_SHIFT = 4  # sub-pixel precision of OpenCV's drawing: coordinates in 1/16 px


@dataclass(frozen=True)
class ShapeSpec:
    """The geometry of one shape instance.

    Attributes:
        shape: One of ``SHAPE_NAMES``.
        center: ``(x, y)`` in pixels.
        radius: Circumradius in pixels before the aspect stretch (the nominal size is ``2 * radius``).
        angle: Rotation in degrees.
        aspect: Width / height stretch applied before rotation (area-preserving).
        param: The shape's own proportion (see ``_PARAM``); ignored by shapes without one.
    """

    shape: str
    center: tuple[float, float]
    radius: float
    angle: float = 0.0
    aspect: float = 1.0
    param: float = 0.5


def sample_shape_spec(shape: str, center: tuple[float, float], radius: float, rng: np.random.Generator) -> ShapeSpec:
    """A ``ShapeSpec`` with random rotation, aspect and proportion, within limits that keep ``shape`` recognisable."""
    if shape not in SHAPE_NAMES:
        raise ValueError(f"unknown shape {shape!r}; known: {', '.join(SHAPE_NAMES)}")
    lo, hi = _ASPECT[shape]
    aspect = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    param = float(rng.uniform(*_PARAM.get(shape, (0.5, 0.5))))
    angle = float(rng.uniform(0, 360))
    return ShapeSpec(shape, (float(center[0]), float(center[1])), float(radius), angle, aspect, param)


def _unit_polygon(shape: str, p: float) -> np.ndarray:
    """Vertices ``(K, 2)`` of a polygonal shape with circumradius ~1, centred at the origin, y pointing down."""
    def ring_of(count: int, start_deg: float, radii=(1.0,)) -> np.ndarray:
        t = np.deg2rad(start_deg + np.arange(count) * 360.0 / count)
        r = np.resize(np.asarray(radii, dtype=np.float64), count)
        return np.stack([r * np.cos(t), r * np.sin(t)], axis=1)

    if shape == "triangle":
        return ring_of(3, -90)
    if shape == "square":
        return ring_of(4, 45)
    if shape == "hexagon":
        return ring_of(6, 0)
    if shape == "star":
        return ring_of(10, -90, (1.0, p))
    if shape == "diamond":
        return np.array([[0, -1], [p, 0], [0, 1], [-p, 0]], dtype=np.float64)
    if shape == "cross":
        w = p
        return np.array([[-w, -1], [w, -1], [w, -w], [1, -w], [1, w], [w, w], [w, 1], [-w, 1], [-w, w], [-1, w],
                         [-1, -w], [-w, -w]], dtype=np.float64)
    raise ValueError(f"{shape!r} is not a polygon")


def rasterize(spec: ShapeSpec, height: int, width: int) -> tuple[np.ndarray, tuple[int, int], int]:
    """Draw one anti-aliased shape mask, clipped to a ``height × width`` image.

    Returns:
        ``(alpha, (x0, y0), full_area)``: ``alpha`` is a ``uint8`` coverage patch (255 = fully covered) whose top-left
        pixel is ``(x0, y0)`` in the image (it may be empty when the shape lies outside); ``full_area`` counts the
        pixels with coverage >= 50 % of the whole, unclipped shape, so callers can tell how much a border cuts off.
    """
    sx, sy = math.sqrt(spec.aspect), 1.0 / math.sqrt(spec.aspect)
    cx, cy = spec.center
    if spec.shape in ("circle", "ring"):
        ax, ay = spec.radius * sx, spec.radius * sy
        extent = max(ax, ay)
        bx0, by0 = math.floor(cx - extent) - 2, math.floor(cy - extent) - 2
        bx1, by1 = math.ceil(cx + extent) + 3, math.ceil(cy + extent) + 3
        patch = np.zeros((by1 - by0, bx1 - bx0), np.uint8)
        scale = 1 << _SHIFT
        centre = (round((cx - bx0) * scale), round((cy - by0) * scale))
        axes = (round(ax * scale), round(ay * scale))
        cv2.ellipse(patch, centre, axes, spec.angle, 0, 360, 255, -1, cv2.LINE_AA, _SHIFT)
        if spec.shape == "ring":
            hole = (round(ax * spec.param * scale), round(ay * spec.param * scale))
            cv2.ellipse(patch, centre, hole, spec.angle, 0, 360, 0, -1, cv2.LINE_AA, _SHIFT)
    else:
        pts = _unit_polygon(spec.shape, spec.param) * [sx * spec.radius, sy * spec.radius]
        t = math.radians(spec.angle)
        rot = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
        pts = pts @ rot.T + [cx, cy]
        bx0, by0 = math.floor(pts[:, 0].min()) - 2, math.floor(pts[:, 1].min()) - 2
        bx1, by1 = math.ceil(pts[:, 0].max()) + 3, math.ceil(pts[:, 1].max()) + 3
        patch = np.zeros((by1 - by0, bx1 - bx0), np.uint8)
        fixed = np.round((pts - [bx0, by0]) * (1 << _SHIFT)).astype(np.int32)
        cv2.fillPoly(patch, [fixed], 255, cv2.LINE_AA, _SHIFT)
    full_area = int(np.count_nonzero(patch >= 128))
    x0, y0, x1, y1 = max(bx0, 0), max(by0, 0), min(bx1, width), min(by1, height)
    if x1 <= x0 or y1 <= y0:
        return np.zeros((0, 0), np.uint8), (0, 0), full_area
    return patch[y0 - by0:y1 - by0, x0 - bx0:x1 - bx0], (x0, y0), full_area


# --- backgrounds ---------------------------------------------------------------------------------------------------
def _hsv_bgr(h: float, s: float, v: float) -> np.ndarray:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0))
    return np.array([b, g, r], np.float32) * 255


def _two_colors(rng: np.random.Generator, max_value_gap: float) -> tuple[np.ndarray, np.ndarray]:
    """Two muted colours (saturation <= 0.5) no further apart in brightness than ``max_value_gap``: the saturated
    object colours stand out, and texture edges are too faint to pass for objects."""
    h, s, v = rng.uniform(), rng.uniform(0, 0.5), rng.uniform(0.08, 0.95)
    h2, s2 = h + rng.uniform(-0.15, 0.15), rng.uniform(0, 0.5)
    v2 = float(np.clip(v + rng.uniform(-max_value_gap, max_value_gap), 0.05, 0.97))
    return _hsv_bgr(h, s, v), _hsv_bgr(h2, s2, v2)


def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    return xs, ys


_COARSE = 4  # smooth fields (radial, blobs) are evaluated on a 4x coarser grid and upsampled: same look, 16x less math


def _coarse_grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Full-image pixel coordinates sampled every ``_COARSE`` pixels (one extra row/column to cover the edges)."""
    ys, xs = np.mgrid[0:height // _COARSE + 2, 0:width // _COARSE + 2].astype(np.float32) * _COARSE
    return xs, ys


def _upsample(field: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear values of a ``_coarse_grid`` field at every pixel."""
    scale = np.float32(1 / _COARSE)
    map_x = np.broadcast_to(np.arange(width, dtype=np.float32) * scale, (height, width))
    map_y = np.broadcast_to(np.arange(height, dtype=np.float32)[:, None] * scale, (height, width))
    return cv2.remap(field.astype(np.float32), np.ascontiguousarray(map_x), np.ascontiguousarray(map_y),
                     cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _rotated_coordinate(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    xs, ys = _grid(height, width)
    t = rng.uniform(0, np.pi)
    return xs * np.float32(np.cos(t)) + ys * np.float32(np.sin(t))


def render_background(kind: str, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A ``(height, width, 3)`` BGR ``uint8`` background of one of ``BACKGROUND_KINDS``.

    ``plain``: one colour; ``gradient``/``radial``: a linear or radial blend of two; ``noise``: smooth low-frequency
    noise plus grain; ``stripes``, ``checker``: fine, low-contrast, randomly rotated textures; ``blobs``: soft
    Gaussian blotches. Texture periods stay well below the smallest object size, so no texture cell looks like an
    object.

    Raises:
        ValueError: an unknown ``kind``.
    """
    short = min(height, width)
    if kind == "plain":
        c1, c2 = _two_colors(rng, 0.0)
        return np.full((height, width, 3), np.rint(c1), np.uint8)
    elif kind == "gradient":
        c1, c2 = _two_colors(rng, 0.6)
        u = _rotated_coordinate(height, width, rng)
        t = (u - u.min()) / max(float(u.max() - u.min()), 1.0)
    elif kind == "radial":
        c1, c2 = _two_colors(rng, 0.5)
        xs, ys = _coarse_grid(height, width)
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        d = np.sqrt((xs - cx) ** 2 + (ys - cy) ** 2)
        t = _upsample(d / max(float(d.max()), 1.0), height, width)
    elif kind == "noise":
        c1, c2 = _two_colors(rng, 0.4)
        cells = rng.integers(3, 9)
        coarse = rng.uniform(0, 1, (cells, max(round(cells * width / height), 2))).astype(np.float32)
        t = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
        t += rng.standard_normal((height, width), dtype=np.float32) * np.float32(0.06)
    elif kind == "stripes":
        c1, c2 = _two_colors(rng, 0.25)
        period = rng.uniform(0.025, 0.08) * short
        u = _rotated_coordinate(height, width, rng)
        t = 0.5 + 0.5 * np.sin(u * np.float32(2 * np.pi / period))
        if rng.uniform() < 0.5:
            t = (t > 0.5).astype(np.float32)
    elif kind == "checker":
        c1, c2 = _two_colors(rng, 0.2)
        cell = rng.uniform(0.025, 0.06) * short
        xs, ys = _grid(height, width)
        a = rng.uniform(0, np.pi / 2)
        u = xs * np.float32(np.cos(a)) + ys * np.float32(np.sin(a))
        v = -xs * np.float32(np.sin(a)) + ys * np.float32(np.cos(a))
        t = ((np.floor(u / cell) + np.floor(v / cell)) % 2).astype(np.float32)
    elif kind == "blobs":
        c1, c2 = _two_colors(rng, 0.35)
        xs, ys = _coarse_grid(height, width)
        t = np.zeros(xs.shape, np.float32)
        for _ in range(rng.integers(4, 12)):
            cx, cy, sigma = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(0.1, 0.3) * short
            t += np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / np.float32(2 * sigma**2))
        t = _upsample(t / max(float(t.max()), 1e-6), height, width)
    else:
        raise ValueError(f"unknown background kind {kind!r}; known: {', '.join(BACKGROUND_KINDS)}")
    t = np.clip(t, 0, 1)
    # c1 + (c2 - c1) * t per channel; convertScaleAbs rounds and saturates in one fast pass (values stay >= 0)
    return cv2.merge([cv2.convertScaleAbs(t, alpha=float(b - a), beta=float(a)) for a, b in zip(c1, c2)])
