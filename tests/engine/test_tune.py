"""Fine-tuning modes end to end, on a tiny saved model: what trains, what stays bit-identical, what the saved model
carries, and what set_classes does afterwards."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import ovdet
from ovdet.cli.main import main
from ovdet.data.training import Batch
from ovdet.engine.ema import ModelEMA
from ovdet.engine.replay import join_batches
from ovdet.engine.settings import load_settings
from ovdet.engine.train import resume_settings, train
from ovdet.engine.tune import check_tuning, probe_convs, trained_parameters
from ovdet.errors import ConfigError, DatasetError
from tests.conftest import TINY_CLIP_CONFIG
from tests.fixtures_data import CLASSES, make_coco

TINY_DETECTOR = str(Path(__file__).parent.parent / "tiny-detector.yaml")
QUIET_AUG = {f"augment.{k}": 0 for k in ("mosaic", "scale", "translate", "fliplr", "hsv_h", "hsv_s", "hsv_v", "blur")}
START_NAMES = ["red square", "yellow star", "green ring", "purple cross"]  # the starting model's vocabulary
PROBE = [f"head.embed_branch.{i}.2.{p}" for i in range(3) for p in ("weight", "bias")]


@pytest.fixture(scope="module")
def start(tmp_path_factory):
    """A saved model to fine-tune: tiny detector, tiny text tower carried with it, BatchNorm statistics not the
    defaults (so that a moved statistic would show)."""
    folder = tmp_path_factory.mktemp("start")
    (folder / "text.json").write_text(json.dumps(TINY_CLIP_CONFIG))
    torch.manual_seed(0)
    model = ovdet.build(TINY_DETECTOR, str(folder / "text.json")).set_classes(START_NAMES)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    return Path(model.save(folder / "model"))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return str(make_coco(tmp_path_factory.mktemp("data"), n_train=8, n_val=2))


def _settings(data, model, out, **extra):
    # no validation split: the tests read the saved models, and each epoch's evaluation would only cost time
    return load_settings(None, {"data": data, "model": str(model), "epochs": 2, "imgsz": 64, "batch": 4, "workers": 0,
                                "out": str(out), "warmup_epochs": 0, "nbs": 4, "close_mosaic": 1, "lr0": 0.01,
                                "val_split": "none", **QUIET_AUG, **extra})  # fmt: skip


@pytest.fixture(scope="module")
def runs(start, data, tmp_path_factory):
    """One finished run per mode (full with its default distillation)."""
    root = tmp_path_factory.mktemp("runs")
    return {mode: train(_settings(data, start, root / mode, tune=mode), progress=False) for mode in ("full", "head", "prompts")}


def _state(folder):
    return ovdet.load(folder).state_dict()


def test_head_mode_trains_only_the_last_embedding_convs(start, runs):
    before, after = _state(start), _state(runs["head"] / "last")
    changed = sorted(k for k in before if k != "class_embeddings" and not torch.equal(before[k], after[k]))
    assert changed == sorted(PROBE)  # every other weight and every BatchNorm statistic is bit-identical
    assert any("running_mean" in k for k in before)  # ... and there were statistics to move


def test_prompts_mode_leaves_the_detector_bit_identical(start, runs):
    before, after = _state(start), _state(runs["prompts"] / "last")
    assert all(torch.equal(before[k], after[k]) for k in before if k != "class_embeddings")
    tuned = ovdet.load(runs["prompts"] / "last")
    assert tuned.tuned.names == tuple(CLASSES) and tuned.names == list(CLASSES)
    np.testing.assert_array_equal(tuned.vocabulary.embeddings, tuned.tuned.embeddings)  # the saved vocabulary
    text = ovdet.load(start).set_classes({"red square": ["red square", "red box"]}).class_embeddings[0]
    initial_gap = float(torch.dot(torch.from_numpy(tuned.tuned.get("red square")), text))
    assert initial_gap < 1 - 1e-4  # it moved from its text embedding (cosine 1): it trained


def test_full_mode_distils_by_default_and_records_it(runs):
    rows = (runs["full"] / "metrics.csv").read_text().splitlines()
    header, first = rows[0].split(","), rows[1].split(",")
    assert float(first[header.index("distill")]) > 0  # the starting model's other names were distilled
    assert ovdet.load(runs["full"] / "last").tuned is None


@pytest.mark.parametrize("mode", ["full", "head", "prompts"])
def test_any_names_in_any_order_after_fine_tuning(runs, mode, tiny_encoder):
    model = ovdet.load(runs[mode] / "last")
    names = ["Green  Square", "yellow star", "blue circle", "a brand new thing", "RED SQUARE"]
    model.set_classes(names)
    assert model.names == ["Green Square", "yellow star", "blue circle", "a brand new thing", "RED SQUARE"]
    encoded = model.text_encoder.encode(model.names)
    for i, name in enumerate(model.names):
        tuned = model.tuned.get(name) if model.tuned is not None else None
        if tuned is not None:  # installed as it is
            assert torch.equal(model.class_embeddings[i], torch.from_numpy(tuned)), (mode, name)
        else:  # the text encoder's unit vector, re-normalised by the vocabulary: equal to float32 rounding
            torch.testing.assert_close(model.class_embeddings[i], encoded[i], rtol=0, atol=1e-6)
    assert (model.tuned is not None) == (mode == "prompts")
    (result,) = model.predict(np.full((64, 80, 3), 120, np.uint8), conf=0.0, imgsz=64)
    assert result.names == tuple(model.names) and len(result) > 0


def test_tuned_embeddings_survive_save_load_and_runtime_onnx(runs, tmp_path):
    model = ovdet.load(runs["prompts"] / "last")
    again = ovdet.load(model.save(tmp_path / "copy", half=True))
    np.testing.assert_allclose(again.tuned.embeddings, model.tuned.embeddings, atol=1e-3)  # float16 storage
    onnx = ovdet.load_onnx(model.export("onnx", tmp_path / "m.onnx", vocabulary="runtime", imgsz=64))
    onnx.set_classes(["blue circle", "red square"])  # both embedded before, so the cache serves the other names
    np.testing.assert_array_equal(onnx.vocabulary.embeddings[0], model.tuned.get("blue circle"))
    model.set_classes(["blue circle", "red square"])
    np.testing.assert_allclose(onnx.vocabulary.embeddings, model.class_embeddings.numpy(), atol=1e-6)


def test_trained_parameters_per_mode(start):
    model = ovdet.load(start)
    names = [n for n, _ in model.named_parameters()]
    assert trained_parameters(model, "full") == names
    assert not any(n.startswith("backbone.") for n in trained_parameters(model, "full", "backbone"))
    assert trained_parameters(model, "head") == PROBE and trained_parameters(model, "prompts") == []
    yoloe26 = ovdet.build("yoloe-26n", None)
    convs = probe_convs(yoloe26)
    assert len(convs) == 6 and all(c.out_channels == yoloe26.embed_dim for c in convs)  # 3 levels x 2 branches
    assert {n.split(".")[1] for n in trained_parameters(yoloe26, "head")} == {"one2many", "one2one"}


def test_head_and_prompts_refuse_a_config_of_random_weights(data, tmp_path):
    for mode in ("head", "prompts"):
        with pytest.raises(ConfigError, match="random weights"):
            train(_settings(data, TINY_DETECTOR, tmp_path / mode, tune=mode), progress=False)
    assert not any(tmp_path.iterdir())  # refused before anything was written


def test_frozen_state_survives_the_ema_exactly():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Linear(3, 3))
    ema = ModelEMA(model, decay=0.9, tau=1, averaged={"1.weight", "1.bias"})
    frozen = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("0.")}
    with torch.no_grad():
        model[1].weight.add_(1.0)
    for _ in range(5):
        ema.update(model)
    assert all(torch.equal(ema.state[k], v) for k, v in frozen.items())
    assert not torch.equal(ema.state["1.weight"], model[1].weight)  # averaged: lags behind the model


def test_resuming_prompt_tuning_matches_an_uninterrupted_run(start, data, runs, tmp_path):
    calls = []

    def stop_in_the_second_epoch():
        calls.append(1)
        return len(calls) == 3  # 2 steps per epoch: the first step of epoch 2

    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train(_settings(data, start, out, tune="prompts"), progress=False, should_stop=stop_in_the_second_epoch)
    train(resume_settings(out), resume=True, progress=False)
    resumed, whole = ovdet.load(out / "last").tuned, ovdet.load(runs["prompts"] / "last").tuned
    np.testing.assert_array_equal(resumed.embeddings, whole.embeddings)


def test_resume_refuses_what_would_change_the_run_and_takes_repeated_values(runs, capsys):
    run = str(runs["prompts"])
    with pytest.raises(ConfigError, match="tune cannot change"):
        resume_settings(run, tune="head")
    with pytest.raises(ConfigError, match="distill cannot change"):
        resume_settings(runs["full"], distill="0.1")
    assert resume_settings(run, tune="prompts", workers=1).tune == "prompts"
    assert main(["train", "--out", run, "--resume", "--tune", "full"]) == 2
    assert "--tune cannot change when resuming" in capsys.readouterr().err
    assert main(["train", "--out", run, "--resume", "--tune", "prompts", "--epochs", "2", "--quiet"]) == 0


def test_cli_tune_prompts(start, data, tmp_path):
    out = tmp_path / "cli"
    args = ["train", "--data", data, "--model", str(start), "--tune", "prompts", "--epochs", "1", "--imgsz", "64",
            "--batch", "4", "--workers", "0", "--out", str(out), "--quiet", "--set", "warmup_epochs=0",
            "--set", "val_split=none"]  # fmt: skip
    assert main(args) == 0
    assert ovdet.load(out / "last").tuned.names == tuple(CLASSES)
    assert main(["train", "--data", data, "--model", TINY_DETECTOR, "--tune", "head", "--out", str(tmp_path / "x")]) == 2


def test_replay_joins_base_images_with_their_own_vocabularies(start, data, tmp_path):
    a = Batch(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), torch.tensor([[1, 0, 1, 1, 4, 4.0]]),
              torch.tensor([[3, 4], [5, 3]]), torch.ones(2, 2, dtype=torch.bool))  # fmt: skip
    b = Batch(torch.ones(1, 3, 8, 8, dtype=torch.uint8), torch.tensor([[0, 2, 2, 2, 6, 6.0]]),
              torch.tensor([[7, 8, 9]]), torch.ones(1, 3, dtype=torch.bool))  # fmt: skip
    joined = join_batches(a, b)
    assert joined.images.shape[0] == 3 and joined.targets[:, 0].tolist() == [1, 2]
    assert joined.prompts.tolist() == [[3, 4, 3], [5, 3, 5], [7, 8, 9]]
    assert joined.mask.tolist() == [[True, True, False], [True, True, False], [True, True, True]]
    base = make_coco(tmp_path / "base", n_train=4, n_val=0, seed=5, texts=False)
    run = train(_settings(data, start, tmp_path / "replay", tune="head", replay=str(base), epochs=1), progress=False)
    assert ovdet.load(run / "last").names == list(CLASSES)


def test_a_missing_replay_or_vocabulary_path_is_named_as_such(data, tmp_path):
    # the replay error read "dataset file nope.yaml does not exist", as if --data were wrong; a folder "did not exist"
    with pytest.raises(DatasetError, match=r"^replay dataset \(--set replay=...\): dataset file nope.yaml does not"):
        check_tuning(_settings(data, TINY_DETECTOR, tmp_path / "r", replay="nope.yaml"))
    with pytest.raises(DatasetError, match="replay dataset .* is a folder; give the dataset's YAML file in it"):
        check_tuning(_settings(data, TINY_DETECTOR, tmp_path / "r", replay=str(tmp_path)))
    with pytest.raises(ConfigError, match="distillation vocabulary .* is a folder"):
        check_tuning(_settings(data, TINY_DETECTOR, tmp_path / "r", distill_vocab=str(tmp_path)))


def test_replaying_the_training_dataset_itself_is_pointed_out(data, caplog):
    with caplog.at_level("WARNING", logger="ovdet.engine.tune"):
        check_tuning(_settings(data, TINY_DETECTOR, "unused", replay=str(data)))
    assert "replay is the training dataset itself" in caplog.text
