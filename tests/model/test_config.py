import pytest

import ovdet
from ovdet.errors import ConfigError, UnknownModelError
from ovdet.model.config import ModelConfig, load_config


def test_shipped_configs_load():
    names = ovdet.list_models()
    assert {f"ovdet-{s}" for s in "nsmlx"} | {f"yoloworldv2-{s}" for s in "nsmlx"} <= set(names)
    for name in names:
        assert load_config(name).name == name


def test_unknown_key_lists_valid_keys(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\nhead: {reg_max: 16, nrom: l2}\n")
    with pytest.raises(ConfigError, match="unknown key.*nrom.*valid keys are embed_branch, embed_channels, end2end, kind, masks, norm, prompt_free"):
        load_config(path)


def test_unknown_name_lists_shipped_configs():
    with pytest.raises(UnknownModelError, match="ovdet-n"):
        load_config("ovdet-q")


def test_bad_values_are_rejected():
    with pytest.raises(ConfigError, match="head.norm"):
        ModelConfig.from_dict({"name": "x", "head": {"norm": "layernorm"}})
    with pytest.raises(ConfigError, match="multiple of 32"):
        ModelConfig.from_dict({"name": "x", "imgsz": 100})


def test_round_trip_through_dict():
    cfg = load_config("yoloworldv2-s")
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
