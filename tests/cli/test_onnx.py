"""``--model model.onnx`` in predict, stream and eval: the same commands, the PyTorch model's results."""

from __future__ import annotations

import json
import shutil

import pytest

import ovdet
from ovdet.cli.main import main
from tests.conftest import BUS, ZIDANE
from tests.fixtures_data import make_coco


@pytest.fixture
def models(tiny_model, tmp_path, cache_dir):
    """The same weights as a saved PyTorch folder and as an ONNX bundle (runtime vocabulary + text encoder)."""
    tiny_model.set_classes(["person"])
    folder = tiny_model.save(tmp_path / "torch-model")
    bundle = tmp_path / "bundle"
    tiny_model.export("onnx", bundle / "model.onnx", vocabulary="runtime", imgsz=256)
    ovdet.export_text_encoder(tiny_model.text_encoder, bundle / "text_encoder.onnx")
    return folder, bundle


def _same_detections(ours, theirs) -> bool:
    """Per image, the same labels with the same scores (to 1e-4; JSON rounds scores to 5 decimals)."""
    def rows(path):
        return [sorted((d["label"], d["score"]) for d in r["detections"]) for r in json.loads(path.read_text())]

    a, b = rows(ours), rows(theirs)
    return sum(map(len, a)) > 3 and [[x[0] for x in r] for r in a] == [[x[0] for x in r] for r in b] and all(
        abs(x[1] - y[1]) <= 1e-4 for ra, rb in zip(a, b) for x, y in zip(ra, rb)
    )


def test_predict_with_an_onnx_model_gives_the_pytorch_detections(models, tmp_path, capsys):
    folder, bundle = models
    common = [str(BUS), str(ZIDANE), "--classes", "person, bus", "--conf", "0.6", "--imgsz", "256"]
    assert main(["predict", *common, "--model", folder, "--json", str(tmp_path / "t.json")]) == 0
    for model in (str(bundle / "model.onnx"), str(bundle)):  # the file, or the bundle folder
        assert main(["predict", *common, "--model", model, "--json", str(tmp_path / "o.json")]) == 0
        assert _same_detections(tmp_path / "o.json", tmp_path / "t.json")
    capsys.readouterr()
    assert main(["predict", str(BUS), "--classes", "a", "--model", str(bundle / "model.onnx"), "--device", "tpu"]) == 2
    assert "unknown device 'tpu'" in capsys.readouterr().err


def test_eval_and_stream_with_an_onnx_model(models, tmp_path, capsys):
    folder, bundle = models
    data = make_coco(tmp_path / "d")
    metrics = {}
    for name, model in (("torch", folder), ("onnx", str(bundle / "model.onnx"))):
        args = ["eval", "--model", model, "--data", str(data), "--imgsz", "128", "--out", str(tmp_path / name)]
        assert main(args) == 0
        metrics[name] = json.loads((tmp_path / name / "metrics.json").read_text())
    assert metrics["onnx"]["detections"] == metrics["torch"]["detections"] > 0
    assert metrics["onnx"]["AP"] == pytest.approx(metrics["torch"]["AP"], abs=1e-3)
    frames = tmp_path / "frames"
    frames.mkdir()
    shutil.copy(BUS, frames / "0.jpg")
    shutil.copy(ZIDANE, frames / "1.jpg")
    out = tmp_path / "s.jsonl"
    args = ["stream", str(frames), "--classes", "person", "--model", str(bundle), "--json", str(out), "--no-progress"]
    assert main(args) == 0
    assert len(out.read_text().splitlines()) == 2
