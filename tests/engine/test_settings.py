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
        ({"epochs": "many"}, "expects a int"),
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
