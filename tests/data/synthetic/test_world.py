import json

import pytest

from ovdet.data.synthetic import DEFAULT_WORLD, SHAPE_NAMES, World, diagonal_held_out
from ovdet.errors import ConfigError

REQUIRED_COLORS = {"red", "green", "blue", "yellow", "purple", "orange", "white", "black"}
REQUIRED_SHAPES = {"circle", "square", "triangle", "star", "hexagon", "ring", "cross", "diamond"}


def test_default_world_vocabulary_and_held_out_pairs():
    w = DEFAULT_WORLD
    assert REQUIRED_COLORS <= set(w.colors) and REQUIRED_SHAPES <= set(w.shapes)
    assert len(w.held_out_pairs) >= 8
    # a Latin diagonal: each colour and each shape held out at most once ...
    assert len({c for c, _ in w.held_out_pairs}) == len(w.held_out_pairs)
    assert len({s for _, s in w.held_out_pairs}) == len(w.held_out_pairs)
    # ... and every colour and every shape still seen in other pairs
    assert {c for c, _ in w.seen_pairs} == set(w.colors)
    assert {s for _, s in w.seen_pairs} == set(w.shapes)
    assert set(w.seen_pairs).isdisjoint(w.held_out_pairs)
    assert len(w.seen_pairs) + len(w.held_out_pairs) == len(w.pairs) == len(w.colors) * len(w.shapes)
    # the README demo shows these as seen pairs
    assert not w.is_held_out(("red", "circle")) and not w.is_held_out(("purple", "star"))


def test_categories_ids_and_prompts():
    w = DEFAULT_WORLD
    assert [c["id"] for c in w.categories()] == list(range(1, len(w.pairs) + 1))
    assert w.category_id(("red", "circle")) == 1 and w.category_name(("red", "circle")) == "red circle"
    flagged = {c["name"] for c in w.categories() if c["held_out"]}
    assert flagged == {w.category_name(p) for p in w.held_out_pairs}
    assert w.prompts(("red", "circle")) == ["red circle", "red disc"]
    assert set(w.texts()["purple square"]) == {"purple square", "purple box", "violet square", "violet box"}
    assert w.texts()["red circle"][0] == "red circle"  # canonical name first


def test_json_round_trip(tmp_path):
    w = DEFAULT_WORLD
    data = json.loads(w.to_json())
    assert {"version", "colors", "shapes", "held_out_pairs"} <= set(data)
    assert data["held_out_pairs"][0] == list(w.held_out_pairs[0])
    assert World.from_json(w.to_json()) == w
    w.save(tmp_path / "world.json")
    assert World.load(tmp_path / "world.json") == w


def test_minimal_world_json_uses_default_colours_and_no_synonyms():
    w = World.from_json(json.dumps({"colors": ["red", "blue"], "shapes": ["circle", "star"],
                                    "held_out_pairs": [["red", "star"]]}))
    assert w.colors["red"] == DEFAULT_WORLD.colors["red"]
    assert w.seen_pairs == (("red", "circle"), ("blue", "circle"), ("blue", "star"))
    assert w.shape_synonyms["circle"] == ("circle",)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"shapes": ("circle", "blob")}, "cannot draw shape"),
        ({"held_out_pairs": (("red", "circle"), ("red", "star"))}, "only in held-out pairs"),
        ({"held_out_pairs": (("pink", "circle"),)}, "unknown colour or shape"),
        ({"shape_synonyms": {"circle": ("circle", "star")}}, "used for both"),
        ({"colors": {"red": (0, 0, 300), "blue": (255, 0, 0)}}, "BGR value"),
    ],
)
def test_invalid_worlds_are_rejected(kwargs, match):
    base = {"colors": {"red": (0, 0, 255), "blue": (255, 0, 0)}, "shapes": ("circle", "star"), "held_out_pairs": ()}
    with pytest.raises(ConfigError, match=match):
        World(**{**base, **kwargs})


@pytest.mark.parametrize(
    "text, match",
    [
        ("{", "not valid JSON"),
        ('{"colors": []}', "needs the keys"),
        ('{"colors": ["teal"], "shapes": ["circle"], "held_out_pairs": []}', "color_bgr"),
    ],
)
def test_bad_world_json(text, match):
    with pytest.raises(ConfigError, match=match):
        World.from_json(text)


def test_missing_world_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        World.load(tmp_path / "nope.json")


def test_diagonal_held_out_covers_every_name_when_lists_differ_in_length():
    pairs = diagonal_held_out(["a", "b", "c"], list(SHAPE_NAMES[:5]), offset=1)
    assert {c for c, _ in pairs} == {"a", "b", "c"} and {s for _, s in pairs} == set(SHAPE_NAMES[:5])
