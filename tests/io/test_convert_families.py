"""Converting YOLO-World v1 and YOLOE (v8, 11, 26; detection, -seg, prompt-free) checkpoints: parity with ultralytics.

Each ultralytics model is built from the yaml ultralytics ships, with random weights and BatchNorm statistics from
its two photos, saved as its trainer saves checkpoints, then converted (see tests/io/conftest.py). Tolerances: raw
head outputs within 1e-4 (logits of magnitude <= ~20 and DFL logits, float32: the same operations in the same order,
so ~1e-6 in practice); boxes within 1e-3 px and scores within 1e-4 against ultralytics' own predictor; masks by IoU
>= 0.99 (a mask is thresholded at 0, so float rounding can flip pixels where the logit is ~0).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

import ovdet
from ovdet.errors import CheckpointError, VocabularyError
from tests.conftest import ASSETS, photo_batch, same_detections
from tests.io.conftest import IMGSZ

PHOTOS = ("bus", "zidane")
IMAGES = {photo: cv2.imread(str(ASSETS / f"{photo}.jpg")) for photo in PHOTOS}
# the n sizes; tools/check_family_configs.py checks every shipped size's layout (C3k blocks of m, l, x included)
RAW = ["yolov8n-world.yaml", "yoloe-v8n.yaml", "yoloe-v8n-seg.yaml", "yoloe-11n.yaml", "yoloe-11n-seg.yaml",
       "yoloe-26n.yaml", "yoloe-26n-seg.yaml"]  # fmt: skip
# fused models only where they fold something the others do not (each family once, with masks where there are any)
PREDICT = [(cfg, nms, fused) for cfg, nms, folds in [
    ("yolov8n-world.yaml", None, True), ("yoloe-v8n.yaml", None, False), ("yoloe-v8n-seg.yaml", None, True),
    ("yoloe-11n.yaml", None, False), ("yoloe-11n-seg.yaml", None, True), ("yoloe-26n.yaml", False, False),
    ("yoloe-26n-seg.yaml", False, True), ("yoloe-26n-seg.yaml", True, False), ("yoloe-11n-seg-pf.yaml", None, True),
] for fused in ((False, True) if folds else (False,))]  # fmt: skip


def _raw(theirs, images, text):
    """ultralytics' raw head outputs (the one-to-many and, for YOLO26, one-to-one dicts)."""
    if type(theirs).__name__ == "WorldModel":
        theirs.txt_feats = text[None].clone()
        theirs.model[-1].nc = len(text)
        return {"one2many": theirs(images)[1]}
    preds = theirs(images, tpe=text[None])[1]  # projected inside, as ovdet does
    return preds if "one2one" in preds else {"one2many": preds}


@pytest.mark.parametrize("cfg", RAW)
def test_raw_head_outputs_equal_ultralytics(ultralytics_checkpoint, cfg):
    from ultralytics.nn.tasks import load_checkpoint

    path = ultralytics_checkpoint(cfg)
    theirs, _ = load_checkpoint(path)  # ultralytics' loader: float32, eval, not fused
    ours = ovdet.from_ultralytics(path, trust_pickle=True)
    assert ours.config.name == cfg.removesuffix(".yaml").replace("yolov8n-world", "yoloworld-n")
    assert len(ours.names) == 80
    images = photo_batch(IMGSZ)
    others = torch.nn.functional.normalize(torch.from_numpy(np.random.default_rng(1).normal(size=(5, 512))).float(), dim=-1)
    for text in (ours.class_embeddings, others):  # the carried vocabulary, then any other
        with torch.inference_mode():
            raw = _raw(theirs, images, text)
            for branch in raw:
                ours.end2end = branch == "one2one"
                out, ref = ours(images, text), raw[branch]
                torch.testing.assert_close(out.box_logits, ref["boxes"], atol=1e-4, rtol=0)
                torch.testing.assert_close(out.class_logits, ref["scores"], atol=1e-4, rtol=0)
                if "mask_coefficient" in ref:
                    torch.testing.assert_close(out.mask_coefficients, ref["mask_coefficient"], atol=1e-4, rtol=0)
            if out.protos is not None:
                proto = theirs(images, tpe=text[None])[0][1]
                torch.testing.assert_close(out.protos, proto, atol=1e-4, rtol=0)


