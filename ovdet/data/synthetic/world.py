"""The synthetic world's vocabulary: colours, shapes, their synonyms, and the colour–shape pairs held out of training.

A category is a colour–shape pair named ``"<colour> <shape>"`` ("red circle"). Held-out pairs never appear in a
training image or caption, while each of their colours and shapes still appears in other (seen) pairs, so a detector
scored against a text tower can be tested on compositions it never saw. ``world.json`` (``World.save``) records all
of it beside a trained model.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import ConfigError
from ...fileio import atomic_write_text
from .draw import SHAPE_NAMES

__all__ = ["World", "DEFAULT_WORLD", "WORLD_FORMAT_VERSION", "diagonal_held_out"]

WORLD_FORMAT_VERSION = 1
BGR = tuple[int, int, int]
Pair = tuple[str, str]

# BGR; chosen so every two colours differ by > 40 in CIELAB (the closest: red-orange 43, blue-purple 47)
_DEFAULT_COLORS: dict[str, BGR] = {
    "red": (40, 40, 215),
    "green": (60, 165, 40),
    "blue": (215, 105, 20),
    "yellow": (40, 215, 240),
    "purple": (170, 35, 150),
    "orange": (20, 135, 250),
    "white": (245, 245, 245),
    "black": (25, 25, 25),
}
_DEFAULT_SHAPES = ("circle", "square", "triangle", "star", "hexagon", "ring", "cross", "diamond")
_DEFAULT_COLOR_SYNONYMS = {"purple": ("purple", "violet")}
_DEFAULT_SHAPE_SYNONYMS = {
    "circle": ("circle", "disc"),
    "square": ("square", "box"),
    "ring": ("ring", "donut"),
    "cross": ("cross", "plus sign"),
    "diamond": ("diamond", "rhombus"),
}


def diagonal_held_out(colors: Sequence[str], shapes: Sequence[str], offset: int = 3) -> tuple[Pair, ...]:
    """A Latin-square diagonal of held-out pairs: colour ``i`` with shape ``(i + offset) % len(shapes)``.

    With as many colours as shapes, every colour and every shape is held out in exactly one pair and still seen in
    all the others; otherwise the shorter list wraps around, so each name is held out at least once.
    """
    n = max(len(colors), len(shapes))
    return tuple((colors[i % len(colors)], shapes[(i + offset) % len(shapes)]) for i in range(n))


@dataclass(frozen=True)
class World:
    """Colours, shapes, synonyms and held-out pairs of a synthetic world (treat as immutable).

    Attributes:
        colors: Colour name → BGR fill colour (0–255). Order defines category order.
        shapes: Shape names; each must be one ``ovdet.data.synthetic.draw`` can rasterise (``SHAPE_NAMES``).
        held_out_pairs: ``(colour, shape)`` pairs that never appear in training images or captions.
        color_synonyms: Colour name → words used for it in captions and prompts; the name itself is always first.
        shape_synonyms: Shape name → words (singular) used for it; the name itself is always first.

    Raises:
        ConfigError: an unknown shape, a held-out pair naming an unknown colour or shape, a colour or shape left with
            no seen pair, a word used for two names, or a malformed BGR value.
    """

    colors: Mapping[str, BGR]
    shapes: tuple[str, ...]
    held_out_pairs: tuple[Pair, ...]
    color_synonyms: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    shape_synonyms: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        colors = {str(k): _bgr(k, v) for k, v in dict(self.colors).items()}
        shapes = tuple(str(s) for s in self.shapes)
        held = tuple((str(c), str(s)) for c, s in self.held_out_pairs)
        if not colors or not shapes:
            raise ConfigError("a World needs at least one colour and one shape")
        unknown = [s for s in shapes if s not in SHAPE_NAMES]
        if unknown:
            raise ConfigError(f"cannot draw shape(s) {unknown}; known shapes: {', '.join(SHAPE_NAMES)}")
        for c, s in held:
            if c not in colors or s not in shapes:
                raise ConfigError(f"held-out pair ({c!r}, {s!r}) names an unknown colour or shape")
        if len(set(held)) != len(held):
            raise ConfigError("held_out_pairs lists a pair twice")
        held_set = set(held)
        seen = [(c, s) for c in colors for s in shapes if (c, s) not in held_set]
        unseen_colors, unseen_shapes = set(colors) - {c for c, _ in seen}, set(shapes) - {s for _, s in seen}
        for name, unseen in (("colour", unseen_colors), ("shape", unseen_shapes)):
            if unseen:
                raise ConfigError(f"{name}(s) {sorted(unseen)} appear only in held-out pairs; hold out fewer pairs")
        object.__setattr__(self, "colors", colors)
        object.__setattr__(self, "shapes", shapes)
        object.__setattr__(self, "held_out_pairs", held)
        object.__setattr__(self, "color_synonyms", _synonyms(colors, self.color_synonyms, "colour"))
        object.__setattr__(self, "shape_synonyms", _synonyms(shapes, self.shape_synonyms, "shape"))

    # --- the vocabulary ---------------------------------------------------------------------------------------------
    @property
    def color_names(self) -> tuple[str, ...]:
        return tuple(self.colors)

    @property
    def pairs(self) -> tuple[Pair, ...]:
        """Every colour–shape pair, colour-major; category id = position + 1."""
        return tuple((c, s) for c in self.colors for s in self.shapes)

    @property
    def seen_pairs(self) -> tuple[Pair, ...]:
        """The pairs that may appear in training images and captions."""
        held = set(self.held_out_pairs)
        return tuple(p for p in self.pairs if p not in held)

    def is_held_out(self, pair: Pair) -> bool:
        return tuple(pair) in set(self.held_out_pairs)

    @staticmethod
    def category_name(pair: Pair) -> str:
        """``("red", "circle")`` → ``"red circle"``."""
        return f"{pair[0]} {pair[1]}"

    def category_id(self, pair: Pair) -> int:
        """The COCO category id of a pair (1-based, the same in every split)."""
        return self.pairs.index(tuple(pair)) + 1

    def categories(self, pairs: Sequence[Pair] | None = None) -> list[dict[str, Any]]:
        """COCO ``categories`` entries ``{id, name, color, shape, held_out}`` for ``pairs`` (default: all)."""
        return [
            {"id": self.category_id(p), "name": self.category_name(p), "color": p[0], "shape": p[1],
             "held_out": self.is_held_out(p)}
            for p in (self.pairs if pairs is None else pairs)
        ]

    def prompts(self, pair: Pair) -> list[str]:
        """Every way captions name a pair, canonical name first: ``["purple square", "purple box", "violet ..."]``."""
        return [f"{c} {s}" for c in self.color_synonyms[pair[0]] for s in self.shape_synonyms[pair[1]]]

    def texts(self, pairs: Sequence[Pair] | None = None) -> dict[str, list[str]]:
        """Category name → prompts, for ``set_classes`` and data.yaml ``texts`` (default: all pairs)."""
        return {self.category_name(p): self.prompts(p) for p in (self.pairs if pairs is None else pairs)}

    # --- world.json -------------------------------------------------------------------------------------------------
    def to_json(self) -> str:
        """The ``world.json`` text: ``{version, colors, shapes, held_out_pairs, color_bgr, *_synonyms}``."""
        return json.dumps(
            {
                "version": WORLD_FORMAT_VERSION,
                "colors": list(self.colors),
                "shapes": list(self.shapes),
                "held_out_pairs": [list(p) for p in self.held_out_pairs],
                "color_bgr": {k: list(v) for k, v in self.colors.items()},
                "color_synonyms": {k: list(v) for k, v in self.color_synonyms.items()},
                "shape_synonyms": {k: list(v) for k, v in self.shape_synonyms.items()},
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str) -> World:
        """Parse ``world.json`` text. ``color_bgr`` may be omitted for the default colours; synonyms may be omitted.

        Raises:
            ConfigError: malformed JSON, a missing key, an unsupported version, or an invalid world (see ``World``).
        """
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"world.json is not valid JSON ({e}); regenerate it with World.save()") from e
        if not isinstance(data, dict) or not {"colors", "shapes", "held_out_pairs"} <= set(data):
            raise ConfigError("world.json needs the keys 'colors', 'shapes' and 'held_out_pairs'")
        if data.get("version", WORLD_FORMAT_VERSION) > WORLD_FORMAT_VERSION:
            raise ConfigError(f"world.json version {data['version']} is newer than this ovdet reads "
                              f"({WORLD_FORMAT_VERSION}); upgrade ovdet")
        bgr = data.get("color_bgr", {})
        missing = [c for c in data["colors"] if c not in bgr and c not in _DEFAULT_COLORS]
        if missing:
            raise ConfigError(f"world.json gives no 'color_bgr' value for {missing}")
        return cls(
            colors={c: bgr.get(c, _DEFAULT_COLORS.get(c)) for c in data["colors"]},
            shapes=tuple(data["shapes"]),
            held_out_pairs=tuple(tuple(p) for p in data["held_out_pairs"]),
            color_synonyms={k: tuple(v) for k, v in data.get("color_synonyms", {}).items()},
            shape_synonyms={k: tuple(v) for k, v in data.get("shape_synonyms", {}).items()},
        )

    def save(self, path: str | os.PathLike) -> None:
        """Write ``world.json`` atomically."""
        atomic_write_text(path, self.to_json() + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> World:
        """Read a ``world.json`` file.

        Raises:
            ConfigError: the file is missing or invalid.
        """
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"world file not found: {path}; write one with World.save() or tools/make_synthetic.py")
        return cls.from_json(path.read_text(encoding="utf-8"))


def _bgr(name: str, value: Any) -> BGR:
    try:
        bgr = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        bgr = ()
    if len(bgr) != 3 or not all(0 <= v <= 255 for v in bgr):
        raise ConfigError(f"colour {name!r} needs a BGR value of three integers in 0..255, got {value!r}")
    return bgr  # type: ignore[return-value]


def _synonyms(names: Sequence[str], given: Mapping[str, Sequence[str]], what: str) -> dict[str, tuple[str, ...]]:
    extra = set(given) - set(names)
    if extra:
        raise ConfigError(f"synonyms given for unknown {what}(s) {sorted(extra)}")
    out: dict[str, tuple[str, ...]] = {}
    owner: dict[str, str] = {}
    for name in names:
        words = (name, *(w for w in given.get(name, ()) if w != name))
        for w in words:
            if owner.setdefault(w, name) != name:
                raise ConfigError(f"the {what} word {w!r} is used for both {owner[w]!r} and {name!r}")
        out[name] = words
    return out


DEFAULT_WORLD = World(
    colors=_DEFAULT_COLORS,
    shapes=_DEFAULT_SHAPES,
    held_out_pairs=diagonal_held_out(tuple(_DEFAULT_COLORS), _DEFAULT_SHAPES),
    color_synonyms=_DEFAULT_COLOR_SYNONYMS,
    shape_synonyms=_DEFAULT_SHAPE_SYNONYMS,
)
"""8 colours × 8 shapes; held out: red star, green hexagon, blue ring, yellow cross, purple diamond, orange circle,
white square, black triangle."""
