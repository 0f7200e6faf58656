"""ONNX export of a CLIP text tower, with its tokenizer as a torch-free ``tokenizers`` JSON beside it.

``export_text_encoder(spec, "text_encoder.onnx")`` writes:

- ``text_encoder.onnx``: input ``tokens`` ``(N, L)`` int64 (N and L dynamic, L ≤ the context length), output
  ``embeddings`` ``(N, D)`` float32, L2-normalised. The tower runs on the L tokens given, with its causal mask and
  positional embedding cut to L, and pools at the end-of-text token: a batch cut after its longest end-of-text token
  gives exactly the embeddings of the full context, as the PyTorch encoder computes them (``ovdet.text.encoder``).
- ``text_encoder.tokenizer.json``: open_clip's BPE as a Hugging Face ``tokenizers`` file
  (:mod:`ovdet.runtime.tokenizer`), read by :class:`~ovdet.runtime.OnnxTextEncoder` without torch.

The ONNX metadata (``ovdet`` key) records the encoder's spec and cache key, so the runtime shares the PyTorch
encoder's embedding cache, and the tokenizer's settings and sha256.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from ..errors import CheckpointError, ConfigError
from ..fileio import atomic_write_bytes
from ..runtime.session import METADATA_KEY, ONNX_FORMAT_VERSION, tokenizer_path
from ..runtime.tokenizer import clip_tokenizer_json
from .encoder import TextEncoder, _causal_trimmable

__all__ = ["export_text_encoder"]

logger = logging.getLogger(__name__)


def _supported(tower: nn.Module) -> bool:
    from open_clip.transformer import ResidualAttentionBlock

    blocks = getattr(getattr(tower, "transformer", None), "resblocks", [])
    return _causal_trimmable(tower) and all(
        type(b) is ResidualAttentionBlock and isinstance(b.attn, nn.MultiheadAttention) and b.attn.batch_first
        and not hasattr(b, "ln_1_kv") for b in blocks
    )  # fmt: skip


def _block(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """open_clip's ``ResidualAttentionBlock.forward`` under a causal mask, written so that a traced export keeps the
    sequence length dynamic (``nn.MultiheadAttention`` bakes it into its reshapes)."""
    mha = block.attn
    n = x.shape[0]
    q, k, v = nn.functional.linear(block.ln_1(x), mha.in_proj_weight, mha.in_proj_bias).chunk(3, dim=-1)
    q, k, v = (t.view(n, -1, mha.num_heads, mha.head_dim).transpose(1, 2) for t in (q, k, v))  # (N, heads, L, hd)
    out = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    x = x + block.ls_1(mha.out_proj(out.transpose(1, 2).reshape(n, -1, mha.embed_dim)))
    return x + block.ls_2(block.mlp(block.ln_2(x)))


class _Embed(nn.Module):
    """Token ids ``(N, L)`` → L2-normalised embeddings ``(N, D)``: ``TextEncoder``'s trimmed forward
    (``_forward_trimmed``), equal to it to float rounding (tests/text/test_export.py)."""

    def __init__(self, tower: nn.Module):
        super().__init__()
        self.tower = tower

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        from open_clip.transformer import text_global_pool

        tower = self.tower
        x = tower.token_embedding(tokens) + tower.positional_embedding[: tokens.shape[1]]
        for block in tower.transformer.resblocks:
            x = _block(block, x)
        pooled = text_global_pool(tower.ln_final(x), tokens, tower.pool_type, eos_token_id=tower.eos_id)
        proj = tower.text_projection
        if proj is not None:
            pooled = proj(pooled) if isinstance(proj, nn.Linear) else pooled @ proj
        return nn.functional.normalize(pooled.float(), dim=-1)


def export_text_encoder(encoder: str | TextEncoder, path: str | os.PathLike, *, opset: int = 17) -> Path:
    """Export a text encoder to ONNX, its tokenizer beside it (see the module docstring); returns ``path``.

    Args:
        encoder: A text-encoder spec (``"ViT-B-32-quickgelu:openai"``, see :mod:`ovdet.text.spec`) or a
            ``TextEncoder``, e.g. ``model.text_encoder`` of a model whose tower travels with it.
        path: The ``.onnx`` file; ``NAME.tokenizer.json`` goes beside it. Put it beside an exported detector as
            ``text_encoder.onnx`` and ``ovdet.load_onnx`` finds it. Earlier ovdet exports are replaced (atomically);
            any other file is refused.
        opset: ONNX opset.

    Raises:
        CheckpointError: a tower or tokenizer this export cannot reproduce (only open_clip's causal text transformer
            with its CLIP BPE tokenizer is supported).
        WeightsUnavailableError: the encoder's pretrained weights are not available (offline).
        ConfigError: a tokenizer path that holds a file ovdet did not write.
        OutputError: an output path that holds a folder, a file ovdet did not write, or a detector export.
    """
    from ..model.export import check_replaceable, read_ovdet_metadata

    encoder = TextEncoder(encoder) if isinstance(encoder, str) else encoder
    path = Path(path)
    vocab_path = tokenizer_path(path)
    check_replaceable(path, kind="text_encoder")
    if vocab_path.exists():
        previous = read_ovdet_metadata(path) if path.exists() else None
        if not previous or (previous.get("tokenizer") or {}).get("file") != vocab_path.name:
            raise ConfigError(f"{vocab_path} exists and was not written by ovdet's export beside {path.name}; "
                              "choose another path, or remove the file yourself")  # fmt: skip
    tower = encoder.tower  # loads the weights (or fails with how to get them)
    if not _supported(tower):
        raise CheckpointError(
            f"text encoder '{encoder.spec}' is not an open_clip causal text transformer pooled at end-of-text; "
            "ONNX export supports CLIP-style towers (ViT-B-32-quickgelu, MobileCLIP, ...)"
        )
    import open_clip

    tokenizer = encoder.tokenizer
    if not isinstance(tokenizer, open_clip.SimpleTokenizer):
        raise CheckpointError(f"text encoder '{encoder.spec}' uses {type(tokenizer).__name__}; ONNX export supports "
                              "open_clip's CLIP BPE tokenizer (SimpleTokenizer)")  # fmt: skip
    vocab_json, settings = clip_tokenizer_json(tokenizer)
    if settings["context_length"] > tower.positional_embedding.shape[0]:
        raise CheckpointError(f"tokenizer context {settings['context_length']} exceeds the tower's "
                              f"{tower.positional_embedding.shape[0]} positions")  # fmt: skip

    graph = _Embed(tower).eval().float().cpu()
    example = torch.tensor([[settings["sot_token_id"], 320, 1125, settings["eot_token_id"]]] * 2)
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about Python-side shape arithmetic
        torch.onnx.export(
            graph, (example,), buffer, dynamo=False, opset_version=opset, input_names=["tokens"],
            output_names=["embeddings"], dynamic_axes={"tokens": {0: "texts", 1: "length"}, "embeddings": {0: "texts"}},
        )  # fmt: skip
    import onnx

    proto = onnx.load_from_string(buffer.getvalue())
    vocab_bytes = vocab_json.encode("utf-8")
    info = {
        "format_version": ONNX_FORMAT_VERSION,
        "kind": "text_encoder",
        "spec": encoder.spec,
        "key": encoder.key,
        "dim": encoder.dim,
        "pool": tower.pool_type,
        "tokenizer": {**settings, "file": vocab_path.name, "sha256": hashlib.sha256(vocab_bytes).hexdigest()},
        "inputs": {"tokens": "(N, L) int64 token ids, L <= context_length"},
        "outputs": {"embeddings": "(N, D) float32, L2-normalised"},
    }
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(info)
    # the tokenizer first: the ONNX names its sha256, so a crash between the two writes is detected at load time
    atomic_write_bytes(vocab_path, vocab_bytes)
    atomic_write_bytes(path, proto.SerializeToString())
    logger.info("exported text encoder %s (%d-d) to %s and %s", encoder.spec, encoder.dim, path, vocab_path.name)
    return path
