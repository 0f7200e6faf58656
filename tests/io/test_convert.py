"""Converting ultralytics YOLO-World v2 checkpoints: parity with ultralytics, refusals, pickle-free reloading."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

import ovdet
from ovdet.errors import CheckpointError, PickleRefusedError, WeightsUnavailableError
from ovdet.io.convert import convert_world_model
from ovdet.text.vocabulary import Vocabulary
from tests.conftest import ASSETS, photo_batch, same_detections
from tests.io.conftest import IMGSZ, write_ultralytics_checkpoint

# conf per photo: this random model scores the bus far higher than zidane; each gets a few dozen detections
PHOTOS = {"bus": 0.9, "zidane": 0.25}


@pytest.mark.parametrize("scale", ["n", "s"])
def test_raw_head_outputs_equal_ultralytics(world_checkpoint, converted, scale):
    from ultralytics.nn.tasks import load_checkpoint

    theirs, _ = load_checkpoint(world_checkpoint(scale))  # ultralytics' loader: float32, eval, not fused
    ours = converted(scale)
    assert ours.config.name == f"yoloworldv2-{scale}" and len(ours.names) == 80
    images = photo_batch(IMGSZ)
    # the checkpoint's own vocabulary, then another one: parity is not tied to the carried classes
    others = Vocabulary.from_embeddings(list("abcde"), np.random.default_rng(1).normal(size=(5, 512)), 512)
    for vocab in (ours.vocabulary, others):
        text = torch.from_numpy(vocab.embeddings)
        theirs.txt_feats = text[None].clone()  # the same (normalised) embeddings on both sides
        theirs.model[-1].nc = len(text)
        with torch.inference_mode():
            _, raw = theirs(images)
            out = ours(images, text)
        torch.testing.assert_close(out.box_logits, raw["boxes"], atol=1e-4, rtol=0)
        torch.testing.assert_close(out.class_logits, raw["scores"], atol=1e-4, rtol=0)


@pytest.mark.parametrize("mode", ["unfused", "fused", "default"])
@pytest.mark.parametrize("scale", ["n", "s"])
def test_predictions_equal_ultralytics_predict(world_checkpoint, converted, scale, mode, monkeypatch):
    from ultralytics import YOLOWorld
    from ultralytics.nn.tasks import WorldModel

    # On CPU, ultralytics' predictor folds each BatchNorm into its conv (and runs channels-last, as ovdet does), which
    # reorders float32 sums enough to move this random, ill-conditioned model's boxes by ~1e-2 px. So compare like with
    # like: ovdet's unfused model (fast_predict off) with ultralytics' predictor kept from fusing, and ovdet's fuse()
    # or its default fast path (a fused copy) with ultralytics' default. Its predictor also sets torch's thread count
    # (to cores - 1), which changes oneDNN's summation order: run it first, so that both sides use the same count.
    if mode == "fused":
        ours = ovdet.from_ultralytics(world_checkpoint(scale), trust_pickle=True).fuse()
    elif mode == "default":
        ours = ovdet.from_ultralytics(world_checkpoint(scale), trust_pickle=True)
    else:
        monkeypatch.setattr(WorldModel, "fuse", lambda self, *args, **kwargs: self)
        ours = converted(scale)
        monkeypatch.setattr(ours, "fast_predict", False)
    theirs = YOLOWorld(str(world_checkpoint(scale)))
    theirs.model.txt_feats = ours.class_embeddings[None].clone()
    images = {photo: cv2.imread(str(ASSETS / f"{photo}.jpg")) for photo in PHOTOS}
    reference = {  # on the CPU, as ovdet here, even where ultralytics would pick a GPU
        photo: theirs.predict(images[photo], imgsz=IMGSZ, conf=conf, device="cpu", verbose=False)[0]
        for photo, conf in PHOTOS.items()
    }
    for photo, conf in PHOTOS.items():
        r = reference[photo]
        (o,) = ours.predict(images[photo], imgsz=IMGSZ, conf=conf)
        expected = np.c_[r.boxes.cls.numpy(), r.boxes.conf.numpy(), r.boxes.xyxy.numpy()]
        found = np.c_[o.class_ids, o.scores, o.boxes]
        assert 5 <= len(found) < 300, len(found)  # a meaningful comparison: neither empty nor truncated
        same_detections(expected, found, box_tol=1e-3, score_tol=1e-4)


def test_conversion_carries_vocabulary_encoder_and_provenance(world_checkpoint, converted):
    path = world_checkpoint("n")
    model = converted("n")
    checkpoint = torch.load(path, weights_only=False)
    assert model.names == [f"class {i}" for i in range(80)]
    torch.testing.assert_close(model.class_embeddings, checkpoint["model"].txt_feats[0].float(), atol=1e-6, rtol=0)
    assert model.text_encoder.spec == "ViT-B-32-quickgelu:openai"
    assert model.config.head.embed_channels == 80 and model.config.head.norm == "batchnorm"
    source = model.metadata["converted_from"]
    assert source["format"] == "ultralytics" and source["file"] == path.name and len(source["sha256"]) == 64
    assert not model.training


def test_converted_model_saves_and_loads_without_pickle(converted, tmp_path, monkeypatch, bus_image):
    model = converted("n")
    model.save(tmp_path / "converted")
    before = model.predict(bus_image, conf=0.9, imgsz=IMGSZ)[0]

    def no_pickle(*args, **kwargs):
        raise AssertionError("torch.load (pickle) called while loading a converted model")

    monkeypatch.setattr(torch, "load", no_pickle)
    monkeypatch.setattr("pickle.load", no_pickle)
    monkeypatch.setattr("pickle.loads", no_pickle)
    loaded = ovdet.load(tmp_path / "converted")
    after = loaded.predict(bus_image, conf=0.9, imgsz=IMGSZ)[0]
    assert loaded.names == model.names and loaded.text_encoder.spec == "ViT-B-32-quickgelu:openai"
    assert len(after) == len(before) > 0
    np.testing.assert_allclose(after.boxes, before.boxes, atol=1e-4)
    assert loaded.metadata["converted_from"]["file"] == "world-n.pt"


def test_inconsistent_vocabulary_is_left_out_with_a_warning(caplog):
    from ultralytics.nn.tasks import WorldModel

    world = WorldModel("yolov8n-worldv2.yaml", nc=80, verbose=False)
    world.names = {0: "only one name"}  # but 80 txt_feats rows
    model = convert_world_model(world)
    assert model.names == [] and "1 class names but 80 class embeddings" in caplog.text


def test_refuses_to_unpickle_without_the_trust_flag(world_checkpoint):
    with pytest.raises(PickleRefusedError, match="trust_pickle=True") as info:
        ovdet.from_ultralytics(world_checkpoint("n"))
    assert "run any code" in str(info.value) and "--trust-pickle" in str(info.value)


def test_refuses_a_missing_or_unreadable_file(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        ovdet.from_ultralytics(tmp_path / "nope.pt", trust_pickle=True)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable torch checkpoint"):
        ovdet.from_ultralytics(tmp_path / "junk.pt", trust_pickle=True)


def test_refuses_ovdet_files_and_folders_naming_what_they_are(tmp_path, tiny_model):
    """A user who passes the converted folder (or a file in it) again, or a folder, hears what it is and how to load
    it, not "does not exist" or a pickle warning about a file that is no pickle; a state dict's keys are not all
    listed on the one error line."""
    folder = tmp_path / "converted"
    tiny_model.save(folder)
    with pytest.raises(CheckpointError, match="already an ovdet model folder.*ovdet.load"):
        ovdet.from_ultralytics(folder, trust_pickle=True)
    with pytest.raises(CheckpointError, match="is a folder; give the ultralytics .pt file"):
        ovdet.from_ultralytics(tmp_path, trust_pickle=True)
    for name in ("model.safetensors", "model.onnx"):
        (tmp_path / name).write_bytes(b"x")
        with pytest.raises(CheckpointError, match="not an ultralytics .pt checkpoint"):
            ovdet.from_ultralytics(tmp_path / name)  # no trust flag: it is not a pickle, so no pickle message
    torch.save({f"layer{i}.weight": torch.zeros(1) for i in range(300)}, tmp_path / "state.pt")
    with pytest.raises(CheckpointError, match=r"has no model in it") as info:
        ovdet.from_ultralytics(tmp_path / "state.pt", trust_pickle=True)
    assert "layer7.weight, ... (300 keys)" in str(info.value) and "layer8.weight" not in str(info.value)


def test_refuses_a_plain_yolov8_checkpoint(tmp_path):
    from ultralytics.nn.tasks import DetectionModel

    path = write_ultralytics_checkpoint(DetectionModel("yolov8n.yaml", nc=80, verbose=False), tmp_path / "yolov8n.pt")
    with pytest.raises(CheckpointError, match="closed-vocabulary") as info:
        ovdet.from_ultralytics(path, trust_pickle=True)
    assert "yolov8{n,s,m,l,x}-worldv2.pt" in str(info.value)


@pytest.mark.parametrize(
    ("change", "message"),
    [("sppf", "activation Identity"), ("eps", "eps 1e-05"), ("layer", "layer 12 is C2f from -1, where YOLO-World v2")],
)
def test_refuses_what_the_state_dict_does_not_show(change, message):
    from ultralytics.nn.modules import C2f
    from ultralytics.nn.tasks import WorldModel

    model = WorldModel("yolov8n-worldv2.yaml", nc=80, verbose=False)
    if change == "sppf":
        model.model[9].cv1.act = torch.nn.Identity()  # YOLO26's SPPF, whose cv1 is not activated
    elif change == "eps":
        model.model[4].cv1.bn.eps = 1e-5
    else:
        block = C2f(8, 8)
        block.i, block.f, block.type = 12, -1, "C2f"
        model.model[12] = block
    with pytest.raises(CheckpointError, match=message) as info:
        convert_world_model(model)
    assert "yolov8{n,s,m,l,x}-worldv2.pt" in str(info.value)


def test_known_weights_are_downloaded_converted_and_cached_once(world_checkpoint, tmp_path, monkeypatch):
    import shutil

    from ovdet.io.convert import fetch

    monkeypatch.setenv("OVDET_CACHE", str(tmp_path / "cache"))
    calls = []

    def fake_download(url, path, **kwargs):  # no network in tests: "download" the fixture checkpoint
        calls.append(url)
        shutil.copy(world_checkpoint("s"), path)

    monkeypatch.setattr(fetch, "_download", fake_download)
    model = ovdet.load("yolov8s-worldv2")
    assert calls == ["https://github.com/ultralytics/assets/releases/download/v8.4.0/yolov8s-worldv2.pt"]
    assert (tmp_path / "cache" / "weights" / "yolov8s-worldv2" / "model.safetensors").is_file()
    assert model.config.name == "yoloworldv2-s" and model.metadata["weights"]["name"] == "yolov8s-worldv2"
    assert not list((tmp_path / "cache" / "weights").glob(".*"))  # the downloaded pickle is not kept
    again = ovdet.load("yolov8s-worldv2")
    assert len(calls) == 1 and again.names == model.names


def test_known_weights_offline_say_how_to_convert_by_hand(tmp_path, monkeypatch):
    import urllib.error
    import urllib.request

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setenv("OVDET_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(WeightsUnavailableError, match="ovdet convert ultralytics yolov8m-worldv2.pt") as info:
        ovdet.load("yolov8m-worldv2")
    assert "--trust-pickle" in str(info.value) and "releases/download" in str(info.value)
    assert "yolov8m-worldv2" in ovdet.list_weights()
