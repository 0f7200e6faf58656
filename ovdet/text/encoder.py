"""The CLIP text encoder: an open_clip text tower and its tokenizer, nothing of the image tower.

``TextEncoder.encode(texts)`` returns L2-normalised float32 ``(N, D)`` embeddings. Texts already in the embedding
cache are served from it without loading any weights; the tower is built on first need. For causal towers
(CLIP's), each batch is cut after its longest end-of-text token: the pooled feature at the end-of-text token only
sees the tokens before it, so the result is exact and the transformer runs on ~8 tokens instead of 77.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import CheckpointError, VocabularyError, WeightsUnavailableError
from .cache import DEFAULT_CACHE, EmbeddingCache
from .spec import DEFAULT_TEXT_ENCODER, TextEncoderSpec, parse_text_encoder_spec

__all__ = ["TextEncoder", "DEFAULT_CACHE", "load_state_dict_file"]

logger = logging.getLogger(__name__)

_WARNED_TRUNCATED: set[str] = set()  # prompts already warned about in this process
_USE_DEFAULT = object()
_TEXT_KEYS = ("token_embedding", "positional_embedding", "transformer", "ln_final", "text_projection")


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a state dict from ``.safetensors``, or from a ``.bin``/``.pt``/``.pth`` file of plain tensors.

    Pickle-based files are read with ``torch.load(weights_only=True)``, PyTorch's restricted unpickler that only
    rebuilds tensors and containers and never runs code from the file.

    Raises:
        CheckpointError: the file cannot be read as a state dict.
    """
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd: Any = load_file(str(path))
        else:
            sd = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(
            f"cannot read weights from {path} ({type(e).__name__}: {str(e).splitlines()[0][:200]}). "
            "Give a .safetensors file or a state dict saved with torch.save(model.state_dict(), ...); "
            "TorchScript archives (OpenAI's original .pt files) are not read"
        ) from e
    if isinstance(sd, dict) and "state_dict" in sd:
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CheckpointError(f"{path} does not hold a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in sd.items()}


def text_tower_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Keep the text-tower entries of a full CLIP state dict, named as in ``open_clip.transformer.TextTransformer``."""
    if any(k.startswith("text.") for k in state_dict):  # CustomTextCLIP keeps its tower under "text."
        return {k[5:]: v for k, v in state_dict.items() if k.startswith("text.")}
    return {k: v for k, v in state_dict.items() if k.split(".")[0] in _TEXT_KEYS}


def _digest_tensors(state_dict: dict[str, torch.Tensor]) -> str:
    h = hashlib.blake2b(digest_size=12)
    for k in sorted(state_dict):
        t = state_dict[k].detach().cpu().contiguous()
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


_FILE_DIGESTS: dict[tuple[str, int, int], str] = {}


def _digest_file(path: Path) -> str:
    st = path.stat()
    memo = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if memo not in _FILE_DIGESTS:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                h.update(chunk)
        _FILE_DIGESTS[memo] = h.hexdigest()[:24]
    return _FILE_DIGESTS[memo]


def _digest_json(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:12]


def _hub_reachable(host: str, timeout: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0", "false", "False"):
        return False
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def _download_pretrained(model_name: str, tag: str) -> Path:
    """Path to the cached or freshly downloaded weights of an open_clip pretrained tag."""
    import open_clip

    cfg = open_clip.get_pretrained_cfg(model_name, tag)
    hub = cfg.get("hf_hub", "")
    model_id, filename = os.path.split(hub) if hub else ("", "")
    candidates = ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"] if not filename else [filename]
    if model_id:
        try:
            from huggingface_hub import try_to_load_from_cache

            for name in candidates:
                hit = try_to_load_from_cache(model_id, name)
                if isinstance(hit, str):
                    return Path(hit)
        except ImportError:
            pass
    where = f"https://huggingface.co/{model_id}/resolve/main/{candidates[0]}" if model_id else cfg.get("url", "")
    fix = (
        f"On a machine with network, download {where} and pass the file as the text encoder: "
        f"--text-encoder '{model_name}:/path/to/{Path(where).name}' (Python: ovdet.load(..., text_encoder=...) or "
        "ovdet.build(..., text_encoder=...)), or copy the Hugging Face cache over"
    )
    host = "huggingface.co" if model_id else (cfg.get("url", "").split("/")[2] if "//" in cfg.get("url", "") else "")
    if host and not _hub_reachable(host):
        raise WeightsUnavailableError(
            f"the weights of text encoder '{model_name}:{tag}' are not cached and {host} is unreachable (offline?). "
            + fix
        )
    try:
        return Path(open_clip.download_pretrained(cfg))
    except Exception as e:
        raise WeightsUnavailableError(
            f"could not download the weights of text encoder '{model_name}:{tag}' ({type(e).__name__}). " + fix
        ) from e


def _causal_trimmable(tower: nn.Module) -> bool:
    from open_clip.transformer import TextTransformer

    return (
        isinstance(tower, TextTransformer)
        and tower.cls_emb is None
        and tower.attn_mask is not None
        and not tower.use_pad_mask
        and tower.pool_type in ("argmax", "eos")
    )


def _forward_trimmed(tower: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """``TextTransformer.forward`` on a sequence shorter than the context, with the causal mask cut to match."""
    from open_clip.transformer import text_global_pool

    n = tokens.shape[1]
    dtype = tower.transformer.get_cast_dtype()
    x = tower.token_embedding(tokens).to(dtype) + tower.positional_embedding[:n].to(dtype)
    x = tower.transformer(x, attn_mask=tower.attn_mask[:n, :n])
    x = tower.ln_final(x)
    pooled = text_global_pool(x, tokens, tower.pool_type, eos_token_id=tower.eos_id)
    proj = tower.text_projection
    if proj is not None:
        pooled = proj(pooled) if isinstance(proj, nn.Linear) else pooled @ proj
    return pooled


class TextEncoder:
    """A frozen open_clip text tower with a tokenizer and an embedding cache.

    Args:
        spec: What to load; see :mod:`ovdet.text.spec`. Default ``ViT-B-32-quickgelu:openai``, YOLO-World's encoder.
        cache: Where embeddings are remembered; ``None`` disables caching. Default: the user cache directory.
        batch_size: Texts per forward pass.

    Raises:
        UnknownModelError, SourceError, ConfigError: the spec names nothing usable.

    Pretrained and file weights load on the first :meth:`encode` that misses the cache; random weights (a bare
    model name or a JSON config) are drawn at construction, since they are the encoder's identity.
    """

    def __init__(self, spec: str = DEFAULT_TEXT_ENCODER, *, cache: Any = _USE_DEFAULT, batch_size: int = 256):
        parsed = parse_text_encoder_spec(spec)
        self._init(spec, parsed.model_config(), tokenizer_name=parsed.model_name, cache=cache, batch_size=batch_size)
        self._parsed: TextEncoderSpec | None = parsed
        if parsed.tag is not None:
            self.key = f"{parsed.model_name}:{parsed.tag}"
        elif parsed.weights is not None:
            self.key = f"{parsed.model_name or 'config'}:{_digest_json(self.model_config)}:{_digest_file(parsed.weights)}"
        else:
            self._tower = self._new_tower()
            self.key = f"{parsed.model_name or 'config'}:{_digest_json(self.model_config)}:random:" + _digest_tensors(
                self._tower.state_dict()
            )
        if parsed.tag == "openai" and not self.model_config.get("quick_gelu", False):
            logger.warning(
                "%s: OpenAI weights were trained with QuickGELU but this config uses GELU; "
                "use '%s-quickgelu:openai' for exact features (YOLO-World's encoder is ViT-B-32-quickgelu:openai)",
                spec,
                parsed.model_name,
            )

    def _init(self, spec: str, model_config: dict, *, tokenizer_name: str | None, cache: Any, batch_size: int) -> None:
        self.spec = spec
        self.model_config = model_config
        self.dim = int(model_config["embed_dim"])
        self.tokenizer_name = tokenizer_name
        self.cache: EmbeddingCache | None = DEFAULT_CACHE if cache is _USE_DEFAULT else cache
        self.batch_size = batch_size
        self._tower: nn.Module | None = None
        self._tokenizer: Any = None
        self._device = torch.device("cpu")

    @classmethod
    def from_tower(
        cls,
        spec: str,
        key: str,
        model_config: dict,
        state_dict: dict[str, torch.Tensor],
        *,
        tokenizer_name: str | None = None,
        cache: Any = _USE_DEFAULT,
    ) -> TextEncoder:
        """Rebuild an encoder from a text tower carried inside a checkpoint (see :meth:`carried_state`).

        Raises:
            CheckpointError: the weights do not fit the config.
        """
        self = cls.__new__(cls)
        self._init(spec, model_config, tokenizer_name=tokenizer_name, cache=cache, batch_size=256)
        self._parsed = None
        self.key = key
        tower = self._new_tower()
        try:
            tower.load_state_dict(state_dict, strict=True)
        except RuntimeError as e:
            raise CheckpointError(f"the text tower saved with this model does not match its config: {e}") from e
        self._tower = tower
        return self

    def __repr__(self) -> str:
        return f"TextEncoder({self.spec!r}, dim={self.dim}, loaded={self._tower is not None})"

    @property
    def travels(self) -> bool:
        """Whether a checkpoint must carry this tower: only a zoo name with a pretrained tag can be re-created."""
        return self._parsed is None or self._parsed.tag is None

    def carried_state(self) -> dict[str, torch.Tensor]:
        """The tower's state dict, for checkpoints that carry it (loads the tower if needed)."""
        return {k: v.detach().cpu().contiguous() for k, v in self.tower.state_dict().items()}

    def _new_tower(self) -> nn.Module:
        from open_clip.model import _build_text_tower  # the tower alone: CLIP would also build the image tower

        cfg = self.model_config
        tower = _build_text_tower(cfg["embed_dim"], cfg["text_cfg"], quick_gelu=cfg.get("quick_gelu", False))
        return tower.eval().requires_grad_(False)

    @property
    def tower(self) -> nn.Module:
        """The open_clip text tower, loaded on first use.

        Raises:
            WeightsUnavailableError: pretrained weights are neither cached nor downloadable.
            CheckpointError: a weights file does not fit the model config.
        """
        if self._tower is None:
            parsed = self._parsed
            assert parsed is not None, "carried towers are loaded at construction"
            path = parsed.weights if parsed.weights is not None else _download_pretrained(parsed.model_name, parsed.tag)
            tower = self._new_tower()
            sd = text_tower_state_dict(load_state_dict_file(path))
            missing, unexpected = tower.load_state_dict(sd, strict=False)
            if missing or unexpected:
                raise CheckpointError(
                    f"weights {path} do not fit text encoder '{self.spec}': missing {missing[:5]}, "
                    f"unexpected {unexpected[:5]}; is the model name right?"
                )
            self._tower = tower.to(self._device)
        return self._tower

    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            import open_clip

            text_cfg = self.model_config.get("text_cfg", {})
            if self.tokenizer_name is not None and self.tokenizer_name in open_clip.list_models():
                self._tokenizer = open_clip.get_tokenizer(self.tokenizer_name)
            elif text_cfg.get("hf_tokenizer_name"):
                self._tokenizer = open_clip.tokenizer.HFTokenizer(
                    text_cfg["hf_tokenizer_name"], context_length=text_cfg.get("context_length", 77)
                )
            else:
                self._tokenizer = open_clip.SimpleTokenizer(
                    context_length=text_cfg.get("context_length", 77), **text_cfg.get("tokenizer_kwargs", {})
                )
        return self._tokenizer

    def to(self, device: str | torch.device) -> TextEncoder:
        """Run the tower on ``device`` from now on (embeddings are still returned on the CPU)."""
        self._device = torch.device(device)
        if self._tower is not None:
            self._tower.to(self._device)
        return self

    def encode(self, texts: Sequence[str], *, device: str | torch.device | None = None) -> torch.Tensor:
        """Embed ``texts``: ``(N, D)`` float32, L2-normalised, on the CPU, row i for ``texts[i]``.

        Args:
            texts: Prompts; duplicates are encoded once.
            device: Run the tower there for this call's misses (default: where it is).

        Raises:
            VocabularyError: ``texts`` is not a sequence of non-empty strings.
            WeightsUnavailableError: an uncached text needs pretrained weights that cannot be downloaded.
        """
        if isinstance(texts, str) or not all(isinstance(t, str) and t.strip() for t in texts):
            raise VocabularyError("texts must be a list of non-empty strings")
        unique = list(dict.fromkeys(texts))
        self._warn_truncated(unique)
        found = self.cache.get(self.key, unique) if self.cache is not None else {}
        missing = [t for t in unique if t not in found]
        if missing:
            if device is not None:
                self.to(device)
            computed = self._encode_uncached(missing).numpy()
            if self.cache is not None:
                self.cache.put(self.key, missing, computed)
            found.update(zip(missing, computed))
        if not texts:
            return torch.empty(0, self.dim)
        return torch.from_numpy(np.stack([found[t] for t in texts]).astype(np.float32, copy=False))

    @property
    def context_length(self) -> int:
        """Tokens the tower reads per prompt (77 for CLIP): a longer prompt is cut to its first ones."""
        return int(self.model_config.get("text_cfg", {}).get("context_length", 77))

    def _warn_truncated(self, texts: list[str]) -> None:
        """Warn once per prompt that the tokenizer cuts (two prompts equal in their first tokens embed alike)."""
        limit = self.context_length - 2  # start and end-of-text tokens
        # a byte-level BPE token covers at least one UTF-8 byte, so shorter texts cannot be cut: no tokenizing needed
        for text in texts:
            if len(text.encode("utf-8")) <= limit or text in _WARNED_TRUNCATED:
                continue
            encode = getattr(self.tokenizer, "encode", None)
            n = len(encode(text)) if encode is not None else None
            if n is not None and n > limit:
                _WARNED_TRUNCATED.add(text)
                logger.warning(
                    "prompt %r is %d tokens, more than text encoder '%s' reads (%d): it is cut to its first %d, so "
                    "prompts that agree up to there get the same embedding; shorten it",
                    text if len(text) <= 80 else text[:77] + "...", n, self.spec, limit, limit,
                )  # fmt: skip

    @torch.inference_mode()
    def _encode_uncached(self, texts: list[str]) -> torch.Tensor:
        tower = self.tower
        device = next(tower.parameters()).device
        tokens = self.tokenizer(texts)
        if not isinstance(tokens, torch.Tensor):
            tokens = torch.as_tensor(tokens)
        trim = _causal_trimmable(tower)
        if trim:
            eot = tokens.argmax(-1) if tower.pool_type == "argmax" else (tokens == tower.eos_id).int().argmax(-1)
            lengths = eot + 1
            order = torch.argsort(lengths)  # similar lengths share a batch, so little is padded
        else:
            order = torch.arange(len(texts))
        out = torch.empty(len(texts), self.dim)
        for start in range(0, len(texts), self.batch_size):
            idx = order[start : start + self.batch_size]
            batch = tokens[idx]
            if trim:
                batch = batch[:, : int(lengths[idx].max())]
                feats = _forward_trimmed(tower, batch.to(device))
            else:
                feats = tower(batch.to(device))
            out[idx] = feats.float().cpu()
        return torch.nn.functional.normalize(out, dim=-1)
