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
from tests.conftest import ASSETS
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


@pytest.mark.parametrize("cfg", ["yoloe-11n-seg.yaml", "yoloe-26n-seg.yaml"])
def test_embed_visual_equals_ultralytics_visual_embeddings(ultralytics_checkpoint, cfg, monkeypatch):
    from ultralytics import YOLOE
    from ultralytics.nn.tasks import BaseModel

    monkeypatch.setattr(BaseModel, "fuse", lambda self, *args, **kwargs: self)  # like with like: both unfused
    path = ultralytics_checkpoint(cfg)
    ours = ovdet.from_ultralytics(path, trust_pickle=True)
    assert ours.config.head.savpe and ours.head.savpe is not None
    theirs = _ultralytics_vp_predictor(YOLOE(str(path)).model, BOXES, np.arange(len(BOXES)))
    expected = theirs.get_vpe(IMAGES["bus"])[0].numpy()  # (4, 512): one prompt per box
    found = ours.embed_visual(IMAGES["bus"], BOXES, imgsz=IMGSZ)
    assert found.shape == (4, 512) and found.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(found, axis=1), 1, atol=1e-6)
    np.testing.assert_allclose(found, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize(("cfg", "fused"), [("yoloe-11n-seg.yaml", False), ("yoloe-11n-seg.yaml", True),
                                            ("yoloe-26n-seg.yaml", False)])  # fmt: skip
def test_visual_prompt_predictions_equal_ultralytics(ultralytics_checkpoint, cfg, fused, monkeypatch):
    """ultralytics' YOLOE.predict(visual_prompts=..., refer_image=bus) against ovdet's classes given by the same
    boxes of bus.jpg, on zidane.jpg and on bus.jpg itself; YOLO26 NMS-free (ultralytics' nms=False)."""
    from ultralytics import YOLOE
    from ultralytics.nn.tasks import BaseModel

    path = ultralytics_checkpoint(cfg)
    ours = ovdet.from_ultralytics(path, trust_pickle=True)
    if fused:  # ultralytics' predictors fold BatchNorm: fold ours too
        ours.fuse()
    else:
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
