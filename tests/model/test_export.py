"""ONNX export and ``OnnxDetector``: same outputs and predictions as PyTorch, metadata carried, clear refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ovdet
from ovdet.errors import CheckpointError, VocabularyError
from ovdet.model.postprocess import decode_boxes
from tests.conftest import BOX_TOL_PX, SCORE_TOL, make_scorable, photo_batch, same_detections

IMGSZ = 256


def fused_twin(model: ovdet.OVDetector) -> ovdet.OVDetector:
    twin = ovdet.build(model.config, None)
    twin.load_state_dict(model.state_dict())
    twin.set_vocabulary(model.vocabulary)
    return twin.fuse()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A YOLO-World-layout model with 20 classes and its ONNX export."""
    torch.manual_seed(0)
    model = make_scorable(ovdet.build("yoloworldv2-n", None))
    model.set_classes([f"class {i}" for i in range(20)], embeddings=np.random.default_rng(0).normal(size=(20, 512)))
    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    assert model.export("onnx", path, imgsz=IMGSZ) == str(path)
    return model.eval(), path


def test_export_leaves_the_model_unfused_and_trainable(exported):
    model, _ = exported
    assert not model.is_fused
    model.train()
    model.eval()


def test_a_fused_model_exports_too_and_stays_as_it_was(exported, tmp_path, bus_image):
    model, _ = exported
    fused = fused_twin(model)
    fused.export("onnx", tmp_path / "fused.onnx", imgsz=128)
    assert fused.is_fused and fused.names == model.names
    (a,) = fused.predict(bus_image, imgsz=128, conf=0.8)
    (b,) = ovdet.load_onnx(tmp_path / "fused.onnx").predict(bus_image, conf=0.8)
    rows = [np.c_[r.class_ids, r.scores, r.boxes] for r in (a, b)]
    same_detections(*rows, box_tol=BOX_TOL_PX * 1080 / 128, score_tol=SCORE_TOL)  # original px: 1080 / 128 larger


def test_onnx_outputs_equal_pytorch_for_any_batch_and_size(exported):
    import onnxruntime as ort

    model, path = exported
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["boxes", "scores"]
    for images in (photo_batch(IMGSZ), photo_batch(IMGSZ)[:1, :, :192]):  # dynamic batch and height
        boxes, scores = session.run(None, {"images": images.numpy()})
        with torch.inference_mode():
            out = model(images)
        np.testing.assert_allclose(scores, out.class_logits.sigmoid().numpy(), atol=1e-4, rtol=0)
        # ONNX Runtime sums float32 in another order: see BOX_TOL_PX in tests/conftest.py
        np.testing.assert_allclose(boxes, decode_boxes(out).numpy(), atol=BOX_TOL_PX, rtol=0)


def test_onnx_predictions_equal_pytorch(exported, bus_image):
    model, path = exported
    onnx_model = ovdet.load_onnx(path, threads=2)
    assert onnx_model.names == model.names and onnx_model.stride == 32 and onnx_model.default_imgsz == (IMGSZ, IMGSZ)
    assert onnx_model.info["architecture"] == "yoloworldv2-n"
    fused = fused_twin(model)  # what the export holds: ~1e-5 from the unfused model, which could flip a near-tie
    # this random model scores the full-size photo far higher: a conf per image gives ~40-100 detections each
    for image, conf in ((bus_image, 0.95), (bus_image[::2, ::3].copy(), 0.9)):
        (a,) = fused.predict(image, conf=conf, imgsz=IMGSZ)
        (b,) = onnx_model.predict(image, conf=conf)  # its default size: the export's
        assert b.names == a.names and b.orig_shape == a.orig_shape and 10 < len(a) < 300
        rows = [np.c_[r.class_ids, r.scores, r.boxes] for r in (a, b)]
        same_detections(*rows, box_tol=BOX_TOL_PX * image.shape[0] / IMGSZ, score_tol=SCORE_TOL)  # original px


def test_export_and_load_refusals(exported, tmp_path):
    model, path = exported
    with pytest.raises(ValueError, match="supported: 'onnx'"):
        model.export("tflite", tmp_path / "m.tflite")
    with pytest.raises(VocabularyError, match="set_classes"):
        ovdet.build("yoloworldv2-n", None).export("onnx", tmp_path / "m.onnx")
    with pytest.raises(CheckpointError, match="ovdet.load_onnx"):
        ovdet.load(path)
    with pytest.raises(CheckpointError, match="does not exist"):
        ovdet.load_onnx(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="cannot load"):
        ovdet.load_onnx(tmp_path / "junk.onnx")