def test_yoloe_vocabulary_is_carried_as_raw_embeddings(ultralytics_checkpoint):
    """ultralytics stores projected embeddings (pe); ovdet keeps raw ones whose projection is exactly those."""
    checkpoint = torch.load(ultralytics_checkpoint("yoloe-11n-seg.yaml"), weights_only=False)
    ours = ovdet.from_ultralytics(ultralytics_checkpoint("yoloe-11n-seg.yaml"), trust_pickle=True)
    pe = checkpoint["model"].pe[0].float()
    torch.testing.assert_close(ours.head.project_text(ours.class_embeddings), pe, atol=1e-6, rtol=0)
    torch.testing.assert_close(ours.class_embeddings.norm(dim=-1), torch.ones(80), atol=1e-6, rtol=0)
    assert ours.text_encoder.spec == "MobileCLIP-B:datacompdr_lt" and ours.config.text_encoder == ours.text_encoder.spec
    assert ovdet.from_ultralytics(ultralytics_checkpoint("yoloe-26n.yaml"), trust_pickle=True).text_encoder.spec == (
        "MobileCLIP2-B:dfndr2b"
    )


def conf_for(model, image, imgsz: int = IMGSZ, **kwargs) -> float:
    """A threshold that leaves 8-20 detections, halfway between two scores at least 1e-3 apart: these random models
    score photos very differently, and a threshold near a score would make the comparison a coin toss. (Greedy NMS
    keeps a box regardless of lower-scored ones, so the detections above it are those of a low threshold.)"""
    scores = model.predict(image, imgsz=imgsz, conf=0.01, **kwargs)[0].scores
    for k in range(min(20, len(scores) - 1), 7, -1):
        if scores[k - 1] - scores[k] > 1e-3:
            return float(scores[k - 1] + scores[k]) / 2
    raise AssertionError(f"no clear threshold among {scores[:21]}")


def _compare(reference, found, *, masks: bool) -> None:
    expected = np.c_[reference.boxes.cls.numpy(), reference.boxes.conf.numpy(), reference.boxes.xyxy.numpy()]
    rows = np.c_[found.class_ids, found.scores, found.boxes]
    assert 8 <= len(rows) <= 20, len(rows)  # a meaningful comparison: neither empty nor truncated
    same_detections(expected, rows, box_tol=1e-3, score_tol=1e-4)
    assert (found.masks is not None) == masks == (reference.masks is not None)
    if masks:
        theirs = reference.masks.data.numpy().astype(bool)  # retina_masks: original-image pixels, as ovdet's
        for i, row in enumerate(rows):  # the same detection: same class, score and box (clipped boxes may repeat)
            j = (np.abs(expected[:, 2:] - row[2:]).max(1) + 1e3 * np.abs(expected[:, 1] - row[1])
                 + 1e9 * (expected[:, 0] != row[0])).argmin()  # fmt: skip
            mine = found.masks[i]
            assert (theirs[j] & mine).sum() / max((theirs[j] | mine).sum(), 1) >= 0.99


