"""Synthetic detection scenes: coloured shapes on varied backgrounds, with honest boxes and grounded captions.

Objects are painted one over another. Each object's box is the tight box of its *visible* pixels, and an object is
only painted if it stays at least ``min_visible`` visible (image borders included) and every object under it does
too, so no half-hidden, unlabelled fragment is ever left in an image. An object is also only painted where it differs
from what lies beneath (CIELAB distance), so a white square never vanishes into a white background.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import cv2
import numpy as np

from ...errors import ConfigError
from .captions import make_caption
from .draw import BACKGROUND_KINDS, ShapeSpec, rasterize, render_background, sample_shape_spec
from .world import BGR, Pair, World

__all__ = ["LIGHTING", "SceneConfig", "SceneObject", "Scene", "Painted", "apply_lighting", "compose", "render_scene",
           "jitter_color"]

# How a scene is lit. "neutral": as the colours are defined (the bundled default model's world). "tungsten": dim, warm
# light, as a 3200 K tungsten lamp (photography's "tungsten" white point) looks to a camera white-balanced for
# daylight: the blackbody's sRGB colour at 3200 K is about (255, 187, 120) against daylight's white (Mitchell
# Charity's blackbody colour table), so red passes, green is cut to ~3/4 and blue to ~1/2; overall 60-90 % of the
# light, falling off away from the lamp. A style the default model never trained on (its AP50 drops from 0.97 to about
# 0.63): white turns orange, blue turns dark, yellow and orange move closer.
LIGHTING = ("neutral", "tungsten")
_TUNGSTEN_BGR = np.array([120, 187, 255], np.float32) / 255.0
_TUNGSTEN_LEVEL = (0.6, 0.9)
_TUNGSTEN_FALLOFF = 0.3


@dataclass(frozen=True)
class SceneConfig:
    """How scenes are sampled. Ranges are inclusive ``(low, high)``.

    Attributes:
        long_side: Image long side in pixels.
        aspect: Image width / height (log-uniform).
        objects: Objects attempted per image (some may not fit).
        object_size: Nominal object diameter as a fraction of the image's short side (log-uniform). The default
            (16–45 %) suits a detector at imgsz 256–320.
        min_visible: Minimum visible fraction of every painted object.
        min_contrast: Minimum CIELAB distance between an object's colour and (95 % of) the pixels it covers.
        repeat: Probability that a further object repeats a pair already in the scene ("two red circles").
        small_below, large_above: Object size fractions under/over which captions may say "small"/"large".
        backgrounds: Background kinds to draw from (``draw.BACKGROUND_KINDS``).
        blur: Probability of a global Gaussian blur (sigma 0.5–1.3 px).
        noise: Probability of Gaussian pixel noise (sigma 2–8).
        jpeg_quality: JPEG re-encoding quality range, or ``None`` for lossless images (written as PNG).
        tries: Placement attempts per object.
        lighting: One of ``LIGHTING`` (see there): ``"neutral"`` (default) or ``"tungsten"`` (dim warm light).
    """

    long_side: tuple[int, int] = (192, 384)
    aspect: tuple[float, float] = (0.6, 1.67)
    objects: tuple[int, int] = (1, 6)
    object_size: tuple[float, float] = (0.16, 0.45)
    min_visible: float = 0.4
    min_contrast: float = 30.0
    repeat: float = 0.2
    small_below: float = 0.22
    large_above: float = 0.34
    backgrounds: tuple[str, ...] = BACKGROUND_KINDS
    blur: float = 0.25
    noise: float = 0.3
    jpeg_quality: tuple[int, int] | None = (40, 95)
    tries: int = 20
    lighting: str = "neutral"

    def __post_init__(self) -> None:
        for name in ("long_side", "aspect", "objects", "object_size", "jpeg_quality"):
            lo_hi = getattr(self, name)
            if lo_hi is not None and not (len(lo_hi) == 2 and 0 < lo_hi[0] <= lo_hi[1]):
                raise ConfigError(f"SceneConfig.{name} must be a (low, high) range with 0 < low <= high, got {lo_hi}")
        if self.long_side[0] < 16 or self.object_size[1] > 1:
            raise ConfigError("SceneConfig needs long_side >= 16 px and object_size fractions <= 1")
        if not 0 < self.min_visible <= 1:
            raise ConfigError(f"SceneConfig.min_visible must be in (0, 1], got {self.min_visible}")
        for name in ("repeat", "blur", "noise"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"SceneConfig.{name} is a probability in [0, 1], got {getattr(self, name)}")
        if self.tries < 1 or self.min_contrast < 0:
            raise ConfigError("SceneConfig needs tries >= 1 and min_contrast >= 0")
        if self.lighting not in LIGHTING:
            raise ConfigError(f"unknown lighting {self.lighting!r}; choose from {', '.join(LIGHTING)}")
        unknown = set(self.backgrounds) - set(BACKGROUND_KINDS)
        if not self.backgrounds or unknown:
            raise ConfigError(f"unknown background kinds {sorted(unknown)}; choose from {', '.join(BACKGROUND_KINDS)}")


@dataclass(frozen=True)
class SceneObject:
    """One labelled object. ``box`` is ``(x1, y1, x2, y2)`` in pixel edges (the tight box of its visible pixels);
    ``area`` counts visible pixels; ``visible`` is the visible fraction of the whole shape; ``span`` is its phrase
    in the caption, ``caption[span[0]:span[1]]``; ``size`` is "small", "large" or ``None`` (medium), which the
    caption may or may not mention."""

    color: str
    shape: str
    box: tuple[int, int, int, int]
    area: int
    visible: float
    span: tuple[int, int]
    size: str | None = None

    @property
    def pair(self) -> Pair:
        return (self.color, self.shape)


@dataclass(frozen=True, eq=False)
class Scene:
    """A rendered image (``(H, W, 3)`` BGR ``uint8``, after blur, noise and JPEG), its objects in paint order
    (bottom first), its caption, background kind, and the encoded JPEG (``None`` when lossless)."""

    image: np.ndarray = field(repr=False)
    objects: tuple[SceneObject, ...]
    caption: str
    background: str
    jpeg: bytes | None = field(default=None, repr=False)


class Painted(NamedTuple):
    """A painted object as ``compose`` reports it."""

    index: int  # position in the items given to compose
    box: tuple[int, int, int, int]  # xyxy of the visible pixels, pixel edges
    area: int  # visible pixels
    visible: float  # visible fraction of the whole (unclipped, unoccluded) shape


def _lab(bgr: np.ndarray) -> np.ndarray:
    """CIELAB of ``(..., 3)`` BGR values in 0–255."""
    flat = np.asarray(bgr, np.float32).reshape(-1, 1, 3) / 255.0
    return cv2.cvtColor(flat, cv2.COLOR_BGR2Lab).reshape(-1, 3)


def _close_fraction(pixels_bgr: np.ndarray, color: BGR, threshold: float) -> float:
    if pixels_bgr.size == 0:
        return 0.0
    distance = np.linalg.norm(_lab(pixels_bgr) - _lab(np.array(color))[0], axis=1)
    return float(np.mean(distance < threshold))


class _Composer:
    """Paints objects bottom-up while tracking how much of each stays visible."""

    def __init__(self, background: np.ndarray, min_visible: float, min_contrast: float):
        self.canvas = background.astype(np.float32)
        self.min_visible, self.min_contrast = min_visible, min_contrast
        self.layers: list[tuple[np.ndarray, int, int, int]] = []  # (visibility patch float32, x0, y0, full area)

    def add(self, spec: ShapeSpec, color: BGR, shade: tuple[float, float] = (0.0, 0.0)) -> bool:
        height, width = self.canvas.shape[:2]
        alpha, (x0, y0), full = rasterize(spec, height, width)
        covered = alpha >= 128
        if full == 0 or np.count_nonzero(covered) < self.min_visible * full:
            return False  # mostly outside the image
        ph, pw = alpha.shape
        region = self.canvas[y0:y0 + ph, x0:x0 + pw]
        if _close_fraction(region[covered], color, self.min_contrast) > 0.05:
            return False  # would blend into what lies beneath
        a = alpha.astype(np.float32) / 255.0
        updates = []
        for vis, lx, ly, lfull in self.layers:
            ix0, iy0 = max(x0, lx), max(y0, ly)
            ix1, iy1 = min(x0 + pw, lx + vis.shape[1]), min(y0 + ph, ly + vis.shape[0])
            if ix1 <= ix0 or iy1 <= iy0:
                continue
            old = vis[iy0 - ly:iy1 - ly, ix0 - lx:ix1 - lx]
            new = old * (1.0 - a[iy0 - y0:iy1 - y0, ix0 - x0:ix1 - x0])
            lost = np.count_nonzero(old >= 0.5) - np.count_nonzero(new >= 0.5)
            if np.count_nonzero(vis >= 0.5) - lost < self.min_visible * lfull:
                return False  # would hide too much of an object below
            updates.append((old, new))
        for old, new in updates:
            old[...] = new
        ys, xs = np.mgrid[y0:y0 + ph, x0:x0 + pw].astype(np.float32)
        gx, gy = shade
        radius = max(spec.radius, 1.0)
        light = 1.0 + (gx * (xs - spec.center[0]) + gy * (ys - spec.center[1])) / radius
        fill = np.clip(np.asarray(color, np.float32) * light[..., None], 0, 255)
        region[...] = region * (1.0 - a[..., None]) + fill * a[..., None]
        self.layers.append((a.copy(), x0, y0, full))
        return True

    def visible(self) -> list[Painted]:
        out = []
        for k, (vis, x0, y0, full) in enumerate(self.layers):
            ys, xs = np.nonzero(vis >= 0.5)
            box = (x0 + int(xs.min()), y0 + int(ys.min()), x0 + int(xs.max()) + 1, y0 + int(ys.max()) + 1)
            out.append(Painted(k, box, len(xs), len(xs) / full))
        return out

    def image(self) -> np.ndarray:
        return np.clip(np.rint(self.canvas), 0, 255).astype(np.uint8)


def compose(
    background: np.ndarray,
    items: Sequence[tuple[ShapeSpec, BGR]],
    *,
    min_visible: float = 0.4,
    min_contrast: float = 30.0,
) -> tuple[np.ndarray, list[Painted]]:
    """Paint shapes in order on a copy of ``background``, skipping any that would break the visibility rules.

    An item is skipped when less than ``min_visible`` of it would lie inside the image, when more than 5 % of its
    pixels would cover something within ``min_contrast`` (CIELAB) of its colour, or when it would leave an object
    already painted less than ``min_visible`` visible.

    Args:
        background: ``(H, W, 3)`` BGR ``uint8``.
        items: ``(shape, BGR colour)`` pairs, bottom first.

    Returns:
        ``(image, painted)``: the ``uint8`` image and, for each painted item, ``Painted(index into items, box xyxy of
        its visible pixels in pixel edges, visible pixel count, visible fraction)``.
    """
    composer = _Composer(background, min_visible, min_contrast)
    kept = [i for i, (spec, color) in enumerate(items) if composer.add(spec, tuple(color))]
    return composer.image(), [Painted(kept[p.index], p.box, p.area, p.visible) for p in composer.visible()]


def jitter_color(color: BGR, rng: np.random.Generator) -> BGR:
    """The fill colour of one instance: its colour's BGR value under slightly varied light."""
    value = np.asarray(color, np.float64) * rng.uniform(0.88, 1.08) + rng.normal(0, 7, 3)
    return tuple(int(v) for v in np.clip(np.rint(value), 0, 255))  # type: ignore[return-value]


