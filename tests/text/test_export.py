"""Text-encoder ONNX: the PyTorch encoder's embeddings (to 1e-5), the same cache, a tokenizer beside it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ovdet
from ovdet.errors import CheckpointError, ConfigError
from ovdet.runtime import OnnxTextEncoder
from ovdet.text import DEFAULT_CACHE, TextEncoder
from tests.conftest import TINY_CLIP

PROMPTS = ["a photo of a cat", "person", "red backpack", "Café ＦＵＬＬ &amp; 🐶 “quoted”", "x",
           "a very long prompt that goes on " * 6, "traffic light", "hair drier"]  # fmt: skip


@pytest.fixture(scope="module")
def exported_text(tmp_path_factory):
    torch.manual_seed(1)
    encoder = TextEncoder(TINY_CLIP, cache=None)
    path = tmp_path_factory.mktemp("text-onnx") / "text_encoder.onnx"
    assert ovdet.export_text_encoder(encoder, path) == path
    return encoder, path


def test_embeddings_equal_the_pytorch_encoder(exported_text):
    encoder, path = exported_text
    onnx_encoder = OnnxTextEncoder(path, cache=None, batch_size=3)  # batches of mixed lengths, cut as in PyTorch
    assert (onnx_encoder.key, onnx_encoder.dim) == (encoder.key, encoder.dim)
    ours = onnx_encoder.encode(PROMPTS)
    reference = encoder.encode(PROMPTS).numpy()
    assert ours.shape == (len(PROMPTS), encoder.dim) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, reference, atol=1e-5, rtol=0)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1, atol=1e-6)
    np.testing.assert_array_equal(onnx_encoder.tokenizer(PROMPTS), encoder.tokenizer(PROMPTS).numpy())


def test_both_encoders_share_the_embedding_cache(exported_text, cache_dir):
    encoder, path = exported_text
    torch_encoder = TextEncoder.from_tower(encoder.spec, encoder.key, encoder.model_config, encoder.carried_state(),
                                           tokenizer_name=TINY_CLIP)  # fmt: skip
    onnx_encoder = OnnxTextEncoder(path)
    first = onnx_encoder.encode(["a cat", "a dog"])  # written to the cache by the ONNX encoder
    DEFAULT_CACHE.clear_memory()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch_encoder, "_encode_uncached", lambda texts: pytest.fail(f"PyTorch encoded {texts}"))
        np.testing.assert_array_equal(torch_encoder.encode(["a dog", "a cat"]).numpy(), first[::-1])
    torch_encoder.encode(["a bird"])  # and the other way round
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(onnx_encoder, "_encode_uncached", lambda texts: pytest.fail(f"ONNX encoded {texts}"))
        onnx_encoder.encode(["a bird", "a cat"])


def test_a_tokenizer_that_does_not_belong_is_refused(exported_text, tmp_path):
    _, path = exported_text
    copy = tmp_path / "text_encoder.onnx"
    copy.write_bytes(path.read_bytes())
    with pytest.raises(CheckpointError, match="needs its tokenizer"):
        OnnxTextEncoder(copy)
    (tmp_path / "text_encoder.tokenizer.json").write_text("{}")
    with pytest.raises(CheckpointError, match="not the tokenizer"):
        OnnxTextEncoder(copy)
    with pytest.raises(CheckpointError, match="text encoder export, not a detector"):
        ovdet.load_onnx(path)


def test_export_refuses_files_ovdet_did_not_write(exported_text, tmp_path):
    encoder, _ = exported_text
    (tmp_path / "clip.tokenizer.json").write_text("mine")
    with pytest.raises(ConfigError, match="not written by ovdet"):
        ovdet.export_text_encoder(encoder, tmp_path / "clip.onnx")
    assert (tmp_path / "clip.tokenizer.json").read_text() == "mine" and not (tmp_path / "clip.onnx").exists()