@pytest.mark.parametrize(("cfg", "nms", "fused"), PREDICT)
def test_predictions_equal_ultralytics_predict(ultralytics_checkpoint, cfg, nms, fused, monkeypatch):
    """ultralytics' own predict (YOLOWorld / YOLOE), retina masks, against ovdet's predict; YOLO26 both NMS-free
    (ovdet's default, ultralytics' nms=False) and one-to-many + NMS (ultralytics' default, ovdet's end2end=False).
    YOLOE.predict defaults to class-agnostic NMS, so ovdet gets agnostic=True for YOLOE."""
    from ultralytics import YOLOE, YOLOWorld
    from ultralytics.nn.tasks import BaseModel

    path = ultralytics_checkpoint(cfg)
    ours = ovdet.from_ultralytics(path, trust_pickle=True)
    if nms:
        ours.end2end = False
    if fused:  # like with like: ultralytics' predictor folds BatchNorm (see tests/io/test_convert.py)
        ours.fuse()
    else:  # the model itself (not its default folded copy) against ultralytics' predictor kept from folding
        monkeypatch.setattr(ours, "fast_predict", False)
        monkeypatch.setattr(BaseModel, "fuse", lambda self, *args, **kwargs: self)
    world = cfg.startswith("yolov8")
    theirs = (YOLOWorld if world else YOLOE)(str(path))
    extra = {} if nms is None else {"nms": nms}
    for photo in PHOTOS:
        conf = conf_for(ours, IMAGES[photo], agnostic=not world)
        reference = theirs.predict(IMAGES[photo], imgsz=IMGSZ, conf=conf, device="cpu", verbose=False,
                                   retina_masks=True, **extra)[0]  # fmt: skip
        found = ours.predict(IMAGES[photo], imgsz=IMGSZ, conf=conf, agnostic=not world)[0]
        _compare(reference, found, masks="-seg" in cfg)


def test_prompt_free_model_predicts_its_own_vocabulary_and_refuses_text(ultralytics_checkpoint, tmp_path):
    model = ovdet.from_ultralytics(ultralytics_checkpoint("yoloe-11n-seg-pf.yaml"), trust_pickle=True)
    assert model.prompt_free and model.config.name == "yoloe-11n-seg-pf" and model.text_encoder is None
    assert model.names == [f"tag {i}" for i in range(100)] and model.config.head.prompt_free == 100
    with pytest.raises(VocabularyError, match="prompt-free.*yoloe-11s-seg.pt instead of yoloe-11s-seg-pf.pt"):
        model.set_classes(["person"])
    model.save(tmp_path / "pf")
    loaded = ovdet.load(tmp_path / "pf")
    assert loaded.prompt_free and loaded.names == model.names
    conf = conf_for(model, IMAGES["bus"])
    a, b = (m.predict(IMAGES["bus"], imgsz=IMGSZ, conf=conf)[0] for m in (model, loaded))
    assert len(a) == len(b) > 0 and np.array_equal(a.class_ids, b.class_ids)
    onnx = ovdet.load_onnx(model.export("onnx", tmp_path / "pf.onnx", imgsz=IMGSZ), threads=1)
    c = onnx.predict(IMAGES["bus"], imgsz=IMGSZ, conf=conf)[0]
    same_detections(np.c_[a.class_ids, a.scores, a.boxes], np.c_[c.class_ids, c.scores, c.boxes], box_tol=2e-2,
                    score_tol=1e-4)  # fmt: skip
    assert c.names == tuple(model.names) and c.masks is not None
    with pytest.raises(VocabularyError, match="prompt-free model.*no text input.*instead of yoloe-11s-seg-pf.pt"):
        onnx.set_classes(["person"])  # not "export with vocabulary='runtime'", which a prompt-free model refuses


def test_converted_yoloe_seg_saves_loads_and_exports(ultralytics_checkpoint, tmp_path):
    model = ovdet.from_ultralytics(ultralytics_checkpoint("yoloe-26n-seg.yaml"), trust_pickle=True)
    model.save(tmp_path / "seg")
    loaded = ovdet.load(tmp_path / "seg")
    before, after = (m.predict(IMAGES["bus"], imgsz=IMGSZ, conf=0.9)[0] for m in (model, loaded))
    assert loaded.end2end and len(after) == len(before) > 0
    np.testing.assert_allclose(after.boxes, before.boxes, atol=1e-4)
    assert np.array_equal(np.asarray(after.masks), np.asarray(before.masks))
    onnx = ovdet.load_onnx(model.export("onnx", tmp_path / "seg.onnx", imgsz=IMGSZ), threads=1)
    exported = onnx.predict(IMAGES["bus"], imgsz=IMGSZ, conf=0.9)[0]
    same_detections(np.c_[before.class_ids, before.scores, before.boxes],
                    np.c_[exported.class_ids, exported.scores, exported.boxes], box_tol=2e-2, score_tol=1e-4)  # fmt: skip
    assert exported.masks is not None and len(exported.masks) == len(exported)