# ---------------------------------------------------------------------------------------------- runtime vocabulary
# the families whose runtime-vocabulary export is proven equal to PyTorch; a new family is one more name here
RUNTIME_ARCHS = ["ovdet-n", "yoloworldv2-s"]
RUNTIME_IMGSZ = 192


@pytest.fixture(scope="module", params=RUNTIME_ARCHS)
def runtime_export(request, tmp_path_factory):
    torch.manual_seed(0)
    model = make_scorable(ovdet.build(request.param, None if request.param.startswith("yolo") else "ovdet-test-tiny"))
    model.set_classes(["a", "b", "c"], embeddings=np.random.default_rng(0).normal(size=(3, model.embed_dim))).eval()
    path = tmp_path_factory.mktemp("onnx-runtime") / "model.onnx"
    model.export("onnx", path, vocabulary="runtime", imgsz=RUNTIME_IMGSZ)
    return model, path


@pytest.mark.parametrize("k", [1, 5, 80, 1203])
def test_runtime_vocabulary_outputs_equal_pytorch_for_any_class_count(runtime_export, k):
    import onnxruntime as ort

    model, path = runtime_export
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["images", "class_embeddings"]
    gen = torch.Generator().manual_seed(k)
    text = torch.nn.functional.normalize(torch.randn(k, model.embed_dim, generator=gen), dim=-1)
    photos = photo_batch(RUNTIME_IMGSZ)
    for images in (photos[:1], torch.cat([photos, photos.flip(3)])[:3, :, :160]):  # B = 1 and 3, another height
        boxes, scores = session.run(None, {"images": images.numpy(), "class_embeddings": text.numpy()})
        with torch.inference_mode():
            out = model(images, text)
        assert scores.shape == (len(images), k, out.class_logits.shape[2])
        assert 0.01 < scores.max() and scores.min() < 0.99  # varied scores, not a saturated model
        np.testing.assert_allclose(scores, out.class_logits.sigmoid().numpy(), atol=1e-4, rtol=0)
        np.testing.assert_allclose(boxes, decode_boxes(out).numpy(), atol=BOX_TOL_PX, rtol=0)


def test_runtime_vocabulary_predictions_equal_pytorch(runtime_export, bus_image):
    model, path = runtime_export
    onnx_model = ovdet.load_onnx(path, threads=2)
    assert onnx_model.vocabulary_mode == "runtime" and onnx_model.names == ["a", "b", "c"]  # the exported classes
    emb = np.random.default_rng(3).normal(size=(6, model.embed_dim))
    names = [f"class {i}" for i in range(6)]
    onnx_model.set_classes(names, embeddings=emb)
    reference = fused_twin(model).set_classes(names, embeddings=emb)
    for conf in (0.5, 0.8):
        (a,) = reference.predict(bus_image, conf=conf, imgsz=RUNTIME_IMGSZ)
        (b,) = onnx_model.predict(bus_image, conf=conf)
        if len(a) > 3:
            break
    assert b.names == tuple(names) and len(a) > 3
    same_detections(np.c_[a.class_ids, a.scores, a.boxes], np.c_[b.class_ids, b.scores, b.boxes], box_tol=0.05 * 6,
                    score_tol=1e-4)  # fmt: skip


def test_folded_export_refuses_other_classes_and_names_the_fix(exported):
    model, path = exported
    onnx_model = ovdet.load_onnx(path)
    assert onnx_model.set_classes(model.names) is onnx_model  # its own classes: fine
    with pytest.raises(VocabularyError, match="vocabulary='runtime'"):
        onnx_model.set_classes(["person", "bus"])


def test_export_never_replaces_what_ovdet_did_not_write(exported, tmp_path):
    from ovdet.errors import OutputError

    model, _ = exported
    mine = tmp_path / "notes.onnx"
    mine.write_bytes(b"my own file")
    with pytest.raises(OutputError, match="not written by ovdet"):
        model.export("onnx", mine)
    with pytest.raises(OutputError, match="is a folder"):
        model.export("onnx", tmp_path)
    assert mine.read_bytes() == b"my own file"
    model.export("onnx", tmp_path / "m.onnx", imgsz=64)
    model.export("onnx", tmp_path / "m.onnx", imgsz=64, vocabulary="runtime")  # an earlier export is replaced
    assert ovdet.load_onnx(tmp_path / "m.onnx").vocabulary_mode == "runtime"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "notes.onnx"]  # no temporary file left behind
