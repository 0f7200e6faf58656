"""Captions for synthetic scenes and crops, with MDETR/GLIP-style ``tokens_positive`` character spans per object.

"two red discs, a small yellow star and a violet box on a striped background": objects of the same pair (and size
word) are counted into one phrase; colour and shape words are drawn from the world's synonyms; each object's span
covers its phrase without the count word (``"red discs"``, ``"small yellow star"``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from .world import Pair, World

__all__ = ["BACKGROUND_WORDS", "SIZE_WORDS", "plural", "make_caption", "object_caption", "mentions_pair"]

SIZE_WORDS = ("small", "large")
BACKGROUND_WORDS = {"plain": "plain", "gradient": "gradient", "radial": "gradient", "noise": "noisy",
                    "stripes": "striped", "checker": "checkered", "blobs": "blotchy"}
_COUNTS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
_SCENE_PREFIXES = ("", "", "a picture of ", "an image of ", "a photo of ", "a scene with ", "a scene showing ")
_CROP_TEMPLATES = ("{a} {p}", "{a} {p}", "{p}", "a photo of {a} {p}", "a picture of {a} {p}", "{a} {p} shape")


def plural(word: str) -> str:
    """Plural of a (multi-word) noun: box → boxes, rhombus → rhombuses, plus sign → plus signs."""
    if word.endswith(("s", "x", "z", "ch", "sh")):
        return word + "es"
    return word + "s"


def _article(next_word: str) -> str:
    return "an" if next_word[:1].lower() in "aeiou" else "a"


def _count_word(count: int, next_word: str) -> str:
    if count == 1:
        return _article(next_word)
    return _COUNTS[count] if count < len(_COUNTS) else str(count)


def _phrase(world: World, pair: Pair, rng: np.random.Generator, *, size: str | None, count: int) -> str:
    color = world.color_synonyms[pair[0]][rng.integers(len(world.color_synonyms[pair[0]]))]
    shape = world.shape_synonyms[pair[1]][rng.integers(len(world.shape_synonyms[pair[1]]))]
    words = [color, shape if count == 1 else plural(shape)]
    return " ".join(([size] if size else []) + words)


def make_caption(
    world: World,
    objects: Sequence[tuple[str, str, str | None]],
    rng: np.random.Generator,
    *,
    background: str | None = None,
) -> tuple[str, list[tuple[int, int]]]:
    """Describe the objects of one scene.

    Args:
        world: Supplies the synonyms.
        objects: ``(colour, shape, size_word or None)`` per object; ``size_word`` is one of ``SIZE_WORDS``.
        rng: Chooses order, synonyms, template, and whether sizes and the background are mentioned.
        background: A ``BACKGROUND_WORDS`` key, mentioned in about half the captions.

    Returns:
        ``(caption, spans)``: ``spans[i] = (start, end)`` is the character span of object ``i``'s phrase,
        ``caption[start:end]``; objects counted together share a span.
    """
    if not objects:
        where = "" if background is None else f" {BACKGROUND_WORDS[background]}"
        return f"an empty{where} background", []
    with_sizes = rng.uniform() < 0.4
    groups: dict[tuple[str, str, str | None], list[int]] = {}
    for i, (color, shape, size) in enumerate(objects):
        groups.setdefault((color, shape, size if with_sizes else None), []).append(i)
    keys = list(groups)
    order = rng.permutation(len(keys))
    caption = _SCENE_PREFIXES[rng.integers(len(_SCENE_PREFIXES))]
    spans: list[tuple[int, int]] = [(0, 0)] * len(objects)
    for n, k in enumerate(order):
        color, shape, size = keys[k]
        members = groups[keys[k]]
        phrase = _phrase(world, (color, shape), rng, size=size, count=len(members))
        if n:
            caption += " and " if n == len(order) - 1 else ", "
        caption += _count_word(len(members), phrase) + " "
        for i in members:
            spans[i] = (len(caption), len(caption) + len(phrase))
        caption += phrase
    if background is not None and rng.uniform() < 0.5:
        caption += f" on a {BACKGROUND_WORDS[background]} background"
    return caption, spans


def object_caption(world: World, pair: Pair, rng: np.random.Generator, *, background: str | None = None) -> str:
    """A short caption for one object, e.g. ``"a photo of a violet box"`` (crops for CLIP training)."""
    phrase = _phrase(world, pair, rng, size=None, count=1)
    text = _CROP_TEMPLATES[rng.integers(len(_CROP_TEMPLATES))].format(a=_article(phrase), p=phrase)
    if background is not None and rng.uniform() < 0.3:
        text += f" on a {BACKGROUND_WORDS[background]} background"
    return text


def mentions_pair(text: str, world: World, pair: Pair) -> bool:
    """Whether ``text`` names ``pair`` with any of its synonyms (singular or plural)."""
    return any(re.search(rf"\b{re.escape(prompt)}", text) for prompt in world.prompts(pair))