def test_fused_yoloe_refolds_its_projection_on_set_classes(ultralytics_checkpoint):
    model = ovdet.from_ultralytics(ultralytics_checkpoint("yoloe-11n.yaml"), trust_pickle=True)
    fused = ovdet.from_ultralytics(ultralytics_checkpoint("yoloe-11n.yaml"), trust_pickle=True).fuse()
    text = torch.nn.functional.normalize(torch.randn(7, 512), dim=-1)
    for m in (model, fused):
        m.set_classes([f"c{i}" for i in range(7)], embeddings=text)
    images = photo_batch(IMGSZ)
    with torch.inference_mode():
        a, b = model(images), fused(images)
    # folding BatchNorm and the scorer reassociates float32 sums: ~1e-7 relative per term, amplified by this random
    # model's large logit scale; bounded relative to the logits' magnitude (up to ~17 here)
    torch.testing.assert_close(b.class_logits, a.class_logits, atol=1e-4 * a.class_logits.abs().max().item(), rtol=0)
    torch.testing.assert_close(b.box_logits, a.box_logits, atol=1e-4 * a.box_logits.abs().max().item(), rtol=0)


@pytest.mark.parametrize(
    ("builder", "cfg", "message"),
    [("PoseModel", "yolov8n-pose.yaml", "pose-estimation"), ("OBBModel", "yolov8n-obb.yaml", "oriented-bounding-box"),
     ("ClassificationModel", "yolov8n-cls.yaml", "image-classification"),
     ("SegmentationModel", "yolov8n-seg.yaml", "closed-vocabulary instance-segmentation"),
     ("DetectionModel", "yolo11n.yaml", "closed-vocabulary detection")],
)  # fmt: skip
def test_refusals_name_what_the_file_holds(builder, cfg, message, tmp_path):
    import ultralytics.nn.tasks as tasks

    from tests.io.conftest import write_ultralytics_checkpoint

    path = write_ultralytics_checkpoint(getattr(tasks, builder)(cfg, verbose=False), tmp_path / "m.pt")
    with pytest.raises(CheckpointError, match=message) as info:
        ovdet.from_ultralytics(path, trust_pickle=True)
    assert "yoloe-v8/11/26" in str(info.value)


def test_text_projection_is_inverted_where_the_fixed_point_alone_would_not_converge():
    from ovdet.io.convert.yoloe import unproject_text

    head = ovdet.build("yoloe-11n", None).head
    gen = torch.Generator().manual_seed(0)
    for p in head.text_projection.parameters():
        p.data.normal_(0, 0.06, generator=gen)  # a strong projection: f's Lipschitz constant is well above 1
    raw = torch.nn.functional.normalize(torch.randn(40, 512, generator=gen), dim=-1)
    with torch.no_grad():
        projected = head.project_text(raw)
        found, cosine = unproject_text(head, projected)
        assert (cosine > 1 - 1e-6).all()
        torch.testing.assert_close(head.project_text(found), projected, atol=1e-5, rtol=0)


def test_cli_converts_yolo_world_v1_and_predicts_its_classes_offline(ultralytics_checkpoint, tmp_path, capsys):
    from ovdet.cli.main import main

    path = ultralytics_checkpoint("yolov8n-world.yaml")
    assert main(["convert", "ultralytics", str(path), str(tmp_path / "v1"), "--trust-pickle"]) == 0
    assert "yoloworld-n, 80 classes, text encoder ViT-B-32-quickgelu:openai" in capsys.readouterr().err
    model = ovdet.load(tmp_path / "v1")
    assert model.config.neck.image_pooling and model.metadata["converted_from"]["file"] == path.name
    assert main(["predict", str(ASSETS / "bus.jpg"), "--model", str(tmp_path / "v1"), "--imgsz", str(IMGSZ)]) == 0
    assert "bus.jpg:" in capsys.readouterr().out
    # ImagePoolingAttn's adaptive pooling exports with a dynamic input size (a traceable twin in the exported copy).
    # ONNX Runtime sums float32 in another order: boxes move by ~1e-5 of the image size (~1e-2 px here); scores by
    # ~1e-6 of the unit-length region-text products times this random model's logit scale (~176) times sigmoid's
    # slope (<= 1/4), and ImagePoolingAttn's softmax passes such errors on: bounded with a factor of 8 to spare
    score_tol = max(1e-4, 2e-6 * model.head.scorers[0].logit_scale.exp().item())
    onnx = ovdet.load_onnx(model.export("onnx", tmp_path / "v1.onnx", imgsz=IMGSZ), threads=1)
    for size in (IMGSZ, 256):
        conf = conf_for(model, IMAGES["bus"], size)
        a, b = (m.predict(IMAGES["bus"], imgsz=size, conf=conf)[0] for m in (model, onnx))
        same_detections(np.c_[a.class_ids, a.scores, a.boxes], np.c_[b.class_ids, b.scores, b.boxes],
                        box_tol=2e-2, score_tol=score_tol)  # fmt: skip


