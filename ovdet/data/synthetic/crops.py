"""Object crops with captions, for training a small CLIP on the synthetic world.

Two sources: ``render_crops`` draws single objects afresh (centred, with context, on the scenes' kinds of
background), and ``scene_crops`` / ``crop_boxes`` cut labelled boxes out of rendered scenes, neighbours and all.
Both default to seen pairs only, so a CLIP trained on them has never been shown a held-out pair either.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from ...errors import ConfigError
from .captions import object_caption
from .draw import sample_shape_spec
from .scene import Scene, SceneConfig, _Composer, _degrade, _pick_background, jitter_color
from .world import Pair, World

__all__ = ["Crop", "render_crop", "render_crops", "crop_boxes", "scene_crops"]


@dataclass(frozen=True, eq=False)
class Crop:
    """A ``(S, S, 3)`` BGR ``uint8`` image of one object, a caption naming it, and its colour and shape."""

    image: np.ndarray = field(repr=False)
    caption: str
    color: str
    shape: str

    @property
    def pair(self) -> Pair:
        return (self.color, self.shape)


def render_crop(
    world: World,
    rng: np.random.Generator | int,
    *,
    pairs: Sequence[Pair] | None = None,
    size: tuple[int, int] = (48, 96),
    config: SceneConfig = SceneConfig(),
) -> Crop:
    """One object, 50–80 % of a square crop of random side in ``size``, on a random background.

    Args:
        world: Colours, shapes and synonyms.
        rng: A generator or integer seed.
        pairs: Pairs to choose from, uniformly (default: ``world.seen_pairs``).
        size: Side range in pixels.
        config: Supplies backgrounds, contrast rule, blur, noise and JPEG quality.

    Raises:
        ConfigError: an empty ``pairs`` or an invalid ``size``.
    """
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    pool = tuple(world.seen_pairs if pairs is None else pairs)
    if not pool:
        raise ConfigError("render_crop needs at least one (colour, shape) pair to draw")
    if not (len(size) == 2 and 8 <= size[0] <= size[1]):
        raise ConfigError(f"crop size must be a (low, high) range with 8 <= low <= high, got {size}")
    pair = tuple(pool[rng.integers(len(pool))])
    side = int(rng.integers(size[0], size[1] + 1))
    color = jitter_color(world.colors[pair[0]], rng)
    for attempt in range(config.tries):
        kind, background = _pick_background([pair], world, side, side, rng, config)
        # the last attempt waives the contrast rule, so a crop always shows the object its caption names
        contrast = config.min_contrast if attempt < config.tries - 1 else 0.0
        composer = _Composer(background, config.min_visible, contrast)
        radius = rng.uniform(0.25, 0.4) * side
        center = side / 2 + rng.uniform(-0.08, 0.08, 2) * side
        spec = sample_shape_spec(pair[1], tuple(center), radius, rng)
        if composer.add(spec, color, tuple(rng.uniform(-0.12, 0.12, 2))):
            break
    image, _ = _degrade(composer.image(), rng, config)
    return Crop(image, object_caption(world, pair, rng, background=kind), pair[0], pair[1])


def render_crops(
    world: World,
    count: int,
    *,
    seed: int = 0,
    start: int = 0,
    pairs: Sequence[Pair] | None = None,
    size: tuple[int, int] = (48, 96),
    config: SceneConfig = SceneConfig(),
) -> list[Crop]:
    """``count`` crops; crop ``i`` is drawn from the seed ``[seed, i]`` for ``i`` in ``start .. start + count - 1``,
    so chunks rendered separately (or in parallel) join into the same sequence. See ``render_crop``."""
    return [render_crop(world, np.random.default_rng([seed, i]), pairs=pairs, size=size, config=config)
            for i in range(start, start + count)]


def crop_boxes(image: np.ndarray, boxes: np.ndarray, *, context: float = 0.15, square: bool = True) -> list[np.ndarray]:
    """Cut boxes out of an image with some surrounding context.

    Args:
        image: ``(H, W, 3)`` BGR ``uint8``.
        boxes: ``(N, 4)`` xyxy in pixels.
        context: Margin added on each side, as a fraction of the box's longer side.
        square: Grow each crop to a square around the box centre (what a CLIP image tower expects).

    Returns:
        ``N`` crops; parts outside the image are filled by replicating its border.
    """
    out = []
    height, width = image.shape[:2]
    for x1, y1, x2, y2 in np.asarray(boxes, np.float64).reshape(-1, 4):
        bw, bh = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
        if square:
            bw = bh = max(bw, bh)
        margin = context * max(bw, bh)
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        cx0, cy0 = math.floor(cx - bw / 2 - margin), math.floor(cy - bh / 2 - margin)
        cx1, cy1 = math.ceil(cx + bw / 2 + margin), math.ceil(cy + bh / 2 + margin)
        inner = image[max(cy0, 0):min(cy1, height), max(cx0, 0):min(cx1, width)]
        out.append(cv2.copyMakeBorder(inner, max(-cy0, 0), max(cy1 - height, 0), max(-cx0, 0), max(cx1 - width, 0),
                                      cv2.BORDER_REPLICATE))
    return out


def scene_crops(scene: Scene, world: World, rng: np.random.Generator | int, *, context: float = 0.15) -> list[Crop]:
    """A captioned crop of every object in ``scene`` (its visible box plus context, squared)."""
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    images = crop_boxes(scene.image, np.array([o.box for o in scene.objects]).reshape(-1, 4), context=context)
    return [Crop(img, object_caption(world, o.pair, rng, background=scene.background), o.color, o.shape)
            for img, o in zip(images, scene.objects)]
