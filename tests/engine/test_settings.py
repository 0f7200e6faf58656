from pathlib import Path

import pytest

from ovdet.engine.settings import apply_overrides, load_settings
from ovdet.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.parametrize("recipe", sorted(CONFIGS.glob("train-*.yaml")))
def test_shipped_recipes_load(recipe):
    settings = load_settings(recipe, {"data": "data.yaml"})
    assert settings.data == "data.yaml" and settings.epochs >= 1


def test_overrides_are_typed_and_nested():
    s = load_settings(None, {"data": "d.yaml", "epochs": "7", "amp": "false", "augment.hsv_h": "0"})
    assert s.epochs == 7 and s.amp is False and s.augment.hsv_h == 0.0
    s = apply_overrides(s, {"augment": {"mosaic": 0.5}})
    assert s.augment.mosaic == 0.5 and s.augment.hsv_h == 0.0


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"epoch": "3"}, "unknown setting 'epoch'"),
        ({"augment.hue": "0"}, "unknown setting 'hue'"),
        ({"epochs": "many"}, "expects a whole number"),
        ({"amp": "maybe"}, "true/false"),
        ({"optimizer": "Adam"}, "AdamW or SGD"),
        ({"imgsz": "100"}, "multiple of 32"),
    ],
)
def test_bad_settings_name_the_problem(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(None, {"data": "d.yaml", **overrides})


def test_data_is_required():
    with pytest.raises(ConfigError, match="--data"):
        load_settings(None, {})


@pytest.mark.parametrize(
    "recipe, message",
    [
        ("replay: 5", "'replay' expects a string"),
        ("distill_vocab: [a, b]", "'distill_vocab' expects a string"),
        ("distill: true", "'distill' expects a number"),
        ("lr0: [0.1]", "'lr0' expects a number"),
        ("epochs: 1.5", "'epochs' expects a whole number"),
        ("amp: 3", "'amp' expects true/false"),
        ("epochs: null", "'epochs' needs a value"),
        ("augment: {mosaic: yes please}", "'mosaic' expects a number"),
    ],
)
def test_recipe_values_of_the_wrong_type_are_one_error(tmp_path, recipe, message):
    # YAML types a recipe's values itself; they were passed on unchecked (a TypeError traceback, or distill=True)
    (tmp_path / "recipe.yaml").write_text(recipe + "\n")
    with pytest.raises(ConfigError, match=message):
        load_settings(tmp_path / "recipe.yaml", {"data": "d.yaml"})


def test_recipe_numbers_are_typed_like_the_setting(tmp_path):
    (tmp_path / "recipe.yaml").write_text("epochs: 3.0\nlr0: 1\ncache_mb: 0.5\ndistill: 1\nreplay: null\n")
    s = load_settings(tmp_path / "recipe.yaml", {"data": "d.yaml", "distill": "null"})
    assert (s.epochs, s.lr0, s.cache_mb, s.distill, s.replay) == (3, 1.0, 0.5, None, None)
    assert type(s.epochs) is int and type(s.lr0) is float
    base = tmp_path / "base.yaml"  # a pathlib.Path from Python code
    assert load_settings(None, {"data": "d.yaml", "replay": base}).replay == str(base)
