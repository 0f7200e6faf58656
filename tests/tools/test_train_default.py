"""The default-model recipe, end to end at a miniature size (the real one runs for hours on a CPU)."""

import json
import subprocess
import sys
from pathlib import Path

import ovdet

TOOL = Path(__file__).resolve().parents[2] / "tools" / "train_default.py"
TINY = ["--train-images", "24", "--val-images", "6", "--test-images", "12", "--clip-steps", "10", "--clip-crops", "6",
        "--epochs", "2", "--imgsz", "96", "--batch", "8", "--data-workers", "1"]  # fmt: skip


def _run(*args):
    return subprocess.run([sys.executable, str(TOOL), *args], capture_output=True, text=True, timeout=600)


def test_recipe_packages_a_loadable_default_model_and_resumes(tmp_path):
    work, out, examples = tmp_path / "work", tmp_path / "weights", tmp_path / "examples"
    args = ["--work", str(work), "--out", str(out), "--examples", str(examples), *TINY]
    first = _run(*args)
    assert first.returncode == 0, first.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "metrics.json", "model.safetensors", "world.json"]
    world = json.loads((out / "world.json").read_text())
    assert len(world["held_out_pairs"]) == 8
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["test"]) == {"all", "seen", "held_out"}
    model = ovdet.load(out)
    held = {f"{c} {s}" for c, s in world["held_out_pairs"]}
    assert model.names and not held & set(model.names)  # trained on seen pairs only
    assert model.config.imgsz == 96 and model.text_encoder.travels
    assert len(list(examples.glob("*.jpg"))) == 4

    refused = _run(*args)
    assert refused.returncode == 2 and "--resume" in refused.stderr
    again = _run(*args, "--resume")
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads(again.stdout[again.stdout.index("{"):])["test"] == metrics["test"]
