"""Shared fixtures: no network, a private cache, a tiny open_clip text tower, tiny detectors, real photos."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

# before anything imports ultralytics or huggingface_hub: never reach for the network in tests
os.environ["YOLO_OFFLINE"] = "1"
os.environ["HF_HUB_OFFLINE"] = "1"

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

# One compute thread: tests overlap torch with decoder/writer threads and subprocesses, and on a 2-core machine two
# OpenMP threads competing with them spin-wait for each other (slowdowns of 10-70x were seen under load).
torch.set_num_threads(1)

TINY_CLIP = "ovdet-test-tiny"
TINY_CLIP_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}
ASSETS = Path(__import__("ultralytics").__file__).parent / "assets"
BUS = ASSETS / "bus.jpg"
ZIDANE = ASSETS / "zidane.jpg"


def register_tiny_clip(folder: Path) -> Path:
    """Register the tiny open_clip config (as a user would with open_clip.add_model_config)."""
    import open_clip

    path = folder / f"{TINY_CLIP}.json"
    path.write_text(json.dumps(TINY_CLIP_CONFIG))
    open_clip.add_model_config(path)
    return path


@pytest.fixture(scope="session", autouse=True)
def _isolated_environment(tmp_path_factory):
    cache = tmp_path_factory.mktemp("ovdet-cache")
    os.environ["OVDET_CACHE"] = str(cache)
    register_tiny_clip(tmp_path_factory.mktemp("open-clip-configs"))
    yield


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    """A fresh, empty embedding cache for one test."""
    from ovdet.text import DEFAULT_CACHE

    monkeypatch.setenv("OVDET_CACHE", str(tmp_path / "cache"))
    DEFAULT_CACHE.clear_memory()
    yield tmp_path / "cache"
    DEFAULT_CACHE.clear_memory()


@pytest.fixture(scope="session")
def tiny_encoder():
    from ovdet.text import TextEncoder

    torch.manual_seed(0)
    return TextEncoder(TINY_CLIP)


def calibrate_batchnorm(model: torch.nn.Module, run) -> None:
    """Set every BatchNorm's statistics to those of one training-mode pass of ``run(model)`` (real photos), so a
    random-weight model has non-degenerate activations and varied scores; leaves the model in eval mode."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: after one pass, exactly that batch's statistics
    model.train()
    with torch.no_grad():
        run(model)
    for m in norms:
        m.momentum = 0.1
    model.eval()


def photo_batch(imgsz: int = 320) -> torch.Tensor:
    import cv2

    from ovdet.model.preprocess import preprocess

    return preprocess([cv2.imread(str(BUS)), cv2.imread(str(ZIDANE))], (imgsz, imgsz))[0]


def make_scorable(model):
    """Give a random ovdet model real-photo BatchNorm statistics and a zero logit bias (instead of -10), so it
    produces varied, non-degenerate detections."""
    gen = torch.Generator().manual_seed(0)
    text = torch.nn.functional.normalize(torch.randn(4, model.embed_dim, generator=gen), dim=-1)
    calibrate_batchnorm(model, lambda m: m(photo_batch(), text))
    for scorer in model.head.scorers:
        scorer.bias.data.zero_()
    return model


@pytest.fixture
def tiny_model(tiny_encoder):
    import ovdet

    torch.manual_seed(0)
    model = ovdet.build("ovdet-n", tiny_encoder)
    return make_scorable(model)


@pytest.fixture(scope="session")
def ultralytics_checkpoint(tmp_path_factory):
    """``ultralytics_checkpoint(cfg)`` -> path of a checkpoint of any YOLO-World / YOLOE yaml (cached per session);
    ``yoloe-*-seg-pf.yaml`` gives the prompt-free variant of ``yoloe-*-seg.yaml``."""
    folder = tmp_path_factory.mktemp("ultralytics-families")
    made: dict[str, Path] = {}

    def get(cfg: str) -> Path:
        from tests.io.conftest import make_prompt_free_model, make_world_model, make_yoloe_model
        from tests.io.conftest import write_ultralytics_checkpoint

        if cfg not in made:
            if cfg.endswith("-pf.yaml"):
                model = make_prompt_free_model(cfg.replace("-pf.yaml", ".yaml"))
            else:
                model = make_yoloe_model(cfg) if cfg.startswith("yoloe") else make_world_model(cfg)
            made[cfg] = write_ultralytics_checkpoint(model, folder / cfg.replace(".yaml", ".pt"))
        return made[cfg]

    return get


@pytest.fixture(scope="session")
def bus_image() -> np.ndarray:
    import cv2

    return cv2.imread(str(BUS))


# Two float32 computations of the same model that sum in another order (fused vs unfused, ONNX Runtime vs PyTorch,
# another CPU's kernels) agree on a box to a relative precision, not an absolute one: a box side is the stride times
# the expectation of a reg_max-bin softmax, so a logit's rounding (~1e-6 relative) moves it by up to
# stride x reg_max x that; up to 1e-2 input px was seen across machines. A user sees whole pixels: a twentieth of one
# is invisible and leaves a 5x margin. Scores are probabilities in [0, 1]: rounding moves them by ~1e-6, 1e-4 is safe.
BOX_TOL_PX = 0.05
SCORE_TOL = 1e-4


def same_detections(theirs: np.ndarray, ours: np.ndarray, *, box_tol: float, score_tol: float) -> None:
    """Rows ``(class, score, x1, y1, x2, y2)``: the same detections, matched class by class and box by box (the
    order of two near-equal scores is not part of a detector's output)."""
    assert len(theirs) == len(ours) and len(ours) > 0
    unused = list(range(len(ours)))
    for row in theirs:
        candidates = [j for j in unused if ours[j, 0] == row[0]]
        assert candidates, f"no detection of class {row[0]} left to match {row}"
        j = min(candidates, key=lambda j: np.abs(ours[j, 2:] - row[2:]).max())
        assert np.abs(ours[j, 2:] - row[2:]).max() <= box_tol, (row, ours[j])
        assert abs(ours[j, 1] - row[1]) <= score_tol, (row, ours[j])
        unused.remove(j)


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None):
    """Run ``python -m ovdet ARGS`` in a fresh process; returns the CompletedProcess."""
    import subprocess

    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "ovdet", *args], capture_output=True, text=True, cwd=cwd, env=full_env, timeout=300
    )