def test_cli_converts_yoloe_seg_and_writes_its_masks_as_json(ultralytics_checkpoint, tmp_path, capsys):
    import json

    from pycocotools import mask as mask_utils

    from ovdet.cli.main import main

    path = ultralytics_checkpoint("yoloe-11n-seg.yaml")
    assert main(["convert", "ultralytics", str(path), str(tmp_path / "seg"), "--trust-pickle"]) == 0
    assert "(yoloe-11n-seg, 80 classes, text encoder" in capsys.readouterr().err
    model = ovdet.from_ultralytics(path, trust_pickle=True)  # what the API converts, in this process
    conf = conf_for(model, IMAGES["bus"], max_det=21)  # the top 21 are all it looks at: 21 masks, not 300
    (expected,) = model.predict(IMAGES["bus"], imgsz=IMGSZ, conf=conf)
    out = tmp_path / "detections.json"
    assert main(["predict", str(ASSETS / "bus.jpg"), "--model", str(tmp_path / "seg"), "--imgsz", str(IMGSZ),
                 "--conf", str(conf), "--json", str(out)]) == 0  # fmt: skip
    (record,) = json.loads(out.read_text())
    found = record["detections"]
    rows = np.array([[d["class_id"], d["score"], *d["box"]] for d in found])
    # the JSON rounds boxes to 0.01 px and scores to 1e-5
    same_detections(np.c_[expected.class_ids, expected.scores, expected.boxes], rows, box_tol=1e-2, score_tol=2e-5)
    for d in found:  # each detection's mask, as COCO RLE in the photo's pixels: the API's mask for that detection
        i = (np.abs(expected.boxes - d["box"]).max(1) + 1e9 * (expected.class_ids != d["class_id"])).argmin()
        mine = mask_utils.decode(d["mask"]).astype(bool)
        assert d["mask"]["size"] == list(expected.orig_shape) and mine.any()
        # a mask is its logit > 0: float rounding can flip pixels where the logit is ~0
        assert (mine & expected.masks[i]).sum() / (mine | expected.masks[i]).sum() >= 0.99


@pytest.mark.parametrize("name", ["yolov8s-world", "yoloe-11s-seg", "yoloe-26n-seg-pf"])
def test_known_weights_offline_say_how_to_convert_by_hand(name, tmp_path, monkeypatch):
    import urllib.error
    import urllib.request

    from ovdet.errors import WeightsUnavailableError

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setenv("OVDET_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(WeightsUnavailableError, match=f"ovdet convert ultralytics {name}.pt") as info:
        ovdet.load(name)
    assert f"releases/download/v8.4.0/{name}.pt" in str(info.value)


def test_yoloe_text_encoder_offline_names_the_file_to_fetch(ultralytics_checkpoint, cache_dir):
    from ovdet.errors import WeightsUnavailableError

    model = ovdet.from_ultralytics(ultralytics_checkpoint("yoloe-11n.yaml"), trust_pickle=True)
    with pytest.raises(WeightsUnavailableError, match="MobileCLIP-B:/path/to/open_clip_model.safetensors") as info:
        model.set_classes(["person wearing a hat"])
    assert "apple/MobileCLIP-B-LT-OpenCLIP" in str(info.value)
