"""YOLOE's visual-prompt encoder (SAVPE), converted with the model: parity with ultralytics' visual-prompt predictions.

The checkpoints are tests/io/conftest.py's (random weights, real-photo BatchNorm statistics, 320 px). Tolerances as in
test_convert_families.py: embeddings are unit vectors computed by the same operations in the same order (~1e-7 in
practice, 1e-5 allowed); boxes within 1e-3 px, scores within 1e-4, masks IoU >= 0.99 against ultralytics' predictor.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

import ovdet
from ovdet.prompts import VisualPrompt
from tests.conftest import ASSETS, same_detections
from tests.io.conftest import IMGSZ
from tests.io.test_convert_families import _compare

IMAGES = {photo: cv2.imread(str(ASSETS / f"{photo}.jpg")) for photo in ("bus", "zidane")}
# people and the bus in bus.jpg (810x1080): the prompts of every test here
BOXES = np.array([[221, 405, 345, 857], [669, 392, 810, 878], [50, 397, 245, 905], [32, 232, 801, 769]], np.float32)
CLASSES = np.array([0, 1, 1, 2])  # class 1 has two examples: ultralytics merges them into one prompt mask


def _conf(model, image) -> float:
    """A threshold leaving 8-20 detections, halfway between two scores at least 2e-4 apart (so 1e-4, the score
    tolerance, on either side): these random scorers were calibrated on text, so visual classes score low."""
    scores = model.predict(image, imgsz=IMGSZ, conf=1e-4, agnostic=True, max_det=21)[0].scores  # the 21 best
    for k in range(min(20, len(scores) - 1), 7, -1):
        if scores[k - 1] - scores[k] > 2e-4:
            return float(scores[k - 1] + scores[k]) / 2
    raise AssertionError(f"no clear threshold among {scores[:21]}")


def _ultralytics_vp_predictor(model, boxes, classes):
    from ultralytics.models.yolo.yoloe import YOLOEVPSegPredictor

    predictor = YOLOEVPSegPredictor(overrides={"task": "segment", "mode": "predict", "imgsz": IMGSZ, "batch": 1,
                                               "verbose": False, "device": "cpu", "save": False})  # fmt: skip
    predictor.set_prompts({"bboxes": boxes, "cls": classes})
    predictor.setup_model(model=model, verbose=False)
    return predictor


def test_embed_visual_equals_ultralytics_visual_embeddings(ultralytics_checkpoint, monkeypatch):
    """SAVPE is the same module in every YOLOE layout: one layout proves the reading of the reference image."""
    from ultralytics import YOLOE
    from ultralytics.nn.tasks import BaseModel

    monkeypatch.setattr(BaseModel, "fuse", lambda self, *args, **kwargs: self)  # like with like: both unfused
    path = ultralytics_checkpoint("yoloe-11n-seg.yaml")
    ours = ovdet.from_ultralytics(path, trust_pickle=True)
    assert ours.config.head.savpe and ours.head.savpe is not None
    theirs = _ultralytics_vp_predictor(YOLOE(str(path)).model, BOXES, np.arange(len(BOXES)))
    expected = theirs.get_vpe(IMAGES["bus"])[0].numpy()  # (4, 512): one prompt per box
    found = ours.embed_visual(IMAGES["bus"], BOXES, imgsz=IMGSZ)
    assert found.shape == (4, 512) and found.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(found, axis=1), 1, atol=1e-6)
    np.testing.assert_allclose(found, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("cfg", ["yoloe-11n-seg.yaml", "yoloe-26n-seg.yaml"])
def test_visual_prompt_predictions_equal_ultralytics(ultralytics_checkpoint, cfg, monkeypatch):
    """ultralytics' YOLOE.predict(visual_prompts=..., refer_image=bus) against ovdet's classes given by the same
    boxes of bus.jpg, on zidane.jpg and on bus.jpg itself; YOLO26 NMS-free (ultralytics' nms=False). Both unfused,
    like with like (the next test proves ovdet's fused and exported models predict as its unfused one)."""
    from ultralytics import YOLOE
    from ultralytics.nn.tasks import BaseModel

    path = ultralytics_checkpoint(cfg)
    ours = ovdet.from_ultralytics(path, trust_pickle=True)
    monkeypatch.setattr(ours, "fast_predict", False)
    monkeypatch.setattr(BaseModel, "fuse", lambda self, *args, **kwargs: self)
    classes = {f"object{c}": VisualPrompt(IMAGES["bus"], BOXES[CLASSES == c]) for c in np.unique(CLASSES)}
    ours.set_classes(classes, imgsz=IMGSZ)
    assert ours.vocabulary.projected.all()  # SAVPE's rows are in YOLOE's projected space
    theirs = YOLOE(str(path))
    extra = {"nms": False} if "26" in cfg else {}
    for photo in ("zidane", "bus"):
        conf = _conf(ours, IMAGES[photo])
        reference = theirs.predict(IMAGES[photo], visual_prompts={"bboxes": BOXES, "cls": CLASSES},
                                   refer_image=IMAGES["bus"], imgsz=IMGSZ, conf=conf, device="cpu", verbose=False,
                                   retina_masks=True, **extra)[0]  # fmt: skip
        found = ours.predict(IMAGES[photo], imgsz=IMGSZ, conf=conf, agnostic=True)[0]
        _compare(reference, found, masks=True)


@pytest.fixture(scope="module")
def text_encoder_512(tmp_path_factory):
    """A tiny random 512-d open_clip text tower standing in for YOLOE's MobileCLIP (no weights offline)."""
    import json

    import open_clip

    from ovdet.text import TextEncoder

    path = tmp_path_factory.mktemp("clip512") / "ovdet-test-tiny-512.json"
    path.write_text(json.dumps({"embed_dim": 512, "vision_cfg": {"image_size": 32, "layers": 1, "width": 32,
                                "patch_size": 16}, "text_cfg": {"context_length": 77, "vocab_size": 49408,
                                "width": 32, "heads": 2, "layers": 1}}))  # fmt: skip
    open_clip.add_model_config(path)
    torch.manual_seed(0)
    return TextEncoder("ovdet-test-tiny-512")


def test_visual_rows_bypass_the_text_projection_when_folded_saved_and_exported(
    ultralytics_checkpoint, text_encoder_512, tmp_path
):
    """Text mixed with examples is averaged in YOLOE's projected space, and the flagged rows skip the projection
    through the fast path, fuse(), save/load and both ONNX vocabularies."""
    ours = ovdet.from_ultralytics(ultralytics_checkpoint("yoloe-11n-seg.yaml"), trust_pickle=True)
    ours.text_encoder = text_encoder_512
    mixed = VisualPrompt(IMAGES["bus"], BOXES[3:])
    ours.set_classes({"person": VisualPrompt(IMAGES["bus"], BOXES[:1]), "bus": ["bus", mixed], "text": ["dog"]},
                     imgsz=IMGSZ)  # fmt: skip
    vocab = ours.vocabulary
    assert vocab.projected.tolist() == [True, True, False]
    with torch.no_grad():
        text = ours.head.project_text(text_encoder_512.encode(["bus"]))[0].numpy()
    row = text + ours.embed_visual(IMAGES["bus"], BOXES[3:], imgsz=IMGSZ)[0]
    np.testing.assert_allclose(vocab.embeddings[1], row / np.linalg.norm(row), atol=1e-5)
    images = torch.from_numpy(np.stack([cv2.resize(IMAGES["bus"], (IMGSZ, IMGSZ))[..., ::-1] / 255]).astype(np.float32))
    with torch.no_grad():  # the flags matter: projecting the visual rows again scores otherwise
        flagged = ours(images.permute(0, 3, 1, 2)).class_logits
        again = ours(images.permute(0, 3, 1, 2), ours.class_embeddings).class_logits
    assert (flagged[:, :2] - again[:, :2]).abs().max() > 1 and torch.equal(flagged[:, 2], again[:, 2])

    ours.save(tmp_path / "m")
    loaded = ovdet.load(tmp_path / "m")
    assert loaded.vocabulary.projected.tolist() == [True, True, False] and loaded.prompts == ours.prompts
    conf = _conf(ours, IMAGES["zidane"])
    rows = lambda r: np.c_[r.class_ids, r.scores, r.boxes]  # noqa: E731
    ours.fast_predict = False
    (expected,) = ours.predict(IMAGES["zidane"], imgsz=IMGSZ, conf=conf, agnostic=True)
    ours.fast_predict = True
    # the runtime graph takes the flags as an input; a folded one traces the fold that fuse() makes
    onnx = ovdet.load_onnx(ours.export("onnx", tmp_path / "m.onnx", vocabulary="runtime", imgsz=IMGSZ), threads=1)
    assert "class_projected" in {i.name for i in onnx.session.get_inputs()}
    for other in (ours, loaded.fuse(), onnx):  # the default fast path, fused after loading, ONNX Runtime
        found = other.predict(IMAGES["zidane"], imgsz=IMGSZ, conf=conf, agnostic=True)[0]
        # ONNX Runtime and folding sum float32 in another order: boxes move by ~1e-5 of the input (as in
        # test_convert_families' ONNX checks), scores by ~1e-6
        same_detections(rows(expected), rows(found), box_tol=2e-2, score_tol=1e-4)


def test_a_yoloe_without_savpe_reads_out_its_projected_region_embeddings():
    torch.manual_seed(0)
    model = ovdet.build("yoloe-11n", None).eval()  # a YOLOE config of ovdet's own: no SAVPE
    assert model.head.savpe is None
    rows = model.embed_visual(IMAGES["bus"], BOXES[:2], imgsz=128)
    assert rows.shape == (2, 512)
    model.set_classes({"a": VisualPrompt(IMAGES["bus"], BOXES[:1])}, imgsz=128)
    assert model.vocabulary.projected.tolist() == [True]  # read where YOLOE's scorers compare: the projected space
    np.testing.assert_allclose(model.vocabulary.embeddings, rows[:1], atol=1e-6)
