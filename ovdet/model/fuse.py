"""Inference-time folding: BatchNorm into convolutions, and a fixed vocabulary into the head and the neck.

Both are exact reparameterisations (equal up to float rounding), as in YOLO-World's own deployment:

- Conv + BatchNorm → one conv with adjusted weights and bias (ultralytics' ``fuse_conv_and_bn``).
- Head: the last 1×1 conv of the embedding branch (to D channels), the scorer's BatchNorm, the product with the K
  normalised text embeddings, the logit scale and bias are all linear, so they become one 1×1 conv to K channels.
  For the L2-normalised scorer only the text side folds: ``normalize(region)`` is not linear.
- Neck: a C2fAttn block's max-sigmoid attention projects the text with a Linear layer and takes, per head, the max
  over classes of ``embed · guide / sqrt(hc) + bias``; with the text fixed, that is a grouped 1×1 conv to
  ``heads × K`` channels followed by a max, with no per-image text projection, reshapes or batched matmuls.

These functions compute the folded tensors; ``OVDetector.fuse()`` decides when (and refolds on ``set_classes``).
In eval mode the head and the neck also use them for text given at call time (:func:`score_regions`,
:func:`attention_with_text`): the text is folded on the fly, per call, which costs ``K x D x C`` instead of
``K x D x H x W`` per level, and is written with batched matmuls whose shapes never name the class count, so an ONNX
export takes any number of classes (``model.export("onnx", path, vocabulary="runtime")``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from ultralytics.nn.modules import Conv
from ultralytics.nn.modules.block import BNContrastiveHead, C2fAttn, MaxSigmoidAttnBlock
from ultralytics.utils.torch_utils import fuse_conv_and_bn

__all__ = [
    "fuse_conv_bn_", "fold_scorer", "score_regions", "fold_attention", "attention_with_text", "c2f_attn_with_text",
    "c2f_attn_folded",
]  # fmt: skip


def fuse_conv_bn_(module: nn.Module) -> None:
    """Fold every ultralytics ``Conv``'s BatchNorm into its convolution, in place (as ultralytics' ``model.fuse()``)."""
    for m in module.modules():
        if isinstance(m, Conv) and hasattr(m, "bn"):
            m.conv = fuse_conv_and_bn(m.conv, m.bn)
            delattr(m, "bn")
            m.forward = m.forward_fuse


def fold_scorer(last_conv: nn.Conv2d, scorer: nn.Module, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Fold a region scorer and the text ``(..., K, D)`` into a linear map, computed in float32.

    Returns:
        ``(weight, bias, replaces_last_conv)``. For ``BNContrastiveHead``: weight ``(..., K, C)`` applied to the input
        of ``last_conv`` (which it replaces), bias ``(..., K)``. For the L2 ``ContrastiveHead``: weight
        ``(..., K, D)`` applied to ``normalize(last_conv(x))``.
    """
    text = F.normalize(text.float(), dim=-1)  # (..., K, D)
    scale = scorer.logit_scale.float().exp()
    if isinstance(scorer, BNContrastiveHead):
        bn = scorer.norm
        gain = bn.weight.float() / torch.sqrt(bn.running_var.float() + bn.eps)  # (D,)
        shift = bn.bias.float() - bn.running_mean.float() * gain
        w = last_conv.weight.float().flatten(1)  # (D, C)
        b = last_conv.bias.float() if last_conv.bias is not None else torch.zeros(w.shape[0], device=w.device)
        weight = scale * text @ (gain[:, None] * w)  # (..., K, C)
        bias = scale * text @ (gain * b + shift) + scorer.bias.float()
        return weight, bias, True
    return scale * text, scorer.bias.float().expand(text.shape[:-1]).clone(), False


