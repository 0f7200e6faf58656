import numpy as np
import pytest
import torch

from ovdet.text import DEFAULT_CACHE, EmbeddingCache, TextEncoder
from tests.conftest import TINY_CLIP


def test_second_encode_is_served_from_disk_without_the_tower(cache_dir, monkeypatch):
    encoder = TextEncoder(TINY_CLIP)
    first = encoder.encode(["red circle", "blue square"])
    DEFAULT_CACHE.clear_memory()  # as a new process would start

    def fail(*_):
        raise AssertionError("the text tower ran for cached prompts")

    monkeypatch.setattr(encoder, "_encode_uncached", fail)
    torch.testing.assert_close(encoder.encode(["blue square", "red circle"]), first.flip(0))
    assert list((cache_dir / "text").glob("*.safetensors"))


def test_only_missing_prompts_are_encoded(cache_dir, monkeypatch):
    encoder = TextEncoder(TINY_CLIP)
    encoder.encode(["a", "b"])
    seen = []
    original = encoder._encode_uncached
    monkeypatch.setattr(encoder, "_encode_uncached", lambda texts: seen.extend(texts) or original(texts))
    encoder.encode(["b", "c", "a"])
    assert seen == ["c"]


def test_writers_merge_instead_of_overwriting(tmp_path):
    one, two = EmbeddingCache(tmp_path), EmbeddingCache(tmp_path)
    one.put("enc", ["x"], np.ones((1, 4)))
    two.put("enc", ["y"], np.zeros((1, 4)))  # `two` never saw "x" in memory
    fresh = EmbeddingCache(tmp_path).get("enc", ["x", "y"])
    assert set(fresh) == {"x", "y"}
    np.testing.assert_array_equal(fresh["x"], np.ones(4, np.float32))
    assert isinstance(fresh["x"], np.ndarray) and not fresh["x"].flags.writeable  # a view of the cache: read-only


def test_keys_do_not_mix(tmp_path):
    cache = EmbeddingCache(tmp_path)
    cache.put("enc-a", ["x"], np.ones((1, 4)))
    assert cache.get("enc-b", ["x"]) == {}


def test_corrupt_cache_file_is_ignored_and_rewritten(tmp_path, caplog):
    cache = EmbeddingCache(tmp_path)
    cache.put("enc", ["x"], np.ones((1, 4)))
    (path,) = (tmp_path / "text").glob("*.safetensors")
    path.write_bytes(b"not a safetensors file")
    fresh = EmbeddingCache(tmp_path)
    assert fresh.get("enc", ["x"]) == {}
    fresh.put("enc", ["y"], np.zeros((1, 4)))
    assert set(EmbeddingCache(tmp_path).get("enc", ["x", "y"])) == {"y"}


def test_length_mismatch_is_an_error(tmp_path):
    with pytest.raises(ValueError):
        EmbeddingCache(tmp_path).put("enc", ["x", "y"], np.ones((1, 4)))