def apply_lighting(image: np.ndarray, lighting: str, rng: np.random.Generator) -> np.ndarray:
    """``image`` (``(H, W, 3)`` BGR ``uint8``) under ``lighting`` (see ``LIGHTING``). ``"neutral"`` returns it as it is
    and draws nothing from ``rng``, so neutral scenes are the same, pixel for pixel, as before lighting existed.

    ``"tungsten"``: each channel scaled by the lamp's colour (±5 %), the whole by a level of 0.6-0.9, and by a
    falloff ``1 - 0.3 (d / d_max)²`` from a random lamp position.
    """
    if lighting == "neutral":
        return image
    if lighting != "tungsten":
        raise ConfigError(f"unknown lighting {lighting!r}; choose from {', '.join(LIGHTING)}")
    h, w = image.shape[:2]
    gains = _TUNGSTEN_BGR * rng.uniform(0.95, 1.05, 3).astype(np.float32) * np.float32(rng.uniform(*_TUNGSTEN_LEVEL))
    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    d2 = (xs - cx) ** 2 + (ys - cy) ** 2
    falloff = 1.0 - _TUNGSTEN_FALLOFF * d2 / max(float(d2.max()), 1.0)
    lit = image.astype(np.float32) * gains * falloff[..., None]
    return np.clip(np.rint(lit), 0, 255).astype(np.uint8)


