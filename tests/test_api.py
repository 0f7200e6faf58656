import pytest

import ovdet
from ovdet.errors import CheckpointError, PickleRefusedError


def test_public_api_names():
    for name in ("build", "load", "list_models", "list_weights", "OVDetector", "Result", "OVDetError"):
        assert hasattr(ovdet, name)


def test_load_refuses_pickles_and_says_how_to_convert(tmp_path):
    path = tmp_path / "yolov8s-worldv2.pt"
    path.write_bytes(b"\x80\x04pickle")
    with pytest.raises(PickleRefusedError, match="trust_pickle=True"):
        ovdet.load(path)


def test_load_of_a_weights_file_points_to_its_folder(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"")
    with pytest.raises(CheckpointError, match="folder"):
        ovdet.load(path)


def test_unknown_name_is_reported():
    with pytest.raises(ovdet.UnknownModelError, match="no saved model at 'not-a-model'"):
        ovdet.load("not-a-model")
