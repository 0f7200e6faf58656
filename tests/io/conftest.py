"""Ultralytics YOLO-World and YOLOE checkpoints made offline: random weights, real-photo BatchNorm statistics, saved
exactly as ultralytics saves them (its trainer's float16 EMA copy, finalised by its own ``strip_optimizer``)."""

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
    task = "segment" if type(model).__name__.endswith("SegModel") else "detect"  # as its trainer records it
    torch.save(
        {"epoch": 0, "best_fitness": None, "model": None, "ema": copy.deepcopy(model).half(), "updates": 1,
         "optimizer": None, "train_args": {"imgsz": 640, "task": task}, "version": ultralytics.__version__},
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
    _calibrate_scores(list(model.model[-1].cv4), lambda: [model(photo_batch(IMGSZ))[1]["scores"]])
    return model.eval()


def _calibrate_scores(heads: list[torch.nn.Module], scores) -> None:
    """Map the region-text products (whose range differs per photo and per scale) to logits so that on each photo
    the top 0.5% of anchors pass conf 0.25 and the best is ~0.9996, not a saturated 1.0: a few dozen detections
    with well-separated scores instead of thousands of ties. ``scores()`` returns the raw score tensors (B, K, A)."""
    for h in heads:
        h.logit_scale.data.zero_()
        h.bias.data.zero_()
    with torch.no_grad():
        products = torch.cat([s.amax(1) for s in scores()], 1)  # (2, A...): best class per anchor
    start = min(torch.quantile(p, 0.995).item() for p in products)
    gain = 9.0 / (products.max().item() - start)
    for h in heads:
        h.logit_scale.data.fill_(math.log(gain))
        h.bias.data.fill_(-1.1 - gain * start)  # sigmoid(-1.1) = 0.25


def make_yoloe_model(cfg: str, *, seed: int = 0) -> torch.nn.Module:
    """A random ``YOLOEModel`` / ``YOLOESegModel`` like :func:`make_world_model`, whose text projection (zero at
    ultralytics' init, so the identity) is randomised so that it matters, and whose checkpoint vocabulary is stored
    as ultralytics stores it: projected embeddings ``pe`` (``get_tpe``)."""
    from ultralytics.nn.tasks import YOLOEModel, YOLOESegModel

    torch.manual_seed(seed)
    model = (YOLOESegModel if "-seg" in cfg else YOLOEModel)(cfg, nc=CLASSES, verbose=False)
    gen = torch.Generator().manual_seed(seed)
    raw = torch.nn.functional.normalize(torch.randn(1, CLASSES, 512, generator=gen), dim=-1)
    head = model.model[-1]
    for p in head.reprta.parameters():
        p.data.normal_(0, 0.02, generator=gen)
    for name, p in head.named_parameters():  # YOLO26's one-to-one branch starts as a copy: make it a branch of its own
        if name.startswith("one2one_") and p.ndim > 1:
            p.data.add_(torch.randn(p.shape, generator=gen) * 0.5 * p.std())
    model.names = {i: f"class {i}" for i in range(CLASSES)}
    calibrate_batchnorm(model, lambda m: m(photo_batch(IMGSZ), tpe=raw))
    model.pe = head.get_tpe(raw).detach()
    model.raw_text = raw  # what ovdet gets (not part of an ultralytics checkpoint; strip_optimizer keeps attributes)

    def scores():
        preds = model(photo_batch(IMGSZ), tpe=raw)[1]
        return [preds[k]["scores"] for k in ("one2many", "one2one")] if "one2one" in preds else [preds["scores"]]

    one2one = getattr(head, "one2one_cv4", None)
    _calibrate_scores(list(head.cv4) + (list(one2one) if one2one is not None else []), scores)
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


def make_prompt_free_model(cfg: str, *, seed: int = 0, classes: int = 100) -> torch.nn.Module:
    """A prompt-free YOLOE (``-pf``) made as THU-MIG's recipe and ultralytics make one: the text-prompted model's head
    fused with the projected embeddings of ``classes`` tag names gives the vocabulary convs (``get_vocab``, done here
    without a text model), and a copy fused with one "objectness" embedding gets them (``set_vocab``) as LRPC heads."""
    base = make_yoloe_model(cfg, seed=seed)
    gen = torch.Generator().manual_seed(seed + 1)
    names = [f"tag {i}" for i in range(classes)]
    tagger = copy.deepcopy(base)
    raw = torch.nn.functional.normalize(torch.randn(1, classes, 512, generator=gen), dim=-1)
    tagger.set_classes(names, tagger.model[-1].get_tpe(raw).detach())
    tagger.model[-1].fuse(tagger.pe)
    vocab = torch.nn.ModuleList(branch[-1] for branch in tagger.model[-1].cv3)
    model = copy.deepcopy(base)
    objectness = torch.nn.functional.normalize(torch.randn(1, 1, 512, generator=gen), dim=-1)
    model.set_classes(["object"], model.model[-1].get_tpe(objectness).detach())
    model.model[-1].fuse(model.pe)
    model.args = {"imgsz": IMGSZ}
    model.set_vocab(vocab, names)
    return model.eval()


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