def score_regions(branch: nn.Sequential, scorer: nn.Module, x: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """``scorer(branch(x), text)`` in eval mode, flattened to ``(B, K, H * W)``, with the text folded on the fly.

    Args:
        branch: The embedding branch, ending in a 1×1 conv to D channels.
        scorer: ``BNContrastiveHead`` (eval mode: its BatchNorm is linear and folds) or ``ContrastiveHead``.
        x: ``(B, C_in, H, W)`` features.
        text: ``(Bt, K, D)`` raw text embeddings, ``Bt`` 1 (shared by the batch) or B.
    """
    weight, bias, replaces_last = fold_scorer(branch[-1], scorer, text)
    region = branch[:-1](x) if replaces_last else F.normalize(branch(x), dim=1)
    region = region.flatten(2)  # (B, C, H * W)
    return torch.matmul(weight.to(region.dtype), region) + bias.to(region.dtype).unsqueeze(-1)


def fold_attention(attn: MaxSigmoidAttnBlock, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Fold a max-sigmoid attention block's guide (the text ``(K, D)`` through its Linear) into a 1×1 conv.

    Returns:
        ``(weight, bias, groups)``: a conv from the block's input to ``heads × K`` channels (head-major), whose max
        over each head's K channels is the pre-sigmoid attention. ``groups`` is the head count when the block has no
        embedding conv (each head reads its own channels), else 1 (the embedding conv is composed in).
    """
    nh, hc = attn.nh, attn.hc
    k = text.shape[0]
    guide = attn.gl(text.float()).view(k, nh, hc).transpose(0, 1) / hc**0.5  # (nh, K, hc)
    bias = attn.bias.float()[:, None].expand(nh, k).reshape(-1)  # (nh*K,)
    if attn.ec is None:
        return guide.reshape(nh * k, hc, 1, 1), bias.clone(), nh
    ec = attn.ec
    if hasattr(ec, "bn"):
        raise RuntimeError("fuse the embedding conv's BatchNorm before folding the attention")
    we = ec.conv.weight.float().flatten(1).view(nh, hc, -1)  # (nh, hc, C)
    be = ec.conv.bias.float().view(nh, hc) if ec.conv.bias is not None else we.new_zeros(nh, hc)
    weight = torch.einsum("hkc,hci->hki", guide, we).reshape(nh * k, -1, 1, 1)
    bias = bias + torch.einsum("hkc,hc->hk", guide, be).reshape(-1)
    return weight, bias, 1


def attention_with_text(attn: MaxSigmoidAttnBlock, x: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """``MaxSigmoidAttnBlock.forward(x, text)`` as batched matmuls: ``text`` ``(Bt, K, D)`` with ``Bt`` 1 (shared by
    the batch) or B. The same arithmetic as ultralytics' einsum (per head, the max over classes of
    ``embed · guide``, then ``/ sqrt(hc) + bias``), with the class axis kept where a matmul puts it."""
    b, _, h, w = x.shape  # view() with these (not unflatten) keeps them dynamic in a traced export
    guide = attn.gl(text)
    guide = guide.view(guide.shape[0], -1, attn.nh, attn.hc).transpose(1, 2)  # (Bt, nh, K, hc)
    embed = attn.ec(x) if attn.ec is not None else x
    embed = embed.view(b, attn.nh, attn.hc, -1)  # (B, nh, hc, H * W)
    aw = torch.matmul(guide, embed).amax(2).view(b, attn.nh, h, w)  # max over the K classes
    aw = (aw / attn.hc**0.5 + attn.bias[None, :, None, None]).sigmoid() * attn.scale
    out = attn.proj_conv(x).view(b, attn.nh, -1, h, w) * aw.unsqueeze(2)
    return out.view(b, -1, h, w)


def c2f_attn_with_text(block: C2fAttn, x: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """``C2fAttn.forward(x, text)`` through :func:`attention_with_text` (eval mode)."""
    y = list(block.cv1(x).chunk(2, 1))
    y.extend(m(y[-1]) for m in block.m)
    y.append(attention_with_text(block.attn, y[-1], text))
    return block.cv2(torch.cat(y, 1))


def c2f_attn_folded(
    block: C2fAttn, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, groups: int
) -> torch.Tensor:
    """``C2fAttn.forward`` with the folded attention of :func:`fold_attention` (no text argument)."""
    y = list(block.cv1(x).chunk(2, 1))
    y.extend(m(y[-1]) for m in block.m)
    y.append(_attention_folded(block.attn, y[-1], weight, bias, groups))
    return block.cv2(torch.cat(y, 1))


def _attention_folded(
    attn: MaxSigmoidAttnBlock, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, groups: int
) -> torch.Tensor:
    b, _, h, w = x.shape
    aw = F.conv2d(x, weight, bias, groups=groups)  # (B, nh*K, H, W)
    aw = aw.view(b, attn.nh, -1, h, w).amax(2).sigmoid() * attn.scale  # (B, nh, H, W)
    out = attn.proj_conv(x).view(b, attn.nh, -1, h, w) * aw.unsqueeze(2)
    return out.view(b, -1, h, w)