def _degrade(image: np.ndarray, rng: np.random.Generator, config: SceneConfig) -> tuple[np.ndarray, bytes | None]:
    if rng.uniform() < config.noise:
        noisy = image + rng.standard_normal(image.shape, dtype=np.float32) * np.float32(rng.uniform(2, 8))
        image = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
    if rng.uniform() < config.blur:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.5, 1.3))
    if config.jpeg_quality is None:
        return image, None
    quality = int(rng.integers(config.jpeg_quality[0], config.jpeg_quality[1] + 1))
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok, "OpenCV failed to encode a JPEG"
    return cv2.imdecode(buffer, cv2.IMREAD_COLOR), buffer.tobytes()


def _pick_background(pairs: Sequence[Pair], world: World, height: int, width: int, rng: np.random.Generator,
                     config: SceneConfig) -> tuple[str, np.ndarray]:
    """A background on which every planned object colour stands out (up to 10 draws; else the last one)."""
    colors = {world.colors[c] for c, _ in pairs}
    for _ in range(10):
        kind = config.backgrounds[rng.integers(len(config.backgrounds))]
        background = render_background(kind, height, width, rng)
        thumb = cv2.resize(background, (24, 24), interpolation=cv2.INTER_AREA).reshape(-1, 3)
        if all(_close_fraction(thumb, c, config.min_contrast) <= 0.05 for c in colors):
            break
    return kind, background


