"""The torch-free CLIP tokenizer gives open_clip's token ids, on awkward text and on thousands of random strings."""

from __future__ import annotations

import numpy as np
import pytest

from ovdet.runtime.tokenizer import ClipTokenizer, clip_tokenizer_json

AWKWARD = [
    "a photo of a cat", "Person", "  red   backpack\t\n", "Café déjà vu", "naïve façade", "São Paulo",
    "🐶 dog 🐕‍🦺", "👩‍👩‍👧‍👦 family", "“curly” ‘quotes’", "don’t", "I'M here", "rock'n'roll!!! ...?",
    "ＦＵＬＬ ｗｉｄｔｈ", "ﬁnance", "fish &amp; chips", "&lt;b&gt;bold&lt;/b&gt;", "e&#769;", "&amp;amp;",
    "mojibake: Ã©tÃ©", "数字123四五", "İstanbul", "ΣΑΣ", "Kelvin K", "l'été", "ǅ ǆ", "a\u200bb", "x" * 300,
    "word " * 100, "<end_of_text> inside", "<START_OF_TEXT>", "hyphen-ated_under_score", "1,203 classes: 0.5%",
]  # fmt: skip


def _open_clip(context_length: int = 77, clean: str = "lower"):
    import open_clip

    return open_clip.SimpleTokenizer(context_length=context_length, clean=clean)


def _ours(tmp_path, reference) -> ClipTokenizer:
    text, settings = clip_tokenizer_json(reference)
    path = tmp_path / f"{settings['clean']}-{settings['context_length']}.tokenizer.json"
    path.write_text(text, encoding="utf-8")
    return ClipTokenizer(path, **settings)


def _random_texts(n: int, seed: int = 0) -> list[str]:
    """Strings mixing ASCII, Latin accents, Greek, CJK, emoji, punctuation, digits, whitespace and entities."""
    rng = np.random.default_rng(seed)
    pools = [
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", "0123456789", " \t\n",
        ".,;:!?'\"-_()[]{}/\\@#$%^*+=~`|<>",
        "àáâäçèéêëìíîïñòóôöùúûüÿÀÉÖßøæœ", "αβγδεζηθΣΩ", "日本語中文字한국어", "😀🐶🚗🍕❤️✨👍🏽", "’“”‘…–—«»",
        "ＡＢＣａｂｃ１２３", "\u0301\u0308\u200d",
    ]  # fmt: skip
    out = []
    for _ in range(n):
        parts = []
        for _ in range(rng.integers(1, 12)):
            pool = pools[rng.integers(len(pools))]
            parts.append("".join(rng.choice(list(pool), rng.integers(1, 8))))
            if rng.random() < 0.1:
                parts.append(["&amp;", "&quot;", "&#39;", "'s", "'ll"][rng.integers(5)])
        out.append("".join(parts))
    return out


@pytest.fixture(scope="module")
def clip_pair(tmp_path_factory):
    reference = _open_clip()
    return reference, _ours(tmp_path_factory.mktemp("tok"), reference)


def test_awkward_text_gives_open_clips_ids(clip_pair):
    reference, ours = clip_pair
    np.testing.assert_array_equal(ours(AWKWARD), reference(AWKWARD).numpy())
    assert ours(AWKWARD[-5])[0, -1] == reference.eot_token_id  # truncated to 77, end-of-text kept last


def test_random_strings_and_lvis_names_give_open_clips_ids(clip_pair):
    from tools.benchmark import lvis_names

    reference, ours = clip_pair
    texts = _random_texts(2000) + lvis_names()
    mismatches = [t for t in texts if ours.encode(t) != reference.encode(t)]
    assert not mismatches, mismatches[:5]


@pytest.mark.parametrize("context_length, clean", [(32, "lower"), (77, "whitespace"), (16, "canonicalize")])
def test_other_settings_give_open_clips_ids(tmp_path, context_length, clean):
    reference = _open_clip(context_length, clean)
    texts = AWKWARD + _random_texts(200, seed=1)
    np.testing.assert_array_equal(_ours(tmp_path, reference)(texts), reference(texts).numpy())
