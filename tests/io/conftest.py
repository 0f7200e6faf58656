"""Ultralytics YOLO-World checkpoints made offline: random weights, real-photo BatchNorm statistics, saved exactly as
ultralytics saves them (its trainer's float16 EMA copy, finalised by its own ``strip_optimizer``)."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch

from tests.conftest import calibrate_batchnorm, photo_batch

CLASSES = 80
IMGSZ = 320  # parity tests run at 320: the same code paths as 640 at a quarter of the cost


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """ultralytics' predictor sets torch's thread count for the whole process (to cores - 1); undo it after a test."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def write_ultralytics_checkpoint(model: torch.nn.Module, path: Path) -> Path:
    """Write ``model`` to ``path`` as an ultralytics training run ends: a checkpoint with the EMA model in float16,
    then ``strip_optimizer``, which moves the EMA into ``"model"``, drops training state and adds metadata."""
    import ultralytics
    from ultralytics.utils.torch_utils import strip_optimizer

    raw = path.with_name(path.stem + ".last.pt")
    torch.save(
        {"epoch": 0, "best_fitness": None, "model": None, "ema": copy.deepcopy(model).half(), "updates": 1,
         "optimizer": None, "train_args": {"imgsz": 640}, "version": ultralytics.__version__},
        raw,
    )  # fmt: skip
    strip_optimizer(raw, str(path))
    raw.unlink()
    return path


def make_world_model(cfg: str, *, seed: int = 0) -> torch.nn.Module:
    """A random ``WorldModel`` with real-photo BatchNorm statistics, unit-length class embeddings and contrastive-head
    scale/bias that give a few dozen confident detections per photo (not thousands of ties)."""
    from ultralytics.nn.tasks import WorldModel

    torch.manual_seed(seed)
    model = WorldModel(cfg, nc=CLASSES, verbose=False)
    gen = torch.Generator().manual_seed(seed)
    model.txt_feats = torch.nn.functional.normalize(torch.randn(1, CLASSES, 512, generator=gen), dim=-1)
    model.names = {i: f"class {i}" for i in range(CLASSES)}
    calibrate_batchnorm(model, lambda m: m(photo_batch(IMGSZ)))
    # Map the region-text products (whose range differs per photo and per scale) to logits so that on each photo
    # the top 0.5% of anchors pass conf 0.25 and the best is ~0.9996, not a saturated 1.0: a few dozen detections
    # with well-separated scores instead of thousands of ties.
    heads = list(model.model[-1].cv4)
    for h in heads:
        h.logit_scale.data.zero_()
        h.bias.data.zero_()
    with torch.no_grad():
        products = model(photo_batch(IMGSZ))[1]["scores"].amax(1)  # (2, A): best class per anchor
    start = min(torch.quantile(p, 0.995).item() for p in products)
    gain = 9.0 / (products.max().item() - start)
    for h in heads:
        h.logit_scale.data.fill_(math.log(gain))
        h.bias.data.fill_(-1.1 - gain * start)  # sigmoid(-1.1) = 0.25
    return model.eval()


@pytest.fixture(scope="session")
def world_checkpoint(tmp_path_factory):
    """``world_checkpoint(scale)`` -> path of a ``yolov8{scale}-worldv2``-layout ultralytics checkpoint (cached)."""
    folder = tmp_path_factory.mktemp("ultralytics")
    made: dict[str, Path] = {}

    def get(scale: str) -> Path:
        if scale not in made:
            made[scale] = write_ultralytics_checkpoint(
                make_world_model(f"yolov8{scale}-worldv2.yaml"), folder / f"world-{scale}.pt"
            )
        return made[scale]

    return get


@pytest.fixture(scope="session")
def converted(world_checkpoint):
    """``converted(scale)`` -> the checkpoint converted by ``ovdet.from_ultralytics`` (cached: deep-copy to mutate)."""
    import ovdet

    made = {}

    def get(scale: str):
        if scale not in made:
            made[scale] = ovdet.from_ultralytics(world_checkpoint(scale), trust_pickle=True)
        return made[scale]

    return get
