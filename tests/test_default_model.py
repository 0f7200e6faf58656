"""The bundled default model (weights/ovdet-synth): what README's quick start promises."""

import json
from pathlib import Path

import pytest

import ovdet
from ovdet.io.weights import DEFAULT_WEIGHTS, KNOWN_WEIGHTS, find_bundled

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "assets" / "demo.jpg"


def test_load_without_arguments_gives_the_bundled_model():
    model = ovdet.load()
    folder = find_bundled(KNOWN_WEIGHTS[DEFAULT_WEIGHTS])
    world = json.loads((folder / "world.json").read_text())
    held_out = {f"{c} {s}" for c, s in world["held_out_pairs"]}
    assert len(held_out) == 8 and model.names and not held_out & set(model.names)  # trained on seen pairs only
    assert model.text_encoder.travels and model.config.imgsz == 256  # its tiny text tower comes with it


def test_quick_start_detects_seen_and_held_out_pairs_on_the_demo(cache_dir):
    model = ovdet.load().set_classes(["red circle", "purple star", "blue ring", "yellow cross"])
    (result,) = model.predict(DEMO, conf=0.25)
    best = {}
    for label, score in zip(result.labels, result.scores):
        best[label] = max(best.get(label, 0.0), float(score))
    assert set(best) == {"red circle", "purple star", "blue ring", "yellow cross"}, best
    assert min(best.values()) > 0.5  # blue ring and yellow cross were never seen in training


def test_fresh_test_scenes_meet_the_targets_on_seen_and_held_out_pairs(tmp_path, cache_dir):
    from ovdet.data.datasets import load_dataset_config, load_split
    from ovdet.data.synthetic import write_dataset
    from ovdet.engine.evaluate import evaluate

    data = load_dataset_config(write_dataset(tmp_path / "d", train=0, val=0, test=80, seed=2024, progress=False))
    metrics = evaluate(ovdet.load(), load_split(data, "test"), texts=data.texts, group_by="held_out", progress=False)
    seen, held_out = metrics["groups"]["held_out=False"], metrics["groups"]["held_out=True"]
    assert seen["AP50"] >= 0.90 and held_out["AP50"] >= 0.60, metrics["groups"]


def test_int8_onnx_of_the_bundled_model_keeps_its_accuracy(tmp_path, cache_dir):
    """README's INT8 figures in small: fresh scenes, the runtime-vocabulary export in fp32 and INT8 (calibrated on
    other fresh scenes), names embedded by the exported text encoder."""
    from ovdet.data.datasets import load_dataset_config, load_split
    from ovdet.data.synthetic import write_dataset
    from ovdet.engine.evaluate import evaluate

    data = load_dataset_config(write_dataset(tmp_path / "d", train=0, val=16, test=60, seed=2025, progress=False))
    test = load_split(data, "test")
    model = ovdet.load()
    bundle = tmp_path / "bundle"
    model.export("onnx", bundle / "model.onnx", vocabulary="runtime")
    model.set_classes({n: list(data.texts.get(n, (n,))) for n in test.names})  # calibrate on the test vocabulary
    model.export("onnx", bundle / "int8.onnx", vocabulary="runtime", int8=True, calibration=tmp_path / "d/val/images")
    ovdet.export_text_encoder(model.text_encoder, bundle / "text_encoder.onnx")
    ap50 = {}
    for name in ("model", "int8"):
        onnx_model = ovdet.load_onnx(bundle / f"{name}.onnx")
        ap50[name] = evaluate(onnx_model, test, texts=data.texts, progress=False)["AP50"]
    reference = evaluate(model, test, texts=data.texts, progress=False)["AP50"]
    assert ap50["model"] == pytest.approx(reference, abs=1e-3) and reference > 0.9
    assert ap50["int8"] >= ap50["model"] - 0.02, ap50  # README: -0.001 on 600 images; 60 images are noisier
