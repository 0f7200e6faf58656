"""Fine-tuning a converted YOLOE checkpoint on boxes (YOLO26: reg_max 1, both branches of the end-to-end head), and
evaluating it with masks: segm AP beside box AP."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import ovdet
from ovdet.engine.evaluate import _segm_metrics
from ovdet.engine.loss import DetectionLoss, one2many_gain
from ovdet.engine.settings import load_settings
from ovdet.engine.train import train
from ovdet.text import TextEncoder
from tests.fixtures_data import make_coco

# a 512-d random text tower (the width of YOLOE's text projection), small enough to build in a moment
TEXT_512 = {"embed_dim": 512, "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}


@pytest.fixture(scope="module")
def converted_folder(ultralytics_checkpoint, tmp_path_factory):
    folder = tmp_path_factory.mktemp("yoloe")
    (folder / "text.json").write_text(json.dumps(TEXT_512))
    encoder = TextEncoder(str(folder / "text.json"))
    model = ovdet.from_ultralytics(ultralytics_checkpoint("yoloe-26n-seg.yaml"), trust_pickle=True, text_encoder=encoder)
    model.save(folder / "model")
    return folder / "model"


def test_end_to_end_loss_trains_both_branches_and_decays_the_one_to_many_gain():
    model = ovdet.build("yoloe-26n", None).train()
    text = torch.nn.functional.normalize(torch.randn(2, 3, 512), dim=-1)
    out = model(torch.rand(2, 3, 64, 64), text)
    assert out.one2many is not None and out.box_logits.shape[1] == 4  # reg_max 1: four distances per anchor
    targets = torch.tensor([[0, 1, 8.0, 8.0, 40.0, 30.0], [1, 0, 20.0, 10.0, 60.0, 60.0]])
    loss, items = DetectionLoss(1)(out, targets, torch.ones(2, 3, dtype=torch.bool), one2many_gain=0.5)
    loss.backward()
    assert torch.isfinite(loss) and set(items) == {"box", "cls", "dfl"}
    for branch in ("one2one", "one2many"):
        grads = [p.grad for p in getattr(model.head, branch).parameters() if p.grad is not None]
        assert grads and sum(float(g.abs().sum()) for g in grads) > 0
    assert one2many_gain(0, 10) == pytest.approx(0.8) and one2many_gain(9, 10) == pytest.approx(0.1)


def test_converted_yoloe26_seg_fine_tunes_on_boxes_and_reports_mask_ap(converted_folder, tmp_path):
    data = make_coco(tmp_path / "data", n_train=8, n_val=3)
    settings = load_settings(None, {
        "data": str(data), "model": str(converted_folder), "epochs": 2, "imgsz": 64, "batch": 4, "workers": 0,
        "out": str(tmp_path / "run"), "warmup_epochs": 0, "nbs": 4, "close_mosaic": 1,
    })  # fmt: skip
    run = train(settings, progress=False)
    tuned = ovdet.load(run / "last")
    assert tuned.config.name == "yoloe-26n-seg" and tuned.end2end
    assert tuned.names == ["red square", "blue circle", "green square"]
    trained = dict(tuned.state_dict())
    original = ovdet.load(converted_folder).state_dict()
    for branch in ("one2one", "one2many"):  # both branches of the end-to-end head learned
        key = f"head.{branch}.embed.0.2.weight"
        assert not torch.equal(trained[key], original[key])
    result = tuned.predict(str(tmp_path / "data" / "val" / "val_0.jpg"), conf=0.0, imgsz=64)[0]
    assert result.masks is not None and result.masks.shape == (len(result), 96, 128)


def test_segm_ap_is_one_for_the_ground_truth_masks_and_null_without_them():
    from pycocotools import mask as mask_utils

    square = [[10.0, 10.0, 40.0, 10.0, 40.0, 40.0, 10.0, 40.0]]
    gt = {"images": [{"id": 1, "width": 64, "height": 64}], "categories": [{"id": 3, "name": "box"}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [10, 10, 30, 30], "area": 900,
                           "iscrowd": 0, "segmentation": square}]}  # fmt: skip
    rle = mask_utils.frPyObjects(square, 64, 64)[0]
    rle["counts"] = rle["counts"].decode("ascii")
    exact = [{"image_id": 1, "category_id": 3, "bbox": [10, 10, 30, 30], "score": 0.9, "segmentation": rle}]
    assert _segm_metrics(gt, exact)["AP"] == pytest.approx(1.0)
    half = np.zeros((64, 64), np.uint8)
    half[10:40, 10:25] = 1  # half the square: IoU 0.5
    rle = mask_utils.encode(np.asfortranarray(half))
    rle["counts"] = rle["counts"].decode("ascii")
    assert _segm_metrics(gt, [{**exact[0], "segmentation": rle}])["AP50"] < 1.0
    del gt["annotations"][0]["segmentation"]
    assert _segm_metrics(gt, exact) is None
