"""open_clip's CLIP tokenizer without torch: its BPE as a Hugging Face ``tokenizers`` JSON, its text cleaning in Python.

open_clip's ``SimpleTokenizer`` cleans a prompt (``ftfy.fix_text``, HTML entities unescaped twice, whitespace runs
collapsed, lower case), splits it with one regular expression (contractions, letter runs, single digits, other
symbol runs; case-insensitive), maps each piece's UTF-8 bytes to printable characters (GPT-2's byte encoder) and
merges them by BPE rank with ``</w>`` marking a word's end; then it adds start/end-of-text ids and truncates to the
context, keeping end-of-text last. The JSON holds the split, the byte mapping and the BPE (as Hugging Face's own CLIP
tokenizer does); the cleaning stays in Python because ftfy has no ``tokenizers`` equivalent. Token ids equal
open_clip's (tests/runtime/test_tokenizer.py compares them on awkward text and on thousands of random strings).
"""

from __future__ import annotations

import html
import os
import re
import string
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CheckpointError

__all__ = ["ClipTokenizer", "clip_tokenizer_json", "CLEAN_FUNCTIONS"]

# open_clip's SimpleTokenizer pattern, special tokens first (open_clip compiles it with re.IGNORECASE)
_SPLIT = r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""


def _basic_clean(text: str) -> str:
    import ftfy

    return html.unescape(html.unescape(ftfy.fix_text(text))).strip()


def _whitespace_clean(text: str) -> str:
    return " ".join(text.split()).strip()


def _canonicalize(text: str) -> str:
    text = _basic_clean(text).replace("_", " ").translate(str.maketrans("", "", string.punctuation)).lower()
    return " ".join(text.split()).strip()


CLEAN_FUNCTIONS: dict[str, Callable[[str], str]] = {
    "lower": lambda t: _whitespace_clean(_basic_clean(t)).lower(),
    "whitespace": lambda t: _whitespace_clean(_basic_clean(t)),
    "canonicalize": _canonicalize,
}  # open_clip.tokenizer.get_clean_fn's three cleanings


def clip_tokenizer_json(simple_tokenizer: Any) -> tuple[str, dict[str, Any]]:
    """The ``tokenizers`` JSON and the settings (context length, special ids, cleaning) of an open_clip
    ``SimpleTokenizer`` instance (read through its attributes; open_clip itself is not imported here).

    Raises:
        CheckpointError: a tokenizer this cannot reproduce (a reduction mask, or an unknown cleaning).
    """
    from tokenizers import AddedToken, Regex, Tokenizer, models, pre_tokenizers

    if getattr(simple_tokenizer, "reduction_fn", None) is not None:
        raise CheckpointError("open_clip tokenizers with a reduction mask are not supported for ONNX export")
    clean_fn = simple_tokenizer.clean_fn.__name__
    clean = next((name for name, fn in _OPEN_CLIP_CLEAN_NAMES.items() if fn == clean_fn), None)
    if clean is None:
        raise CheckpointError(f"unknown open_clip text cleaning {simple_tokenizer.clean_fn.__name__}")
    encoder: dict[str, int] = dict(simple_tokenizer.encoder)
    merges = sorted(simple_tokenizer.bpe_ranks, key=simple_tokenizer.bpe_ranks.get)
    specials = [simple_tokenizer.decoder[i] for i in simple_tokenizer.all_special_ids]
    bpe = models.BPE(vocab=encoder, merges=list(merges), end_of_word_suffix="</w>", continuing_subword_prefix="")
    tokenizer = Tokenizer(bpe)
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex("(?i)" + "|".join([*map(re.escape, specials), _SPLIT])), behavior="removed",
                             invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False, trim_offsets=False),
    ])  # fmt: skip
    # open_clip looks a lower-case special token up whole (its BPE cache), so a prompt that contains one gets its id
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    settings = {
        "context_length": int(simple_tokenizer.context_length),
        "sot_token_id": int(simple_tokenizer.sot_token_id),
        "eot_token_id": int(simple_tokenizer.eot_token_id),
        "clean": clean,
    }
    return tokenizer.to_str(), settings


_OPEN_CLIP_CLEAN_NAMES = {
    "lower": "_clean_lower", "whitespace": "_clean_whitespace", "canonicalize": "_clean_canonicalize"
}  # fmt: skip


class ClipTokenizer:
    """Token ids of open_clip's CLIP tokenizer, from a ``tokenizers`` JSON (see :func:`clip_tokenizer_json`).

    Args:
        path: The ``.tokenizer.json`` file.
        context_length: Tokens per prompt (77 for CLIP).
        sot_token_id, eot_token_id: Start- and end-of-text ids.
        clean: ``"lower"`` (CLIP's), ``"whitespace"`` or ``"canonicalize"``.

    Raises:
        CheckpointError: the file cannot be read, or ``clean`` is unknown.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        context_length: int,
        sot_token_id: int,
        eot_token_id: int,
        clean: str = "lower",
    ):
        from tokenizers import Tokenizer

        if clean not in CLEAN_FUNCTIONS:
            raise CheckpointError(f"unknown text cleaning {clean!r}; known: {', '.join(CLEAN_FUNCTIONS)}")
        try:
            self._tokenizer = Tokenizer.from_file(str(path))
        except Exception as e:  # tokenizers raises a bare Exception for missing and malformed files alike
            raise CheckpointError(f"cannot read tokenizer {path}: {e}") from e
        self.path = Path(path)
        self.context_length = context_length
        self.sot_token_id, self.eot_token_id = sot_token_id, eot_token_id
        self.clean = clean
        self._clean = CLEAN_FUNCTIONS[clean]

    def encode(self, text: str) -> list[int]:
        """BPE ids of one cleaned prompt, without start/end-of-text (open_clip's ``SimpleTokenizer.encode``)."""
        return self._tokenizer.encode(self._clean(text), add_special_tokens=False).ids

    def __call__(self, texts: str | Sequence[str]) -> np.ndarray:
        """``(N, context_length)`` int64 ids, zero-padded; an over-long prompt is cut to the context with its last
        id set to end-of-text, as open_clip does."""
        if isinstance(texts, str):
            texts = [texts]
        cleaned = [self._clean(t) for t in texts]
        encodings = self._tokenizer.encode_batch(cleaned, add_special_tokens=False) if cleaned else []
        out = np.zeros((len(cleaned), self.context_length), np.int64)
        for i, enc in enumerate(encodings):
            ids = [self.sot_token_id, *enc.ids, self.eot_token_id]
            if len(ids) > self.context_length:
                ids = ids[: self.context_length]
                ids[-1] = self.eot_token_id
            out[i, : len(ids)] = ids
        return out