def render_scene(
    world: World,
    rng: np.random.Generator | int,
    *,
    pairs: Sequence[Pair] | None = None,
    objects: Sequence[Pair] | None = None,
    config: SceneConfig = SceneConfig(),
) -> Scene:
    """Render one random scene.

    Args:
        world: Colours, shapes and synonyms.
        rng: A generator or an integer seed; the same seed gives the same scene, pixel for pixel.
        pairs: Pairs to draw objects from, uniformly (default: ``world.seen_pairs``, never a held-out pair).
        objects: Exactly these pairs, in this paint order, instead of a random draw (an object that cannot be placed
            after ``config.tries`` attempts is left out).
        config: Sampling ranges.

    Returns:
        A ``Scene`` whose objects are all at least ``config.min_visible`` visible.

    Raises:
        ConfigError: a pair names a colour or shape the world does not have.
    """
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    pool = tuple(world.seen_pairs if pairs is None else pairs)
    for c, s in tuple(pool) + tuple(objects or ()):
        if c not in world.colors or s not in world.shapes:
            raise ConfigError(f"({c!r}, {s!r}) is not a pair of this world; colours: {', '.join(world.colors)}; "
                              f"shapes: {', '.join(world.shapes)}")
    long_side = int(rng.integers(config.long_side[0], config.long_side[1] + 1))
    aspect = math.exp(rng.uniform(math.log(config.aspect[0]), math.log(config.aspect[1])))
    width, height = (long_side, max(round(long_side / aspect), 16)) if aspect >= 1 else (
        max(round(long_side * aspect), 16), long_side)
    if objects is None:
        planned: list[Pair] = []
        for _ in range(int(rng.integers(config.objects[0], config.objects[1] + 1))):
            source = planned if planned and rng.uniform() < config.repeat else pool
            planned.append(tuple(source[rng.integers(len(source))]))
    else:
        planned = [tuple(p) for p in objects]
    kind, background = _pick_background(planned, world, height, width, rng, config)

    composer = _Composer(background, config.min_visible, config.min_contrast)
    short = min(height, width)
    log_lo, log_hi = math.log(config.object_size[0]), math.log(config.object_size[1])
    placed: list[tuple[Pair, str | None]] = []
    for pair in planned:
        color = jitter_color(world.colors[pair[0]], rng)
        for _ in range(config.tries):
            fraction = math.exp(rng.uniform(log_lo, log_hi))
            radius = fraction * short / 2
            margin = 0.6 * radius  # lets up to ~30 % of an object hang over the border
            cx = rng.uniform(margin, width - margin) if width > 2 * margin else width / 2
            cy = rng.uniform(margin, height - margin) if height > 2 * margin else height / 2
            spec = sample_shape_spec(pair[1], (cx, cy), radius, rng)
            shade = tuple(rng.uniform(-0.12, 0.12, 2))
            if composer.add(spec, color, shade):
                size = "small" if fraction < config.small_below else "large" if fraction > config.large_above else None
                placed.append((pair, size))
                break

    visible = composer.visible()
    caption, spans = make_caption(world, [(p[0], p[1], size) for p, size in placed], rng, background=kind)
    scene_objects = tuple(
        SceneObject(pair[0], pair[1], v.box, v.area, round(v.visible, 4), spans[i], size)
        for i, ((pair, size), v) in enumerate(zip(placed, visible))
    )
    image, jpeg = _degrade(apply_lighting(composer.image(), config.lighting, rng), rng, config)
    return Scene(image, scene_objects, caption, kind, jpeg)
