import json

import pytest

from ovdet.errors import ConfigError, SourceError, UnknownModelError
from ovdet.text.spec import DEFAULT_TEXT_ENCODER, parse_text_encoder_spec
from tests.conftest import TINY_CLIP, TINY_CLIP_CONFIG


def test_default_is_yolo_worlds_text_encoder():
    spec = parse_text_encoder_spec(DEFAULT_TEXT_ENCODER)
    assert (spec.model_name, spec.tag) == ("ViT-B-32-quickgelu", "openai")
    cfg = spec.model_config()
    assert cfg["quick_gelu"] is True and cfg["embed_dim"] == 512


def test_bare_name_means_random_weights():
    spec = parse_text_encoder_spec(TINY_CLIP)
    assert spec.random_weights and spec.model_name == TINY_CLIP


def test_unknown_name_suggests_close_names():
    with pytest.raises(UnknownModelError, match="Did you mean: .*ViT-B-32-quickgelu"):
        parse_text_encoder_spec("ViT-B-32-quickgelo:openai")


def test_unknown_tag_lists_available_tags():
    with pytest.raises(UnknownModelError, match="Available tags: openai"):
        parse_text_encoder_spec("ViT-B-32-quickgelu:imagenet")


def test_weights_path_must_exist(tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        parse_text_encoder_spec(f"{TINY_CLIP}:{tmp_path}/missing.safetensors")


def test_json_config_spec(tmp_path):
    path = tmp_path / "custom.json"
    path.write_text(json.dumps(TINY_CLIP_CONFIG))
    spec = parse_text_encoder_spec(str(path))
    assert spec.config_path == path and spec.random_weights
    assert spec.model_config()["embed_dim"] == 32


def test_json_without_text_cfg_is_rejected(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"embed_dim": 8}))
    with pytest.raises(ConfigError, match="text_cfg"):
        parse_text_encoder_spec(str(path))


def test_folder_without_weights_is_rejected(tmp_path):
    (tmp_path / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY_CLIP_CONFIG}))
    with pytest.raises(SourceError, match="no weights file"):
        parse_text_encoder_spec(str(tmp_path))
