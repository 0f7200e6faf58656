"""A tiny CLIP for the synthetic world: open_clip's text transformer + the detector's own backbone as image tower.

Trained contrastively with open_clip's ``ClipLoss`` on single-object crops and their captions, seen pairs only. Each
step shows every seen colour–shape pair exactly once, so no two images in a batch share a class and InfoNCE has no
false negatives. The text tower becomes the default detector's frozen text encoder (saved in open_clip's folder
layout, so ``ovdet.TextEncoder(folder)`` reads it); the image tower's backbone initialises the detector's backbone.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from ovdet.data.synthetic import World, render_crops
from ovdet.fileio import atomic_folder, atomic_write_text
from ovdet.model.backbone import CSPDarknet
from ovdet.model.config import ScaleConfig

logger = logging.getLogger("tiny_clip")

TEXT_MODEL_CONFIG = {
    "embed_dim": 64,
    "quick_gelu": False,
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 4, "layers": 2},
    # open_clip's registry wants a vision config too; ovdet only builds the text tower
    "vision_cfg": {"image_size": 64, "layers": 1, "width": 64, "head_width": 32, "patch_size": 16},
}
CROP_SIZE = 64


class ImageTower(nn.Module):
    """The detector's backbone, average-pooled at P3, P4 and P5, projected to the embedding dimension."""

    def __init__(self, scale: ScaleConfig, dim: int):
        super().__init__()
        self.backbone = CSPDarknet(scale)
        self.proj = nn.Linear(sum(self.backbone.out_channels), dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        feats = self.backbone(images)
        return self.proj(torch.cat([f.mean((2, 3)) for f in feats], 1))


class TinyCLIP(nn.Module):
    def __init__(self, scale: ScaleConfig, model_config: dict = TEXT_MODEL_CONFIG):
        super().__init__()
        from open_clip.model import _build_text_tower

        from ultralytics.utils.torch_utils import initialize_weights

        dim = model_config["embed_dim"]
        self.visual = ImageTower(scale, dim)
        initialize_weights(self.visual)  # the detector's BatchNorm settings (eps 1e-3), so the backbone transfers as is
        self.text = _build_text_tower(dim, model_config["text_cfg"], quick_gelu=model_config.get("quick_gelu", False))
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def forward(self, images: torch.Tensor, tokens: torch.Tensor):
        image = nn.functional.normalize(self.visual(images), dim=-1)
        text = nn.functional.normalize(self.text(tokens), dim=-1)
        return image, text, self.logit_scale.exp()


def crop_bank(world: World, per_pair: int, seed: int, pairs=None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``per_pair`` crops of each pair: RGB uint8 ``(N, S, S, 3)``, pair index per crop, captions."""
    pairs = list(world.seen_pairs if pairs is None else pairs)
    images, labels, captions = [], [], []
    for p, pair in enumerate(pairs):
        for crop in render_crops(world, per_pair, seed=seed, start=p * per_pair, pairs=[pair]):
            images.append(cv2.resize(crop.image, (CROP_SIZE, CROP_SIZE), interpolation=cv2.INTER_AREA)[..., ::-1])
            labels.append(p)
            captions.append(crop.caption)
    return np.stack(images), np.array(labels), captions


def _to_tensor(images: np.ndarray, device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).float().div_(255)


@torch.no_grad()
def zero_shot_top1(model: TinyCLIP, tokenizer, world: World, pairs, *, per_pair: int, seed: int, device) -> float:
    """Top-1 accuracy of classifying fresh crops of ``pairs`` among ALL the world's pair names."""
    model.eval()
    names = [f"{c} {s}" for c, s in world.pairs]
    text = nn.functional.normalize(model.text(tokenizer(names).to(device)), dim=-1)
    images, labels, _ = crop_bank(world, per_pair, seed, pairs)
    truth = torch.tensor([world.pairs.index(tuple(pairs[i])) for i in labels])
    image = nn.functional.normalize(model.visual(_to_tensor(images, device)), dim=-1)
    model.train()
    return float(((image @ text.T).argmax(1).cpu() == truth).float().mean())


def train_tiny_clip(
    world: World,
    out: Path,
    *,
    scale: ScaleConfig,
    steps: int,
    per_pair: int = 120,
    lr: float = 2e-3,
    device: str = "cpu",
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """Train, then write ``out/text`` (open_clip folder: the text encoder), ``out/backbone.safetensors`` and
    ``out/metrics.json`` (zero-shot top-1 on fresh crops of seen and of held-out pairs). Returns the metrics."""
    import open_clip
    from open_clip.loss import ClipLoss
    from safetensors.torch import save_file
    from tqdm import tqdm

    torch.manual_seed(seed)
    started = time.time()
    images, labels, captions = crop_bank(world, per_pair, seed)
    tokenizer = open_clip.SimpleTokenizer(context_length=TEXT_MODEL_CONFIG["text_cfg"]["context_length"])
    tokens = tokenizer(captions)
    n_pairs = len(world.seen_pairs)
    by_pair = [np.flatnonzero(labels == p) for p in range(n_pairs)]
    model = TinyCLIP(scale).to(device).train()
    decay = [p for n, p in model.named_parameters() if p.ndim > 1 and "embedding" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.ndim > 1 and "embedding" not in n)]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}], lr=lr)
    warmup = max(steps // 20, 1)
    loss_fn = ClipLoss()
    rng = np.random.default_rng(seed)
    bar = tqdm(range(steps), desc="tiny CLIP", unit="step", disable=not progress)
    for step in bar:
        factor = min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * step / steps))
        for group in optimizer.param_groups:
            group["lr"] = lr * factor
        index = np.array([rng.choice(ids) for ids in by_pair])  # one crop of every seen pair
        batch = images[index]
        flip = rng.random(len(batch)) < 0.5
        batch[flip] = batch[flip, :, ::-1]
        image_features, text_features, scale_ = model(_to_tensor(batch, device), tokens[index].to(device))
        loss = loss_fn(image_features, text_features, scale_)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)

    metrics = {
        "seen_top1": zero_shot_top1(model, tokenizer, world, world.seen_pairs, per_pair=20, seed=seed + 1, device=device),
        "held_out_top1": zero_shot_top1(model, tokenizer, world, world.held_out_pairs, per_pair=60, seed=seed + 1,
                                        device=device),
        "steps": steps,
        "seconds": round(time.time() - started, 1),
    }
    with atomic_folder(out / "text") as tmp:
        (tmp / "open_clip_config.json").write_text(json.dumps({"model_cfg": TEXT_MODEL_CONFIG}, indent=2) + "\n")
        text_state = {k: v.detach().cpu().contiguous() for k, v in model.text.state_dict().items()}
        save_file(text_state, str(tmp / "open_clip_model.safetensors"))
    backbone = {k: v.detach().cpu().contiguous() for k, v in model.visual.backbone.state_dict().items()}
    with atomic_folder(out / "image") as tmp:
        save_file(backbone, str(tmp / "backbone.safetensors"))
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    logger.info("tiny CLIP: %s", metrics)
    return metrics
