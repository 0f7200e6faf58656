import json

import open_clip
import pytest
import torch

from ovdet.errors import VocabularyError, WeightsUnavailableError
from ovdet.text import TextEncoder
from tests.conftest import TINY_CLIP, TINY_CLIP_CONFIG

TEXTS = ["a red circle", "person", "a very long description of an unusual object with many words in it", "bus"]


@pytest.fixture(scope="module")
def tiny_clip():
    torch.manual_seed(1)
    return open_clip.create_model(TINY_CLIP).eval()


def reference(clip, texts):
    with torch.no_grad():
        return torch.nn.functional.normalize(clip.encode_text(open_clip.tokenize(texts)), dim=-1)


def test_embeddings_are_normalised_float32(tiny_encoder, cache_dir):
    emb = tiny_encoder.encode(TEXTS)
    assert emb.shape == (4, 32) and emb.dtype == torch.float32
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(4))


def test_token_trimming_is_exact(tiny_encoder, cache_dir):
    # the full 77-token forward of open_clip's own tower is the reference
    with torch.no_grad():
        full = torch.nn.functional.normalize(tiny_encoder.tower(tiny_encoder.tokenizer(TEXTS)), dim=-1)
    torch.testing.assert_close(tiny_encoder.encode(TEXTS), full, atol=1e-6, rtol=1e-5)


def test_duplicates_and_order_are_preserved(tiny_encoder, cache_dir):
    emb = tiny_encoder.encode(["bus", "person", "bus"])
    torch.testing.assert_close(emb[0], emb[2])
    torch.testing.assert_close(emb[1], tiny_encoder.encode(["person"])[0])


def test_rejects_non_strings(tiny_encoder):
    with pytest.raises(VocabularyError):
        tiny_encoder.encode(["ok", ""])
    with pytest.raises(VocabularyError):
        tiny_encoder.encode("a string, not a list")


def test_local_safetensors_weights_match_open_clip(tiny_clip, tmp_path, cache_dir):
    from safetensors.torch import save_file

    path = tmp_path / "clip.safetensors"
    save_file({k: v.contiguous() for k, v in tiny_clip.state_dict().items()}, str(path))
    encoder = TextEncoder(f"{TINY_CLIP}:{path}")
    assert encoder.travels
    torch.testing.assert_close(encoder.encode(TEXTS), reference(tiny_clip, TEXTS), atol=1e-6, rtol=1e-5)


def test_local_state_dict_bin_is_read_without_running_code(tiny_clip, tmp_path, cache_dir):
    path = tmp_path / "open_clip_pytorch_model.bin"
    torch.save(tiny_clip.state_dict(), path)
    encoder = TextEncoder(f"{TINY_CLIP}:{path}")
    torch.testing.assert_close(encoder.encode(TEXTS), reference(tiny_clip, TEXTS), atol=1e-6, rtol=1e-5)


def test_open_clip_hub_folder_layout(tiny_clip, tmp_path, cache_dir):
    from safetensors.torch import save_file

    (tmp_path / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY_CLIP_CONFIG}))
    save_file({k: v.contiguous() for k, v in tiny_clip.state_dict().items()}, str(tmp_path / "open_clip_model.safetensors"))
    encoder = TextEncoder(str(tmp_path))
    torch.testing.assert_close(encoder.encode(TEXTS), reference(tiny_clip, TEXTS), atol=1e-6, rtol=1e-5)


def test_random_encoders_have_distinct_identities():
    assert TextEncoder(TINY_CLIP).key != TextEncoder(TINY_CLIP).key


def test_pretrained_tag_offline_fails_with_the_fix(cache_dir):
    encoder = TextEncoder("ViT-B-32-quickgelu:openai")  # no weights needed until an uncached prompt
    assert encoder.dim == 512 and not encoder.travels
    with pytest.raises(WeightsUnavailableError, match=r"ViT-B-32-quickgelu:/path/to/open_clip_model.safetensors"):
        encoder.encode(["a cat"])


def test_pretrained_tag_offline_still_serves_cached_prompts(cache_dir):
    from ovdet.text import DEFAULT_CACHE

    encoder = TextEncoder("ViT-B-32-quickgelu:openai")
    known = torch.nn.functional.normalize(torch.randn(1, 512), dim=-1)
    DEFAULT_CACHE.put(encoder.key, ["a cat"], known)
    torch.testing.assert_close(encoder.encode(["a cat"]), known)


def test_trimming_is_exact_for_yoloe_text_towers():
    """YOLOE's encoders (open_clip MobileCLIP-B for v8/11, MobileCLIP2-B for 26; the same text tower config) are causal
    with argmax pooling, so cutting each batch after its longest end-of-text token changes nothing; MobileCLIP-S*
    towers attend both ways, so ovdet runs them on all 77 tokens."""
    import open_clip
    from open_clip.model import _build_text_tower

    from ovdet.text.encoder import _causal_trimmable

    text_cfg = open_clip.get_model_config("MobileCLIP-B")["text_cfg"]
    assert open_clip.get_model_config("MobileCLIP2-B")["text_cfg"] == text_cfg
    torch.manual_seed(0)
    encoder = TextEncoder("MobileCLIP-B", cache=None)  # the real tower, random weights
    assert _causal_trimmable(encoder.tower)
    texts = ["person", "a photo of a red backpack", "person wearing a hat", "x " * 90]  # the last one is truncated
    trimmed = encoder.encode(texts)
    with torch.inference_mode():
        full = torch.nn.functional.normalize(encoder.tower(encoder.tokenizer(texts)).float(), dim=-1)
    torch.testing.assert_close(trimmed, full, atol=1e-6, rtol=0)
    cfg = dict(open_clip.get_model_config("MobileCLIP-S2")["text_cfg"], layers=1)
    assert not _causal_trimmable(_build_text_tower(512, cfg))
